"""Tests of cfdseed.calibrate: the v-eta calibration inside the enforcement (statistics reached,
continuity and walls kept, unreachable targets refused); the targets: test_targets.py."""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from cfdseed.calibrate import moments
from cfdseed.targets import stress_target
from cfdseed.constraints import check_field
from cfdseed.enforce import _spectrum, enforce
from cfdseed.errors import SourceError
from cfdseed.grid import Grid

LM = stress_target("lee-moser-180")


def test_moments_match_physical_space():
    rng = np.random.default_rng(0)
    g = Grid((8, 7, 6), (2.0, 2.0, 1.0), y="chebyshev")
    f = rng.standard_normal((3, *g.shape))
    m = moments(_spectrum(f, g), 8, 6)
    fl = f - f.mean(axis=(1, 3), keepdims=True)
    for c, key in enumerate("UVW"):
        np.testing.assert_allclose(m[key], f[c].mean(axis=(0, 2)), atol=1e-12)
    np.testing.assert_allclose(m["uu"], (fl[0] ** 2).mean(axis=(0, 2)), atol=1e-12)
    np.testing.assert_allclose(m["vv"], (fl[1] ** 2).mean(axis=(0, 2)), atol=1e-12)
    np.testing.assert_allclose(m["ww"], (fl[2] ** 2).mean(axis=(0, 2)), atol=1e-12)
    np.testing.assert_allclose(m["uv"], (fl[0] * fl[1]).mean(axis=(0, 2)), atol=1e-12)


def _turbulent_like(grid, seed=1):
    """A packaged generator's field, uncalibrated (in wall units): turbulence with the wrong stresses.

    Pinned to default-re180-v1, the field these tolerances were set on: v2's raw fields, calibrated
    straight to Lee & Moser on the central grids, end 7-8 % off in uu after the 3 passes (the model
    card's known limits); the gan source's own path calibrates them (tests/test_default_model.py)."""
    from cfdseed.sources import resolve

    return resolve("gan", {"re_tau": 182.088, "divergence_free": False, "no_slip": False,
                           "model": "default-re180-v1"}).build(
        Grid(grid.shape, grid.lengths, y=grid.y), np.random.default_rng(seed)).field


GRIDS = [("chebyshev", "central"), ("chebyshev-cc", "central"), ("tanh:2", "central"),
         ("chebyshev", "spectral"), ("chebyshev-cc", "spectral")]


@pytest.mark.parametrize("y, operators", GRIDS)
def test_calibration_reaches_the_target_and_keeps_the_constraints(y, operators):
    g = Grid((48, 49, 32), (2 * np.pi, 2.0, np.pi), y=y, operators=operators)
    target = LM.on_grid(g.y, 2.0)
    out, rep = enforce(_turbulent_like(g), g, stresses=target, bulk=False)
    cal = rep.calibration
    assert cal is not None and cal.iterations <= 3 and "stress calibration" in rep.steps
    assert max(cal.before.values()) > 0.2  # far off before
    assert cal.after["U"] < 1e-12 and cal.after["uu"] < 0.03 and cal.after["uv"] < 0.03
    assert cal.after["vv"] < 0.1 and cal.after["ww"] < 0.1
    fl = out - out.mean(axis=(1, 3), keepdims=True)  # measured in physical space, not by `moments`
    m = {"uu": (fl[0] ** 2).mean(axis=(0, 2)), "vv": (fl[1] ** 2).mean(axis=(0, 2)),
         "ww": (fl[2] ** 2).mean(axis=(0, 2)), "uv": (fl[0] * fl[1]).mean(axis=(0, 2))}
    inner = np.minimum(g.y, 2.0 - g.y) > 0.1  # y+ > 18: away from the walls every stress is reachable
    for k in ("uu", "vv", "ww", "uv"):
        np.testing.assert_allclose(m[k][inner], getattr(target, k)[inner], atol=0.05 * np.abs(getattr(target, k)).max())
    chk = check_field(MPI.COMM_SELF, g, out)
    assert chk.divergence_max < 1e-10 and chk.no_slip < 1e-12 and chk.cross_flow < 1e-12
    assert "stress calibration" in str(rep)


def test_calibration_then_bulk_keeps_the_profile_shape():
    g = Grid((48, 33, 32), (2 * np.pi, 2.0, np.pi), y="chebyshev")
    target = LM.on_grid(g.y, 2.0)
    out, rep = enforce(_turbulent_like(g), g, stresses=target, bulk=10.0)
    prof = out[0].mean(axis=(0, 2))
    assert rep.after["bulk"] == pytest.approx(10.0, rel=1e-12)
    np.testing.assert_allclose(prof / prof.max(), target.U / target.U.max(), atol=1e-12)


def test_unreachable_target_is_an_error():
    """A laminar field has no fluctuations to scale: the target is out of its reach."""
    g = Grid((8, 17, 8), (2 * np.pi, 2.0, np.pi), y="chebyshev")
    f = np.zeros((3, *g.shape))
    f[0] = (g.y * (2 - g.y))[None, :, None]
    with pytest.raises(SourceError, match="out of this field's reach"):
        enforce(f, g, stresses=LM.on_grid(g.y, 2.0))


def test_calibration_needs_the_other_steps_and_matching_profiles():
    g = Grid((8, 17, 8), (2 * np.pi, 2.0, np.pi), y="chebyshev")
    f = _turbulent_like(g)
    with pytest.raises(ValueError, match="needs no_slip=True and divergence_free=True"):
        enforce(f, g, stresses=LM.on_grid(g.y, 2.0), divergence_free=False)
    with pytest.raises(ValueError, match="one value per y point"):
        enforce(f, g, stresses=LM.on_grid(np.linspace(0, 2, 5), 2.0))


