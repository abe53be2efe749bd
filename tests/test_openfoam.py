"""OpenFOAM adapter (:mod:`cfdseed.solvers.openfoam`, which reads the case with
:mod:`cfdseed.solvers.openfoam_case`; ``cfdseed openfoam``) on a tiny blockMesh channel.

Needs OpenFOAM (``blockMesh``, ``decomposePar``, ``postProcess``, ``pimpleFoam``; CI installs
Debian's ``openfoam``) and foamlib. The case, tests/data/openfoam_channel, is 8 x 10 x 6 cells
(two y blocks graded towards the walls), cyclic in x and z; variants of its blockMeshDict make the
bad cases.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _ci import missing

try:
    import foamlib  # noqa: F401 - the adapter's dependency
except ImportError:
    missing("foamlib is not installed (pip install foamlib)", module=True)
if shutil.which("blockMesh") is None:
    missing("OpenFOAM is not installed (Debian: apt install openfoam)", module=True)

from cfdseed.solvers.openfoam import BACKUP_SUFFIX  # noqa: E402
from cfdseed.solvers.openfoam_case import _foam_env  # noqa: E402

DATA = Path(__file__).parent / "data" / "openfoam_channel"
CLI = [sys.executable, "-m", "cfdseed.cli"]


def _block_mesh_dict(inout: str = "cyclic", sides: str = "cyclic", cells: tuple[int, int, int] = (8, 5, 6),
                     shear: float = 0.0) -> str:
    """Two blocks, y in [0, 1] and [1, 2], graded towards the walls; x in [0, 4] (shifted by
    ``shear * y / 2``: a sheared periodic box), z in [0, 2]."""
    nx, nyh, nz = cells
    vertices = " ".join(f"({x + shear * y / 2:g} {y} {z})" for z in (0, 2) for y in (0, 1, 2) for x in (0, 4))

    def pair(name: str, kind: str, a: str, b: str) -> str:
        if kind == "cyclic":
            return (f"    {name}_0 {{ type cyclic; neighbourPatch {name}_1; faces ({a}); }}\n"
                    f"    {name}_1 {{ type cyclic; neighbourPatch {name}_0; faces ({b}); }}\n")
        return f"    {name} {{ type {kind}; faces ({a} {b}); }}\n"

    return f"""FoamFile {{ version 2.0; format ascii; class dictionary; object blockMeshDict; }}
