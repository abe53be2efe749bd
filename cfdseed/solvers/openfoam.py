"""OpenFOAM channel adapter: write a cfdseed initial velocity into a case's ``U``.

Python::

    from mpi4py import MPI
    from cfdseed.solvers.openfoam import write_initial_field
    res = write_initial_field(MPI.COMM_WORLD, "channel395", source="gan", seed=1)

Command line (:mod:`cfdseed.cli`; under ``mpiexec`` every rank takes a share of the processor
directories)::

    cfdseed openfoam channel395 --seed 1

What happens, collectively over the ranks of ``comm``:

1. **The case's layouts.** ``0/U`` of the reconstructed case (``constant/polyMesh``) and/or
   ``processor*/0/U`` of a decomposed one (``layout="auto"``: every layout present). Processor
   directories must be ``processor0 .. processorN-1`` with ``N`` the ``numberOfSubdomains`` of
   ``system/decomposeParDict``; each processor's field must have one value per cell of its mesh.
2. **The mesh, through OpenFOAM itself.** Cell centres and volumes come from OpenFOAM's
   ``postProcess -funcs '(writeCellCentres writeCellVolumes)'`` run in a scratch copy of each mesh
   part (the case is not touched: ``system`` is copied, links as the files they point to; binary
   output, so the coordinates are exact); patches, points (also compressed, ``points.gz``),
   ``fvOptions`` and ``transportProperties`` are read with **foamlib**. Each rank handles its own
   processor directories.
3. **The channel.** Walls: the ``wall`` patches, whose faces must all lie on the two planes
   ``y = ymin`` and ``y = ymax`` of the mesh's bounding box; every other patch must be ``cyclic``
   (or ``cyclicAMI``, or a processor patch): the channel is periodic in x and z with the bounding
   box's extents as periods. The bulk velocity is the ``Ubar`` of a ``meanVelocityForce`` (it must
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
   that tensor structure get a grid twice as fine as their mean cell size (x, z) and wall-normal
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
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._collective import agree, run_agreed
from ..errors import CaseError
from ..grid import Grid, block_split

__all__ = ["ChannelCase", "Written", "write_initial_field", "find_case", "BACKUP_SUFFIX", "LAYOUTS"]

log = logging.getLogger(__name__)

#: Name suffix of the kept original field (``U`` -> ``U.before-cfdseed.bak``): OpenFOAM's tools
#: skip ``*.bak`` in a time folder (reconstructPar, decomposePar, foamToVTK do not take it for a field).
BACKUP_SUFFIX = ".before-cfdseed.bak"
#: The backup's name before 2026-12-06 (a field to OpenFOAM's tools), still honoured as a kept original.
_OLD_BACKUP_SUFFIX = ".before-cfdseed"
#: Which fields to write: every layout present, or one of them.
LAYOUTS = ("auto", "reconstructed", "decomposed")
#: Relative tolerance (of the box size) for "the same coordinate" and "on the wall plane".
_TOL = 1e-6
#: Most distinct coordinates taken as the structured grid's points along one axis.
_MAX_POINTS = 4096
_DEBIAN_FOAM = Path("/usr/share/openfoam")
#: Where a meanVelocityForce may be (OpenFOAM.org 9+: fvConstraints, fvModels): of each name the
#: first folder that holds it, in the order OpenFOAM looks (the other is then not read).
_FORCE_FILES = {"fvOptions": ("constant", "system"), "fvConstraints": ("system", "constant"),
                "fvModels": ("constant", "system")}
#: Where nu may be (OpenFOAM.org 10+: physicalProperties).
_NU_FILES = ("constant/transportProperties", "constant/physicalProperties")
#: Variables of MPI launchers (MPICH's Hydra, Open MPI, PMI/PMIx, Slurm's step) kept from postProcess.
_LAUNCH_VARS = re.compile(r"^(PMI_|PMIX_|HYDRA_|HYDI_|OMPI_COMM_WORLD|OMPI_MCA_(ess|orte|pmix)|MPI_LOCAL|MPIR_|"
                          r"SLURM_STEP|SLURM_PROCID|SLURM_LOCALID)")


@dataclass(frozen=True)
class ChannelCase:
    """The channel found in a case (identical on every rank)."""

    path: Path
    #: Mesh parts written: ``"."`` (reconstructed) and/or ``"processor0"``, ...
    parts: tuple[str, ...]
    time: str
    cells: int  # cells of one layout
    lengths: tuple[float, float, float]  # periods in x and z; the wall distance in y
    origin: tuple[float, float, float]  # lower corner of the bounding box (the lower wall's y)
    walls: tuple[str, ...]  # wall patch names
    cyclic: tuple[str, ...]  # cyclic patch names
    ubar: float | None  # meanVelocityForce's Ubar (x component), None without one
    nu: float | None  # transportProperties' nu
    #: Whether the cell centres form a tensor grid with uniform x and z (sampling is exact).
    tensor: bool


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


# -- the case on disk ---------------------------------------------------------------------
def _foamlib() -> Any:
    try:
        import foamlib
    except ImportError as exc:
        raise CaseError(f"foamlib is not installed ({exc}); pip install 'cfdseed[openfoam]'") from None
    return foamlib


def _read(path: Path, what: str) -> Any:
    """A foamlib file (or its compressed ``.gz``), with errors as :class:`CaseError`."""
    fl = _foamlib()
    if not path.is_file() and path.with_name(path.name + ".gz").is_file():
        path = path.with_name(path.name + ".gz")
    if not path.is_file():
        raise CaseError(f"{what}: {path} does not exist")
    try:
        return fl.FoamFieldFile(path) if what.endswith("field") else fl.FoamFile(path)
    except Exception as exc:  # noqa: BLE001 - foamlib raises several types
        raise CaseError(f"{what}: cannot read {path}: {exc}") from None


def find_case(case: str | Path, *, layout: str = "auto", time: str = "0") -> tuple[Path, tuple[str, ...]]:
    """The case folder and the mesh parts to write (``"."`` and/or ``processorN``), checked.

    Raises
    ------
    CaseError
        No such folder, no ``system/controlDict``, no mesh, processor directories that do not
        match ``system/decomposeParDict``, a collated decomposition, a missing or compressed
        ``TIME/U`` in a part, or an unknown ``layout``.
    """
    if layout not in LAYOUTS:
        raise CaseError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    root = Path(case).resolve()
    if not root.is_dir():
        raise CaseError(f"no OpenFOAM case at {case}: not a folder")
    if not (root / "system" / "controlDict").is_file():
        raise CaseError(f"{case} is not an OpenFOAM case: no system/controlDict")
    if any(p.is_dir() for p in root.glob("processors[0-9]*")):
        raise CaseError(f"{case} is decomposed in the collated format (processors*/): cfdseed writes the "
                        "uncollated one; decompose with -fileHandler uncollated")
    procs = {}
    for p in root.glob("processor*"):
        m = re.fullmatch(r"processor(\d+)", p.name)
        if m and p.is_dir():
            procs[int(m.group(1))] = p.name
    recon = (root / "constant" / "polyMesh" / "boundary").is_file()
    if procs:
        n = len(procs)
        if sorted(procs) != list(range(n)):
            raise CaseError(f"{case}: processor directories {', '.join(sorted(procs.values()))} are not "
                            f"processor0 .. processor{n - 1}: run decomposePar again")
        dpd = root / "system" / "decomposeParDict"
        if dpd.is_file():
            want = _read(dpd, "decomposeParDict").get("numberOfSubdomains")
            if want is not None and int(want) != n:
                raise CaseError(f"{case}: {n} processor directories do not match numberOfSubdomains {want} "
                                "in system/decomposeParDict: run decomposePar again (-force)")
        for k in range(n):
            if not (root / procs[k] / "constant" / "polyMesh" / "boundary").is_file():
                raise CaseError(f"{case}: {procs[k]} has no mesh (constant/polyMesh): run decomposePar again")
    if layout == "reconstructed" and not recon:
        raise CaseError(f"{case}: no mesh in constant/polyMesh (run blockMesh, or reconstructParMesh)")
    if layout == "decomposed" and not procs:
        raise CaseError(f"{case}: not decomposed (no processor* directories): run decomposePar")
    parts = ((".",) if recon and layout != "decomposed" else ()) + \
        (tuple(procs[k] for k in sorted(procs)) if layout != "reconstructed" else ())
    if not parts:
        raise CaseError(f"{case}: no mesh: neither constant/polyMesh nor processor*/constant/polyMesh "
                        "(run blockMesh)")
    for part in parts:
        tdir = root / part / time
        where = "" if part == "." else f"{part}/"
        if (tdir / "U.gz").exists():
            raise CaseError(f"{case}: {where}{time}/U is compressed (U.gz): gunzip it first")
        if not (tdir / "U").is_file():
            hint = " (copy 0.orig to 0, e.g. restore0Dir, then decompose)" if time == "0" else ""
            raise CaseError(f"{case}: no velocity field {where}{time}/U{hint}")
    return root, parts


def _foam_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not _LAUNCH_VARS.match(k)}
    if "WM_PROJECT_DIR" not in env and (_DEBIAN_FOAM / "etc" / "controlDict").is_file():
        env["WM_PROJECT_DIR"] = str(_DEBIAN_FOAM)
    return env


@dataclass
class _Part:
    """One mesh part as OpenFOAM sees it (on the rank that handles it)."""

    name: str
    centres: np.ndarray  # (n, 3)
    volumes: np.ndarray  # (n,)
    patches: dict[str, str]  # name -> type
    wall_y: dict[str, np.ndarray]  # wall patch -> y of its face centres
    lo: np.ndarray  # bounding box of the points
    hi: np.ndarray
    #: processor(Cyclic) patches: their ``value`` is the field in the cells across, which the
    #: solver's first flux reads before it evaluates its coupled patches
    coupled: list[_Coupled] = field(default_factory=list)


@dataclass(frozen=True)
class _Coupled:
    """A processor(Cyclic) patch of one part: face ``i`` faces face ``i`` of its partner, the patch
    of processor ``neighbour`` back to this one (through the partner cyclic of ``refer``)."""

    name: str
    neighbour: int  # neighbProcNo
    key: tuple[int, int, str]  # (myProcNo, neighbProcNo, referPatch or "")
    partner: tuple[int, int, str]  # the partner's key
    cells: np.ndarray  # (nFaces,) this part's cell at each face


def _mesh_part(root: Path, part: str, scratch: Path) -> _Part:
    """Cell centres and volumes of one mesh part by OpenFOAM's postProcess in a scratch case."""
    exe = shutil.which("postProcess")
    if exe is None:
        raise CaseError("OpenFOAM's postProcess is not on PATH: source OpenFOAM's etc/bashrc "
                        "(Debian: apt install openfoam)")
    mesh = root / part / "constant" / "polyMesh"
    work = scratch / ("case" if part == "." else part)
    # links copied as the files they point to: the edits below must not reach a shared controlDict
    shutil.copytree(root / "system", work / "system", ignore_dangling_symlinks=True)
    (work / "constant").mkdir()
    (work / "constant" / "polyMesh").symlink_to(mesh, target_is_directory=True)
    (work / "0").mkdir()
    cd = _read(work / "system" / "controlDict", "controlDict")
    cd["writeFormat"] = "binary"
    if "functions" in cd:
        del cd["functions"]
    cmd = [exe, "-case", str(work), "-time", "0", "-funcs", "(writeCellCentres writeCellVolumes)"]
    run = subprocess.run(cmd, env=_foam_env(), capture_output=True, text=True)
    where = "the case" if part == "." else part
    if run.returncode != 0 or not (work / "0" / "C").is_file():
        text = (run.stdout + run.stderr).strip().splitlines()
        tail = " ".join(" ".join(text[-8:]).split())
        raise CaseError(f"OpenFOAM could not read the mesh of {where} ({' '.join(cmd[:1] + cmd[3:])}): {tail}")
    c = _read(work / "0" / "C", "cell centres field")
    centres = np.asarray(c.internal_field, dtype=np.float64).reshape(-1, 3)
    volumes = np.asarray(_read(work / "0" / "V", "cell volumes field").internal_field, dtype=np.float64)
    volumes = np.broadcast_to(volumes, centres.shape[:1]).copy()
    boundary = _read(mesh / "boundary", "boundary")[None]
    patches = {str(name): str(d.get("type", "")) for name, d in boundary}
    bf = c.boundary_field
    wall_y: dict[str, np.ndarray] = {}
    for name, kind in patches.items():
        if kind == "wall":
            entry = bf[name]
            value = entry["value"] if "value" in entry else None
            # a patch without faces on this part is written "nonuniform 0" (foamlib: a tuple)
            vals = np.asarray(value, dtype=np.float64) if isinstance(value, np.ndarray) else np.zeros((0, 3))
            wall_y[name] = vals.reshape(-1, 3)[:, 1]
    points = np.asarray(_read(mesh / "points", "points")[None], dtype=np.float64).reshape(-1, 3)
    return _Part(part, centres, volumes, patches, wall_y, points.min(axis=0), points.max(axis=0),
                 _coupled(mesh, boundary))


