"""Does a start offset in U_b explain an ensemble's late bulk velocity? (issue 14, descriptive)

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/campaign_relaxation.py

Linear response: for the body-force case's slow bulk-velocity mode, taken as a stationary linear
Gaussian process, an ensemble started d_0 above the reference mean is expected at d_0 ρ(t) above it
at time t, ρ the reference's U_b autocorrelation (its stationary part). Per unblinded ensemble and
window of time: the observed ensemble-mean excess over the reference mean, that prediction from the
ensemble's own start, the noise of such an ensemble's window mean (the standard deviation of the
reference's window means, windows starting every 1 h/u_τ, over √N) and z = (observed − predicted) /
(that noise combined with the standard error of the reference mean itself, which every ensemble
shares). The reference mean's error is uncertain itself: it is estimated several ways (batch means
of 20, 25, 40 and 50 h/u_τ, the span divided evenly; σ √(2 T / span) with T the integral of ρ to its
first zero), each with its z, and the range reported. Added after the confirmatory tier was
unblinded; it decides nothing. Blind-safe: it reads only the ensembles ``campaign analyse
--unblind`` has judged (``results/campaign_onsets_named.json``).

Limits: the prediction conditions on U_b alone (a start with the same U_b but another wall shear, as
a rescaled field has, may relax otherwise), and the noise is the stationary one: for the first
windows of an ensemble whose members all start at one U_b it overstates the spread, so early z are
too small; from t ≈ 2 T on (16 h/u_τ) the start is forgotten and the noise is the stationary one.

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

#: Batch lengths (h/u_tau) of the reference mean's standard error: two to six integral times (8.5).
BATCHES = (20.0, 25.0, 40.0, 50.0)
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


def mean_errors(t: np.ndarray, x: np.ndarray, lags: np.ndarray, rho: np.ndarray) -> dict[str, float]:
    """Standard errors of the mean of the evenly sampled ``x(t)``: batch means of each length in
    :data:`BATCHES` (the span divided into equal batches of about that length) and σ √(2 T / span),
    T the integral of ``rho`` (at ``lags``) to its first zero."""
    span = float(t[-1] - t[0])
    out = {}
    for length in BATCHES:
        edges = np.linspace(t[0], t[-1] + 1e-9, int(span // length) + 1)
        means = [x[(t >= a) & (t < b)].mean() for a, b in zip(edges[:-1], edges[1:])]
        out[f"batch {length:g}"] = float(np.std(means, ddof=1) / np.sqrt(len(means)))
    cut = int(np.argmax(rho <= 0)) if np.any(rho <= 0) else rho.size
    t_int = float(np.trapezoid(rho[:cut], lags[:cut]))
    out["integral time"] = float(x.std() * np.sqrt(2 * t_int / span))
    return out


def relaxation(campaign: Path = CAMPAIGN, onsets: Path = ONSETS_NAMED) -> dict[str, Any]:
    """The observed and linear-response excess of U_b per unblinded ensemble and window."""
    named = json.loads(onsets.read_text())
    ref_run, series, _ = reference_run(campaign, "ref")
    keep = series["t"] >= ref_run["discard"]
    t_ref, u_ref = series["t"][keep], series["bulk"][keep]
    mu = float(u_ref.mean())
    grid = np.arange(0.0, max(b for _, b in WINDOWS) + 1e-9, 0.05)
    rho = autocorrelation(t_ref, u_ref, grid)
    errors = mean_errors(t_ref, u_ref, grid, rho)
    runs = read_plan(campaign)
    out: dict[str, Any] = dict(
        reference=dict(mean=mu, mean_errors=errors, span=[float(t_ref[0]), float(t_ref[-1])],
                       rho={f"{lag:g}": float(np.interp(lag, grid, rho)) for lag in (1, 2, 4, 8, 16, 24, 32)}),
        windows=[list(w) for w in WINDOWS], ensembles={})
    spread = {w: window_noise(t_ref, u_ref, *w) for w in WINDOWS}  # one member's; the same for every ensemble
    for name, e in sorted(named["named"].items()):
        group = e["group"]
        mine = [r for r in runs if r.get("group") == group]
        if not mine or any(r.get("tier") == "flow_rate" for r in mine):
            continue  # U_b is held in the flow-rate view
        members = [read_chunks(campaign, r["id"])[0] for r in mine]
        start = float(np.mean([m["bulk"][0] for m in members])) - mu
        rows = []
        for a, b in WINDOWS:
            obs = float(np.mean([m["bulk"][(m["t"] >= a) & (m["t"] < b)].mean() for m in members])) - mu
            w = (grid >= a) & (grid < b)
            pred = start * float(rho[w].mean())
            noise = spread[(a, b)] / np.sqrt(len(members))
            z = {k: (obs - pred) / float(np.hypot(noise, err)) for k, err in errors.items()}
            rows.append(dict(window=[a, b], observed=obs, predicted=pred, noise=noise, z=z,
                             z_range=[min(z.values()), max(z.values())]))
        out["ensembles"][name] = dict(group=group, members=len(members), start_offset=start, windows=rows)
    out["reproduce"] = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/campaign_relaxation.py (from the committed chunks)"
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "campaign_relaxation.json"))
    args = p.parse_args(argv)
    res = relaxation()
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    errs = res["reference"]["mean_errors"]
    print(f"reference U_b {res['reference']['mean']:.4f} ± {min(errs.values()):.3f}–{max(errs.values()):.3f}"
          f" ({', '.join(f'{k}: {v:.3f}' for k, v in errs.items())}); rho: "
          + ", ".join(f"{k}: {v:.2f}" for k, v in res["reference"]["rho"].items()))
    for name, e in res["ensembles"].items():
        print(f"{name} ({e['members']} runs), start {e['start_offset']:+.3f}:")
        for r in e["windows"]:
            a, b = r["window"]
            print(f"  t {a:4.0f}-{b:<4.0f} observed {r['observed']:+.3f}  linear response {r['predicted']:+.3f}"
                  f"  noise {r['noise']:.3f}  z {r['z_range'][0]:+.1f} to {r['z_range'][1]:+.1f}")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
