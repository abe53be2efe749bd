"""Constraint checks of a delivered velocity field: :class:`Tolerances`, :class:`ConstraintReport`
and the collective :func:`check_field` (shared contracts 1 and 2 in the team notes).

Each rank runs the C++ kernels of :mod:`cfdseed._core` on its own block (one-plane halos from
:mod:`cfdseed.halo` for the stencils that cross block faces); the partial figures are allgathered
and combined in rank order, so every rank returns the identical report. Figures:

- no-slip: max |u_i| at the walls / U_ref (cell-centred grids: the value linearly extrapolated to
  the wall from the two nearest points);
- periodic seams in x and z: largest jump across the seam / largest interior increment;
- divergence (contract 1 operators): max and RMS of |div u| / (U_ref / h), h = ly / 2;
- mean cross-flow: max over y of |plane-mean v| and |plane-mean w| / U_ref (``cross_flow``);
- bulk velocity (trapezoid in y, zero wall values appended where no point lies on a wall),
  max |u_i|, RMS per component, count of non-finite values.

A grid with ``operators="spectral"`` gets its divergence, wall values and bulk velocity measured
with the spectral operators (:mod:`cfdseed.operators`); these need whole x and z lines, so the
field is gathered on rank 0 for them (memory: the global field once, as ``init_field``'s root).
The report names the operators.

U_ref = |bulk velocity| (if 0: max |u_i|, if 0: 1). Every figure except the non-finite count
ignores NaN/Inf values. The operators (wall detection, bulk weights, wall extrapolation, checked
rows) come from :mod:`cfdseed.operators`; enforcement lives in :mod:`cfdseed.enforce`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _core
from ._collective import agree
from .errors import ConfigError, GridError
from .grid import Grid, agree_grid
from .halo import exchange_faces
from .operators import (
    bulk_velocity,
    bulk_weights,
    checked_rows,
    divergence,
    wall_extrapolation,
    wall_values,
)
from .transport import block_views, gather

# bulk_weights is re-exported: public here before cfdseed.operators became its home
__all__ = ["Tolerances", "ConstraintReport", "check_field", "bulk_weights"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tolerances:
    """Limits of :func:`check_field`; a figure passes when it is ``<=`` its limit.

    Velocities are relative to U_ref (|bulk velocity|), divergence to U_ref / h with h = ly / 2.
    """

    #: max |u_i| on the walls / U_ref where grid points lie on the walls. None: round-off,
    #: 100 machine epsilons of the field's dtype (1.2e-5 float32, 2.2e-14 float64).
    no_slip: float | None = None
    #: the same for the linear extrapolation to the wall on cell-centred grids, whose O(h^2)
    #: truncation error is not round-off (Poiseuille on 32 uniform cells gives ~4e-3).
    no_slip_extrapolated: float = 0.05
    #: largest jump across the periodic seam / largest interior increment, x and z (~1 if periodic).
    seam: float = 3.0
    #: max |div u| / (U_ref / h): a projected field reaches round-off (~1e-5 in float32).
    divergence_max: float = 1e-3
    #: RMS of div u / (U_ref / h).
    divergence_rms: float = 1e-4
    #: max over y of |plane-mean v|, |plane-mean w| / U_ref: no mean cross-flow. An enforced
    #: field reaches round-off; a running solver's state carries a small physical mean W.
    cross_flow: float = 1e-6
    #: max |u_i| / U_ref (a turbulent channel stays below ~2).
    velocity_ratio: float = 10.0
    #: number of NaN/Inf values allowed.
    nonfinite: int = 0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None and f.name == "no_slip":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise ConfigError(f"tolerance {f.name} must be a non-negative number, got {v!r}")
        if not isinstance(self.nonfinite, (int, np.integer)) or isinstance(self.nonfinite, bool):
            raise ConfigError(f"tolerance nonfinite is a count of values, an integer >= 0; got {self.nonfinite!r}")

    def resolved(self, dtype: Any) -> Tolerances:
        """These tolerances with ``no_slip=None`` replaced by its value for ``dtype``."""
        if self.no_slip is not None:
            return self
        return dataclasses.replace(self, no_slip=100.0 * float(np.finfo(dtype).eps))


@dataclass(frozen=True)
class ConstraintReport:
    """Global constraint figures of a field, identical on every rank (see module docstring)."""

    shape: tuple[int, int, int]
    dtype: str
    bulk_velocity: float
    u_ref: float
    max_abs: float  #: max |u_i| over all components (absolute)
    rms: tuple[float, float, float]  #: RMS of u, v, w (absolute)
    nonfinite: int
    no_slip: float  #: max |u_i| at the walls / U_ref
    wall_extrapolated: bool  #: no point on (at least) one wall: the wall value is extrapolated
    seam_x: float
    seam_z: float
    divergence_max: float  #: / (U_ref / h)
    divergence_rms: float  #: / (U_ref / h)
    cross_flow: float = 0.0  #: max over y of |plane-mean v|, |plane-mean w| / U_ref
    tolerances: Tolerances = field(default_factory=Tolerances)
    operators: str = "central"  #: the operator set of divergence, wall values and bulk velocity

    def __post_init__(self) -> None:
        object.__setattr__(self, "tolerances", self.tolerances.resolved(self.dtype))

    def _rows(self) -> list[tuple[str, float, float]]:
        t = self.tolerances
        wall_tol = t.no_slip_extrapolated if self.wall_extrapolated else t.no_slip
        return [
            ("no-slip (max |u_i| at walls / U_ref)", self.no_slip, wall_tol),
            ("seam x (jump / interior increment)", self.seam_x, t.seam),
            ("seam z (jump / interior increment)", self.seam_z, t.seam),
            ("divergence max / (U_ref/h)", self.divergence_max, t.divergence_max),
            ("divergence RMS / (U_ref/h)", self.divergence_rms, t.divergence_rms),
            ("mean cross-flow max |V|,|W| / U_ref", self.cross_flow, t.cross_flow),
            ("max |u_i| / U_ref", self.max_abs / self.u_ref, t.velocity_ratio),
            ("non-finite values", float(self.nonfinite), float(t.nonfinite)),
        ]

    @property
    def failures(self) -> list[str]:
        """One line per violated tolerance (empty when the field passes)."""
        return [
            f"{name} = {value:.4g} exceeds {limit:.4g}"
            for name, value, limit in self._rows()
            if not value <= limit
        ]

    @property
    def passed(self) -> bool:
        """True when every figure is within its tolerance."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """Plain-data (JSON-ready) figures, tolerances, ``passed`` and ``failures``."""
        d = dataclasses.asdict(self)
        d["shape"], d["rms"] = list(self.shape), list(self.rms)
        d["passed"], d["failures"] = self.passed, self.failures
        return d

    def __str__(self) -> str:
        nx, ny, nz = self.shape
        lines = [
            f"constraint report: {nx}x{ny}x{nz} {self.dtype}, {self.operators} operators,"
            f" bulk velocity {self.bulk_velocity:.6g},"
            f" U_ref {self.u_ref:.6g}, max |u_i| {self.max_abs:.6g},"
            f" RMS (u, v, w) ({', '.join(f'{r:.4g}' for r in self.rms)})",
            f"  {'check':<38} {'value':>11} {'limit':>11}  status",
        ]
        for name, value, limit in self._rows():
            lines.append(f"  {name:<38} {value:>11.4g} {limit:>11.3g}  {'ok' if value <= limit else 'FAIL'}")
        lines.append("  PASSED" if self.passed else f"  FAILED ({len(self.failures)} of {len(self._rows())})")
        return "\n".join(lines)


# Layout of the per-rank partial figures (allgathered, then max or summed over ranks).
_MAX = ("wall", "x_int", "x_seam", "z_int", "z_seam", "div_max", "max_abs")
_SUM = ("div_sumsq", "div_count", "bulk", "ss_u", "ss_v", "ss_w", "nf_u", "nf_v", "nf_w")


def _partials(comm: Any, grid: Grid, comps: tuple[np.ndarray, ...], blocks: np.ndarray) -> np.ndarray:
    """This rank's partial figures in the order ``_MAX + _SUM`` (collective: halo exchange)."""
    hcomm = comm.Dup()  # private context: the halo messages cannot match the solver's own
    try:
        halos = exchange_faces(hcomm, blocks, grid.shape, comps)
    finally:
        hcomm.Free()
    p = dict.fromkeys(_MAX + _SUM, 0.0)
    if grid.local_size == 0:
        return np.array([p[k] for k in _MAX + _SUM])
    (nx, ny, nz), (lx, ly, lz) = grid.shape, grid.lengths
    (x0, x1), (y0, y1), (z0, z1) = ((s.start, s.stop) for s in grid.local)
    y = grid.y

    wy = bulk_weights(grid)[y0:y1]
    for c, name in zip(comps, "uvw"):
        m, ss, ws, nf = _core.stats(c, wy)
        p["max_abs"] = max(p["max_abs"], m)
        p[f"ss_{name}"], p[f"nf_{name}"] = ss, nf
        if name == "u":
            p["bulk"] = ws

    (xlo, xhi), (ylo, yhi), (zlo, zhi) = halos  # each (3, ...) with extent 1 along its axis
    t_lo, t_hi = wall_extrapolation(grid)
    for n, c in enumerate(comps):
        def plane(j: int) -> np.ndarray:  # (nxl, 1, nzl) at global y index j, from the block or the y halo
            if y0 <= j < y1:
                return c[:, j - y0 : j - y0 + 1, :]
            return yhi[n] if j == y1 else ylo[n]

        if y0 == 0:
            p["wall"] = max(p["wall"], _core.wall_absmax(plane(0), plane(1), t_lo))
        if y1 == ny:
            p["wall"] = max(p["wall"], _core.wall_absmax(plane(ny - 1), plane(ny - 2), t_hi))
        xi, xs = _core.increments(c, xhi[n], 0, nx - 1 - x0 if x1 == nx else -1)
        zi, zs = _core.increments(c, zhi[n], 2, nz - 1 - z0 if z1 == nz else -1)
        p["x_int"], p["x_seam"] = max(p["x_int"], xi), max(p["x_seam"], xs)
        p["z_int"], p["z_seam"] = max(p["z_int"], zi), max(p["z_seam"], zs)

    if grid.operators != "central":
        return np.array([float(p[k]) for k in _MAX + _SUM])  # divergence: _spectral_figures
    # y of the neighbours beyond the block; at a wall the virtual wall point (zero velocity)
    below = y[y0 - 1] if y0 > 0 else 0.0
    above = y[y1] if y1 < ny else ly
    yext = np.concatenate([[below], y[y0:y1], [above]])
    rows = checked_rows(grid)  # global; as local indices of the block:
    j0, j1 = max(rows.start, y0) - y0, min(rows.stop, y1) - y0
    dmax, dss, dn = _core.divergence(*comps, xlo[0], xhi[0], ylo[1], yhi[1], zlo[2], zhi[2],
                                     yext, lx / nx, lz / nz, j0, max(j0, j1))
    p["div_max"], p["div_sumsq"], p["div_count"] = dmax, dss, dn
    return np.array([float(p[k]) for k in _MAX + _SUM])


