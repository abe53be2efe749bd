"""Reynolds-stress calibration of a solenoidal channel field: the v-eta construction.

The **target** is a :class:`cfdseed.targets.Stresses` (profiles on the grid's y, from
:meth:`cfdseed.targets.StressTarget.on_grid`; targets by name, file or training data live in
:mod:`cfdseed.targets`).

The **calibration** (:func:`calibrate_spectrum`, run by :func:`cfdseed.enforce.enforce` when it
is given ``stresses``) works on the field's Fourier coefficients in x and z, where a discretely
solenoidal field with no-slip walls is fixed by its wall-normal velocity ``v`` and wall-normal
vorticity ``eta = i kz u - i kx w`` (``k`` the operator set's wavenumbers): per mode
``u = (i kx D v - i kz eta) / k2``, ``w = (i kz D v + i kx eta) / k2`` satisfies continuity at
every checked row whatever ``v`` and ``eta`` are. Per row ``y``:

1. the mean profile is set to the target's (its end values tied so that its wall value is zero),
   the mean cross-flow to zero;
2. ``v`` is scaled by ``s_v(y)``, taken from a joint least-squares fit of all four stresses per
   row (the field's ``v`` spectrum may not allow ``<v'v'>`` and ``<w'w'>`` both near a wall: the
   ``v`` it takes feeds ``u`` and ``w`` through continuity), smoothed over rows (its derivative
   enters d/dy of the rescaled ``v``) and kept in [1/32, 32] (a coarse grid's field may carry only a
   small part of the target's ``v`` near the wall);
3. ``eta`` becomes ``(a + c g) eta + b i kz v``, ``g = (kx2 - kz2) / k2`` (streak-like modes,
   ``g ~ -1``, feed ``u``; spanwise ones, ``g ~ 1``, feed ``w``), and ``i kz v`` is the lift-up
   term that carries ``<u'v'>``: the three numbers ``a, c, b`` per row are fitted (damped
   Gauss-Newton, exactly where the field allows) to ``<u'u'>``, ``<w'w'>`` and ``<u'v'>``;
4. ``u`` and ``w`` are rebuilt from ``v`` and ``eta``.

Residuals are weighted by the local target plus 2 % of the profile's largest value, so near-wall
rows count without dividing by zero. Modes that the operators resolve poorly are left alone
(central differences: ``|m| > n/3``, where ``sin(k dx)/dx`` falls below 83 % of ``k`` and
dividing by it amplifies), and their share of each statistic is accounted for. On grids with
points on both walls under central differences the rebuilt field is divergence-free and no-slip as
it stands; otherwise (the wall-nearest values tied by the extrapolation, or the spectral
interpolant's wall values) the end rows are tied again and the projection applied after each pass.
Passes: two with steps 1-4, a third with steps 1, 3, 4 (``max_iter``), fewer when every statistic is
within ``tol`` of its target or nothing changes by more than ``tol``. The residual errors are
reported (:class:`CalibrationInfo`); one beyond :data:`ACCEPT` on the rows the grid resolves
(``Stresses.resolved``) means the target is out of the field's reach:
:class:`~cfdseed.errors.CalibrationError` (a SourceError).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._collective import run_agreed
from .errors import CalibrationError
from .stats import rfft_weights
from .targets import STATS, Stresses

__all__ = ["CalibrationInfo", "calibrate_spectrum", "moments", "DEFAULT_TOL", "DEFAULT_MAX_ITER", "ACCEPT"]

#: Passes end when no statistic changed by more than this (relative to its profile's largest value).
DEFAULT_TOL = 2e-3
#: Passes at most: the first two rescale v and eta, the others eta only (module docstring).
DEFAULT_MAX_ITER = 3
_V_PASSES = 2
#: Size of the blocks of kx in which the calibration rescales v and takes its d/dy.
_BLOCK_BYTES = 4 << 20
#: A calibrated statistic further than this from its target (relative to the profile's largest
#: value) on the rows the grid resolves means the target is out of this field's reach: SourceError.
ACCEPT = 0.2
_SCALE_MAX = 32.0  # bounds of the v scaling per row
_FLOOR = 0.02  # residual weights: |target| + _FLOOR * max |target| (near-wall rows count, none divides by 0)


# ---------------------------------------------------------------------------------------------
# statistics of a spectrum
# ---------------------------------------------------------------------------------------------
def _local(comm: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``: a rank's own work between two collectives; distributed (``comm`` not None),
    its error (a rank out of memory) is raised on every rank, none left waiting in the next one."""
    return fn(*args) if comm is None else run_agreed(comm, fn, *args)


