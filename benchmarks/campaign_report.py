"""Analysis of the transient campaign under its pre-registered protocol (benchmarks/campaign/).

- :func:`reference_statistics`: the stationary reference after its spin-up: every signal's mean,
  the spread (5-95 %) and autocorrelation of its window means, integral times, the largest
  natural excursion per window length, the band constant k calibrated for each ensemble size of
  the protocol and k^boot for its bootstrap resamples (:func:`band_constants`), and the per-run
  rule's false-censoring rate on (overlapping) reference segments.
- :func:`judge` / :func:`ensemble_onsets`: onsets of the IC ensembles, with bootstrap intervals and
  their cost in simulated time, solver steps and CPU-seconds, computed on opaque group labels only
  (the plan's ``group``); :func:`join` attaches the IC names from ``key.json`` afterwards.
  Amendment 4: resamples are judged with k_N^boot, and a censored onset is the range [bound, inf),
  so an interval may be one-sided (:func:`_interval`).
- :func:`comparisons` (after unblinding): ensemble against ensemble (default: GAN against every
  other of its case), T_a - T_b and 1 - T_a/T_b in each unit with intervals from resampling both
  ensembles; a censored onset makes a comparison a range with an open side (a bound), never a
  number; the protocol's targets' verdicts (:func:`verdict`).
- :func:`profile_check`: whether an ensemble's profiles after its onset are the reference's
  (deviation against the reference's own segments of the same length; amendment 7).
- :func:`plot_onsets`: the figure in the talk's style (centre probe and bulk velocity).

The protocol (``protocol.json``, committed before the runs it judges) fixes the signals, the
window, the horizon, the level, the ensemble-size candidates, the surrogate counts and the seed.
"""

from __future__ import annotations

import json
import math
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cfdseed.transient import Reference, SteadyState
from cfdseed.transient.calibrated import onset_from_z, steady_index

Member = tuple[np.ndarray, dict[str, np.ndarray]]  # (t (n,), {signal: (n,)}) of one run
#: Units of the cost to an onset: simulated time (h/u_tau), solver steps, CPU-seconds.
UNITS = {"time": "h/u_tau", "steps": "solver steps", "cpu_s": "CPU-seconds"}

DERIVED = {
    # dissipation against power input (force * bulk): 1 on average in equilibrium
    "eps_ratio": lambda s, force: np.asarray(s["dissipation"]) / (force * np.asarray(s["bulk"])),
    "tau": lambda s, force: 0.5 * (np.asarray(s["tau_lower"]) + np.asarray(s["tau_upper"])),
}


def read_protocol(campaign: Path) -> dict[str, Any]:
    return json.loads((campaign / "protocol.json").read_text())


def driving_of(run: dict[str, Any]) -> str:
    """A run's driving: ``"force"`` (the constant body force) or ``"flow_rate"`` (U_b held)."""
    return str(run["spec"].get("driving", "force"))


def view(protocol: dict[str, Any], driving: str) -> dict[str, Any]:
    """The protocol as it applies to runs of one driving: as registered under the body force; under
    a held flow rate (amendment 9, ``protocol["flow_rate"]``) its signals (no U_b), horizon and
    ensemble size replace the body force's, everything else (window, band level, surrogates,
    bootstrap, seeds) is the protocol's."""
    if driving == "force":
        return protocol
    if driving != "flow_rate" or "flow_rate" not in protocol:
        raise ValueError(f"the protocol registers no view of driving {driving!r}")
    fr = protocol["flow_rate"]
    return dict(protocol, signals=list(fr["signals"]), horizon=float(fr["horizon"]),
                members_candidates=[int(fr["members"])])


def signals(series: dict[str, np.ndarray], names: list[str], force: float) -> dict[str, np.ndarray]:
    """The protocol's signals of one run: time-series columns or derived quantities."""
    out = {}
    for n in names:
        if n in DERIVED:
            out[n] = DERIVED[n](series, force)
        elif n in series:
            out[n] = np.asarray(series[n], dtype=np.float64)
        else:
            raise KeyError(f"signal {n!r} is neither a time-series column nor one of {sorted(DERIVED)}")
    return out


def force_of(run: dict[str, Any], series: dict[str, np.ndarray]) -> float | np.ndarray:
    """The streamwise driving of a run per record: the constant body force u_tau^2 / h (h = ly / 2,
    u_tau = 1), or under a held flow rate (``spec.driving == "flow_rate"``) the pressure gradient
    that holds it, which is the mean wall shear over h exactly (d U_b / dt = 0 in the momentum
    balance: gradient * ly = tau_lower + tau_upper)."""
    ly = float(run["spec"]["lengths"][1])
    if run["spec"].get("driving", "force") == "flow_rate":
        return (np.asarray(series["tau_lower"], dtype=np.float64) + np.asarray(series["tau_upper"], dtype=np.float64)) / ly
    return 2.0 / ly


def reference(protocol: dict[str, Any], run: dict[str, Any], series: dict[str, np.ndarray]) -> Reference:
    """The :class:`Reference` of the reference run's series after its discarded spin-up."""
    if not series or series["t"].size < 2:
        raise ValueError(f"reference run {run['id']}: no records yet")
    sig = signals(series, protocol["signals"], force_of(run, series))
    return Reference.from_series(series["t"], sig, window=protocol["window"], dt=protocol["dt"],
                                 t_start=run["discard"])


