// Constraint kernels of cfdseed: pure functions over one rank's block of a velocity component.
//
// Every array is a strided 3-D view (data pointer, extents, strides in elements) in logical
// (x, y, z) order, so any axis order or memory order of the caller works without copies; the
// loops run in the order of decreasing stride of the first array for cache locality. Arithmetic
// is in double for float and double inputs. No MPI, no Python, no global state: the caller
// combines the per-block partial figures across ranks.
//
// Non-finite values are counted by `stats` and skipped by every other figure (a point whose
// stencil touches a NaN/Inf contributes nothing), so the remaining figures stay meaningful.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

// Per-point lambdas must be inlined into the loop nests; GCC's heuristics may refuse for the larger
// ones once six loop orders are instantiated.
#if defined(__GNUC__)
#define CFDSEED_INLINE __attribute__((always_inline))
#else
#define CFDSEED_INLINE
#endif

namespace cfdseed {

using idx = std::int64_t;
using Ext = std::array<idx, 3>;

template <class T>
struct View3 {
  const T* data = nullptr;
  Ext n{0, 0, 0};  // extents (x, y, z)
  Ext s{0, 0, 0};  // strides in elements (may be negative)
  double operator()(idx i, idx j, idx k) const {
    return static_cast<double>(data[i * s[0] + j * s[1] + k * s[2]]);
  }
  idx size() const { return n[0] * n[1] * n[2]; }
};

// Axes sorted by decreasing |stride|: the last one is walked in the innermost loop.
template <class T>
std::array<int, 3> loop_order(const View3<T>& v) {
  std::array<int, 3> o{0, 1, 2};
  std::stable_sort(o.begin(), o.end(),
                   [&](int a, int b) { return std::llabs(v.s[a]) > std::llabs(v.s[b]); });
  return o;
}

// Nesting order fixed at compile time (A slowest, C innermost), so the indices live in registers.
template <int A, int B, int C, class F>
void loop3_fixed(const Ext& lo, const Ext& hi, F& f) {
  idx ix[3];
  for (ix[A] = lo[A]; ix[A] < hi[A]; ++ix[A])
    for (ix[B] = lo[B]; ix[B] < hi[B]; ++ix[B])
      for (ix[C] = lo[C]; ix[C] < hi[C]; ++ix[C]) f(ix[0], ix[1], ix[2]);
}

// Calls f(i, j, k) for every index in [lo, hi) in the nesting order o (slowest first).
template <class F>
void loop3(const Ext& lo, const Ext& hi, const std::array<int, 3>& o, F&& f) {
  switch (o[0] * 9 + o[1] * 3 + o[2]) {
    case 0 * 9 + 1 * 3 + 2: return loop3_fixed<0, 1, 2>(lo, hi, f);
    case 0 * 9 + 2 * 3 + 1: return loop3_fixed<0, 2, 1>(lo, hi, f);
    case 1 * 9 + 0 * 3 + 2: return loop3_fixed<1, 0, 2>(lo, hi, f);
    case 1 * 9 + 2 * 3 + 0: return loop3_fixed<1, 2, 0>(lo, hi, f);
    case 2 * 9 + 0 * 3 + 1: return loop3_fixed<2, 0, 1>(lo, hi, f);
    default: return loop3_fixed<2, 1, 0>(lo, hi, f);
  }
}

inline std::string ext_str(const Ext& n) {
  return "(" + std::to_string(n[0]) + ", " + std::to_string(n[1]) + ", " + std::to_string(n[2]) + ")";
}

// `plane` must have the extents of `block` except 1 along `axis`.
template <class T>
void require_plane(const View3<T>& plane, const View3<T>& block, int axis, const char* name) {
  Ext want = block.n;
  want[axis] = 1;
  if (plane.n != want)
    throw std::invalid_argument(std::string(name) + " must have shape " + ext_str(want) + ", got " +
                                ext_str(plane.n));
}

struct Stats {
  double max_abs = 0.0;  // max |f| over finite values
  double sumsq = 0.0;    // sum of f^2 over finite values
  double wsum = 0.0;     // sum over finite values of wy[j] * f[i, j, k]
  idx nonfinite = 0;     // number of NaN/Inf values
};

// One pass over a component: max |f|, sum f^2, y-weighted sum (bulk velocity), non-finite count.
// `wy` has one weight per local y index.
template <class T>
Stats stats(const View3<T>& f, const double* wy, idx nwy) {
  if (nwy != f.n[1])
    throw std::invalid_argument("wy must have one weight per y index (" + std::to_string(f.n[1]) +
                                "), got " + std::to_string(nwy));
  // local accumulators (not members of the returned struct) so they stay in registers
  double m = 0.0, ss = 0.0, ws = 0.0;
  idx bad = 0;
  loop3({0, 0, 0}, f.n, loop_order(f), [&](idx i, idx j, idx k) CFDSEED_INLINE {
    const double x = f(i, j, k);
    if (std::isfinite(x)) {
      m = std::max(m, std::fabs(x));
      ss += x * x;
      ws += wy[j] * x;
    } else {
      ++bad;
    }
  });
  return {m, ss, ws, bad};
}

// max |a + t (b - a)| over finite values: the wall value of a component, taken from the wall
// plane itself (t = 0) or linearly extrapolated from the first two planes off the wall.
template <class T>
double wall_absmax(const View3<T>& a, const View3<T>& b, double t) {
  if (a.n != b.n)
    throw std::invalid_argument("planes a and b must have the same shape, got " + ext_str(a.n) +
                                " and " + ext_str(b.n));
  double m = 0.0;
  loop3({0, 0, 0}, a.n, loop_order(a), [&](idx i, idx j, idx k) CFDSEED_INLINE {
    const double x = a(i, j, k);
    const double v = x + t * (b(i, j, k) - x);
    if (std::isfinite(v)) m = std::max(m, std::fabs(v));
  });
  return m;
}

struct Increments {
  double interior = 0.0;  // max |f[i+1] - f[i]| over increments other than the seam
  double seam = 0.0;      // max |f[i+1] - f[i]| at local index i == seam
};

template <class T, int AX>
Increments increments_along(const View3<T>& f, const View3<T>& hi, idx seam) {
  double interior = 0.0, at_seam = 0.0;
  const idx last = f.n[AX] - 1;
  loop3({0, 0, 0}, f.n, loop_order(f), [&](idx i, idx j, idx k) CFDSEED_INLINE {
    const idx p = AX == 0 ? i : (AX == 1 ? j : k);
    double next;
    if (p < last)
      next = f(i + (AX == 0), j + (AX == 1), k + (AX == 2));
    else
      next = hi(AX == 0 ? 0 : i, AX == 1 ? 0 : j, AX == 2 ? 0 : k);
    const double d = std::fabs(next - f(i, j, k));
    if (!std::isfinite(d)) return;
    if (p == seam)
      at_seam = std::max(at_seam, d);
    else
      interior = std::max(interior, d);
  });
  return {interior, at_seam};
}

// Forward increments along `axis`; the increment leaving the block uses the neighbour plane `hi`
// (the plane just beyond the block's upper face). The increment at local index `seam` (the
// periodic seam, global i = n - 1 -> 0; -1 when the block does not hold it) is reported apart.
template <class T>
Increments increments(const View3<T>& f, const View3<T>& hi, int axis, idx seam) {
  if (axis < 0 || axis > 2) throw std::invalid_argument("axis must be 0, 1 or 2, got " + std::to_string(axis));
  require_plane(hi, f, axis, "hi");
  if (seam < -1 || seam >= f.n[axis])
    throw std::invalid_argument("seam must be -1 or a local index below " + std::to_string(f.n[axis]) +
                                ", got " + std::to_string(seam));
  if (axis == 0) return increments_along<T, 0>(f, hi, seam);
  if (axis == 1) return increments_along<T, 1>(f, hi, seam);
  return increments_along<T, 2>(f, hi, seam);
}

struct Divergence {
  double max_abs = 0.0;  // max |div u| over finite values
  double sumsq = 0.0;    // sum of (div u)^2 over finite values
  idx count = 0;         // number of finite values
};

// div u = du/dx + dv/dy + dw/dz at local y indices [j0, j1) (contract 1): periodic central
// differences in x and z with spacings dx, dz; the 3-point non-uniform formula in y on
// `yext` = (y below the block, the block's y, y above the block). The planes beyond the block's
// faces come from the halo: (ulo, uhi) along x, (vlo, vhi) along y, (wlo, whi) along z.
template <class T>
Divergence divergence(const View3<T>& u, const View3<T>& v, const View3<T>& w, const View3<T>& ulo,
                      const View3<T>& uhi, const View3<T>& vlo, const View3<T>& vhi, const View3<T>& wlo,
                      const View3<T>& whi, const double* yext, idx nyext, double dx, double dz, idx j0,
                      idx j1) {
  if (v.n != u.n || w.n != u.n)
    throw std::invalid_argument("u, v, w must have the same shape, got " + ext_str(u.n) + ", " +
                                ext_str(v.n) + ", " + ext_str(w.n));
  require_plane(ulo, u, 0, "ulo");
  require_plane(uhi, u, 0, "uhi");
  require_plane(vlo, u, 1, "vlo");
  require_plane(vhi, u, 1, "vhi");
  require_plane(wlo, u, 2, "wlo");
  require_plane(whi, u, 2, "whi");
  const idx nx = u.n[0], ny = u.n[1], nz = u.n[2];
  if (nyext != ny + 2)
    throw std::invalid_argument("yext must have ny + 2 = " + std::to_string(ny + 2) + " entries, got " +
                                std::to_string(nyext));
  if (j0 < 0 || j1 > ny || j0 > j1)
    throw std::invalid_argument("need 0 <= j0 <= j1 <= ny = " + std::to_string(ny) + ", got j0 = " +
                                std::to_string(j0) + ", j1 = " + std::to_string(j1));
  if (!(dx > 0) || !(dz > 0)) throw std::invalid_argument("dx and dz must be positive");
  // 3-point coefficients of f_{j-1}, f_j, f_{j+1} per local j
  std::vector<double> cm(ny), c0(ny), cp(ny);
  for (idx j = j0; j < j1; ++j) {
    const double hm = yext[j + 1] - yext[j], hp = yext[j + 2] - yext[j + 1];
    if (!(hm > 0) || !(hp > 0))
      throw std::invalid_argument("yext must be strictly increasing around local j = " + std::to_string(j));
    const double den = hp * hm * (hp + hm);
    cm[j] = -hp * hp / den;
    c0[j] = (hp * hp - hm * hm) / den;
    cp[j] = hm * hm / den;
  }
  const double ax = 0.5 / dx, az = 0.5 / dz;
  double m = 0.0, ss = 0.0;
  idx count = 0;
  loop3({0, j0, 0}, {nx, j1, nz}, loop_order(u), [&](idx i, idx j, idx k) CFDSEED_INLINE {
    const double up = i + 1 < nx ? u(i + 1, j, k) : uhi(0, j, k);
    const double um = i > 0 ? u(i - 1, j, k) : ulo(0, j, k);
    const double vp = j + 1 < ny ? v(i, j + 1, k) : vhi(i, 0, k);
    const double vm = j > 0 ? v(i, j - 1, k) : vlo(i, 0, k);
    const double wp = k + 1 < nz ? w(i, j, k + 1) : whi(i, j, 0);
    const double wm = k > 0 ? w(i, j, k - 1) : wlo(i, j, 0);
    const double d = (up - um) * ax + cm[j] * vm + c0[j] * v(i, j, k) + cp[j] * vp + (wp - wm) * az;
    if (std::isfinite(d)) {
      m = std::max(m, std::fabs(d));
      ss += d * d;
      ++count;
    }
  });
  return {m, ss, count};
}

}  // namespace cfdseed