convertToMeters 1;
vertices ({vertices});
blocks
(
    hex (0 1 3 2 6 7 9 8) ({nx} {nyh} {nz}) simpleGrading (1 3 1)
    hex (2 3 5 4 8 9 11 10) ({nx} {nyh} {nz}) simpleGrading (1 0.333333333333 1)
);
edges ();
boundary
(
    bottomWall {{ type wall; faces ((0 1 7 6)); }}
    topWall {{ type wall; faces ((4 10 11 5)); }}
{pair("sides", sides, "(0 2 3 1) (2 4 5 3)", "(6 7 9 8) (8 9 11 10)")}{pair("inout", inout, "(1 3 9 7) (3 5 11 9)", "(0 6 8 2) (2 8 10 4)")});
"""


def _foam(case: Path, *cmd: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([*cmd, "-case", str(case)], env=_foam_env(), capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
    return proc


def _case(tmp: Path, name: str = "channel", *, mesh: bool = True, processors: int = 0, **variant: str) -> Path:
    case = tmp / name
    shutil.copytree(DATA, case)
    (case / "system" / "blockMeshDict").write_text(_block_mesh_dict(**variant))
    if mesh:
        _foam(case, "blockMesh")
    if processors:
        _decompose(case, processors)
    return case


def _decompose(case: Path, n: int) -> None:
    d = foamlib.FoamFile(case / "system" / "decomposeParDict")
    d["numberOfSubdomains"] = n
    d["coeffs"] = {"n": [n, 1, 1]}
    _foam(case, "decomposePar", "-force")


def _cli(*args: str, ranks: int = 0) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = CLI + ["openfoam", *args]
    if ranks:
        cmd = [str(Path(sys.executable).with_name("mpiexec")), "-n", str(ranks), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def _u(path: Path) -> np.ndarray:
    return np.asarray(foamlib.FoamFieldFile(path).internal_field, dtype=np.float64)


def _addressing(case: Path, k: int) -> np.ndarray:
    return np.asarray(foamlib.FoamFile(case / f"processor{k}" / "constant" / "polyMesh" / "cellProcAddressing")[None])


def _across(case: Path, k: int) -> dict[str, np.ndarray]:
    """processor{k}'s coupled patches -> the global cell across each face (from the decomposition's
    face addressing and the whole mesh; cyclic partners face by face)."""
    def mesh(part: Path, name: str) -> np.ndarray:
        return np.asarray(foamlib.FoamFile(part / "constant" / "polyMesh" / name)[None])

    owner, neighbour = mesh(case, "owner"), mesh(case, "neighbour")
    patches = {str(n): d for n, d in foamlib.FoamFile(case / "constant" / "polyMesh" / "boundary")[None]}
    proc = case / f"processor{k}"
    faces, cells, own_k = mesh(proc, "faceProcAddressing"), _addressing(case, k), mesh(proc, "owner")
    out = {}
    for name, d in foamlib.FoamFile(proc / "constant" / "polyMesh" / "boundary")[None]:
        if d["type"] not in ("processor", "processorCyclic"):
            continue
        local = np.arange(d["startFace"], d["startFace"] + d["nFaces"])
        across = []
        for lf in local:
            g, mine = abs(int(faces[lf])) - 1, cells[own_k[lf]]
            if g < neighbour.size:
                across.append(neighbour[g] if owner[g] == mine else owner[g])
                continue
            for p in patches.values():  # a cyclic face: its partner's owner
                if p["startFace"] <= g < p["startFace"] + p["nFaces"]:
                    partner = patches[p["neighbourPatch"]]
                    across.append(owner[partner["startFace"] + g - p["startFace"]])
        out[str(name)] = np.asarray(across)
    return out


def _snapshot(case: Path) -> dict[str, tuple[int, int]]:
    """Every file under the case with its size and modification time."""
    return {str(p.relative_to(case)): (p.stat().st_size, p.stat().st_mtime_ns) for p in case.rglob("*") if p.is_file()}


def _boundary_text(path: Path) -> str:
    text = path.read_text()
    return text[text.index("boundaryField"):]


# -- values -------------------------------------------------------------------------------
def test_written_values_are_the_synthesised_field_at_the_cell_centres(tmp_path: Path) -> None:
    from mpi4py import MPI

    from cfdseed.solvers.openfoam import write_initial_field
    from cfdseed.sources import build, resolve

    case = _case(tmp_path)
    before = _boundary_text(case / "0" / "U")
    res = write_initial_field(MPI.COMM_SELF, case, source="streaks", seed=5)
    assert res.case.tensor and res.grid.shape == (8, 12, 6) and res.case.cells == 480
    assert res.case.walls == ("bottomWall", "topWall") and set(res.case.cyclic) == {"sides_0", "sides_1", "inout_0", "inout_1"}
    assert res.case.ubar == 15.5 and abs(res.case.nu - 1 / 180) < 1e-9
    assert abs(res.units.re_tau - 180) < 1.0 and abs(res.units.bulk - 15.5) < 1e-12
    # independently: the same source on the same grid, read at each cell centre's grid node
    field = build(resolve("streaks", res.options), res.grid, np.random.default_rng(5)).field
    _foam(case, "postProcess", "-func", "writeCellCentres", "-time", "0")
    c = np.asarray(foamlib.FoamFieldFile(case / "0" / "C").internal_field)
    i = np.rint((c[:, 0] - 0.25) / 0.5).astype(int)
    k = np.rint((c[:, 2] - 1 / 6) / (1 / 3)).astype(int)
    j = np.array([np.argmin(np.abs(res.grid.y - y)) for y in c[:, 1]])
    assert np.allclose(res.grid.y[j], c[:, 1], atol=1e-6)  # the grid's y points are the centres
    expect = field[:, i, j, k].T.copy()
    expect[:, 0] *= res.bulk_factor
    got = _u(case / "0" / "U")
    assert np.abs(got - expect).max() <= 1e-9 * np.abs(expect).max()
    assert abs(res.bulk_factor - 1) < 0.05 and abs(res.bulk - 15.5) < 1e-9
    assert _boundary_text(case / "0" / "U") == before  # wall and cyclic conditions untouched
    assert (case / "0" / ("U" + BACKUP_SUFFIX)).read_text().count("uniform (15.5 0 0)") == 1


@pytest.mark.parametrize("ranks", [2, 3])
def test_decomposed_cases_get_the_reconstructed_values_per_cell(tmp_path: Path, ranks: int) -> None:
    """Reconstructed + 2 or 3 processors, written serially and under mpiexec: one value per cell."""
    serial = _case(tmp_path, "serial", processors=ranks)
    par = _case(tmp_path, "parallel", processors=ranks)
    proc = _cli(str(serial), "--source", "streaks", "--seed", "2")
    assert proc.returncode == 0, proc.stderr
    proc = _cli(str(par), "--source", "streaks", "--seed", "2", "--layout", "decomposed", ranks=ranks)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"wrote {ranks} file(s)" in proc.stdout and "PASSED" in proc.stdout
    whole = _u(serial / "0" / "U")
    assert not (par / "0" / ("U" + BACKUP_SUFFIX)).exists()  # layout decomposed: 0/U left alone
    for k in range(ranks):
        a = _addressing(serial, k)
        assert np.abs(_u(serial / f"processor{k}" / "0" / "U") - whole[a]).max() < 1e-12
        assert np.abs(_u(par / f"processor{k}" / "0" / "U") - whole[a]).max() < 1e-12
        # a processor patch holds the field across it (the solver's first flux reads it there)
        across = _across(serial, k)
        assert across and all(c.size for c in across.values())
        for case in (serial, par):
            bf = foamlib.FoamFieldFile(case / f"processor{k}" / "0" / "U").boundary_field
            for name, cells in across.items():
                got = np.asarray(bf[name]["value"], dtype=np.float64).reshape(-1, 3)
                assert np.abs(got - whole[cells]).max() < 1e-12, (case.name, k, name)
    if ranks == 2:  # gan built as x slabs (no rank holds the structured field) = gan built on rank 0
        for strategy, case in (("root", serial), ("distributed", par)):
            proc = _cli(str(case), "--seed", "4", "--layout", "decomposed", "--force", "--strategy", strategy,
                        ranks=ranks)
            assert proc.returncode == 0, proc.stdout + proc.stderr
        for k in range(ranks):
            a, b = _u(serial / f"processor{k}" / "0" / "U"), _u(par / f"processor{k}" / "0" / "U")
            assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()


def test_pimplefoam_runs_from_the_written_field(tmp_path: Path) -> None:
    case = _case(tmp_path)
    proc = _cli(str(case), "--source", "gan", "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    run = _foam(case, "pimpleFoam")
    local = [float(line.split("sum local =")[1].split(",")[0])
             for line in run.stdout.splitlines() if "continuity errors" in line]
    assert len(local) == 6 and max(local) < 1e-3, local  # 3 steps x 2 correctors, bounded
    # the printed checks are the structured field's, not the finite-volume divergence of the cell field
    assert "checks of the structured field" in proc.stdout, proc.stdout
    assert "nan" not in run.stdout.lower()


def test_second_run_needs_force_and_keeps_the_first_backup(tmp_path: Path) -> None:
    case = _case(tmp_path)
    assert _cli(str(case), "--source", "streaks", "--seed", "1").returncode == 0
    first = _u(case / "0" / "U")
    again = _cli(str(case), "--source", "streaks", "--seed", "2")
    assert again.returncode == 2 and "--force" in again.stderr
    assert np.array_equal(_u(case / "0" / "U"), first)
    forced = _cli(str(case), "--source", "streaks", "--seed", "2", "--force")
    assert forced.returncode == 0, forced.stderr
    assert not np.array_equal(_u(case / "0" / "U"), first)
    assert "uniform (15.5 0 0)" in (case / "0" / ("U" + BACKUP_SUFFIX)).read_text()  # the original, kept


def test_the_backup_is_no_field_to_openfoam_and_an_old_one_still_counts(tmp_path: Path) -> None:
    """reconstructPar takes the written U, not the kept original (OpenFOAM skips *.bak); a backup
    under the name older versions wrote (U.before-cfdseed) still guards the original."""
    case = _case(tmp_path, processors=2)
    assert _cli(str(case), "--source", "streaks", "--seed", "1", "--layout", "decomposed").returncode == 0
    assert (case / "processor0" / "0" / ("U" + BACKUP_SUFFIX)).is_file()
    shutil.rmtree(case / "0")
    _foam(case, "reconstructPar", "-withZero")
    assert sorted(p.name for p in (case / "0").iterdir()) == ["U", "p"]
    old = _case(tmp_path, "old")
    shutil.copy(old / "0" / "U", old / "0" / "U.before-cfdseed")
    again = _cli(str(old), "--source", "streaks", "--seed", "2")
    assert again.returncode == 2 and "U.before-cfdseed exists" in again.stderr
    assert _cli(str(old), "--source", "streaks", "--seed", "2", "--force").returncode == 0
    assert not (old / "0" / ("U" + BACKUP_SUFFIX)).exists()  # the old backup is the original kept


# -- bad cases: exit 2, one line that names the problem, nothing written -------------------
@pytest.mark.parametrize("kind", ["no-mesh", "not-periodic", "duct", "no-case", "proc-count", "proc-cells", "no-U",
                                  "no-Ubar", "no-nu", "macro-U", "time-escapes", "stale-procs", "restart-flux",
                                  "sheared", "remeshed"])
def test_bad_cases_are_refused_and_nothing_is_written(tmp_path: Path, kind: str) -> None:
    expect = {"no-mesh": "no mesh", "not-periodic": "not a periodic channel: patch inout (patch)",
              "duct": "wall patch 'sides'", "no-case": "not a folder", "proc-count": "numberOfSubdomains",
              "proc-cells": "does not match the decomposition", "no-U": "no velocity field",
              "no-Ubar": "no meanVelocityForce", "no-nu": "no nu", "macro-U": "foamDictionary -expand",
              "time-escapes": "time must name a time directory",
              "stale-procs": "are not the decomposition of constant/polyMesh (576 cells",
              "restart-flux": "processor1/0.5 holds phi, U_0 next to U: the solver would start from that flux",
              "remeshed": "0/U has 480 values, its mesh 576 cells: the field is from another mesh",
              "sheared": "the lower wall's faces span x = 0.25 .. 3.75 (centres), short of the box's 0 .. 5 by 1.25"}[kind]
    if kind == "no-case":
        case = tmp_path / "missing"
    elif kind == "no-mesh":
        case = _case(tmp_path, mesh=False)
    elif kind == "not-periodic":
        case = _case(tmp_path, inout="patch")
    elif kind == "duct":
        case = _case(tmp_path, sides="wall")
    elif kind == "proc-count":
        case = _case(tmp_path, processors=2)
        shutil.copytree(case / "processor1", case / "processor2")
    elif kind == "proc-cells":
        case = _case(tmp_path, processors=2)
        other = _case(tmp_path, "other", processors=3)
        assert _cli(str(other), "--source", "streaks", "--layout", "decomposed").returncode == 0  # nonuniform U
        shutil.copy(other / "processor0" / "0" / "U", case / "processor0" / "0" / "U")
    elif kind == "no-U":
        case = _case(tmp_path)
        (case / "0" / "U").unlink()
    elif kind == "no-Ubar":
        case = _case(tmp_path)
        (case / "constant" / "fvOptions").unlink()
    elif kind == "no-nu":
        case = _case(tmp_path)
        del foamlib.FoamFile(case / "constant" / "transportProperties")["nu"]
    elif kind == "time-escapes":  # a path outside the case is no time directory
        case = _case(tmp_path)
    elif kind == "remeshed":  # blockMesh again after a run wrote a nonuniform 0/U on the old mesh
        case = _case(tmp_path)
        assert _cli(str(case), "--source", "streaks").returncode == 0
        (case / "0" / ("U" + BACKUP_SUFFIX)).unlink()
        (case / "system" / "blockMeshDict").write_text(_block_mesh_dict(cells=(8, 6, 6)))
        _foam(case, "blockMesh")
    elif kind == "sheared":  # cyclic translation 4, box 5 long: periods from the box would be wrong
        case = _case(tmp_path, shear=1.0)
    elif kind == "restart-flux":  # a time folder the solver wrote: its flux and old-time U are read with U
        case = _case(tmp_path, processors=2)
        for k in range(2):
            t = case / f"processor{k}" / "0.5"
            shutil.copytree(case / f"processor{k}" / "0", t)
            if k == 1:
                shutil.copy(t / "U", t / "U_0")
                (t / "phi").write_text("placeholder\n")
    elif kind == "stale-procs":  # blockMesh again after decomposePar: the processor meshes are the old ones
        case = _case(tmp_path, processors=2)
        (case / "system" / "blockMeshDict").write_text(_block_mesh_dict(cells=(8, 6, 6)))
        _foam(case, "blockMesh")
    else:  # the tutorials' form: a macro from an #include
        case = _case(tmp_path)
        (case / "0" / "include").mkdir()
        (case / "0" / "include" / "initialConditions").write_text("flowVelocity (15.5 0 0);\n")
        u = case / "0" / "U"
        macro = '#include "include/initialConditions"\ninternalField   uniform $flowVelocity;'
        u.write_text(u.read_text().replace("internalField   uniform (15.5 0 0);", macro))
    before = _snapshot(case) if case.exists() else {}
    extra = {"time-escapes": ("--time", "../0"), "restart-flux": ("--time", "0.5")}.get(kind, ())
    proc = _cli(str(case), "--source", "streaks", "--seed", "1", *extra)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert expect in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert (_snapshot(case) if case.exists() else {}) == before


def test_a_file_failing_to_stage_leaves_every_folder_as_it_was(tmp_path: Path) -> None:
    """Writing is two-step: a U that cannot be staged (here: values foamlib cannot write; in the
    field, a full disk) leaves the parts staged before it untouched, with no backup or temporary."""
    from types import SimpleNamespace

    from mpi4py import MPI

    from cfdseed.solvers.openfoam import _write_all

    case = _case(tmp_path, processors=2)
    before = _snapshot(case)
    good = _u(case / "processor0" / "0" / "U") + 1.0
    parts = [SimpleNamespace(name="processor0"), SimpleNamespace(name="processor1")]
    with pytest.raises(ValueError):
        _write_all(MPI.COMM_SELF, case, "0", parts, [good, np.array([["a", "b", "c"]])], [{}, {}])
    assert _snapshot(case) == before
    written = _write_all(MPI.COMM_SELF, case, "0", parts[:1], [good], [{}])
    assert written == [(case / "processor0" / "0" / "U", case / "processor0" / "0" / ("U" + BACKUP_SUFFIX))]
    assert np.array_equal(_u(case / "processor0" / "0" / "U"), good)


def test_a_rank_failing_to_sample_fails_every_rank(tmp_path: Path) -> None:
    """The all-to-all sampling: rank 1 failing between the two exchanges ends both ranks with its
    error (it used to leave rank 0 in the second exchange), and nothing is written."""
    case = _case(tmp_path, processors=2)
    before = _snapshot(case)
    script = tmp_path / "fault.py"
    script.write_text(
        "import sys\n"
        "from mpi4py import MPI\n"
        "import cfdseed.solvers.openfoam as of\n"
        "def broken(*args):\n"
        "    raise MemoryError('interpolation')\n"
        "if MPI.COMM_WORLD.rank == 1:\n"
        "    of._interpolate = broken\n"
        "try:\n"
        "    of.write_initial_field(MPI.COMM_WORLD, sys.argv[1], source='streaks', seed=1, layout='decomposed')\n"
        "except Exception as exc:\n"
        "    print(f'rank {MPI.COMM_WORLD.rank}: {type(exc).__name__}: {exc}', flush=True)\n")
    cmd = [str(Path(sys.executable).with_name("mpiexec")), "-n", "2", sys.executable, str(script), str(case)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    # the two ranks' lines may interleave in the launcher's output
    ended = sorted(re.findall(r"rank (\d): MemoryError: (?:\[rank 1\] )?interpolation", proc.stdout))
    assert proc.returncode == 0 and ended == ["0", "1"], proc.stdout + proc.stderr
    assert _snapshot(case) == before


def test_read_only_case_is_refused_and_nothing_is_written(tmp_path: Path, monkeypatch, capsys) -> None:
    """The time folder made immutable (chattr +i, which stops root too) or read-only (chmod); where
    neither stops this user (root in a container without chattr +i), the CLI runs in-process with
    the folder's writes failing as they would there."""
    case = _case(tmp_path)
    tdir = case / "0"
    immutable = shutil.which("chattr") is not None and subprocess.run(["chattr", "+i", str(tdir)],
                                                                      capture_output=True).returncode == 0
    if not immutable:
        tdir.chmod(0o555)
    try:
        before = _snapshot(case)
        if os.access(tdir, os.W_OK) and not immutable:
            import tempfile

            from cfdseed.cli import main

            real = tempfile.NamedTemporaryFile

            def refused(*args, dir=None, **kwargs):  # noqa: A002 - tempfile's own keyword
                if dir is not None and Path(dir) == tdir:
                    raise PermissionError(13, "Permission denied", str(tdir))
                return real(*args, dir=dir, **kwargs)

            monkeypatch.setattr(tempfile, "NamedTemporaryFile", refused)
            rc, err = main(["openfoam", str(case), "--source", "streaks"]), capsys.readouterr().err
        else:
            proc = _cli(str(case), "--source", "streaks")
            rc, err = proc.returncode, proc.stderr
        assert rc == 2 and "cannot write into" in err, err
        assert _snapshot(case) == before
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(tdir)], check=True)
        tdir.chmod(0o755)