def segment_false_censoring(ref: Reference, k: float, horizon: float, every: float, min_steady: float) -> dict[str, Any]:
    """The per-run rule (one member, band constant ``k``) on reference segments of ``horizon``
    starting every ``every``: the fraction censored and the fraction steady later than the first
    full window (overlapping segments: not independent trials)."""
    n = ref.record.shape[1]
    m = int(round(horizon / ref.dt)) + 1
    step = max(1, int(round(every / ref.dt)))
    starts = list(range(0, n - m + 1, step))
    censored = late = 0
    for s in starts:
        seg = ref.record[:, s: s + m]
        r = ref.onset_of_grid(ref.dt * np.arange(m), seg[None], k=k, min_steady=min_steady)
        censored += r.censored
        late += (not r.censored) and r.onset_time > ref.window + 1e-9
    count = len(starts)
    return {"segments": count, "every": every, "censored_fraction": censored / count if count else None,
            "late_fraction": late / count if count else None}


def band_constants(ref: Reference, protocol: dict[str, Any], boot: bool = False) -> dict[str, float]:
    """k_N for N = 1 and every candidate size: surrogates from the protocol's seed, the sizes in
    increasing order (``Reference.calibrate``). ``boot``: k_N^boot, the constant of bootstrap
    resamples (amendment 4): the same surrogate ensembles, each judged by one resample of its
    members drawn with the seed + 4 (for N = 1 a resample is the run itself)."""
    rng = np.random.default_rng(protocol["seed"])
    resample = np.random.default_rng(protocol["seed"] + 4) if boot else None
    return {str(n): ref.calibrate(n, protocol["horizon"], level=protocol["level"], n=protocol["calibration_surrogates"],
                                  rng=rng, resample=resample)
            for n in sorted({1, *protocol["members_candidates"]})}


def reference_statistics(protocol: dict[str, Any], run: dict[str, Any], series: dict[str, np.ndarray],
                         t_done: float | None = None) -> dict[str, Any]:
    """JSON-ready reference statistics and calibration (see the module docstring). ``t_done``: the
    run's simulated time (its progress record; the last series record lies up to one record
    interval before it); default the last record's time."""
    ref = reference(protocol, run, series)
    horizon = protocol["horizon"]
    out: dict[str, Any] = {
        "run": run["id"], "t_end": float(series["t"][-1]), "discard": run["discard"],
        "stationary_span": ref.duration, "complete": float(series["t"][-1] if t_done is None else t_done) >= run["horizon"] - 1e-9,
        "protocol": {k: protocol[k] for k in ("signals", "window", "dt", "horizon", "level", "min_steady")},
        **ref.summary(protocol.get("excursion_lengths", (1, 2, 4, 6, 8, 12, 16))),
    }
    if ref.duration > horizon:
        out["k"] = band_constants(ref, protocol)
        out["k_boot"] = {n: v for n, v in band_constants(ref, protocol, boot=True).items() if n != "1"}
        out["per_run_rule_on_reference_segments"] = segment_false_censoring(
            ref, out["k"]["1"], horizon, protocol.get("segment_every", 2.0), protocol["min_steady"])
    else:
        out["k"] = out["k_boot"] = None
        out["note"] = f"stationary span {ref.duration:.1f} shorter than the horizon {horizon:g}: no calibration yet"
    return out


def bulk_template(t: np.ndarray, bulk: np.ndarray, mu: float, t_relax: float, grid: np.ndarray) -> np.ndarray:
    """A measured bulk-velocity transient as an excess over the equilibrium ``mu`` on ``grid``,
    continued past the record's end by exp(-(t - t_end) / t_relax) (the protocol's power template)."""
    t, bulk = np.asarray(t, dtype=np.float64), np.asarray(bulk, dtype=np.float64)
    excess = np.interp(grid, t, bulk - mu)
    late = grid > t[-1]
    excess[late] = (bulk[-1] - mu) * np.exp(-(grid[late] - t[-1]) / t_relax)
    return excess


def power(ref: Reference, template_bulk: np.ndarray, k: dict[str, float], protocol: dict[str, Any],
          rng: np.random.Generator) -> dict[str, Any]:
    """The protocol's power analysis: simulated ensemble onsets per candidate N with the template on
    ``bulk`` (zero on the other signals), and the N chosen by the rule (2.5-97.5 % range of the
    onset at most half its median; else the largest candidate)."""
    horizon = protocol["horizon"]
    m = int(round(horizon / ref.dt)) + 1
    template = np.zeros((len(ref.signals), m))
    template[ref.signals.index("bulk")] = template_bulk[:m]
    rows, chosen = {}, None
    for n in sorted(protocol["members_candidates"]):
        on = ref.simulate(template, n, horizon, k=k[str(n)], n=protocol["power_simulations"], rng=rng,
                          min_steady=protocol["min_steady"])
        cens = float(np.isnan(on).mean())
        q = [float(v) for v in np.nanquantile(on, [0.025, 0.5, 0.975])] if cens < 1 else [math.nan] * 3
        ok = cens <= 0.025 and q[2] - q[0] <= 0.5 * q[1]
        rows[str(n)] = {"censored_fraction": cens, "onset_q025_q50_q975": q, "meets_rule": bool(ok)}
        if ok and chosen is None:
            chosen = n
    return {"per_n": rows, "chosen_n": chosen or max(protocol["members_candidates"]),
            "rule_met": chosen is not None, "simulations": protocol["power_simulations"]}


@dataclass(frozen=True)
class Ensemble:
    """The finished runs of one IC ensemble.

    Attributes
    ----------
    members
        ``(t, {signal: series})`` per run, as :meth:`Reference.onset` takes them.
    steps
        ``(t, iteration)`` per run: the solver's step counter (the series' ``step`` column); None:
        no steps are reported.
    cpu_per_time
        Per run: its CPU-seconds per simulated time over the whole run (``run.json``'s ``cpu_s / t``,
        i.e. wall seconds times ranks); None: no CPU-seconds are reported.
    """

    members: list[Member]
    steps: list[tuple[np.ndarray, np.ndarray]] | None = None
    cpu_per_time: list[float] | None = None


