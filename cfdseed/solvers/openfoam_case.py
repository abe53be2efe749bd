"""Reading and understanding an OpenFOAM channel case, for :mod:`cfdseed.solvers.openfoam`.

This module owns everything cfdseed learns from the case before it synthesises a field (steps 1 to 4
of :mod:`cfdseed.solvers.openfoam`'s docstring); it writes nothing, and leaves the contents of the
``U`` files to :mod:`cfdseed.solvers.openfoam`, which checks and writes them:

- **files**: foamlib access (also to compressed ``.gz`` files), every failure a :class:`CaseError`;
- **the layouts**: :func:`find_case`, the reconstructed case and/or its processor directories, checked
  against ``system/decomposeParDict`` and for a ``U`` in each;
- **the mesh, through OpenFOAM itself**: each part's cell centres and volumes by ``postProcess`` in a
  scratch copy (in an environment cleared of the launch variables of cfdseed's own MPI), its patches,
  bounding box and processor patches (``_mesh_part``), reduced to a small summary for the root;
- **the channel**: walls on the two y planes, cyclic x and z, ``Ubar`` and ``nu`` from the case's
  files, and the structured grid that resolves the mesh (``_detect``), as a :class:`ChannelCase`.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CaseError
from ..grid import Grid

__all__ = ["ChannelCase", "find_case", "LAYOUTS"]

#: Which fields to write: every layout present, or one of them.
LAYOUTS = ("auto", "reconstructed", "decomposed")
#: Relative tolerance (of the box size) for "the same coordinate" and "on the wall plane".
_TOL = 1e-6
#: Most distinct coordinates taken as the structured grid's points along one axis (10 240 in x:
#: the largest channel DNS, Re_tau 5200).
_MAX_POINTS = 16384
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
    #: Why ``ubar`` / ``nu`` is None although the files hold one (a macro, two forces); "" otherwise.
    ubar_note: str = ""
    nu_note: str = ""


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

    ``layout="auto"``: every layout with a mesh; where the case has both, those that hold
    ``TIME/U`` (a decomposed run's restart time exists in the processor directories only).

    Raises
    ------
    CaseError
        A ``time`` that is not a time directory's name (digits: nothing outside the case is
        written), no such folder, no ``system/controlDict``, no mesh, processor directories that do not
        match ``system/decomposeParDict``, a collated decomposition, a missing or compressed
        ``TIME/U`` in a part, or an unknown ``layout``.
    """
    if layout not in LAYOUTS:
        raise CaseError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if not isinstance(time, str) or not re.fullmatch(r"[0-9][0-9.eE+-]*", time):
        raise CaseError(f"time must name a time directory of the case (e.g. '0' or '1.5'), got {time!r}")
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
    both = layout == "auto" and recon and bool(procs)
    if both:  # both meshes: the layouts that hold this time's U
        held = [p for p in parts if (root / p / time / "U").is_file() or (root / p / time / "U.gz").exists()]
        if held and (held == ["."] or "." not in held and len(held) == len(procs)):
            parts = tuple(held)
    for part in parts:
        tdir = root / part / time
        where = "" if part == "." else f"{part}/"
        if (tdir / "U.gz").exists():
            raise CaseError(f"{case}: {where}{time}/U is compressed (U.gz): gunzip it first")
        if not (tdir / "U").is_file():
            hint = " (copy 0.orig to 0, e.g. restore0Dir, then decompose)" if time == "0" else ""
            if both:
                hint = " (the layouts hold it partly; --layout reconstructed or decomposed writes one)"
            raise CaseError(f"{case}: no velocity field {where}{time}/U{hint}")
    return root, parts


def _foam_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not _LAUNCH_VARS.match(k)}
    if "WM_PROJECT_DIR" not in env and (_DEBIAN_FOAM / "etc" / "controlDict").is_file():
        env["WM_PROJECT_DIR"] = str(_DEBIAN_FOAM)
    return env


# -- the mesh, through OpenFOAM -----------------------------------------------------------
_FOAM_HEADER = "FoamFile {{ version 2.0; format ascii; class dictionary; object {}; }}\n"
#: The scratch case's system files: what postProcess needs to read a mesh and write C and V.
_SCRATCH_SYSTEM = {
    "controlDict": ("application postProcess; startFrom startTime; startTime 0; stopAt endTime; endTime 0; "
                    "deltaT 1; writeControl timeStep; writeInterval 1; writeFormat binary; "
                    "writeCompression off; timeFormat general; runTimeModifiable false;\n"),
    "fvSchemes": ("ddtSchemes {} gradSchemes {} divSchemes {} laplacianSchemes {} interpolationSchemes {} "
                  "snGradSchemes {}\n"),
    "fvSolution": "",
}