def _coupled(mesh: Path, boundary: Any) -> list[_Coupled]:
    """The processor(Cyclic) patches of a part's mesh with the cells at their faces."""
    entries = {str(name): d for name, d in boundary}
    found = [(name, d) for name, d in entries.items() if d.get("type") in ("processor", "processorCyclic")]
    if not found:
        return []
    owner = np.asarray(_read(mesh / "owner", "owner")[None], dtype=np.int64).reshape(-1)
    out = []
    for name, d in found:
        me, nb, refer = int(d["myProcNo"]), int(d["neighbProcNo"]), str(d.get("referPatch", ""))
        if refer and refer not in entries:
            raise CaseError(f"{mesh}: {name} refers to patch {refer!r}, which the boundary file does not list")
        across = str(entries[refer]["neighbourPatch"]) if refer else ""
        start, n = int(d["startFace"]), int(d["nFaces"])
        out.append(_Coupled(name, nb, (me, nb, refer), (nb, me, across), owner[start:start + n]))
    return out



def _distinct(values: np.ndarray, tol: float, limit: int) -> np.ndarray | None:
    """Sorted distinct values (clusters closer than ``tol`` merged to their mean); None past ``limit``."""
    if values.size == 0:
        return values
    v = np.sort(values)
    cut = np.flatnonzero(np.diff(v) > tol) + 1
    if cut.size + 1 > limit:
        return None
    return np.array([s.mean() for s in np.split(v, cut)])


