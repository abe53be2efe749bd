"""Steady-state detector on synthetic series with a known onset, noise, and never-steady runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cfdseed.transient import combine, detect_steady, mser, running_mean, steady_start

T_ON = 30.0


def ramp_series(seed, n=5001, noise=0.05, t_end=100.0):
    """Linear drift from 2 to 1 until T_ON, then steady at 1, plus white noise."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, t_end, n)
    return t, np.where(t < T_ON, 2.0 - t / T_ON, 1.0) + noise * rng.standard_normal(n)


def ar1(rng, n, phi=0.95, sigma=0.02):
    e = np.zeros(n)
    for i in range(1, n):
        e[i] = phi * e[i - 1] + sigma * rng.standard_normal()
    return e


@pytest.mark.parametrize("seed", range(5))
def test_mser_finds_known_onset(seed):
    t, x = ramp_series(seed)
    r = detect_steady(t, x)
    assert not r.censored and r.steady
    assert 27.0 <= r.onset_time <= 33.0
    assert t[r.onset_index] == r.onset_time
    assert r.mean == pytest.approx(1.0, abs=0.01)
    assert 0 < r.stderr < 0.01


@pytest.mark.parametrize("seed", range(5))
def test_band_finds_known_onset_causally(seed):
    t, x = ramp_series(seed)
    r = detect_steady(t, x, method="band", target=1.0, band=0.05, window=5.0)
    assert not r.censored
    # the running mean needs most of a window past the onset: never before it, at most a window after
    assert T_ON <= r.onset_time <= T_ON + 5.0


def test_band_on_adaptive_time_steps():
    """Non-uniform steps (CFL control): the time-weighted running mean keeps the onset."""
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.uniform(0.005, 0.035, 5000))
    x = np.where(t < T_ON, 2.0 - t / T_ON, 1.0) + 0.05 * rng.standard_normal(t.size)
    r = detect_steady(t, x, method="band", target=1.0, window=5.0)
    assert T_ON <= r.onset_time <= T_ON + 5.0
    assert detect_steady(t, x).onset_time == pytest.approx(T_ON, abs=3.0)


def test_mser_on_steps_that_shrink_in_the_transient():
    """CFL-like steps, short while the flow is fast (80 % of the samples before T_ON): MSER runs on
    the record resampled to uniform time, so the onset is T_ON's, not a sample count's (on the raw
    samples the drift would fill more than the searched half and the run would be censored)."""
    rng = np.random.default_rng(5)
    t = np.concatenate([np.linspace(0.0, T_ON, 4000, endpoint=False), np.linspace(T_ON, 100.0, 1000)])
    x = np.where(t < T_ON, 2.0 - t / T_ON, 1.0) + 0.05 * rng.standard_normal(t.size)
    r = detect_steady(t, x)
    assert not r.censored and r.onset_time == pytest.approx(T_ON, abs=3.0)


def test_mser_drifting_over_the_searched_half_is_censored_at_the_search_limit():
    t, x = ramp_series(6)
    x += np.where(t < 70.0, 0.5 * (1.0 - t / 70.0), 0.0)  # still drifting beyond half the record
    r = detect_steady(t, x)
    assert r.censored and "search limit" in r.reason


def test_exponential_transient():
    rng = np.random.default_rng(1)
    t = np.linspace(0, 100, 5001)
    x = 1.0 + np.exp(-t / 5.0) + 0.05 * rng.standard_normal(t.size)
    # exp(-t/5) falls below the noise level (0.05) at t = 15 and below 5 % of the target at ~15
    assert 12.0 <= detect_steady(t, x).onset_time <= 25.0
    assert 15.0 <= detect_steady(t, x, method="band", target=1.0, window=5.0).onset_time <= 21.0


def test_steady_from_start_with_correlated_noise():
    rng = np.random.default_rng(4)
    t = np.linspace(0, 100, 5001)
    r = detect_steady(t, 1.0 + ar1(rng, t.size))
    assert not r.censored and r.onset_time <= 10.0


