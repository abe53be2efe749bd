"""Single-record rules for the end of the start-up transient in solver time series.

A run seeded with an initial condition drifts before its statistics become steady. Given a time
series from the solver (wall shear stress, friction velocity, bulk velocity or a probe at the
channel centre) this module says when the drift ends, or that it does not end within the series::

    from cfdseed.transient import detect_steady, combine
    r = detect_steady(t, tau_w, method="band", target=1.0)   # constant pressure gradient: tau_w -> 1
    r = detect_steady(t, u_centre)                             # no known target: MSER
    r.onset_time, r.onset_index, r.censored, r.reason
    combine([r_tau, r_probe])                                  # steady once every signal is

Two rules
---------
``method="band"`` (needs ``target``, the force-balance value: with a constant mean pressure
gradient G the mean wall shear stress is tau_w = G h, h the half-height):
    the trailing running mean over a time window ``window`` (time-weighted, so adaptive steps are
    fine; default a tenth of the series) must lie within ``band * |target|`` of the target and stay
    there until the end of the series. The onset is the *end* of the first window from which that
    holds (the time a monitor running alongside the solver could declare it; causal, so never
    before the drift ended). Censored if that never happens, or if the series goes on for less
    than ``min_steady`` (default: one window) after the onset.

``method="mser"`` (Marginal Standard Error Rule, White 1997; MSER-``batch`` with batch means of
``batch`` samples, series first resampled to uniform time steps):
    the truncation point d* minimises MSER(d) = sum_{i>=d} (z_i - mean_{>=d} z)^2 / (m - d)^2 over
    the batch means z_i, d searched in the first half of the series. Censored when d* lies at
    the search limit (the whole first half still drifts) or when the retained part fails a
    stationarity check: the means of its two halves may differ by at most ``z_max`` (default 4)
    standard errors, each half's standard error from 10 batch means (so the check assumes
    the noise decorrelates within a tenth of half the retained series).

Non-finite values (a run that blew up) make the result censored, as does a series too short to
judge. A censored result carries ``onset_time = None`` and a reason: it must be reported as
"not steady within the run (t_end = ...)", never as a number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from . import _checks

__all__ = ["SteadyState", "detect_steady", "combine", "running_mean", "mser", "steady_start"]

METHODS = ("mser", "band")


@dataclass(frozen=True)
class SteadyState:
    """Result of :func:`detect_steady`.

    Attributes
    ----------
    censored
        True when no steady state was found within the series; then ``onset_time`` and
        ``onset_index`` are None.
    onset_time, onset_index
        First time (and sample index) from which the series counts as steady; for the calibrated
        rule (:mod:`cfdseed.transient.calibrated`) the index is on the rule's own time grid.
    t_end
        Last time of the series (the censoring time when censored).
    method, reason
        Rule used and a sentence explaining the verdict.
    mean, stderr
        Mean of the steady part and its standard error (batch means); None when censored.
    """

    censored: bool
    onset_time: float | None
    onset_index: int | None
    t_end: float
    method: str
    reason: str
    mean: float | None = None
    stderr: float | None = None

    @property
    def steady(self) -> bool:
        """Opposite of :attr:`censored`."""
        return not self.censored

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return asdict(self)


def _series(t: Any, x: Any) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if t.shape != x.shape:
        raise ValueError(f"t and x must have the same length, got {t.size} and {x.size}")
    if not np.all(np.isfinite(t)):
        raise ValueError("t holds non-finite values")
    _increasing("t", t)
    return t, x


def _increasing(what: str, t: np.ndarray, hint: str = "") -> None:
    """``t`` (named ``what``) must be strictly increasing; a ValueError naming the first step that is not."""
    if t.size >= 2 and np.any(np.diff(t) <= 0):
        k = int(np.argmax(np.diff(t) <= 0))
        raise ValueError(f"{what} must be strictly increasing; t[{k}] = {t[k]:g} is followed by {t[k + 1]:g}{hint}")


def running_mean(t: np.ndarray, x: np.ndarray, window: float) -> np.ndarray:
    """Trailing time-weighted mean of ``x`` over ``(t_i - window, t_i]`` (trapezoid rule, linear
    interpolation inside the first sample interval); NaN where ``t_i - window < t_0``.

    Raises
    ------
    ValueError
        ``window`` not a finite number > 0; mismatched or non-increasing times.
    """
    _checks.positive("window", window)
    t, x = _series(t, x)
    integral = np.concatenate([[0.0], np.cumsum(0.5 * (x[1:] + x[:-1]) * np.diff(t))])  # (n,)
    start = t - window
    out = np.full(t.size, np.nan)
    ok = start >= t[0] - 1e-12 * max(abs(t[0]), window)
    out[ok] = (integral[ok] - np.interp(start[ok], t, integral)) / window
    return out


def _batch_means(x: np.ndarray, batch: int) -> np.ndarray:
    m = x.size // batch
    return x[: m * batch].reshape(m, batch).mean(axis=1)


def mser(z: np.ndarray) -> np.ndarray:
    """MSER(d) for d = 0..m-1 of the batch means ``z`` (m,): variance of the tail over its length."""
    z = np.asarray(z, dtype=np.float64)
    m = z.size
    if m:  # centred: uncentred, the sums below cancel (a record's offset would drown its noise)
        z = z - z.mean()
    n = np.arange(m, 0, -1, dtype=np.float64)  # tail lengths m - d
    s1 = np.cumsum(z[::-1])[::-1]
    s2 = np.cumsum((z * z)[::-1])[::-1]
    ss = np.maximum(s2 - s1 * s1 / n, 0.0)
    return ss / (n * n)


def _stderr(z: np.ndarray) -> float:
    return float(z.std(ddof=1) / math.sqrt(z.size)) if z.size > 1 else math.inf


def _censored(method: str, t_end: float, reason: str) -> SteadyState:
    return SteadyState(True, None, None, t_end, method, reason)


def detect_steady(
    t: Sequence[float] | np.ndarray,
    x: Sequence[float] | np.ndarray,
    *,
    method: str = "mser",
    target: float | None = None,
    band: float = 0.05,
    window: float | None = None,
    min_steady: float | None = None,
    batch: int = 5,
    z_max: float = 4.0,
) -> SteadyState:
    """End of the start-up transient of one time series (rules in the module docstring).

    Parameters
    ----------
    t, x
        Times (strictly increasing) and the monitored quantity, same length.
    method
        ``"mser"`` or ``"band"``.
    target, band, window, min_steady
        Band rule: force-balance value, relative half-width of the band, running-mean window
        (default: a tenth of the series duration) and the shortest steady stretch accepted after
        the onset (default: ``window``).
    batch, z_max
        MSER rule: samples per batch mean and the stationarity threshold in standard errors.

    Returns
    -------
    SteadyState
        Censored (no onset) when the series never becomes steady by the rule.

    Raises
    ------
    ValueError
        Unknown method, bad parameters, mismatched or non-increasing times.
    """
    t, x = _series(t, x)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; one of {', '.join(METHODS)}")
    if t.size < 2:
        raise ValueError(f"need at least 2 samples, got {t.size}")
    # parameters first: a bad argument raises whether or not the record blew up
    if method == "band":
        params = _band_params(t, target, band, window, min_steady)
    else:
        _mser_params(batch, z_max)
    t_end = float(t[-1])
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size and np.isfinite(x[bad[0]:]).any():  # finite values after it: a gap, not a blow-up
        raise ValueError(f"x holds non-finite values at t = {t[bad[0]]:g} (index {bad[0]}) with finite ones after "
                         "them: not a blow-up (that is non-finite to the end); clean or trim the record")
    if bad.size:
        return _censored(method, t_end, f"non-finite values from t = {t[bad[0]]:g} (index {bad[0]}): the run blew up")
    if method == "band":
        return _band(t, x, *params)
    return _mser(t, x, int(batch), z_max)


def _band_params(t: np.ndarray, target: Any, band: Any, window: Any,
                 min_steady: Any) -> tuple[float, float, float, float]:
    """The band rule's checked parameters: (target, band, window, min_steady) with defaults filled."""
    if not _checks.is_real(target) or not math.isfinite(float(target)) or float(target) == 0.0:
        raise ValueError(f"method 'band' needs a finite non-zero target (force-balance value), got {target!r}")
    if not _checks.is_real(band) or not (0 < band < 1):
        raise ValueError(f"band must be a number in (0, 1), got {band!r}")
    duration = float(t[-1] - t[0])
    if window is not None and not _checks.is_real(window):
        raise ValueError(f"window must be a time in (0, {duration}) (the series duration) or None, got {window!r}")
    w = 0.1 * duration if window is None else float(window)
    if not (0 < w < duration):
        raise ValueError(f"window must lie in (0, {duration}) (the series duration), got {window!r}")
    if min_steady is not None and not _checks.is_real(min_steady):
        raise ValueError(f"min_steady must be a finite time >= 0 (None: the window), got {min_steady!r}")
    need = w if min_steady is None else float(min_steady)
    if not (math.isfinite(need) and need >= 0):
        raise ValueError(f"min_steady must be a finite time >= 0 (None: the window), got {min_steady!r}")
    return float(target), float(band), w, need