@dataclass(frozen=True)
class Judged:
    """An ensemble judged by the rule, itself and over bootstrap resamples of its members.

    ``point[unit]`` and ``boot[unit]`` (``unit`` in :data:`UNITS`) hold the onset or, where censored,
    its lower bound (:func:`censored_index`): simulated time, and the members' mean steps and
    CPU-seconds at that time where the ensemble has them. A censored value stands for the range
    [value, inf) of onsets consistent with it (:func:`_ranges`).
    """

    grid: np.ndarray  # (m,) 0, dt, ..., horizon
    values: np.ndarray  # (N, S, m) the members on the grid
    onset: SteadyState  # the rule on the ensemble itself (band constant k_N)
    point: dict[str, float]
    censored: np.ndarray  # (n,) bool: the resample is censored (band constant k_N^boot)
    boot: dict[str, np.ndarray]  # unit -> (n,)


def censored_index(z: np.ndarray, k: float, k_stay: float | None = None) -> int:
    """Grid index of a censored ensemble's lower bound from its z-scores ``z (S, m)``: where it
    became steady by the rule (inside ``k``, then within ``k_stay``, default ``k``, to the horizon)
    when that came too briefly before the horizon to count (steady from there at the earliest), else
    the horizon (steady, if ever, after it)."""
    i = steady_index(z, k, k_stay)
    return z.shape[1] - 1 if i is None else i


#: How a bootstrap resample is judged (``protocol["resample_rule"]``): ``"exit"`` (amendment 4, the
#: registered rule) steady from its last exit from the band k_N^boot; ``"enter-stay"`` (amendment 14's
#: candidate, not adopted) steady from the first time inside the ensemble's band k_N after which it
#: stays within k_N^boot.
RESAMPLE_RULES = ("exit", "enter-stay")


def judge(ens: Ensemble, ref: Reference, k: float, k_boot: float, protocol: dict[str, Any],
          rng: np.random.Generator) -> Judged:
    """The ensemble onset by the rule (band constant ``k``, i.e. k_N) and over ``protocol["bootstrap"]``
    resamples of the members with replacement (the draws of :meth:`Reference.bootstrap`), each judged
    by ``protocol["resample_rule"]`` (:data:`RESAMPLE_RULES`; absent: ``"exit"``, as amendment 4
    registered it) with ``k_boot`` (k_N^boot: a resample's mean strays further from the reference mean
    than the ensemble's), with the steps and CPU-seconds the members spent up to it.

    Steps to a time: each run's step counter interpolated there, from its value at t = 0.
    CPU-seconds to a time: the time times the run's own CPU-seconds per simulated time over its whole
    record (a chunk's rate varies with the load of the shared machine; the whole run's average is
    the run's measured cost). An ensemble's steps and CPU-seconds: the members' means.
    """
    horizon, ms = protocol["horizon"], protocol["min_steady"]
    grid, values = ref.grid(ens.members, horizon)
    n = values.shape[0]
    cost = {"time": np.broadcast_to(grid, (n, grid.size))}  # (N, m) per unit
    if ens.steps is not None:
        cost["steps"] = np.stack([np.interp(grid, t, s) - np.interp(0.0, t, s) for t, s in ens.steps])
    if ens.cpu_per_time is not None:
        cost["cpu_s"] = np.asarray(ens.cpu_per_time, dtype=np.float64)[:, None] * grid[None]

    rule = protocol.get("resample_rule", "exit")
    if rule not in RESAMPLE_RULES:
        raise ValueError(f"resample_rule {rule!r}: one of {RESAMPLE_RULES}")

    def at(idx: np.ndarray, band: float, stay: float | None = None) -> tuple[SteadyState, dict[str, float]]:
        z = ref.z_scores(values[idx].mean(axis=0), idx.size)
        r = onset_from_z(grid, z, band, ms, ref.signals, stay)
        j = censored_index(z, band, stay) if r.censored else r.onset_index
        return r, {u: float(c[idx, j].mean()) for u, c in cost.items()}

    onset, point = at(np.arange(n), k)
    bands = (k, k_boot) if rule == "enter-stay" else (k_boot, None)
    nb = protocol["bootstrap"]
    censored = np.zeros(nb, dtype=bool)
    boot = {u: np.empty(nb) for u in cost}
    for i in range(nb):
        r, v = at(rng.integers(n, size=n), *bands)
        censored[i] = r.censored
        for u in cost:
            boot[u][i] = v[u]
    return Judged(grid, values, onset, point, censored, boot)


def group_rng(seed: int, label: str) -> np.random.Generator:
    """A group's own random stream (amendment 11): from ``seed`` and the group's opaque label, so
    what is drawn for one group does not depend on which other groups are complete or judged."""
    return np.random.default_rng([seed, zlib.crc32(label.encode())])


def judge_groups(groups: Mapping[str, Ensemble], ref: Reference, k: Mapping[str, float], k_boot: Mapping[str, float],
                 protocol: dict[str, Any], seed: int) -> dict[str, Judged]:
    """:func:`judge` for every group with its size's k_N and k_N^boot, each group resampled from its
    own stream (:func:`group_rng` of ``seed``)."""
    out = {}
    for label, ens in sorted(groups.items()):
        size = str(len(ens.members))
        if size not in k or size not in k_boot:
            raise ValueError(f"group {label}: {size} members, but k / k_boot were calibrated for "
                             f"{sorted(k)} / {sorted(k_boot)} only")
        out[label] = judge(ens, ref, k[size], k_boot[size], protocol, group_rng(seed, label))
    return out