@pytest.mark.parametrize("kind", ["drift", "slow", "growth"])
def test_never_steady_is_censored(kind):
    rng = np.random.default_rng(2)
    t = np.linspace(0, 100, 5001)
    noise = 0.05 * rng.standard_normal(t.size)
    x = {"drift": 1 + 0.01 * t, "slow": 1 + np.exp(-t / 60), "growth": 1 + 0.1 * np.exp(t / 30)}[kind] + noise
    for r in (detect_steady(t, x), detect_steady(t, x, method="band", target=1.0, window=5.0)):
        assert r.censored and not r.steady
        assert r.onset_time is None and r.onset_index is None
        assert r.t_end == 100.0 and r.reason
        assert json.loads(json.dumps(r.to_dict()))["onset_time"] is None


def test_band_entered_too_late_is_censored():
    t, x = ramp_series(0, t_end=33.0, n=1651)
    r = detect_steady(t, x, method="band", target=1.0, window=2.0, min_steady=5.0)
    assert r.censored and "only" in r.reason


def test_blow_up_is_censored():
    t, x = ramp_series(0)
    x[4000:] = np.nan
    r = detect_steady(t, x)
    assert r.censored and "blew up" in r.reason


def test_mser_does_not_depend_on_the_record_s_offset():
    """The MSER sums were taken on uncentred batch means: adding 1e6 moved the onset from 22.8
    to 26.3 (1e8: 44.3), and a constant record got onset 1.25."""
    t = np.linspace(0.0, 100.0, 2000)
    x = 1.0 + np.exp(-t / 5.0) + 0.02 * np.random.default_rng(3).standard_normal(t.size)
    base = detect_steady(t, x)
    for offset in (1e6, 1e8, -1e5):
        assert detect_steady(t, x + offset).onset_time == base.onset_time, offset
    assert detect_steady(t, np.full(t.size, 15.57)).onset_time == 0.0


def test_non_finite_values_followed_by_finite_ones_are_no_blow_up():
    """One NaN at the start (or a gap) was reported as 'the run blew up' and censored the record."""
    t, x = ramp_series(0)
    for i in (0, 500):
        y = x.copy()
        y[i] = np.nan
        with pytest.raises(ValueError, match=rf"non-finite values at t = .* \(index {i}\) with finite ones after"):
            detect_steady(t, y)


def test_short_series_is_censored():
    assert detect_steady(np.arange(20.0), np.ones(20)).censored


def test_combine_takes_latest_onset_or_censors():
    t, x = ramp_series(0)
    early = detect_steady(t, np.where(t < 10, 2 - t / 10, 1) + 0.05 * np.random.default_rng(9).standard_normal(t.size))
    late = detect_steady(t, x)
    c = combine([early, late])
    assert c.onset_time == late.onset_time and not c.censored
    never = detect_steady(t, 1 + 0.01 * t)
    assert combine([early, never]).censored


def test_running_mean_and_mser_primitives():
    t = np.linspace(0, 10, 101)
    r = running_mean(t, 2 * t, 2.0)
    assert np.all(np.isnan(r[t < 2 - 1e-9]))
    np.testing.assert_allclose(r[t >= 2], 2 * t[t >= 2] - 2.0, atol=1e-12)
    z = np.array([5.0, 1.0, 1.0, 1.0, 1.0])
    s = mser(z)
    assert np.argmin(s[:4]) == 1 and s[1] == 0.0


def test_bad_input():
    t = np.linspace(0, 1, 50)
    with pytest.raises(ValueError, match="one of mser, band"):
        detect_steady(t, t, method="magic")
    with pytest.raises(ValueError, match="target"):
        detect_steady(t, t, method="band")
    with pytest.raises(ValueError, match="strictly increasing"):
        detect_steady(t[::-1], t)
    with pytest.raises(ValueError, match="same length"):
        detect_steady(t, t[:-1])
    with pytest.raises(ValueError, match="window"):
        detect_steady(t, t, method="band", target=1.0, window=5.0)


# -- steady_start: the documented criterion of the Dedalus validation ------------------------------
def _run_series(t, bulk, tau):
    return dict(t=t, bulk=bulk, tau_lower=tau, tau_upper=tau)


