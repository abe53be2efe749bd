"""The delivered gan field is turbulence the solver can keep (issue 12), on 1-4 ranks.

The README's main-job grid (64 x 65 x 48, 4 pi x 2 x 4 pi / 3, Chebyshev with wall points, central
operators) and its cell-centred twin, float32 and float64: the default calibration ran, the checks
pass, the mean cross-flow is zero to round-off, the per-wall TKE and -uv integrals agree with each
other and with the target. On the campaign's own box and grid (pi x 2 x pi / 2, 32 x 64 x 32
Gauss, spectral operators) the field's figures lie inside the 5-95 % band of real snapshots of
the stationary reference run (benchmarks/results/reference_bands.json).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from cfdseed import Grid, init_field
from cfdseed.checkpoint import default_model
from cfdseed.model import load_generator
from cfdseed.transport import gather

comm = MPI.COMM_WORLD
BANDS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "reference_bands.json"
MAIN = ((64, 65, 48), (4 * math.pi, 2.0, 4 * math.pi / 3))


def _figures(f, y, ly=2.0, re_tau=180.0):
    from cfdseed.stats import balance_figures

    b = balance_figures(f[None].astype(np.float64), y, ly, 0.5 * ly / re_tau, 1.0)
    mean = f.mean(axis=(1, 3))
    return b, mean


def _deliver(grid, dtype, seed=4):
    res = init_field(comm, grid, source="gan", options={"re_tau": 180}, seed=seed, dtype=dtype, result=True)
    full = gather(comm, grid, res.field)
    return res, full


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("y", ["chebyshev", "chebyshev-cc"])
def test_main_job_field_is_calibrated_balanced_and_checked(y, dtype):
    grid = Grid.block(comm, *MAIN, y=y)
    res, full = _deliver(grid, dtype)
    assert res.report.passed, str(res.report)
    assert res.report.cross_flow < (1e-5 if dtype == np.float32 else 1e-12)
    info = res.source_info
    if comm.rank == 0:
        cal = info.enforcement.calibration
        assert cal is not None and cal.iterations <= 3
        # on the rows this grid resolves the target is met; the buffer rows it does not resolve (dz+ 15.7,
        # the model's 8.8) keep uu, uv 4-5 %, vv 6-8 %, ww 17-20 % of their peaks off (model card)
        assert cal.resolved["uu"] < 0.02 and cal.resolved["uv"] < 0.02 and cal.resolved["vv"] < 0.05
        assert cal.resolved["ww"] < 0.05 and max(cal.after.values()) < 0.21
        assert info.synthesis.calibration_target == load_generator(default_model(), device="cpu").statistics.name
        b, mean = _figures(full, grid.y)
        # TKE and -uv per wall: the data (and Lee & Moser 180) give 1.78 and 0.40 for both walls (v2: TKE 1.82-1.86)
        for k in ("tke_lower", "tke_upper"):
            assert b[k] == pytest.approx(1.78, abs=0.1), (k, b)
        for k in ("shear_stress_lower", "shear_stress_upper"):
            assert b[k] == pytest.approx(0.40, abs=0.01), (k, b)
        assert b["balance_residual_max"] < 0.04
        assert abs(b["bulk_w"]) < 1e-6 and abs(b["bulk_v"]) < 1e-6


def test_campaign_grid_field_lies_inside_the_band_of_real_snapshots():
    if not BANDS.exists():
        pytest.fail(f"{BANDS} is committed; regenerate it with benchmarks/field_physics.py bands")
    band = json.loads(BANDS.read_text())
    grid = Grid.block(comm, (32, 64, 32), (math.pi, 2.0, math.pi / 2), y="chebyshev-cc", operators="spectral")
    res, full = _deliver(grid, np.float64, seed=7)
    assert res.report.passed and res.report.operators == "spectral"
    if comm.rank == 0:
        import sys

        sys.path.insert(0, str(BANDS.parents[1]))
        from field_physics import field_statistics, inside

        verdict = inside(field_statistics(full, grid.y), band)
        for name in ("tke", "tke_lower", "tke_upper", "shear_stress_lower", "shear_stress_upper",
                     "tke_asymmetry", "shear_asymmetry", "balance_residual_max", "bulk_w"):
            assert verdict["scalars"][name]["inside"], (name, verdict["scalars"][name])
        for name, p in verdict["profiles"].items():
            assert p["share_inside"] >= 0.9, (name, p)


def test_talk_re_tau_is_seeded_with_one_warning_on_the_root_only():
    """Re_tau 2260 from the Re_tau 180 model, calibrated to Lee & Moser interpolated to 2260: the
    ratio is accepted, one warning per call, issued on the root only (issue 16)."""
    import warnings

    grid = Grid.block(comm, (128, 64, 36), (3.125, 2.0, 1.0), y="tanh:2.5")  # the talk case's x/z spacings
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        res = init_field(comm, grid, source="gan", options={"re_tau": 2260}, seed=3, result=True)
    counts = comm.allgather(sum("one-point statistics" in str(w.message) for w in seen))
    assert counts == [1] + [0] * (comm.size - 1)
    assert res.report.passed
    if comm.rank == 0:
        assert "interpolated to Re_tau 2260" in res.source_info.synthesis.calibration_target