def _band(t: np.ndarray, x: np.ndarray, target: float, band: float, w: float, need: float) -> SteadyState:
    r = running_mean(t, x, w)
    inside = np.abs(r - target) <= band * abs(target)  # NaN (window not yet full) counts as outside
    if not inside[-1]:
        return _censored("band", float(t[-1]),
                         f"running mean over {w:g} ends at {r[-1]:.6g}, outside {target:g} +- {band:.1%}")
    outside = np.flatnonzero(~inside)
    i = int(outside[-1] + 1) if outside.size else 0
    if t[-1] - t[i] < need:
        return _censored("band", float(t[-1]),
                         f"running mean entered the band at t = {t[i]:g}, only {t[-1] - t[i]:g} before the end "
                         f"(at least {need:g} needed)")
    tail = x[i:]
    z = _batch_means(tail, max(1, tail.size // 20))
    return SteadyState(False, float(t[i]), i, float(t[-1]), "band",
                       f"running mean over {w:g} within {target:g} +- {band:.1%} from t = {t[i]:g} to the end",
                       float(np.mean(tail)), _stderr(z))


def _uniform(t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dt = np.diff(t)
    if dt.max() <= 1.01 * dt.min():
        return t, x
    tu = np.linspace(t[0], t[-1], t.size)
    return tu, np.interp(tu, t, x)


def _mser_params(batch: Any, z_max: Any) -> None:
    """Check the MSER rule's parameters."""
    if (not _checks.is_real(batch) or not math.isfinite(float(batch))  # NaN, inf: int() would raise
            or int(batch) != batch or batch < 1):
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    if not _checks.is_real(z_max) or not z_max > 0:
        raise ValueError(f"z_max must be a number > 0 (inf: no stationarity check), got {z_max!r}")


def _mser(t: np.ndarray, x: np.ndarray, batch: int, z_max: float) -> SteadyState:
    tu, xu = _uniform(t, x)
    z = _batch_means(xu, batch)
    m = z.size
    if m < 8:
        return _censored("mser", float(t[-1]), f"series too short: {m} batch means of {batch} samples (at least 8 needed)")
    limit = m // 2  # search d in [0, limit)
    stat = mser(z)[:limit]
    d = int(np.argmin(stat))
    if d >= limit - 1:
        return _censored("mser", float(t[-1]),
                         "MSER truncation point at the search limit (half the series): still drifting")
    i = d * batch
    # stationarity: the two halves of the retained samples, each as 10 batch means (long batches,
    # so autocorrelated noise does not shrink the standard errors)
    kept = xu[i:]
    h = kept.size // 2
    a, b = _batch_means(kept[:h], max(1, h // 10)), _batch_means(kept[h:], max(1, (kept.size - h) // 10))
    se = math.sqrt(_stderr(a) ** 2 + _stderr(b) ** 2)
    score = abs(float(a.mean() - b.mean())) / se if se > 0 else (0.0 if a.mean() == b.mean() else math.inf)
    if score > z_max:
        return _censored("mser", float(t[-1]),
                         f"retained part not stationary: its halves differ by {score:.1f} standard errors (> {z_max:g})")
    i_orig = int(np.searchsorted(t, tu[i] - 1e-12 * max(1.0, abs(tu[i]))))
    return SteadyState(False, float(t[i_orig]), i_orig, float(t[-1]), "mser",
                       f"MSER-{batch} truncation at batch {d} of {m}; halves of the rest agree within {score:.1f} "
                       "standard errors", float(kept.mean()), _stderr(_batch_means(kept, max(1, kept.size // 20))))


def combine(results: Sequence[SteadyState]) -> SteadyState:
    """Steady once every signal is: the latest onset; censored if any signal is censored.

    Raises
    ------
    ValueError
        No results, or an item that is not a :class:`SteadyState`.
    """
    results = list(results)
    if not results:
        raise ValueError("combine needs at least one result")
    for i, r in enumerate(results):
        if not isinstance(r, SteadyState):
            raise ValueError(f"combine needs SteadyState results (of detect_steady); results[{i}] is {r!r}")
    t_end = max(r.t_end for r in results)
    cens = [r for r in results if r.censored]
    if cens:
        return _censored("+".join(r.method for r in results), t_end, "; ".join(r.reason for r in cens))
    last = max(results, key=lambda r: r.onset_time)  # type: ignore[arg-type, return-value]
    return SteadyState(False, last.onset_time, last.onset_index, t_end, "+".join(r.method for r in results),
                       f"latest onset of {len(results)} signals: {last.reason}")


_STEADY_COLUMNS = ("t", "bulk", "tau_lower", "tau_upper")


def steady_start(series: Mapping[str, Any], *, window: float = 2.0, tol_tau: float = 0.05,
                 tol_bulk: float = 0.01, min_windows: int = 2) -> float:
    """Start of the statistically steady state (documented criterion).

    The earliest t_s on a grid of window starts (windows of ``window`` h/u_tau, stepped by
    window/4) such that the steady part [t_s, t_end] spans at least ``min_windows`` windows and
    every window in it has (a) its mean wall shear (both walls) within ``tol_tau`` of the force
    balance value 1 and (b) its mean bulk velocity within ``tol_bulk`` (relative) of the mean
    bulk velocity over [t_s, t_end]. Returns ``inf`` if no such time exists yet.

    Raises
    ------
    ValueError
        A missing column (``t``, ``bulk``, ``tau_lower``, ``tau_upper``), columns that are not 1-D
        of one length, non-finite times, ``window`` not > 0, or a negative tolerance or
        ``min_windows``.
    """
    missing = [c for c in _STEADY_COLUMNS if c not in series]
    if missing:
        raise ValueError(f"series lacks column(s) {missing}; steady_start needs {list(_STEADY_COLUMNS)}")
    _checks.positive("window", window)
    _checks.non_negative("tol_tau", tol_tau)
    _checks.non_negative("tol_bulk", tol_bulk)
    _checks.non_negative("min_windows", min_windows)
    # arrays are used as given (their dtype kept); lists and tuples become float64 arrays
    series = {c: series[c] if isinstance(series[c], np.ndarray) else np.asarray(series[c], dtype=np.float64)
              for c in _STEADY_COLUMNS}
    shapes = {c: v.shape for c, v in series.items()}
    if series["t"].ndim != 1 or len(set(shapes.values())) != 1:
        raise ValueError(f"series columns must be 1-D arrays of one length, got shapes {shapes}")
    if not np.all(np.isfinite(series["t"])):
        raise ValueError("series['t'] holds non-finite times")
    # reversed: inf ("not steady"), repeated: counted twice
    _increasing("series['t']", series["t"], " (a restart's overlap: keep each time once)")
    t, bulk = series["t"], series["bulk"]
    tau = 0.5 * (series["tau_lower"] + series["tau_upper"])
    if t.size < 2:
        return math.inf
    starts = np.arange(t[0], t[-1] - window + 1e-12, window / 4)
    means = []
    for s in starts:
        m = (t >= s) & (t < s + window)
        means.append((tau[m].mean(), bulk[m].mean()) if m.any() else (math.nan, math.nan))
    for k, s in enumerate(starts):
        if t[-1] - s < min_windows * window:
            break
        ref = bulk[t >= s].mean()
        if all(abs(mt - 1) <= tol_tau and abs(mb / ref - 1) <= tol_bulk for mt, mb in means[k:]):
            return float(s)
    return math.inf
