"""Steady-state detection calibrated on a long stationary reference record.

The single-record rules of :mod:`cfdseed.transient.rules` judge a run by itself; their standard
errors come from the run, which in a minimal channel box is far too short for the slow bulk
mode (under a constant body force U_b relaxes with T of about 8 h/u_tau). The rule here takes
the noise from a *reference*: a long stationary run of the same case. For each monitored signal
s the reference gives its mean mu_s and the standard deviation sigma_s of its trailing
``window`` means; an ensemble of N runs is steady from the first time t after which, until the
horizon, every signal's ensemble-mean trailing mean m_s satisfies

    |m_s(t) - mu_s| <= k sigma_s / sqrt(N).

k is calibrated on surrogates of the reference (:meth:`Reference.surrogates`: random Fourier
phases, one set for all signals, so every spectrum and cross-spectrum is kept) such that an
ensemble of N stationary records stays inside the band over the whole horizon with probability
``level`` (0.95): control vs control passes from the first full window with that probability, and
a single run (N = 1) is falsely censored with probability 1 - level. A bootstrap resample of an
ensemble (members drawn with replacement: ~(2N - 1)/N times the variance of its mean about mu) is
judged with its own constant, calibrated the same way on one resample of each surrogate ensemble
(``calibrate(..., resample=rng)``), so resampled stationary ensembles pass with ``level`` too.

Usage::

    ref = Reference.from_series(t, {"bulk": ub, "tau_lower": tl, ...}, window=1.0, t_start=40)
    k = ref.calibrate(members=8, horizon=32.0, rng=np.random.default_rng(0))
    k_boot = ref.calibrate(members=8, horizon=32.0, rng=np.random.default_rng(0),
                           resample=np.random.default_rng(1))  # for bootstrap resamples
    r = ref.onset([(t1, s1), (t2, s2), ...], k=k, horizon=32.0)      # SteadyState
    ref.bootstrap([(t1, s1), ...], k=k_boot, horizon=32.0, n=2000, rng=rng)  # onsets, NaN = censored

Every time is in the units of the series (h/u_tau in cfdseed) and measured from the run's start.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _checks
from .rules import SteadyState

__all__ = ["Reference", "resample", "trailing_mean"]

Member = tuple[Any, Mapping[str, Any]]  # (t (n,), {signal: (n,)}) of one run

#: The most points of a reference's resampling grid when it would also be finer than the series
#: (a grid finer than the records adds nothing; 10^7 points of a few signals is already GBs of work).
MAX_GRID_POINTS = 10_000_000


def resample(t: Any, x: Any, dt: float, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation of ``x (..., n)`` onto the uniform grid ``t0, t0 + dt, ... <= t1``."""
    _checks.positive("dt", dt)
    _checks.finite("t0", t0)
    _checks.finite("t1", t1)
    t = np.asarray(t, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if t.ndim != 1 or x.ndim < 1 or x.shape[-1] != t.size or t.size < 2 or np.any(np.diff(t) <= 0):
        raise ValueError(f"need strictly increasing t (n,) and x (..., n) with n >= 2; got {t.shape}, {x.shape}")
    if not np.isfinite(t).all():  # NaN passes the increasing check (its comparisons are False)
        raise ValueError("t holds non-finite times")
    if t0 < t[0] - 1e-9 or t1 > t[-1] + 1e-9:
        raise ValueError(f"grid [{t0:g}, {t1:g}] outside the series [{t[0]:g}, {t[-1]:g}]")
    grid = t0 + dt * np.arange(int(math.floor((t1 - t0) / dt + 1e-9)) + 1)
    flat = x.reshape(-1, t.size)
    out = np.stack([np.interp(grid, t, row) for row in flat]).reshape(*x.shape[:-1], grid.size)
    return grid, out


def trailing_mean(x: np.ndarray, w: int) -> np.ndarray:
    """Mean of the last ``w`` samples along the last axis; NaN until ``w`` samples exist.

    Raises
    ------
    ValueError
        ``w`` not an integer in [1, n], n the samples along the last axis.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1] if x.ndim else 0
    if not _checks.is_integer(w) or not 1 <= w <= n:
        raise ValueError(f"window w must be an integer in [1, {n}] (the samples of x along its last axis), got {w!r}")
    c = np.cumsum(x, axis=-1)
    out = np.full(x.shape, np.nan)
    out[..., w - 1] = c[..., w - 1] / w
    out[..., w:] = (c[..., w:] - c[..., :-w]) / w
    return out


def _check_band(k: Any, k_stay: Any) -> None:
    """The band constants: finite and > 0 (a NaN or negative band would censor every record)."""
    _checks.positive("k", k)
    if k_stay is not None:
        _checks.positive("k_stay", k_stay)


def _check_rule(k: Any, min_steady: Any) -> None:
    """The rule's constants, checked before a loop that may not run (``n = 0``) or draws first."""
    _check_band(k, None)
    _checks.non_negative("min_steady", min_steady)


def steady_index(z: np.ndarray, k: float, k_stay: float | None = None) -> int | None:
    """First grid index inside ``k`` (``max_s |z_s| <= k``) from which the record stays inside
    ``k_stay`` (default ``k``: the last exit from the band) to the end; None if there is none.
    NaN (window not yet full) counts as outside."""
    _check_band(k, k_stay)
    a = np.max(np.where(np.isnan(z), np.inf, np.abs(z)), axis=0)
    stay = a <= (k if k_stay is None else k_stay)
    stays = np.flip(np.logical_and.accumulate(np.flip(stay)))  # inside k_stay from here to the end
    hit = np.flatnonzero((a <= k) & stays)
    return int(hit[0]) if hit.size else None


def onset_from_z(grid: np.ndarray, z: np.ndarray, k: float, min_steady: float, names: Sequence[str],
                 k_stay: float | None = None) -> SteadyState:
    """The rule on z-scores ``z (S, m)`` (:meth:`Reference.z_scores`) on ``grid``: steady from the
    first grid time inside ``k`` after which ``max_s |z_s|`` stays within ``k_stay`` (default ``k``)
    to the end, if at least ``min_steady`` before it; ``names``: the signals, for the reason."""
    _checks.non_negative("min_steady", min_steady)
    stay = k if k_stay is None else k_stay
    t_end = float(grid[-1])
    i = steady_index(z, k, k_stay)
    if i is None:
        if np.all(np.isnan(z[:, -1])):
            why = "no record at the horizon (a member that failed counts as outside the band from its failure)"
        elif np.all(np.abs(z[:, -1]) <= stay):
            why = f"never inside k = {k:.2f} while staying within {stay:.2f} to the horizon"
        else:
            worst = names[int(np.nanargmax(np.abs(z[:, -1])))]
            why = (f"outside the band at the horizon ({worst}: {z[:, -1].max():+.2f} / {z[:, -1].min():+.2f} "
                   f"band units, k = {stay:.2f})")
        return SteadyState(True, None, None, t_end, "reference-band", why)
    if t_end - grid[i] < min_steady:
        return SteadyState(True, None, None, t_end, "reference-band",
                           f"inside the band only from t = {grid[i]:g}, {t_end - grid[i]:g} before the horizon "
                           f"(at least {min_steady:g} needed)")
    last_z = np.abs(z[:, i - 1]) if i else np.full(len(names), np.nan)
    if np.isfinite(last_z).any():
        why = f"last out: {names[int(np.nanargmax(last_z))]} at t = {grid[i - 1]:g}"
    else:
        why = "inside from the first full window"
    band = f"within {k:.2f}" if k_stay is None else f"inside {k:.2f}, then within {stay:.2f},"
    return SteadyState(False, float(grid[i]), i, t_end, "reference-band",
                       f"every signal's trailing mean {band} reference standard deviations to the horizon ({why})")


@dataclass(frozen=True)
class Reference:
    """Stationary statistics of the monitored signals, from one long reference run.

    Attributes
    ----------
    signals
        Names of the monitored signals (the keys of the series).
    dt, window
        Step of the uniform resampling grid and the trailing-mean window.
    record
        ``(S, n)`` the stationary part of the reference on the grid.
    mean, sigma
        ``(S,)`` each signal's mean and the standard deviation of its trailing window means.
    """

    signals: tuple[str, ...]
    dt: float
    window: float
    record: np.ndarray = field(repr=False)
    mean: np.ndarray = field(repr=False)
    sigma: np.ndarray = field(repr=False)

    @classmethod
    def from_series(cls, t: Any, series: Mapping[str, Any], *, window: float = 1.0, dt: float = 0.05,
                    t_start: float = 0.0) -> Reference:
        """Reference from the part ``t >= t_start`` of one run's series.

        Raises
        ------
        ValueError
            Fewer than 20 windows after ``t_start``, non-finite values, a constant signal, signals
            not of the shape of ``t``, or a ``dt`` whose grid would exceed :data:`MAX_GRID_POINTS`
            points and the series' own records.
        """
        t = np.asarray(t, dtype=np.float64)
        names = tuple(series)
        if not names:
            raise ValueError("need at least one signal")
        if not (_checks.is_real(dt) and _checks.is_real(window) and 0 < dt < window):
            raise ValueError(f"need numbers 0 < dt < window, got dt={dt!r}, window={window!r}")
        if not _checks.is_real(t_start) or math.isnan(float(t_start)):
            raise ValueError(f"t_start must be a number (a time of the series), got {t_start!r}")
        if t.ndim != 1 or not np.isfinite(t).all():
            raise ValueError(f"t must be a 1-D array of finite times, got shape {t.shape}" +
                             ("" if t.ndim != 1 else " with non-finite values"))
        if t.size < 2 or t[-1] - max(t_start, t[0]) < 20 * window:
            raise ValueError(f"reference after t = {t_start:g} spans less than 20 windows of {window:g}")
        span = float(t[-1]) - max(float(t_start), float(t[0]))
        points = math.floor(span / float(dt) + 1e-9) + 1  # as resample cuts the grid
        limit = max(MAX_GRID_POINTS, t.size)
        if points > limit:
            raise ValueError(f"dt={dt!r} makes a grid of {points:.3g} points over the reference's {span:g} "
                             f"({t.size} records); at most {MAX_GRID_POINTS:.0e} (or the records) allowed: "
                             f"need dt >= {span / (limit - 1):.3g}")
        cols = [np.asarray(series[s], dtype=np.float64) for s in names]
        wrong = {s: c.shape for s, c in zip(names, cols) if c.shape != t.shape}
        if wrong:
            raise ValueError(f"every signal must have the shape of t {t.shape}, got {wrong}")
        x = np.stack(cols)
        if not np.isfinite(x).all():
            raise ValueError("reference series hold non-finite values")
        _, rec = resample(t, x, dt, max(t_start, float(t[0])), float(t[-1]))
        w = cls._samples(window, dt)
        tm = trailing_mean(rec, w)[:, w - 1:]
        sigma = tm.std(axis=1, ddof=1)
        if np.any(sigma <= 0):
            raise ValueError(f"constant reference signal(s): {[n for n, s in zip(names, sigma) if s <= 0]}")
        return cls(names, float(dt), float(window), rec, rec.mean(axis=1), sigma)

    @staticmethod
    def _samples(window: float, dt: float) -> int:
        """Grid samples of one window: those in [t - window, t]."""
        return max(1, int(round(window / dt))) + 1

    @property
    def duration(self) -> float:
        return self.dt * (self.record.shape[1] - 1)

    # -- statistics of the reference ---------------------------------------------------------
    def window_means(self) -> np.ndarray:
        """``(S, m)`` means of consecutive, non-overlapping windows."""
        w = self._samples(self.window, self.dt)
        m = self.record.shape[1] // w
        return self.record[:, : m * w].reshape(len(self.signals), m, w).mean(axis=2)

    def acf(self, max_lag: float) -> tuple[np.ndarray, np.ndarray]:
        """Autocorrelation of each signal: lags (L,) and ``(S, L)`` (FFT, biased estimator)."""
        x = self.record - self.mean[:, None]
        n = x.shape[1]
        f = np.fft.rfft(x, 2 * n, axis=1)
        c = np.fft.irfft(f * np.conj(f), axis=1)[:, : int(max_lag / self.dt) + 1]
        return self.dt * np.arange(c.shape[1]), c / c[:, :1]

    def integral_time(self) -> np.ndarray:
        """``(S,)`` integral time scale: the ACF integrated to its first zero crossing."""
        lags, r = self.acf(self.duration / 4)
        out = np.empty(len(self.signals))
        for s, row in enumerate(r):
            neg = np.flatnonzero(row <= 0)
            end = int(neg[0]) if neg.size else row.size
            out[s] = float(np.trapezoid(row[:end], lags[:end])) if end > 1 else 0.0
        return out

    def largest_excursion(self, lengths: Sequence[float]) -> np.ndarray:
        """``(S, len(lengths))``: the largest |change| of the trailing window mean over each length."""
        w = self._samples(self.window, self.dt)
        tm = trailing_mean(self.record, w)[:, w - 1:]
        out = np.zeros((len(self.signals), len(lengths)))
        for j, length in enumerate(lengths):
            lag = int(round(length / self.dt))
            if 0 < lag < tm.shape[1]:
                out[:, j] = np.abs(tm[:, lag:] - tm[:, :-lag]).max(axis=1)
            else:
                out[:, j] = np.nan
        return out

    def summary(self, lengths: Sequence[float] = (1, 2, 4, 6, 8, 12, 16)) -> dict[str, Any]:
        """JSON-ready statistics: mean, sigma of window means, 5-95 % of window means, integral
        time, the window means' autocorrelation at lags of 1-4 windows, largest excursions."""
        wm = self.window_means()
        lags, r = self.acf(4 * self.window)
        at = [int(round(j * self.window / self.dt)) for j in (1, 2, 3, 4)]
        tint = self.integral_time()
        exc = self.largest_excursion(lengths)
        return {
            "duration": self.duration, "window": self.window, "dt": self.dt, "excursion_lengths": list(lengths),
            "signals": {
                name: {
                    "mean": float(self.mean[s]), "sigma_window_mean": float(self.sigma[s]),
                    "window_mean_q05_q95": [float(q) for q in np.quantile(wm[s], [0.05, 0.95])],
                    "window_mean_acf_lag1_4": [float(np.corrcoef(wm[s][:-j], wm[s][j:])[0, 1]) for j in (1, 2, 3, 4)],
                    "acf_lag_window_1_4": [float(r[s, i]) for i in at if i < r.shape[1]],
                    "integral_time": float(tint[s]),
                    "largest_excursion": [float(v) for v in exc[s]],
                } for s, name in enumerate(self.signals)
            },
        }

    # -- surrogates, calibration and the rule --------------------------------------------------
    @functools.cached_property
    def _spectrum(self) -> np.ndarray:
        """``(S, F)`` Fourier coefficients of the record's fluctuations (computed once: the
        calibration and the power analysis draw thousands of surrogates from it)."""
        return np.fft.rfft(self.record - self.mean[:, None], axis=1)

    def surrogates(self, n: int, length: float, rng: np.random.Generator) -> np.ndarray:
        """``(n, S, m)`` stationary records of ``length`` with the reference's spectra.

        Phase randomisation: the record's Fourier amplitudes with uniform random phases, the
        same for every signal (cross-spectra kept); each surrogate is cut at a random offset.
        """
        _checks.count("n", n, 0)
        _checks.non_negative("length", length)
        _checks.generator("rng", rng, optional=False)
        m = int(round(length / self.dt)) + 1
        nrec = self.record.shape[1]
        if m > nrec:
            raise ValueError(f"surrogate length {length:g} exceeds the reference ({self.duration:g})")
        f = self._spectrum  # (S, F)
        out = np.empty((n, len(self.signals), m))
        for i in range(n):
            phase = np.exp(2j * np.pi * rng.random(f.shape[1]))
            phase[0] = 1.0
            if nrec % 2 == 0:
                phase[-1] = 1.0
            y = np.fft.irfft(f * phase, n=nrec, axis=1)
            start = int(rng.integers(nrec))
            out[i] = np.take(y, np.arange(start, start + m) % nrec, axis=1)
        return out + self.mean[None, :, None]

    def _horizon_points(self, horizon: Any, *, floor: bool = False) -> int:
        """Grid points ``0, dt, ..., horizon`` (rounded as the surrogates round a length, or with
        ``floor`` as :func:`resample` cuts a grid) of a horizon checked to be finite and to hold at
        least one full trailing window."""
        _checks.finite("horizon", horizon)
        m = (int(math.floor(horizon / self.dt + 1e-9)) if floor else int(round(horizon / self.dt))) + 1
        w = self._samples(self.window, self.dt)
        if m < w:
            raise ValueError(f"horizon {horizon!r} is shorter than one trailing window: need at least "
                             f"{(w - 1) * self.dt:g} (window {self.window:g}, grid step {self.dt:g})")
        return m

    def z_scores(self, grid_values: np.ndarray, members: int) -> np.ndarray:
        """``(S, m)`` band units of an ensemble-mean ``(S, m)`` record of ``members`` runs."""
        w = self._samples(self.window, self.dt)
        tm = trailing_mean(grid_values, w)
        return (tm - self.mean[:, None]) / (self.sigma[:, None] / math.sqrt(members))

    def calibrate(self, members: int, horizon: float, *, level: float = 0.95, n: int = 1000,
                  rng: np.random.Generator | None = None, resample: np.random.Generator | None = None) -> float:
        """k such that an ensemble of ``members`` stationary surrogate runs stays inside the band
        over the whole horizon with probability ``level``.

        ``resample``: judge instead one bootstrap resample of each surrogate ensemble (its members
        drawn with replacement by this generator), giving the band constant of bootstrap resamples
        (k_N^boot; a resample's mean strays further from mu than the ensemble's). The surrogates are
        the same as without it: ``rng`` draws nothing else.
        """
        _checks.count("members", members, 1)
        if not _checks.is_real(level) or not 0 < level < 1:
            raise ValueError(f"need 0 < level < 1, got {level!r}")
        _checks.count("n", n, 1)
        _checks.generator("rng", rng, optional=True)
        _checks.generator("resample", resample, optional=True)
        self._horizon_points(horizon)
        rng = np.random.default_rng() if rng is None else rng
        sup = np.empty(n)
        for i in range(n):
            ens = self.surrogates(members, horizon, rng)  # (members, S, m)
            if resample is not None:
                ens = ens[resample.integers(members, size=members)]
            sup[i] = np.nanmax(np.abs(self.z_scores(ens.mean(axis=0), members)))
        return float(np.quantile(sup, level))

    def grid(self, members: Sequence[Member], horizon: float) -> tuple[np.ndarray, np.ndarray]:
        """Members resampled onto ``0, dt, ..., horizon``: grid (m,) and ``(N, S, m)`` values.

        A run's records need not reach the horizon exactly: a solver records every few steps, so
        its last record may fall short of it. Within half a grid step (``dt / 2``) the last record
        stands for the horizon (held); a run that ends earlier is refused.
        """
        if not members:
            raise ValueError("need at least one run")
        self._horizon_points(horizon, floor=True)
        vals = []
        for k, member in enumerate(members):
            try:
                t, series = member
            except (TypeError, ValueError):
                raise ValueError(f"run {k} must be a pair (t, {{signal: series}}), got {member!r:.80}") from None
            missing = [s for s in self.signals if s not in series]
            if missing:
                raise ValueError(f"run {k} lacks signal(s) {missing}")
            t = np.asarray(t, dtype=np.float64)
            if t.ndim != 1 or t.size == 0:
                raise ValueError(f"run {k}: t must be a 1-D array of at least one time, got shape {t.shape}")
            cols = [np.asarray(series[s], dtype=np.float64) for s in self.signals]
            wrong = {s: c.shape for s, c in zip(self.signals, cols) if c.shape != t.shape}
            if wrong:
                raise ValueError(f"run {k}: every signal must have the shape of its t {t.shape}, got {wrong}")
            x = np.stack(cols)
            if t[-1] < horizon - 0.5 * self.dt - 1e-9:
                raise ValueError(f"run {k} ends at t = {t[-1]:g}, more than half a grid step "
                                 f"({0.5 * self.dt:g}) before the horizon {horizon:g}")
            if t[-1] < horizon:
                t, x = np.append(t, horizon), np.concatenate([x, x[:, -1:]], axis=1)
            g, v = resample(t, x, self.dt, 0.0, horizon)
            vals.append(v)
        return g, np.stack(vals)

    def onset_of_grid(self, grid: np.ndarray, values: np.ndarray, *, k: float, min_steady: float = 4.0,
                      k_stay: float | None = None) -> SteadyState:
        """The rule on resampled members ``values (N, S, m)`` (see :meth:`grid`). ``k_stay``: steady
        from the first time inside ``k`` after which the trailing means stay within ``k_stay`` (a rule
        for bootstrap resamples, whose means stray further); default ``k``: the last exit from the band."""
        z = self.z_scores(values.mean(axis=0), values.shape[0])
        return onset_from_z(grid, z, k, min_steady, self.signals, k_stay)

    def onset(self, members: Sequence[Member], *, k: float, horizon: float, min_steady: float = 4.0) -> SteadyState:
        """Onset of the steady state of an ensemble (one run: a list of one) by the rule above."""
        g, v = self.grid(members, horizon)
        return self.onset_of_grid(g, v, k=k, min_steady=min_steady)

    def bootstrap(self, members: Sequence[Member], *, k: float, horizon: float, n: int = 2000,
                  rng: np.random.Generator | None = None, min_steady: float = 4.0) -> np.ndarray:
        """Ensemble onsets of ``n`` resamples of the members with replacement (NaN: censored);
        ``k``: the resamples' band constant (``calibrate(..., resample=...)``)."""
        _checks.count("n", n, 0)
        _checks.generator("rng", rng, optional=True)
        _check_rule(k, min_steady)
        rng = np.random.default_rng() if rng is None else rng
        g, v = self.grid(members, horizon)
        out = np.empty(n)
        for i in range(n):
            r = self.onset_of_grid(g, v[rng.integers(v.shape[0], size=v.shape[0])], k=k, min_steady=min_steady)
            out[i] = np.nan if r.censored else r.onset_time
        return out

    def simulate(self, template: np.ndarray, members: int, horizon: float, *, k: float, n: int,
                 rng: np.random.Generator, min_steady: float = 4.0) -> np.ndarray:
        """Ensemble onsets of ``n`` synthetic ensembles: reference surrogates plus a deterministic
        transient ``template (S, m)`` on the grid ``0, dt, ..., horizon`` (the power analysis)."""
        _checks.count("members", members, 1)
        _checks.count("n", n, 0)
        _checks.generator("rng", rng, optional=False)
        _check_rule(k, min_steady)
        m = self._horizon_points(horizon)
        if template.shape != (len(self.signals), m):
            raise ValueError(f"template must be (S, m) = ({len(self.signals)}, {m}), got {template.shape}")
        grid = self.dt * np.arange(m)
        out = np.empty(n)
        for i in range(n):
            v = self.surrogates(members, horizon, rng) + template[None]
            r = self.onset_of_grid(grid, v, k=k, min_steady=min_steady)
            out[i] = np.nan if r.censored else r.onset_time
        return out
