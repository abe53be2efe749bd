"""Tests of cfdseed.sources.baselines: every classical source passes check_field on several grids."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cfdseed.errors import GridError, SourceError
from cfdseed.grid import Grid

from cfdseed.sources.baselines import reichardt_profile, smooth_noise
from cfdseed.sources import resolve
from cfdseed.units import Units, reichardt_bulk

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
    ("plug", {"u_tau": 0.5}),
    ("laminar", {"re_tau": 395.0, "nu": 1e-3}),
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
    units = built.info.units  # resolved by cfdseed.units: wall units at Re_tau 180 unless given
    assert isinstance(units, Units) and units.h == lengths[1] / 2
    assert rep.bulk_velocity == pytest.approx(units.bulk, rel=1e-12)
    if "bulk" in options:
        assert units.bulk == options["bulk"]
    else:
        assert units.bulk == pytest.approx(reichardt_bulk(units.re_tau) * units.u_tau, rel=1e-12)
    assert units.re_tau == pytest.approx(options.get("re_tau", 180.0))
    h = lengths[1] / 2  # u_tau from its definition: given; Re_tau nu / h; bulk / U_b+(Re_tau); else 1
    if "u_tau" in options:
        want = options["u_tau"]
    elif "nu" in options:
        want = options["re_tau"] * options["nu"] / h
    elif "bulk" in options:
        want = options["bulk"] / reichardt_bulk(options.get("re_tau", 180.0))
    else:
        want = 1.0
    assert units.u_tau == pytest.approx(want, rel=1e-12)
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
    ub = reichardt_bulk(180.0)  # the default bulk velocity: wall units at Re_tau 180
    lam = resolve("laminar", {"noise": 0.0})(g, np.random.default_rng(0))
    eta = g.y - 1.0
    prof = lam[0, 3, :, 5]  # Poiseuille, scaled so that the discrete bulk velocity is exactly ub
    np.testing.assert_allclose(prof / prof.max(), 1 - eta**2, atol=1e-12)
    assert prof.max() == pytest.approx(1.5 * ub, rel=0.01)
    np.testing.assert_allclose(lam[1:], 0.0, atol=1e-12)
    unit = resolve("laminar", {"noise": 0.0, "bulk": 1.0})(g, np.random.default_rng(0))
    np.testing.assert_allclose(unit * ub, lam, rtol=1e-12, atol=1e-12)  # the old default, by option
    # trig: rolls of amplitude 0.1 bulk in v
    tr = resolve("trig", {"amplitude": 0.1})(g, np.random.default_rng(0))
    assert np.abs(tr[1]).max() == pytest.approx(0.1 * ub, rel=0.05)
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


@pytest.mark.parametrize("source", ["trig", "streaks"])
def test_turbulent_mean_profiles_are_in_the_field_s_units(source):
    """Reichardt's profile is put in wall units times u_tau: at any u_tau the mean over u_tau is the
    same profile (it was left in wall units, and the bulk enforcement then added a laminar profile
    for the difference once u_tau exceeded ~1000)."""
    g = Grid((16, 33, 16), (2 * np.pi, 2.0, np.pi), y="chebyshev")
    opts = {"noise": 0.0, "amplitude": 0.0} | ({"mean": "turbulent"} if source == "trig" else {})
    means = []
    for u_tau in (1.0, 5000.0):
        f = resolve(source, {**opts, "u_tau": u_tau, "re_tau": 180.0})(g, np.random.default_rng(0))
        means.append(f[0].mean(axis=(0, 2)) / u_tau)
    np.testing.assert_allclose(means[1], means[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(means[0], reichardt_profile(g.y, 2.0, 180.0), rtol=0.02, atol=0.05)


def test_streaks_options_shape_the_streaks():
    """peak_plus places the streaks' maximum, length_plus sets the streamwise wavelength and
    modulation its depth (0: streaks uniform in x, no w)."""
    g = Grid((40, 97, 24), (2 * np.pi, 2.0, np.pi), y="uniform")
    raw = {"noise": 0.0, "no_slip": False, "divergence_free": False}

    def rms_u(f):  # (ny,): the streaks' u' about the plane mean
        return np.sqrt(((f[0] - f[0].mean(axis=(0, 2), keepdims=True)) ** 2).mean(axis=(0, 2)))

    for peak in (15.0, 30.0):
        f = resolve("streaks", {**raw, "peak_plus": peak})(g, np.random.default_rng(0))
        lower = g.y < 1.0
        assert g.y[lower][np.argmax(rms_u(f)[lower])] * 180 == pytest.approx(peak, abs=2.0)
    j = int(np.argmin(np.abs(g.y * 180 - 15)))
    for length, waves in ((500.0, 2), (250.0, 5)):  # lx+ = 1131: round(1131 / length) waves
        f = resolve("streaks", {**raw, "length_plus": length, "modulation": 0.5})(g, np.random.default_rng(0))
        envelope = np.abs(f[0, :, j, :] - f[0, :, j, :].mean()).mean(axis=1)  # (nx,)
        assert int(np.argmax(np.abs(np.fft.rfft(envelope))[1:])) + 1 == waves
    flat = resolve("streaks", {**raw, "modulation": 0.0})(g, np.random.default_rng(0))
    assert np.ptp(flat[0], axis=0).max() < 1e-12 and np.abs(flat[2]).max() < 1e-12


def test_helpers():
    g = Grid((8, 9, 6), (2.0, 2.0, 1.0))
    n = smooth_noise(g, np.random.default_rng(0), 0.3)
    assert np.sqrt(np.mean(n**2)) == pytest.approx(0.3)
    assert np.all(n[:, :, 0] == 0) or np.abs(n[:, :, 0]).max() < 1e-12  # sine modes vanish at walls
    up = reichardt_profile(np.array([0.0, 1.0 / 180, 1.0]), 2.0, 180.0)
    assert up[0] == 0 and up[1] == pytest.approx(1.0, rel=0.05) and 17 < up[2] < 20


def test_y_method_reaches_the_interpolation(tmp_path):
    """The snapshot sources' ``y_method`` option is the interpolation used onto another y grid
    (barycentric and cubic differ there and agree on the source's own points); an unknown one fails."""
    from cfdseed.fields import write_field

    src = Grid((12, 17, 10), (4.0, 2.0, 3.0), y="chebyshev")
    field = resolve("trig", {"mean": "turbulent", "amplitude": 0.3})(src, np.random.default_rng(0))
    path = tmp_path / "f.h5"
    write_field(path, field, src)
    raw = {"path": str(path), "no_slip": False, "divergence_free": False}
    g = Grid((12, 23, 10), (4.0, 2.0, 3.0), y="tanh:2.0")
    bary = resolve("snapshot", {**raw, "y_method": "barycentric"})(g, np.random.default_rng(0))
    cubic = resolve("snapshot", {**raw, "y_method": "cubic"})(g, np.random.default_rng(0))
    assert np.abs(bary - cubic).max() > 1e-4 * np.abs(bary).max()
    same = [resolve("snapshot", {**raw, "y_method": m})(src, np.random.default_rng(0)) for m in ("barycentric", "cubic")]
    np.testing.assert_allclose(same[0], same[1], atol=1e-10)
    with pytest.raises(GridError, match="unknown y interpolation 'spline'"):
        resolve("snapshot", {**raw, "y_method": "spline"})(g, np.random.default_rng(0))


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


def test_trig_and_streaks_use_the_resolved_re_tau():
    g = Grid((16, 33, 24), (4 * np.pi, 2.0, 2 * np.pi), y="tanh:2")
    # re_tau from u_tau and nu: the turbulent mean and the streak spacing follow it
    a = resolve("trig", {"mean": "turbulent", "amplitude": 0.0, "u_tau": 1.0, "nu": 1 / 395})(g, np.random.default_rng(0))
    b = resolve("trig", {"mean": "turbulent", "amplitude": 0.0, "re_tau": 395})(g, np.random.default_rng(0))
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    prof = b[0].mean(axis=(0, 2))
    ref = reichardt_profile(g.y, 2.0, 395.0)
    np.testing.assert_allclose(prof[8:25] / prof[16], ref[8:25] / ref[16], rtol=1e-6)  # the core, away from the blend
    st = resolve("streaks", {"noise": 0.0, "u_tau": 0.5, "nu": 0.5 / 90})(g, np.random.default_rng(0))
    j = int(np.argmin(np.abs(g.y * 90 - 15)))
    up = st[0, 0, j] - st[0, 0, j].mean()
    assert int(np.argmax(np.abs(np.fft.rfft(up)))) == 6  # re_tau 90: span+ = 2 pi 90 = 565, 6 streaks


def test_plug_takes_every_unit_option_and_contradictions_fail_on_the_grid():
    g = Grid((8, 9, 6), (2.0, 4.0, 1.0))  # h = 2
    built = resolve("plug", {"re_tau": 200, "nu": 0.01}).build(g, np.random.default_rng(0))
    assert built.info.units == Units(re_tau=200.0, u_tau=1.0, nu=0.01, bulk=reichardt_bulk(200.0), h=2.0)
    src = resolve("plug", {"re_tau": 395, "u_tau": 1, "nu": 0.1})  # contradiction: needs h, known on the grid
    with pytest.raises(SourceError, match=r"plug: re_tau=395 contradicts u_tau \* h / nu = 1 \* 2 / 0.1 = 20"):
        src(g, np.random.default_rng(0))
    with pytest.raises(SourceError, match="cannot set the velocity scale"):
        resolve("plug", {"bulk": -1.0})(g, np.random.default_rng(0))
    assert resolve("plug", {"bulk": -1.0, "u_tau": 1.0}).build(g, np.random.default_rng(0)).info.units.bulk == -1.0


def test_snapshot_units_come_from_the_file(tmp_path):
    """A file that records u_tau is rescaled by the unit options (default: its own velocities); a
    file without takes bulk and scale only."""
    from cfdseed.fields import write_field

    g = Grid((12, 17, 10), (4.0, 2.0, 3.0), y="chebyshev")
    field = resolve("trig", {"mean": "turbulent", "u_tau": 2.0})(g, np.random.default_rng(0))
    own = 2.0 * reichardt_bulk(180.0)
    known, plain = tmp_path / "known.h5", tmp_path / "plain.h5"
    write_field(known, field, g, attrs={"re_tau": 180.0, "u_tau": 2.0, "nu": 2.0 / 180})
    write_field(plain, field, g)

    def build(path, **options):
        return resolve("snapshot", {"path": str(path), **options}).build(g, np.random.default_rng(0))

    b = build(known)  # the file's own velocities and units
    np.testing.assert_allclose(b.field, field, atol=1e-10)
    assert (b.info.units.re_tau, b.info.units.u_tau) == (180.0, 2.0) and b.info.units.bulk == pytest.approx(own)
    w = build(known, u_tau=1.0)  # to wall units
    np.testing.assert_allclose(w.field, field / 2.0, atol=1e-10)
    assert w.info.units.bulk == pytest.approx(own / 2.0) and w.info.units.nu == pytest.approx(1 / 180)
    assert build(known, re_tau=180.0, nu=1 / 180).info.units == w.info.units  # the same scale, other words
    k = build(known, bulk=2.5)  # bulk alone: rescaled to it, u_tau follows
    np.testing.assert_allclose(k.field, field * (2.5 / own), atol=1e-10)
    assert k.info.units.u_tau == pytest.approx(2.0 * 2.5 / own)
    r = build(known, re_tau=360.0)  # re_tau alone restates, rescales nothing
    np.testing.assert_allclose(r.field, field, atol=1e-10)
    assert r.info.units.nu == pytest.approx(2.0 / 360)
    assert build(known, scale=3.0).info.units.u_tau == pytest.approx(6.0)  # scale multiplies the file's u_tau
    ph = resolve("phase-randomised", {"path": str(known), "u_tau": 1.0}).build(g, np.random.default_rng(1))
    assert ph.info.units.u_tau == 1.0 and _check(g, ph.field).bulk_velocity == pytest.approx(own / 2.0, rel=1e-12)
    # no u_tau in the file: the file's velocities, bulk set exactly when given, no units
    assert build(plain).info.units is None
    assert _check(g, build(plain, bulk=2.5).field).bulk_velocity == pytest.approx(2.5, rel=1e-12)
    with pytest.raises(SourceError, match="records no u_tau, so re_tau, nu cannot rescale"):
        build(plain, re_tau=180.0, nu=0.01)


def test_bad_input(tmp_path):
    g = Grid((8, 9, 6), (2.0, 2.0, 1.0))
    with pytest.raises(SourceError, match="unknown option"):
        resolve("plug", {"amplitude": 1.0})
    for key in ("re_tau", "u_tau", "nu"):
        with pytest.raises(SourceError, match=f"streaks: {key} must be a positive number"):
            resolve("streaks", {key: 0})
    with pytest.raises(SourceError, match="laminar: bulk must be a finite number"):
        resolve("laminar", {"bulk": float("inf")})
    with pytest.raises(SourceError, match="snapshot: scale must be a positive number"):
        resolve("snapshot", {"path": "f.h5", "scale": 0})
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


def test_trig_warns_when_its_waves_alias_on_the_grid():
    """waves=(16, 2) on 16 x-points used to give x-independent rolls without a word."""
    g = Grid((16, 17, 8), (2.0, 2.0, 1.0), "uniform")
    with pytest.warns(RuntimeWarning, match=r"trig: waves 16 in x on 16 points .*the grid sees mode 0"):
        f = resolve("trig", {"waves": (16, 2)})(g, np.random.default_rng(0))
    assert np.ptp(f[1], axis=0).max() < 1e-12  # indeed constant in x
    with pytest.warns(RuntimeWarning, match=r"waves 4 in z on 8 points .*Nyquist mode"):
        resolve("trig", {"waves": (1, 4)})(g, np.random.default_rng(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve("trig", {"waves": (7, 3)})(g, np.random.default_rng(0))  # resolved: silent