def _case_figures(root: Path) -> tuple[float | None, float | None]:
    """``Ubar`` (x, checked to point along +x) of a meanVelocityForce and ``nu`` of the case (None: none)."""
    ubar = None
    found = [next((f"{d}/{n}" for d in dirs if (root / d / n).is_file()), None) for n, dirs in _FORCE_FILES.items()]
    for rel in (r for r in found if r is not None):
        path = root / rel
        for name, entry in _read(path, rel).as_dict().items():
            if isinstance(entry, Mapping) and entry.get("type") == "meanVelocityForce":
                coeffs = entry.get("meanVelocityForceCoeffs")  # the coefficient-dictionary form
                if not isinstance(coeffs, Mapping):
                    coeffs = entry
                vec = np.asarray(coeffs.get("Ubar", ()), dtype=np.float64).reshape(-1)
                if vec.size != 3:
                    raise CaseError(f"{rel}: {name}: Ubar must be a vector, got {coeffs.get('Ubar')!r}")
                if vec[0] <= 0 or abs(vec[1]) > _TOL * vec[0] or abs(vec[2]) > _TOL * vec[0]:
                    raise CaseError(f"{rel}: {name}: Ubar {tuple(vec)} must point along +x "
                                    "(cfdseed's streamwise direction; walls normal to y)")
                ubar = float(vec[0])
    for rel in _NU_FILES:
        path = root / rel
        value = _read(path, rel).get("nu") if path.is_file() else None
        value = getattr(value, "value", value)
        if isinstance(value, (int, float)) and value > 0:
            return ubar, float(value)
    return ubar, None