def test_steady_start_after_relaxation():
    t = np.linspace(0.0, 30.0, 3001)
    rng = np.random.default_rng(0)
    tau = 1 + 0.5 * np.exp(-t / 2) + 0.02 * rng.standard_normal(t.size)
    bulk = 15.7 * (1 + 0.2 * np.exp(-t / 2)) + 0.05 * rng.standard_normal(t.size)
    ts = steady_start(_run_series(t, bulk, tau))
    # bulk excess 0.2 exp(-t/2) < 1 % from t = 6; tau excess 0.5 exp(-t/2) < 5 % from t = 4.6
    assert 4.0 <= ts <= 7.5


def test_steady_start_none_while_drifting():
    t = np.linspace(0.0, 10.0, 1001)
    assert math.isinf(steady_start(_run_series(t, 15 + 0.5 * t, np.ones_like(t))))
    assert math.isinf(steady_start(_run_series(t, np.full_like(t, 15.0), np.full_like(t, 1.3))))


def test_steady_start_too_short():
    assert math.isinf(steady_start(_run_series(np.array([0.0]), np.array([1.0]), np.array([1.0]))))


@pytest.mark.parametrize("window", [1.0, 4.0])
def test_steady_start_on_window_grid(window):
    t = np.linspace(0.0, 20.0, 2001)
    ts = steady_start(_run_series(t, np.full_like(t, 15.0), np.ones_like(t)), window=window)
    assert ts == 0.0


# -- argument checks: ValueError naming the argument and what is allowed --------------------------
def _steady(n=641, dt=0.05):
    t = dt * np.arange(n)
    return t, 1.0 + 0.001 * np.sin(t)


@pytest.mark.parametrize("min_steady", [math.nan, -5.0, math.inf])
def test_band_refuses_a_bad_min_steady(min_steady):
    """NaN or a negative min_steady used to pass every onset as steady."""
    t, x = _steady()
    with pytest.raises(ValueError, match=r"min_steady must be a finite time >= 0.*got"):
        detect_steady(t, x, method="band", target=1.0, min_steady=min_steady)


@pytest.mark.parametrize("band", ["0.1", None, [0.1]])
def test_band_refuses_a_band_that_is_not_a_number(band):
    t, x = _steady()
    with pytest.raises(ValueError, match=r"band must be a number in \(0, 1\)"):
        detect_steady(t, x, method="band", target=1.0, band=band)


@pytest.mark.parametrize("batch", [math.nan, math.inf, None, 2.5, 0])
def test_mser_refuses_a_bad_batch(batch):
    t, x = _steady()
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        detect_steady(t, x, batch=batch)


@pytest.mark.parametrize("z_max", ["4", None, 0.0, math.nan])
def test_mser_refuses_a_bad_z_max(z_max):
    t, x = _steady()
    with pytest.raises(ValueError, match=r"z_max must be a number > 0"):
        detect_steady(t, x, z_max=z_max)


@pytest.mark.parametrize("kwargs", [dict(batch=0), dict(z_max=-1.0),
                                    dict(method="band", target=1.0, band=2.0),
                                    dict(method="band", target=None), dict(method="band", target=1.0, window=-1.0)])
def test_bad_parameters_raise_even_when_the_record_blew_up(kwargs):
    """Parameters were checked after the NaN censoring: a blown-up run returned 'censored' for them."""
    t, x = _steady()
    x[300:] = np.nan
    with pytest.raises(ValueError, match="must|needs"):
        detect_steady(t, x, **kwargs)


@pytest.mark.parametrize("name, value", [("window", "2"), ("window", [2.0]), ("min_steady", "1"), ("target", "1")])
def test_band_refuses_parameters_that_are_not_numbers(name, value):
    """A string or list window/min_steady/target fell through to float() (TypeError or a silent parse)."""
    t, x = _steady()
    kwargs = dict(method="band", target=1.0)
    kwargs[name] = value
    with pytest.raises(ValueError, match=name):
        detect_steady(t, x, **kwargs)


