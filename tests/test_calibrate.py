"""Tests of cfdseed.calibrate: stress targets (names, files, validation) and the v-eta calibration
inside the enforcement (statistics reached, continuity and walls kept, unreachable targets refused)."""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from cfdseed.calibrate import StressTarget, moments, stress_target
from cfdseed.constraints import check_field
from cfdseed.enforce import _spectrum, enforce
from cfdseed.errors import SourceError
from cfdseed.grid import Grid

LM = stress_target("lee-moser-180")


def test_reference_targets_are_consistent():
    for name in ("lee-moser-180", "lee-moser-550", "mkm-180"):
        t = stress_target(name)
        assert t.y_delta[0] == pytest.approx(0.0, abs=1e-6) and t.y_delta[-1] <= 1.0
        assert np.all(t.uu >= 0) and np.all(t.uv ** 2 <= t.uu * t.vv + 1e-12)
        assert t.re_tau > 170
    assert LM.bulk_plus() == pytest.approx(15.7, abs=0.2)  # Lee & Moser: U_b+ 15.73 at Re_tau 182


def test_on_grid_is_symmetric_and_uv_changes_sign():
    y = np.linspace(0.0, 2.0, 41)
    s = LM.on_grid(y, 2.0, u_tau=2.0)
    np.testing.assert_allclose(s.U, s.U[::-1], atol=1e-12)
    np.testing.assert_allclose(s.uv, -s.uv[::-1], atol=1e-12)
    assert s.uv[5] < 0 < s.uv[-6] and s.uu.max() == pytest.approx(4.0 * LM.uu.max(), rel=0.05)


@pytest.mark.parametrize("suffix", [".csv", ".txt", ".npz"])
def test_file_targets_round_trip(tmp_path, suffix):
    path = tmp_path / f"target{suffix}"
    cols = np.stack([LM.y_delta, LM.U, LM.uu, LM.vv, LM.ww, LM.uv], axis=1)
    if suffix == ".npz":
        np.savez(path, re_tau=LM.re_tau, **{k: getattr(LM, k) for k in ("y_delta", "U", "uu", "vv", "ww", "uv")})
    else:
        np.savetxt(path, cols, delimiter="," if suffix == ".csv" else " ", header="y/h U+ uu+ vv+ ww+ uv+", comments="")
    t = stress_target(path, re_tau=None if suffix == ".npz" else 182.0)
    back = stress_target(LM.to_dict())
    for k in ("y_delta", "U", "uu", "vv", "ww", "uv"):  # every column to its own field
        np.testing.assert_allclose(getattr(t, k), getattr(LM, k), rtol=1e-12, err_msg=k)
        np.testing.assert_allclose(getattr(back, k), getattr(LM, k), rtol=1e-12, err_msg=k)
    assert t.re_tau == (LM.re_tau if suffix == ".npz" else 182.0) and back.re_tau == LM.re_tau


def _target(**change):
    d = LM.to_dict()
    d.update(change)
    return d


@pytest.mark.parametrize("change, match", [
    ({"y_delta": list(np.linspace(0.1, 1.0, len(LM.y_delta)))}, "cover the half channel"),
    ({"y_delta": list(np.linspace(0.0, 0.8, len(LM.y_delta)))}, "cover the half channel"),
    ({"vv": list(-LM.vv)}, "negative variance vv"),
    ({"uv": list(-3 * np.sqrt(LM.uu * LM.vv))}, "not positive semi-definite"),
    ({"uu": list(LM.uu[:-1])}, "one value per y point"),
    ({"ww": [np.nan] * len(LM.y_delta)}, "non-finite"),
    ({"re_tau": -1.0}, "re_tau must be a positive number"),
])
def test_bad_targets_are_clear_errors(change, match):
    with pytest.raises(SourceError, match=match):
        stress_target(_target(**change))


def test_bad_target_specs(tmp_path):
    with pytest.raises(SourceError, match="neither a packaged reference"):
        stress_target("lee-moser-9999")
    p = tmp_path / "t.csv"
    p.write_text("y,U\n0,0\n1,1\n")
    with pytest.raises(SourceError, match="need y/h, U\\+"):
        stress_target(p, re_tau=180)
    np.savetxt(p, np.stack([LM.y_delta, LM.U, LM.uu, LM.vv, LM.ww, LM.uv], 1), delimiter=",", header="h", comments="")
    with pytest.raises(SourceError, match="pass re_tau"):
        stress_target(p)
    with pytest.raises(SourceError, match="must be a reference name"):
        stress_target(3.0)


def test_moments_match_physical_space():
    rng = np.random.default_rng(0)
    g = Grid((8, 7, 6), (2.0, 2.0, 1.0), y="chebyshev")
    f = rng.standard_normal((3, *g.shape))
    m = moments(_spectrum(f, g), 8, 6)
    fl = f - f.mean(axis=(1, 3), keepdims=True)
    np.testing.assert_allclose(m["U"], f[0].mean(axis=(0, 2)), atol=1e-12)
    np.testing.assert_allclose(m["uu"], (fl[0] ** 2).mean(axis=(0, 2)), atol=1e-12)
    np.testing.assert_allclose(m["uv"], (fl[0] * fl[1]).mean(axis=(0, 2)), atol=1e-12)
    np.testing.assert_allclose(m["ww"], (fl[2] ** 2).mean(axis=(0, 2)), atol=1e-12)


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
    m = moments(_spectrum(out, g), 48, 32)
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