def _detect(root: Path, parts: Sequence[str], time: str, summary: Sequence[dict[str, Any]]) -> tuple[ChannelCase, Grid]:
    """The channel and its structured grid from every part's summary (root only)."""
    lo = np.min([s["lo"] for s in summary], axis=0)
    hi = np.max([s["hi"] for s in summary], axis=0)
    ext = hi - lo
    if np.any(ext <= 0):
        raise CaseError(f"{root}: the mesh is flat (bounding box {tuple(lo)} - {tuple(hi)})")
    tol = _TOL * ext
    kinds: dict[str, str] = {}
    for s in summary:
        kinds.update(s["patches"])
    walls = tuple(n for n, k in kinds.items() if k == "wall")
    cyclic = tuple(n for n, k in kinds.items() if k in ("cyclic", "cyclicAMI", "cyclicSlip"))
    other = [f"{n} ({k})" for n, k in kinds.items()
             if n not in walls and n not in cyclic and k not in ("processor", "processorCyclic")]
    if other:
        raise CaseError(f"{root} is not a periodic channel: patch {', '.join(other)}; cfdseed needs wall patches "
                        "at the two y planes of the box and cyclic patches in x and z, nothing else")
    if not walls:
        raise CaseError(f"{root} is not a channel: no patch of type wall")
    if not cyclic:
        raise CaseError(f"{root} is not a periodic channel: no cyclic patches (x and z must be periodic)")
    seen = [False, False]
    for name in walls:
        ys = np.concatenate([s["wall_y"][name] for s in summary if name in s["wall_y"]])
        at_lo, at_hi = np.abs(ys - lo[1]) <= tol[1], np.abs(ys - hi[1]) <= tol[1]
        if not np.all(at_lo | at_hi):
            bad = ys[~(at_lo | at_hi)]
            raise CaseError(f"{root} is not a channel with walls normal to y: wall patch {name!r} has faces at "
                            f"y = {bad.min():g} .. {bad.max():g}, between the planes y = {lo[1]:g} and {hi[1]:g}")
        seen[0] |= bool(at_lo.any())
        seen[1] |= bool(at_hi.any())
    if not all(seen):
        missing = f"y = {lo[1]:g}" if not seen[0] else f"y = {hi[1]:g}"
        raise CaseError(f"{root} is not a channel: no wall faces on the plane {missing}")
    layout_one = [s for s in summary if (s["part"] == ".") == (parts[0] == ".")]
    cells = int(sum(s["cells"] for s in layout_one))
    ubar, nu = _case_figures(root)
    # structured grid: distinct centre coordinates per axis (None: no tensor structure)
    axes_pts = []
    for a in range(3):
        vals = [s["distinct"][a] for s in summary]
        merged = None if any(v is None for v in vals) else _distinct(np.concatenate(vals), tol[a], _MAX_POINTS)
        axes_pts.append(merged)
    spacing = (float(np.prod(ext)) / max(cells, 1)) ** (1.0 / 3.0)
    shape, x0 = [0, 0, 0], [0.0, 0.0, 0.0]
    tensor = True
    for a in (0, 2):
        pts = axes_pts[a]
        n = 0 if pts is None else pts.size
        uniform = n >= 2 and np.max(np.abs(pts - (pts[0] + np.arange(n) * ext[a] / n))) <= tol[a]
        if uniform:
            shape[a], x0[a] = n, float(pts[0])
        else:
            tensor = False
            shape[a], x0[a] = int(min(_MAX_POINTS, max(8, math.ceil(2 * ext[a] / spacing)))), float(lo[a])
    ys = axes_pts[1]
    if ys is not None:
        ys = ys[(ys - lo[1] > tol[1]) & (hi[1] - ys > tol[1])] - lo[1]
        y = np.concatenate([[0.0], ys, [ext[1]]])
    else:
        tensor = False
        allq = np.concatenate([s["y_quantiles"] for s in summary])
        ny = int(min(_MAX_POINTS, max(16, math.ceil(2 * ext[1] / spacing))))
        inner = np.unique(np.quantile(allq, np.linspace(0, 1, ny))) - lo[1]
        y = np.concatenate([[0.0], inner[(inner > tol[1]) & (ext[1] - inner > tol[1])], [ext[1]]])
    shape[1] = y.size
    grid = Grid(shape, tuple(float(e) for e in ext), y=y)
    ch = ChannelCase(root, tuple(parts), time, cells, tuple(float(e) for e in ext),
                     (x0[0], float(lo[1]), x0[2]), walls, cyclic, ubar, nu, tensor)
    return ch, grid