def ensemble_onsets(judged: Mapping[str, Judged], ref: Reference, k: Mapping[str, float],
                    protocol: dict[str, Any]) -> dict[str, Any]:
    """Per opaque group: ensemble onset, bootstrap interval, cost to the onset (:func:`onset_cost`)
    and per-run onsets (blind: labels only)."""
    out = {}
    for label, j in judged.items():
        per = [ref.onset_of_grid(j.grid, j.values[i:i + 1], k=k["1"], min_steady=protocol["min_steady"])
               for i in range(j.values.shape[0])]
        out[label] = {
            "members": j.values.shape[0], "censored": j.onset.censored, "onset_time": j.onset.onset_time,
            "reason": j.onset.reason, "bootstrap_censored_fraction": float(j.censored.mean()),
            "onset_ci95": _interval(*_ranges(j.boot["time"], j.censored)),
            "cost_to_onset": onset_cost(j),
            "per_run": [{"censored": p.censored, "onset_time": p.onset_time} for p in per],
            "by_signal": by_signal(j, ref, k, protocol),
        }
    return out


def by_signal(j: Judged, ref: Reference, k: Mapping[str, float], protocol: dict[str, Any]) -> dict[str, Any]:
    """Descriptive, not registered (it decides nothing): per signal, the ensemble's onset were that
    signal judged alone (the rule and k_N of the ensemble), and its trailing mean's offset from the
    reference mean over the record's second half in band units (sigma/sqrt(N): the band is +-k_N),
    to say which signal holds an ensemble outside the band and how far."""
    n = j.values.shape[0]
    z = ref.z_scores(j.values.mean(axis=0), n)
    late = j.grid >= j.grid[-1] / 2
    out = {}
    for s, name in enumerate(ref.signals):
        r = onset_from_z(j.grid, z[s:s + 1], k[str(n)], protocol["min_steady"], [name])
        seen = z[s, late][np.isfinite(z[s, late])]  # none when a member blew up early: no offset (NaN)
        out[name] = {"censored": r.censored, "onset_time": r.onset_time,
                     "offset_second_half": float(seen.mean()) if seen.size else math.nan}
    return out


#: The plane-averaged profiles compared after an onset (amendment 7).
PROFILES = ("U", "uu", "vv", "ww", "uv")


def profile_check(ref_prof: Mapping[str, np.ndarray], discard: float, members: Sequence[Mapping[str, np.ndarray]],
                  onset: float, horizon: float, rng: np.random.Generator, *, n: int = 2000,
                  level: float = 0.99) -> dict[str, Any]:
    """Is the state an ensemble settled into the reference's? (amendment 7; descriptive, no verdict
    on the targets).

    ``ref_prof`` and ``members``: binned profiles (``t`` bin times, ``(bins, ny)`` per quantity of
    :data:`PROFILES`) of the reference and of each member. The ensemble's profile of a quantity is
    the mean over its members and their bins with t in [onset, horizon]; its **deviation** from the
    reference's mean profile (bins after ``discard``) is max_y |P - P_ref| / max_y |P_ref|. The
    **band**: the ``level`` quantile of the same deviation for ``n`` ensembles of as many reference
    segments of as many bins (random starts after ``discard``): what the reference's own fluctuations
    give for an average that long. ``inside``: deviation <= band, per quantity and for all five (the
    default 0.99 per quantity: Bonferroni for 95 % jointly; on random 8-member ensembles of
    reference segments all five are inside for 93-95 %).
    """
    keep = np.asarray(ref_prof["t"]) >= discard
    sel = [(np.asarray(m["t"]) >= onset) & (np.asarray(m["t"]) <= horizon) for m in members]
    bins = min(int(s.sum()) for s in sel)
    nb = int(keep.sum())
    if bins < 1 or nb <= bins:
        raise ValueError(f"{bins} member bins after t = {onset:g} against {nb} reference bins")
    out: dict[str, Any] = {"from": float(onset), "bins": bins, "members": len(members), "quantities": {}}
    starts = rng.integers(0, nb - bins + 1, size=(n, len(members)))
    for q in PROFILES:
        r = np.asarray(ref_prof[q], dtype=np.float64)[keep]
        mean = r.mean(axis=0)
        scale = float(np.abs(mean).max())
        ens = np.mean([np.asarray(m[q], dtype=np.float64)[s].mean(axis=0) for m, s in zip(members, sel)], axis=0)
        csum = np.concatenate([np.zeros((1, r.shape[1])), np.cumsum(r, axis=0)])
        segs = (csum[starts + bins] - csum[starts]) / bins  # (n, members, ny)
        dev_ref = np.abs(segs.mean(axis=1) - mean).max(axis=1) / scale
        dev = float(np.abs(ens - mean).max() / scale)
        band = float(np.quantile(dev_ref, level))
        out["quantities"][q] = {"deviation": dev, "band": band, "inside": bool(dev <= band)}
    out["inside"] = all(v["inside"] for v in out["quantities"].values())
    return out


Ranges = tuple[np.ndarray, np.ndarray]  # (lower ends, upper ends), +-inf where unbounded


def _ranges(value: Any, censored: Any) -> Ranges:
    """The values consistent with onsets (or costs to them): the value itself, or [its bound, inf)
    where censored."""
    lo = np.asarray(value, dtype=np.float64)
    return lo, np.where(censored, math.inf, lo)


def _combine(kind: str, a: Ranges, b: Ranges) -> Ranges:
    """The range of T_a - T_b (``kind`` "difference") or 1 - T_a/T_b ("reduction", onsets > 0) over
    T_a and T_b in their ranges: the difference grows with T_a and falls with T_b, the reduction the
    other way round (a censored T_b bounds it by 1 from above, not by infinity)."""
    (alo, ahi), (blo, bhi) = a, b
    if kind == "difference":
        return alo - bhi, ahi - blo
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - ahi / blo, 1.0 - alo / bhi


