"""OpenFOAM channel adapter: write a cfdseed initial velocity into a case's ``U``.

Python::

    from mpi4py import MPI
    from cfdseed.solvers.openfoam import write_initial_field
    res = write_initial_field(MPI.COMM_WORLD, "channel395", source="gan", seed=1)

Command line (:mod:`cfdseed.cli`; under ``mpiexec`` every rank takes a share of the processor
directories)::

    cfdseed openfoam channel395 --seed 1

What happens, collectively over the ranks of ``comm`` (steps 1 to 4 read and understand the case:
:mod:`cfdseed.solvers.openfoam_case`; this module synthesises, samples and writes, steps 5 to 7):

1. **The case's layouts.** ``0/U`` of the reconstructed case (``constant/polyMesh``) and/or
   ``processor*/0/U`` of a decomposed one (``layout="auto"``: every layout present; of a case with
   both, those that hold the time's ``U``, as a decomposed run's restart time does). Processor
   directories must be ``processor0 .. processorN-1`` with ``N`` the ``numberOfSubdomains`` of
   ``system/decomposeParDict``; each processor's field must have one value per cell of its mesh.
2. **The mesh, through OpenFOAM itself.** Cell centres and volumes come from OpenFOAM's
   ``postProcess -funcs '(writeCellCentres writeCellVolumes)'`` run in a scratch copy of each mesh
   part (the case is not touched: a scratch case of its own links the mesh, with minimal system
   files, so the case's own ``#include`` lines, libraries and function objects play no part; binary
   output, so the coordinates are exact); patches, points (also compressed, ``points.gz``),
   ``fvOptions`` and ``transportProperties`` are read with **foamlib**. Each rank handles its own
   processor directories.
3. **The channel.** Walls: the ``wall`` patches, whose faces must all lie on the two planes
   ``y = ymin`` and ``y = ymax`` of the mesh's bounding box; every other patch must be ``cyclic``
   (or ``cyclicAMI``, or a processor patch): the channel is periodic in x and z with the bounding
   box's extents as periods (each wall's faces reach the box's ends to within one face; a sheared
   periodic mesh is refused). The bulk velocity is the ``Ubar`` of a ``meanVelocityForce`` (it must
   point along +x; in ``fvOptions``, ``fvConstraints`` or ``fvModels`` of ``constant`` or
   ``system``, directly or in ``meanVelocityForceCoeffs``) and ``nu`` comes from
   ``constant/transportProperties`` (or ``physicalProperties``); without ``re_tau`` (or ``u_tau``)
   in the options, ``re_tau`` is the one whose expected turbulent bulk velocity gives ``U_b h / nu``
   (:func:`cfdseed.units.re_tau_from_bulk`; 380.7 for the channel395 tutorial, whose name says 395).
   A case without ``Ubar`` needs the velocity scale in the options (``bulk``, ``u_tau``, or
   ``re_tau`` with ``nu``), one without ``nu`` the Reynolds number (``re_tau`` or ``nu``): nothing
   falls back to wall units. Anything else is refused with a :class:`CaseError` naming it.
4. **A structured grid that resolves the mesh.** In x and z: as many uniform points as the mesh has
   distinct cell-centre coordinates, placed on them when they are uniform (blockMesh channels:
   sampling is then exact); in y: the two walls plus every distinct cell-centre y. Meshes without
   that tensor structure get a grid twice as fine as their mean cell size (x, z; at most twice
   their distinct centre coordinates, for graded structured meshes) and wall-normal
   points at the quantiles of the cell centres (y), sampled trilinearly.
5. **Synthesis** with :func:`cfdseed.init_field` on that grid, decomposed into x slabs over the
   ranks (the named source, its options, the seed, the strategy: as everywhere in cfdseed; with
   ``strategy="distributed"`` no rank holds the structured field whole either).
6. **Sampling at the cell centres**: each rank sends its cells' grid coordinates to the ranks whose
   slabs hold them (all-to-all) and gets the values back, so no rank gathers the cell field. The
   streamwise component is scaled by one factor so that the volume-weighted bulk velocity of the
   cell field equals the source's bulk velocity (``Ubar``) exactly (:attr:`Written.bulk_factor`).
7. **Writing**, after every check has passed on every rank: each ``U`` keeps its header and
   ``boundaryField`` but for ``internalField`` and, in processor directories, the ``value`` of
   every ``processor``/``processorCyclic`` patch: the written field in the cells across its faces
   (from the partner processor's part, face by face), as OpenFOAM itself stores it; decomposePar's
   stale values there would feed the solver's first flux at those faces. Two steps over all
   ranks: every new file is written next to its ``U`` (and the original kept), and only when every
   rank has done so is each renamed over ``U`` (atomic); a failure in the first step (a full disk)
   leaves every folder as it was. The original is kept once as ``U.before-cfdseed.bak`` (OpenFOAM's
   tools skip ``*.bak``) and a second run refuses unless ``force=True`` (which overwrites ``U``
   and keeps that first backup).

:attr:`Written.report` checks the structured field of step 5 with its own operators, before
sampling: the finite-volume divergence of the written cell field is not zero (about 0.06 U_b/h
on channel395, Gauss linear); the solver's first pressure projection removes it.

Needs OpenFOAM's ``postProcess`` on ``PATH`` (Debian: ``apt install openfoam``; the Debian
package's ``WM_PROJECT_DIR=/usr/share/openfoam`` is set when missing) and ``foamlib``
(``pip install 'cfdseed[openfoam]'``). Launch-time variables of the MPI library that runs cfdseed
are removed from ``postProcess``'s environment, so an OpenFOAM built on another MPI works.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._collective import agree, root_agreed, run_agreed
from ..errors import CaseError
from ..grid import Grid, block_split
from .openfoam_case import (LAYOUTS, _NU_FILES, ChannelCase, _detect, _foamlib, _mesh_part, _Part, _read, _summary,
                            unexpanded,
                            find_case)

__all__ = ["ChannelCase", "Written", "write_initial_field", "find_case", "BACKUP_SUFFIX", "LAYOUTS"]

log = logging.getLogger(__name__)

#: Name suffix of the kept original field (``U`` -> ``U.before-cfdseed.bak``): OpenFOAM's tools
#: skip ``*.bak`` in a time folder (reconstructPar, decomposePar, foamToVTK do not take it for a field).
BACKUP_SUFFIX = ".before-cfdseed.bak"
#: Fields a restart time may hold that OpenFOAM reads along with U (the flux, old-time levels):
#: written next to a new U they would contradict it.
_STALE_WITH_U = ("phi", "phi_0", "U_0", "U_0_0", "Uf")
#: The backup's name before 2026-12-06 (a field to OpenFOAM's tools), still honoured as a kept original.
_OLD_BACKUP_SUFFIX = ".before-cfdseed"


@dataclass
class Written:
    """What :func:`write_initial_field` did (identical on every rank)."""

    case: ChannelCase
    grid: Grid  # the structured grid the field was synthesised on (whole grid)
    files: list[Path]  # the U files written
    backups: list[Path]  # originals kept by this call (empty when they existed already)
    bulk_factor: float  # factor applied to u so the cell field's bulk velocity is the source's
    bulk: float  # the cell field's volume-weighted bulk velocity as written
    report: Any  # ConstraintReport of the structured field before sampling (not of the cell field)
    units: Any  # the source's resolved Units (None for sources without units)
    options: dict[str, Any] = field(default_factory=dict)  # the options the source was given

    def summary(self) -> str:
        c = self.case
        nx, ny, nz = self.grid.shape
        lines = [f"case {c.path}: channel {c.lengths[0]:g} x {c.lengths[1]:g} x {c.lengths[2]:g}, "
                 f"{c.cells} cells, walls {', '.join(c.walls)}, cyclic {', '.join(c.cyclic)}",
                 f"  structured grid {nx} x {ny} x {nz} ({'on the cell centres' if c.tensor else 'interpolated'})"]
        if self.units is not None:
            u = self.units
            lines.append(f"  units: re_tau {u.re_tau:.4g}, u_tau {u.u_tau:.4g}, nu {u.nu:.4g}, bulk {u.bulk:.4g}")
        lines.append(f"  cell field: bulk velocity {self.bulk:.6g} (u scaled by {self.bulk_factor:.6f})")
        lines.append(f"  wrote {len(self.files)} file(s): " + ", ".join(str(p.relative_to(c.path)) for p in self.files))
        if self.backups:
            lines.append("  kept the originals as " + ", ".join(str(p.relative_to(c.path)) for p in self.backups))
        return "\n".join(lines)


# -- units --------------------------------------------------------------------------------
def _source_options(ch: ChannelCase, options: Mapping[str, Any] | None, source: Any = None) -> dict[str, Any]:
    """The source's options: the user's, plus the case's nu and Ubar and the implied re_tau; a file
    source (``snapshot``, ``phase-randomised``) gets Ubar only: a file keeps its own velocities
    unless its options rescale them (a file that records no units cannot be rescaled at all).

    Raises
    ------
    CaseError
        The case has no Ubar (or no nu) and the options do not fix the velocity scale (or the
        Reynolds number) instead: the source would fall back to wall units.
    """
    from ..sources import FILE_SOURCES
    from ..units import UNIT_OPTIONS, check_unit_options, re_tau_from_bulk

    opts = dict(options or {})
    no_ubar = (f"{ch.path}: " + (ch.ubar_note or "no meanVelocityForce Ubar (fvOptions, fvConstraints or fvModels in "
                                 "constant or system)") + ": give the bulk velocity as the source option bulk "
               "(--option bulk=U_B)")
    if isinstance(source, str) and source in FILE_SOURCES:
        if ch.ubar is not None and "bulk" not in opts:
            opts["bulk"] = ch.ubar
        if all(opts.get(k) is None for k in UNIT_OPTIONS):
            raise CaseError(no_ubar)
        return opts
    h = 0.5 * ch.lengths[1]
    if ch.nu is not None and "nu" not in opts:
        opts["nu"] = ch.nu
    if ch.ubar is not None and "bulk" not in opts:
        opts["bulk"] = ch.ubar
    given = check_unit_options(source if isinstance(source, str) else "source", opts)
    has = {k for k, v in given.items() if v is not None}
    missing = []
    if not has & {"bulk", "u_tau"} and not {"re_tau", "nu"} <= has:
        missing.append(no_ubar + ", u_tau, or re_tau with nu")
    if not has & {"re_tau", "nu"}:
        missing.append(f"{ch.path}: " + (ch.nu_note or f"no nu in {' or '.join(_NU_FILES)}")
                       + ": give the source option nu, or re_tau")
    if missing:
        raise CaseError("; ".join(missing))
    if not has & {"re_tau", "u_tau"}:  # bulk and nu known
        re_bulk = given["bulk"] * h / given["nu"]
        opts["re_tau"] = round(re_tau_from_bulk(re_bulk), 2)
        log.info("re_tau %.2f from U_b h / nu = %.6g (expected turbulent bulk velocity); give re_tau to override",
                 opts["re_tau"], re_bulk)
    return opts


# -- sampling -----------------------------------------------------------------------------
def _coords(ch: ChannelCase, grid: Grid, pts: np.ndarray) -> tuple[np.ndarray, ...]:
    """Grid cell (i, j, k) and fractions (fx, fy, fz) of points, x and z periodic."""
    nx, ny, nz = grid.shape
    out = []
    for a, n in ((0, nx), (2, nz)):
        s = np.mod((pts[:, a] - ch.origin[a]) / (ch.lengths[a] / n), n)
        i = np.floor(s)
        f = s - i
        up = f > 1.0 - 1e-9
        i[up] += 1
        f[up | (f < 1e-9)] = 0.0
        out.append((np.mod(i, n).astype(np.int64), f))
    yy = np.clip(pts[:, 1] - ch.origin[1], 0.0, ch.lengths[1])
    j = np.clip(np.searchsorted(grid.y, yy, side="right") - 1, 0, ny - 2)
    fy = (yy - grid.y[j]) / (grid.y[j + 1] - grid.y[j])
    fy[fy < 1e-9] = 0.0
    step = (fy > 1.0 - 1e-9) & (j < ny - 2)
    j[step] += 1
    fy[step] = 0.0
    fy[fy > 1.0 - 1e-9] = 1.0
    (i, fx), (k, fz) = out
    return i, fx, j, fy, k, fz


def _interpolate(slab: np.ndarray, above: np.ndarray, x0: int, nz: int, i: np.ndarray, fx: np.ndarray,
                 j: np.ndarray, fy: np.ndarray, k: np.ndarray, fz: np.ndarray) -> np.ndarray:
    """Trilinear values ``(n, 3)`` from this rank's slab and the plane just above it."""
    full = np.concatenate([slab, above[:, None]], axis=1)
    il = i - x0
    k1 = np.mod(k + 1, nz)
    out = np.zeros((i.size, 3))
    for di, wx in ((0, 1.0 - fx), (1, fx)):
        for dj, wy in ((0, 1.0 - fy), (1, fy)):
            for k_, wz in ((k, 1.0 - fz), (k1, fz)):
                w = wx * wy * wz
                if not np.any(w):
                    continue
                out += w[:, None] * full[:, il + di, j + dj, k_].T
    return out


