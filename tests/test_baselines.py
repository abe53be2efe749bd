"""Tests of cfdseed.sources.baselines: every classical source passes check_field on several grids."""

from __future__ import annotations

import numpy as np
import pytest

from cfdseed.errors import GridError, SourceError
from cfdseed.grid import Grid

from cfdseed.sources.baselines import reichardt_profile, smooth_noise
from cfdseed.sources import resolve

GRIDS = [
    ((16, 17, 12), (4 * np.pi, 2.0, 2 * np.pi), "uniform"),
    ((12, 21, 10), (2 * np.pi, 2.0, np.pi), "tanh:2.0"),
    ((10, 16, 8), (3.0, 1.0, 2.0), "chebyshev-cc"),
    ((9, 13, 7), (2.0, 2.0, 1.0), "tanh-cc:1.5"),
]
SOURCES = [
    ("plug", {}),
    ("laminar", {}),
    ("trig", {}),
    ("trig", {"mean": "turbulent", "waves": [2, 1]}),
    ("streaks", {}),
    ("streaks", {"re_tau": 395.0, "bulk": 2.0}),
]


def _check(grid, field):
    from mpi4py import MPI

    from cfdseed.constraints import check_field

    return check_field(MPI.COMM_SELF, grid, field)


@pytest.mark.parametrize("shape,lengths,y", GRIDS)
@pytest.mark.parametrize("name,options", SOURCES)
def test_source_passes_checks(name, options, shape, lengths, y):
    g = Grid(shape, lengths, y=y)
    built = resolve(name, dict(options)).build(g, np.random.default_rng(0))
    f = built.field
    rep = _check(g, f)
    assert rep.passed, f"{name} on {y}:\n{rep}"
    assert rep.bulk_velocity == pytest.approx(options.get("bulk", 1.0), rel=1e-12)
    assert rep.divergence_max < 1e-10
    info = built.info
    assert info.enforcement.after["wall_max"] < 1e-12