#: Tail shares of the reported 95 % interval (amendment 4: 1 % each side, the widest of 2.5, 2,
#: 1.5, 1 % whose coverage on the power analysis's simulated ensembles reaches 95 %: 98 %).
TAILS = (0.01, 0.01)


def _interval(lo: np.ndarray, hi: np.ndarray, tails: tuple[float, float] | None = None) -> list[float | None]:
    """The 95 % interval of resampled ranges: the ``tails[0]`` quantile of their lower ends to the
    ``1 - tails[1]`` quantile of their upper ends (default :data:`TAILS`), each leaving out at most
    that share of the resamples on its side (no interpolation: of 40 resamples at 2.5 % the second
    smallest and the second largest); None for a side that is infinite (an open side: more than
    that share of the resamples unbounded there)."""
    tails = TAILS if tails is None else tails
    ends = (-np.quantile(-lo, 1.0 - tails[0], method="inverted_cdf"),
            np.quantile(hi, 1.0 - tails[1], method="inverted_cdf"))
    return [float(x) if math.isfinite(x) else None for x in ends]


def _fmt(lo: float, hi: float) -> str:
    """A range as text: a number, ">= x", "<= x", "x to y", or "unbounded"."""
    if lo == hi:
        return f"{lo:.4g}"
    if math.isfinite(lo) and math.isfinite(hi):
        return f"{lo:.4g} to {hi:.4g}"
    if math.isfinite(lo):
        return f">= {lo:.4g}"
    return f"<= {hi:.4g}" if math.isfinite(hi) else "unbounded"


def _quantity(point: Ranges, boot: Ranges) -> dict[str, Any]:
    """JSON of one estimate: the ``point`` range (a number: ``estimate``; else its finite ends as
    ``lower_bound`` / ``upper_bound``, never a number) and ``ci95`` from the resampled ranges
    ``boot`` (:func:`_interval`; None for an open side)."""
    lo, hi = (float(x) for x in point)
    q: dict[str, Any] = dict(estimate=lo if lo == hi else None, lower_bound=None, upper_bound=None,
                             ci95=_interval(*boot), note=None)
    if lo != hi:
        q["lower_bound"] = lo if math.isfinite(lo) else None
        q["upper_bound"] = hi if math.isfinite(hi) else None
    open_sides = [f"{np.mean(~np.isfinite(ends)):.1%} of the resamples unbounded {side}"
                  for ends, side, limit in zip(boot, ("below", "above"), q["ci95"]) if limit is None]
    if open_sides:
        q["note"] = "; ".join(open_sides) + ": no 95 % limit there"
    clo, chi = (("-inf", "inf")[i] if x is None else f"{x:.4g}" for i, x in enumerate(q["ci95"]))
    q["text"] = f"{_fmt(lo, hi)} [{clo}, {chi}]"
    return q


def _closed(ci: list[float | None]) -> tuple[float, float]:
    """A JSON interval with its open sides as -inf / inf."""
    return (-math.inf if ci[0] is None else ci[0]), (math.inf if ci[1] is None else ci[1])


def onset_cost(j: Judged) -> dict[str, dict[str, Any]]:
    """Per unit: the ensemble's onset (a range [bound, inf) when censored) with its 95 % bootstrap
    interval."""
    return {u: _quantity(_ranges(j.point[u], j.onset.censored), _ranges(j.boot[u], j.censored)) for u in j.point}


def _pair_quantity(kind: str, a: Judged, b: Judged, unit: str) -> dict[str, Any]:
    """T_a - T_b (``kind`` "difference") or 1 - T_a/T_b ("reduction") in ``unit``: the point range
    from both ensembles' onsets, the interval from resampling both ensembles independently (their
    resamples paired index by index), every pair giving the range consistent with both sides."""
    point = _combine(kind, _ranges(a.point[unit], a.onset.censored), _ranges(b.point[unit], b.onset.censored))
    boot = _combine(kind, _ranges(a.boot[unit], a.censored), _ranges(b.boot[unit], b.censored))
    return _quantity(point, boot)


@dataclass(frozen=True)
class Target:
    """A pre-registered target: ``low <= quantity <= high`` (``strict``: ``quantity < high``),
    ``quantity`` the comparison's ``kind`` ("reduction" or "difference") in ``unit`` (:data:`UNITS`)."""

    kind: str
    unit: str
    low: float = -math.inf
    high: float = math.inf
    text: str = ""
    strict: bool = False


#: The protocol's targets for the GAN ensemble against a baseline, by the baseline's IC name;
#: every other baseline (the fair baselines): :data:`AHEAD`. "Within 1 h/u_tau of the controls'"
#: is read one-sided: at most 1 later (no IC can be steady before the first full window).
TARGETS = {
    "trig": Target("reduction", "steps", low=0.5, text=">= 50 % fewer steps than trig"),
    "plug": Target("reduction", "steps", low=0.8, text=">= 80 % fewer steps than plug"),
    "control": Target("difference", "time", high=1.0, text="onset at most 1 h/u_tau after the controls'"),
}
AHEAD = Target("difference", "time", high=0.0, text="onset ahead of the baseline's", strict=True)  # a tie is not ahead