def test_numbers_of_any_numeric_type_are_taken_as_before():
    """The benchmark passes ints, floats and numpy scalars: each gives the float call's result."""
    t, x = ramp_series(0)
    assert detect_steady(t, x, batch=np.int64(5), z_max=np.float64(4.0)) == detect_steady(t, x)
    assert detect_steady(t, x, batch=5.0, z_max=4).onset_time == detect_steady(t, x).onset_time
    assert detect_steady(t, x, z_max=math.inf).onset_time == detect_steady(t, x, z_max=1e300).onset_time
    band = dict(method="band", target=1.0, window=5.0)
    assert detect_steady(t, x, **band, band=np.float64(0.05), min_steady=np.float64(5.0)) == \
        detect_steady(t, x, **band, band=0.05, min_steady=5)
    zero = detect_steady(t, x, **band, min_steady=0)
    assert zero.onset_time == detect_steady(t, x, **band, min_steady=0.0).onset_time


@pytest.mark.parametrize("window", [0, 0.0, -1.0, math.nan, math.inf, "2", None])
def test_running_mean_refuses_a_bad_window(window):
    """A zero, negative or NaN window used to return NaN or garbage."""
    t = np.linspace(0, 10, 101)
    with pytest.raises(ValueError, match="window must be a finite number > 0"):
        running_mean(t, t, window)


def test_combine_refuses_what_is_not_a_result_and_takes_any_iterable():
    t, x = ramp_series(0)
    r = detect_steady(t, x)
    with pytest.raises(ValueError, match=r"SteadyState.*results\[1\] is None"):
        combine([r, None])
    with pytest.raises(ValueError, match="at least one"):
        combine(iter([]))
    assert combine(iter([r, r])) == combine([r, r])


@pytest.mark.parametrize("window", [0, 0.0, -1.0, math.nan, math.inf, "2"])
def test_steady_start_refuses_a_bad_window(window):
    """0 used to fail in numpy ("Maximum allowed size exceeded"), -1 to return inf silently."""
    t = np.linspace(0.0, 20.0, 2001)
    with pytest.raises(ValueError, match="window must be a finite number > 0"):
        steady_start(_run_series(t, np.full_like(t, 15.0), np.ones_like(t)), window=window)


@pytest.mark.parametrize("name", ["tol_tau", "tol_bulk", "min_windows"])
@pytest.mark.parametrize("value", [-0.1, math.nan, "1"])
def test_steady_start_refuses_a_bad_tolerance(name, value):
    t = np.linspace(0.0, 20.0, 2001)
    with pytest.raises(ValueError, match=f"{name} must be a finite number >= 0"):
        steady_start(_run_series(t, np.full_like(t, 15.0), np.ones_like(t)), **{name: value})


def test_steady_start_refuses_times_that_do_not_increase():
    """Reversed times returned inf ("not steady") without a word; a restart's repeated times were
    counted twice."""
    t = np.linspace(0.0, 20.0, 2001)
    series = _run_series(t, np.full_like(t, 15.0), np.ones_like(t))
    with pytest.raises(ValueError, match=r"strictly increasing; t\[0\] = 20 is followed by 19.99"):
        steady_start({k: v[::-1] for k, v in series.items()})
    twice = {k: np.concatenate([v[:1001], v[1000:]]) for k, v in series.items()}
    with pytest.raises(ValueError, match="a restart's overlap"):
        steady_start(twice)


def test_steady_start_names_missing_columns():
    t = np.linspace(0.0, 20.0, 2001)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['tau_lower', 'tau_upper'\].*needs"):
        steady_start({"t": t, "bulk": t})


def test_steady_start_takes_lists_and_refuses_ragged_or_non_finite_columns():
    t = np.linspace(0.0, 20.0, 2001)
    series = _run_series(t, np.full_like(t, 15.0), np.ones_like(t))
    assert steady_start({k: list(v) for k, v in series.items()}) == steady_start(series) == 0.0
    with pytest.raises(ValueError, match="1-D arrays of one length"):
        steady_start(dict(series, bulk=series["bulk"][:-1]))
    with pytest.raises(ValueError, match="1-D arrays of one length"):
        steady_start({k: v[None] for k, v in series.items()})
    bad_t = t.copy()
    bad_t[-1] = np.nan
    with pytest.raises(ValueError, match="non-finite times"):
        steady_start(dict(series, t=bad_t))
