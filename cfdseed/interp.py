"""Interpolation of velocity data from a source grid (model slices, snapshot) onto a solver grid.

- **y** (bounded by walls): the source column is first completed with zero wall values where it
  has no wall point (:func:`cfdseed.operators.extend_y`; cell-centred sources: no-slip), then
  interpolated in the normalised coordinate ``y / ly`` either by global barycentric Lagrange
  interpolation (spectrally accurate, exact for polynomials of degree < ny; used automatically
  when the source points are Chebyshev Gauss-Lobatto) or by a not-a-knot cubic spline (exact for
  cubic polynomials; any distribution). Both are linear maps, applied as one small
  ``(ny_out, ny_in)`` matrix.
- **x, z** (periodic): Fourier resampling. A target period ``l_out`` different from the source's
  ``l_in`` is covered by ``m = max(1, round(l_out / l_in))`` periodic copies of the source (tiling:
  seam-free by construction), stretched by ``l_out / (m l_in)`` when the ratio is not an integer;
  then the spectrum is zero-padded or truncated to ``n_out`` points. Trigonometric polynomials
  that both grids resolve are reproduced exactly.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from ._threads import fft_workers
from .errors import GridError
from .grid import Grid
from .operators import WALL_TOL, extend_y, wall_points

__all__ = ["y_matrix", "interp_y", "resample_periodic", "tile_factor", "slices_to_grid", "field_to_grid"]

YMethod = Literal["auto", "barycentric", "cubic"]
_Y_METHODS = ("auto", "barycentric", "cubic")


def _is_gauss_lobatto(eta: np.ndarray) -> bool:
    n = eta.size
    ref = 0.5 * (1.0 - np.cos(np.pi * np.arange(n) / (n - 1)))
    return bool(np.allclose(eta, ref, rtol=0, atol=1e-10))


def _barycentric_matrix(xs: np.ndarray, xt: np.ndarray) -> np.ndarray:
    """Lagrange interpolation matrix ``(nt, ns)`` in barycentric form (second kind)."""
    diff = xs[:, None] - xs[None, :]
    np.fill_diagonal(diff, 1.0)
    # weights scaled by the interval length to avoid over/underflow for large n
    wts = 1.0 / np.prod(diff * (4.0 / (xs[-1] - xs[0])), axis=1)
    d = xt[:, None] - xs[None, :]
    exact = d == 0.0
    d[exact] = 1.0
    m = wts[None, :] / d
    m /= m.sum(axis=1, keepdims=True)
    rows = exact.any(axis=1)
    m[rows] = exact[rows].astype(np.float64)
    return m


def _cubic_matrix(xs: np.ndarray, xt: np.ndarray) -> np.ndarray:
    from scipy.interpolate import CubicSpline

    if xs.size < 4:  # not-a-knot needs 4 points; fewer: the interpolating polynomial
        return _barycentric_matrix(xs, xt)
    return CubicSpline(xs, np.eye(xs.size), axis=0, bc_type="not-a-knot")(xt)


def y_matrix(y_in: np.ndarray, ly_in: float, y_out: np.ndarray, ly_out: float,
             method: YMethod = "auto") -> np.ndarray:
    """Linear map ``(ny_out, ny_in)`` from source column values to target column values.

    Walls missing from the source carry zero velocity. Coordinates are compared as ``y / ly``.

    Raises
    ------
    GridError
        Unknown method, fewer than 2 source points, or target points outside the walls.
    """
    if method not in _Y_METHODS:
        raise GridError(f"unknown y interpolation {method!r}; must be one of {', '.join(_Y_METHODS)}")
    y_in = np.asarray(y_in, dtype=np.float64)
    if y_in.ndim != 1 or y_in.size < 2 or np.any(np.diff(y_in) <= 0):
        raise GridError(f"source y must be >= 2 strictly increasing points, got shape {y_in.shape}")
    on_lo, on_hi = wall_points(y_in, ly_in)
    eta_s = extend_y(y_in, ly_in) / ly_in  # zero wall values where the source has no wall point
    eta_t = np.asarray(y_out, dtype=np.float64) / ly_out
    if eta_t.min() < -WALL_TOL or eta_t.max() > 1 + WALL_TOL:
        raise GridError(f"target y must lie in [0, {ly_out}], got [{y_out.min()}, {y_out.max()}]")
    eta_t = np.clip(eta_t, 0.0, 1.0)
    use_bary = method == "barycentric" or (method == "auto" and _is_gauss_lobatto(eta_s))
    m = _barycentric_matrix(eta_s, eta_t) if use_bary else _cubic_matrix(eta_s, eta_t)
    # drop the columns of the added zero wall values
    return m[:, (0 if on_lo else 1) : m.shape[1] - (0 if on_hi else 1)]


def interp_y(a: np.ndarray, axis: int, y_in: np.ndarray, ly_in: float, y_out: np.ndarray,
             ly_out: float, method: YMethod = "auto") -> np.ndarray:
    """Interpolate ``a`` along ``axis`` from ``y_in`` to ``y_out`` (see :func:`y_matrix`)."""
    m = y_matrix(y_in, ly_in, y_out, ly_out, method)
    if a.shape[axis] != m.shape[1]:
        raise GridError(f"axis {axis} of the data has {a.shape[axis]} points, source y has {m.shape[1]}")
    out = np.tensordot(m, np.moveaxis(a, axis, 0), axes=(1, 0))
    return np.moveaxis(out, 0, axis)


def tile_factor(l_in: float, l_out: float) -> tuple[int, float]:
    """Number of periodic source copies ``m`` covering ``l_out`` and the stretch ``l_out / (m l_in)``."""
    m = max(1, int(round(l_out / l_in)))
    return m, l_out / (m * l_in)


def resample_periodic(a: np.ndarray, axis: int, n_out: int, l_in: float | None = None,
                      l_out: float | None = None) -> np.ndarray:
    """Fourier resampling of periodic data along ``axis`` onto ``n_out`` points of period ``l_out``.

    Parameters
    ----------
    a : ndarray
        Real data, uniformly sampled over one period ``l_in`` along ``axis`` (point 0 at 0).
    n_out : int
        Number of target points.
    l_in, l_out : float, optional
        Periods; when they differ the source is tiled ``m`` times (:func:`tile_factor`).

    Returns
    -------
    ndarray
        Same shape as ``a`` except ``n_out`` along ``axis``; float64 unless ``a`` is float32.
    """
    from scipy import fft as sfft

    n_in = a.shape[axis]
    if n_in < 1 or n_out < 1:
        raise GridError(f"periodic resampling needs at least 1 point, got {n_in} -> {n_out}")
    m = 1 if l_in is None or l_out is None else tile_factor(l_in, l_out)[0]
    if n_in == n_out and m == 1:
        return np.array(a, copy=True)
    # c_k = X_k / n_in; the source Nyquist term (n_in even) is the cosine c_N cos(N x): half of it
    # belongs to +N. Source wavenumber k lands on m k in the target; the target Nyquist bin holds
    # the sum of the +/- halves, 2 Re(c); what lies beyond is truncated.
    spec = np.moveaxis(sfft.rfft(a, axis=axis, workers=fft_workers()), axis, 0)
    k = np.arange(spec.shape[0])
    w = np.full(k.size, n_out / n_in)
    if n_in % 2 == 0:
        w[-1] *= 0.5
    kt = m * k
    out = np.zeros((n_out // 2 + 1,) + spec.shape[1:], dtype=spec.dtype)
    inner = 2 * kt < n_out
    out[kt[inner]] = spec[k[inner]] * w[inner].reshape((-1,) + (1,) * (spec.ndim - 1))
    edge = np.nonzero(2 * kt == n_out)[0]
    if edge.size:
        out[n_out // 2] = 2.0 * (spec[edge[0]] * w[edge[0]]).real
    del spec
    res = sfft.irfft(np.moveaxis(out, 0, axis), n=n_out, axis=axis, workers=fft_workers())
    return res.astype(np.float32) if a.dtype == np.float32 else res


def slices_to_grid(slices: np.ndarray, y: np.ndarray, ly: float, lz: float, grid: Grid,
                   method: YMethod = "auto") -> np.ndarray:
    """Put y-z slices ``(n, 3, ny_s, nz_s)`` (one per x station) onto the grid's y and z.

    ``lz`` is the slice's spanwise period in the grid's units. Returns ``(3, n, ny, nz)`` float64.
    """
    if slices.ndim != 4 or slices.shape[1] != 3:
        raise GridError(f"slices must have shape (n, 3, ny, nz), got {slices.shape}")
    a = interp_y(np.asarray(slices, dtype=np.float64), 2, y, ly, grid.y, grid.lengths[1], method)
    a = resample_periodic(a, 3, grid.shape[2], lz, grid.lengths[2])  # (n, 3, ny, nz)
    return np.moveaxis(a, 1, 0)


def field_to_grid(field: np.ndarray, y: np.ndarray, lengths: tuple[float, float, float], grid: Grid,
                  method: YMethod = "auto") -> np.ndarray:
    """Put a global field ``(3, nx_s, ny_s, nz_s)`` with source ``y`` and ``lengths`` onto ``grid``."""
    if field.ndim != 4 or field.shape[0] != 3:
        raise GridError(f"field must have shape (3, nx, ny, nz), got {field.shape}")
    lx, ly, lz = (float(v) for v in lengths)
    if not all(math.isfinite(v) and v > 0 for v in (lx, ly, lz)):
        raise GridError(f"source lengths must be positive, got {lengths}")
    a = resample_periodic(np.asarray(field, dtype=np.float64), 1, grid.shape[0], lx, grid.lengths[0])
    a = interp_y(a, 2, y, ly, grid.y, grid.lengths[1], method)
    return resample_periodic(a, 3, grid.shape[2], lz, grid.lengths[2])