def verdict(q: dict[str, Any], target: Target) -> dict[str, Any]:
    """A target's verdict on a quantity of :func:`_quantity`: "met" when its 95 % range ``ci95``
    lies inside the target, "not met" when it lies wholly outside, else "undecided". An open side of
    the range (None) is infinite, so a one-sided range decides only where its finite limit proves or
    disproves the target by itself."""
    lo, hi = _closed(q["ci95"])
    below = hi < target.high if target.strict else hi <= target.high  # the range's top inside the target
    above = lo >= target.high if target.strict else lo > target.high  # its bottom beyond it
    if lo >= target.low and below:
        v = "met"
    elif hi < target.low or above:
        v = "not met"
    else:
        v = "undecided"
    return {"target": target.text, "kind": target.kind, "unit": target.unit,
            "low": target.low if math.isfinite(target.low) else None,
            "high": target.high if math.isfinite(target.high) else None,
            "range95": list(q["ci95"]), "verdict": v}


def compare(judged: Mapping[str, Judged], pairs: Sequence[tuple[str, str]],
            targets: Mapping[tuple[str, str], Target] | None = None) -> dict[str, Any]:
    """Ensemble ``a`` against ``b`` for every pair: T_a - T_b and 1 - T_a/T_b in each unit both have
    (:func:`_pair_quantity`), and the pair's target's :func:`verdict` if ``targets`` has one.

    Raises
    ------
    KeyError
        A pair names an ensemble that is not judged.
    """
    out = {}
    for a, b in pairs:
        missing = [x for x in (a, b) if x not in judged]
        if missing:
            raise KeyError(f"pair {a} vs {b}: {missing} not among the complete ensembles {sorted(judged)}")
        ja, jb = judged[a], judged[b]
        units = [u for u in UNITS if u in ja.point and u in jb.point]
        entry: dict[str, Any] = {
            "a": a, "b": b, "censored": [x for x, j in ((a, ja), (b, jb)) if j.onset.censored],
            "difference": {u: _pair_quantity("difference", ja, jb, u) for u in units},
            "reduction": {u: _pair_quantity("reduction", ja, jb, u) for u in units},
        }
        target = (targets or {}).get((a, b))
        if target is not None:
            entry["target"] = verdict(entry[target.kind][target.unit], target)
        out[f"{a} vs {b}"] = entry
    return out


def ic_labels(key: Mapping[str, Any]) -> dict[str, str]:
    """``{group: label}``: the IC name, with its tier (else its group) where several groups share it."""
    names = key_names(key)
    count = Counter(names.values())
    return {g: n if count[n] == 1 else f"{n} ({key[g].get('tier', g) if isinstance(key[g], dict) else g})"
            for g, n in names.items()}


#: The tier of exploratory ensembles (PROTOCOL.md: "never replace confirmatory ones"): compared,
#: by default, with the registered GAN ensembles and the controls of their case (amendment 19),
#: descriptively (no target).
EXPLORATORY = "exploratory"


def comparisons(judged: Mapping[str, Judged], key: Mapping[str, Any], case: Mapping[str, Mapping[str, Any]],
                not_judged: Mapping[str, str], pairs: Sequence[tuple[str, str]] | None = None) -> dict[str, Any]:
    """The unblinded comparisons: every complete ensemble's cost to its onset, the pairs (default:
    each GAN ensemble against every other complete ensemble of the same case, i.e. equal run specs
    ``case[group]``; an :data:`EXPLORATORY` one against the GAN ensembles and the controls, and phase-randomised
    against control (amendment 5), both descriptive), a registered
    GAN ensemble's against a registered other with the verdict of :data:`TARGETS` (else
    :data:`AHEAD`), and why ensembles in ``not_judged`` (group -> reason) are not compared. Labels:
    :func:`ic_labels`."""
    label, names = ic_labels(key), key_names(key)
    ic = {label[g]: names[g] for g in names}
    explo = {label[g] for g, v in key.items() if isinstance(v, dict) and v.get("tier") == EXPLORATORY}
    named = {label[g]: j for g, j in judged.items()}
    case_of = {label[g]: case[g] for g in judged}
    gan = {lab for lab in ic if ic[lab] == "gan" and lab not in explo}  # the registered GAN ensembles
    if pairs is None:
        pairs = [(a, b) for a in sorted(named) if a in gan for b in sorted(named)
                 if ic[b] != "gan" and b not in explo and case_of[b] == case_of[a]]
        # an exploratory ensemble: against the registered GAN ensembles and the controls of its case,
        # descriptive
        pairs += [(a, b) for a in sorted(named) if a in explo for b in sorted(named)
                  if (b in gan or ic[b] == "control") and case_of[b] == case_of[a]]
        # amendment 5, descriptive: what the DNS's structure buys when every one-point statistic and
        # spectrum is exact (phase-randomised minus control, in each case that has both)
        pairs += [(a, b) for a in sorted(named) if ic[a] == "phase-randomised" and a not in explo
                  for b in sorted(named) if ic[b] == "control" and case_of[b] == case_of[a]]
    targets = {(a, b): TARGETS.get(ic[b], AHEAD) for a, b in pairs if a in gan and b not in explo}
    out: dict[str, Any] = {
        "cost_to_onset": {lab: onset_cost(j) for lab, j in sorted(named.items())},
        "pairs": compare(named, pairs, targets),
        "not_compared": {label[g]: why for g, why in sorted(not_judged.items())},
        "units": UNITS,
    }
    for a, b in targets:  # what amendment 13's power statement needs: the baseline's IC and the view
        t = out["pairs"][f"{a} vs {b}"]["target"]
        t["baseline_ic"], t["driving"] = ic[b], str(case_of[a].get("driving", "force"))
    if not pairs:
        gans = sorted(lab for lab, n in ic.items() if n == "gan")
        out["note"] = (f"no gan ensemble complete yet ({', '.join(gans)}: see not_compared)" if gans else
                       "no gan ensemble registered yet (its tier is registered in its own amendment, before its "
                       "runs): nothing to compare")
    return out


