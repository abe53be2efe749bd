"""Analysis of the transient campaign under its pre-registered protocol (benchmarks/campaign/).

- :func:`reference_statistics`: the stationary reference after its spin-up: every signal's mean,
  the spread (5-95 %) and autocorrelation of its window means, integral times, the largest
  natural excursion per window length, the band constant k calibrated for each ensemble size of
  the protocol, and the per-run rule's false-censoring rate on (overlapping) reference segments.
- :func:`ensemble_onsets`: onsets of the IC ensembles, computed on opaque group labels only
  (the plan's ``group``); :func:`join` attaches the IC names from ``key.json`` afterwards.

The protocol (``protocol.json``, committed before the runs it judges) fixes the signals, the
window, the horizon, the level, the ensemble-size candidates, the surrogate counts and the seed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from cfdseed.transient import Reference

DERIVED = {
    # dissipation against power input (force * bulk): 1 on average in equilibrium
    "eps_ratio": lambda s, force: np.asarray(s["dissipation"]) / (force * np.asarray(s["bulk"])),
    "tau": lambda s, force: 0.5 * (np.asarray(s["tau_lower"]) + np.asarray(s["tau_upper"])),
}


def read_protocol(campaign: Path) -> dict[str, Any]:
    return json.loads((campaign / "protocol.json").read_text())


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


def force_of(run: dict[str, Any]) -> float:
    """The constant body force u_tau^2 / h of a run's case (h = ly / 2, u_tau = 1)."""
    return 2.0 / float(run["spec"]["lengths"][1])


def reference(protocol: dict[str, Any], run: dict[str, Any], series: dict[str, np.ndarray]) -> Reference:
    """The :class:`Reference` of the reference run's series after its discarded spin-up."""
    if not series or series["t"].size < 2:
        raise ValueError(f"reference run {run['id']}: no records yet")
    sig = signals(series, protocol["signals"], force_of(run))
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


def reference_statistics(protocol: dict[str, Any], run: dict[str, Any], series: dict[str, np.ndarray],
                         t_done: float | None = None) -> dict[str, Any]:
    """JSON-ready reference statistics and calibration (see the module docstring). ``t_done``: the
    run's simulated time (its progress record; the last series record lies up to one record
    interval before it); default the last record's time."""
    ref = reference(protocol, run, series)
    rng = np.random.default_rng(protocol["seed"])
    horizon = protocol["horizon"]
    out: dict[str, Any] = {
        "run": run["id"], "t_end": float(series["t"][-1]), "discard": run["discard"],
        "stationary_span": ref.duration, "complete": float(series["t"][-1] if t_done is None else t_done) >= run["horizon"] - 1e-9,
        "protocol": {k: protocol[k] for k in ("signals", "window", "dt", "horizon", "level", "min_steady")},
        **ref.summary(protocol.get("excursion_lengths", (1, 2, 4, 6, 8, 12, 16))),
    }
    calib = {}
    if ref.duration > horizon:
        for n in sorted({1, *protocol["members_candidates"]}):
            calib[str(n)] = ref.calibrate(n, horizon, level=protocol["level"], n=protocol["calibration_surrogates"], rng=rng)
        out["k"] = calib
        out["per_run_rule_on_reference_segments"] = segment_false_censoring(
            ref, calib["1"], horizon, protocol.get("segment_every", 2.0), protocol["min_steady"])
    else:
        out["k"] = None
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


def ensemble_onsets(groups: dict[str, list[tuple[np.ndarray, dict[str, np.ndarray]]]], ref: Reference,
                    k: dict[str, float], protocol: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Per opaque group: ensemble onset, bootstrap interval and per-run onsets (blind: labels only)."""
    horizon, ms = protocol["horizon"], protocol["min_steady"]
    out = {}
    for label, members in sorted(groups.items()):
        n = len(members)
        kn = k.get(str(n))
        if kn is None:
            raise ValueError(f"group {label}: {n} members, but k was calibrated for {sorted(k)} only")
        r = ref.onset(members, k=kn, horizon=horizon, min_steady=ms)
        boot = ref.bootstrap(members, k=kn, horizon=horizon, n=protocol["bootstrap"], rng=rng, min_steady=ms)
        per = [ref.onset([m], k=k["1"], horizon=horizon, min_steady=ms) for m in members]
        out[label] = {
            "members": n, "censored": r.censored, "onset_time": r.onset_time, "reason": r.reason,
            "bootstrap_censored_fraction": float(np.isnan(boot).mean()),
            "onset_ci95": None if np.isnan(boot).mean() > 0.025 else [float(q) for q in np.nanquantile(boot, [0.025, 0.975])],
            "per_run": [{"censored": p.censored, "onset_time": p.onset_time} for p in per],
        }
    return out


def join(onsets: dict[str, Any], key: dict[str, Any]) -> dict[str, Any]:
    """IC names attached to the blind results: {ic name: result} (after the analysis). ``key`` maps
    a group to its IC name, or to ``key.json``'s entry ``{"ic": name, "tier": ..., ...}``."""
    missing = sorted(set(onsets) - set(key))
    if missing:
        raise KeyError(f"groups {missing} have no entry in the key")
    name = key_names(key)
    return {name[g]: dict(v, group=g) for g, v in onsets.items()}


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
        seg = stats["per_run_rule_on_reference_segments"]
        lines.append(f"per-run rule on {seg['segments']} reference segments: censored {seg['censored_fraction']:.1%}, "
                     f"later than the first window {seg['late_fraction']:.1%}")
    else:
        lines.append(stats.get("note", ""))
    return lines
