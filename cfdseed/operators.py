"""The channel's discrete operators (contract 1), pure numpy over a :class:`~cfdseed.grid.Grid`.

This module is the one home of what the checks (:mod:`cfdseed.constraints`, whose C++ kernels in
:mod:`cfdseed._core` apply the same operators to one rank's block), the enforcement
(:mod:`cfdseed.enforce`), the sources and the interpolation must agree on:

- **walls**: a y point within ``WALL_TOL * ly`` of a wall lies on it (:func:`wall_points`; a grid
  exposes it as ``Grid.walls``, ``Grid.has_walls``, ``Grid.cell_centred``). Either wall may lack
  a point independently of the other.
- **y extension**: y with zero-velocity virtual points on the walls that carry no grid point
  (:func:`extend_y`, :func:`y_ext`).
- **d/dx, d/dz**: periodic 2nd-order central differences (:func:`d_periodic`).
- **d/dy**: the non-uniform 3-point central formula at the interior points of the extended y
  (:func:`dy_stencil`, :func:`d_dy`), i.e. at every point but the wall points
  (:func:`checked_rows`).
- **divergence** at the checked rows (:func:`divergence`).
- **bulk velocity**: trapezoid over the extended y of the plane-averaged u, divided by ly
  (:func:`trapezoid_weights`, :func:`bulk_weights`, :func:`bulk_velocity`).
- **wall values**: the value on a wall point, else the linear extrapolation from the two points
  nearest the wall (:func:`wall_extrapolation`, :func:`wall_values`).
- **figures** of a global field: normalised divergence, wall value, bulk velocity, max |u|,
  non-finite count (:func:`field_figures`).

``tests/test_operators.py`` holds the oracles of these functions and of the C++ kernels.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # grid.py imports this module for its wall facts
    from .grid import Grid

__all__ = [
    "WALL_TOL",
    "wall_points",
    "extend_y",
    "y_ext",
    "dy_stencil",
    "d_dy",
    "d_periodic",
    "checked_rows",
    "divergence",
    "trapezoid_weights",
    "bulk_weights",
    "bulk_velocity",
    "wall_extrapolation",
    "wall_values",
    "field_figures",
]

#: Relative to ly: a y point this close to a wall lies on it.
WALL_TOL = 1e-12


# ---------------------------------------------------------------------------------------------
# walls and the wall-normal coordinate
# ---------------------------------------------------------------------------------------------
def wall_points(y: np.ndarray, ly: float) -> tuple[bool, bool]:
    """Whether the first / last of the increasing points ``y`` lies on the wall at 0 / at ``ly``.

    Parameters
    ----------
    y : ndarray (ny,)
        Strictly increasing wall-normal coordinates inside ``[0, ly]``.
    ly : float
        Channel height.

    Returns
    -------
    (bool, bool)
        Lower wall, upper wall (within ``WALL_TOL * ly``).
    """
    tol = WALL_TOL * ly
    return bool(y[0] <= tol), bool(y[-1] >= ly - tol)


def extend_y(y: np.ndarray, ly: float) -> np.ndarray:
    """``y`` with the virtual wall points ``0`` / ``ly`` added where no point lies on a wall."""
    lo, hi = wall_points(y, ly)
    return np.concatenate([[] if lo else [0.0], y, [] if hi else [ly]])


def y_ext(grid: Grid) -> np.ndarray:
    """The grid's y with its virtual wall points (:func:`extend_y`)."""
    return extend_y(grid.y, grid.lengths[1])


def checked_rows(grid: Grid) -> slice:
    """The y rows where d/dy and the divergence are evaluated: every row but wall points."""
    lo, hi = grid.walls
    return slice(1 if lo else 0, grid.shape[1] - 1 if hi else grid.shape[1])