def _alltoallv(comm: Any, chunks: Sequence[np.ndarray], width: int) -> list[np.ndarray]:
    """Exchange float64 rows of ``width`` values: ``chunks[r]`` goes to rank r; returns what each rank sent."""
    from ..transport import alltoallv

    return [g.reshape(-1, width) for g in alltoallv(comm, list(chunks), None, np.float64)]


def _sample(comm: Any, ch: ChannelCase, grid: Grid, slab: np.ndarray, above: np.ndarray,
            mine: Sequence[_Part]) -> list[np.ndarray]:
    """Values ``(n, 3)`` at the cell centres of this rank's parts (collective)."""
    size, nx, nz = comm.Get_size(), grid.shape[0], grid.shape[2]
    starts = np.array([block_split(nx, size, r).start for r in range(size)] + [nx])
    x0 = int(starts[comm.Get_rank()])
    npts = sum(p.centres.shape[0] for p in mine)

    def questions() -> tuple[np.ndarray, list[np.ndarray]]:  # agreed, as answers(): no rank left in the exchange
        allpts = np.concatenate([p.centres for p in mine]) if mine else np.zeros((0, 3))
        i, fx, j, fy, k, fz = _coords(ch, grid, allpts)
        owner = np.searchsorted(starts, i, side="right") - 1
        order = np.argsort(owner, kind="stable")
        rows = np.stack([i, fx, j, fy, k, fz], axis=1)[order].astype(np.float64)
        bounds = np.searchsorted(owner[order], np.arange(size + 1))
        return order, [rows[bounds[r]:bounds[r + 1]] for r in range(size)]

    order, rows = run_agreed(comm, questions)
    asked = _alltoallv(comm, rows, 6)

    def answers() -> list[np.ndarray]:
        out = []
        for q in asked:
            ii, jj, kk = (q[:, c].astype(np.int64) for c in (0, 2, 4))
            out.append(_interpolate(slab, above, x0, nz, ii, q[:, 1], jj, q[:, 3], kk, q[:, 5]))
        return out

    got = _alltoallv(comm, run_agreed(comm, answers), 3)

    def assemble() -> list[np.ndarray]:  # agreed: the caller's next step is collective
        vals = np.empty((npts, 3))
        vals[order] = np.concatenate(got) if got else vals[order]
        out, at = [], 0
        for p in mine:
            n = p.centres.shape[0]
            out.append(vals[at:at + n])
            at += n
        return out
    return run_agreed(comm, assemble)