def test_case_units_reach_model_sources_and_only_ubar_reaches_file_sources() -> None:
    """A model or analytic source gets the case's nu, Ubar and the implied re_tau; a field file keeps
    its own velocities (a file without units could not be rescaled: nu made it fail), its bulk set to Ubar."""
    from cfdseed.solvers.openfoam import ChannelCase, _source_options

    ch = ChannelCase(path=Path("."), parts=(".",), time="0", cells=1, lengths=(6.0, 2.0, 3.0), origin=(0.0, 0.0, 0.0),
                     walls=("walls",), cyclic=(), ubar=0.1335, nu=2e-5, tensor=True)
    model = _source_options(ch, {}, "gan")
    assert model["nu"] == 2e-5 and model["bulk"] == 0.1335 and model["re_tau"] == pytest.approx(380.74, abs=0.01)
    assert _source_options(ch, {"re_tau": 395.0}, "trig")["re_tau"] == 395.0
    for source in ("snapshot", "phase-randomised"):
        assert _source_options(ch, {"path": "f.h5"}, source) == {"path": "f.h5", "bulk": 0.1335}
        assert _source_options(ch, {"path": "f.h5", "bulk": 1.0}, source)["bulk"] == 1.0


def test_symlinked_control_dict_is_not_edited_through_the_link(tmp_path: Path) -> None:
    """A shared controlDict (a link out of the case) stays byte for byte as it was."""
    from mpi4py import MPI

    from cfdseed.solvers.openfoam import write_initial_field

    case = _case(tmp_path)
    shared = tmp_path / "shared-controlDict"
    shutil.move(case / "system" / "controlDict", shared)
    (case / "system" / "controlDict").symlink_to(shared)
    before = shared.read_bytes()
    write_initial_field(MPI.COMM_SELF, case, source="streaks", seed=1)
    assert shared.read_bytes() == before and (case / "system" / "controlDict").is_symlink()


