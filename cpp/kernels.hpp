// Kernels of cfdseed, pure functions: the constraint figures over one rank's block of a velocity
// component, and the eddy sum of the "sem" source (`eddies`, at the end).
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

// A writable strided 3-D view: the output of the synthesis kernels (`eddies`).
template <class T>
struct Out3 {
  T* data = nullptr;
  Ext n{0, 0, 0};  // extents (x, y, z)
  Ext s{0, 0, 0};  // strides in elements (may be negative)
  T& operator()(idx i, idx j, idx k) const { return data[i * s[0] + j * s[1] + k * s[2]]; }
};

// Axes sorted by decreasing |stride|: the last one is walked in the innermost loop.
inline std::array<int, 3> stride_order(const Ext& s) {
  std::array<int, 3> o{0, 1, 2};
  std::stable_sort(o.begin(), o.end(), [&](int a, int b) { return std::llabs(s[a]) > std::llabs(s[b]); });
  return o;
}

template <class T>
std::array<int, 3> loop_order(const View3<T>& v) {
  return stride_order(v.s);
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

// ---------------------------------------------------------------------------------------------
// Synthetic eddies (the "sem" source)
// ---------------------------------------------------------------------------------------------

// The points of one coordinate axis inside an eddy's support |p - c| < sigma, over every periodic
// image c + m * period of the centre (period > 0) or the centre alone (period 0: clipped at the
// ends of the axis). Per point: its index, r = p - image and (r / sigma)^2.
struct Support {
  std::vector<idx> at;
  std::vector<double> r;
  std::vector<double> q;
  void clear() {
    at.clear();
    r.clear();
    q.clear();
  }
  idx size() const { return static_cast<idx>(at.size()); }
};

inline void support(const double* c, idx n, double centre, double sigma, double period, Support& out) {
  out.clear();
  if (n == 0) return;
  double m0 = 0.0, m1 = 0.0;
  if (period > 0) {  // images whose support (image - sigma, image + sigma) meets [c[0], c[n - 1]]
    m0 = std::ceil((c[0] - centre - sigma) / period);
    m1 = std::floor((c[n - 1] - centre + sigma) / period);
  }
  const double inv = 1.0 / sigma;
  for (double m = m0; m <= m1; m += 1.0) {
    const double at = centre + m * period;
    for (idx i = std::upper_bound(c, c + n, at - sigma) - c; i < n && c[i] < at + sigma; ++i) {
      const double r = c[i] - at, q = (r * inv) * (r * inv);
      if (q < 1.0) {
        out.at.push_back(i);
        out.r.push_back(r);
        out.q.push_back(q);
      }
    }
  }
}

inline void require_axis(const double* c, idx n, idx want, const char* name) {
  if (n != want)
    throw std::invalid_argument(std::string(name) + " must have one coordinate per grid index (" +
                                std::to_string(want) + "), got " + std::to_string(n));
  for (idx i = 0; i < n; ++i)
    if (!std::isfinite(c[i]) || (i > 0 && !(c[i] > c[i - 1])))
      throw std::invalid_argument(std::string(name) + " must be finite and strictly increasing (index " +
                                  std::to_string(i) + ")");
}

// One eddy of `eddies`: its support points (per axis: index, r, (r / sigma)^2) nested with axis A
// slowest and C innermost; a partial sum of (r / sigma)^2 that reaches 1 skips its inner loop.
template <int A, int B, int C, class T>
void add_eddy(const Out3<T>& u, const Out3<T>& v, const Out3<T>& w, const Support* sup, const double* damp,
              const double* ddamp, double c_psi, double ax, double ay, double az) {
  const Support &sa = sup[A], &sb = sup[B], &sc = sup[C];
  const idx na = sa.size(), nb = sb.size(), nc = sc.size();
  idx ix[3];
  double r[3];
  for (idx a = 0; a < na; ++a) {
    ix[A] = sa.at[a];
    r[A] = sa.r[a];
    const double qa = sa.q[a];
    for (idx b = 0; b < nb; ++b) {
      const double qab = qa + sb.q[b];
      if (qab >= 1.0) continue;
      ix[B] = sb.at[b];
      r[B] = sb.r[b];
      for (idx c = 0; c < nc; ++c) {
        const double q = 1.0 - (qab + sc.q[c]);
        if (q <= 0.0) continue;
        ix[C] = sc.at[c];
        r[C] = sc.r[c];
        const idx j = ix[1];
        const double q3 = q * q * q, f = damp[j] * q3, g = ddamp[j] * c_psi * q3 * q;  // D f, D' psi
        T& pu = u(ix[0], j, ix[2]);
        T& pv = v(ix[0], j, ix[2]);
        T& pw = w(ix[0], j, ix[2]);
        pu = static_cast<T>(pu + f * (r[1] * az - r[2] * ay) + g * az);
        pv = static_cast<T>(pv + f * (r[2] * ax - r[0] * az));
        pw = static_cast<T>(pw + f * (r[0] * ay - r[1] * ax) - g * ax);
      }
    }
  }
}

// Adds to (u, v, w) the velocity of `ne` divergence-free eddies, damped towards the walls:
//
//     u(p) += curl( D(y) sum_e psi_e(p) alpha_e )
//           = sum_e D(y) f(s_e) (r_e x alpha_e) + D'(y) psi_e (alpha_e,z, 0, -alpha_e,x),
//
// f(s) = (1 - s^2)^3 and psi = -sigma^2 (1 - s^2)^4 / 8 for s = |r_e| / sigma_e < 1 (zero beyond,
// grad psi = f r), with r_e = p - c_e over every periodic image of the centre c_e in x (period lx)
// and z (period lz); in y the support is clipped at the ends of the axis (the walls). A curl, so
// solenoidal for any D; D = 1, D' = 0 gives the plain eddies f (r x alpha), and D, D' = 0 at a
// wall make the velocity vanish there. f, f', f'' vanish at the edge of the support: the field is
// twice continuously differentiable where D is.
// Points: the tensor grid (x[i], y[j], z[k]), each axis strictly increasing; `damp` and `ddamp`
// hold D and dD/dy at y[j]. Eddies: centre (ne, 3), sigma (ne,) > 0, alpha (ne, 3), row-major.
// Cost: the support points of every eddy, i.e. cells x eddies per cell; the loops run in the order
// of u's strides.
template <class T>
void eddies(const Out3<T>& u, const Out3<T>& v, const Out3<T>& w, const double* x, idx nx, const double* y,
            idx ny, const double* z, idx nz, double lx, double lz, const double* damp, const double* ddamp, idx nd,
            const double* centre, const double* sigma, const double* alpha, idx ne) {
  if (v.n != u.n || w.n != u.n)
    throw std::invalid_argument("u, v, w must have the same shape, got " + ext_str(u.n) + ", " + ext_str(v.n) +
                                ", " + ext_str(w.n));
  require_axis(x, nx, u.n[0], "x");
  require_axis(y, ny, u.n[1], "y");
  require_axis(z, nz, u.n[2], "z");
  if (nd != u.n[1])
    throw std::invalid_argument("damp and ddamp must have one value per y index (" + std::to_string(u.n[1]) +
                                "), got " + std::to_string(nd));
  for (idx j = 0; j < nd; ++j)
    if (!std::isfinite(damp[j]) || !std::isfinite(ddamp[j]))
      throw std::invalid_argument("damp and ddamp must be finite (y index " + std::to_string(j) + ")");
  if (!(std::isfinite(lx) && lx > 0) || !(std::isfinite(lz) && lz > 0))
    throw std::invalid_argument("periods lx and lz must be positive finite numbers, got " + std::to_string(lx) +
                                " and " + std::to_string(lz));
  for (idx e = 0; e < ne; ++e) {
    const double s = sigma[e];
    bool ok = std::isfinite(s) && s > 0;
    for (int d = 0; d < 3; ++d) ok = ok && std::isfinite(centre[3 * e + d]) && std::isfinite(alpha[3 * e + d]);
    if (!ok)
      throw std::invalid_argument("eddy " + std::to_string(e) + ": sigma must be positive and finite, centre " +
                                  "and alpha finite (sigma = " + std::to_string(s) + ")");
    // images of one eddy along a periodic axis: a support wider than 1e6 periods is a mistake
    if (2.0 * s > 1e6 * std::min(lx, lz))
      throw std::invalid_argument("eddy " + std::to_string(e) + ": sigma = " + std::to_string(s) +
                                  " spans more than a million periods");
  }
  const auto o = stride_order(u.s);
  const int key = o[0] * 9 + o[1] * 3 + o[2];
  Support sup[3];
  for (idx e = 0; e < ne; ++e) {
    const double s = sigma[e];
    support(x, nx, centre[3 * e], s, lx, sup[0]);
    support(y, ny, centre[3 * e + 1], s, 0.0, sup[1]);
    support(z, nz, centre[3 * e + 2], s, lz, sup[2]);
    if (sup[0].size() == 0 || sup[1].size() == 0 || sup[2].size() == 0) continue;
    const double c_psi = -0.125 * s * s;  // psi = c_psi (1 - (r / sigma)^2)^4
    const double ax = alpha[3 * e], ay = alpha[3 * e + 1], az = alpha[3 * e + 2];
    switch (key) {  // the nesting order of u's strides, fixed at compile time
      case 0 * 9 + 1 * 3 + 2: add_eddy<0, 1, 2>(u, v, w, sup, damp, ddamp, c_psi, ax, ay, az); break;
      case 0 * 9 + 2 * 3 + 1: add_eddy<0, 2, 1>(u, v, w, sup, damp, ddamp, c_psi, ax, ay, az); break;
      case 1 * 9 + 0 * 3 + 2: add_eddy<1, 0, 2>(u, v, w, sup, damp, ddamp, c_psi, ax, ay, az); break;
      case 1 * 9 + 2 * 3 + 0: add_eddy<1, 2, 0>(u, v, w, sup, damp, ddamp, c_psi, ax, ay, az); break;
      case 2 * 9 + 0 * 3 + 1: add_eddy<2, 0, 1>(u, v, w, sup, damp, ddamp, c_psi, ax, ay, az); break;
      default: add_eddy<2, 1, 0>(u, v, w, sup, damp, ddamp, c_psi, ax, ay, az);
    }
  }
}

}  // namespace cfdseed