def _handler(n: int, size: int) -> int:
    """The rank that handles ``parts[n]`` of a case (round robin)."""
    return n % size


def _across(comm: Any, parts: Sequence[str], mine: Sequence[_Part], values: Sequence[np.ndarray]
            ) -> list[dict[str, np.ndarray]]:
    """Per part of this rank: each processor patch's values, the partner part's cells at the same faces
    (collective; each part is on the rank :func:`_handler` names)."""
    size = comm.Get_size()
    rank_of = {int(p[len("processor"):]): _handler(n, size) for n, p in enumerate(parts) if p != "."}

    def outgoing() -> list[dict[tuple[int, int, str], np.ndarray]]:
        out: list[dict[tuple[int, int, str], np.ndarray]] = [{} for _ in range(size)]
        for p, v in zip(mine, values):
            for c in p.coupled:
                if c.neighbour not in rank_of:
                    raise CaseError(f"{p.name}: {c.name} faces processor{c.neighbour}, which is not written")
                out[rank_of[c.neighbour]][c.key] = v[c.cells]
        return out

    incoming: dict[tuple[int, int, str], np.ndarray] = {}
    for got in comm.alltoall(run_agreed(comm, outgoing)):
        incoming.update(got)

    def matched() -> list[dict[str, np.ndarray]]:
        out = []
        for p in mine:
            vals = {}
            for c in p.coupled:
                theirs = incoming.get(c.partner)
                if theirs is None or theirs.shape[0] != c.cells.size:
                    raise CaseError(f"{p.name}: {c.name} has no partner patch of {c.cells.size} faces in "
                                    f"processor{c.neighbour} (run decomposePar again)")
                vals[c.name] = theirs
            out.append(vals)
        return out

    return run_agreed(comm, matched)


