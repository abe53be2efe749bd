"""Does a start offset in U_b explain an ensemble's late bulk velocity? (issue 14, descriptive)

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/campaign_relaxation.py

Linear response: for the body-force case's slow bulk-velocity mode, taken as a stationary linear
Gaussian process, an ensemble started d_0 above the reference mean is expected at d_0 ρ(t) above it
at time t, ρ the reference's U_b autocorrelation (its stationary part). Per unblinded ensemble and
window of time: the observed ensemble-mean excess over the reference mean, that prediction from the
ensemble's own start, the noise of such an ensemble's window mean (the standard deviation of the
reference's window means, windows starting every 1 h/u_τ, over √N), the standard error of the
reference mean itself (batch means of 20 h/u_τ, over 2 T; shared by every ensemble) and z = (observed −
predicted) / the two combined. Added after the confirmatory tier was unblinded; it decides nothing. Blind-safe: it reads only
the ensembles ``campaign analyse --unblind`` has judged (``results/campaign_onsets_named.json``).

Writes ``benchmarks/results/campaign_relaxation.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from campaign_analysis import reference_run
from campaign_plan import CAMPAIGN, ONSETS_NAMED, ROOT, read_plan
from campaign_records import read_chunks

#: Batch length (h/u_tau) of the reference mean's standard error: over twice U_b's integral time (8.5).
BATCH = 20.0
#: Windows of simulated time (h/u_tau) the excess is averaged over.
WINDOWS = ((0.0, 1.0), (1.0, 4.0), (4.0, 8.0), (8.0, 16.0), (16.0, 24.0), (24.0, 32.0), (16.0, 32.0))


def autocorrelation(t: np.ndarray, x: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """The autocorrelation of the evenly sampled ``x(t)`` at ``lags`` (its own units of t)."""
    dt = float(np.median(np.diff(t)))
    d = x - x.mean()
    steps = np.rint(lags / dt).astype(int)
    return np.array([np.mean(d[:d.size - s] * d[s:]) for s in steps]) / d.var()


def window_noise(t: np.ndarray, x: np.ndarray, a: float, b: float, every: float = 1.0) -> float:
    """Standard deviation of the means of ``x`` over windows of length ``b - a`` starting every ``every``."""
    starts = np.arange(t[0], t[-1] - (b - a), every)
    return float(np.std([x[(t >= s) & (t < s + b - a)].mean() for s in starts], ddof=1))


def relaxation(campaign: Path = CAMPAIGN, onsets: Path = ONSETS_NAMED) -> dict[str, Any]:
    """The observed and linear-response excess of U_b per unblinded ensemble and window."""
    named = json.loads(onsets.read_text())
    ref_run, series, _ = reference_run(campaign, "ref")
    keep = series["t"] >= ref_run["discard"]
    t_ref, u_ref = series["t"][keep], series["bulk"][keep]
    mu = float(u_ref.mean())
    batches = [u_ref[(t_ref >= s) & (t_ref < s + BATCH)].mean() for s in np.arange(t_ref[0], t_ref[-1] - BATCH + 1e-9, BATCH)]
    mu_err = float(np.std(batches, ddof=1) / np.sqrt(len(batches)))
    grid = np.arange(0.0, max(b for _, b in WINDOWS) + 1e-9, 0.05)
    rho = autocorrelation(t_ref, u_ref, grid)
    runs = read_plan(campaign)
    out: dict[str, Any] = dict(
        reference=dict(mean=mu, mean_error=mu_err, batches=len(batches), span=[float(t_ref[0]), float(t_ref[-1])],
                       rho={f"{lag:g}": float(np.interp(lag, grid, rho)) for lag in (1, 2, 4, 8, 16, 24, 32)}),
        windows=[list(w) for w in WINDOWS], ensembles={})
    for name, e in sorted(named["named"].items()):
        group = e["group"]
        members = [read_chunks(campaign, r["id"])[0] for r in runs if r.get("group") == group]
        if not members or any(r.get("tier") == "flow_rate" for r in runs if r.get("group") == group):
            continue  # U_b is held in the flow-rate view
        start = float(np.mean([m["bulk"][0] for m in members])) - mu
        rows = []
        for a, b in WINDOWS:
            obs = float(np.mean([m["bulk"][(m["t"] >= a) & (m["t"] < b)].mean() for m in members])) - mu
            w = (grid >= a) & (grid < b)
            pred = start * float(rho[w].mean())
            noise = window_noise(t_ref, u_ref, a, b) / np.sqrt(len(members))
            rows.append(dict(window=[a, b], observed=obs, predicted=pred, noise=noise,
                             z=(obs - pred) / np.hypot(noise, mu_err)))
        out["ensembles"][name] = dict(group=group, members=len(members), start_offset=start, windows=rows)
    out["reproduce"] = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/campaign_relaxation.py (from the committed chunks)"
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "campaign_relaxation.json"))
    args = p.parse_args(argv)
    res = relaxation()
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(f"reference U_b {res['reference']['mean']:.4f} ± {res['reference']['mean_error']:.3f}; rho: "
          + ", ".join(f"{k}: {v:.2f}" for k, v in res["reference"]["rho"].items()))
    for name, e in res["ensembles"].items():
        print(f"{name} ({e['members']} runs), start {e['start_offset']:+.3f}:")
        for r in e["windows"]:
            a, b = r["window"]
            print(f"  t {a:4.0f}-{b:<4.0f} observed {r['observed']:+.3f}  linear response {r['predicted']:+.3f}"
                  f"  noise {r['noise']:.3f}  z {r['z']:+.1f}")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