def test_auto_layout_writes_the_layouts_that_hold_the_time(tmp_path: Path) -> None:
    """A decomposed run's restart time exists in processor*/ only: auto used to refuse it ("no
    velocity field 0.5/U"); a time held by only some processors is still refused."""
    from mpi4py import MPI

    from cfdseed.solvers.openfoam import write_initial_field

    case = _case(tmp_path, processors=2)
    for k in range(2):
        shutil.copytree(case / f"processor{k}" / "0", case / f"processor{k}" / "0.5")
    written = write_initial_field(MPI.COMM_SELF, case, source="streaks", seed=1, time="0.5")
    assert written.case.parts == ("processor0", "processor1") and not (case / "0.5").exists()
    assert written.files == [case / f"processor{k}" / "0.5" / "U" for k in range(2)]
    shutil.rmtree(case / "processor1" / "0.5")
    proc = _cli(str(case), "--source", "streaks", "--time", "0.5")
    assert proc.returncode == 2 and "no velocity field 0.5/U (the layouts hold it partly" in proc.stderr, proc.stderr


def test_case_relative_includes_in_the_system_files_do_not_stop_the_mesh_reading(tmp_path: Path) -> None:
    """The mesh was read in a copy of system/ elsewhere, where '#include "$FOAM_CASE/caseParams"'
    failed and the message blamed the mesh."""
    from mpi4py import MPI

    from cfdseed.solvers.openfoam import write_initial_field

    case = _case(tmp_path)
    (case / "caseParams").write_text("endTimeValue 10;\n")
    cd = case / "system" / "controlDict"
    text = cd.read_text()
    head_end = text.index("}", text.index("FoamFile")) + 1
    cd.write_text(text[:head_end] + '\n#include "$FOAM_CASE/caseParams"\n' + text[head_end:])
    _foam(case, "foamDictionary", str(cd), "-entry", "endTimeValue")  # OpenFOAM reads it
    written = write_initial_field(MPI.COMM_SELF, case, source="streaks", seed=1)
    assert written.files == [case / "0" / "U"] and written.case.cells == 480


