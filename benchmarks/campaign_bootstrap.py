"""Does the protocol's bootstrap give intervals for perfect ICs? (issue 14, a check of amendment 2)

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/campaign_bootstrap.py [--trials 40] [--resamples 200]

Control-like ensembles: 8 segments of the protocol's horizon drawn at random from the committed
reference record (perfect ICs: steady from t = 0). For each, the ensemble onset by the protocol's
rule (k_8) and the share of its bootstrap resamples (members with replacement, as
``Reference.bootstrap``) that the same rule censors; the protocol withholds an ensemble's interval
when that share exceeds 2.5 %. Writes ``benchmarks/results/campaign_bootstrap.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import campaign as cp

OUT = Path(__file__).resolve().parent / "results" / "campaign_bootstrap.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--resamples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=5)
    a = ap.parse_args()
    report = cp._report_module()
    protocol = report.read_protocol(cp.CAMPAIGN)
    run, series = cp._reference_run(cp.CAMPAIGN)
    ref = report.reference(protocol, run, series)
    k = json.loads((OUT.parent / "reference.json").read_text())["k"]["8"]
    ms = protocol["min_steady"]
    m = int(round(protocol["horizon"] / ref.dt)) + 1
    grid = ref.dt * np.arange(m)
    rng = np.random.default_rng(a.seed)
    point, shares = [], []
    for _ in range(a.trials):
        starts = rng.choice(ref.record.shape[1] - m, 8, replace=False)
        vals = np.stack([ref.record[:, s : s + m] for s in starts])  # (8, signals, m)
        point.append(bool(ref.onset_of_grid(grid, vals, k=k, min_steady=ms).censored))
        shares.append(float(np.mean([ref.onset_of_grid(grid, vals[rng.integers(8, size=8)], k=k, min_steady=ms).censored
                                     for _ in range(a.resamples)])))
    res = {"trials": a.trials, "resamples": a.resamples, "seed": a.seed, "k_8": k,
           "ensembles_censored": float(np.mean(point)), "resamples_censored_median": float(np.median(shares)),
           "share_without_interval": float(np.mean(np.asarray(shares) > 0.025)), "per_trial": shares,
           "reproduce": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/campaign_bootstrap.py"}
    OUT.write_text(json.dumps(res, indent=1) + "\n")
    print(f"{a.trials} control-like ensembles of 8: {100 * res['ensembles_censored']:.1f} % censored; resamples censored "
          f"(median) {100 * res['resamples_censored_median']:.1f} %; interval withheld for "
          f"{100 * res['share_without_interval']:.1f} % of the ensembles")


if __name__ == "__main__":
    main()