# ---------------------------------------------------------------------------------------------
# derivatives and divergence
# ---------------------------------------------------------------------------------------------
def dy_stencil(y_ext: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coefficients of the non-uniform 3-point d/dy at the interior points of ``y_ext``.

    Returns
    -------
    cm, c0, cp : ndarray (len(y_ext) - 2,)
        Weights of f_{j-1}, f_j and f_{j+1}:
        ``f'_j = [h-^2 f_{j+1} - h+^2 f_{j-1} + (h+^2 - h-^2) f_j] / (h+ h- (h+ + h-))``.
    """
    hm = y_ext[1:-1] - y_ext[:-2]
    hp = y_ext[2:] - y_ext[1:-1]
    den = hp * hm * (hp + hm)
    return -hp * hp / den, (hp * hp - hm * hm) / den, hm * hm / den


def d_dy(f_ext: np.ndarray, y_ext: np.ndarray) -> np.ndarray:
    """d/dy along axis 1 at the interior points of ``y_ext`` (:func:`dy_stencil`).

    Parameters
    ----------
    f_ext : ndarray (n0, len(y_ext), n2)
        Values at ``y_ext``, virtual wall values (zero velocity) included.
    y_ext : ndarray
        Strictly increasing y.

    Returns
    -------
    ndarray (n0, len(y_ext) - 2, n2), float64
    """
    cm, c0, cp = (c[None, :, None] for c in dy_stencil(y_ext))
    d = cp * f_ext[:, 2:]
    d += cm * f_ext[:, :-2]
    d += c0 * f_ext[:, 1:-1]
    return d


def d_periodic(f: np.ndarray, axis: int, delta: float) -> np.ndarray:
    """Periodic central difference of ``f`` along ``axis`` with spacing ``delta`` (d/dx, d/dz)."""
    return (np.roll(f, -1, axis) - np.roll(f, 1, axis)) / (2.0 * delta)


def divergence(f: np.ndarray, grid: Grid, xs: slice | None = None) -> np.ndarray:
    """Discrete divergence of a global field at the checked rows.

    Parameters
    ----------
    f : ndarray (3, nx, ny, nz)
        Global velocity (u, v, w).
    grid : Grid
    xs : slice, optional
        Restrict to a block of x indices (its periodic neighbours are read from ``f``).

    Returns
    -------
    ndarray (len(xs), len(checked_rows(grid)), nz), float64
    """
    nx, ny, nz = grid.shape
    lx, _, lz = grid.lengths
    xs = slice(0, nx) if xs is None else xs
    ix = np.arange(xs.start, xs.stop)
    r = checked_rows(grid)
    u, v, w = f[0], f[1, xs], f[2, xs]
    lo, hi = grid.walls
    vz = np.zeros((v.shape[0], 1, nz))
    ve = np.concatenate([v] if lo else [vz, v], axis=1)
    ve = ve if hi else np.concatenate([ve, vz], axis=1)
    d = d_dy(ve, y_ext(grid))
    d += (u[(ix + 1) % nx, r] - u[(ix - 1) % nx, r]) * (0.5 * nx / lx)
    wr = w[:, r]
    d[:, :, 1:-1] += (wr[:, :, 2:] - wr[:, :, :-2]) * (0.5 * nz / lz)
    d[:, :, 0] += (wr[:, :, 1 % nz] - wr[:, :, -1]) * (0.5 * nz / lz)
    if nz > 1:
        d[:, :, -1] += (wr[:, :, 0] - wr[:, :, -2]) * (0.5 * nz / lz)
    return d


# ---------------------------------------------------------------------------------------------
# bulk velocity
# ---------------------------------------------------------------------------------------------
def _trapezoid(grid: Grid) -> np.ndarray:
    """Trapezoid weights ``(ny,)`` over the extended y, the virtual wall points' weights dropped."""
    ye = y_ext(grid)
    h = np.diff(ye)
    wts = np.zeros(ye.size)
    wts[:-1] += 0.5 * h
    wts[1:] += 0.5 * h
    lo, hi = grid.walls
    return wts[(0 if lo else 1) : wts.size - (0 if hi else 1)]


def trapezoid_weights(grid: Grid) -> np.ndarray:
    """Weights ``(ny,)`` with bulk velocity = weights @ (plane-averaged u): trapezoid over ly."""
    return _trapezoid(grid) / grid.lengths[1]


def bulk_weights(grid: Grid) -> np.ndarray:
    """Weights ``(ny,)`` with bulk velocity = sum_j w_j * sum_{x,z} u[:, j, :].

    The trapezoid over y on [0, ly] (zero wall values appended where no point lies on a wall),
    divided by ly and by the nx * nz points of a plane.
    """
    return _trapezoid(grid) / (grid.lengths[1] * grid.shape[0] * grid.shape[2])


def bulk_velocity(f: np.ndarray, grid: Grid) -> float:
    """Bulk velocity of a global field ``(3, nx, ny, nz)``: trapezoid of the plane-averaged u, over ly."""
    prof = np.asarray(f[0], dtype=np.float64).mean(axis=(0, 2))
    return float(prof @ trapezoid_weights(grid))


# ---------------------------------------------------------------------------------------------
# wall values
# ---------------------------------------------------------------------------------------------
def wall_extrapolation(grid: Grid) -> tuple[float, float]:
    """Parameters ``t`` of the wall value ``a + t (b - a)`` at the low and at the high wall.

    ``a`` is the wall-nearest plane, ``b`` the next one; ``t = 0`` where a point lies on the wall,
    else the linear extrapolation to the wall.
    """
    y, ly = grid.y, grid.lengths[1]
    lo, hi = grid.walls
    return (0.0 if lo else -y[0] / (y[1] - y[0])), (0.0 if hi else (ly - y[-1]) / (y[-2] - y[-1]))


def wall_values(f: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Wall values of every component of a global field: ``(3, nx, nz)`` at the low and high wall."""
    tl, th = wall_extrapolation(grid)
    lo = f[:, :, 0] + tl * (f[:, :, 1] - f[:, :, 0])
    hi = f[:, :, -1] + th * (f[:, :, -2] - f[:, :, -1])
    return lo, hi


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def field_figures(f: np.ndarray, grid: Grid) -> dict[str, float]:
    """Figures of a global field ``(3, nx, ny, nz)``.

    Returns
    -------
    dict
        ``div_max``, ``div_rms`` (divergence / (U_ref / h), h = ly / 2, U_ref = |bulk| else
        max |u_i| else 1), ``wall_max`` (max |wall value|), ``bulk``, ``max_abs``, ``nonfinite``;
        only ``nonfinite`` when the field has NaN/Inf values.
    """
    lo_v, hi_v = (float(f.min()), float(f.max())) if np.size(f) else (0.0, 0.0)
    if not (math.isfinite(lo_v) and math.isfinite(hi_v)):  # NaN/Inf propagate through min/max
        return {"nonfinite": float(np.size(f) - np.count_nonzero(np.isfinite(f)))}
    ub = bulk_velocity(f, grid)
    umax = max(hi_v, -lo_v)
    uref = abs(ub) or umax or 1.0
    dmax, dss, count = 0.0, 0.0, 0
    step = max(1, (1 << 22) // max(1, grid.shape[1] * grid.shape[2]))  # x blocks of ~4M points
    for x0 in range(0, grid.shape[0], step):
        d = divergence(f, grid, slice(x0, min(x0 + step, grid.shape[0]))).ravel()
        if d.size:
            dmax = max(dmax, float(d.max()), -float(d.min()))
            dss += float(np.dot(d, d))
            count += d.size
    scale = 0.5 * grid.lengths[1] / uref
    lo, hi = wall_values(f, grid)
    return {
        "div_max": dmax * scale,
        "div_rms": math.sqrt(dss / count) * scale if count else 0.0,
        "wall_max": float(max(np.abs(lo).max(), np.abs(hi).max())),
        "bulk": ub,
        "max_abs": umax,
        "nonfinite": 0.0,
    }
