"""The campaign's analysis from committed chunks: a reference run's validation and the power
template, the sweep's scores, and the onsets of the IC ensembles by the protocol's rule
(``campaign analyse``); the statistics themselves live in ``campaign_report.py``.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from campaign_plan import ROOT, is_done, progress, read_plan
from campaign_records import read_chunks, refuse_record_problems


#: Amendment 10's measurement: steps per CPU-second, FFTW patient over measure (its median ratio).
PLANNING = ROOT / "benchmarks" / "results" / "dedalus_planning.json"


def verdict_study(rule: str, driving: str = "force") -> Path:
    """The measurement of a resample rule's verdicts on simulated pairs of a view
    (``benchmarks/campaign_verdicts.py``): under the body force amendment 15's study of it (400
    pairs) where there is one, else amendment 13's; under a held flow rate amendment 21's."""
    results = ROOT / "benchmarks" / "results"
    if driving != "force":
        return results / f"campaign_verdicts_{rule}_{driving}.json"
    decided = results / f"campaign_decision_{rule}.json"
    return decided if decided.exists() else results / f"campaign_verdicts_{rule}.json"


def steps_by_rigor(prog: dict[str, Any]) -> dict[str, int]:
    """A run's solver steps by the FFTW planning rigor its chunks ran with (amendment 10; a chunk
    without the record ran with Dedalus' default, ``measure``)."""
    out: Counter[str] = Counter()
    for c in prog["chunks"]:
        out[c.get("fftw_rigor", "measure")] += int(c.get("steps", 0))
    return dict(out)


def report_module() -> Any:
    """``campaign_report.py``, imported on first use (a worker running chunks never needs it) like
    the other parts beside it: one module, so one class per dataclass, per process."""
    import campaign_report

    return campaign_report