@dataclass
class _Part:
    """One mesh part as OpenFOAM sees it (on the rank that handles it)."""

    name: str
    centres: np.ndarray  # (n, 3)
    volumes: np.ndarray  # (n,)
    patches: dict[str, str]  # name -> type
    walls: dict[str, np.ndarray]  # wall patch -> its face centres (n, 3)
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
    # a case of its own around the mesh: the case's system files may #include case-relative files,
    # load libraries or run function objects, none of which reading a mesh needs
    (work / "system").mkdir(parents=True)
    for name, text in _SCRATCH_SYSTEM.items():
        (work / "system" / name).write_text(_FOAM_HEADER.format(name) + text)
    (work / "constant").mkdir()
    (work / "constant" / "polyMesh").symlink_to(mesh, target_is_directory=True)
    (work / "0").mkdir()
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
    walls: dict[str, np.ndarray] = {}
    for name, kind in patches.items():
        if kind == "wall":
            entry = bf[name]
            value = entry["value"] if "value" in entry else None
            # a patch without faces on this part is written "nonuniform 0" (foamlib: a tuple)
            vals = np.asarray(value, dtype=np.float64) if isinstance(value, np.ndarray) else np.zeros((0, 3))
            walls[name] = vals.reshape(-1, 3)
    points = np.asarray(_read(mesh / "points", "points")[None], dtype=np.float64).reshape(-1, 3)
    return _Part(part, centres, volumes, patches, walls, points.min(axis=0), points.max(axis=0),
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


# -- the channel --------------------------------------------------------------------------
def _distinct(values: np.ndarray, tol: float, limit: int) -> np.ndarray | None:
    """Sorted distinct values (clusters closer than ``tol`` merged to their mean); None past ``limit``."""
    if values.size == 0:
        return values
    v = np.sort(values)
    cut = np.flatnonzero(np.diff(v) > tol) + 1
    if cut.size + 1 > limit:
        return None
    return np.array([s.mean() for s in np.split(v, cut)])


def unexpanded(value: Any) -> bool:
    """Whether a foamlib value holds a ``$macro`` or ``#directive`` (foamlib keeps them as text)."""
    if isinstance(value, str):
        return value.startswith(("$", "#"))
    return isinstance(value, (tuple, list)) and any(unexpanded(v) for v in value)


def _macro(rel: str, what: str, value: Any) -> str:
    return (f"{rel}: {what} {value!r} holds a macro, which cfdseed does not expand (foamDictionary -expand {rel} "
            "shows its value)")


@dataclass(frozen=True)
class _Figures:
    """What the case's files say of the units: values, or why a value present could not be taken."""

    ubar: float | None = None
    nu: float | None = None
    ubar_note: str = ""
    nu_note: str = ""


def _case_figures(root: Path) -> _Figures:
    """``Ubar`` (x, checked to point along +x) of the active meanVelocityForce and ``nu`` of the case
    (None: none; a macro or two active forces: None with a note, so that an option can stand in)."""
    forces: list[tuple[str, float]] = []
    ubar_note = ""
    found = [next((f"{d}/{n}" for d in dirs if (root / d / n).is_file()), None) for n, dirs in _FORCE_FILES.items()]
    for rel in (r for r in found if r is not None):
        path = root / rel
        for name, entry in _read(path, rel).as_dict().items():
            if not (isinstance(entry, Mapping) and entry.get("type") == "meanVelocityForce"):
                continue
            if entry.get("active", True) in (False, "false", "off", "no"):
                continue
            coeffs = entry.get("meanVelocityForceCoeffs")  # the coefficient-dictionary form
            if not isinstance(coeffs, Mapping):
                coeffs = entry
            raw = coeffs.get("Ubar", ())
            if unexpanded(raw):
                ubar_note = _macro(rel, f"{name}: Ubar", raw)
                continue
            try:
                vec = np.asarray(raw, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                vec = np.zeros(0)
            if vec.size != 3:
                raise CaseError(f"{rel}: {name}: Ubar must be a vector, got {raw!r}")
            if vec[0] <= 0 or abs(vec[1]) > _TOL * vec[0] or abs(vec[2]) > _TOL * vec[0]:
                raise CaseError(f"{rel}: {name}: Ubar {tuple(float(v) for v in vec)} must point along +x "
                                "(cfdseed's streamwise direction; walls normal to y)")
            forces.append((f"{rel}: {name}", float(vec[0])))
    ubar = forces[0][1] if len(forces) == 1 and not ubar_note else None
    if len(forces) + bool(ubar_note) > 1:
        ubar_note = ("more than one active meanVelocityForce (" + ", ".join(f"{w}, Ubar {u:g}" for w, u in forces)
                     + (f"; {ubar_note}" if ubar_note else "") + "): which bulk velocity the solver keeps is unclear")
    for rel in _NU_FILES:
        path = root / rel
        value = _read(path, rel).get("nu") if path.is_file() else None
        value = getattr(value, "value", value)
        if unexpanded(value):
            return _Figures(ubar, None, ubar_note, _macro(rel, "nu", value))
        if isinstance(value, (int, float)) and value > 0:
            return _Figures(ubar, float(value), ubar_note)
    return _Figures(ubar, None, ubar_note)


def _check_layouts_agree(root: Path, summary: Sequence[dict[str, Any]], tol: np.ndarray) -> None:
    """The processor meshes, where written with the reconstructed one, must be its decomposition
    (a blockMesh run after decomposePar leaves them stale): same cell count, same bounding box."""
    recon = [s for s in summary if s["part"] == "."]
    procs = [s for s in summary if s["part"] != "."]
    if not recon or not procs:
        return
    n_recon, n_procs = int(recon[0]["cells"]), int(sum(s["cells"] for s in procs))
    lo_p, hi_p = np.min([s["lo"] for s in procs], axis=0), np.max([s["hi"] for s in procs], axis=0)
    same_box = np.all(np.abs(lo_p - recon[0]["lo"]) <= tol) and np.all(np.abs(hi_p - recon[0]["hi"]) <= tol)
    if n_recon != n_procs or not same_box:
        raise CaseError(f"{root}: the processor meshes ({n_procs} cells, box {_box(lo_p, hi_p)}) are not the "
                        f"decomposition of constant/polyMesh ({n_recon} cells, box "
                        f"{_box(recon[0]['lo'], recon[0]['hi'])}): run decomposePar -force, or write one layout "
                        "(--layout)")


def _box(lo: np.ndarray, hi: np.ndarray) -> str:
    return "({}) - ({})".format(*(" ".join(f"{float(v):g}" for v in c) for c in (lo, hi)))


def _detect(root: Path, parts: Sequence[str], time: str, summary: Sequence[dict[str, Any]]) -> tuple[ChannelCase, Grid]:
    """The channel and its structured grid from every part's summary (root only)."""
    lo = np.min([s["lo"] for s in summary], axis=0)
    hi = np.max([s["hi"] for s in summary], axis=0)
    ext = hi - lo
    if np.any(ext <= 0):
        raise CaseError(f"{root}: the mesh is flat (bounding box {_box(lo, hi)})")
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
    _check_walls_span_the_box(root, summary, lo, hi, tol)
    layout_one = [s for s in summary if (s["part"] == ".") == (parts[0] == ".")]
    cells = int(sum(s["cells"] for s in layout_one))
    _check_layouts_agree(root, summary, tol)
    fig = _case_figures(root)
    # structured grid: distinct centre coordinates per axis of one layout (None: no tensor structure)
    axes_pts = []
    for a in range(3):
        vals = [s["distinct"][a] for s in layout_one]
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
            # twice as fine as the mean cell, but no finer than twice the mesh's own distinct
            # coordinates (a graded structured mesh: anisotropic cells would get far too many)
            want = math.ceil(2 * ext[a] / spacing)
            if n:
                want = min(want, 2 * n)
            shape[a], x0[a] = int(min(_MAX_POINTS, max(8, want))), float(lo[a])
    ys = axes_pts[1]
    if ys is not None:
        ys = ys[(ys - lo[1] > tol[1]) & (hi[1] - ys > tol[1])] - lo[1]
        y = np.concatenate([[0.0], ys, [ext[1]]])
    else:
        tensor = False
        allq = np.concatenate([s["y_quantiles"] for s in layout_one])
        ny = int(min(_MAX_POINTS, max(16, math.ceil(2 * ext[1] / spacing))))
        inner = np.unique(np.quantile(allq, np.linspace(0, 1, ny))) - lo[1]
        y = np.concatenate([[0.0], inner[(inner > tol[1]) & (ext[1] - inner > tol[1])], [ext[1]]])
    shape[1] = y.size
    grid = Grid(shape, tuple(float(e) for e in ext), y=y)
    ch = ChannelCase(root, tuple(parts), time, cells, tuple(float(e) for e in ext),
                     (x0[0], float(lo[1]), x0[2]), walls, cyclic, fig.ubar, fig.nu, tensor, fig.ubar_note,
                     fig.nu_note)
    return ch, grid


def _check_walls_span_the_box(root: Path, summary: Sequence[dict[str, Any]], lo: np.ndarray, hi: np.ndarray,
                              tol: np.ndarray) -> None:
    """Each wall plane's faces must reach the box's x and z ends to within one face: the periods are
    the box's extents, which a sheared or skewed periodic mesh (its cyclic translation shorter than
    the box) contradicts; the field would then jump at the seam."""
    for wall_y, which in ((lo[1], "lower"), (hi[1], "upper")):
        rows = np.array([r for s in summary for r in s["wall_planes"] if abs(r[0] - wall_y) <= tol[1]])
        for a, axis in ((1, "x"), (4, "z")):
            first, last, gap = rows[:, a].min(), rows[:, a + 1].max(), rows[:, a + 2].max()
            if gap <= 0:  # one face across: nothing to compare with
                continue
            k = 0 if axis == "x" else 2
            short = max(first - lo[k], hi[k] - last)
            if short > gap + tol[k]:
                raise CaseError(f"{root}: the {which} wall's faces span {axis} = {first:g} .. {last:g} (centres), "
                                f"short of the box's {lo[k]:g} .. {hi[k]:g} by {short:g}, more than one face "
                                f"({gap:g}): a sheared or skewed periodic mesh, whose period is not the box's "
                                f"{axis} extent; cfdseed needs a box channel (periods = the box's x and z extents)")


def _plane_rows(faces: np.ndarray, tol: float) -> list[tuple[float, ...]]:
    """Per distinct y of the wall faces ``(n, 3)``: (y, x first, x last, x largest gap, z first, z last,
    z largest gap) of the face centres there (a gap: between neighbouring distinct coordinates)."""
    if faces.size == 0:
        return []
    ys = _distinct(faces[:, 1], tol, 64)
    if ys is None:  # not planes: the wall check refuses it
        return []
    rows = []
    for y in ys:
        sel = faces[np.abs(faces[:, 1] - y) <= tol]
        row: list[float] = [float(y)]
        for a in (0, 2):
            v = np.sort(sel[:, a])
            row += [float(v[0]), float(v[-1]), float(np.diff(v).max()) if v.size > 1 else 0.0]
        rows.append(tuple(row))
    return rows


def _summary(p: _Part) -> dict[str, Any]:
    """What the root needs of one part to find the channel (small)."""
    ext = np.maximum(p.hi - p.lo, 1e-300)
    distinct = [_distinct(p.centres[:, a], _TOL * ext[a] * 0.5, _MAX_POINTS) for a in range(3)]
    yq = np.quantile(p.centres[:, 1], np.linspace(0, 1, 257)) if p.centres.size else np.zeros(0)
    # of each wall patch its distinct face y (few on planes; quantiles past the limit, for the message)
    wall_y = {}
    for name, faces in p.walls.items():
        ys = _distinct(faces[:, 1], _TOL * ext[1] * 0.5, _MAX_POINTS)
        wall_y[name] = ys if ys is not None else np.quantile(faces[:, 1], np.linspace(0, 1, 257))
    faces = np.concatenate(list(p.walls.values())) if p.walls else np.zeros((0, 3))
    return {"part": p.name, "cells": p.centres.shape[0], "lo": p.lo, "hi": p.hi, "patches": p.patches,
            "wall_y": wall_y, "wall_planes": _plane_rows(faces, _TOL * ext[1] * 0.5), "distinct": distinct,
            "y_quantiles": yq}