def test_dataset_target_takes_a_solver_snapshot_s_moments_about_its_own_plane_mean(tmp_path):
    """Snapshots of 8 x-planes each whose plane mean wanders in time: the moments are the per-time
    moments averaged (the wandering is not turbulence); with fewer planes per time, or without x,
    about the mean of all samples as before."""
    from cfdseed.calibrate import MIN_PLANES_PER_TIME, dataset_target
    from cfdseed.grid import wall_normal
    from cfdseed.slices import DatasetWriter

    rng = np.random.default_rng(8)
    ny, nz, times, planes = 10, 6, 5, MIN_PLANES_PER_TIME
    y = wall_normal("chebyshev-cc", ny, 2.0)
    env = np.sin(np.pi * y / 2.0)[None, :, None]
    f = env * rng.standard_normal((times * planes, 3, ny, nz))
    f[:, 0] += 10.0 * env[0] + np.repeat(rng.normal(0.0, 2.0, times), planes)[:, None, None] * env[0]
    attrs = dict(re_tau=180.0, nu=0.01, u_tau=1.0, ly=2.0, lz=3.0, source="test")
    t = np.repeat(np.arange(times, dtype=float), planes)
    x = np.tile(np.arange(planes) * 0.4, times)

    def target(name, **cols):
        with DatasetWriter(tmp_path / name, y, np.arange(nz) * 0.5, attrs=attrs) as w:
            w.append(f.astype(np.float32), **cols)
        return dataset_target(tmp_path / name, chunk=7)

    g = f.astype(np.float32).astype(np.float64).reshape(times, planes, 3, ny, nz)
    d = g - g.mean(axis=(1, 4), keepdims=True)
    uu_per_time = (d[:, :, 0] ** 2).mean(axis=(0, 1, 3))
    grouped = target("a.h5", t=t, x=x)
    lower = slice(0, ny // 2)
    np.testing.assert_allclose(grouped.uu[1:-1], 0.5 * (uu_per_time[lower] + uu_per_time[::-1][lower]), rtol=1e-9)
    pooled = target("b.h5", t=t)  # no x: about the mean of all samples, which adds the wandering
    assert np.all(pooled.uu[1:-1] > 2 * grouped.uu[1:-1])
    few = target("c.h5", t=np.repeat(np.arange(2 * times, dtype=float), planes // 2), x=x)  # 4 planes a time
    np.testing.assert_allclose(few.uu, pooled.uu, rtol=1e-12)
    np.testing.assert_allclose(grouped.U, pooled.U, rtol=1e-12)
    # a solver's plane averages (moments about each instant's plane mean, then time-averaged) give it too
    from cfdseed.calibrate import profiles_target

    mom = [(d[:, :, i] * d[:, :, j]).mean(axis=(0, 1, 3)) for i, j in ((0, 0), (1, 1), (2, 2), (0, 1))]
    prof = profiles_target(y[::-1], 2.0, g[:, :, 0].mean(axis=(0, 1, 3))[::-1], *(m[::-1] for m in mom),
                           re_tau=180.0)
    for k in ("y_delta", "U", "uu", "vv", "ww", "uv"):
        np.testing.assert_allclose(getattr(prof, k), getattr(grouped, k), rtol=1e-9, atol=1e-12)
    with pytest.raises(SourceError, match="one per y"):
        profiles_target(y, 2.0, mom[0][:-1], *mom, re_tau=180.0)


def test_target_dataclass_validates_directly():
    with pytest.raises(SourceError, match="not positive semi-definite"):
        StressTarget("x", 180.0, np.array([0.0, 1.0]), np.zeros(2), np.ones(2), np.ones(2), np.ones(2), np.full(2, 2.0))


def test_dataset_target_equals_the_folded_moments_of_its_samples(tmp_path):
    from cfdseed.calibrate import dataset_target
    from cfdseed.grid import wall_normal
    from cfdseed.slices import DatasetWriter

    rng = np.random.default_rng(5)
    ny, nz, n = 12, 8, 30
    y = wall_normal("chebyshev-cc", ny, 2.0)
    env = np.sin(np.pi * y / 2.0)[None, :, None]
    f = env * rng.standard_normal((n, 3, ny, nz))
    f[:, 1] += 0.5 * f[:, 0] * np.sign(1.0 - y)[None, :, None]  # <u'v'> > 0 below, < 0 above: folds to one sign
    f[:, 0] += 10.0 * env[0]
    with DatasetWriter(tmp_path / "d.h5", y, np.arange(nz) * 0.5, attrs=dict(re_tau=150.0, nu=0.01, u_tau=2.0, ly=2.0,
                                                                            lz=4.0, source="test")) as w:
        w.append(f.astype(np.float32), t=np.arange(n, dtype=float))
    t = dataset_target(tmp_path / "d.h5", chunk=7)
    g = f.astype(np.float32).astype(np.float64)
    mean = g.mean(axis=(0, 3))
    d = g - mean[None, :, :, None]
    uu, uv = (d[:, 0] ** 2).mean(axis=(0, 2)), (d[:, 0] * d[:, 1]).mean(axis=(0, 2))
    lower = slice(0, ny // 2)
    np.testing.assert_allclose(t.uu[1:-1], 0.5 * (uu[lower] + uu[::-1][lower]) / 4.0, rtol=1e-9)
    np.testing.assert_allclose(t.uv[1:-1], 0.5 * (uv[lower] - uv[::-1][lower]) / 4.0, rtol=1e-9)
    np.testing.assert_allclose(t.U[1:-1], 0.5 * (mean[0][lower] + mean[0][::-1][lower]) / 2.0, rtol=1e-9)
    assert t.re_tau == 150.0 and t.y_delta[0] == 0.0 and t.y_delta[-1] == 1.0 and t.uu[0] == 0.0
    assert t.uv[1] > 0 and t.uv[-1] == pytest.approx(0.0, abs=1e-12)