def test_compressed_mesh_gives_the_same_field(tmp_path: Path) -> None:
    """A mesh written with writeCompression on (points.gz, ...) is read like an uncompressed one."""
    from mpi4py import MPI

    from cfdseed.solvers.openfoam import write_initial_field

    plain = _case(tmp_path, "plain")
    packed = _case(tmp_path, "packed", mesh=False)
    foamlib.FoamFile(packed / "system" / "controlDict")["writeCompression"] = True
    _foam(packed, "blockMesh")
    assert (packed / "constant" / "polyMesh" / "points.gz").is_file()
    for case in (plain, packed):
        write_initial_field(MPI.COMM_SELF, case, source="streaks", seed=3)
    assert np.array_equal(_u(packed / "0" / "U"), _u(plain / "0" / "U"))


def test_newer_file_names_give_ubar_and_nu(tmp_path: Path) -> None:
    """OpenFOAM.org's layout: meanVelocityForce in fvConstraints, nu in physicalProperties."""
    from cfdseed.solvers.openfoam_case import _case_figures

    case = _case(tmp_path, mesh=False)
    const = case / "constant"
    (const / "fvOptions").rename(const / "fvConstraints")
    (const / "turbulenceProperties").rename(const / "momentumTransport")
    (const / "transportProperties").unlink()
    (const / "physicalProperties").write_text("FoamFile { version 2.0; format ascii; class dictionary; "
                                              "object physicalProperties; }\nviscosityModel constant;\n"
                                              "nu [0 2 -1 0 0 0 0] 0.0055555556;\n")
    fig = _case_figures(case)
    assert fig.ubar == 15.5 and fig.nu == pytest.approx(1 / 180) and fig.ubar_note == fig.nu_note == ""


