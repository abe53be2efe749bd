"""Dress rehearsal of ``campaign analyse`` on the committed reference alone (issue 14).

Blind-safe: no IC run is read. Ensembles of reference segments stand in for the confirmatory tier's
four ICs, in a temporary campaign folder with the committed protocol, reference run and reference
statistics (``results/reference.json``): every member is a 32 h/u_tau stretch of the stationary
reference after its spin-up, re-based to t = 0 (time, step counter, binned profiles). Two groups
carry a transient of known size injected on the bulk velocity, ``A exp(-t / T)`` added to the real
record (only U_b; the dissipation ratio follows it through its definition), so the rehearsal checks
that the analysis, run exactly as ``campaign analyse [--unblind]`` runs it (same rule, band
constants, bootstrap count, targets, figure), finds the plain groups alike and the injected ones
late, at about the time the injected offset falls inside the band. It also measures how long the
analysis takes at the campaign's sizes.

    .venv/bin/python benchmarks/campaign_rehearsal.py      # -> results/campaign_rehearsal.{json,png}

The segments overlap (32 of them in 200 h/u_tau) and lie inside the record the band constants were
calibrated on, so the groups are not independent: a rehearsal of the machinery, not a power study
(amendment 1's power analysis is that).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from campaign_analysis import analyse  # noqa: E402
from campaign_plan import CAMPAIGN, ROOT, progress, read_plan  # noqa: E402
from campaign_records import read_chunks  # noqa: E402

#: The stand-in ICs: name -> (amplitude A of the injected U_b offset, u_tau; relaxation time T, h/u_tau).
GROUPS = {"gan": (0.0, 8.0), "control": (0.0, 8.0), "trig": (-1.0, 8.0), "plug": (-3.0, 8.0)}
RESULTS = ROOT / "benchmarks" / "results"


def segment(series: dict[str, np.ndarray], prof: dict[str, np.ndarray], start: float,
            horizon: float) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The records from the first at or after ``start`` on, ``horizon`` long, re-based to t = 0 and
    step 0 (profile bins whose centre lies inside): like an IC run's, the last record falls short of
    the horizon by up to one record interval."""
    t = np.asarray(series["t"])
    first = float(t[np.searchsorted(t, start)])
    keep = (t >= first) & (t <= first + horizon)
    s = {k: np.asarray(v)[keep] for k, v in series.items()}
    s["step"] = s["step"] - s["step"][0]
    s["t"] = s["t"] - first
    inside = (prof["t"] >= first) & (prof["t"] < first + horizon)
    p = {k: (v if k == "y" else np.asarray(v)[inside]) for k, v in prof.items()}
    p["t"] = p["t"] - first
    return s, p


Record = tuple[dict[str, np.ndarray], dict[str, np.ndarray]]


def build(dest: Path, campaign: Path = CAMPAIGN, groups: dict[str, tuple[float, float]] | None = None,
          seed: int = 20261206, record: Record | None = None) -> dict[str, Any]:
    """Write the rehearsal campaign into ``dest`` (protocol, plan, reference, the stand-in runs);
    returns its key (opaque group -> ``{"ic", "tier", "members", "injected"}``). ``record``: the
    reference's ``(series, profiles)`` when already read (``read_chunks``)."""
    groups = GROUPS if groups is None else groups
    protocol = json.loads((campaign / "protocol.json").read_text())
    ref = next(r for r in read_plan(campaign) if r["kind"] == "reference" and r["id"] == "ref")
    members, horizon = len(protocol["member_seeds"]), float(protocol["horizon"])
    series, prof = read_chunks(campaign, ref["id"]) if record is None else record
    ref_prog = progress(campaign, ref)
    cpu_per_time = ref_prog["cpu_s"] / ref_prog["t"]
    rng = np.random.default_rng(seed)
    starts = rng.permutation(np.linspace(ref["discard"], ref["horizon"] - horizon, members * len(groups)))
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "protocol.json").write_text(json.dumps(protocol))
    (dest / ref["id"]).mkdir()
    for f in sorted((campaign / ref["id"]).glob("chunk_*.npz")):
        (dest / ref["id"] / f.name).symlink_to(f.resolve())
    (dest / ref["id"] / "run.json").write_text(json.dumps(ref_prog))
    plan, key = [ref], {}
    for gi, (name, (amplitude, relax)) in enumerate(groups.items()):
        label = f"h{rng.integers(16 ** 6):06x}"  # opaque, as the campaign's
        key[label] = {"ic": name, "tier": "confirmatory", "members": members,
                      "injected": {"amplitude": amplitude, "relaxation": relax}}
        for m, member_seed in enumerate(protocol["member_seeds"]):
            start = float(starts[gi * members + m])
            s, p = segment(series, prof, start, horizon)
            s["bulk"] = s["bulk"] + amplitude * np.exp(-s["t"] / relax)
            rid = f"x{label[1:]}{m}"
            plan.append({"id": rid, "group": label, "tier": "confirmatory", "horizon": horizon, "kind": "ic",
                         "spec": ref["spec"], "ic": {"segment_start": start, "seed": member_seed}})
            (dest / rid).mkdir()
            np.savez(dest / rid / "chunk_000.npz", **{f"series/{k}": v for k, v in s.items()},
                     **{(k if k == "y" else f"profiles/{k}"): v for k, v in p.items()})
            steps = int(s["step"][-1])
            (dest / rid / "run.json").write_text(json.dumps({
                "id": rid, "t": horizon, "iteration": steps, "wall_s": cpu_per_time * horizon,
                "cpu_s": cpu_per_time * horizon,
                "chunks": [{"index": 0, "t0": 0.0, "t1": horizon, "records": int(s["t"].size), "steps": steps,
                            "fftw_rigor": "measure"}]}))
    (dest / "plan.json").write_text(json.dumps({"runs": plan}))
    (dest / "key.json").write_text(json.dumps(key))
    return key