def _summary(p: _Part) -> dict[str, Any]:
    """What the root needs of one part to find the channel (small)."""
    ext = np.maximum(p.hi - p.lo, 1e-300)
    distinct = [_distinct(p.centres[:, a], _TOL * ext[a] * 0.5, _MAX_POINTS) for a in range(3)]
    yq = np.quantile(p.centres[:, 1], np.linspace(0, 1, 257)) if p.centres.size else np.zeros(0)
    return {"part": p.name, "cells": p.centres.shape[0], "lo": p.lo, "hi": p.hi, "patches": p.patches,
            "wall_y": p.wall_y, "distinct": distinct, "y_quantiles": yq}


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
    no_ubar = (f"{ch.path}: no meanVelocityForce Ubar (fvOptions, fvConstraints or fvModels in constant "
               "or system): give the bulk velocity as the source option bulk (--option bulk=U_B)")
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
        missing.append(f"{ch.path}: no nu in {' or '.join(_NU_FILES)}: give the source option nu, or re_tau")
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
        internal = None if _unexpanded(raw) else np.asarray(raw)
    except Exception as exc:  # noqa: BLE001
        raise CaseError(f"{where}: cannot read internalField: {exc}") from None
    if internal is None:
        raise CaseError(f"{where}: internalField {raw!r} holds a macro, which cfdseed does not expand: write "
                        f"the value there (foamDictionary -expand {where} > U.expanded, then move it over U)")
    if internal.ndim == 2 and internal.shape[0] != cells:
        raise CaseError(f"{where} has {internal.shape[0]} values, its mesh {cells} cells: the field does not "
                        "match the decomposition (run decomposePar again)")
    if internal.shape[-1:] != (3,):
        raise CaseError(f"{where} is not a vector field (internalField shape {internal.shape})")
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