def _summed(comm: Any, part: Callable[[], np.ndarray]) -> np.ndarray:
    """This rank's ``part()`` summed over the ranks of ``comm`` (None: ``part()`` itself); agreed."""
    a = _local(comm, part)
    if comm is None:
        return a
    out = np.empty_like(a)
    comm.Allreduce(np.ascontiguousarray(a), out)
    return out


def moments(spec: np.ndarray, nx: int, nz: int, *, comm: Any = None, kz_range: slice | None = None) -> dict[str, np.ndarray]:
    """Plane-mean profiles and one-point second moments per row from a spectrum.

    ``spec`` (3, nx, ny, nz // 2 + 1): the x-FFT of the z-rfft of a field (u, v, w). Returns
    ``U, V, W`` and ``uu, vv, ww, uv`` (each ``(ny,)``; fluctuations about the plane mean).
    One 3 x 3 Gram matrix per row (Parseval), a loop over y: no field-sized temporaries.
    Distributed (:mod:`cfdseed.pencils`): ``spec`` holds the rfft modes ``kz_range`` on each rank
    of ``comm`` and the sums are reduced over the ranks (collective).
    """
    ny = spec.shape[2]
    kz_range = kz_range or slice(0, nz // 2 + 1)
    wsq = np.sqrt(rfft_weights(nz)[kz_range]) / (nx * nz)  # (nkz,)
    has_mean = kz_range.start == 0 and spec.shape[3] > 0

    def part() -> np.ndarray:  # (ny, 12): the means (3) and the Gram matrix (3 x 3) of each row
        out = np.zeros((ny, 12))
        if has_mean:
            out[:, :3] = spec[:, 0, :, 0].real.T / (nx * nz)
        for j in range(ny):
            r = spec[:, :, j, :] * wsq  # (3, nx, nkz)
            if has_mean:
                r[:, 0, 0] = 0.0  # the mean mode is not a fluctuation
            r = r.view(np.float64).reshape(3, -1)  # Re(a conj b) = ar br + ai bi
            out[j, 3:] = (r @ r.T).ravel()
        return out
    both = _summed(comm, part)
    means, mom = both[:, :3].T, both[:, 3:].reshape(ny, 3, 3)
    out = {name: means[c] for c, name in enumerate("UVW")}
    out.update(uu=mom[:, 0, 0], vv=mom[:, 1, 1], ww=mom[:, 2, 2], uv=mom[:, 0, 1])
    return out


# ---------------------------------------------------------------------------------------------
# calibration
# ---------------------------------------------------------------------------------------------
@dataclass
class CalibrationInfo:
    """What :func:`calibrate_spectrum` did: passes, largest relative errors before/after, time."""

    iterations: int = 0
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    change: float = math.inf  #: largest change of a statistic in the last pass (relative)
    converged: bool = False
    seconds: float = 0.0
    #: errors after, over the rows the grid resolves (``Stresses.resolved``; all rows without it)
    resolved: dict[str, float] = field(default_factory=dict)
    unresolved_rows: int = 0  #: rows left out of ``resolved`` (too near a wall for the x/z spacing)

    def to_dict(self) -> dict[str, Any]:
        return {"iterations": self.iterations, "before": dict(self.before), "after": dict(self.after),
                "resolved": dict(self.resolved), "unresolved_rows": self.unresolved_rows,
                "change": self.change, "converged": self.converged, "seconds": self.seconds}


def _errors(mom: dict[str, np.ndarray], target: Stresses, rows: np.ndarray) -> dict[str, float]:
    """Largest |statistic - target| over ``rows``, relative to the target's largest |value|."""
    out = {}
    for name in ("U", *STATS):
        t = getattr(target, name)
        scale = float(np.abs(t).max()) or 1.0
        out[name] = float(np.abs(mom[name][rows] - t[rows]).max()) / scale
    return out


def _resolved(n: int, kind: str, rfft: bool = False) -> np.ndarray:
    """Indices of the DFT (or rfft) coefficients the operator set resolves (central: |m| <= n/3)."""
    m = np.fft.rfftfreq(n, 1.0 / n) if rfft else np.fft.fftfreq(n, 1.0 / n)
    keep = np.abs(m) <= (n / 3 if kind == "central" else (n - 1) / 2)
    return np.flatnonzero(keep)


Residual = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def _levenberg_marquardt(resid: Residual, p: np.ndarray, iters: int = 60,
                         project: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Damped Gauss-Newton per row, vectorised over rows: ``resid(p) -> (r (rows, m), J (rows, m, k))``
    from the start ``p`` (rows, k); ``project`` maps a trial step back into the allowed set. A row
    keeps its best point; stops early when every row's residual vanishes."""
    r, jac = resid(p)
    cost = (r * r).sum(axis=1)
    mu = np.full(p.shape[0], 1e-3)
    eye = np.eye(p.shape[1])[None]
    for _ in range(iters):
        jtj = np.einsum("rki,rkj->rij", jac, jac)
        jtr = np.einsum("rki,rk->ri", jac, r)
        diag = np.einsum("rii->ri", jtj)[:, :, None] * eye + 1e-30 * eye
        trial = p - np.linalg.solve(jtj + mu[:, None, None] * diag, jtr[:, :, None])[:, :, 0]
        if project is not None:
            trial = project(trial)
        r_new, jac_new = resid(trial)
        cost_new = (r_new * r_new).sum(axis=1)
        better = cost_new < cost
        p = np.where(better[:, None], trial, p)
        r = np.where(better[:, None], r_new, r)
        jac = np.where(better[:, None, None], jac_new, jac)
        cost = np.where(better, cost_new, cost)
        mu = np.where(better, mu * 0.3, np.minimum(mu * 10.0, 1e12))
        if cost.max() < 1e-24:
            break
    return p


def _solve_rows(gu: np.ndarray, gw: np.ndarray, h: np.ndarray, t: np.ndarray, wts: np.ndarray) -> np.ndarray:
    """Per row, ``p = (a, c, b)`` fitting ``uu = q G_u q``, ``ww = q G_w q``, ``uv = h . q``
    (``q = (1, p)``) to ``t`` (ny, 3) in least squares weighted by ``1 / wts`` (ny, 3), from
    ``p = (1, 0, 0)`` (the field as it is). ``gu, gw`` (ny, 4, 4), ``h`` (ny, 4).
    """
    ny = gu.shape[0]

    def resid(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = np.concatenate([np.ones((ny, 1)), p], axis=1)
        gq_u, gq_w = np.einsum("rij,rj->ri", gu, q), np.einsum("rij,rj->ri", gw, q)
        r = np.stack([np.einsum("ri,ri->r", q, gq_u), np.einsum("ri,ri->r", q, gq_w),
                      np.einsum("ri,ri->r", h, q)], axis=1) - t
        jac = np.stack([2.0 * gq_u[:, 1:], 2.0 * gq_w[:, 1:], h[:, 1:]], axis=1)  # (ny, 3, 3)
        return r / wts, jac / wts[:, :, None]

    return _levenberg_marquardt(resid, np.tile([1.0, 0.0, 0.0], (ny, 1)))


def _fit_v(gu: np.ndarray, gw: np.ndarray, h: np.ndarray, evv: np.ndarray, t: np.ndarray, wts: np.ndarray) -> np.ndarray:
    """Per row, the v factor ``s`` of the joint fit ``q = (s, a, c, b)``: ``uu = q G_u q``,
    ``vv = s^2 E``, ``ww = q G_w q``, ``uv = s (h . q)`` to ``t`` (ny, 4), weights ``1 / wts``,
    with d/dy of ``s v`` taken as ``s`` times that of ``v``, from (1, 1, 0, 0); ``s`` kept in
    [1 / _SCALE_MAX, _SCALE_MAX]."""
    ny = gu.shape[0]

    def resid(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = q[:, 0]
        gq_u, gq_w = np.einsum("rij,rj->ri", gu, q), np.einsum("rij,rj->ri", gw, q)
        hq = np.einsum("ri,ri->r", h, q)
        r = np.stack([np.einsum("ri,ri->r", q, gq_u), s * s * evv, np.einsum("ri,ri->r", q, gq_w), s * hq],
                     axis=1) - t
        jv = np.zeros((ny, 4))
        jv[:, 0] = 2.0 * s * evv
        juv = s[:, None] * h
        juv[:, 0] += hq
        jac = np.stack([2.0 * gq_u, jv, 2.0 * gq_w, juv], axis=1)
        return r / wts, jac / wts[:, :, None]

    def clip(q: np.ndarray) -> np.ndarray:
        q[:, 0] = np.clip(q[:, 0], 1.0 / _SCALE_MAX, _SCALE_MAX)
        return q

    return _levenberg_marquardt(resid, np.tile([1.0, 1.0, 0.0, 0.0], (ny, 1)), project=clip)[:, 0]


def _bandwidth(m: np.ndarray) -> int:
    nz = np.nonzero(m)
    return int(np.abs(nz[0] - nz[1]).max()) if nz[0].size else 0


def _smooth(a: np.ndarray, rows: np.ndarray, width: float = 1.0) -> np.ndarray:
    """``a`` smoothed over ``rows`` (Gaussian in the row index, ``width`` rows; others kept)."""
    from scipy.ndimage import gaussian_filter1d

    out = a.copy()
    out[rows] = gaussian_filter1d(a[rows], width, mode="nearest")
    return out


def calibrate_spectrum(spec: np.ndarray, grid: Any, target: Stresses, kx: np.ndarray, kz: np.ndarray,
                       reproject: Callable[[np.ndarray], None] | None, *, tol: float = DEFAULT_TOL,
                       max_iter: int = DEFAULT_MAX_ITER, comm: Any = None,
                       kz_range: slice | None = None) -> CalibrationInfo:
    """Calibrate, in place, the spectrum of a solenoidal no-slip field to ``target`` (module docstring).

    Row by row on ``spec`` itself: besides it, one array of d/dy v over the resolved modes (a third
    of the spectrum) and the arrays of one row.

    Parameters
    ----------
    spec : ndarray complex (3, nx, ny, nz // 2 + 1)
        x-FFT of the z-rfft of (u, v, w), divergence-free and no-slip under ``grid.operators``.
    grid : Grid
    target : Stresses
        Profiles on the grid's y in the field's units.
    kx, kz : ndarray
        The operator set's wavenumbers (:func:`cfdseed.operators.wavenumbers`, full and rfft order).
    reproject : callable or None
        Restores continuity and the walls in place (the enforcement's projection); None when the
        rebuilt field needs none (central operators with points on both walls).
    tol, max_iter
        Stop when every statistic is within ``tol`` of its target or none changed by more than
        ``tol`` in the last pass (both relative to the profile's largest value;
        :attr:`CalibrationInfo.converged`), else after ``max_iter`` passes.
    comm, kz_range
        Distributed (collective): ``spec`` holds the rfft modes ``kz_range`` of every kx on each
        rank of ``comm`` (:class:`cfdseed.pencils.Slabs`); the per-row sums are reduced over the
        ranks, so every rank takes the same decisions and raises the same errors (a rank's own
        failure between two reductions, e.g. out of memory, included).

    Returns
    -------
    CalibrationInfo

    Raises
    ------
    CalibrationError
        (a SourceError) After the last pass, converged or not, a statistic is more than
        :data:`ACCEPT` off its target (or not finite) on the rows the grid resolves
        (``target.resolved``; every row without it): the target is out of the field's reach. With
        ``comm``, on every rank.
    """
    from .operators import column

    t0 = time.perf_counter()
    nx, ny, nz = grid.shape
    col = column(grid)
    lo, hi = grid.walls
    free = np.arange(ny)[(1 if lo else 0) : ny - (1 if hi else 0)]  # rows carrying fluctuations
    info = CalibrationInfo()
    ix = _resolved(nx, grid.operators)
    kz_range = kz_range or slice(0, nz // 2 + 1)
    iz_all = _resolved(nz, grid.operators, rfft=True)
    iz_all = iz_all[(iz_all >= kz_range.start) & (iz_all < kz_range.stop)]  # this rank's (global indices)
    iz = iz_all - kz_range.start  # ... in its spectrum
    has_mean = kz_range.start == 0 and iz.size > 0  # holds the mode kx = kz = 0
    kxs, kzs = kx[ix][:, None], kz[iz_all][None, :]  # (nix, 1), (1, niz)
    k2 = kxs**2 + kzs**2
    ok = k2 > 0  # the mean mode is set separately
    k2s = np.where(ok, k2, 1.0)
    g = np.where(ok, (kxs**2 - kzs**2) / k2s, 0.0)
    wz = rfft_weights(nz)[iz_all][None, :]  # Parseval weights of the rfft coefficients
    tstack = np.stack([target.uu, target.vv, target.ww, target.uv], axis=1)  # (ny, 4)
    # residual weights: the local target, floored at a fraction of its profile's largest value
    wts = np.abs(tstack) + _FLOOR * np.abs(tstack).max(axis=0)[None, :] + 1e-300
    # the mean profile with its end values set so that its wall values are zero (a tie to the next
    # row on cell-centred grids, the interpolant's zero on spectral ones; wall points: 0)
    mean_u = np.array(target.U, dtype=np.float64)
    mean_u[[0, -1]] = -np.linalg.solve(col.walls[:, [0, -1]], col.walls[:, 1:-1] @ mean_u[1:-1])
    judged = free if target.resolved is None else free[np.asarray(target.resolved)[free]]
    target = Stresses(U=mean_u, uu=target.uu, vv=target.vv, ww=target.ww, uv=target.uv)
    mom = moments(spec, nx, nz, comm=comm, kz_range=kz_range)
    info.before = _errors(mom, target, free)
    if has_mean:
        spec[0, 0, :, 0] = mean_u * (nx * nz)  # the mean profile and no mean cross-flow
        spec[1:, 0, :, 0] = 0.0
    mom.update(U=mean_u, V=np.zeros(ny), W=np.zeros(ny))  # the moments about the mean are unchanged
    wsq = np.sqrt(wz) / (nx * nz)  # (1, niz): Parseval weights folded into the modes
    banded = _bandwidth(col.dy) <= 2

    sel = np.ix_(ix, iz)
    # kx planes per block in the d/dy of v (the one spectrum-sized temporary is d/dy v itself)
    bx = max(1, _BLOCK_BYTES // max(1, 16 * ny * iz.size))

    def rows(c: int, j: int) -> np.ndarray:
        """The resolved modes ``(nix, niz)`` of component c in row j (a copy), the mean mode zeroed."""
        r = spec[c, :, j, :][sel]
        if has_mean:
            r[0, 0] = 0.0
        return r

    def dy_v(scale: np.ndarray) -> np.ndarray:
        """d/dy of v rescaled by ``scale`` per row, over the resolved modes: ``(nix, ny, niz)``, by
        blocks of kx (by diagonals for the 3-point stencil, else a dense product)."""
        out = np.empty((ix.size, ny, iz.size), dtype=np.complex128)
        for x0 in range(0, ix.size, bx):
            v = spec[1][np.ix_(ix[x0:x0 + bx], range(ny), iz)] * scale[None, :, None]
            if has_mean and x0 == 0:
                v[0, :, 0] = 0.0
            if banded:
                o = col.dy.diagonal()[None, :, None] * v
                o[:, :-1] += col.dy.diagonal(1)[None, :, None] * v[:, 1:]
                o[:, 1:] += col.dy.diagonal(-1)[None, :, None] * v[:, :-1]
            else:
                o = np.matmul(col.dy, v)
            out[x0:x0 + bx] = o
        return out

    # per-mode coefficients of the four contributions to u and w: potential part of v (D v),
    # eta, g eta, lift-up (i kz v); (nix, niz) each, the mean mode's zero
    cu = [1j * kxs / k2s, -1j * kzs / k2s, -1j * kzs * g / k2s, kzs**2 / k2s + 0j]
    cw = [1j * kzs / k2s, 1j * kxs / k2s, 1j * kxs * g / k2s, -kxs * kzs / k2s + 0j]
    for c in (*cu, *cw):
        c[~ok] = 0.0

    def gram(parts: list[np.ndarray]) -> np.ndarray:
        """Sum over the resolved modes of one row of w Re(p_i conj p_j) / N^2: (k, k)."""
        r = np.stack(parts) * wsq  # (k, nix, niz)
        r = r.view(np.float64).reshape(len(parts), -1)  # Re(a conj b) = ar br + ai bi
        return r @ r.T

    def row_grams(scale: np.ndarray) -> tuple[np.ndarray, ...]:
        """d/dy of v rescaled by ``scale`` (:func:`dy_v`, this rank's modes) and, per row (the
        arrays of one row stay in cache), the Gram matrices of the contributions to u and to w
        (ny, 4, 4), their correlations with v (ny, 4) and <v'v'> (ny,), summed over the ranks."""
        dv = _local(comm, dy_v, scale)

        def part() -> np.ndarray:  # (ny, 16 + 16 + 4 + 1) for this rank's modes
            out = np.zeros((ny, 37))
            for j in free:
                v, eta = rows(1, j) * scale[j], 1j * kzs * rows(0, j) - 1j * kxs * rows(2, j)
                bu = [cu[0] * dv[:, j], cu[1] * eta, cu[2] * eta, cu[3] * v]
                gv = gram([*bu, v])
                out[j, :16], out[j, 32:36], out[j, 36] = gv[:4, :4].ravel(), gv[:4, 4], gv[4, 4]
                out[j, 16:32] = gram([cw[0] * dv[:, j], cw[1] * eta, cw[2] * eta, cw[3] * v]).ravel()
            return out
        flat = _summed(comm, part)
        return dv, flat[:, :16].reshape(ny, 4, 4), flat[:, 16:32].reshape(ny, 4, 4), flat[:, 32:36], flat[:, 36]

    for it in range(1, max_iter + 1):
        info.iterations = it

        def resolved_share() -> np.ndarray:  # (ny, 4): the resolved modes' share of uu, vv, ww, uv
            share = np.zeros((ny, 4))
            for j in free:
                g0 = gram([rows(0, j), rows(1, j), rows(2, j)])
                share[j] = g0[0, 0], g0[1, 1], g0[2, 2], g0[0, 1]
            return share
        # the unresolved modes' share of uu, vv, ww, uv
        rest = np.stack([mom["uu"], mom["vv"], mom["ww"], mom["uv"]], axis=1) - _summed(comm, resolved_share)
        scale = np.ones(ny)
        dv, gu, gw, hv, evv = row_grams(scale)
        if it <= _V_PASSES:
            # v: its factor per row from the joint fit of all four stresses (the field's v
            # spectrum may not allow <v'v'> and <w'w'> both near a wall), smoothed over rows so
            # that d/dy of the rescaled v picks up no row-to-row jumps
            logs = np.zeros(ny)
            logs[free] = np.log(_fit_v(gu[free], gw[free], hv[free], evv[free], (tstack - rest)[free], wts[free]))
            scale = np.exp(_smooth(logs, free))
            del dv
            dv, gu, gw, hv, evv = row_grams(scale)
        # eta: a, c, b per row for <u'u'>, <w'w'>, <u'v'> with v fixed (exact d/dy)
        coef = np.tile([1.0, 0.0, 0.0], (ny, 1))
        pick = [0, 2, 3]  # uu, ww, uv
        coef[free] = _solve_rows(gu[free], gw[free], hv[free], (tstack[:, pick] - rest[:, pick])[free],
                                 wts[free][:, pick])

        def rebuild(dv: np.ndarray) -> None:
            """The new field row by row, in place: row j's eta and v come from row j alone (d/dy v is dv)."""
            for j in range(ny):
                kept = spec[:, ix[0], j, iz[0]].copy() if has_mean else None  # the mean mode stays
                if j not in free:  # wall points stay exactly zero
                    new = [np.zeros((ix.size, iz.size), dtype=np.complex128)] * 3
                else:
                    a, c, b = coef[j]
                    v, eta = rows(1, j) * scale[j], 1j * kzs * rows(0, j) - 1j * kxs * rows(2, j)
                    new = [cu[0] * dv[:, j] + (a * cu[1] + c * cu[2]) * eta + b * cu[3] * v, v,
                           cw[0] * dv[:, j] + (a * cw[1] + c * cw[2]) * eta + b * cw[3] * v]
                for comp in range(3):
                    spec[comp, :, j, :][sel] = new[comp]
                if has_mean:
                    spec[:, ix[0], j, iz[0]] = kept
        _local(comm, rebuild, dv)
        del dv
        if reproject is not None:
            reproject(spec)
            if has_mean:
                spec[0, 0, :, 0] = mean_u * (nx * nz)
                spec[1:, 0, :, 0] = 0.0
        now = moments(spec, nx, nz, comm=comm, kz_range=kz_range)
        info.after = _errors(now, target, free)
        info.change = max(_errors(now, Stresses(**{k: mom[k] for k in ("U", *STATS)}), free).values())
        mom = now
        if info.change <= tol or max(info.after.values()) <= tol:
            info.converged = True
            break
    info.seconds = time.perf_counter() - t0
    info.resolved = _errors(mom, target, judged) if judged.size else {}
    if judged.size < free.size:
        info.unresolved_rows = int(free.size - judged.size)
    worst = max(info.resolved, key=lambda k: info.resolved[k] if math.isfinite(info.resolved[k]) else math.inf,
                default=None)
    if worst is not None and not info.resolved[worst] <= ACCEPT:
        raise CalibrationError(f"stress calibration failed: after {info.iterations} pass(es) {worst} is "
                          f"{info.resolved[worst]:.3g} off its target (relative to the profile's largest value; "
                          f"accepted up to {ACCEPT:g}): the target is out of this field's reach")
    return info
