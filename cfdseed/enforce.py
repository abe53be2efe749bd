"""Constraint enforcement on a global channel field: no-slip, divergence-free projection, stress
calibration, bulk velocity.

:func:`enforce` turns any field ``(3, nx, ny, nz)`` on a :class:`~cfdseed.grid.Grid` into one that
passes the checks of :mod:`cfdseed.constraints` (the contract-1 operators of
:mod:`cfdseed.operators`, under the grid's operator set), step by step, each step switchable, and
reports the figures (:func:`~cfdseed.operators.field_figures`) before and after
(:class:`EnforceReport`):

1. **finite**: non-finite input is an error (nothing can repair it meaningfully).
2. **no-slip**: the wall value of every component (grids with wall points: the value on the wall;
   otherwise as the check measures it: under central operators the value linearly extrapolated
   from the two planes nearest the wall, under spectral ones the y interpolant's value on the wall)
   is removed by subtracting smooth blending functions
   ``b_lo(y) = (1 - y/ly) exp(-(y/delta)^2)`` (and its mirror) times the wall error, with
   ``delta = blend * ly / 2`` but never under 3 first cells. A field that is nearly no-slip changes by
   no more than its wall error, and no near-wall jump appears. Wall points become exact zeros.
3. **divergence-free projection** on the grid's own discretisation: the x and z derivatives become
   multiplications by the operator set's wavenumbers (:func:`~cfdseed.operators.wavenumbers`;
   central: the modified ``sin(k dx)/dx``, spectral: exact, the Nyquist modes dropped); per Fourier
   mode (kx, kz) the divergence at the checked rows is removed by the orthogonal projection onto the
   discretely solenoidal fields that keep the no-slip condition (wall points stay 0; without wall
   points the end values stay tied to the others so the wall value stays 0). The norm is the
   y-quadrature-weighted one raised near the walls by ``1 + (WALL_WEIGHT h / d)^2``
   (:data:`WALL_WEIGHT`, ``d`` the wall distance), so the correction vanishes like ``d^2`` at the
   wall instead of leaving a slip layer. Under central operators this is one symmetric banded
   (pentadiagonal with wall points) solve per mode, done as a batched LDL^T over blocks of modes (a
   Python loop over y only): total cost O(N log N). Spectral d/dy is dense, and so are its
   matrices: they are diagonalised once per projection and every mode is solved by dense
   products. The <= 4 modes with zero wavenumber (mean, Nyquist) project v alone through an SVD.
   A discretely solenoidal field is a fixed point; after it the divergence measured by the check
   is at round-off (a second pass is made if not, which only wildly uneven custom y grids need).
4. **no mean cross-flow**: the plane means V(y) and W(y) are subtracted (zero in a channel in
   equilibrium; a synthetic field's mean spanwise flow would otherwise decay only by wall friction,
   over ~U_b h/u_tau^2). Plane means have no x/z derivative and vanish on the walls (or, extrapolated
   as the check does, at them), so divergence and no-slip are unchanged.
5. **stress calibration** (``stresses``, off by default): the mean profile and the one-point
   Reynolds stresses are brought to target profiles inside a solenoidal construction
   (:mod:`cfdseed.calibrate`), with the wall values and the projection restored after each pass
   where the rebuilt field needs it (all but central operators with points on both walls).
6. **bulk velocity**: the plane-averaged streamwise profile is scaled so that the operator set's
   bulk velocity (contract 1: the trapezoid under central operators, the y interpolant's integral
   under spectral ones) equals the target exactly (neither divergence nor no-slip change; a field
   without mean flow gets a laminar profile instead).
7. **bounds**: the result must be finite with ``max |u| <= max_ratio * |U_b|``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._collective import run_agreed
from ._memory import discard
from ._threads import fft_workers
from .calibrate import DEFAULT_TOL, CalibrationInfo, calibrate_spectrum
from .targets import Stresses
from .errors import GridError, SourceError
from .grid import Grid
from .operators import (
    bulk_velocity,
    column,
    divergence,
    field_figures,
    trapezoid_weights,
    wall_values,
    wavenumbers,
)

# field_figures, divergence, bulk_velocity and wall_values are re-exported: public here before
# cfdseed.operators became their home
__all__ = ["enforce", "EnforceReport", "field_figures", "divergence", "bulk_velocity",
           "wall_values", "require_grid", "DEFAULT_BLEND", "DEFAULT_MAX_RATIO"]

log = logging.getLogger(__name__)

#: Default blending width of the no-slip correction, as a fraction of the half-height h = ly/2.
DEFAULT_BLEND = 0.1
#: Default bound on max |u| in multiples of the bulk velocity.
DEFAULT_MAX_RATIO = 10.0
_REFINE_TOL = 1e-11  # normalised divergence above which the projection is repeated
_REFINE_PASSES = 2
_MODE_CHUNK = 1 << 12  # (kx, kz) modes per batched solve: small temporaries stay in cache (2.5x faster than 1 << 16)
#: Wall distance, in half-heights, inside which the projection's norm makes corrections expensive:
#: weights x (1 + (WALL_WEIGHT h / d)^2), so the correction vanishes like d^2 at the wall instead
#: of leaving a slip layer (GAN field, 64x65x48 Chebyshev, Re_tau 180: w'+ at y+ = 0.2 / 1.9 was
#: 0.32 / 0.50 with plain quadrature weights, 0.045 / 0.265 with these, 0.045 / 0.265 before the
#: projection; Lee & Moser 0.04 / 0.32). Results barely change between 0.05 and 0.2.
WALL_WEIGHT = 0.1
_BANDED_MAX = 8  # projection matrices with a wider band use the dense (eigen) solve


def require_grid(grid: Grid) -> None:
    """Raise :class:`GridError` unless the grid can carry an enforced field (nx, nz >= 2, ny >= 3 or 4)."""
    if not isinstance(grid, Grid):
        raise GridError(f"grid must be a cfdseed.Grid, got {type(grid).__name__}")
    nx, ny, nz = grid.shape
    # the no-slip condition pins the wall points (or, without wall points, the wall-nearest
    # points via the extrapolation): a divergence-free field needs at least 2 free values per column
    ny_min = 3 if grid.has_walls else 4
    if nx < 2 or nz < 2 or ny < ny_min:
        raise GridError(
            f"grid shape {grid.shape} is too small for an initial condition: need nx >= 2, nz >= 2 and "
            f"ny >= {ny_min} (3 with points on both walls, else 4)"
        )


@dataclass
class EnforceReport:
    """Figures (:func:`field_figures`) before and after enforcement, and the steps applied."""

    steps: list[str] = field(default_factory=list)
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  #: seconds per step
    calibration: CalibrationInfo | None = None  #: stress calibration: passes, errors before/after

    def to_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "before": dict(self.before), "after": dict(self.after),
                "timings": dict(self.timings),
                "calibration": None if self.calibration is None else self.calibration.to_dict()}

    def __str__(self) -> str:
        keys = [k for k in ("div_max", "div_rms", "wall_max", "bulk", "max_abs", "nonfinite") if k in self.after]
        lines = [f"enforcement: {', '.join(self.steps) or 'none'}", f"  {'figure':<10} {'before':>12} {'after':>12}"]
        for k in keys:
            b = self.before.get(k, float("nan"))
            lines.append(f"  {k:<10} {b:>12.4e} {self.after[k]:>12.4e}")
        cal = self.calibration
        if cal is not None:
            lines.append(f"  stress calibration: {cal.iterations} pass(es), {cal.seconds:.2f} s; largest error "
                         "relative to the target profile's maximum:")
            for k in cal.after:
                lines.append(f"  {k:<10} {cal.before.get(k, float('nan')):>12.4e} {cal.after[k]:>12.4e}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# no-slip
# ---------------------------------------------------------------------------------------------
def _blend_functions(grid: Grid, width: float) -> tuple[np.ndarray, np.ndarray]:
    y, ly = grid.y, grid.lengths[1]
    # never narrower than a few first cells, or the blend would itself be a near-wall jump
    d = max(width * 0.5 * ly, 3.0 * min(y[1] - y[0], y[-1] - y[-2]))
    b_lo = (1.0 - y / ly) * np.exp(-((y / d) ** 2))
    b_hi = (y / ly) * np.exp(-(((ly - y) / d) ** 2))
    return b_lo, b_hi


def _no_slip(f: np.ndarray, grid: Grid, width: float) -> None:
    """Remove the wall values in place with smooth blends (exact for the check's wall value)."""
    if not f.size:  # a rank holding no x planes
        return
    b_lo, b_hi = _blend_functions(grid, width)
    walls = column(grid).walls  # (2, ny): the wall values as functionals of a column
    # wall values of the blends: the 2x2 system couples the walls (exactly, whatever the grid)
    e = walls @ np.stack([b_lo, b_hi], axis=1)
    lo, hi = wall_values(f, grid)  # (3, nx, nz) each
    inv = np.linalg.inv(e)
    c_lo = inv[0, 0] * lo + inv[0, 1] * hi
    c_hi = inv[1, 0] * lo + inv[1, 1] * hi
    for j in range(grid.shape[1]):  # row by row: no field-sized temporaries
        if b_lo[j] != 0.0 or b_hi[j] != 0.0:
            f[:, :, j] -= b_lo[j] * c_lo + b_hi[j] * c_hi
    lo_wall, hi_wall = grid.walls
    if lo_wall:
        f[:, :, 0] = 0.0  # exact zeros (the blend leaves round-off)
    if hi_wall:
        f[:, :, -1] = 0.0


# ---------------------------------------------------------------------------------------------
# projection
# ---------------------------------------------------------------------------------------------
class _Projector:
    """Per-grid matrices of the projection (small, ny x ny), built once.

    Free values ``g = f[1:-1]`` of a column; the two end values follow from them so that the wall
    values (the operator set's wall functionals) are zero: ``f = B g``. The correction is
    ``X A^T lam`` with ``X = B W^-1 B^T`` (``W``: quadrature weights, raised near the walls by
    :data:`WALL_WEIGHT`) and ``A`` the operator set's d/dy; per mode ``(k2 M1 + M2) lam = div``.
    """

    def __init__(self, grid: Grid) -> None:
        ny = grid.shape[1]
        y, ly = grid.y, grid.lengths[1]
        col = column(grid)
        r = np.arange(ny)[col.rows]
        a = np.array(col.dy)  # d/dy on the full column, wall/virtual values zero
        b = np.zeros((ny, ny - 2))
        b[1:-1] = np.eye(ny - 2)
        ends = col.walls[:, [0, -1]]  # (2, 2): the end values' share of the wall values
        b[[0, -1]] = -np.linalg.solve(ends, col.walls[:, 1:-1])  # E B = 0
        b[np.abs(b) < 1e-15 * np.abs(b).max()] = 0.0  # exact zeros keep the central band narrow
        d = np.minimum(y[1:-1], ly - y[1:-1])
        wq = 0.5 * (y[2:] - y[:-2]) * (1.0 + (WALL_WEIGHT * 0.5 * ly / d) ** 2)
        x = b @ np.diag(1.0 / wq) @ b.T  # (ny, ny): correction = X (adjoint of the divergence)
        self.rows = r
        self.a = a
        self.x = x
        self.xat = x @ a.T
        self.m1 = x[np.ix_(r, r)]  # M(k2) = k2 M1 + M2 on the checked rows
        self.m2 = (a @ x @ a.T)[np.ix_(r, r)]
        self.p = max(_bandwidth(self.m1), _bandwidth(self.m2))
        self.b, self.wq = b, wq
        self._null: np.ndarray | None = None
        self._eig: tuple[np.ndarray, np.ndarray, float] | None = None

    def apply(self, m: np.ndarray, vec: np.ndarray) -> np.ndarray:
        """``m @ vec`` along the first axis: by diagonals for banded ``m``, else a dense product."""
        if _bandwidth(m) <= _BANDED_MAX:
            return _band_apply(m, vec)
        return np.tensordot(m, vec, axes=(1, 0))

    def solve(self, k2: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """Solve ``(k2 M1 + M2) lam = rhs`` for modes with k2 > 0: ``rhs`` (nrows, *modes)."""
        if self.p <= _BANDED_MAX:
            return _banded_ldl_solve(self.m1, self.m2, self.p, k2, rhs)
        if self._eig is None:
            # one simultaneous diagonalisation: S = kappa M1 + M2 is SPD; with T = S^-1/2 and
            # T M1 T = Q diag(l) Q^T, (k2 M1 + M2)^-1 = P diag(1 / (1 + (k2 - kappa) l)) P^T, P = T Q
            kappa = float(np.trace(self.m2) / np.trace(self.m1))
            sv, sq = np.linalg.eigh(kappa * self.m1 + self.m2)
            if not sv.min() > 0:
                raise SourceError("projection matrix is not positive definite (degenerate wall-normal grid?)")
            t = (sq / np.sqrt(sv)) @ sq.T
            lam, q = np.linalg.eigh(t @ self.m1 @ t)
            self._eig = (t @ q, lam, kappa)
        pm, lam, kappa = self._eig
        # k2 l + (1 - kappa l): both terms are eigenvalues of PSD matrices (T M1 T, T M2 T / kappa)
        mu = np.clip(1.0 - kappa * lam, 0.0, None)
        scale = 1.0 / (np.multiply.outer(np.clip(lam, 0.0, None), k2) + mu[(slice(None),) + (None,) * k2.ndim])
        return np.tensordot(pm, scale * np.tensordot(pm.T, rhs, axes=(1, 0)), axes=(1, 0))

    def project_singular(self, v: np.ndarray) -> np.ndarray:
        """Project the v column of modes without x/z derivative (``v`` (ny, nq)) onto ``R A v = 0``.

        Weighted least change via the SVD of ``C = R A B W^-1/2`` (not the squared matrix, so
        the round-off follows cond(C)): ``h' = h - V V^H h`` with ``h = W^1/2 g``.
        """
        if self._null is None:
            c = self.a[self.rows] @ self.b @ np.diag(self.wq ** -0.5)
            _, s, vh = np.linalg.svd(c)
            keep = s > s.max() * 1e-13 if s.size else s > 0
            self._null = vh[keep]  # (rank, ny-2): rows span the range of C^T
        g = v[1:-1] * np.sqrt(self.wq)[:, None]
        dg = self._null.T @ (self._null @ g)
        return v - self.b @ (dg / np.sqrt(self.wq)[:, None])


def _bandwidth(m: np.ndarray) -> int:
    nz = np.nonzero(m)
    return int(np.abs(nz[0] - nz[1]).max()) if nz[0].size else 0


def _band_apply(m: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """``m @ vec`` for a banded square matrix and ``vec`` (n, *modes), via its non-zero diagonals."""
    out = np.zeros(vec.shape, dtype=np.result_type(m, vec))
    p = _bandwidth(m)
    extra = (None,) * (vec.ndim - 1)
    for d in range(-p, p + 1):
        diag = np.diagonal(m, d)
        if not diag.any():
            continue
        col = diag[(slice(None), *extra)]
        if d >= 0:
            out[: diag.size] += col * vec[d : d + diag.size]
        else:
            out[-d : -d + diag.size] += col * vec[: diag.size]
    return out


def _banded_ldl_solve(m1: np.ndarray, m2: np.ndarray, p: int, k2: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Batched LDL^T solve of the SPD banded systems ``(k2[q] M1 + M2) x[:, q] = rhs[:, q]``.

    ``k2`` has the shape of the modes, ``rhs`` ``(n, *modes)``. The loop runs over rows (and the
    band), every operation is vectorised over the modes q.
    """
    n = m1.shape[0]

    def entry(i: int, j: int) -> np.ndarray:
        return k2 * m1[i, j] + m2[i, j]  # (*modes)

    d = np.empty((n, *k2.shape))
    lo = np.zeros((n, p + 1, *k2.shape))  # lo[i, t] = L[i, i - t]
    for j in range(n):
        acc = entry(j, j)
        for t in range(1, min(p, j) + 1):
            acc = acc - lo[j, t] ** 2 * d[j - t]
        d[j] = acc
        for i in range(j + 1, min(n, j + p + 1)):
            s = entry(i, j)
            for t in range(i - j + 1, min(p, i) + 1):  # common columns c = i - t < j
                c = i - t
                s = s - lo[i, t] * lo[j, j - c] * d[c]
            lo[i, i - j] = s / d[j]
    if not np.all(d > 0):
        raise SourceError("projection matrix is not positive definite (degenerate wall-normal grid?)")
    x = rhs.astype(np.complex128, copy=True)
    for i in range(n):
        for t in range(1, min(p, i) + 1):
            x[i] -= lo[i, t] * x[i - t]
    x /= d
    for i in range(n - 1, -1, -1):
        for t in range(1, min(p, n - 1 - i) + 1):
            x[i] -= lo[i + t, t] * x[i + t]
    return x


def _spectrum(f: np.ndarray, grid: Grid) -> np.ndarray:
    """x-FFT of the z-rfft of ``f`` (3, nx, ny, nz): (3, nx, ny, nz // 2 + 1); spectral operators
    drop the Nyquist modes (spectral codes do not represent them)."""
    from scipy import fft as sfft

    nx, _, nz = grid.shape
    spec = sfft.rfft(f, axis=3, workers=fft_workers())  # the contiguous axis first
    spec = sfft.fft(spec, axis=1, workers=fft_workers(), overwrite_x=True)
    if grid.operators == "spectral":
        if nx % 2 == 0:
            spec[:, nx // 2] = 0.0
        if nz % 2 == 0:
            spec[..., nz // 2] = 0.0
    return spec


def _field(spec: np.ndarray, f: np.ndarray, grid: Grid) -> None:
    """Inverse of :func:`_spectrum` into ``f`` (consumes ``spec``)."""
    from scipy import fft as sfft

    spec = sfft.ifft(spec, axis=1, workers=fft_workers(), overwrite_x=True)
    f[...] = sfft.irfft(spec, n=grid.shape[2], axis=3, workers=fft_workers())


def _wavenumbers(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """The operator set's kx (fft order) and kz (rfft order); 0 where the derivative is blind."""
    nx, _, nz = grid.shape
    lx, _, lz = grid.lengths
    return wavenumbers(nx, lx, grid.operators), wavenumbers(nz, lz, grid.operators, rfft=True)


def _project_spectrum(spec: np.ndarray, grid: Grid, proj: _Projector, kz_range: slice | None = None) -> None:
    """Divergence-free projection of a spectrum in place (see module docstring).

    ``spec`` holds every kx and the rfft modes ``kz_range`` of z (default all): the modes are
    independent, so a rank holding a range of kz projects its own (:mod:`cfdseed.pencils`).
    """
    nx, nkz = spec.shape[1], spec.shape[3]
    kx, kz = _wavenumbers(grid)
    kz = kz[kz_range or slice(None)]
    if kz.size != nkz:
        raise ValueError(f"spectrum has {nkz} kz modes, kz_range {kz_range} selects {kz.size}")
    rows = proj.rows
    cx = max(1, _MODE_CHUNK // nkz)
    for x0 in range(0, nx, cx):  # blocks of kx: views, no copies of the spectrum
        xs = slice(x0, min(x0 + cx, nx))
        u, v, w = (np.moveaxis(spec[c, xs], 1, 0) for c in range(3))  # (ny, bx, nkz) views
        ikx, ikz = 1j * kx[xs, None], 1j * kz[None, :]
        k2 = kx[xs, None] ** 2 + kz[None, :] ** 2  # (bx, nkz)
        div = (ikx * u + proj.apply(proj.a, v) + ikz * w)[rows]  # (nrows, bx, nkz)
        reg = k2 > 0
        full = np.zeros(v.shape, dtype=np.complex128)
        full[rows] = proj.solve(np.where(reg, k2, 1.0), div)
        full[:, ~reg] = 0.0  # modes without x/z derivative are handled below
        xl = proj.apply(proj.x, full)
        # the adjoint of i k is -i k, so minus the adjoint correction is + i k X lam
        u += ikx * xl
        v -= proj.apply(proj.xat, full)
        w += ikz * xl
        for i, k in zip(*np.nonzero(~reg)):  # at most 4 modes: mean and Nyquist; only v counts
            v[:, i, k] = proj.project_singular(v[:, i, k][:, None])[:, 0]


def _project(f: np.ndarray, grid: Grid) -> None:
    """Divergence-free projection of a field in place (see module docstring)."""
    spec = _spectrum(f, grid)
    discard(f)  # refilled from the spectrum: the peak holds one of the two
    _project_spectrum(spec, grid, _Projector(grid))
    _field(spec, f, grid)


def _restorer(grid: Grid, kz_range: slice | None = None, comm: Any = None) -> Any:
    """The calibration's restore step for spectra of ``grid`` (the modes ``kz_range`` of z): no-slip
    by the end rows alone (the projection's own embedding: the least change at the wall), then the
    projection, both linear per column, so per mode; None where the rebuilt field needs neither
    (central operators with points on both walls: the v-eta rebuild is solenoidal as it is).
    ``comm``: the kz slabs' ranks, which agree on the projection's errors (a rank may hold no modes,
    or other ones whose solve fails)."""
    if grid.operators == "central" and grid.has_walls:
        return None
    proj = _Projector(grid)
    walls = column(grid).walls
    tie = -np.linalg.solve(walls[:, [0, -1]], walls[:, 1:-1])  # (2, ny - 2): end rows from the others

    def step(s: np.ndarray) -> None:
        for end, weights in ((0, tie[0]), (-1, tie[1])):
            row = np.zeros_like(s[:, :, 0])
            for j in np.flatnonzero(weights):  # row by row: no spectrum-sized temporary
                row += weights[j] * s[:, :, 1 + j]
            s[:, :, end] = row
        if s.shape[3]:  # a rank may hold no kz modes
            _project_spectrum(s, grid, proj, kz_range=kz_range)

    def restore(s: np.ndarray) -> None:
        if comm is None:
            step(s)
        else:
            run_agreed(comm, step, s)
    return restore


def _calibrate(f: np.ndarray, grid: Grid, stresses: Stresses, tol: float) -> CalibrationInfo:
    """Stress calibration in place (:func:`cfdseed.calibrate.calibrate_spectrum`), with the wall
    values and the projection restored after each pass where the rebuilt field needs it."""
    spec = _spectrum(f, grid)
    discard(f)  # refilled from the spectrum
    kx, kz = _wavenumbers(grid)
    info = calibrate_spectrum(spec, grid, stresses, kx, kz, _restorer(grid), tol=tol)
    _field(spec, f, grid)
    return info


# ---------------------------------------------------------------------------------------------
# bulk velocity
# ---------------------------------------------------------------------------------------------
def _set_bulk(f: np.ndarray, grid: Grid, target: float, prof: np.ndarray | None = None) -> None:
    """Scale the mean profile (``prof``: the plane-averaged u, default ``f``'s own) to bulk ``target``."""
    wts = trapezoid_weights(grid)
    prof = f[0].mean(axis=(0, 2)) if prof is None else prof  # (ny,)
    ub = float(prof @ wts)
    if abs(ub) > 1e-3 * abs(target) and ub != 0.0:  # a real mean flow: keep its shape
        f[0] += ((target / ub) - 1.0) * prof[None, :, None]  # scale the mean profile: keeps shape
        return
    # no mean flow worth scaling (|U_b| <= 1e-3 target): add a laminar profile for the difference,
    # no-slip as the check sees it
    y, ly = grid.y, grid.lengths[1]
    phi = y * (ly - y)
    lo, hi = grid.walls
    if grid.operators == "central":  # the linear extrapolation to the walls must give 0
        if not lo:
            phi[0] = phi[1] * y[0] / y[1]
        if not hi:
            phi[-1] = phi[-2] * (ly - y[-1]) / (ly - y[-2])
    f[0] += ((target - ub) / float(phi @ wts)) * phi[None, :, None]


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------
def enforce(
    field: np.ndarray,
    grid: Grid,
    *,
    no_slip: bool = True,
    divergence_free: bool = True,
    bulk: float | None | bool = True,
    bounds: bool = True,
    cross_flow: bool = True,
    stresses: Stresses | None = None,
    calibration_tol: float = DEFAULT_TOL,
    blend: float = DEFAULT_BLEND,
    max_ratio: float = DEFAULT_MAX_RATIO,
    copy: bool = True,
) -> tuple[np.ndarray, EnforceReport]:
    """Make a global field satisfy the channel constraints (each step switchable, all on by default).

    Parameters
    ----------
    field : ndarray (3, nx, ny, nz)
        Global velocity (u, v, w) on ``grid``; not modified unless ``copy=False``.
    grid : Grid
        The solver's grid (its global description is used).
    no_slip : bool
        Remove the wall values with smooth blends of width ``blend * ly / 2``.
    divergence_free : bool
        Project onto discretely solenoidal fields (contract-1 operators).
    bulk : float, True, False or None
        Target bulk velocity; ``True`` keeps the field's own bulk velocity (measured before
        enforcement), ``False``/``None`` leaves it as the other steps make it.
    bounds : bool
        Raise unless the result is finite with ``max |u| <= max_ratio * |U_b|``.
    cross_flow : bool
        Remove the plane-mean wall-normal and spanwise velocities V(y), W(y) (after the
        projection; the divergence and the wall values are unchanged).
    stresses : Stresses, optional
        Calibrate the mean profile and the one-point stresses to these profiles (the field's
        units, on the grid's y) inside a solenoidal construction (:mod:`cfdseed.calibrate`); needs
        ``no_slip`` and ``divergence_free``. The bulk step then scales the calibrated mean.
    calibration_tol : float
        Stop tolerance of the calibration's passes (``tol`` of
        :func:`cfdseed.calibrate.calibrate_spectrum`): they end when every statistic is within it of
        its target, or none changed by more, relative to its profile's largest value.
    blend : float
        No-slip blending width as a fraction of the half-height (default :data:`DEFAULT_BLEND`).
    max_ratio : float
        Bound of ``max |u| / |U_b|`` (default :data:`DEFAULT_MAX_RATIO`).
    copy : bool
        False: work in place when ``field`` is a C-contiguous float64 array (saves a copy).

    Returns
    -------
    field : ndarray (3, nx, ny, nz) float64
    report : EnforceReport

    Raises
    ------
    GridError
        Not a Grid, or one smaller than nx, nz >= 2, ny >= 3 (4 without points on both walls).
    SourceError
        Wrong shape, non-finite values, the bound on max |u| violated, a degenerate wall-normal
        grid; :class:`~cfdseed.errors.CalibrationError` (a SourceError) when, after the
        calibration's last pass, a statistic on the rows the grid resolves is more than
        :data:`cfdseed.calibrate.ACCEPT` off its target (the target is out of the field's reach).
    ValueError
        ``blend`` not a positive number, ``stresses`` without ``no_slip`` and ``divergence_free``
        or with profiles not of one value per y point, a non-finite ``bulk`` target.
    """
    require_grid(grid)
    nx, ny, nz = grid.shape
    f = np.array(field, dtype=np.float64, order="C", copy=copy or None)
    if f.shape != (3, nx, ny, nz):
        raise SourceError(f"field must have shape (3, nx, ny, nz) = {(3, nx, ny, nz)}, got {f.shape}")
    check_options(grid, blend, stresses, no_slip, divergence_free)
    ops = Steps(figures=lambda a: field_figures(a, grid), project=lambda a: _project(a, grid),
                plane_mean=lambda a: a.mean(axis=(1, 3)),
                calibrate=lambda a, st, tol: _calibrate(a, grid, st, tol))
    rep = run_steps(f, grid, ops, no_slip=no_slip, divergence_free=divergence_free, bulk=bulk, bounds=bounds,
                    cross_flow=cross_flow, stresses=stresses, calibration_tol=calibration_tol, blend=blend,
                    max_ratio=max_ratio)
    log.debug("%s", rep)
    return f, rep


def check_options(grid: Grid, blend: float, stresses: Stresses | None, no_slip: bool, divergence_free: bool) -> None:
    """Raise ``ValueError`` for options :func:`enforce` cannot take (blend, stresses)."""
    if not (math.isfinite(blend) and blend > 0):
        raise ValueError(f"blend must be a positive number, got {blend!r}")
    if stresses is not None:
        if not (no_slip and divergence_free):
            raise ValueError("stress calibration needs no_slip=True and divergence_free=True")
        ny = grid.shape[1]
        bad = [k for k in ("U", "uu", "vv", "ww", "uv") if np.shape(getattr(stresses, k)) != (ny,)]
        if bad:
            raise ValueError(f"stresses must hold one value per y point ({ny}); wrong: {', '.join(bad)}")


def _call(fn: Any, *args: Any) -> Any:
    return fn(*args)


@dataclass(frozen=True)
class Steps:
    """The operations :func:`run_steps` needs that see more than one (x, z) column: on a global
    field here, on x slabs with reductions in :func:`cfdseed.pencils.enforce`."""

    figures: Any  #: f -> field_figures of the whole field
    project: Any  #: f -> None (divergence-free projection in place)
    plane_mean: Any  #: f (ncomp, x, y, z) -> (ncomp, ny) plane averages
    calibrate: Any  #: (f, stresses, tol) -> CalibrationInfo (in place)
    #: (fn, *args) -> fn(*args): a step on f's own columns (on x slabs: its errors agreed)
    local: Any = _call


def run_steps(f: np.ndarray, grid: Grid, ops: Steps, *, no_slip: bool, divergence_free: bool,
              bulk: float | None | bool, bounds: bool, cross_flow: bool, stresses: Stresses | None,
              calibration_tol: float, blend: float, max_ratio: float) -> EnforceReport:
    """The enforcement steps of :func:`enforce` on ``f`` (the whole field or this rank's x slab), in place."""
    rep = EnforceReport(before=ops.figures(f))
    if rep.before.get("nonfinite", 0):
        raise SourceError(f"field has {int(rep.before['nonfinite'])} non-finite values; cannot enforce constraints")
    target = rep.before["bulk"] if bulk is True else (None if bulk is False or bulk is None else float(bulk))
    if target is not None and not math.isfinite(target):
        raise ValueError(f"bulk velocity target must be finite, got {bulk!r}")
    t = time.perf_counter()
    if no_slip:
        ops.local(_no_slip, f, grid, blend)
        rep.steps.append("no-slip")
        rep.timings["no-slip"], t = time.perf_counter() - t, time.perf_counter()
    if divergence_free:
        ops.project(f)
        rep.steps.append("projection")
        rep.timings["projection"], t = time.perf_counter() - t, time.perf_counter()
    if cross_flow:
        # the plane means V(y), W(y) are zero in a channel in equilibrium (symmetry; V also by
        # continuity and no-slip); removing them changes neither the divergence nor the walls
        f[1:] -= ops.plane_mean(f[1:])[:, None, :, None]
        rep.steps.append("no mean cross-flow")
    if stresses is not None:
        t = time.perf_counter()
        rep.calibration = ops.calibrate(f, stresses, calibration_tol)
        rep.steps.append("stress calibration")
        rep.timings["calibration"], t = time.perf_counter() - t, time.perf_counter()
    if target is not None:
        _set_bulk(f, grid, target, prof=ops.plane_mean(f[:1])[0])
        rep.steps.append(f"bulk={target:.6g}")
        rep.timings["bulk"] = time.perf_counter() - t
    rep.after = ops.figures(f)
    for _ in range(_REFINE_PASSES):
        # iterative refinement: on badly conditioned grids (wildly uneven spacing) one pass leaves
        # more than round-off; a second pass removes what the first left. Never taken on the
        # named distributions.
        if not divergence_free or rep.after.get("div_max", 0.0) <= _REFINE_TOL:
            break
        t = time.perf_counter()
        ops.project(f)
        rep.steps.append("projection")
        rep.timings["projection"] += time.perf_counter() - t
        rep.after = ops.figures(f)
    if bounds:
        rep.steps.append("bounds")
        if rep.after.get("nonfinite", 0):
            raise SourceError(f"enforced field has {int(rep.after['nonfinite'])} non-finite values")
        ub = abs(rep.after["bulk"])
        if ub > 0 and rep.after["max_abs"] > max_ratio * ub:
            raise SourceError(
                f"max |u| = {rep.after['max_abs']:.4g} exceeds {max_ratio:g} x bulk velocity {ub:.4g}; "
                "the source produced an implausible field (raise max_ratio to accept it)"
            )
    return rep