def reference_run(campaign: Path, run_id: str | None = None
                   ) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A reference run's plan entry (``run_id``, default the first: the body force's), its time
    series and its binned profiles."""
    run = next((r for r in read_plan(campaign) if r["kind"] == "reference" and run_id in (None, r["id"])), None)
    if run is None:
        raise SystemExit(f"{campaign / 'plan.json'} has no reference run" + (f" {run_id!r}" if run_id else ""))
    return (run, *read_chunks(campaign, run["id"]))


def validate_reference(campaign: Path, run_id: str) -> dict[str, Any]:
    """A reference run's stationary part against Lee & Moser Re_tau 180, in its own wall units
    (amendment 9's gate, ``protocol.json`` ``flow_rate.validation``): the binned profiles after the
    discard (second moments about the time-and-plane mean: the bins' moments about their plane mean
    plus the variance of the bin means), u_tau = sqrt of the time-averaged mean wall shear of both
    walls (``cfdseed.reference.compare_profiles``)."""
    from cfdseed.reference import compare_profiles

    run = next(r for r in read_plan(campaign) if r["id"] == run_id)
    limits = json.loads((campaign / "protocol.json").read_text())["flow_rate"]["validation"]
    series, prof = read_chunks(campaign, run_id)
    if not series or "t" not in prof:
        raise SystemExit(f"{run_id}: no committed chunks")
    t, tb = series["t"], np.asarray(prof["t"])
    keep, bins = t >= run["discard"], tb >= run["discard"]
    if keep.sum() < 2 or not bins.any():
        raise SystemExit(f"{run_id}: nothing after its discard (t = {run['discard']:g}) yet")
    w = np.asarray(prof["n"], dtype=np.float64)[bins]
    mean = {q: np.average(np.asarray(prof[q])[bins], axis=0, weights=w) for q in ("U", "V", "W", "uu", "vv", "ww", "uv")}
    for q, (a, b) in {"uu": ("U", "U"), "vv": ("V", "V"), "ww": ("W", "W"), "uv": ("U", "V")}.items():
        mean[q] = mean[q] + np.average(np.asarray(prof[a])[bins] * np.asarray(prof[b])[bins], axis=0, weights=w) \
            - mean[a] * mean[b]
    tau = 0.5 * (series["tau_lower"][keep] + series["tau_upper"][keep])
    tk = t[keep]
    tau_mean = float(np.trapezoid(tau, tk) / (tk[-1] - tk[0]))
    ly, re_tau = float(run["spec"]["lengths"][1]), float(run["spec"]["re_tau"])
    cmp = compare_profiles(prof["y"], mean, ly, (ly / 2) / re_tau, u_tau=math.sqrt(tau_mean))
    cmp.pop("curves")
    checks = {"u_plus_rel_l2": cmp["u_plus_rel_l2"] <= limits["u_plus_rel_l2"],
              "peak_u_rel_err": cmp["peak_u_rel_err"] <= limits["peak_u_rel_err"],
              "re_tau": limits["re_tau"][0] <= cmp["re_tau"] <= limits["re_tau"][1]}
    return dict(run=run_id, driving=run["spec"].get("driving", "force"), span=[float(tk[0]), float(tk[-1])],
                complete=is_done(run, progress(campaign, run)), mean_wall_shear=tau_mean,
                bulk=float(np.trapezoid(series["bulk"][keep], tk) / (tk[-1] - tk[0])), **cmp,
                limits={k: limits[k] for k in checks}, checks=checks, passed=all(checks.values()),
                reproduce=f"python benchmarks/transient.py campaign validate --run {run_id} (from the committed chunks)")


def power_template(ref: Any, protocol: dict[str, Any]) -> np.ndarray:
    """The power analysis's template on ``0, dt, ..., horizon``: the trig IC's (seed 0) bulk-velocity
    excess of ``results/transient.json``, continued by the reference's integral time of U_b."""
    report = report_module()
    old = [r for r in json.loads((ROOT / "benchmarks" / "results" / "transient.json").read_text())["runs"]
           if r["ic"] == "trig" and r["seed"] == 0][0]["series"]
    b = ref.signals.index("bulk")
    grid = ref.dt * np.arange(int(round(protocol["horizon"] / ref.dt)) + 1)
    return report.bulk_template(old["t"], old["bulk"], float(ref.mean[b]), float(ref.integral_time()[b]), grid)


def sweep_scores(campaign: Path) -> dict[str, Any]:
    """The sweep's score per run and per amplitude and the chosen amplitude (``trig_sweep.score``);
    raises SystemExit while a sweep run is not done."""
    report = report_module()
    protocol = report.read_protocol(campaign)
    sw = protocol["trig_sweep"]
    plan = read_plan(campaign)
    runs = [r for r in plan if r["kind"] == "sweep"]
    if not runs:
        raise SystemExit("no sweep registered ('campaign register --tier sweep')")
    force_ref = [next(r for r in plan if r["kind"] == "reference")]  # what reference_run reads
    refuse_record_problems(campaign, force_ref + [r for r in runs if is_done(r, progress(campaign, r))], protocol["dt"])
    ref_run, ref_series, _ = reference_run(campaign)
    ref = report.reference(protocol, ref_run, ref_series)
    per_run, by_amp = {}, {}
    for run in runs:
        prog = progress(campaign, run)
        if not is_done(run, prog):
            raise SystemExit(f"sweep run {run['id']} is at t = {prog['t']:.2f} of {run['horizon']:g}: not done")
        a = float(run["ic"]["options"]["amplitude"])
        if prog.get("failed"):
            score = math.inf
        else:
            series, _ = read_chunks(campaign, run["id"])
            sig = report.signals(series, protocol["signals"], report.force_of(run, series))
            g, v = ref.grid([(series["t"], sig)], run["horizon"])
            z = np.abs(ref.z_scores(v[0], 1)).max(axis=0)
            score = float(np.mean(z[g >= sw["score_from"] - 1e-9]))
        per_run[run["id"]] = dict(amplitude=a, seed=run["ic"]["seed"], score=score)
        by_amp.setdefault(a, []).append(score)
    mean = {a: float(np.mean(v)) for a, v in sorted(by_amp.items())}
    chosen = min(mean, key=lambda a: (mean[a], a))
    return {"rule": sw["score"], "per_run": per_run, "per_amplitude": {f"{a:g}": m for a, m in mean.items()},
            "chosen": chosen}


def reference_json_of(results: Path, run: dict[str, Any]) -> Path:
    """Where ``campaign reference`` writes a reference run's statistics: ``results`` for the body
    force's (``reference.json``), ``reference_<id>.json`` beside it for another view's."""
    report = report_module()
    return results if report.driving_of(run) == "force" else results.with_name(f"reference_{run['id']}.json")


def view_stats(results: Path, run: dict[str, Any]) -> dict[str, Any]:
    """A reference run's statistics (``campaign reference``, :func:`reference_json_of`), refused
    (SystemExit naming the command) while they are not complete or lack k_boot (amendment 4)."""
    path = reference_json_of(results, run)
    stats = json.loads(path.read_text()) if path.exists() else {}
    make = f"'campaign reference --run {run['id']}' first"
    if not stats.get("complete") or not stats.get("k"):
        raise SystemExit(f"{path}: the reference is not complete; no rule to judge by yet ({make})")
    if not stats.get("k_boot"):
        raise SystemExit(f"{path}: no k_boot (the resamples' band constants, amendment 4): {make}")
    return stats


def failed_record(series: dict[str, np.ndarray], template: dict[str, np.ndarray], horizon: float) -> dict[str, np.ndarray]:
    """A failed run's record for the rule: its committed records, then one at the horizon whose
    values are NaN (outside the band: the run never settles) with its step counter held (a lower
    bound of the steps). ``template``: a record with every column (the reference's), for a run that
    failed before its first chunk (outside the band from t = 0)."""
    if len(series.get("t", ())):
        out = {c: np.append(np.asarray(v, dtype=np.float64), np.nan) for c, v in series.items()}
        out["step"][-1] = out["step"][-2]
    else:
        out = {c: np.full(2, np.nan) for c in template}
        out["t"], out["step"] = np.array([0.0, np.nan]), np.zeros(2)
    out["t"][-1] = horizon
    return out


def analyse(campaign: Path, reference_json: Path, key: dict[str, Any] | None = None, *,
            figure: Path | None = None, pairs: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Onsets of the IC ensembles by the protocol's rule, on opaque groups (``campaign analyse``).

    Per-run onsets (band constant k_1) for every finished IC run; the ensemble onset with its
    bootstrap interval and its cost (simulated time, steps, CPU-seconds; ``campaign_report.judge``)
    for every group whose registered members have all finished (k_N exists for the protocol's
    candidate sizes only). A member that failed (blew up) is censored (PROTOCOL.md, "Exclusions"): its
    record is outside the band from its last committed record to the horizon (:func:`failed_record`),
    so an ensemble or resample holding it is censored at the horizon and every comparison with it is
    a one-sided bound (amendments 2 and 4), never dropped. Each view
    (driving: body force, held flow rate) is judged against its own reference and its part of the
    protocol (``campaign_report.view``; the body force's statistics in ``reference_json``, another
    view's beside it, :func:`reference_json_of`). ``key`` (``key.json``): the IC names are joined to
    the finished results (unblinding) and the ensembles compared (``campaign_report.comparisons``:
    ``pairs`` of IC labels, default each GAN ensemble against every other of its case). ``figure``:
    the campaign figure's PNG per view (``campaign_report.plot_onsets``; blind: group labels; another
    view's with its driving in the name).
    """
    report = report_module()
    protocol = report.read_protocol(campaign)
    plan = read_plan(campaign)
    refuse_record_problems(campaign, [r for r in plan if r["kind"] in ("ic", "reference")
                                      and is_done(r, progress(campaign, r))], protocol["dt"])
    drivings = sorted({report.driving_of(r) for r in plan if r["kind"] == "ic"}, key=lambda d: d != "force")
    registered: dict[str, int] = {}
    case: dict[str, dict[str, Any]] = {}  # group -> its runs' spec (one case a group)
    per_run: dict[str, Any] = {}
    judged_all: dict[str, Any] = {}
    ensembles: dict[str, Any] = {}
    views: dict[str, Any] = {}
    label = report.ic_labels(key) if key is not None else None
    for driving in drivings or ["force"]:
        ref_run = next((r for r in plan if r["kind"] == "reference" and report.driving_of(r) == driving), None)
        if ref_run is None:
            raise SystemExit(f"{campaign / 'plan.json'} has IC runs driven by {driving!r} but no reference of it")
        stats = view_stats(reference_json, ref_run)
        pv = report.view(protocol, driving)
        k = stats["k"]
        ref_series, ref_prof = read_chunks(campaign, ref_run["id"])
        ref = report.reference(pv, ref_run, ref_series)
        horizon, ms = pv["horizon"], pv["min_steady"]
        runs_of: dict[str, list[tuple[Any, Any, float]]] = {}  # group -> (member, (t, step), CPU s per time)
        profiles_of: dict[str, list[dict[str, np.ndarray]]] = {}
        mine: dict[str, int] = {}
        for run in plan:
            if run["kind"] != "ic" or report.driving_of(run) != driving:
                continue
            g = run["group"]
            mine[g] = mine.get(g, 0) + 1
            case[g] = run["spec"]
            prog = progress(campaign, run)
            if not is_done(run, prog):
                continue
            series, prof = read_chunks(campaign, run["id"]) if prog["chunks"] else ({}, {})
            if prog.get("failed"):  # blew up: censored, outside the band from its last record on
                series = failed_record(series, ref_series, horizon)
            member = (series["t"], report.signals(series, pv["signals"], report.force_of(run, series)))
            cpu_per_time = prog["cpu_s"] / prog["t"] if prog["t"] > 0 else 0.0  # a failure at t = 0: a bound of 0
            runs_of.setdefault(g, []).append((member, (series["t"], series["step"]), cpu_per_time))
            profiles_of.setdefault(g, []).append(prof)
            r = ref.onset([member], k=k["1"], horizon=horizon, min_steady=ms)
            per_run[run["id"]] = {"group": g, "seed": run["ic"].get("seed"), "censored": r.censored,
                                  "onset_time": None if r.censored else r.onset_time, "reason": r.reason,
                                  "steps_by_fftw_rigor": steps_by_rigor(prog)}
            if prog.get("failed"):
                per_run[run["id"]]["failed"] = prog["failed"]
        registered.update(mine)
        complete = {}
        for g, n in mine.items():
            if len(runs_of.get(g, [])) == n:
                members, steps, cpu_per_time = zip(*runs_of[g])
                complete[g] = report.Ensemble(list(members), list(steps), list(cpu_per_time))
        # every group its own streams (amendment 11): a tier's numbers stay put when later tiers complete
        judged = report.judge_groups(complete, ref, k, stats["k_boot"], pv, pv["seed"] + 3)
        mine_ens = report.ensemble_onsets(judged, ref, k, pv)
        for g, e in sorted(mine_ens.items()):  # is the steady part the reference's state? (amendment 7)
            if not e["censored"] and all("t" in p for p in [ref_prof, *profiles_of[g]]):
                e["profiles_after_onset"] = report.profile_check(ref_prof, ref_run["discard"], profiles_of[g],
                                                                 e["onset_time"], horizon,
                                                                 report.group_rng(pv["seed"] + 5, g))
        ensembles.update(mine_ens)
        judged_all.update(judged)
        views[driving] = {"reference": ref_run["id"], "k": k, "horizon": horizon, "signals": pv["signals"],
                          "groups": sorted(mine)}
        if figure is not None and judged:
            lab = label if label is not None else {g: g for g in mine}
            colours = ({lab[g]: report.IC_COLOURS[n] for g, n in report.key_names(key).items()
                        if n in report.IC_COLOURS} if key is not None else None)
            path = figure if driving == "force" else figure.with_name(f"{figure.stem}_{driving}{figure.suffix}")
            legend = report.plot_onsets(path, {lab[g]: j for g, j in judged.items()}, ref, k, colours,
                                        panels=report.FIGURE_SIGNALS[driving])
            views[driving]["figure"] = {"path": path.name, "legend": legend}
    finished = {g: sum(1 for v in per_run.values() if v["group"] == g) for g in registered}
    not_judged = {g: f"{finished[g]} of {registered[g]} runs finished" for g in registered if g not in judged_all}
    rigor = {g: Counter() for g in registered}  # amendment 10: CPU-seconds per step differ by rigor
    for v in per_run.values():
        rigor[v["group"]].update(v.get("steps_by_fftw_rigor", {}))
    out = {"groups": {g: {"registered": n, "finished": finished[g], "steps_by_fftw_rigor": dict(rigor[g])}
                      for g, n in sorted(registered.items())},
           "ensembles": ensembles, "per_run": per_run, "k": views.get("force", {}).get("k"), "views": views,
           "reproduce": "python benchmarks/transient.py campaign analyse [--unblind] (from the committed chunks)"}
    if key is not None:
        named = report.key_names(key)
        out["named"] = report.join(ensembles, key) if ensembles else {}
        out["per_run_named"] = {rid: dict(v, ic=named.get(v["group"])) for rid, v in per_run.items()}
        out["comparisons"] = report.comparisons(judged_all, key, case, not_judged, pairs)
        # amendment 10: the share of steps planned with patient, beside every CPU-second comparison
        out["comparisons"]["patient_share"] = {label[g]: rigor[g]["patient"] / max(1, rigor[g].total())
                                               for g in judged_all}
        if PLANNING.exists():
            out["comparisons"]["patient_speedup"] = json.loads(PLANNING.read_text())["median_ratio"]
        rule = protocol.get("resample_rule", "exit")
        # amendments 13 and 21: the registered verdicts' power per view, stated beside them
        studies = {d: verdict_study(rule, d) for d in views}
        out["comparisons"]["verdict_power"] = {
            d: report.verdict_power(json.loads(path.read_text()), rule, str(protocol["level"]))
            for d, path in studies.items() if path.exists()}
    if "force" in views and "figure" in views["force"]:
        out["figure"] = views["force"]["figure"]
    return out
