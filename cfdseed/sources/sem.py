"""The ``"sem"`` source: divergence-free synthetic eddies filling the periodic channel.

The classical non-neural initialiser, in the spirit of the divergence-free synthetic-eddy method
(DFSEM: Poletto, Craft & Revell 2013; OpenFOAM's ``turbulentDFSEMInlet``), written for a periodic
box instead of an inlet plane and calibrated to a Reynolds-stress target (by default Lee & Moser at
``re_tau``; ``gan`` defaults to its model's training statistics, which ``sem`` takes only when
passed explicitly, e.g. as a :class:`~cfdseed.targets.StressTarget`): given ``gan``'s target, the
fair baseline with the same one-point information but no learned structure.

**Eddies.** Eddy ``e`` (centre ``c_e``, radius ``sigma_e``, intensity ``alpha_e``) carries the
velocity ``f(|r| / sigma_e) (r x alpha_e)``, ``r = x - c_e``, with the compact shape
``f(s) = (1 - s^2)^3`` (``s < 1``; zero outside, and so are ``f'`` and ``f''``): divergence-free
for any radial ``f`` and any ``sigma`` (``grad f`` is parallel to ``r``, and ``r x alpha`` is
solenoidal); ``alpha`` is half the eddy's vorticity at its centre. The field sums every eddy over
its periodic images in x and z, clipped at the walls (the C++ kernel :func:`cfdseed._core.eddies`:
cost linear in cells x eddies per cell).

**Walls** (:func:`wall_damping`). The field is the curl of ``D(y) sum_e psi_e alpha_e``, where
``grad psi_e = f r`` (so ``D = 1`` gives the plain eddies) and
``D = (1 - exp(-(y/delta)^2)) (1 - exp(-((ly - y)/delta)^2))``, ``delta`` the no-slip blending
width (``blend`` h, at least 3 first cells): solenoidal and exactly no-slip, with ``u, w ~ d`` and
``v ~ d^2`` at wall distance ``d`` as in turbulence. The enforcement then changes little near the
walls; removing the wall values of eddies cut by the walls instead leaves odd-even oscillations of
``v`` after the projection on stretched grids (tanh), which the calibration cannot undo.

**Sizes** (:func:`eddy_sizes`). With ``d`` the distance of the centre to the nearer wall and
``h = ly / 2``: ``sigma(d) = max(length * KAPPA * min(d, h), sigma_min)``: the mixing-length rule
of the log layer (``KAPPA`` = :data:`cfdseed.reference.KAPPA`), bounded as in DFSEM by ``KAPPA``
times the layer thickness (here h) at the centre, times the ``length`` option (default 1).
``sigma_min`` = :data:`SIGMA_MIN_CELLS` x max(dx, dz): an eddy spans at least 4 x/z spacings, so
the grid resolves it (a finer y spacing near the walls cannot make up for coarse x and z; smaller
eddies put their energy into modes the calibration leaves alone, and fit worse). Not from the
target: its stresses carry no length of their own (a mixing length ``sqrt(-uv) / (dU/dy)`` is
``KAPPA d`` in the log layer, where it is defined, and 0/0 at the centre), and DFSEM's
``k^(3/2) / epsilon`` needs a dissipation profile that the targets do not have.

**Density** (:func:`sample_eddies`). ``eddy_density`` eddies per ``sigma^3`` volume: the number
density at wall distance ``d`` is ``eddy_density / sigma(d)^3``, so every point lies inside
``4 pi / 3 x eddy_density`` eddies on average (default :data:`DEFAULT_EDDY_DENSITY` = 2: about 8,
whatever their size). Centres are uniform in x and z, the wall side is a coin toss, ``d`` follows
the density (inverse cumulative distribution in closed form); the number of eddies is the
density's integral over the box, rounded.

**Intensities** (:func:`eddy_intensities`). Uniform eddies whose ``alpha`` has the covariance
``A`` have the stresses ``R = C (tr A I - A)``, ``C = eddy_density sigma^2 (4 pi / 3)
int_0^1 f(s)^2 s^4 ds``; DFSEM inverts this for the target's stresses ``R`` at the eddy's height:
``A = ((tr R) / 2 I - R) / C`` (its positive semi-definite part), ``alpha = L xi``, ``L L^T = A``,
``xi`` standard normal. That needs ``uu <= vv + ww``, which a channel violates through the buffer
and log layers (``A_xx < 0``). Without calibration DFSEM's own remedy is kept, the positive part
of ``A`` (plain DFSEM: volume TKE 1.79 on the 48 x 49 x 32 test grid against Lee & Moser's
1.78). It leaves spanwise vortices there and no streamwise ones, which the calibration cannot use;
so when calibrating, the eddies there carry ``vv`` and ``ww`` exactly and ``uu`` only up to
``ww - vv``: ``A = diag(vv, ww - vv, 0) / C``, streamwise vortices (``alpha`` along x: v and w)
and swirls about y (u and w); the calibration's streak and lift-up terms make the rest of ``uu``
and all of ``-uv``. The lift-up term ``i kz v`` puts ``-uv`` into u without adding to w only where
v varies more in z than in x, which streamwise vortices give (``v = f r_z alpha_x``) and spanwise
ones do not. On the 48 x 49 x 32 test box the largest error of ``-uv`` after calibration
(relative to its profile's maximum, all rows) is at most 0.02 with this rule (Chebyshev, its
cell-centred twin and tanh:2 under central operators, Chebyshev and Gauss points under spectral
ones; 4 seeds each), 0.18-0.23 with DFSEM's positive part and 0.08-0.10 with isotropic intensities
(the three central grids, 3 seeds).

**Delivery.** The mean profile is added (Reichardt's law :func:`cfdseed.units.reichardt_profile`
at the resolved ``re_tau``; the calibration replaces it by the target's) and the field goes through
:func:`cfdseed.enforce.enforce`: no-slip, the divergence-free projection under the grid's operator
set, no mean cross-flow, the Reynolds-stress calibration to the ``calibrate`` target
(:mod:`cfdseed.calibrate`), the bulk velocity.

Options (defaults): the unit options ``re_tau``, ``u_tau``, ``nu``, ``bulk``
(:func:`cfdseed.units.resolve_units`: wall units at Re_tau 180; the default bulk is the
calibration target's mean profile's, else Reichardt's), ``calibrate`` ("reference": Lee & Moser at
``re_tau``; a reference name, a file, a dict or a StressTarget; None or False: no calibration, the
intensities still from the Lee & Moser reference at ``re_tau``; off too without ``no_slip`` and
``divergence_free``), ``length`` (1.0), ``eddy_density`` (2.0), ``seed`` (None: init_field's rng),
``no_slip``/``divergence_free`` (True), ``blend`` (0.1; also the width of the wall damping),
``max_ratio`` (10).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._values import number
from ..targets import Stresses, StressTarget, resolve_target, stress_target
from ..enforce import DEFAULT_BLEND, DEFAULT_MAX_RATIO, enforce, require_grid
from ..errors import SourceError
from ..grid import Grid
from ..operators import trapezoid_weights
from ..reference import KAPPA
from ..units import (
    UNIT_OPTIONS,
    Units,
    check_unit_options,
    reichardt_profile,
    resolve_units,
)
from .base import Source, SourceInfo, check_enforcement, check_seed, parse_options

__all__ = ["sem", "SEM_DEFAULTS", "DEFAULT_EDDY_DENSITY", "SIGMA_MIN_CELLS", "MAX_EDDIES", "eddy_sizes",
           "sample_eddies", "eddy_intensities", "wall_damping", "eddy_field"]

log = logging.getLogger(__name__)

#: Eddies per sigma^3 volume: every point inside 4 pi / 3 x 2 = 8.4 eddies on average.
DEFAULT_EDDY_DENSITY = 2.0
#: Smallest eddy radius in multiples of the coarser periodic spacing max(dx, dz).
SIGMA_MIN_CELLS = 2.0
#: More eddies than this is a mistake of the options (memory of the eddy table, hours of work).
MAX_EDDIES = 50_000_000
#: ``int_0^1 f(s)^2 s^4 ds`` for ``f(s) = (1 - s^2)^3``: ``B(5/2, 7) / 2``.
_F2S4 = 0.5 * math.gamma(2.5) * math.gamma(7.0) / math.gamma(9.5)

#: Options of ``"sem"`` and their defaults (None: resolved by cfdseed.units.resolve_units).
SEM_DEFAULTS: dict[str, Any] = {**dict.fromkeys(UNIT_OPTIONS), "calibrate": "reference", "length": 1.0,
                                "eddy_density": DEFAULT_EDDY_DENSITY, "seed": None, "no_slip": True,
                                "divergence_free": True, "blend": DEFAULT_BLEND, "max_ratio": DEFAULT_MAX_RATIO}


def _sigma_min(grid: Grid) -> float:
    lx, _, lz = grid.lengths
    nx, _, nz = grid.shape
    return SIGMA_MIN_CELLS * max(lx / nx, lz / nz)


def eddy_sizes(d: np.ndarray, h: float, length: float, sigma_min: float) -> np.ndarray:
    """Eddy radius at wall distance ``d``: ``max(length * KAPPA * min(d, h), sigma_min)``."""
    return np.maximum(length * KAPPA * np.minimum(d, h), sigma_min)


def sample_eddies(grid: Grid, rng: np.random.Generator, length: float = 1.0,
                  density: float = DEFAULT_EDDY_DENSITY) -> tuple[np.ndarray, np.ndarray]:
    """Random eddy centres ``(n, 3)`` and radii ``(n,)`` filling the channel of ``grid``.

    Number density ``density / sigma(d)^3`` (:func:`eddy_sizes`), uniform in x and z, each wall
    half alike; ``n`` is its integral over the box, rounded (at least 1). Sorted along x (in slabs
    of ``2 sigma_min``), then z, for the kernel's memory access.

    Raises
    ------
    SourceError
        More than :data:`MAX_EDDIES` eddies.
    """
    lx, ly, lz = grid.lengths
    h = 0.5 * ly
    smin = _sigma_min(grid)
    slope = length * KAPPA  # sigma = slope * d beyond d0
    d0 = min(smin / slope, h)  # sigma = smin below d0
    # per unit wall area of one half: mass below d0 (uniform) and above (density ~ d^-3)
    m_in = d0 / smin**3
    m_out = (1.0 / d0**2 - 1.0 / h**2) / (2.0 * slope**3) if d0 < h else 0.0
    mean = density * lx * lz * 2.0 * (m_in + m_out)
    n = max(1, round(mean))
    if n > MAX_EDDIES:
        raise SourceError(f"sem: eddy_density={density:g} and length={length:g} give {n} eddies on this grid "
                          f"(more than {MAX_EDDIES}); use a smaller eddy_density or a larger length")
    x = rng.uniform(0.0, lx, n)
    z = rng.uniform(0.0, lz, n)
    upper = rng.random(n) < 0.5
    u = rng.uniform(0.0, m_in + m_out, n)
    # inverse of the cumulative mass: uniform below d0, d^-3 above (clipped at h against round-off)
    far = 1.0 / np.sqrt(np.maximum(1.0 / d0**2 - 2.0 * slope**3 * (u - m_in), 1.0 / h**2))
    d = np.where(u < m_in, u * smin**3, far)
    y = np.where(upper, ly - d, d)
    # in the order of memory: x slabs 2 sigma_min wide, z within (the kernel runs ~3x faster on the
    # 28 M-cell field than for random order, when eddies that follow each other share cache lines)
    order = np.lexsort((z, np.floor(x / (2.0 * smin))))
    return np.stack([x, y, z], axis=1)[order], eddy_sizes(d, h, length, smin)[order]


def eddy_intensities(stresses: Stresses, sigma: np.ndarray, rng: np.random.Generator,
                     density: float = DEFAULT_EDDY_DENSITY, beyond: str = "vortices") -> np.ndarray:
    """Intensity vectors ``alpha (n, 3)`` of eddies of radii ``sigma`` for the stresses at their heights.

    ``stresses`` holds ``uu, vv, ww, uv`` at each eddy's centre (``(n,)`` each, e.g.
    :meth:`StressTarget.on_grid` at the centres' y). ``alpha = L xi / sqrt(C)`` with ``xi``
    standard normal, ``L L^T`` the positive semi-definite part of ``(tr R / 2) I - R`` (DFSEM)
    and ``C = density sigma^2 (4 pi / 3) int f^2 s^4`` (module docstring). Where ``uu > vv + ww``
    (beyond DFSEM's reach) ``beyond`` decides: ``"vortices"``, ``L L^T = diag(vv, ww - vv, 0)``
    (what the calibration needs); ``"clip"``, DFSEM's own positive part.

    Raises
    ------
    ValueError
        ``beyond`` neither "vortices" nor "clip".
    """
    if beyond not in ("vortices", "clip"):
        raise ValueError(f"beyond must be 'vortices' or 'clip', got {beyond!r}")
    n = sigma.size
    uu, vv, ww, uv = (np.broadcast_to(np.asarray(a, dtype=np.float64), (n,)) for a in
                      (stresses.uu, stresses.vv, stresses.ww, stresses.uv))
    m = np.zeros((n, 3, 3))
    half = 0.5 * (uu + vv + ww)
    m[:, 0, 0], m[:, 1, 1], m[:, 2, 2] = half - uu, half - vv, half - ww
    m[:, 0, 1] = m[:, 1, 0] = -uv
    out = (uu > vv + ww) if beyond == "vortices" else np.zeros(n, dtype=bool)  # DFSEM: alpha_x variance < 0
    m[out] = 0.0
    m[out, 0, 0] = vv[out]  # streamwise vortices: vv, and as much ww
    m[out, 1, 1] = np.maximum(ww - vv, 0.0)[out]  # swirls about y: the rest of ww, as much uu
    lam, q = np.linalg.eigh(m)
    lo = q * np.sqrt(np.clip(lam, 0.0, None))[:, None, :]  # (n, 3, 3): lo lo^T = psd part of m
    c = density * sigma**2 * (4.0 * math.pi / 3.0) * _F2S4
    xi = rng.standard_normal((n, 3))
    return np.einsum("nij,nj->ni", lo, xi) / np.sqrt(c)[:, None]


def wall_damping(grid: Grid, blend: float) -> tuple[np.ndarray, np.ndarray]:
    """``D(y)`` and ``dD/dy`` at the grid's y: ``D = (1 - exp(-(y/delta)^2)) (1 - exp(-((ly - y)/delta)^2))``,
    ``delta = blend * ly / 2`` but at least 3 first cells (the no-slip blending width of
    :func:`cfdseed.enforce.enforce`): 0 with a zero derivative on the walls, 1 away from them."""
    y, ly = grid.y, grid.lengths[1]
    delta = max(blend * 0.5 * ly, 3.0 * min(y[1] - y[0], y[-1] - y[-2]))
    e_lo, e_hi = np.exp(-((y / delta) ** 2)), np.exp(-(((ly - y) / delta) ** 2))
    d_lo, d_hi = 1.0 - e_lo, 1.0 - e_hi
    return d_lo * d_hi, 2.0 / delta**2 * (y * e_lo * d_hi - (ly - y) * e_hi * d_lo)


def eddy_field(grid: Grid, centre: np.ndarray, sigma: np.ndarray, alpha: np.ndarray,
               damp: tuple[np.ndarray, np.ndarray] | None = None, out: np.ndarray | None = None,
               x: np.ndarray | None = None) -> np.ndarray:
    """The eddy sum ``(3, nx, ny, nz)`` on ``grid`` (:func:`cfdseed._core.eddies`), the curl of
    ``D(y) sum psi alpha`` with ``damp = (D, dD/dy)`` at the grid's y (None: ``D = 1``, the plain
    eddies), added to ``out`` when given (float32 or float64), else to zeros (float64). ``x``: only
    these streamwise points of the grid (an x slab; images over the period lx as for the whole)."""
    from .. import _core

    x = grid.x if x is None else np.asarray(x, dtype=np.float64)
    if out is None:
        out = np.zeros((3, x.size, *grid.shape[1:]))
    if damp is None:
        damp = (np.ones(grid.shape[1]), np.zeros(grid.shape[1]))
    lx, _, lz = grid.lengths
    if x.size:
        _core.eddies(out[0], out[1], out[2], x, grid.y, grid.z, lx, lz, damp[0], damp[1], centre, sigma, alpha)
    return out


#: Stand-in Re_tau under which a ``calibrate`` file without its own is checked before the field's is known.
_CHECK_RE_TAU = 180.0


def _target(o: dict[str, Any]) -> StressTarget | str | None:
    """The ``calibrate`` option checked: None (off), "reference" or a file (resolved at the field's re_tau
    later) or a target."""
    spec = o["calibrate"]
    if spec is None or spec is False:
        return None
    if isinstance(spec, str) and spec == "model":
        raise SourceError("sem: calibrate='model' names a generator's training statistics, and sem has no model; "
                          "use 'reference' (Lee & Moser at re_tau), a reference name, a file, or None")
    if isinstance(spec, str) and spec == "reference":
        return spec
    try:  # checked now; a file that gives no Re_tau is a target at the field's, known when the source runs
        target = stress_target(spec, re_tau=o["re_tau"] or _CHECK_RE_TAU)
    except SourceError as exc:
        raise SourceError(f"sem: calibrate: {exc}") from None
    return target if o["re_tau"] is not None or not isinstance(spec, (str, os.PathLike)) else spec


def sem(**options: Any) -> Source:
    """Divergence-free synthetic eddies calibrated to a Reynolds-stress target (module docstring).

    Raises
    ------
    SourceError
        Unknown options, a non-positive ``length``, ``eddy_density``, ``blend`` or ``max_ratio``, a
        ``no_slip`` / ``divergence_free`` that is not a boolean, a bad ``seed``, bad unit values, or a bad ``calibrate`` target (unknown name, unreadable file, wrong y range,
        not positive semi-definite); the rest (contradicting units, too many eddies, a target out of
        the field's reach) when the source runs.
    """
    o = parse_options("sem", options, SEM_DEFAULTS)
    o.update(check_unit_options("sem", o))
    for key in ("length", "eddy_density", "blend", "max_ratio"):  # blend: also the wall damping's width
        o[key] = number(f"sem: {key}", o[key], minimum=0, strict=True)
    check_enforcement("sem", o)  # the switches; blend and max_ratio were converted just above
    check_seed("sem", o["seed"])
    spec = _target(o)

    def plan(grid: Grid, rng: np.random.Generator) -> _Plan:
        """Units, the stress target and the eddies: a pure function of the grid and the rng state."""
        require_grid(grid)  # before any work
        rng = rng if o["seed"] is None else np.random.default_rng(o["seed"])
        ly = grid.lengths[1]
        given = {k: o[k] for k in UNIT_OPTIONS}
        units = resolve_units(ly, **given, source="sem")  # fixes re_tau, checks values
        calibrated = spec is not None and bool(o["no_slip"]) and bool(o["divergence_free"])
        try:  # the intensities need one-point statistics even without calibration
            target = resolve_target("reference" if spec is None else spec, units.re_tau)
        except SourceError as exc:
            why = "" if spec is not None else "the eddy intensities (also with calibrate=None) need Lee & Moser at re_tau: "
            raise SourceError(f"sem: {why}{exc}") from None
        stresses = None
        if calibrated:  # the default bulk velocity is the target profile's
            bulk_plus = float(trapezoid_weights(grid) @ target.on_grid(grid.y, ly).U)
            units = resolve_units(ly, **given, bulk_plus=bulk_plus, source="sem")
            # rows nearer a wall than two spanwise spacings are not judged (as for gan)
            stresses = target.on_grid(grid.y, ly, units.u_tau, spacing=2.0 * grid.lengths[2] / grid.shape[2])
        centre, sigma = sample_eddies(grid, rng, o["length"], o["eddy_density"])
        alpha = eddy_intensities(target.on_grid(centre[:, 1], ly, units.u_tau), sigma, rng, o["eddy_density"],
                                 beyond="vortices" if calibrated else "clip")
        return _Plan(units, stresses, target.name, calibrated, centre, sigma, alpha)

    def raw(grid: Grid, p: _Plan, xs: slice) -> np.ndarray:
        """The eddy sum plus the mean profile at the x points ``xs`` (every y and z)."""
        out = eddy_field(grid, p.centre, p.sigma, p.alpha, wall_damping(grid, o["blend"]), x=grid.x[xs])
        out[0] += _mean(grid, p.units)[None, :, None]
        return out

    def report(p: _Plan, t_eddies: float, rep: Any) -> None:
        log.info("sem: %d eddies, sigma %.4g-%.4g, target %s%s, Re_tau %.4g, u_tau %.4g, bulk %.4g; eddies %.3f s, %s",
                 p.sigma.size, p.sigma.min(initial=math.inf), p.sigma.max(initial=0.0), p.target_name,
                 "" if p.calibrated else " (intensities only)", p.units.re_tau, p.units.u_tau, p.units.bulk, t_eddies,
                 ", ".join(f"{k} {v:.3f} s" for k, v in rep.timings.items()))

    def make(grid: Grid, rng: np.random.Generator) -> tuple[np.ndarray, SourceInfo]:
        t = time.perf_counter()
        p = plan(grid, rng)
        field = raw(grid, p, slice(None))
        t_eddies = time.perf_counter() - t
        out, rep = enforce(field, grid, no_slip=o["no_slip"], divergence_free=o["divergence_free"],
                           bulk=p.units.bulk, blend=o["blend"], max_ratio=o["max_ratio"], copy=False,
                           stresses=p.stresses)
        report(p, t_eddies, rep)
        return out, SourceInfo(enforcement=rep, units=p.units)

    def make_slabs(comm: Any, grid: Grid, rng: np.random.Generator) -> tuple[np.ndarray, SourceInfo]:
        """Collective: every rank draws the same eddies and sums those that reach its x slab; the
        enforcement runs on the slabs (:func:`cfdseed.pencils.enforce`): the serial field, to round-off."""
        from .._collective import run_agreed
        from ..pencils import Slabs
        from ..pencils import enforce as enforce_slabs

        t = time.perf_counter()
        p = run_agreed(comm, plan, grid, rng)
        slab = run_agreed(comm, raw, grid, p, Slabs(comm, grid).x)
        t_eddies = comm.allreduce(time.perf_counter() - t, op=_max())
        rep = enforce_slabs(comm, slab, grid, no_slip=o["no_slip"], divergence_free=o["divergence_free"],
                            bulk=p.units.bulk, blend=o["blend"], max_ratio=o["max_ratio"], stresses=p.stresses)
        if comm.Get_rank() == 0:
            report(p, t_eddies, rep)
        return slab, SourceInfo(enforcement=rep, units=p.units)

    return Source("sem", make, make_slabs)


@dataclass
class _Plan:
    """What one ``sem`` call draws and resolves before summing eddies (identical on every rank)."""

    units: Units
    stresses: Stresses | None
    target_name: str
    calibrated: bool
    centre: np.ndarray  # (ne, 3)
    sigma: np.ndarray  # (ne,)
    alpha: np.ndarray  # (ne, 3)


def _max() -> Any:
    from mpi4py import MPI

    return MPI.MAX


def _mean(grid: Grid, units: Units) -> np.ndarray:
    """Reichardt's mean profile at the resolved Re_tau in the field's units (scaled to the bulk by
    the enforcement; the calibration replaces it by the target's)."""
    return reichardt_profile(grid.y, grid.lengths[1], units.re_tau) * units.u_tau