# -- writing ------------------------------------------------------------------------------
def _check_target(root: Path, part: str, time: str, cells: int, force: bool) -> None:
    """Refuse before anything is written: wrong size, no backup permission, not writable."""
    tdir = root / part / time
    where = f"{'' if part == '.' else part + '/'}{time}/U"
    u = _read(tdir / "U", "velocity field")
    try:
        raw = u.internal_field
        internal = None if unexpanded(raw) else np.asarray(raw)
    except Exception as exc:  # noqa: BLE001
        raise CaseError(f"{where}: cannot read internalField: {exc}") from None
    if internal is None:
        raise CaseError(f"{where}: internalField {raw!r} holds a macro, which cfdseed does not expand: write "
                        f"the value there (foamDictionary -expand {where} > U.expanded, then move it over U)")
    if internal.ndim == 2 and internal.shape[0] != cells:
        fix = ("the field is from another mesh (restore a uniform one, e.g. from 0.orig, or map it with mapFields)"
               if part == "." else "the field does not match the decomposition (run decomposePar again)")
        raise CaseError(f"{where} has {internal.shape[0]} values, its mesh {cells} cells: {fix}")
    if internal.shape[-1:] != (3,):
        raise CaseError(f"{where} is not a vector field (internalField shape {internal.shape})")
    stale = [n for n in _STALE_WITH_U if (tdir / n).exists() or (tdir / (n + ".gz")).exists()]
    if stale:
        raise CaseError(f"{'' if part == '.' else part + '/'}{time} holds {', '.join(stale)} next to U: the solver "
                        "would start from that flux or old-time velocity, not from the new U; move them out of the "
                        "time folder (or rename them *.bak) first")
    kept = _kept_original(tdir)
    if kept is not None and not force:
        raise CaseError(f"{where}{kept.name.removeprefix('U')} exists (the original kept by an earlier cfdseed "
                        "run); --force writes U again and keeps that backup")
    try:
        with tempfile.NamedTemporaryFile(dir=tdir, prefix=".cfdseed-probe-"):
            pass
    except OSError as exc:
        raise CaseError(f"cannot write into {tdir}: {exc.strerror or exc}") from None