def test_mean_velocity_force_coeffs_dictionary_is_read(tmp_path: Path) -> None:
    """``Ubar`` inside ``meanVelocityForceCoeffs`` (the older, equally valid form)."""
    from cfdseed.solvers.openfoam_case import _case_figures

    case = _case(tmp_path, mesh=False)
    (case / "constant" / "fvOptions").write_text(
        "FoamFile { version 2.0; format ascii; class dictionary; object fvOptions; }\n"
        "momentumSource { type meanVelocityForce; active yes;\n"
        "    meanVelocityForceCoeffs { selectionMode all; fields (U); Ubar (0.1335 0 0); } }\n")
    assert _case_figures(case).ubar == 0.1335
    # OpenFOAM reads constant/fvOptions when it exists and then not system/fvOptions
    (case / "system" / "fvOptions").write_text(
        "FoamFile { version 2.0; format ascii; class dictionary; object fvOptions; }\n"
        "momentumSource { type meanVelocityForce; selectionMode all; fields (U); Ubar (0.25 0 0); }\n")
    assert _case_figures(case).ubar == 0.1335
    (case / "constant" / "fvOptions").unlink()
    assert _case_figures(case).ubar == 0.25


def test_macros_inactive_and_rival_forces_in_the_units_files(tmp_path: Path) -> None:
    """A macro Ubar raised "could not convert string to float: '$Ub'" without naming the file; a
    macro nu read as no nu; an inactive force was used; of two forces the last won silently."""
    from cfdseed.solvers.openfoam_case import _case_figures

    case = _case(tmp_path, mesh=False)
    head = "FoamFile { version 2.0; format ascii; class dictionary; object %s; }\n"
    force = "%s { type meanVelocityForce; %s selectionMode all; fields (U); Ubar (%s 0 0); }\n"
    fv, tp = case / "constant" / "fvOptions", case / "constant" / "transportProperties"
    fv.write_text(head % "fvOptions" + "Ub 0.2;\n" + force % ("m", "", "$Ub"))
    tp.write_text(head % "transportProperties" + "nuVal 2e-05;\nnu $nuVal;\n")
    fig = _case_figures(case)
    assert fig.ubar is None and "constant/fvOptions: m: Ubar" in fig.ubar_note and "foamDictionary -expand" in fig.ubar_note
    assert fig.nu is None and "constant/transportProperties: nu '$nuVal' holds a macro" in fig.nu_note
    fv.write_text(head % "fvOptions" + force % ("off", "active false;", "0.3") + force % ("on", "", "0.1335"))
    assert _case_figures(case).ubar == 0.1335  # the inactive one is not the solver's
    fv.write_text(head % "fvOptions" + force % ("a", "", "0.3") + force % ("b", "", "0.1335"))
    fig = _case_figures(case)
    assert fig.ubar is None and re.search(r"more than one active meanVelocityForce.*a, Ubar 0.3.*b, Ubar 0.1335",
                                          fig.ubar_note)
    # the CLI: one line naming the file and the option that stands in; the options then do
    _foam(case, "blockMesh")
    proc = _cli(str(case), "--source", "streaks", "--seed", "1")
    assert proc.returncode == 2 and "more than one active meanVelocityForce" in proc.stderr, proc.stderr
    assert "holds a macro" in proc.stderr and "--option bulk=U_B" in proc.stderr and "option nu" in proc.stderr
    proc = _cli(str(case), "--source", "streaks", "--seed", "1", "--option", "bulk=0.1335", "--option", "nu=2e-5")
    assert proc.returncode == 0, proc.stderr


