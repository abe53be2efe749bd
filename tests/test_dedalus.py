"""Runs tests/dedalus/ under `mpiexec -n 2` in the Dedalus environment (.venv-dedalus).

Skipped, with the reason shown, where .venv-dedalus is absent (create it with
.ci/setup-dedalus.sh). The Dedalus environment uses the system Open MPI, so its mpiexec is
/usr/bin/mpiexec, never the core venv's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PY = ROOT / ".venv-dedalus" / "bin" / "python"
MPIEXEC = shutil.which("mpiexec", path="/usr/bin")

pytestmark = [pytest.mark.dedalus, pytest.mark.slow]


def test_dedalus_suite_two_ranks():
    if not PY.exists():
        pytest.skip(f"{PY} absent: run .ci/setup-dedalus.sh to test the Dedalus adapter")
    if MPIEXEC is None:
        pytest.skip("system /usr/bin/mpiexec (Open MPI) absent: run .ci/setup-dedalus.sh")
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1",
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    cmd = [MPIEXEC, "-n", "2", "--oversubscribe", str(PY), "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "-x", str(ROOT / "tests" / "dedalus")]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-20000:])
        sys.stderr.write(proc.stderr[-20000:])
    assert proc.returncode == 0, f"{' '.join(cmd)} failed (rc {proc.returncode}); output above"
