"""The C and Fortran API (capi/, cfdseed.capi): the examples built with CMake into a temporary
folder and run under the matching mpiexec on 1 and 4 ranks; failures of one rank give every rank
the same status and message, leave the arrays untouched and end promptly; the MPI-mismatch check.

The C example uses this environment (its PyPI MPICH: mpicc and mpiexec next to the interpreter),
the Fortran example the Dedalus environment's system Open MPI (/usr/bin/mpifort, /usr/bin/mpiexec;
the MPICH wheel ships no Fortran wrapper). Where a compiler or an environment is missing the tests
are skipped with the reason, except under CI (``CI`` set), where .ci/run installs them: there a
missing piece is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import numpy as np
import pytest
from _ci import missing

from cfdseed import capi
from cfdseed.errors import MPIMismatchError

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.prefix) / "bin"
DEDALUS = ROOT / ".venv-dedalus"
OPEN_MPI = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
            "OMPI_MCA_rmaps_base_oversubscribe": "1"}
# a hang of any rank would end here, as a failure. The slowest example runs ~40 s on idle cores and
# took 190 s with the two cores shared 2:1 (campaign workers beside the suite): a hang still ends.
RUN_TIMEOUT = 480


def _need(path: Path | str | None, what: str) -> str:
    if not path or not Path(path).exists():
        missing(f"{what} absent ({path})")
    return str(path)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", **(extra or {}))
    env.pop("PYTHONPATH", None)
    return env


def _build(src: Path, build: Path, defines: dict[str, str], env: dict[str, str]) -> Path:
    cmake = _need(shutil.which("cmake"), "cmake")
    cmd = [cmake, "-S", str(src), "-B", str(build), *(f"-D{k}={v}" for k, v in defines.items())]
    for step in (cmd, [cmake, "--build", str(build)]):
        proc = subprocess.run(step, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{' '.join(step)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    return build / "solver"


def _run(mpiexec: str, n: int, exe: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([mpiexec, "-n", str(n), str(exe), *args], env=env, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, cwd=exe.parent)


def _check_report(proc: subprocess.CompletedProcess, n: int, divergence: float = 1e-10) -> None:
    """A passed report on n ranks, its divergence below ``divergence`` (float64 arrays' default)."""
    out = proc.stdout
    assert proc.returncode == 0, f"rc {proc.returncode}\n{out}\n{proc.stderr[-4000:]}"
    assert f"{n} rank(s), block of rank 0" in out
    assert "report: passed 1, operators central" in out
    for name in ("no-slip", "seam x", "seam z", "divergence max", "divergence rms", "mean cross-flow",
                 "bulk velocity", "max |u|"):
        assert re.search(rf"^  {re.escape(name)} +\S+", out, re.M), f"no {name!r} line in\n{out}"
    div = float(re.search(r"^  divergence max +(\S+)", out, re.M).group(1))
    assert div < divergence
    assert "halo untouched: yes" in out


def _check_failure(proc: subprocess.CompletedProcess, n: int, status: int, needle: str) -> None:
    out = proc.stdout
    lines = re.findall(r"^rank (\d+): status (\d+): (.*)$", out, re.M)
    assert sorted(int(r) for r, _, _ in lines) == list(range(n)), f"every rank reports\n{out}\n{proc.stderr[-4000:]}"
    outcomes = {(int(s), m) for _, s, m in lines}
    assert len(outcomes) == 1, f"one status and message on every rank, got {outcomes}"
    (got, message), = outcomes
    assert got == status and needle in message, message
    untouched = re.findall(r"^rank (\d+): arrays untouched: (\w+)", out, re.M)
    assert sorted(int(r) for r, _ in untouched) == list(range(n)) and {u for _, u in untouched} == {"yes"}
    assert proc.returncode != 0


# -- the C example, this environment (PyPI MPICH) -------------------------------------------------
@pytest.fixture(scope="module")
def c_solver(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    mpicc, mpiexec = _need(BIN / "mpicc", "mpicc of this environment (the mpi extra)"), \
        _need(BIN / "mpiexec", "mpiexec of this environment")
    exe = _build(ROOT / "examples" / "c", tmp_path_factory.mktemp("capi-c"),
                 {"cfdseed_DIR": str(capi.cmake_dir()), "MPI_C_COMPILER": mpicc}, _env())
    return mpiexec, exe


@pytest.mark.slow
@pytest.mark.parametrize("n", [1, 4])
def test_c_example_seeds_its_halo_arrays(c_solver: tuple[str, Path], n: int) -> None:
    mpiexec, exe = c_solver
    _check_report(_run(mpiexec, n, exe, env=_env()), n)


@pytest.mark.slow
def test_installed_c_example_runs_on_the_installed_library(c_solver: tuple[str, Path], tmp_path: Path) -> None:
    """`cmake --install` of a solver installs libcfdseed into the prefix's library folder (it stayed
    in the build tree: an installed solver whose build folder was gone could not start)."""
    mpiexec, exe = c_solver
    proc = subprocess.run([_need(shutil.which("cmake"), "cmake"), "--install", str(exe.parent), "--prefix",
                           str(tmp_path / "prefix")], env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    installed = tmp_path / "prefix" / "bin" / "solver"
    libs = sorted((tmp_path / "prefix").glob("lib*/libcfdseed.so"))
    assert installed.is_file() and len(libs) == 1
    ldd = subprocess.run(["ldd", str(installed)], capture_output=True, text=True, timeout=60).stdout
    found = re.search(r"libcfdseed\.so => (\S+)", ldd)
    assert found and Path(found.group(1)).resolve() == libs[0].resolve(), ldd
    _check_report(_run(mpiexec, 2, installed, env=_env()), 2)


@pytest.mark.slow
@pytest.mark.parametrize("n, args, status, needle", [
    (4, ("--fault", "block:2"), 3, "[rank 2] local[x] = 33:65 lies outside 0:64"),
    (4, ("--fault", "null:3"), 1, "[rank 3] cfdseed_init_field: y is a null pointer"),
    (2, ("--options", "{bad"), 1, "options must be a JSON object"),
    (2, ("--source", "nosuch"), 5, "unknown source 'nosuch'"),
], ids=["wrong-block", "null-pointer", "bad-json", "unknown-source"])
def test_c_example_failure_is_agreed(c_solver: tuple[str, Path], n: int, args: tuple[str, ...], status: int,
                                     needle: str) -> None:
    mpiexec, exe = c_solver
    _check_failure(_run(mpiexec, n, exe, *args, env=_env()), n, status, needle)


@pytest.mark.slow
def test_embedded_python_ignores_the_job_s_python_variables_and_finalises_on_its_own_thread(
        tmp_path: Path) -> None:
    """PYTHONHOME/PYTHONPATH of the job made the embedded start fail (status 8: "No module named
    'math'"); cfdseed_finalize from a thread other than the starter hung in the GIL."""
    mpicc, mpiexec = _need(BIN / "mpicc", "mpicc of this environment"), _need(BIN / "mpiexec", "mpiexec")
    exe = _build(ROOT / "tests" / "data" / "capi_threads", tmp_path / "build",
                 {"cfdseed_DIR": str(capi.cmake_dir()), "MPI_C_COMPILER": mpicc}, _env())
    env = _env()
    env.update(PYTHONHOME="/nonexistent", PYTHONPATH=str(tmp_path))
    (tmp_path / "numpy.py").write_text("raise ImportError('numpy from PYTHONPATH')\n")
    proc = _run(mpiexec, 1, exe, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert proc.stdout.splitlines() == ["first call (thread): 0", "second call (main): 0", "finalize (main): 8"]


HOST = textwrap.dedent('''
    """A Python host (mpi4py owns MPI) calling libcfdseed through ctypes: no second interpreter."""
    import ctypes, sys
    import numpy as np
    from mpi4py import MPI
    import cfdseed

    class Report(ctypes.Structure):
        _fields_ = [("checked", ctypes.c_int), ("passed", ctypes.c_int), ("operators", ctypes.c_char * 16),
                    *((f, ctypes.c_double) for f in ("no_slip", "seam_x", "seam_z", "divergence_max",
                      "divergence_rms", "cross_flow", "bulk_velocity", "u_ref", "max_abs")),
                    ("nonfinite", ctypes.c_longlong)]

    lib = ctypes.CDLL(sys.argv[1])
    comm = MPI.COMM_WORLD
    handle = (ctypes.c_int if MPI._sizeof(MPI.Comm) == 4 else ctypes.c_void_p)(MPI._handleof(comm))
    shape, lengths = (16, 17, 12), (2 * np.pi, 2.0, np.pi)
    grid = cfdseed.Grid.block(comm, shape, lengths, dims=(0, 1, 0), y="chebyshev")
    nx, ny, nz = grid.local_shape
    ref = cfdseed.init_field(comm, grid, source="trig", seed=3, dtype=np.float32, axes="xzy")  # (3, nx, nz, ny)
    ints = lambda v: (ctypes.c_int * 3)(*v)
    for source, want in (("trig", 0), ("nosuch", 5)):
        # float32 (x, z, y) Fortran-ordered storage with one halo cell on every side
        store = [np.full((nx + 2, nz + 2, ny + 2), -7, np.float32, order="F") for _ in range(3)]
        blocks = [s[1:-1, 1:-1, 1:-1] for s in store]
        report, message = Report(), ctypes.create_string_buffer(512)
        rc = lib.cfdseed_init_field(
            handle, ints(shape), (ctypes.c_double * 3)(*lengths), grid.y.ctypes.data_as(ctypes.c_void_p),
            b"central", ints(grid.local_start), ints(grid.local_shape),
            *(ctypes.c_void_p(b.ctypes.data) for b in blocks), 1, b"xzy",
            (ctypes.c_ssize_t * 3)(*(s // 4 for s in blocks[0].strides)), source.encode(), None,
            ctypes.c_longlong(3), ctypes.byref(report), message, ctypes.c_size_t(512))
        assert rc == want, (rc, message.value)
        if want == 0:
            assert report.checked == 1 and report.passed == 1 and report.operators == b"central"
            assert all(np.array_equal(b, r) for b, r in zip(blocks, ref)), "the same field as init_field"
            assert all((s[0] == -7).all() and (s[-1] == -7).all() and (s[:, 0] == -7).all() for s in store)
        else:
            assert b"unknown source 'nosuch'" in message.value and report.checked == 0
            assert all((s == -7).all() for s in store), "arrays untouched"
    lib.cfdseed_finalize()  # not ours to end: a no-op
    print(f"rank {comm.rank}: host ok")
''')


@pytest.mark.slow
def test_python_host_calls_the_library(c_solver: tuple[str, Path], tmp_path: Path) -> None:
    """A process that already runs Python: libcfdseed uses that interpreter; float32, axes "xzy",
    halo'd Fortran storage, bit-identical to cfdseed.init_field."""
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        missing(f"{sys.executable} links libpython statically: loading libcfdseed would add a second one")
    mpiexec, exe = c_solver
    script = tmp_path / "host.py"
    script.write_text(HOST)
    lib = exe.parent / "_cfdseed" / "libcfdseed.so"
    proc = subprocess.run([mpiexec, "-n", "2", sys.executable, str(script), str(lib)], env=_env(),
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    assert proc.stdout.count("host ok") == 2


# -- the Fortran example, the Dedalus environment (system Open MPI) -------------------------------
def _dedalus_cmake_dir() -> str:
    exe = _need(DEDALUS / "bin" / "cfdseed", "the Dedalus environment (.ci/setup-dedalus.sh)")
    proc = subprocess.run([exe, "cmakedir"], env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def fortran_solver(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    mpifort = _need(shutil.which("mpifort", path="/usr/bin"), "system Open MPI Fortran wrapper /usr/bin/mpifort")
    mpicc = _need(shutil.which("mpicc", path="/usr/bin"), "system Open MPI /usr/bin/mpicc")
    mpiexec = _need(shutil.which("mpiexec", path="/usr/bin"), "system Open MPI /usr/bin/mpiexec")
    exe = _build(ROOT / "examples" / "fortran", tmp_path_factory.mktemp("capi-fortran"),
                 {"cfdseed_DIR": _dedalus_cmake_dir(), "MPI_Fortran_COMPILER": mpifort, "MPI_C_COMPILER": mpicc},
                 _env())
    return mpiexec, exe


@pytest.mark.slow
@pytest.mark.dedalus
@pytest.mark.parametrize("n", [1, 4])
def test_fortran_example_seeds_its_halo_arrays(fortran_solver: tuple[str, Path], n: int) -> None:
    mpiexec, exe = fortran_solver
    _check_report(_run(mpiexec, n, exe, env=_env(OPEN_MPI)), n)


@pytest.mark.slow
@pytest.mark.dedalus
def test_fortran_single_precision_solver_passes_its_own_coordinates(fortran_solver: tuple[str, Path]) -> None:
    """real(c_float) arrays, lengths and y: the generic call resolves, and the field is the float64
    one rounded (the same bulk velocity to float32 precision; divergence at float32 round-off)."""
    mpiexec, exe = fortran_solver
    single = _run(mpiexec, 2, exe, "--precision", "single", env=_env(OPEN_MPI))
    _check_report(single, 2, divergence=1e-5)
    double = _run(mpiexec, 2, exe, env=_env(OPEN_MPI))
    bulk = [float(re.search(r"^  bulk velocity +(\S+)", p.stdout, re.M).group(1)) for p in (single, double)]
    assert bulk[0] == pytest.approx(bulk[1], rel=1e-6)


@pytest.mark.slow
@pytest.mark.dedalus
@pytest.mark.parametrize("n, args, status, needle", [
    (4, ("--fault", "block:3"), 3, "[rank 3] local[x] = 33:65 lies outside 0:64"),
    (4, ("--fault", "y:1"), 2, "[rank 1] y must have shape (65,) to match ny, got (64,)"),
    (2, ("--source", "nosuch"), 5, "unknown source 'nosuch'"),
], ids=["wrong-block", "short-y", "unknown-source"])
def test_fortran_example_failure_is_agreed(fortran_solver: tuple[str, Path], n: int, args: tuple[str, ...],
                                           status: int, needle: str) -> None:
    mpiexec, exe = fortran_solver
    _check_failure(_run(mpiexec, n, exe, *args, env=_env(OPEN_MPI)), n, status, needle)


@pytest.mark.slow
@pytest.mark.dedalus
def test_solver_mpi_unlike_mpi4py_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """A solver built with this environment's MPICH embedding the Dedalus environment, whose mpi4py
    is built for Open MPI (loading it would abort the job): status 7 on every rank, both named."""
    mpicc, mpiexec = _need(BIN / "mpicc", "mpicc of this environment"), _need(BIN / "mpiexec", "mpiexec")
    exe = _build(ROOT / "examples" / "c", tmp_path / "build",
                 {"cfdseed_DIR": _dedalus_cmake_dir(), "MPI_C_COMPILER": mpicc}, _env())
    proc = _run(mpiexec, 2, exe, "--source", "plug", env=_env())
    _check_failure(proc, 2, 7, "is not the one mpi4py was built for")
    assert "MPICH" in proc.stdout and "openmpi ABI" in proc.stdout


# -- the bridge, without a compiler ----------------------------------------------------------------
MPICH = "MPICH Version:      5.0.2\nMPICH Release date: Fri Sep 25\n"
OMPI = "Open MPI v4.1.4, package: Debian OpenMPI, ident: 4.1.4, repo rev: v4.1.4, May 26, 2022"


def test_mpi_mismatch_names_both_libraries(tmp_path: Path) -> None:
    capi.check_mpi(MPICH, "mpich", extension="", library=MPICH, vendor=("MPICH", (5, 0, 2)))
    with pytest.raises(MPIMismatchError, match=r"Open MPI v4\.1\.4.*MPICH Version: 5\.0\.2"):
        capi.check_mpi(OMPI, "", extension="", library=MPICH, vendor=("MPICH", (5, 0, 2)))
    with pytest.raises(MPIMismatchError, match=r"openmpi ABI.*MPICH 5\.0\.2, mpich ABI"):
        capi.check_mpi(OMPI, "openmpi", extension="", library=OMPI, vendor=("MPICH", (5, 0, 2)))
    # before loading mpi4py.MPI: what its extension file links
    ext = tmp_path / "MPI.so"
    ext.write_bytes(b"\x7fELF...libmpi.so.40\x00ompi_mpi_comm_world\x00")
    with pytest.raises(MPIMismatchError, match=r"MPICH Version: 5\.0\.2, mpich ABI.*openmpi ABI: .*MPI\.so"):
        capi.check_mpi(MPICH, "mpich", extension=str(ext), library=MPICH, vendor=("MPICH", (5, 0, 2)))
    ext.write_bytes(b"\x7fELF...libmpi.so.12\x00")
    capi.check_mpi(MPICH, "mpich", extension=str(ext), library=MPICH, vendor=("MPICH", (5, 0, 2)))
    assert capi.status_of(MPIMismatchError("x")) == capi.STATUS["ERROR_MPI"] == 7


def test_mpi_check_against_this_mpi4py() -> None:
    """With mpi4py's own answers: a fake library string is refused, its own accepted."""
    from mpi4py import MPI

    with pytest.raises(MPIMismatchError, match="Fake MPI 9.9"):
        capi.check_mpi("Fake MPI 9.9")
    capi.check_mpi(MPI.Get_library_version())


def test_status_codes_match_header_and_fortran_module() -> None:
    header = (ROOT / "capi" / "include" / "cfdseed.h").read_text()
    module = (ROOT / "capi" / "src" / "cfdseed.f90").read_text()
    c = {k: int(v) for k, v in re.findall(r"CFDSEED_(OK|ERROR_\w+) = (\d+)", header)}
    f = {k: int(v) for k, v in re.findall(r"CFDSEED_(OK|ERROR_\w+) = (\d+)", module)}
    assert c == f == capi.STATUS


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_wrap_is_a_view_of_any_layout(dtype: str) -> None:
    """(address, extents, element strides) -> the same memory: halo'd Fortran order, reversed axes."""
    store = np.arange(6 * 7 * 5, dtype=dtype).reshape(6, 7, 5, order="F")
    for block in (store[1:-1, 1:-1, 1:-1], store[::-1, 1:-1, ::-2], store.T):
        item = block.itemsize
        view = capi._wrap(block.ctypes.data, block.shape, tuple(s // item for s in block.strides), dtype, "u")
        assert np.shares_memory(view, store) and np.array_equal(view, block)
        view[...] = -1
        assert (block == -1).all()
    assert capi._wrap(0, (0, 3, 4), (1, 1, 1), dtype, "u").shape == (0, 3, 4)


def test_wrap_refuses_other_types() -> None:
    from cfdseed.errors import TransportError

    with pytest.raises(TransportError, match="allowed: float32, float64"):
        capi._wrap(8, (2, 3, 4), (1, 2, 6), "code 7 (CFDSEED_FLOAT = 1, CFDSEED_DOUBLE = 2)", "v")


def test_cmakedir_records_this_environment(capsys: pytest.CaptureFixture[str]) -> None:
    from cfdseed.cli import main

    assert main(["cmakedir"]) == 0
    folder = Path(capsys.readouterr().out.strip())
    config = (folder / "cfdseedConfig.cmake").read_text()
    assert Path(re.search(r'set\(CFDSEED_PYTHON_EXECUTABLE "(.*)"\)', config).group(1)).samefile(sys.executable)
    assert (Path(re.search(r'set\(CFDSEED_CAPI_DIR "(.*)"\)', config).group(1)) / "include" / "cfdseed.h").is_file()
    assert (folder / "cfdseedConfigVersion.cmake").is_file()


def test_a_null_array_is_an_argument_error() -> None:
    """cfdseed.h: a null pointer is CFDSEED_ERROR_ARGUMENT, the arrays' null pointers too."""
    from cfdseed.errors import ConfigError

    with pytest.raises(ConfigError, match="array v is a null pointer but holds 24 elements") as info:
        capi._wrap(0, (2, 3, 4), (1, 2, 6), "float64", "v")
    assert capi.status_of(info.value) == capi.STATUS["ERROR_ARGUMENT"]


def _config_value(folder: Path, name: str) -> str:
    return re.search(rf'set\({name} "(.*)"\)', (folder / "cfdseedConfig.cmake").read_text()).group(1)


@pytest.mark.parametrize("user_site", [True, False])
def test_cmake_package_passes_several_site_folders_as_one_definition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     user_site: bool) -> None:
    """Two site folders and a user site (a cluster's ~/.local): one compile definition, as
    capi/CMakeLists.txt passes it (a CMake list would split it at ';'); the user site only where this
    interpreter enables it."""
    import site

    cmake = _need(shutil.which("cmake"), "cmake")
    sites = [tmp_path / name for name in ("site-a", "site-b", "user")]
    for d in sites:
        d.mkdir()
    monkeypatch.setattr(site, "getsitepackages", lambda: [str(sites[0]), str(sites[1])])
    monkeypatch.setattr(site, "getusersitepackages", lambda: str(sites[2]))
    monkeypatch.setattr(site, "ENABLE_USER_SITE", user_site)
    folder = capi.cmake_dir(tmp_path / "pkg")
    value = _config_value(folder, "CFDSEED_PYTHON_SITE")
    assert value.split(":") == [str(d) for d in sites[: 3 if user_site else 2]]
    script = tmp_path / "count.cmake"
    script.write_text(f'set(CFDSEED_PYTHON_SITE "{value}")\n'
                      "function(count)\n  message(\"${ARGC}\")\nendfunction()\n"
                      'count(CFDSEED_PYTHON_SITE="${CFDSEED_PYTHON_SITE}")\n')
    proc = subprocess.run([cmake, "-P", str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr.strip() == "1", proc.stderr


def test_cmake_package_does_not_depend_on_the_interpreter_s_alias(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """python, python3 and python3.X of one environment record the same interpreter (no reconfigure)."""
    names = [n for n in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}")
             if (BIN / n).exists()]
    recorded = set()
    for name in names:
        monkeypatch.setattr(sys, "executable", str(BIN / name))
        recorded.add(_config_value(capi.cmake_dir(tmp_path / name), "CFDSEED_PYTHON_EXECUTABLE"))
    assert len(names) > 1 and len(recorded) == 1
    assert Path(recorded.pop()).samefile(sys.executable)


def test_a_solver_s_own_python_found_first_is_a_configure_error(tmp_path: Path) -> None:
    """A solver's find_package(Python3) before find_package(cfdseed) left another Python's headers
    and library in the cache: libcfdseed built against one Python and embedded another."""
    cmake, mpicc = _need(shutil.which("cmake"), "cmake"), _need(BIN / "mpicc", "mpicc of this environment")
    import sysconfig

    def include(python: str) -> str:
        return subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_config_var('INCLUDEPY'))"],
                              capture_output=True, text=True).stdout.strip()

    mine = os.path.realpath(sysconfig.get_config_var("INCLUDEPY"))
    other = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if Path(p).exists()
                  and include(p) and os.path.realpath(include(p)) != mine), None)
    if other is None:
        missing("no second Python with other headers on this machine")
    src = tmp_path / "src"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(  # as a solver that finds its own Python first (PATH order)
        "cmake_minimum_required(VERSION 3.18)\nproject(p LANGUAGES C)\nfind_package(MPI REQUIRED COMPONENTS C)\n"
        "find_package(Python3 REQUIRED COMPONENTS Interpreter Development)\nfind_package(cfdseed CONFIG REQUIRED)\n")
    env = _env()
    env["PATH"] = f"{Path(other).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run([cmake, "-S", str(src), "-B", str(tmp_path / "b"), f"-Dcfdseed_DIR={capi.cmake_dir()}",
                           f"-DMPI_C_COMPILER={mpicc}"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0, proc.stdout[-3000:]
    text = " ".join(proc.stderr.split())
    assert "call find_package(cfdseed) before the solver's own find_package(Python3)" in text, proc.stderr[-3000:]
