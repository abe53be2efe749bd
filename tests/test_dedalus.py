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
from _ci import missing

ROOT = Path(__file__).resolve().parents[1]
PY = ROOT / ".venv-dedalus" / "bin" / "python"
MPIEXEC = shutil.which("mpiexec", path="/usr/bin")

pytestmark = [pytest.mark.dedalus, pytest.mark.slow]


def test_dedalus_suite_two_ranks():
    if not PY.exists():
        missing(f"{PY} absent: run .ci/setup-dedalus.sh to test the Dedalus adapter")
    if MPIEXEC is None:
        missing("system /usr/bin/mpiexec (Open MPI) absent: run .ci/setup-dedalus.sh")
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1",
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    cmd = [MPIEXEC, "-n", "2", "--oversubscribe", str(PY), "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "-x", str(ROOT / "tests" / "dedalus")]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as exc:  # as tests/test_mpi.py: say so, with where it stood
        pytest.fail(f"tests/dedalus on 2 ranks hung for 600 s (a rank left waiting?)\n{(exc.stdout or b'')[-20000:]!r}")
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-20000:])
        sys.stderr.write(proc.stderr[-20000:])
    assert proc.returncode == 0, f"{' '.join(cmd)} failed (rc {proc.returncode}); output above"


SAMPLE = ROOT / "examples" / "dedalus_re180_sample.h5"


def test_packaged_sample_is_a_valid_dedalus_dataset():
    """The committed sample of the Dedalus Re_tau = 180 training data (no Dedalus needed)."""
    import numpy as np

    from cfdseed.slices import open_dataset
    from cfdseed.solvers.dedalus_case import gauss_points

    if not SAMPLE.exists():
        pytest.fail(f"{SAMPLE} is committed; regenerate it with examples/validate_dedalus.py --sample")
    assert SAMPLE.stat().st_size <= 5 * 2**20
    with open_dataset(SAMPLE) as ds:
        assert ds.attrs["solver"] == "dedalus" and ds.re_tau == 180.0 and ds.u_tau == 1.0
        assert ds.attrs["solver_version"].startswith("3.")
        assert ds.ny == 64 and ds.nz == 32
        np.testing.assert_allclose(ds.y, gauss_points(64, 2.0), rtol=1e-12)
        assert ds.t.min() >= ds.attrs["t_start"]
        f = ds.read(slice(None))  # (n, 3, ny, nz)
    assert np.isfinite(f).all()
    u = f[:, 0].mean(axis=(0, 2))  # (ny,)
    assert 14.0 < u[ds.ny // 2] < 22.0  # centreline U+ of Re_tau = 180 is ~18.3
    assert abs(f[:, 1].mean()) < 0.05 * u.mean() and abs(f[:, 2].mean()) < 0.1 * u.mean()
