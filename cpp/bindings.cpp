// pybind11 bindings of the kernels (cfdseed._core, internal).
//
// Only argument conversion lives here: numpy arrays (float32 or float64, 3-D, any strides) become
// strided views without copies, the GIL is released while a kernel runs, and
// std::invalid_argument surfaces as ValueError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <tuple>

#include "kernels.hpp"

namespace py = pybind11;
using cfdseed::idx;
using cfdseed::View3;
using Weights = py::array_t<double, py::array::c_style | py::array::forcecast>;

namespace {

enum class Kind { f32, f64 };

Kind kind_of(const py::array& a, const char* name) {
  if (a.dtype().is(py::dtype::of<float>())) return Kind::f32;
  if (a.dtype().is(py::dtype::of<double>())) return Kind::f64;
  throw std::invalid_argument(std::string(name) + " must be float32 or float64, got " +
                              std::string(py::str(a.dtype())));
}

// Shape and strides (in items of T) of a 3-D array into a view's n and s.
template <class T, class V>
void set_layout(const py::array& a, const char* name, V& v) {
  if (a.ndim() != 3)
    throw std::invalid_argument(std::string(name) + " must be a 3-D (x, y, z) array, got " +
                                std::to_string(a.ndim()) + " dimensions");
  for (int d = 0; d < 3; ++d) {
    v.n[d] = static_cast<idx>(a.shape(d));
    const auto s = static_cast<idx>(a.strides(d));
    if (s % static_cast<idx>(sizeof(T)) != 0)
      throw std::invalid_argument(std::string(name) + " has a stride that is not a multiple of its item size");
    v.s[d] = s / static_cast<idx>(sizeof(T));
  }
}

template <class T>
View3<T> view(const py::array& a, const char* name) {
  View3<T> v;
  set_layout<T>(a, name, v);
  v.data = static_cast<const T*>(a.data());
  return v;
}

// Kind of the first array; every other array must share it.
Kind common_kind(std::initializer_list<std::pair<const py::array*, const char*>> arrays) {
  const Kind k = kind_of(*arrays.begin()->first, arrays.begin()->second);
  for (const auto& [a, name] : arrays)
    if (kind_of(*a, name) != k)
      throw std::invalid_argument(std::string(name) + " must have the dtype of " + arrays.begin()->second);
  return k;
}

template <class T>
py::tuple stats_t(const py::array& f, const Weights& wy) {
  const auto v = view<T>(f, "f");
  cfdseed::Stats r;
  {
    py::gil_scoped_release nogil;
    r = cfdseed::stats(v, wy.data(), static_cast<idx>(wy.size()));
  }
  return py::make_tuple(r.max_abs, r.sumsq, r.wsum, r.nonfinite);
}

template <class T>
double wall_t(const py::array& a, const py::array& b, double t) {
  const auto va = view<T>(a, "a"), vb = view<T>(b, "b");
  py::gil_scoped_release nogil;
  return cfdseed::wall_absmax(va, vb, t);
}

template <class T>
py::tuple increments_t(const py::array& f, const py::array& hi, int axis, idx seam) {
  const auto vf = view<T>(f, "f"), vh = view<T>(hi, "hi");
  cfdseed::Increments r;
  {
    py::gil_scoped_release nogil;
    r = cfdseed::increments(vf, vh, axis, seam);
  }
  return py::make_tuple(r.interior, r.seam);
}

template <class T>
py::tuple divergence_t(const py::array& u, const py::array& v, const py::array& w, const py::array& ulo,
                       const py::array& uhi, const py::array& vlo, const py::array& vhi, const py::array& wlo,
                       const py::array& whi, const Weights& yext, double dx, double dz, idx j0, idx j1) {
  const auto vu = view<T>(u, "u"), vv = view<T>(v, "v"), vw = view<T>(w, "w");
  const auto a = view<T>(ulo, "ulo"), b = view<T>(uhi, "uhi"), c = view<T>(vlo, "vlo"),
             d = view<T>(vhi, "vhi"), e = view<T>(wlo, "wlo"), f = view<T>(whi, "whi");
  cfdseed::Divergence r;
  {
    py::gil_scoped_release nogil;
    r = cfdseed::divergence(vu, vv, vw, a, b, c, d, e, f, yext.data(), static_cast<idx>(yext.size()), dx, dz,
                            j0, j1);
  }
  return py::make_tuple(r.max_abs, r.sumsq, r.count);
}

template <class T>
cfdseed::Out3<T> out_view(py::array& a, const char* name) {
  cfdseed::Out3<T> v;
  set_layout<T>(a, name, v);
  if (!a.writeable()) throw std::invalid_argument(std::string(name) + " must be writeable");
  v.data = static_cast<T*>(a.mutable_data());
  return v;
}

// An (n, 3) or (n,) float64 array of eddy data; returns n.
idx eddy_rows(const Weights& a, idx cols, const char* name) {
  const bool ok = cols == 1 ? a.ndim() == 1 : (a.ndim() == 2 && a.shape(1) == cols);
  if (!ok)
    throw std::invalid_argument(std::string(name) + " must have shape " + (cols == 1 ? "(n,)" : "(n, 3)"));
  return static_cast<idx>(a.shape(0));
}

template <class T>
void eddies_t(py::array& u, py::array& v, py::array& w, const Weights& x, const Weights& y, const Weights& z,
              double lx, double lz, const Weights& damp, const Weights& ddamp, const Weights& centre,
              const Weights& sigma, const Weights& alpha) {
  const auto vu = out_view<T>(u, "u"), vv = out_view<T>(v, "v"), vw = out_view<T>(w, "w");
  const idx n = eddy_rows(sigma, 1, "sigma");
  if (eddy_rows(centre, 3, "centre") != n || eddy_rows(alpha, 3, "alpha") != n)
    throw std::invalid_argument("centre, sigma and alpha must have one row per eddy (sigma has " +
                                std::to_string(n) + ")");
  if (damp.size() != ddamp.size())
    throw std::invalid_argument("damp and ddamp must have the same length, got " + std::to_string(damp.size()) +
                                " and " + std::to_string(ddamp.size()));
  py::gil_scoped_release nogil;
  cfdseed::eddies(vu, vv, vw, x.data(), static_cast<idx>(x.size()), y.data(), static_cast<idx>(y.size()), z.data(),
                  static_cast<idx>(z.size()), lx, lz, damp.data(), ddamp.data(), static_cast<idx>(damp.size()),
                  centre.data(), sigma.data(), alpha.data(), n);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "cfdseed kernels: constraint figures, eddy synthesis (internal; see cpp/kernels.hpp)";

  m.def(
      "stats",
      [](const py::array& f, const Weights& wy) {
        return kind_of(f, "f") == Kind::f32 ? stats_t<float>(f, wy) : stats_t<double>(f, wy);
      },
      py::arg("f"), py::arg("wy"),
      "(max |f|, sum f^2, sum wy[j] f, non-finite count) of a 3-D (x, y, z) block; finite values only.");

  m.def(
      "wall_absmax",
      [](const py::array& a, const py::array& b, double t) {
        return common_kind({{&a, "a"}, {&b, "b"}}) == Kind::f32 ? wall_t<float>(a, b, t) : wall_t<double>(a, b, t);
      },
      py::arg("a"), py::arg("b"), py::arg("t"), "max |a + t (b - a)| over finite values (wall value).");

  m.def(
      "increments",
      [](const py::array& f, const py::array& hi, int axis, idx seam) {
        return common_kind({{&f, "f"}, {&hi, "hi"}}) == Kind::f32 ? increments_t<float>(f, hi, axis, seam)
                                                                 : increments_t<double>(f, hi, axis, seam);
      },
      py::arg("f"), py::arg("hi"), py::arg("axis"), py::arg("seam"),
      "(max interior |f[i+1] - f[i]|, max seam increment) along axis; hi is the plane beyond the block.");

  m.def(
      "divergence",
      [](const py::array& u, const py::array& v, const py::array& w, const py::array& ulo, const py::array& uhi,
         const py::array& vlo, const py::array& vhi, const py::array& wlo, const py::array& whi, const Weights& yext,
         double dx, double dz, idx j0, idx j1) {
        const Kind k = common_kind({{&u, "u"}, {&v, "v"}, {&w, "w"}, {&ulo, "ulo"}, {&uhi, "uhi"}, {&vlo, "vlo"},
                                    {&vhi, "vhi"}, {&wlo, "wlo"}, {&whi, "whi"}});
        return k == Kind::f32 ? divergence_t<float>(u, v, w, ulo, uhi, vlo, vhi, wlo, whi, yext, dx, dz, j0, j1)
                              : divergence_t<double>(u, v, w, ulo, uhi, vlo, vhi, wlo, whi, yext, dx, dz, j0, j1);
      },
      py::arg("u"), py::arg("v"), py::arg("w"), py::arg("ulo"), py::arg("uhi"), py::arg("vlo"), py::arg("vhi"),
      py::arg("wlo"), py::arg("whi"), py::arg("yext"), py::arg("dx"), py::arg("dz"), py::arg("j0"), py::arg("j1"),
      "(max |div u|, sum (div u)^2, count) at local y indices [j0, j1) (contract 1); finite values only.");

  m.def(
      "eddies",
      [](py::array& u, py::array& v, py::array& w, const Weights& x, const Weights& y, const Weights& z, double lx,
         double lz, const Weights& damp, const Weights& ddamp, const Weights& centre, const Weights& sigma,
         const Weights& alpha) {
        if (common_kind({{&u, "u"}, {&v, "v"}, {&w, "w"}}) == Kind::f32)
          eddies_t<float>(u, v, w, x, y, z, lx, lz, damp, ddamp, centre, sigma, alpha);
        else
          eddies_t<double>(u, v, w, x, y, z, lx, lz, damp, ddamp, centre, sigma, alpha);
      },
      py::arg("u"), py::arg("v"), py::arg("w"), py::arg("x"), py::arg("y"), py::arg("z"), py::arg("lx"),
      py::arg("lz"), py::arg("damp"), py::arg("ddamp"), py::arg("centre"), py::arg("sigma"), py::arg("alpha"),
      "Add to (u, v, w) curl(D(y) sum psi alpha) = D f (r x alpha) + D' psi (alpha_z, 0, -alpha_x) of compact "
      "eddies, f(s) = (1 - s^2)^3, psi = -sigma^2 (1 - s^2)^4 / 8, periodic in x and z (periods lx, lz), "
      "clipped at the ends of y; damp, ddamp: D and dD/dy per y index.");
}