def join(onsets: dict[str, Any], key: dict[str, Any]) -> dict[str, Any]:
    """IC names attached to the blind results: {label: result} (after the analysis), the labels of
    :func:`ic_labels` (the IC name, with its tier where several groups share it: the flow-rate view's
    gan beside the confirmatory one). ``key`` maps a group to its IC name, or to ``key.json``'s entry
    ``{"ic": name, "tier": ..., ...}``."""
    missing = sorted(set(onsets) - set(key))
    if missing:
        raise KeyError(f"groups {missing} have no entry in the key")
    label = ic_labels(key)
    return {label[g]: dict(v, group=g) for g, v in onsets.items()}


def key_names(key: dict[str, Any]) -> dict[str, str]:
    """``{group: IC name}`` of a key (plain names or ``key.json``'s entries)."""
    return {g: v["ic"] if isinstance(v, dict) else v for g, v in key.items()}


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=float) + "\n")
    tmp.replace(path)


def format_reference(stats: dict[str, Any]) -> list[str]:
    """Human-readable lines of :func:`reference_statistics`."""
    lines = [f"reference {stats['run']}: t_end {stats['t_end']:.1f}, stationary span {stats['stationary_span']:.1f} "
             f"h/u_tau after the {stats['discard']:g} discarded ({'complete' if stats['complete'] else 'INTERIM'})",
             f"{'signal':12s} {'mean':>9s} {'sigma(1h)':>9s} {'q05':>9s} {'q95':>9s} {'T_int':>6s}  largest excursion"]
    for name, s in stats["signals"].items():
        exc = ", ".join(f"{L:g}:{v:.3g}" for L, v in zip(stats["excursion_lengths"], s["largest_excursion"])
                        if not math.isnan(v))
        lines.append(f"{name:12s} {s['mean']:9.4g} {s['sigma_window_mean']:9.3g} {s['window_mean_q05_q95'][0]:9.4g} "
                     f"{s['window_mean_q05_q95'][1]:9.4g} {s['integral_time']:6.2f}  {exc}")
    if stats.get("k"):
        lines.append("band constant k by ensemble size: " + ", ".join(f"N={n}: {v:.2f}" for n, v in stats["k"].items()))
        lines.append("band constant k_boot of bootstrap resamples: "
                     + ", ".join(f"N={n}: {v:.2f}" for n, v in stats["k_boot"].items()))
        seg = stats["per_run_rule_on_reference_segments"]
        lines.append(f"per-run rule on {seg['segments']} reference segments: censored {seg['censored_fraction']:.1%}, "
                     f"later than the first window {seg['late_fraction']:.1%}")
    else:
        lines.append(stats.get("note", ""))
    return lines


def scenario_key(gan: str, baseline: str, target: float) -> str:
    """The name of a simulated scenario in ``campaign_verdicts.py``'s results."""
    return f"{gan} vs {baseline} (>= {target:g})"


def control_key(gan: str, control: str) -> str:
    """The name of a simulated control-criterion scenario (:data:`TARGETS` ``"control"``) in
    ``campaign_verdicts.py``'s results."""
    return f"{gan} vs {control} (<= +1 h/u_tau)"


#: Amendments 13 and 21: the simulated pair (GAN scale vs baseline scale) that gives each target's
#: power for a perfect IC in ``results/campaign_verdicts_<rule>[_flow_rate].json``
#: (``benchmarks/campaign_verdicts.py``; the flow-rate view has no plug, only it has the control
#: criterion's, a perfect IC against perfect controls).
POWER_SCENARIOS = {"trig": scenario_key("s0", "s1", 0.5), "plug": scenario_key("s0", "s3", 0.8),
                   "control": control_key("s0", "s0")}


def verdict_power(study: dict[str, Any], rule: str, level: str) -> dict[str, dict[str, Any]]:
    """Per target (baseline name): the share of simulated pairs of a perfect IC against a
    baseline of that kind (for ``control``: perfect controls) that the registered procedure (resample ``rule`` at pass ``level``) called
    "met"; empty when the study measured another procedure."""
    if study.get("rule", "exit") != rule or level not in study["levels"]:
        return {}
    verdicts = study["levels"][level]["verdicts"]
    out = {}
    for name, key in POWER_SCENARIOS.items():
        if key not in verdicts:  # a view without that baseline (plug under a held flow rate)
            continue
        counts = verdicts[key]
        out[name] = {"scenario": key, "met_share": counts.get("met", 0) / sum(counts.values()),
                     "pairs": sum(counts.values()), "resamples": study.get("resamples")}
    return out