def _spectral_figures(comm: Any, grid: Grid, local: Any, axes: str) -> tuple[float, float, float, float, float]:
    """Collective: (bulk, max |wall value|, max |div|, sum of div^2, count) under the spectral
    operators, computed on rank 0 from the gathered field (non-finite values read as 0)."""
    full = gather(comm, grid, local, root=0, axes=axes)
    err, out = None, (0.0, 0.0, 0.0, 0.0, 0.0)
    if comm.Get_rank() == 0:
        try:
            f = np.nan_to_num(np.asarray(full, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
            del full
            lo, hi = wall_values(f, grid)
            d = divergence(f, grid)
            out = (bulk_velocity(f, grid), float(max(np.abs(lo).max(), np.abs(hi).max())),
                   float(np.abs(d).max()), float(np.sum(d * d)), float(d.size))
        except Exception as exc:  # noqa: BLE001 - e.g. memory; re-raised on every rank by agree
            err = exc
    agree(comm, err)
    return comm.bcast(out, root=0)


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return float(num / den)
    return 0.0 if num == 0 else math.inf


def check_field(
    comm: Any,
    grid: Grid,
    local: Any,
    *,
    axes: str = "xyz",
    tolerances: Tolerances | None = None,
) -> ConstraintReport:
    """Collective: the constraint report of the field whose blocks the ranks hold.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        Every rank of the decomposition calls.
    grid : Grid
        Global grid with this rank's block ``grid.local``; the blocks must tile the grid.
    local : ndarray (3, ...) or tuple (u, v, w)
        This rank's block, axes in the order ``axes``, float32 or float64, any memory order.
    axes : str, default "xyz"
        Permutation of ``"xyz"`` naming the array axes.
    tolerances : Tolerances, optional
        Limits; :class:`Tolerances` defaults when omitted.

    Returns
    -------
    ConstraintReport
        Identical on every rank; ``report.passed`` tells whether the field meets the tolerances.

    Raises
    ------
    TransportError
        Bad ``local``/``axes`` on any rank (:func:`cfdseed.transport.block_views`), or dtypes
        differing between ranks.
    ConfigError
        Bad ``tolerances``.
    GridError, DecompositionError
        Ranks disagree on the global grid, or their blocks do not tile it (:func:`cfdseed.grid.agree_grid`).

    All raised on every rank (all are ``ValueError``).
    """
    err: BaseException | None = None
    comps: tuple[np.ndarray, ...] = ()
    dtype = np.dtype(np.float64)
    try:
        if tolerances is None:
            tolerances = Tolerances()
        elif not isinstance(tolerances, Tolerances):
            raise ConfigError(f"tolerances must be a Tolerances, got {type(tolerances).__name__}")
        if not isinstance(grid, Grid):
            raise GridError(f"grid must be a cfdseed.Grid, got {type(grid).__name__}")
        views, dtype = block_views(local, axes, grid.local_shape, what="local")
        comps = tuple(views)
    except Exception as exc:  # noqa: BLE001 - re-raised on every rank by agree
        err = exc
    agree(comm, err)
    blocks = agree_grid(comm, grid, {"the dtype": dtype.name, "the tolerances": tolerances})

    err, part = None, np.zeros(len(_MAX) + len(_SUM))
    rows = np.zeros((2, grid.shape[1]))  # this rank's sums of v and w per global y row
    try:
        part = _partials(comm, grid, comps, blocks)
        if grid.local_size:
            y0, y1 = grid.local[1].start, grid.local[1].stop
            for k, c in enumerate(comps[1:]):  # non-finite values are skipped, as by every figure
                rows[k, y0:y1] = np.where(np.isfinite(c), c, 0.0).sum(axis=(0, 2), dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - not expected after validation; never leave a rank waiting
        err = exc
    agree(comm, err)
    allp = np.empty((comm.Get_size(), part.size))
    comm.Allgather(part, allp)
    rows = comm.allreduce(rows)  # (2, ny): object mode, also for the tests' fake communicators
    mx = dict(zip(_MAX, allp[:, : len(_MAX)].max(axis=0)))
    sm = dict(zip(_SUM, allp[:, len(_MAX) :].sum(axis=0)))
    if grid.operators == "spectral":
        sm["bulk"], mx["wall"], mx["div_max"], sm["div_sumsq"], sm["div_count"] = _spectral_figures(
            comm, grid, comps, axes="xyz")

    bulk = float(sm["bulk"])
    u_ref = abs(bulk) or float(mx["max_abs"]) or 1.0
    scale = u_ref / (0.5 * grid.lengths[1])
    n = grid.size
    rms = tuple(math.sqrt(sm[f"ss_{c}"] / (n - sm[f"nf_{c}"])) if n > sm[f"nf_{c}"] else 0.0 for c in "uvw")
    count = sm["div_count"]
    report = ConstraintReport(
        shape=grid.shape,
        dtype=str(comps[0].dtype),
        bulk_velocity=bulk,
        u_ref=u_ref,
        max_abs=float(mx["max_abs"]),
        rms=rms,  # type: ignore[arg-type]
        nonfinite=int(sm["nf_u"] + sm["nf_v"] + sm["nf_w"]),
        no_slip=float(mx["wall"]) / u_ref,
        wall_extrapolated=not grid.has_walls and grid.operators == "central",
        seam_x=_ratio(mx["x_seam"], mx["x_int"]),
        seam_z=_ratio(mx["z_seam"], mx["z_int"]),
        divergence_max=float(mx["div_max"]) / scale,
        divergence_rms=math.sqrt(sm["div_sumsq"] / count) / scale if count else 0.0,
        cross_flow=float(np.abs(rows).max()) / (grid.shape[0] * grid.shape[2]) / u_ref,
        tolerances=tolerances,
        operators=grid.operators,
    )
    if comm.Get_rank() == 0:
        _log.debug("check_field on %d ranks:\n%s", comm.Get_size(), report)
    return report
