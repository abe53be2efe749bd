"""Source registry and the built-in "analytic" source (contract 3), checked against the independent
numpy oracles of the contract-1 operators (test_operators.py) and against check_field on one process."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from mpi4py import MPI
from hypothesis import given, settings
from hypothesis import strategies as st

from cfdseed import Grid, SourceError
from cfdseed import sources
from cfdseed.constraints import check_field
from cfdseed.sources import ANALYTIC_DEFAULTS, available, register, resolve
from cfdseed.units import Units, reichardt_bulk
from test_operators import bulk_oracle, divergence_oracle

SELF = MPI.COMM_SELF
WALL = ("uniform", "chebyshev", "tanh:2.5")
CELL = ("uniform-cc", "chebyshev-cc", "tanh-cc:2")


@settings(max_examples=60, deadline=None)
@given(
    nx=st.integers(1, 10), ny=st.integers(3, 24), nz=st.integers(1, 10),
    spec=st.sampled_from(WALL + CELL), seed=st.integers(0, 2**16),
    bulk=st.floats(-3, 3), amplitude=st.floats(0, 0.5), mx=st.integers(0, 3), mz=st.integers(1, 3),
)
def test_analytic_is_discretely_solenoidal_no_slip_and_has_the_bulk(nx, ny, nz, spec, seed, bulk, amplitude, mx, mz):
    grid = Grid((nx, ny, nz), (4.0, 2.0, 2.0), spec)
    # u_tau fixes the scale, so any finite bulk (zero, negative) is just the bulk velocity
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = resolve("analytic", {"bulk": bulk, "u_tau": 1.0, "amplitude": amplitude, "waves": (mx, mz)})(
            grid, np.random.default_rng(seed))
    # waves the grid cannot resolve still give a valid field, with a warning naming the axis
    aliased = [a for a, m, n in (("x", mx, nx), ("z", mz, nz)) if m > 0 and 2 * m >= n]
    assert [str(w.message).split(" in ")[1][0] for w in caught if "Nyquist" in str(w.message)] == aliased
    assert f.shape == (3, nx, ny, nz) and f.dtype == np.float64 and np.isfinite(f).all()
    dmin = min(np.diff(np.r_[0.0, grid.y, 2.0])[np.diff(np.r_[0.0, grid.y, 2.0]) > 0].min(), 4.0 / nx, 2.0 / nz)
    assert np.abs(divergence_oracle(f, grid)).max() <= 1e-13 * (np.abs(f).max() + 1.0) / dmin  # round-off
    assert bulk_oracle(f[0], grid) == pytest.approx(bulk, abs=1e-12)
    if not grid.cell_centred:
        assert (f[:, :, 0] == 0).all() and (f[:, :, -1] == 0).all()  # exactly, not approximately
    fluct = f - f.mean(axis=(1, 3), keepdims=True)
    assert np.abs(fluct).max() <= amplitude * (abs(bulk) or 1.0) * (1 + 1e-12) + 1e-14 * np.abs(f).max()


@pytest.mark.parametrize("spec", WALL + CELL + ("array",))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_analytic_passes_the_default_checks(spec, dtype):
    shape, lengths = (12, 33, 10), (6.0, 2.0, 3.0)
    y = np.r_[0.0, np.sort(np.random.default_rng(1).uniform(0, 2, 31)), 2.0] if spec == "array" else spec
    grid = Grid(shape, lengths, y)
    f = resolve("analytic")(grid, np.random.default_rng(0)).astype(dtype)
    report = check_field(SELF, grid, f)
    assert report.passed, str(report)
    assert ANALYTIC_DEFAULTS["bulk"] is None  # resolved: wall units at Re_tau 180, Reichardt's bulk
    assert report.bulk_velocity == pytest.approx(reichardt_bulk(180.0), rel=1e-6)
    assert 0.5 < report.seam_x < 2 and 0.5 < report.seam_z < 2  # periodic: seam like the interior


def test_analytic_seeded_phases_and_options():
    grid = Grid((8, 9, 6), (2.0, 2.0, 1.0))
    src = resolve("analytic")
    a, b = src(grid, np.random.default_rng(5)), src(grid, np.random.default_rng(5))
    c = src(grid, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    still = resolve("analytic", {"amplitude": 0.0})(grid, np.random.default_rng(5))
    assert (still[1:] == 0).all() and (np.ptp(still[0], axis=(0, 2)) < 1e-15).all()  # pure Poiseuille


@pytest.mark.parametrize(
    "options, match",
    [({"ampl": 1}, "unknown option.*allowed: re_tau, u_tau, nu, bulk, amplitude, waves"), ({"amplitude": -1}, "amplitude"),
     ({"re_tau": 0}, "re_tau must be a positive number"), ({"nu": -1e-3}, "nu must be a positive number"),
     ({"bulk": "fast"}, "must be a finite number"), ({"waves": (1,)}, "waves"), ({"waves": (1.5, 2)}, "waves"),
     ({"waves": (1, 0)}, r"waves must be two integers \(x >= 0, z >= 1\)"),
     ({"bulk": float("nan")}, "finite"), ({"u_bulk": 1.0}, "unknown option.*u_bulk"), ({"modes": (1, 1)}, "modes")],
)
def test_analytic_bad_options(options, match):
    with pytest.raises(SourceError, match=match):
        resolve("analytic", options)


SCALED = ("plug", "laminar", "trig", "streaks", "analytic", "gan")


def _built(name, options, grid):
    extra = {"device": "cpu"} if name == "gan" else {}  # the packaged model: cheap on a small grid
    return resolve(name, {**options, **extra}).build(grid, np.random.default_rng(0))


def test_the_same_unit_options_give_the_same_velocity_scale_in_every_source():
    """One unit contract: {"re_tau": 180} is wall units (u_tau = 1) with Reichardt's bulk velocity
    (gan: its own, within 2 %), {"bulk": 2.5} a bulk velocity of exactly 2.5, whatever the source."""
    grid = Grid((8, 17, 8), (4.0, 2.0, 1.6), "chebyshev")
    for options in ({"re_tau": 180}, {}):
        built = {name: _built(name, options, grid) for name in SCALED}
        for name, b in built.items():
            report = check_field(SELF, grid, b.field)
            assert report.passed, f"{name}: {report}"
            assert isinstance(b.info.units, Units) and (b.info.units.re_tau, b.info.units.u_tau) == (180.0, 1.0), name
            assert report.bulk_velocity == pytest.approx(b.info.units.bulk, rel=1e-9), name
            expected = reichardt_bulk(180.0)
            assert report.bulk_velocity == pytest.approx(expected, rel=0.02 if name == "gan" else 1e-9), name
    built = {name: _built(name, {"bulk": 2.5}, grid) for name in SCALED}
    for name, b in built.items():
        assert check_field(SELF, grid, b.field).bulk_velocity == pytest.approx(2.5, rel=1e-9), name
        assert b.info.units.bulk == 2.5 and b.info.units.re_tau == 180.0
        assert b.info.units.u_tau == pytest.approx(2.5 / reichardt_bulk(180.0), rel=0.02 if name == "gan" else 1e-12)
    assert built["gan"].info.units is built["gan"].info.synthesis.units  # one record, the same type


def test_registry_resolve_and_errors():
    fn = lambda grid, rng: np.zeros((3, *grid.shape))  # noqa: E731
    assert resolve(fn) is fn
    with pytest.raises(SourceError, match="named sources only"):
        resolve(fn, {"a": 1})
    with pytest.raises(SourceError, match="unknown source 'nope'; registered sources: .*analytic"):
        resolve("nope")
    with pytest.raises(SourceError, match="registered name or a callable"):
        resolve(3)
    with pytest.raises(SourceError, match="options must be a dict"):
        resolve("analytic", [("amplitude", 1)])
    assert available() == sorted(["analytic", "gan", "plug", "laminar", "trig", "streaks", "snapshot",
                                  "phase-randomised", "sem"])


def test_register_rejects_a_taken_name_and_wraps_factory_errors(monkeypatch):
    monkeypatch.setattr(sources, "_REGISTRY", dict(sources._REGISTRY))
    with pytest.raises(SourceError, match="already registered"):
        register("analytic")(lambda **o: None)

    @register("needs_n")
    def needs_n(n: int):
        return lambda grid, rng: np.full((3, *grid.shape), float(n))

    with pytest.raises(SourceError, match="bad options for source 'needs_n'"):
        resolve("needs_n", {"m": 1})
    assert resolve("needs_n", {"n": 2})(Grid((2, 2, 2), (1, 1, 1)), None)[0, 0, 0, 0] == 2.0
    register("returns_junk")(lambda: 42)
    with pytest.raises(SourceError, match="not a callable"):
        resolve("returns_junk")


def test_the_registry_is_explicit_and_importing_it_loads_no_torch():
    """Every built-in is listed in the registry itself (no module lookup by name); the gan's
    torch is imported only when the source runs."""
    import subprocess
    import sys

    code = ("import sys, cfdseed.sources as s; f = s.resolve('gan', {'device': 'cpu'}); "
            "print(sorted(s._REGISTRY) == s.available(), type(f).__name__, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "Source", "False"]


def test_one_option_vocabulary_in_one_readme_table():
    """Every option of every built-in source is a word of sources.OPTIONS, and the README's one
    options table lists exactly those words with the sources that take them."""
    import re
    from pathlib import Path

    from cfdseed.sources.baselines import BASELINE_DEFAULTS
    from cfdseed.sources.gan import GAN_DEFAULTS
    from cfdseed.sources.sem import SEM_DEFAULTS

    takes = {"analytic": ANALYTIC_DEFAULTS, "gan": GAN_DEFAULTS, "sem": SEM_DEFAULTS, **BASELINE_DEFAULTS}
    assert set(takes) == set(available())
    used = {name for opts in takes.values() for name in opts}
    assert used == set(sources.OPTIONS)
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert readme.count("| option | meaning | taken by (default) |") == 1
    table = readme.split("| option | meaning | taken by (default) |")[1].split("\n\n")[0]
    rows = dict(re.findall(r"^\| `(\w+)` \|[^|]*\|([^|]*)\|$", table, re.M))
    assert set(rows) == used
    for option, cell in rows.items():
        listed = set(re.findall(r"`([\w-]+)`", cell))
        assert listed == {s for s, opts in takes.items() if option in opts}, option


def test_cell_centred_resolution_documented_for_the_default_no_slip_tolerance():
    reports = {ny: check_field(SELF, g := Grid((4, ny, 4), (4.0, 2.0, 2.0), "uniform-cc"),
                               resolve("analytic")(g, np.random.default_rng(0))) for ny in (10, 11)}
    assert not reports[10].passed and reports[10].failures[0].startswith("no-slip")
    assert reports[11].passed, str(reports[11])


# --------------------------------------------------------------------------------------------
# option values of the baselines and gan, checked when the source is made (not when it runs)
# --------------------------------------------------------------------------------------------
ENFORCING = ("plug", "laminar", "trig", "streaks", "snapshot", "phase-randomised", "gan", "sem")


def _needs(name):
    """Options a source cannot be made without (a file name that is never read here)."""
    return {"path": "never-read.h5"} if name in ("snapshot", "phase-randomised") else {}


@pytest.mark.parametrize("name", ENFORCING)
@pytest.mark.parametrize("key", ["no_slip", "divergence_free"])
def test_switches_must_be_booleans(name, key):
    """A string such as "False" (what --option no_slip=False gives) would be truthy: refused, with the hint."""
    with pytest.raises(SourceError, match=f"^{name}: {key} must be true or false, got 'False' "
                                          r"\(a string; write false, unquoted JSON, or Python's False\)$"):
        resolve(name, {**_needs(name), key: "False"})
    for bad in ("no", 0, 1, None, [True]):
        with pytest.raises(SourceError, match=f"{name}: {key} must be true or false, got {re.escape(repr(bad))}"):
            resolve(name, {**_needs(name), key: bad})
    for good in (True, False, np.True_, np.False_):
        resolve(name, {**_needs(name), key: good})


@pytest.mark.parametrize("name", ENFORCING)
@pytest.mark.parametrize("key", ["blend", "max_ratio"])
def test_blend_and_max_ratio_must_be_positive_finite_numbers(name, key):
    """nan once disabled the max_ratio bound; "a" failed with a bare TypeError when the source ran."""
    for bad in ("a", float("nan"), float("inf"), 0, -1, None, True):
        with pytest.raises(SourceError, match=f"^{name}: {key} must be a positive number, got {re.escape(repr(bad))}$"):
            resolve(name, {**_needs(name), key: bad})
    resolve(name, {**_needs(name), key: 0.5})


@pytest.mark.parametrize("name", ["plug", "laminar", "trig", "streaks", "snapshot", "phase-randomised", "sem"])
def test_seed_option_must_be_a_non_negative_integer(name):
    for bad in (-1, "x", 1.5, True, [1, -2], [], [1.5]):
        with pytest.raises(SourceError, match=f"^{name}: seed must be a non-negative integer .*got {re.escape(repr(bad))}$"):
            resolve(name, {**_needs(name), "seed": bad})
    for good in (None, 0, 7, np.int64(7), [7, 1], np.random.SeedSequence(7)):
        resolve(name, {**_needs(name), "seed": good})


def test_seed_option_still_seeds_the_source_s_own_rng():
    grid = Grid((8, 9, 6), (2.0, 2.0, 1.0))
    a = resolve("plug", {"seed": 4})(grid, np.random.default_rng(0))
    for same in (np.int64(4), [4], np.random.SeedSequence(4)):
        np.testing.assert_array_equal(resolve("plug", {"seed": same})(grid, np.random.default_rng(1)), a)


def test_streaks_modulation_must_be_a_finite_number():
    """"a" failed in numpy (UFuncTypeError), nan as "field has N non-finite values" when the source ran."""
    for bad in ("a", float("nan"), float("inf"), None):
        with pytest.raises(SourceError, match=f"^streaks: modulation must be a finite number, got {re.escape(repr(bad))}$"):
            resolve("streaks", {"modulation": bad})
    for good in (0, -0.5, 2.0):
        resolve("streaks", {"modulation": good})


@pytest.mark.parametrize("name", ["snapshot", "phase-randomised"])
def test_file_sources_path_must_be_a_file_name(name, tmp_path):
    from pathlib import Path

    for bad in (123, b"f.h5", ["f.h5"]):
        with pytest.raises(SourceError, match=f"^{name}: path must be a field file name .*got {re.escape(repr(bad))}$"):
            resolve(name, {"path": bad})
    resolve(name, {"path": Path("f.h5")})
    grid = Grid((8, 9, 6), (2.0, 2.0, 1.0))
    with pytest.raises(SourceError, match=f"^{name}: field file '{re.escape(str(tmp_path))}' is a folder; name the file"):
        resolve(name, {"path": str(tmp_path)})(grid, np.random.default_rng(0))