def _unexpanded(value: Any) -> bool:
    """Whether a foamlib value holds a ``$macro`` or ``#directive`` (foamlib keeps them as text)."""
    if isinstance(value, str):
        return value.startswith(("$", "#"))
    return isinstance(value, (tuple, list)) and any(_unexpanded(v) for v in value)


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
        Which ``U`` files to write; ``auto``: every layout present.
    force : bool
        Write even though an earlier run's backup ``U.before-cfdseed.bak`` exists (it is kept).
    strategy : {"auto", "root", "distributed"}
        :func:`cfdseed.init_field`'s: build the structured field on rank 0, or as x slabs on every
        rank (no rank holds it whole; ``gan``); auto: distributed past 4 GiB.

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
    """
    rank, size = comm.Get_rank(), comm.Get_size()
    root, parts = _bcast_agreed(comm, lambda: find_case(case, layout=layout, time=time))
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
    ch, grid = _bcast_agreed(comm, lambda: _detect(root, parts, time, [s for ss in summaries for s in ss]))
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


def _bcast_agreed(comm: Any, fn: Any) -> Any:
    """``fn()`` on rank 0, its result broadcast, its exception raised on every rank."""
    out, err = None, None
    if comm.Get_rank() == 0:
        try:
            out = fn()
        except Exception as exc:  # noqa: BLE001 - agreed
            err = exc
    agree(comm, err)
    return comm.bcast(out, root=0)
