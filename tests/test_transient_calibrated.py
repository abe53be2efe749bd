"""The reference-calibrated steady-state rule on synthetic records: Ornstein-Uhlenbeck noise with a
known correlation time (the reference's stand-in), known onsets, and records that never settle."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cfdseed.transient import Reference, resample, trailing_mean

DT, TAU, S = 0.05, 3.0, 0.1  # grid step, correlation time and std of the noise


def ou(rng, n, tau=TAU, s=S, signals=2, rho=0.0):
    """(signals, n) OU records; the second correlated with the first by rho."""
    phi = math.exp(-DT / tau)
    e = rng.standard_normal((signals, n))
    if signals > 1:
        e[1] = rho * e[0] + math.sqrt(1 - rho**2) * e[1]
    x = np.empty((signals, n))
    x[:, 0] = s * e[:, 0]
    for i in range(1, n):
        x[:, i] = phi * x[:, i - 1] + math.sqrt(1 - phi**2) * s * e[:, i]
    return x


@pytest.fixture(scope="module")
def ref():
    rng = np.random.default_rng(0)
    n = int(600 / DT) + 1
    t = DT * np.arange(n)
    x = ou(rng, n, rho=0.6)
    return Reference.from_series(t, {"bulk": 15.7 + x[0], "tau": 1.0 + x[1]}, window=1.0, dt=DT, t_start=20.0)


def member(rng, horizon, offset=None):
    n = int(horizon / DT) + 1
    t = DT * np.arange(n)
    x = ou(rng, n, rho=0.6)
    if offset is not None:
        x = x + offset(t)
    return t, {"bulk": 15.7 + x[0], "tau": 1.0 + x[1]}


def test_trailing_mean_and_resample():
    x = np.arange(6.0)
    np.testing.assert_allclose(trailing_mean(x, 3), [np.nan, np.nan, 1, 2, 3, 4])
    g, v = resample([0.0, 1.0, 3.0], [[0.0, 1.0, 3.0]], 0.5, 0.0, 3.0)
    np.testing.assert_allclose(g, [0, 0.5, 1, 1.5, 2, 2.5, 3])
    np.testing.assert_allclose(v[0], g)
    with pytest.raises(ValueError, match="outside"):
        resample([0.0, 1.0], [0.0, 1.0], 0.1, 0.0, 2.0)


def test_a_run_whose_last_record_falls_short_of_the_horizon(ref):
    """A solver records every few steps, so a run's last record may lie just before the horizon
    (the campaign's runs: 0.0006-0.006 h/u_tau before 32): within half a grid step it stands for
    the horizon; further short, the run is refused."""
    rng = np.random.default_rng(5)
    t, s = member(rng, 8.0)
    fine_t = np.append(t[:-1], t[-2] + 0.8 * DT)  # the last record 0.2 DT short of the horizon
    g, full = ref.grid([(t, s)], 8.0)
    g2, short = ref.grid([(fine_t, s)], 8.0)
    np.testing.assert_array_equal(g, g2)
    np.testing.assert_array_equal(short[..., :-1], full[..., :-1])
    np.testing.assert_array_equal(short[0, :, -1], [s["bulk"][-1], s["tau"][-1]])  # the last record, held
    assert ref.onset([(fine_t, s)], k=4.0, horizon=8.0).onset_time == ref.onset([(t, s)], k=4.0, horizon=8.0).onset_time
    cut = {k: v[:-1] for k, v in s.items()}
    with pytest.raises(ValueError, match="more than half a grid step"):
        ref.grid([(np.append(t[:-2], t[-2] + 0.4 * DT), cut)], 8.0)  # 0.6 DT short


def test_reference_statistics_match_the_ou_theory(ref):
    assert ref.signals == ("bulk", "tau") and ref.duration == pytest.approx(580.0)
    np.testing.assert_allclose(ref.mean, [15.7, 1.0], atol=3 * S * math.sqrt(2 * TAU / 580))
    w = 1.0  # variance of a window mean of OU noise: 2 s^2 tau^2 / w^2 (w / tau - 1 + exp(-w / tau))
    sigma = S * math.sqrt(2 * TAU**2 / w**2 * (w / TAU - 1 + math.exp(-w / TAU)))
    np.testing.assert_allclose(ref.sigma, sigma, rtol=0.2)
    np.testing.assert_allclose(ref.integral_time(), TAU, rtol=0.35)
    summ = ref.summary()
    acf1 = summ["signals"]["bulk"]["window_mean_acf_lag1_4"][0]
    assert 0.5 < acf1 < 0.85  # window means 1 apart: correlation ~ exp(-1/3) = 0.72
    exc = summ["signals"]["bulk"]["largest_excursion"]
    assert all(np.diff(exc[:4]) > 0)  # the larger the lag, the larger the largest change (to ~tau)


def test_surrogates_keep_spectra_and_cross_correlation(ref):
    sur = ref.surrogates(40, 100.0, np.random.default_rng(1))
    assert sur.shape == (40, 2, int(100 / DT) + 1)
    np.testing.assert_allclose(sur.mean(axis=(0, 2)), ref.mean, atol=0.02)
    rho = np.mean([np.corrcoef(s[0], s[1])[0, 1] for s in sur])
    assert rho == pytest.approx(np.corrcoef(ref.record)[0, 1], abs=0.05)
    lag, m = int(TAU / DT), sur.shape[2]  # the same estimator on pieces of the same length
    c_sur = np.mean([np.corrcoef(s[0, :-lag], s[0, lag:])[0, 1] for s in sur])
    pieces = [ref.record[0, i: i + m] for i in range(0, ref.record.shape[1] - m, m)]
    c_ref = np.mean([np.corrcoef(p[:-lag], p[lag:])[0, 1] for p in pieces])
    assert c_sur == pytest.approx(c_ref, abs=0.08) and c_sur > 0.15


@pytest.mark.parametrize("members", [1, 4])
def test_calibration_false_censoring_on_independent_stationary_runs(ref, members):
    horizon = 32.0
    k = ref.calibrate(members, horizon, n=300, rng=np.random.default_rng(2))
    assert 2.0 < k < 5.0
    rng = np.random.default_rng(3)  # fresh OU records, not surrogates: the calibration must carry over
    trials = 120
    out = [ref.onset([member(rng, horizon) for _ in range(members)], k=k, horizon=horizon) for _ in range(trials)]
    censored = sum(r.censored for r in out)
    late = sum((not r.censored) and r.onset_time > 1.0 + 1e-9 for r in out)
    assert censored / trials <= 0.10
    assert (censored + late) / trials <= 0.14  # 5 % nominal: passes from the first full window
    assert (censored + late) / trials >= 2 / trials  # and not far below it (a band too wide; 6 and 9 here)


def test_resampled_calibration_widens_the_band_on_the_same_surrogates(ref):
    """k_N^boot: one bootstrap resample of each surrogate ensemble (members with replacement) strays
    further from the mean, so its band constant exceeds k_N; the surrogates themselves are
    unchanged (a resample of one run is the run: k_1^boot = k_1 exactly)."""
    horizon, n = 32.0, 300
    k = ref.calibrate(4, horizon, n=n, rng=np.random.default_rng(2))
    k_boot = ref.calibrate(4, horizon, n=n, rng=np.random.default_rng(2), resample=np.random.default_rng(7))
    assert k_boot > 1.15 * k  # ~sqrt((2N - 1) / N) = 1.32 for the variance added by resampling
    assert ref.calibrate(1, horizon, n=50, rng=np.random.default_rng(3), resample=np.random.default_rng(7)) == \
        ref.calibrate(1, horizon, n=50, rng=np.random.default_rng(3))


def test_known_onset_is_found(ref):
    rng = np.random.default_rng(4)
    horizon, k = 32.0, 3.0
    step = lambda t: np.where(t < 10.0, 1.0, 0.0)  # 1.0 ~ 10 sigma of a window mean, until t = 10  # noqa: E731
    onsets = [ref.onset([member(rng, horizon, step) for _ in range(4)], k=k, horizon=horizon).onset_time
              for _ in range(10)]
    assert all(10.0 < o <= 11.05 + 0.2 for o in onsets)  # the trailing window must clear the step
    decay = lambda t: 2.0 * np.exp(-t / 4.0)  # noqa: E731
    r = ref.onset([member(rng, horizon, decay) for _ in range(4)], k=k, horizon=horizon)
    # 2 exp(-t/4) drops below k sigma / 2 (~0.1) near t = 12, its window mean a little later
    assert not r.censored and 9.0 < r.onset_time < 17.0


def test_never_settling_runs_are_censored(ref):
    rng = np.random.default_rng(5)
    drift = lambda t: 0.05 * t  # noqa: E731
    r = ref.onset([member(rng, 32.0, drift)], k=3.0, horizon=32.0)
    assert r.censored and r.onset_time is None and "horizon" in r.reason
    late = lambda t: np.where(t < 30.0, 1.0, 0.0)  # noqa: E731
    r = ref.onset([member(rng, 32.0, late)], k=3.0, horizon=32.0, min_steady=4.0)
    assert r.censored and "needed" in r.reason


def test_bootstrap_and_power_simulation(ref):
    rng = np.random.default_rng(6)
    horizon, k = 32.0, 3.0
    decay = lambda t: 2.0 * np.exp(-t / 4.0)  # noqa: E731
    ens = [member(rng, horizon, decay) for _ in range(6)]
    boot = ref.bootstrap(ens, k=k, horizon=horizon, n=60, rng=rng)
    assert boot.shape == (60,) and np.isfinite(boot).mean() > 0.75
    lo, hi = np.nanquantile(boot, [0.025, 0.975])
    assert 8.0 < lo <= hi <= 32.0
    m = int(horizon / DT) + 1
    tgrid = DT * np.arange(m)
    flat = ref.simulate(np.zeros((2, m)), 6, horizon, k=k, n=30, rng=rng)
    slow = ref.simulate(np.stack([decay(tgrid), 0.1 * decay(tgrid)]), 6, horizon, k=k, n=30, rng=rng)
    assert np.nanmedian(flat) == pytest.approx(1.0) and np.nanmedian(slow) > 8.0


def test_bad_input_is_refused(ref):
    with pytest.raises(ValueError, match="20 windows"):
        Reference.from_series(np.arange(10.0), {"a": np.arange(10.0)})
    with pytest.raises(ValueError, match="horizon"):
        ref.onset([member(np.random.default_rng(0), 10.0)], k=3.0, horizon=32.0)
    t, s = member(np.random.default_rng(0), 32.0)
    with pytest.raises(ValueError, match="lacks"):
        ref.onset([(t, {"bulk": s["bulk"]})], k=3.0, horizon=32.0)
    with pytest.raises(ValueError, match="template"):
        ref.simulate(np.zeros((2, 5)), 2, 32.0, k=3.0, n=1, rng=np.random.default_rng(0))


def test_enter_then_stay_rule():
    """Amendment 14's resample rule: steady from the first time inside k after which the record
    stays within k_stay; with k_stay = k it is the last exit from the band."""
    from cfdseed.transient.calibrated import onset_from_z, steady_index

    a = np.array([np.nan, 9.0, 5.0, 2.0, 3.5, 2.5, 1.0, 4.5, 2.0, 1.0, 1.0, 1.0])
    z = np.stack([a, -0.5 * a])  # two signals, the first decides
    assert steady_index(z, 3.0) == 8  # last exit (4.5 at index 7)
    assert steady_index(z, 3.0, 5.0) == 3  # inside 3 at index 3, within 5 from there on
    assert steady_index(z, 3.0, 4.0) == 8  # 4.5 leaves the stay band
    assert steady_index(z, 0.5, 5.0) is None  # never inside k
    grid = 0.5 * np.arange(a.size)
    r = onset_from_z(grid, z, 3.0, 1.0, ("a", "b"), k_stay=5.0)
    assert not r.censored and r.onset_time == 1.5 and "then within 5.00" in r.reason
    r = onset_from_z(grid, z, 3.0, 4.0, ("a", "b"))
    assert r.censored and "only from t = 4" in r.reason  # 1.5 before the end, 4 needed
    r = onset_from_z(grid, z, 0.5, 1.0, ("a", "b"), k_stay=5.0)
    assert r.censored and "never inside" in r.reason


# -- argument checks: ValueError naming the argument and what is allowed --------------------------
def _gen(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("kwargs, match", [
    (dict(horizon=0.5), r"horizon 0.5 is shorter than one trailing window"),  # was an IndexError
    (dict(horizon=math.nan), r"horizon must be a finite number"),  # "cannot convert float NaN to integer"
    (dict(horizon="8"), r"horizon must be a finite number"),
    (dict(members=2.5), r"members must be an integer >= 1, got 2.5"),  # was a TypeError
    (dict(members=0), r"members must be an integer >= 1"),
    (dict(members=True), r"members must be an integer >= 1, got True"),
    (dict(n=0), r"n must be an integer >= 1, got 0"),  # IndexError from np.quantile
    (dict(n=2.5), r"n must be an integer >= 1"),
    (dict(level="0.95"), r"0 < level < 1"),
    (dict(level=math.nan), r"0 < level < 1"),
    (dict(rng=0), r"rng must be a numpy.random.Generator .* or None, got 0"),  # was an AttributeError
    (dict(resample=1), r"resample must be a numpy.random.Generator"),
])
def test_calibrate_refuses_bad_arguments(ref, kwargs, match):
    args = dict(members=2, horizon=8.0, n=5, rng=_gen())
    args.update(kwargs)
    members, horizon = args.pop("members"), args.pop("horizon")
    with pytest.raises(ValueError, match=match):
        ref.calibrate(members, horizon, **args)


def test_calibrate_takes_numpy_numbers_and_a_one_window_horizon(ref):
    """The campaign passes numpy and JSON numbers; a horizon of one window is the shortest judged."""
    a = ref.calibrate(np.int64(2), np.float64(8.0), level=np.float64(0.9), n=np.int64(20), rng=_gen(1))
    assert a == ref.calibrate(2, 8, level=0.9, n=20, rng=_gen(1))
    assert math.isfinite(ref.calibrate(1, 1.0, n=5, rng=_gen(1)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(k=math.nan), r"k must be a finite number > 0, got nan"),  # silently censored
    (dict(k=-1.0), r"k must be a finite number > 0, got -1.0"),  # silently censored
    (dict(k=0.0), r"k must be a finite number > 0"),
    (dict(k=True), r"k must be a finite number > 0"),
    (dict(k="3"), r"k must be a finite number > 0"),
    (dict(min_steady=math.nan), r"min_steady must be a finite number >= 0, got nan"),  # silently steady
    (dict(min_steady=-1.0), r"min_steady must be a finite number >= 0"),
    (dict(horizon=0.5), r"horizon 0.5 is shorter than one trailing window"),
    (dict(horizon=math.nan), r"horizon must be a finite number"),
])
def test_onset_refuses_bad_rule_constants(ref, kwargs, match):
    args = dict(k=3.0, horizon=32.0, min_steady=4.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ref.onset([member(_gen(), 32.0)], **args)


def test_onset_takes_a_zero_min_steady_and_numpy_constants(ref):
    m = member(_gen(), 32.0)
    assert ref.onset([m], k=np.float64(3.0), horizon=np.float64(32.0), min_steady=np.float64(0.0)) == \
        ref.onset([m], k=3.0, horizon=32.0, min_steady=0)


def test_runs_of_bad_shape_are_refused_by_name(ref):
    t, s = member(_gen(), 32.0)
    with pytest.raises(ValueError, match=r"run 1: every signal must have the shape of its t \(641,\)"):
        ref.onset([(t, s), (t, dict(s, tau=s["tau"][:-3]))], k=3.0, horizon=32.0)  # np.stack's error
    with pytest.raises(ValueError, match=r"run 0: t must be a 1-D array of at least one time, got shape \(0,\)"):
        ref.onset([(np.array([]), {"bulk": np.array([]), "tau": np.array([])})], k=3.0, horizon=32.0)  # IndexError
    with pytest.raises(ValueError, match=r"run 0: t must be a 1-D array"):
        ref.onset([(t[None], {n: v[None] for n, v in s.items()})], k=3.0, horizon=32.0)
    with pytest.raises(ValueError, match=r"run 1 must be a pair \(t, \{signal: series\}\)"):
        ref.onset([(t, s), 5], k=3.0, horizon=32.0)
    with pytest.raises(ValueError, match="horizon 0.5 is shorter"):
        ref.grid([(t, s)], 0.5)  # a grid too short for one window: nothing the rule can judge


def test_bootstrap_and_simulate_refuse_bad_arguments(ref):
    ens = [member(_gen(i), 16.0) for i in range(3)]
    m = int(16.0 / DT) + 1
    with pytest.raises(ValueError, match=r"n must be an integer >= 0, got 2.5"):
        ref.bootstrap(ens, k=4.0, horizon=16.0, n=2.5, rng=_gen())
    with pytest.raises(ValueError, match=r"rng must be a numpy.random.Generator"):
        ref.bootstrap(ens, k=4.0, horizon=16.0, n=5, rng=3)
    with pytest.raises(ValueError, match=r"k must be a finite number > 0"):  # even when nothing is drawn
        ref.bootstrap(ens, k=math.nan, horizon=16.0, n=0, rng=_gen())
    with pytest.raises(ValueError, match=r"min_steady must be a finite number >= 0"):
        ref.bootstrap(ens, k=4.0, horizon=16.0, n=0, rng=_gen(), min_steady=math.nan)
    with pytest.raises(ValueError, match=r"members must be an integer >= 1, got 0"):
        ref.simulate(np.zeros((2, m)), 0, 16.0, k=4.0, n=2, rng=_gen())
    with pytest.raises(ValueError, match=r"n must be an integer >= 0"):
        ref.simulate(np.zeros((2, m)), 2, 16.0, k=4.0, n=1.5, rng=_gen())
    with pytest.raises(ValueError, match=r"rng must be a numpy.random.Generator \(.*\), got None"):
        ref.simulate(np.zeros((2, m)), 2, 16.0, k=4.0, n=0, rng=None)  # refused even when nothing is drawn
    with pytest.raises(ValueError, match=r"k must be a finite number > 0"):
        ref.simulate(np.zeros((2, m)), 2, 16.0, k=-1.0, n=0, rng=_gen())
    with pytest.raises(ValueError, match=r"horizon must be a finite number"):
        ref.simulate(np.zeros((2, m)), 2, math.nan, k=4.0, n=2, rng=_gen())
    assert ref.bootstrap(ens, k=4.0, horizon=16.0, n=0, rng=_gen()).shape == (0,)


def test_surrogates_refuse_bad_arguments(ref):
    with pytest.raises(ValueError, match=r"n must be an integer >= 0, got 2.5"):
        ref.surrogates(2.5, 8.0, _gen())
    with pytest.raises(ValueError, match=r"length must be a finite number >= 0, got nan"):
        ref.surrogates(2, math.nan, _gen())
    with pytest.raises(ValueError, match=r"rng must be a numpy.random.Generator"):
        ref.surrogates(2, 8.0, 0)
    assert ref.surrogates(np.int64(2), 0.5, _gen()).shape == (2, 2, 11)  # shorter than a window: fine


def _series(n=4001, step=0.05):
    t = step * np.arange(n)
    return t, {"a": np.sin(t) + 0.01 * np.cos(7 * t)}


@pytest.mark.parametrize("kwargs, match", [
    (dict(dt="0.05"), r"need numbers 0 < dt < window, got dt='0.05'"),  # was a TypeError
    (dict(window="1"), r"need numbers 0 < dt < window"),
    (dict(t_start=math.nan), r"t_start must be a number"),  # "cannot convert float NaN to integer"
    (dict(dt=2e-6), r"dt=2e-06 makes a grid of 1.25e\+07 points .* need dt >= "),
])
def test_from_series_refuses_bad_arguments(kwargs, match):
    t, s = _series(51, 0.5)  # 25 windows of 1 in 51 records
    with pytest.raises(ValueError, match=match):
        Reference.from_series(t, s, **kwargs)


def test_from_series_refuses_a_grid_absurdly_larger_than_the_series():
    """dt = 1e-9 used to try to allocate 745 GiB; the refusal names dt and the dt needed."""
    t, s = _series()
    with pytest.raises(ValueError, match=r"dt=1e-09 makes a grid of 2e\+11 points over the reference's 200 "
                                         r"\(4001 records\).* need dt >= 2e-05"):
        Reference.from_series(t, s, dt=1e-9)


def test_from_series_refuses_bad_times_and_ragged_signals():
    t, s = _series()
    bad = t.copy()
    bad[-1] = np.nan
    with pytest.raises(ValueError, match="t must be a 1-D array of finite times"):
        Reference.from_series(bad, s)
    with pytest.raises(ValueError, match=r"t must be a 1-D array of finite times, got shape \(1, 4001\)"):
        Reference.from_series(t[None], {"a": s["a"][None]})
    with pytest.raises(ValueError, match=r"every signal must have the shape of t \(4001,\), got \{'b': \(4000,\)\}"):
        Reference.from_series(t, {"a": s["a"], "b": s["a"][:-1]})


def test_from_series_takes_lists_ints_and_numpy_numbers():
    t, s = _series()
    a = Reference.from_series(t, s, window=1.0, dt=0.05, t_start=10.0)
    b = Reference.from_series(list(t), {"a": list(s["a"])}, window=1, dt=np.float64(0.05), t_start=np.int64(10))
    assert np.array_equal(a.record, b.record) and np.array_equal(a.sigma, b.sigma)
    c = Reference.from_series(t, s, t_start=-math.inf)  # before the series: all of it
    assert np.array_equal(c.record, Reference.from_series(t, s).record)


def test_resample_and_trailing_mean_refuse_bad_arguments():
    t, x = [0.0, 1.0, 3.0], [0.0, 1.0, 3.0]
    for dt in (0.0, -0.5, math.nan, "0.5"):
        with pytest.raises(ValueError, match="dt must be a finite number > 0"):
            resample(t, x, dt, 0.0, 3.0)
    with pytest.raises(ValueError, match="t0 must be a finite number"):
        resample(t, x, 0.5, math.nan, 3.0)
    with pytest.raises(ValueError, match="t1 must be a finite number"):
        resample(t, x, 0.5, 0.0, math.nan)
    with pytest.raises(ValueError, match="non-finite times"):  # NaN passes the increasing check
        resample([0.0, np.nan, 3.0], x, 0.5, 0.0, 3.0)
    with pytest.raises(ValueError, match="need strictly increasing t"):
        resample([0.0, 1.0], 5.0, 0.5, 0.0, 1.0)
    for w in (0, -1, 7, 2.0, np.float64(3.0), None):
        with pytest.raises(ValueError, match=r"window w must be an integer in \[1, 6\]"):
            trailing_mean(np.arange(6.0), w)
    np.testing.assert_array_equal(trailing_mean(np.arange(6.0), np.int64(6)), [np.nan] * 5 + [2.5])


def test_band_constants_of_the_rule_functions_are_checked():
    from cfdseed.transient.calibrated import onset_from_z, steady_index

    z = np.ones((2, 5))
    for k in (math.nan, -1.0, 0.0, "3"):
        with pytest.raises(ValueError, match="k must be a finite number > 0"):
            steady_index(z, k)
    with pytest.raises(ValueError, match="k_stay must be a finite number > 0"):
        steady_index(z, 3.0, math.nan)
    with pytest.raises(ValueError, match="min_steady must be a finite number >= 0"):
        onset_from_z(np.arange(5.0), z, 3.0, math.nan, ("a", "b"))
    assert steady_index(z, np.float64(3.0), np.array(4.0)) == 0