def test_units_the_case_lacks_must_be_given() -> None:
    """Without Ubar the velocity scale (bulk, u_tau, or re_tau with nu), without nu the Reynolds
    number (re_tau or nu) must come from the options: nothing falls back to wall units."""
    from dataclasses import replace

    from cfdseed.errors import CaseError
    from cfdseed.solvers.openfoam import ChannelCase, _source_options

    ch = ChannelCase(path=Path("."), parts=(".",), time="0", cells=1, lengths=(6.0, 2.0, 3.0), origin=(0.0, 0.0, 0.0),
                     walls=("walls",), cyclic=(), ubar=None, nu=None, tensor=True)
    no_ubar, no_nu = replace(ch, nu=2e-5), replace(ch, ubar=0.1335)
    for case, opts, source, what in ((no_ubar, {}, "gan", "meanVelocityForce"), (no_nu, {}, "gan", "no nu"),
                                     (ch, {"bulk": 1.0}, "trig", "no nu"), (ch, {"re_tau": 180.0}, "trig", "Ubar"),
                                     (no_ubar, {"path": "f.h5"}, "snapshot", "meanVelocityForce")):
        with pytest.raises(CaseError, match=what):
            _source_options(case, opts, source)
    assert _source_options(no_ubar, {"re_tau": 395.0}, "gan") == {"re_tau": 395.0, "nu": 2e-5}
    assert _source_options(no_nu, {"nu": 2e-5}, "gan")["re_tau"] == pytest.approx(380.74, abs=0.01)
    assert _source_options(ch, {"bulk": 1.0, "re_tau": 180.0}, "trig") == {"bulk": 1.0, "re_tau": 180.0}
    assert _source_options(ch, {"path": "f.h5", "bulk": 0.2}, "snapshot") == {"path": "f.h5", "bulk": 0.2}


