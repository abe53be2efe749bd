"""Can the registered comparisons decide the targets? Verdicts on simulated pairs (issue 14)

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/campaign_verdicts.py [--pairs 100] [--resamples 1000]
        [--levels 0.95,0.99] [--rule exit|enter-stay] [--streams 100] [--view force|flow_rate]

Blind-safe: surrogates of the reference only (``Reference.surrogates``, the power analysis's and
amendment 4's ensembles), no IC run is read (``--view flow_rate`` reads the confirmatory trig
ensemble, unblinded since amendment 11's analysis, for its template). An "IC" of scale s is 8 surrogates plus s times the
power analysis's trig template on U_b (s = 0: a perfect IC; s = 1: trig-like; 2, 3: plug-like, later
onsets). Each pair (a "GAN" ensemble against an independent baseline ensemble) is judged and
compared exactly as ``campaign analyse --unblind`` does (``campaign_report.judge`` with k_8 for the
point and a resample band constant for the resamples, ``compare`` with the protocol's reduction
targets, here in simulated time), so the verdict shares per scenario are the design's power (true
reduction above the target) or its false "met" rate (below it). Truth: the median point onset of
400 further ensembles of each scale (their streams ``[900 + scale index, i]`` are fixed: ``--streams``
moves the pairs' only). ``--levels``: the pass level of the resample band constant
k_8^boot (the same surrogate streams as ``campaign reference``); ``--rule``: how a resample is judged
(``campaign_report.RESAMPLE_RULES``: ``exit``, registered by amendment 4 at 0.95; ``enter-stay``, the
candidate of amendment 14); also reported, the coverage of each ensemble's own onset interval.

``--per-run``: instead, comparisons of the members' mean per-run onset (each member judged alone by
the per-run rule, k_1; a censored member counts as the horizon; members resampled with replacement,
no re-judging, 2000 resamples, the same 1 % tails), an alternative that needs no resample band;
truth: the mean per-run onset over 200 further ensembles of each scale.

``--view flow_rate`` (amendment 21): the same study for the constant-flow-rate view, on its own
reference (``ref-cfr``'s surrogates, the view's signals and horizon, k_8 from
``results/reference_ref-cfr.json``), with its own trig-like template (:func:`held_template`: the
confirmatory trig ensemble's transient on the view's signals, less the part the body-force bulk
velocity explains, cut at its own onset) and its scenarios (:data:`HELD_SCENARIOS`: trig's 50 %
only, plug is not in that view; :data:`HELD_CONTROLS`: the control criterion, within 1 h/u_tau).

Writes ``benchmarks/results/campaign_verdicts_<rule>.json`` (``--per-run``: ``campaign_verdicts_per_run.json``;
``--view flow_rate``: ``campaign_verdicts_<rule>_flow_rate.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from campaign_analysis import power_template, reference_run, report_module, view_stats  # noqa: E402
from campaign_plan import CAMPAIGN, read_plan  # noqa: E402
from campaign_records import read_chunks  # noqa: E402

scenario_key = report_module().scenario_key

RESULTS = Path(__file__).resolve().parent / "results"
#: Template scales of the simulated ICs (see the module docstring).
SCALES = {"s0": 0.0, "s0.2": 0.2, "s0.3": 0.3, "s0.4": 0.4, "s0.5": 0.5, "s1": 1.0, "s2": 2.0, "s3": 3.0,
          "s0.1": 0.1}  # (appended: a scale's index is its random stream)
#: (GAN scale, baseline scale, the target's reduction): trig's 50 % and plug's 80 %, on both sides of them.
SCENARIOS = [("s0", "s1", 0.5), ("s0.3", "s1", 0.5), ("s0.4", "s1", 0.5), ("s0.5", "s1", 0.5), ("s1", "s1", 0.5),
             ("s0", "s3", 0.8), ("s0.2", "s3", 0.8), ("s0.4", "s3", 0.8), ("s0.5", "s2", 0.8)]
#: Amendment 21: the flow-rate view's scenarios, scales of :func:`held_template` against a trig-like
#: baseline (s = 1) with trig's target (plug is not in that view).
HELD_SCENARIOS = [("s0", "s1", 0.5), ("s0.1", "s1", 0.5), ("s0.2", "s1", 0.5), ("s0.3", "s1", 0.5), ("s0.5", "s1", 0.5), ("s1", "s1", 0.5)]


#: Amendment 21: the flow-rate view's control criterion (onset at most 1 h/u_tau after the controls',
#: the protocol's target), a "GAN" of a scale against a perfect control ensemble (s = 0, an
#: independent draw): true differences 0 (a perfect GAN) and those of scales 0.1 and 0.2.
HELD_CONTROLS = [("s0", "s0"), ("s0.1", "s0"), ("s0.2", "s0")]


def sides(scenarios: list[tuple[str, str, float]], controls: list[tuple[str, str]] = ()) -> list[tuple[str, int]]:
    """The ensembles the pairs of ``scenarios`` and ``controls`` need: (scale, side), side 0 the
    "GAN", 1 the baseline (an independent draw)."""
    pairs = [sc[:2] for sc in scenarios] + list(controls)
    return sorted({(g, 0) for g, _ in pairs} | {(b, 1) for _, b in pairs})


def held_template(campaign: Path, force_ref: Any, protocol: dict[str, Any], k: float
                  ) -> tuple[np.ndarray, dict[str, Any]]:
    """Amendment 21's trig-like transient of the flow-rate view, ``(S, m)`` on ``0, dt, ...,
    horizon`` of ``protocol`` (the view's: its signals and horizon), and what it was built from.

    The confirmatory trig ensemble ran under the body force, where U_b wanders slowly and the other
    signals follow it; under a held flow rate U_b is fixed. Each member's signal j becomes
    x_j - β_j (U_b - μ_U), β_j the regression slope of x_j's window means on U_b's over the
    body-force reference ``force_ref`` (a reference of the protocol's signals, ``bulk`` among them);
    the template is the members' mean of that less the reference mean, and zero from the onset the
    rule gives those members against ``force_ref``'s band on the view's signals (``k``: its k_N): from
    there on what is left is the ensemble's own noise, which each simulated ensemble draws afresh.
    A model of a trig-like transient in the held view, not a measurement of one."""
    report = report_module()
    key = json.loads((campaign / "key.json").read_text())
    group = next((g for g, v in key.items() if isinstance(v, dict) and v.get("ic") == "trig"
                  and v.get("tier") == "confirmatory"), None)
    if group is None:
        raise SystemExit(f"{campaign / 'key.json'}: no confirmatory trig ensemble to build the held template from")
    names, b = list(protocol["signals"]), force_ref.signals.index("bulk")
    rows = [force_ref.signals.index(n) for n in names]
    wm = force_ref.window_means()
    beta = np.array([np.cov(wm[i], wm[b])[0, 1] / wm[b].var(ddof=1) for i in rows])
    grid = force_ref.dt * np.arange(int(round(protocol["horizon"] / force_ref.dt)) + 1)
    members = []
    for run in (r for r in read_plan(campaign) if r.get("group") == group):
        series, _ = read_chunks(campaign, run["id"])
        if not len(series.get("t", ())) or series["t"][-1] < grid[-1] - force_ref.dt / 2:
            raise SystemExit(f"{run['id']}: its record ends before the view's horizon {grid[-1]:g}")
        sig = report.signals(series, names + ["bulk"], report.force_of(run, series))
        excess_u = np.interp(grid, series["t"], sig["bulk"]) - force_ref.mean[b]
        members.append([np.interp(grid, series["t"], sig[n]) - beta[j] * excess_u for j, n in enumerate(names)])
    values = np.asarray(members)
    view_ref = dataclasses.replace(force_ref, signals=tuple(names), record=force_ref.record[rows],
                                   mean=force_ref.mean[rows], sigma=force_ref.sigma[rows])
    cut = view_ref.onset_of_grid(grid, values, k=k, min_steady=protocol["min_steady"])
    template = values.mean(axis=0) - view_ref.mean[:, None]
    if not cut.censored:
        template[:, grid >= cut.onset_time] = 0.0
    return template, {"group": group, "members": len(members), "beta": dict(zip(names, beta.tolist())),
                      "cut": None if cut.censored else cut.onset_time}


def pair_stream(name: str, side: int, pair: int, streams: int = 100) -> list[int]:
    """The random stream of one side's ensemble of one simulated pair (the same for every study of
    the same ``streams``: rules and levels are compared on the same ensembles)."""
    return [streams + list(SCALES).index(name), side, pair]


def _count(counts: dict[str, dict[str, int]], key: str, verdict: str) -> None:
    counts[key][verdict] = counts[key].get(verdict, 0) + 1


def _print_verdicts(verdicts: dict[str, dict[str, int]], true_reduction: dict[str, float],
                    true_difference: dict[str, float] | None = None) -> None:
    for key, c in verdicts.items():
        pair = key.split(" (")[0]
        if key == report_module().control_key(*pair.split(" vs ")):  # the control criterion's
            print(f"  {key:22s} true difference {(true_difference or {})[pair]:+.2f} h/u_tau: {c}", flush=True)
        else:
            print(f"  {key:22s} true reduction {true_reduction[pair]:+.2f}: {c}", flush=True)


def ensemble_verdicts(ref: Any, protocol: dict[str, Any], k: float, values: Any, pairs: int,
                      levels: list[float], streams: int = 100,
                      scenarios: list[tuple[str, str, float]] = SCENARIOS,
                      controls: list[tuple[str, str]] = ()) -> dict[str, Any]:
    """Verdicts of the registered comparisons (``protocol["resample_rule"]``) at each resample pass
    level, and the coverage of each ensemble's onset interval; the pairs' ensembles drawn from the
    streams ``[streams + scale index, side, pair]`` (the same ensembles for every rule and level).
    ``controls``: pairs judged by the control criterion (``campaign_report.TARGETS["control"]``,
    keys :func:`campaign_report.control_key`) besides the reduction ``scenarios``."""
    report = report_module()
    used = {n for sc in [*scenarios, *controls] for n in sc[:2]}
    grid = ref.dt * np.arange(int(round(protocol["horizon"] / ref.dt)) + 1)
    truth = {}
    for j, name in enumerate(SCALES):  # j: the scale's stream, whichever scales the scenarios use
        if name not in used:
            continue
        on = [ref.onset_of_grid(grid, values(name, [900 + j, i]), k=k, min_steady=protocol["min_steady"])
              for i in range(400)]
        truth[name] = float(np.median([np.inf if r.censored else r.onset_time for r in on]))
    out: dict[str, Any] = {"k_8": k, "truth_onset": truth,
                           "true_reduction": {f"{g} vs {b}": 1 - truth[g] / truth[b] for g, b, _ in scenarios},
                           "levels": {}}
    if controls:
        out["true_difference"] = {f"{g} vs {b}": truth[g] - truth[b] for g, b in controls}
    for level in levels:  # k_8^boot at this level, on the surrogate streams of `campaign reference`
        kb = report.band_constants(ref, dict(protocol, level=level), boot=True)["8"]
        counts: dict[str, dict[str, int]] = {scenario_key(g, b, t): {} for g, b, t in scenarios}
        counts.update({report.control_key(g, b): {} for g, b in controls})
        cover: dict[str, list[bool]] = {}
        for i in range(pairs):
            judged = {}
            for name, side in sides(scenarios, controls):  # side 1: the baseline, an independent draw
                stream = pair_stream(name, side, i, streams)
                ens = report.Ensemble([(grid, dict(zip(ref.signals, x))) for x in values(name, stream)])
                judged[f"{name}/{side}"] = report.judge(ens, ref, k, kb, protocol, np.random.default_rng(stream + [1]))
            for g, b, t in scenarios:
                target = report.Target("reduction", "time", low=t)
                pair = report.compare(judged, [(f"{g}/0", f"{b}/1")], {(f"{g}/0", f"{b}/1"): target})
                _count(counts, scenario_key(g, b, t), pair[f"{g}/0 vs {b}/1"]["target"]["verdict"])
            for g, b in controls:
                pair = report.compare(judged, [(f"{g}/0", f"{b}/1")], {(f"{g}/0", f"{b}/1"): report.TARGETS["control"]})
                _count(counts, report.control_key(g, b), pair[f"{g}/0 vs {b}/1"]["target"]["verdict"])
            for key, j in judged.items():
                lo, hi = report.onset_cost(j)["time"]["ci95"]
                name = key.split("/")[0]
                cover.setdefault(name, []).append((lo is None or lo <= truth[name]) and (hi is None or truth[name] <= hi))
        out["levels"][str(level)] = {"k_8_boot": kb, "verdicts": counts,
                                     "onset_interval_coverage": {n: float(np.mean(c)) for n, c in sorted(cover.items())}}
        print(f"level {level}: k_8^boot {kb:.3f}", flush=True)
        _print_verdicts(counts, out["true_reduction"], out.get("true_difference"))
        print(f"  onset interval coverage: {out['levels'][str(level)]['onset_interval_coverage']}", flush=True)
    return out


def per_run_verdicts(ref: Any, protocol: dict[str, Any], k1: float, values: Any, pairs: int,
                     resamples: int = 2000) -> dict[str, Any]:
    """Verdicts and interval coverage of the mean per-run onset (``--per-run``)."""
    report = report_module()
    horizon, used = protocol["horizon"], {n for sc in SCENARIOS for n in sc[:2]}
    grid = ref.dt * np.arange(int(round(horizon / ref.dt)) + 1)
    lo_q, hi_q = report.TAILS[0], 1 - report.TAILS[1]

    def onsets(v: np.ndarray) -> np.ndarray:
        out = [ref.onset_of_grid(grid, x[None], k=k1, min_steady=protocol["min_steady"]) for x in v]
        return np.array([horizon if r.censored else r.onset_time for r in out])

    truth = {n: float(np.mean([onsets(values(n, [900 + j, i])).mean() for i in range(200)]))
             for j, n in enumerate(SCALES) if n in used}
    counts: dict[str, dict[str, int]] = {scenario_key(g, b, t): {} for g, b, t in SCENARIOS}
    cover: dict[str, list[bool]] = {}
    for i in range(pairs):
        boot = {}
        for j, (name, side) in enumerate(sides(SCENARIOS)):
            o = onsets(values(name, pair_stream(name, side, i)))
            boot[(name, side)] = o[np.random.default_rng([5, j, i]).integers(o.size, size=(resamples, o.size))].mean(axis=1)
            lo, hi = np.quantile(boot[(name, side)], [lo_q, hi_q])
            cover.setdefault(name, []).append(bool(lo <= truth[name] <= hi))
        for g, b, t in SCENARIOS:
            lo, hi = np.quantile(1 - boot[(g, 0)] / boot[(b, 1)], [lo_q, hi_q])
            _count(counts, scenario_key(g, b, t), "met" if lo >= t else ("not met" if hi < t else "undecided"))
    return {"truth_mean_per_run_onset": truth, "resamples": resamples,
            "true_reduction": {f"{g} vs {b}": 1 - truth[g] / truth[b] for g, b, _ in SCENARIOS},
            "verdicts": counts, "interval_coverage": {n: float(np.mean(c)) for n, c in sorted(cover.items())}}


#: Amendment 15's conditions for replacing the registered resample procedure by a candidate, both
#: measured on the same ensembles (same ``--streams`` and ``--pairs``): at most this share "met"
#: in any scenario whose true reduction is below its target; every scale's onset-interval coverage
#: at most this much below the registered procedure's; at least this share "met" for a perfect IC.
FALSE_MET_MAX, COVERAGE_MARGIN, POWER_MIN = 0.05, 0.02, 0.5


def decide(registered: dict[str, Any], candidate: dict[str, Any], registered_level: str = "0.95",
           candidate_level: str = "0.99") -> dict[str, Any]:
    """Amendment 15's decision between two studies of :func:`ensemble_verdicts` (see the constants)."""
    same = ("pairs", "resamples", "streams", "truth_onset")
    if any(registered.get(x) != candidate.get(x) for x in same):
        raise SystemExit(f"the two studies must share {same}: they were not run on the same ensembles")
    reg, cand = registered["levels"][registered_level], candidate["levels"][candidate_level]
    share = {key: c.get("met", 0) / sum(c.values()) for key, c in cand["verdicts"].items()}
    below = {key: share[key] for g, b, t in SCENARIOS
             if candidate["true_reduction"][f"{g} vs {b}"] < t for key in [scenario_key(g, b, t)]}
    perfect = {key: share[key] for g, b, t in SCENARIOS if SCALES[g] == 0 for key in [scenario_key(g, b, t)]}
    cover = {n: (cand["onset_interval_coverage"][n], reg["onset_interval_coverage"][n])
             for n in cand["onset_interval_coverage"]}
    checks = {
        "false_met": {"limit": FALSE_MET_MAX, "shares": below, "ok": all(v <= FALSE_MET_MAX for v in below.values())},
        "coverage": {"margin": COVERAGE_MARGIN, "candidate_vs_registered": cover,
                     "ok": all(c >= r - COVERAGE_MARGIN for c, r in cover.values())},
        "power": {"minimum": POWER_MIN, "shares": perfect, "ok": all(v >= POWER_MIN for v in perfect.values())},
    }
    return {"checks": checks, "adopt": all(c["ok"] for c in checks.values()),
            "registered": {"rule": registered["rule"], "level": registered_level},
            "candidate": {"rule": candidate["rule"], "level": candidate_level}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--levels", default="0.95,0.99")
    ap.add_argument("--rule", default="exit", help="how resamples are judged: exit (registered) or enter-stay")
    ap.add_argument("--streams", type=int, default=100,
                    help="first random stream of the pairs' ensembles (100: the studies of amendments 13-14)")
    ap.add_argument("--per-run", action="store_true", help="the mean per-run onset instead (module docstring)")
    ap.add_argument("--view", choices=("force", "flow_rate"), default="force",
                    help="the view whose verdicts are studied (flow_rate: amendment 21, on ref-cfr)")
    ap.add_argument("--campaign", default=str(CAMPAIGN), help="committed campaign folder (default %(default)s)")
    ap.add_argument("--results", default=str(RESULTS),
                    help="folder of the reference statistics read (default %(default)s; the output goes by --out)")
    ap.add_argument("--out", default=None, help="default: results/campaign_verdicts_<rule>[_flow_rate].json "
                                                "(--per-run: _per_run)")
    ap.add_argument("--decide", nargs=2, metavar=("REGISTERED", "CANDIDATE"),
                    help="amendment 15: decide between two studies' JSONs (writes --out, default results/campaign_decision.json)")
    a = ap.parse_args(argv)
    if a.decide:
        res = decide(*(json.loads(Path(f).read_text()) for f in a.decide))
        res["inputs"] = a.decide
        (Path(a.out) if a.out else RESULTS / "campaign_decision.json").write_text(json.dumps(res, indent=1) + "\n")
        for name, c in res["checks"].items():
            print(f"{name}: {'ok' if c['ok'] else 'FAILS'}: {json.dumps({k: v for k, v in c.items() if k != 'ok'})}")
        print("adopt the candidate" if res["adopt"] else "keep the registered procedure")
        return 0
    if a.per_run and a.view != "force":
        raise SystemExit("--per-run is studied for the body-force view only")
    held = a.view == "flow_rate"
    name = ("campaign_verdicts_per_run.json" if a.per_run
            else f"campaign_verdicts_{a.rule}{'_flow_rate' if held else ''}.json")
    out_path = Path(a.out) if a.out else RESULTS / name
    campaign, results = Path(a.campaign), Path(a.results)
    report = report_module()
    registered = dict(report.read_protocol(campaign), bootstrap=a.resamples, resample_rule=a.rule)
    force_run, force_series, _ = reference_run(campaign)
    force_ref = report.reference(registered, force_run, force_series)
    k_force = json.loads((results / "reference.json").read_text())["k"]
    protocol, scenarios, extra = registered, SCENARIOS, {}
    if held:
        protocol, scenarios = report.view(registered, "flow_rate"), HELD_SCENARIOS
        run = next((r for r in read_plan(campaign) if r["kind"] == "reference" and report.driving_of(r) == "flow_rate"),
                   None)
        if run is None:
            raise SystemExit(f"{campaign / 'plan.json'} has no flow-rate reference")
        ref = report.reference(protocol, run, read_chunks(campaign, run["id"])[0])
        k = view_stats(results / "reference.json", run)["k"]["8"]
        template, built = held_template(campaign, force_ref, protocol, k_force["8"])
        extra = {"view": "flow_rate", "reference": run["id"], "template": built}
    else:
        ref, k = force_ref, k_force["8"]
        m = int(round(protocol["horizon"] / ref.dt)) + 1
        template = np.zeros((len(ref.signals), m))
        template[ref.signals.index("bulk")] = power_template(ref, protocol)
    t0 = time.process_time()

    def values(name: str, stream: list[int]) -> np.ndarray:
        return ref.surrogates(8, protocol["horizon"], np.random.default_rng(stream)) + SCALES[name] * template[None]

    if a.per_run:
        res = per_run_verdicts(ref, protocol, k_force["1"], values, a.pairs)
        command = f"--per-run --pairs {a.pairs}"
    else:
        res = ensemble_verdicts(ref, protocol, k, values, a.pairs, [float(x) for x in a.levels.split(",")], a.streams,
                                scenarios, HELD_CONTROLS if held else ())
        res = {"rule": a.rule, "pairs": a.pairs, "resamples": a.resamples, "streams": a.streams, **extra, **res}
        command = (f"--pairs {a.pairs} --resamples {a.resamples} --levels {a.levels} --rule {a.rule}"
                   + (f" --streams {a.streams}" if a.streams != 100 else "") + (" --view flow_rate" if held else "")
                   + (f" --out {a.out}" if a.out else ""))
    res.update(pairs=a.pairs, cpu_s=time.process_time() - t0,
               reproduce=f"OMP_NUM_THREADS=1 .venv/bin/python benchmarks/campaign_verdicts.py {command}")
    out_path.write_text(json.dumps(res, indent=1) + "\n")
    if a.per_run:
        _print_verdicts(res["verdicts"], res["true_reduction"])
        print(f"interval coverage: {res['interval_coverage']}")
    print(f"CPU {res['cpu_s']:.0f} s; wrote {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