def _kept_original(tdir: Path) -> Path | None:
    """The original ``U`` an earlier run kept in the time folder ``tdir`` (either name), or None."""
    return next((b for n in (BACKUP_SUFFIX, _OLD_BACKUP_SUFFIX) if (b := tdir / ("U" + n)).exists()), None)


@dataclass(frozen=True)
class _Staged:
    """A new ``U`` written next to the old one, not yet in its place (the original kept already)."""

    tmp: Path
    target: Path
    backup: Path | None  # the copy of the original made by this call (None: an earlier one is kept)

    def commit(self) -> tuple[Path, Path | None]:
        """Rename the new file over ``U`` (atomic)."""
        os.replace(self.tmp, self.target)
        return self.target, self.backup

    def discard(self) -> None:
        """Leave the folder as it was."""
        self.tmp.unlink(missing_ok=True)
        if self.backup is not None:
            self.backup.unlink(missing_ok=True)


def _stage(root: Path, part: str, time: str, values: np.ndarray, coupled: Mapping[str, np.ndarray]) -> _Staged:
    """``U`` with its internalField (and the ``value`` of each processor patch, ``coupled``: the field
    across it) replaced, written to a temporary file next to it; the original kept once as
    ``U.before-cfdseed.bak``."""
    fl = _foamlib()
    tdir = root / part / time
    target = tdir / "U"
    fd, tmp_name = tempfile.mkstemp(dir=tdir, prefix=".U.cfdseed-")
    os.close(fd)
    tmp = Path(tmp_name)
    made = None
    try:
        shutil.copyfile(target, tmp)
        shutil.copymode(target, tmp)
        out = fl.FoamFieldFile(tmp)
        out.internal_field = np.ascontiguousarray(values, dtype=np.float64)
        patches = out.boundary_field
        for name, vals in coupled.items():
            if len(vals) and name in patches:  # a patch without faces keeps its empty value
                patches[name]["value"] = np.ascontiguousarray(vals, dtype=np.float64)
        backup = tdir / ("U" + BACKUP_SUFFIX)
        if _kept_original(tdir) is None:
            made = backup
            shutil.copy2(target, backup)
    except BaseException:
        _Staged(tmp, target, made).discard()
        raise
    return _Staged(tmp, target, made)