def test_seed_option_and_rng():
    g = Grid((8, 11, 6), (2.0, 2.0, 1.0), y="tanh:2")
    a = resolve("plug", {"seed": 4})(g, np.random.default_rng(0))
    b = resolve("plug", {"seed": 4})(g, np.random.default_rng(1))
    c = resolve("plug", {})(g, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-6


def test_fields_have_the_intended_structure():
    g = Grid((16, 33, 24), (4 * np.pi, 2.0, 2 * np.pi), y="tanh:2")
    lam = resolve("laminar", {"noise": 0.0})(g, np.random.default_rng(0))
    eta = g.y - 1.0
    prof = lam[0, 3, :, 5]  # Poiseuille, scaled so that the discrete bulk velocity is exactly 1
    np.testing.assert_allclose(prof / prof.max(), 1 - eta**2, atol=1e-12)
    assert prof.max() == pytest.approx(1.5, rel=0.01)
    np.testing.assert_allclose(lam[1:], 0.0, atol=1e-12)
    # trig: rolls of amplitude 0.1 bulk in v
    tr = resolve("trig", {"amplitude": 0.1})(g, np.random.default_rng(0))
    assert np.abs(tr[1]).max() == pytest.approx(0.1, rel=0.05)
    # streaks at re_tau 180 in a 2 pi h wide box: span+ = 1131 -> 11 streaks (spacing ~100 wall units)
    st = resolve("streaks", {"noise": 0.0})(g, np.random.default_rng(0))
    j = int(np.argmin(np.abs(g.y * 180 - 15)))
    up = st[0, 0, j] - st[0, 0, j].mean()
    spec = np.abs(np.fft.rfft(up))
    assert int(np.argmax(spec)) == 11
    # the plug has thin wall layers but is flat in the core
    pl = resolve("plug", {"noise": 0.0})(g, np.random.default_rng(0))
    core = pl[0, 0, 12:21, 0]
    assert np.ptp(core) < 1e-3 * core.mean()


def test_helpers():
    g = Grid((8, 9, 6), (2.0, 2.0, 1.0))
    n = smooth_noise(g, np.random.default_rng(0), 0.3)
    assert np.sqrt(np.mean(n**2)) == pytest.approx(0.3)
    assert np.all(n[:, :, 0] == 0) or np.abs(n[:, :, 0]).max() < 1e-12  # sine modes vanish at walls
    up = reichardt_profile(np.array([0.0, 1.0 / 180, 1.0]), 2.0, 180.0)
    assert up[0] == 0 and up[1] == pytest.approx(1.0, rel=0.05) and 17 < up[2] < 20


def test_snapshot_round_trip(tmp_path):
    from cfdseed.fields import write_field

    src_grid = Grid((12, 17, 10), (4.0, 2.0, 3.0), y="chebyshev")
    field = resolve("trig", {"mean": "turbulent"})(src_grid, np.random.default_rng(0))
    path = tmp_path / "f.h5"
    write_field(path, field, src_grid)
    # same grid: the snapshot comes back unchanged (interpolation exact, enforcement a fixed point)
    back = resolve("snapshot", {"path": str(path)})(src_grid, np.random.default_rng(0))
    np.testing.assert_allclose(back, field, atol=1e-10)
    # another grid and box: interpolated, passes the checks, keeps its bulk velocity
    g = Grid((16, 24, 20), (8.0, 1.0, 6.0), y="tanh-cc:2")
    out = resolve("snapshot", {"path": str(path)})(g, np.random.default_rng(0))
    rep = _check(g, out)
    assert rep.passed, str(rep)
    assert rep.bulk_velocity == pytest.approx(_check(src_grid, field).bulk_velocity, rel=0.02)


def test_bad_input(tmp_path):
    g = Grid((8, 9, 6), (2.0, 2.0, 1.0))
    with pytest.raises(SourceError, match="unknown option"):
        resolve("plug", {"amplitude": 1.0})
    with pytest.raises(SourceError, match="noise"):
        resolve("laminar", {"noise": -1.0})
    with pytest.raises(SourceError, match="mean"):
        resolve("trig", {"mean": "quadratic"})
    with pytest.raises(SourceError, match="waves"):
        resolve("trig", {"waves": [1.5, 2]})
    with pytest.raises(SourceError, match="spacing_plus"):
        resolve("streaks", {"spacing_plus": 0})
    with pytest.raises(SourceError, match="path"):
        resolve("snapshot", {})
    with pytest.raises(SourceError, match="does not exist"):
        resolve("snapshot", {"path": str(tmp_path / "none.h5")})(g, np.random.default_rng(0))
    (tmp_path / "x.h5").write_bytes(b"garbage")
    with pytest.raises(SourceError, match="HDF5"):
        resolve("snapshot", {"path": str(tmp_path / "x.h5")})(g, np.random.default_rng(0))
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as h:
        h["fields"] = np.zeros((2, 3, 4, 4))
    with pytest.raises(SourceError, match="not a cfdseed field file"):
        resolve("snapshot", {"path": str(tmp_path / "other.h5")})(g, np.random.default_rng(0))
    with pytest.raises(SourceError, match="unknown source"):
        resolve("sinusoid", {})
    with pytest.raises(GridError, match="too small"):
        resolve("plug", {})(Grid((8, 9, 1), (2.0, 2.0, 1.0)), np.random.default_rng(0))


def test_randomise_phases_keeps_statistics_spectra_and_continuity_but_not_the_field():
    from cfdseed.operators import divergence
    from cfdseed.sources.baselines import randomise_phases

    g = Grid((16, 17, 12), (4.0, 2.0, 3.0), y="chebyshev")
    rng = np.random.default_rng(3)
    field = resolve("analytic", {"bulk": 1.0, "amplitude": 0.3, "waves": (2, 3)})(g, rng)
    field = field + resolve("trig", {"mean": "turbulent", "waves": (1, 1)})(g, rng)  # two solenoidal parts
    out = randomise_phases(field, np.random.default_rng(4))
    assert out.shape == field.shape and out.dtype == np.float64
    # plane statistics: means and every second moment (incl. uv) per y
    np.testing.assert_allclose(out.mean(axis=(1, 3)), field.mean(axis=(1, 3)), atol=1e-12)
    fl, ol = field - field.mean(axis=(1, 3), keepdims=True), out - out.mean(axis=(1, 3), keepdims=True)
    for a, b in ((0, 0), (1, 1), (2, 2), (0, 1)):
        np.testing.assert_allclose((ol[a] * ol[b]).mean(axis=(0, 2)), (fl[a] * fl[b]).mean(axis=(0, 2)), atol=1e-12)
    # spectra: |coefficients| per (kx, y, kz) unchanged; the field itself is not
    np.testing.assert_allclose(np.abs(np.fft.rfft2(out, axes=(1, 3))), np.abs(np.fft.rfft2(field, axes=(1, 3))),
                               atol=1e-9)
    assert np.abs(out - field).max() > 0.1 * np.abs(fl).max()
    # continuity (a diagonal operator in Fourier space) and the walls: kept
    assert np.abs(divergence(field, g)).max() < 1e-10
    np.testing.assert_allclose(divergence(out, g), 0.0, atol=1e-10)
    np.testing.assert_allclose(out[:, :, [0, -1], :], 0.0, atol=1e-13)


def test_phase_randomised_source_from_a_file(tmp_path):
    from cfdseed.fields import write_field

    src_grid = Grid((12, 17, 10), (4.0, 2.0, 3.0), y="chebyshev")
    field = resolve("trig", {"mean": "turbulent", "amplitude": 0.3})(src_grid, np.random.default_rng(0))
    write_field(tmp_path / "f.h5", field, src_grid)
    a = resolve("phase-randomised", {"path": str(tmp_path / "f.h5")})(src_grid, np.random.default_rng(1))
    b = resolve("phase-randomised", {"path": str(tmp_path / "f.h5")})(src_grid, np.random.default_rng(2))
    assert _check(src_grid, a).passed and not np.allclose(a, b)
    np.testing.assert_allclose(a.var(axis=(1, 3)), field.var(axis=(1, 3)), rtol=1e-6, atol=1e-10)
    g = Grid((16, 24, 20), (8.0, 1.0, 6.0), y="tanh-cc:2")  # another grid: resampled like snapshot
    assert _check(g, resolve("phase-randomised", {"path": str(tmp_path / "f.h5")})(g, np.random.default_rng(1))).passed
    with pytest.raises(SourceError, match="phase-randomised: option path"):
        resolve("phase-randomised", {})
