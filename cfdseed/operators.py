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

**Operator sets.** The list above is the ``"central"`` set (2nd-order, the finite-volume and
finite-difference codes' own; the C++ kernels implement it). A grid built with
``operators="spectral"`` (spectral codes such as Dedalus) replaces the x/z differences by exact
Fourier derivatives (the Nyquist mode carries none and is not represented), d/dy by the derivative
of the polynomial interpolant through the grid's y points, the wall values by that interpolant at
``y = 0, ly`` and the bulk weights by its integral (:class:`Column`, :func:`column`,
:func:`wavenumbers`); the divergence is evaluated at every y point. The functions below dispatch on
``grid.operators``.

``tests/test_operators.py`` holds the oracles of these functions and of the C++ kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # grid.py imports this module for its wall facts
    from .grid import Grid

__all__ = [
    "WALL_TOL",
    "OPERATORS",
    "check_operators",
    "Column",
    "column",
    "wavenumbers",
    "barycentric_weights",
    "interpolation_matrix",
    "differentiation_matrix",
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
#: The operator sets a grid can name (module docstring).
OPERATORS = ("central", "spectral")
#: Largest condition number of the Chebyshev-Vandermonde matrix of y for spectral operators: beyond
#: it the polynomial interpolant through the points is meaningless (e.g. many uniform points).
SPECTRAL_COND_MAX = 1e4


def check_operators(name: object) -> str:
    """``name`` if it is one of :data:`OPERATORS`, else a ``ValueError`` listing them."""
    if not isinstance(name, str) or name not in OPERATORS:
        raise ValueError(f"operators must be one of {', '.join(OPERATORS)}, got {name!r}")
    return name


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
    """The y rows where d/dy and the divergence are evaluated: every row but wall points (central),
    every row (spectral)."""
    return column(grid).rows


# ---------------------------------------------------------------------------------------------
# operator sets: the wall-normal column operators and the x/z wavenumbers
# ---------------------------------------------------------------------------------------------
def barycentric_weights(nodes: np.ndarray) -> np.ndarray:
    """Barycentric weights ``1 / prod_{k != j} (x_j - x_k)`` of distinct ``nodes``, scaled to max |w| = 1.

    Computed in logarithms, so many nodes neither overflow nor underflow.
    """
    x = np.asarray(nodes, dtype=np.float64)
    diff = x[:, None] - x[None, :]
    np.fill_diagonal(diff, 1.0)
    logw = -np.log(np.abs(diff)).sum(axis=1)
    sign = np.prod(np.sign(diff), axis=1)
    return sign * np.exp(logw - logw.max())


def interpolation_matrix(nodes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Matrix ``(len(points), len(nodes))`` evaluating the polynomial interpolant through ``nodes``
    at ``points`` (barycentric formula; a point on a node gets that node's value exactly)."""
    x = np.asarray(nodes, dtype=np.float64)
    p = np.atleast_1d(np.asarray(points, dtype=np.float64))
    w = barycentric_weights(x)
    out = np.zeros((p.size, x.size))
    for i, pt in enumerate(p):
        d = pt - x
        hit = np.flatnonzero(d == 0.0)
        if hit.size:
            out[i, hit[0]] = 1.0
            continue
        c = w / d
        out[i] = c / c.sum()
    return out


def differentiation_matrix(nodes: np.ndarray) -> np.ndarray:
    """Matrix ``(n, n)``: the derivative of the polynomial interpolant through ``nodes``, at the nodes.

    ``D_ij = (w_j / w_i) / (x_i - x_j)`` off the diagonal, ``D_ii = -sum_{j != i} D_ij`` (exact
    for constants), ``w`` the barycentric weights.
    """
    x = np.asarray(nodes, dtype=np.float64)
    w = barycentric_weights(x)
    diff = x[:, None] - x[None, :]
    np.fill_diagonal(diff, 1.0)
    d = (w[None, :] / w[:, None]) / diff
    np.fill_diagonal(d, 0.0)
    np.fill_diagonal(d, -d.sum(axis=1))
    return d


def _interpolatory_quadrature(nodes: np.ndarray, a: float, b: float) -> np.ndarray:
    """Weights ``q`` with ``q @ f`` = the integral over [a, b] of the interpolant through ``(nodes, f)``.

    Raises
    ------
    GridError
        The nodes are unfit for polynomial interpolation (:data:`SPECTRAL_COND_MAX`).
    """
    from .errors import GridError

    t = (2.0 * np.asarray(nodes, dtype=np.float64) - (a + b)) / (b - a)
    n = t.size
    v = np.polynomial.chebyshev.chebvander(t, n - 1)  # (n, n): T_j(t_i)
    cond = np.linalg.cond(v)
    if not cond <= SPECTRAL_COND_MAX:
        raise GridError(f"spectral operators need y points fit for polynomial interpolation (Chebyshev or "
                        f"Gauss-type); these {n} points give a Chebyshev-Vandermonde condition number "
                        f"{cond:.3g} > {SPECTRAL_COND_MAX:g}: use operators='central'")
    j = np.arange(n)
    ints = np.where(j % 2 == 0, 2.0 / (1.0 - np.where(j == 1, 0, j) ** 2), 0.0)  # integral of T_j on [-1, 1]
    return 0.5 * (b - a) * np.linalg.solve(v.T, ints)


@dataclass(frozen=True)
class Column:
    """The wall-normal operators of one grid under one operator set, as matrices on a y column.

    Attributes
    ----------
    kind : str
        ``"central"`` or ``"spectral"``.
    dy : ndarray (ny, ny)
        d/dy of a column (velocity zero at virtual wall points); meaningful on ``rows``.
    rows : slice
        The rows where d/dy and the divergence are evaluated.
    walls : ndarray (2, ny)
        The wall values at ``y = 0`` and ``y = ly`` as functionals of the column.
    bulk : ndarray (ny,)
        Bulk velocity = ``bulk @ (plane-averaged u)``.
    """

    kind: str
    dy: np.ndarray
    rows: slice
    walls: np.ndarray
    bulk: np.ndarray


def column(grid: Grid) -> Column:
    """The :class:`Column` operators of ``grid`` under ``grid.operators`` (cached per y).

    Raises
    ------
    GridError
        Spectral operators on y points unfit for polynomial interpolation.
    """
    y = np.ascontiguousarray(grid.y, dtype=np.float64)
    return _column(grid.operators, y.tobytes(), float(grid.lengths[1]))


@lru_cache(maxsize=32)
def _column(kind: str, y_bytes: bytes, ly: float) -> Column:
    y = np.frombuffer(y_bytes, dtype=np.float64)
    ny = y.size
    lo, hi = wall_points(y, ly)
    if kind == "spectral":
        dy = differentiation_matrix(y)
        walls = interpolation_matrix(y, [0.0, ly])
        if lo:
            walls[0] = np.eye(ny)[0]
        if hi:
            walls[1] = np.eye(ny)[-1]
        col = Column(kind, dy, slice(0, ny), walls, _interpolatory_quadrature(y, 0.0, ly) / ly)
    else:
        ye = extend_y(y, ly)
        cm, c0, cp = dy_stencil(ye)
        dy = np.zeros((ny, ny))
        j0 = 0 if lo else 1  # index in ye of the grid's first point
        for k in range(ye.size - 2):  # interior point k + 1 of ye is grid row k + 1 - j0
            r = k + 1 - j0
            for off, c in ((-1, cm[k]), (0, c0[k]), (1, cp[k])):
                if 0 <= r + off < ny:
                    dy[r, r + off] = c
        walls = np.zeros((2, ny))
        walls[0, 0] = walls[1, -1] = 1.0
        if not lo:
            t = -y[0] / (y[1] - y[0])
            walls[0, :2] = (1.0 - t, t)
        if not hi:
            t = (ly - y[-1]) / (y[-2] - y[-1])
            walls[1, -2:] = (t, 1.0 - t)
        wts = np.diff(ye)
        q = np.zeros(ye.size)
        q[:-1] += 0.5 * wts
        q[1:] += 0.5 * wts
        col = Column(kind, dy, slice(1 if lo else 0, ny - 1 if hi else ny), walls, q[j0 : j0 + ny] / ly)
    for a in (col.dy, col.walls, col.bulk):
        a.setflags(write=False)
    return col


def wavenumbers(n: int, length: float, kind: str, rfft: bool = False) -> np.ndarray:
    """Multipliers ``k`` with d/dx = ``i k`` on the DFT of ``n`` periodic points over ``length``.

    ``"central"``: the modified wavenumbers ``sin(2 pi m / n) / dx`` of the central difference;
    ``"spectral"``: ``2 pi m / length``. The Nyquist mode (even ``n``) and the mean get 0 in both
    sets (neither derivative sees them). Order of ``np.fft.fftfreq`` (``rfft=True``: of ``rfftfreq``).
    """
    m = np.fft.rfftfreq(n, 1.0 / n) if rfft else np.fft.fftfreq(n, 1.0 / n)
    if kind == "spectral":
        k = 2.0 * np.pi * m / length
    else:
        k = np.sin(2.0 * np.pi * m / n) * (n / length)
    if n % 2 == 0:
        k[np.abs(m) == n // 2] = 0.0
    k[np.abs(k) < 1e-12 * n / length] = 0.0
    return k


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
    """Discrete divergence of a global field at the checked rows, under ``grid.operators``.

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
    nx, _, nz = grid.shape
    lx, _, lz = grid.lengths
    xs = slice(0, nx) if xs is None else xs
    if grid.operators == "spectral":
        return _spectral_divergence(f, grid)[xs]
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


def _fourier_derivative(a: np.ndarray, axis: int, length: float) -> np.ndarray:
    """Exact Fourier derivative of periodic ``a`` along ``axis`` (Nyquist mode dropped)."""
    n = a.shape[axis]
    k = wavenumbers(n, length, "spectral", rfft=True)
    shape = [1] * a.ndim
    shape[axis] = k.size
    return np.fft.irfft(np.fft.rfft(a, axis=axis) * (1j * k).reshape(shape), n=n, axis=axis)


def _spectral_divergence(f: np.ndarray, grid: Grid) -> np.ndarray:
    """Divergence ``(nx, ny, nz)`` of a global field under the spectral operators."""
    lx, _, lz = grid.lengths
    d = np.matmul(column(grid).dy, np.asarray(f[1], dtype=np.float64))  # (nx, ny, nz): d/dy per x
    d += _fourier_derivative(np.asarray(f[0], dtype=np.float64), 0, lx)
    d += _fourier_derivative(np.asarray(f[2], dtype=np.float64), 2, lz)
    return d


# ---------------------------------------------------------------------------------------------
# bulk velocity
# ---------------------------------------------------------------------------------------------
def trapezoid_weights(grid: Grid) -> np.ndarray:
    """Weights ``(ny,)`` with bulk velocity = weights @ (plane-averaged u).

    Central: the trapezoid over the extended y (zero wall values appended where no point lies on a
    wall), over ly; spectral: the integral of the y-interpolant, over ly.
    """
    return column(grid).bulk.copy()


def bulk_weights(grid: Grid) -> np.ndarray:
    """Weights ``(ny,)`` with bulk velocity = sum_j w_j * sum_{x,z} u[:, j, :]
    (:func:`trapezoid_weights` over the nx * nz points of a plane)."""
    return column(grid).bulk / (grid.shape[0] * grid.shape[2])


def bulk_velocity(f: np.ndarray, grid: Grid) -> float:
    """Bulk velocity of a global field ``(3, nx, ny, nz)``: :func:`trapezoid_weights` @ plane-averaged u."""
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
    """Wall values of every component of a global field: ``(3, nx, nz)`` at the low and high wall
    (central: :func:`wall_extrapolation`; spectral: the y-interpolant at the walls)."""
    if grid.operators == "spectral":
        e = column(grid).walls
        # a tensordot copies f, but its summation order is part of the campaign's registered ICs: a
        # row-by-row sum (no copy) moved one by 1.2e-4 through the stress calibration's passes
        return tuple(np.tensordot(f, e[i], axes=([2], [0])) for i in (0, 1))  # type: ignore[return-value]
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
    if grid.operators == "spectral":
        step = grid.shape[0]  # the x derivative needs every x at once
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