def expected_entry(amplitude: float, relax: float, half_width: float) -> float:
    """When a noise-free ensemble mean offset ``A exp(-t / T)`` enters a band of ``half_width``."""
    return 0.0 if abs(amplitude) <= half_width else relax * math.log(abs(amplitude) / half_width)


def rehearse(reference: Path, seed: int, half_width: float, figure: Path | None = None,
             record: Record | None = None) -> dict[str, Any]:
    """One rehearsal (segments assigned to groups by ``seed``): the analysis blind, then unblinded,
    timed; per group its onset, interval and the injected truth, per comparison its verdict.
    ``record``: as :func:`build` takes it."""
    with tempfile.TemporaryDirectory() as tmp:
        camp = Path(tmp) / "campaign"
        key = build(camp, seed=seed, record=record)
        t0 = time.perf_counter()
        blind = analyse(camp, reference, None)
        t1 = time.perf_counter()
        named = analyse(camp, reference, key, figure=figure)
        t2 = time.perf_counter()
    label = {g: v["ic"] for g, v in key.items()}
    onsets = {label[g]: {k: e.get(k) for k in ("censored", "onset_time", "onset_ci95")}
              | {"expected_entry": expected_entry(key[g]["injected"]["amplitude"],
                                                  key[g]["injected"]["relaxation"], half_width)}
              for g, e in named["ensembles"].items()}
    comparisons = {name: {"reduction_steps": pair["reduction"]["steps"]["text"],
                          "difference_time": pair["difference"]["time"]["text"],
                          **({"verdict": pair["target"]["verdict"]} if "target" in pair else {})}
                   for name, pair in named["comparisons"]["pairs"].items()}
    return {"seed": seed, "seconds": {"blind": t1 - t0, "unblinded": t2 - t1},
            "blind_groups_match": sorted(blind["ensembles"]) == sorted(named["ensembles"]),
            "onsets": onsets, "comparisons": comparisons,
            "targets": {name: pair["target"]["target"] for name, pair in named["comparisons"]["pairs"].items()
                        if "target" in pair}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(RESULTS / "campaign_rehearsal.json"))
    ap.add_argument("--reference", default=str(RESULTS / "reference.json"))
    ap.add_argument("--seeds", type=int, default=10, help="rehearsals, each its own assignment of segments")
    args = ap.parse_args(argv)
    out, reference = Path(args.out), Path(args.reference)
    stats = json.loads(reference.read_text())
    protocol = json.loads((CAMPAIGN / "protocol.json").read_text())
    n = str(len(protocol["member_seeds"]))
    half_width = stats["k"][n] * stats["signals"]["bulk"]["sigma_window_mean"] / math.sqrt(int(n))
    record = read_chunks(CAMPAIGN, "ref")  # the stand-in runs' source, read once
    runs = [rehearse(reference, 20261206 + i, half_width, out.with_suffix(".png") if i == 0 else None, record)
            for i in range(args.seeds)]
    verdicts = {name: dict(Counter(r["comparisons"][name].get("verdict", "-") for r in runs))
                for name in runs[0]["comparisons"]}
    onsets = {}
    for name in runs[0]["onsets"]:
        times = [r["onsets"][name]["onset_time"] for r in runs if not r["onsets"][name]["censored"]]
        onsets[name] = {"censored": sum(r["onsets"][name]["censored"] for r in runs),
                        "onset_median": float(np.median(times)) if times else None,
                        "onset_range": [min(times), max(times)] if times else None,
                        "expected_entry": runs[0]["onsets"][name]["expected_entry"],
                        "injected": dict(zip(("amplitude", "relaxation"), GROUPS[name]))}
    result = {
        "what": "campaign analyse on ensembles of reference segments with injected U_b transients (no IC run read)",
        "command": f"python benchmarks/campaign_rehearsal.py --seeds {args.seeds}",
        "members": int(n), "horizon": protocol["horizon"], "bootstrap": protocol["bootstrap"],
        "band_half_width_bulk": half_width, "targets": runs[0]["targets"],
        "summary": {"onsets": onsets, "verdicts": verdicts,
                    "seconds_median": {k: float(np.median([r["seconds"][k] for r in runs])) for k in ("blind", "unblinded")}},
        "runs": runs, "figure": out.with_suffix(".png").name,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    for name, o in onsets.items():
        print(f"{name:8s} injected A = {o['injected']['amplitude']:+.1f}: onsets median {o['onset_median']}, "
              f"range {o['onset_range']}, censored {o['censored']} of {len(runs)}; noise-free entry {o['expected_entry']:.2f}")
    for name, v in verdicts.items():
        print(f"{name:18s} {runs[0]['targets'].get(name, '')}: {v}")
    print(f"analysis: median {result['summary']['seconds_median']['blind']:.0f} s blind, "
          f"{result['summary']['seconds_median']['unblinded']:.0f} s unblinded; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