def _write_all(comm: Any, root: Path, time: str, mine: Sequence[_Part], values: Sequence[np.ndarray],
               coupled: Sequence[Mapping[str, np.ndarray]]) -> list[tuple[Path, Path | None]]:
    """Collective, in two steps: every rank stages its files (new ``U`` and backup); only when all
    have, each renames its own over ``U``: a failure while staging anywhere (a full disk, a quota)
    leaves every folder as it was."""
    staged: list[_Staged] = []
    err = None
    try:
        for p, v, c in zip(mine, values, coupled):
            staged.append(_stage(root, p.name, time, v, c))
    except Exception as exc:  # noqa: BLE001 - agreed below
        err = exc
    try:
        agree(comm, err)
    except BaseException:
        for st in staged:
            st.discard()
        raise
    return run_agreed(comm, lambda: [st.commit() for st in staged])


# -- the whole job ------------------------------------------------------------------------
def write_initial_field(comm: Any, case: str | Path, *, source: str = "gan", options: Mapping[str, Any] | None = None,
                        seed: Any = None, time: str = "0", layout: str = "auto", force: bool = False,
                        strategy: str = "auto") -> Written:
    """Collective: synthesise an initial velocity for an OpenFOAM channel case and write its ``U``.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Every rank calls; the processor directories are shared out over the ranks.
    case : path
        The OpenFOAM case folder.
    source, options, seed
        As for :func:`cfdseed.init_field`; the case's ``nu``, ``Ubar`` and implied ``re_tau`` are
        added to ``options`` where not given (module docstring, step 3).
    time : str
        Time directory to write (default ``"0"``).
    layout : {"auto", "reconstructed", "decomposed"}
        Which ``U`` files to write; ``auto``: every layout present (of a case with both, those that
        hold ``TIME/U``).
    force : bool
        Write even though an earlier run's backup ``U.before-cfdseed.bak`` exists (it is kept).
    strategy : {"auto", "root", "distributed"}
        :func:`cfdseed.init_field`'s: build the structured field on rank 0, or as x slabs on every
        rank (no rank holds it whole; sources with a slab path: ``gan``, ``sem``); auto: distributed
        on more than one rank past 4 GiB when the source can.

    Returns
    -------
    Written
        Identical on every rank.

    Raises
    ------
    CaseError
        Missing or unreadable case files, not a periodic channel, a field that does not match its
        mesh (or a macro ``internalField``), no Ubar or nu and no units in ``options`` instead, a
        folder that cannot be written: raised on every rank, nothing written.
    SourceError, GridError
        The source refused its options or the grid (nothing written).
    ConstraintError
        The structured field fails :func:`cfdseed.init_field`'s channel checks (run by default;
        ``exc.report`` holds the report): raised on every rank, nothing written.
    """
    rank, size = comm.Get_rank(), comm.Get_size()
    root, parts = root_agreed(comm, lambda: find_case(case, layout=layout, time=time))
    mine_names = [p for n, p in enumerate(parts) if _handler(n, size) == rank]
    mine: list[_Part] = []
    err = None
    try:  # the scratch folder too: a node whose /tmp is full must not leave the others in agree
        with tempfile.TemporaryDirectory(prefix="cfdseed-foam-") as scratch:
            for name in mine_names:
                mine.append(_mesh_part(root, name, Path(scratch)))
    except Exception as exc:  # noqa: BLE001 - agreed below
        err = exc
    agree(comm, err)
    summaries = comm.gather(run_agreed(comm, lambda: [_summary(p) for p in mine]), root=0)
    ch, grid = root_agreed(comm, lambda: _detect(root, parts, time, [s for ss in summaries for s in ss]))
    run_agreed(comm, lambda: [_check_target(root, p.name, time, p.centres.shape[0], force) for p in mine])
    opts = run_agreed(comm, _source_options, ch, options, source)
    from ..coupling import init_field
    from ..halo import exchange_faces

    slab_x = block_split(grid.shape[0], size, rank)
    local = Grid(grid.shape, grid.lengths, y=grid.y, local=(slab_x, slice(None), slice(None)))
    res = init_field(comm, local, source=source, options=opts, seed=seed, result=True, strategy=strategy)
    slab = np.asarray(res.field)
    blocks = [[(block_split(grid.shape[0], size, r).start, block_split(grid.shape[0], size, r).stop),
               (0, grid.shape[1]), (0, grid.shape[2])] for r in range(size)]
    planes = exchange_faces(comm, blocks, grid.shape, [slab[c] for c in range(3)])
    above = planes[0][1].reshape(3, grid.shape[1], grid.shape[2]) if slab.shape[1] else \
        np.zeros((3, grid.shape[1], grid.shape[2]))
    values = _sample(comm, ch, grid, slab, above, mine)
    units = comm.bcast(res.source_info.units if rank == 0 and res.source_info else None, root=0)
    # bulk velocity of one layout (the first part's): processor parts, else the reconstructed case
    first = "." if parts[0] == "." else None
    num, den = run_agreed(comm, lambda: (
        sum(float(v[:, 0] @ p.volumes) for p, v in zip(mine, values) if (p.name == ".") == (first == ".")),
        sum(float(p.volumes.sum()) for p in mine if (p.name == ".") == (first == "."))))
    num, den = comm.allreduce(num), comm.allreduce(den)
    bulk = num / den
    target = units.bulk if units is not None else (ch.ubar if ch.ubar is not None else bulk)
    factor = target / bulk if bulk != 0 else 1.0
    for v in values:
        v[:, 0] *= factor
    coupled = _across(comm, parts, mine, values)
    written = _write_all(comm, root, time, mine, values, coupled)
    everything = [pair for pairs in comm.allgather(written) for pair in pairs]
    order = {p: n for n, p in enumerate(parts)}
    everything.sort(key=lambda fb: order[fb[0].parent.parent.name if fb[0].parent.parent != root else "."])
    files = [f for f, _ in everything]
    backups = [b for _, b in everything if b is not None]
    log.info("wrote %d U file(s) in %s", len(files), root)
    return Written(ch, grid, files, backups, factor, bulk * factor, res.report, units, opts)
