"""Runs every module in tests/mpi/ under the venv's own ``mpiexec`` on 1, 2, 3 and 4 ranks.

Each MPI module is an ordinary pytest module using ``MPI.COMM_WORLD``; every rank runs the same
tests. A hang (a rank left waiting) is caught by the timeout and fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
MODULES = sorted(p.name for p in (HERE / "mpi").glob("test_*.py"))
RANKS = (1, 2, 3, 4)
TIMEOUT = float(os.environ.get("CFDSEED_MPI_TIMEOUT", "600"))


def _mpiexec() -> str:
    exe = Path(sys.executable).with_name("mpiexec")
    if not exe.exists():
        pytest.fail(f"no mpiexec next to {sys.executable}: install the 'mpi' extra (pip install -e '.[mpi,test]')")
    return str(exe)


@pytest.mark.mpi
@pytest.mark.parametrize("nproc", RANKS)
@pytest.mark.parametrize("module", MODULES)
def test_mpi_module(module: str, nproc: int) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [_mpiexec(), "-n", str(nproc), sys.executable, "-m", "pytest", "-q", "-x",
           "-p", "no:cacheprovider", str(HERE / "mpi" / module)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"")[-4000:]
        pytest.fail(f"{module} on {nproc} ranks hung for {TIMEOUT:.0f} s (a rank left waiting?)\n{out!r}")
    if proc.returncode != 0:
        pytest.fail(f"{module} on {nproc} ranks failed (rc={proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}")


@pytest.mark.mpi
def test_main_job_example_seeds_from_the_default_model(tmp_path: Path) -> None:
    """The README's main job: examples/minimal_solver.py on the packaged model, report and picture."""
    png = tmp_path / "ic.png"
    cmd = [_mpiexec(), "-n", "2", sys.executable, str(HERE.parent / "examples" / "minimal_solver.py"),
           "--picture", str(png)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "source gan built 64x65x48" in proc.stderr and "PASSED" in proc.stdout
    assert "divergence max" in proc.stdout and png.stat().st_size > 20_000


@pytest.mark.mpi
@pytest.mark.parametrize("nproc", (2, 3))
def test_abort_on_error_ends_the_job_when_one_rank_raises(nproc: int) -> None:
    """The documented guard for the solver's own code: one rank raises, the others wait in a
    collective; the job must end (non-zero) with the failing rank's traceback, not hang."""
    code = ("from mpi4py import MPI; import cfdseed\n"
            "comm = MPI.COMM_WORLD\n"
            "with cfdseed.abort_on_error(comm, code=3):\n"
            "    if comm.rank == comm.size - 1:\n"
            "        raise RuntimeError('solver bug on one rank')\n"
            "    comm.Barrier()\n")
    proc = subprocess.run([_mpiexec(), "-n", str(nproc), sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode != 0
    assert f"[rank {nproc - 1}] RuntimeError: solver bug on one rank" in proc.stderr
    assert "aborting the MPI job (code 3)" in proc.stderr


@pytest.mark.mpi
def test_generate_under_mpiexec_writes_once_and_agrees_on_bad_input(tmp_path: Path) -> None:
    """``mpiexec -n 2 cfdseed generate``: rank 0 works, every rank ends with its exit status."""
    exe = str(Path(sys.executable).with_name("cfdseed"))
    base = [_mpiexec(), "-n", "2", exe, "generate", "--source", "plug", "--shape", "8", "9", "6",
            "--lengths", "6.28", "2", "3.14", "--bulk", "1", "--no-png"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    ok = subprocess.run(base + ["--out", str(tmp_path / "ic.h5")], capture_output=True, text=True, timeout=120, env=env)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    assert (tmp_path / "ic.h5").exists() and ok.stdout.count("PASSED") == 1  # one report: rank 0's
    bad = subprocess.run(base + ["--out", str(tmp_path / "missing" / "ic.h5")], capture_output=True, text=True,
                         timeout=60, env=env)
    assert bad.returncode == 2, bad.stdout[-3000:] + bad.stderr[-3000:]
    errors = [line for line in bad.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("cfdseed generate: error: --out"), bad.stderr  # rank 0's alone