def test_missing_units_are_refused_on_every_rank_and_explicit_ones_accepted(tmp_path: Path) -> None:
    """A case with neither meanVelocityForce nor nu, on 2 ranks: refused (no rank hangs), then
    written in the units the options give."""
    case = _case(tmp_path)
    (case / "constant" / "fvOptions").unlink()
    del foamlib.FoamFile(case / "constant" / "transportProperties")["nu"]
    refused = _cli(str(case), "--source", "streaks", ranks=2)
    assert refused.returncode == 2 and "no meanVelocityForce" in refused.stderr, refused.stdout + refused.stderr
    given = _cli(str(case), "--source", "streaks", "--option", "bulk=15.5", "--re-tau", "180", ranks=2)
    assert given.returncode == 0, given.stdout + given.stderr
    assert "bulk velocity 15.5 (" in given.stdout


def test_a_dns_sized_uniform_axis_keeps_its_points(tmp_path: Path) -> None:
    """Past 4096 distinct coordinates a uniform axis fell back to a coarser interpolated grid (a
    4097-point x axis got 204 points)."""
    from cfdseed.solvers.openfoam_case import _detect, _summary

    lengths, (nx, ny, nz) = (8.0, 2.0, 1.0), (10240, 4, 2)  # x as Lee & Moser's Re_tau 5200 run
    x, z = (np.arange(nx) + 0.5) * lengths[0] / nx, (np.arange(nz) + 0.5) * lengths[2] / nz
    y = (np.arange(ny) + 0.5) * lengths[1] / ny
    ch, grid = _detect(tmp_path, (".",), "0", [_summary(_tensor_part(x, y, z, lengths))])
    assert ch.tensor and grid.shape == (nx, ny + 2, nz)
    np.testing.assert_allclose(grid.x + ch.origin[0], x, atol=1e-12)


def test_a_graded_axis_gets_twice_its_points_not_the_mean_cell_s(tmp_path: Path) -> None:
    """A structured mesh graded in x (not uniform: interpolated) with flat cells got x points from
    the cube root of the mean cell volume: 7x its own count for cells 20:1 in x:y."""
    from cfdseed.solvers.openfoam_case import _detect, _summary

    lengths, (nx, ny, nz) = (4.0, 2.0, 1.0), (16, 40, 8)
    edges = np.cumsum(np.r_[0.0, np.geomspace(1.0, 2.0, nx)])
    x = 0.5 * (edges[1:] + edges[:-1]) * lengths[0] / edges[-1]  # graded: not uniform
    y, z = (np.arange(ny) + 0.5) * lengths[1] / ny, (np.arange(nz) + 0.5) * lengths[2] / nz
    ch, grid = _detect(tmp_path, (".",), "0", [_summary(_tensor_part(x, y, z, lengths))])
    assert not ch.tensor and grid.shape[0] == 2 * nx and grid.shape[1] == ny + 2  # y: every distinct centre


def _tensor_part(x: np.ndarray, y: np.ndarray, z: np.ndarray, lengths: tuple[float, float, float]):
    """A mesh part of cell centres on the tensor grid x, y, z with walls at y = 0 and ly (face
    centres at x, z), as _mesh_part would read it."""
    from cfdseed.solvers.openfoam_case import _Part

    centres = np.stack([a.ravel() for a in np.meshgrid(x, y, z, indexing="ij")], axis=1)
    wall = np.stack([a.ravel() for a in np.meshgrid(x, [0.0], z, indexing="ij")], axis=1)
    return _Part(".", centres, np.full(len(centres), np.prod(lengths) / len(centres)),
                 {"lo": "wall", "hi": "wall", "cx": "cyclic"}, {"lo": wall, "hi": wall + [0.0, lengths[1], 0.0]},
                 np.zeros(3), np.array(lengths))