def format_comparisons(comp: dict[str, Any]) -> list[str]:
    """Human-readable lines of :func:`comparisons`: a pair's difference and reduction per unit, its
    target's verdict."""
    lines = [f"{'comparison':24s} {'unit':6s} {'T_a - T_b':>36s}   {'1 - T_a/T_b':>34s}"]
    for name, pair in comp["pairs"].items():
        for i, unit in enumerate(pair["difference"]):
            lines.append(f"{name if i == 0 else '':24s} {unit:6s} {pair['difference'][unit]['text']:>36s}   "
                         f"{pair['reduction'][unit]['text']:>34s}")
        share = comp.get("patient_share", {})
        if "cpu_s" in pair["difference"] and pair["a"] in share and pair["b"] in share:
            speedup = comp.get("patient_speedup")
            cost = f"{1 - 1 / speedup:.0%} cheaper per step, " if speedup else ""
            lines.append(f"{'':24s} cpu_s: steps planned with FFTW patient {share[pair['a']]:.0%} / "
                         f"{share[pair['b']]:.0%} ({cost}amendment 10): at one cost per step "
                         "the reduction is the steps'")
        if "target" in pair:
            t = pair["target"]
            rng = ", ".join(("-inf" if i == 0 else "inf") if x is None else f"{x:.4g}"
                            for i, x in enumerate(t["range95"]))  # an open side: -inf below, inf above
            lines.append(f"{'':24s} target: {t['target']}: {t['verdict'].upper()} (95 % range [{rng}])")
            power = comp.get("verdict_power", {}).get(t.get("driving"), {}).get(t.get("baseline_ic"))
            if power is not None:  # studied per view: amendment 13 (body force), 21 (held flow rate)
                study = "amendments 13 and 15" if t.get("driving") == "force" else "amendment 21"
                r = power["resamples"]
                if t.get("baseline_ic") == "control":
                    what, measured = ("onset against perfect controls", f"with {r} resamples a pair, where this "
                                      "verdict uses the registered count")
                else:
                    what, measured = ("reduction", f"on reductions in simulated time with {r} resamples a pair, "
                                      "where this verdict judges steps with the registered count")
                lines.append(f"{'':24s} (power, {study}: this procedure called a perfect IC's {what} "
                             f"'met' in {power['met_share']:.0%} of {power['pairs']} simulated pairs; "
                             f"measured {measured})")
    if "note" in comp:
        lines.append(comp["note"])
    lines += [f"not compared: {lab}: {why}" for lab, why in comp["not_compared"].items()]
    return lines


#: The figure's panels per view: the talk's centre probe and U_b; U_b is held under a held flow
#: rate, where the wall shear (what the held gradient balances) takes its panel.
FIGURE_SIGNALS = {"force": {"probe_u": "centre probe u / u_tau", "bulk": "bulk velocity U_b / u_tau"},
                  "flow_rate": {"probe_u": "centre probe u / u_tau", "tau_lower": "lower-wall shear / u_tau^2"}}
#: One colour per IC once unblinded (blind figures take :data:`PALETTE` in label order: no name leaks).
IC_COLOURS = {"gan": "tab:red", "trig": "tab:blue", "plug": "tab:gray", "control": "black"}
PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray",
           "tab:olive", "tab:cyan")


def plot_onsets(path: Path, judged: Mapping[str, Judged], ref: Reference, k: Mapping[str, float],
                colours: Mapping[str, str] | None = None,
                panels: Mapping[str, str] = FIGURE_SIGNALS["force"]) -> list[str]:
    """The campaign figure in the talk's style, a PNG at ``path``: centre probe and bulk velocity vs
    time; per ensemble its members faint, its mean's trailing window mean bold (what the rule
    judges), its onset a dashed line (censored: an arrow at its lower bound, ">="); shaded, the
    control band mu_s +- k_N sigma_s / sqrt(N) for each ensemble size N. ``colours``: by label
    (the others take :data:`PALETTE`'s remaining colours in order). ``panels``: signal -> axis
    label, one panel each (:data:`FIGURE_SIGNALS` of the view).

    Returns
    -------
    list[str]
        The legend's entries.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 7.5), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True)
    horizon = max(float(j.grid[-1]) for j in judged.values())
    for ax, (name, ylabel) in zip(axes, panels.items()):
        s = ref.signals.index(name)
        for n in sorted({j.values.shape[0] for j in judged.values()}):
            half = k[str(n)] * ref.sigma[s] / math.sqrt(n)
            ax.axhspan(ref.mean[s] - half, ref.mean[s] + half, color="0.85", zorder=0,
                       label=f"control band: reference mean $\\pm k_N\\sigma/\\sqrt{{N}}$, N = {n}")
        ax.axhline(ref.mean[s], color="0.5", lw=0.8, ls=":")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    colours = dict(colours or {})
    spare = [c for c in PALETTE if c not in colours.values()] or list(PALETTE)
    labels = []
    for i, (label, j) in enumerate(judged.items()):
        c = colours.get(label) or spare[i % len(spare)]
        n, t_on = j.values.shape[0], j.point["time"]
        text = f"{label} (N = {n}): " + (f"not steady by {horizon:g} (onset >= {t_on:.1f})" if j.onset.censored
                                         else f"steady from {t_on:.1f}")
        labels.append(text)
        mean_tm = ref.mean[:, None] + ref.z_scores(j.values.mean(axis=0), n) * (ref.sigma / math.sqrt(n))[:, None]
        y = 0.95 - 0.07 * (i % 12)
        for ax, name in zip(axes, panels):
            s = ref.signals.index(name)
            ax.plot(j.grid, j.values[:, s].T, color=c, lw=0.5, alpha=0.25)
            ax.plot(j.grid, mean_tm[s], color=c, lw=2.2, label=text)
            if j.onset.censored:
                tr = ax.get_xaxis_transform()  # x in data, y in axes fraction
                ax.annotate("", xy=(t_on, y), xytext=(t_on - 0.06 * horizon, y), xycoords=tr, textcoords=tr,
                            arrowprops=dict(arrowstyle="->", color=c, lw=1.5))
                ax.text(t_on - 0.06 * horizon, y, f">= {t_on:.1f} ", transform=tr, color=c, ha="right",
                        va="center", fontsize=8)
            else:
                ax.axvline(t_on, color=c, ls="--", lw=1.2)
    axes[0].legend(fontsize=8, loc="best")
    axes[-1].set_xlabel("t u_tau / h")
    axes[-1].set_xlim(0.0, horizon)
    fig.suptitle(f"Transient campaign: members faint, ensemble means bold (trailing {ref.window:g} h/u_tau means, "
                 "as the rule judges), onsets dashed", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return labels
