"""Validate a Dedalus channel run against Lee & Moser (2015) Re_tau = 180; optionally export data.

Reads a run directory of examples/dedalus_channel.py, finds the start of the statistically
steady state (cfdseed.transient.steady_start: 2 h/u_tau windows whose mean wall shear is
within 5 % of the force balance and whose bulk velocity is within 1 % of the mean over all later
times, for every later window), averages the plane-averaged profiles over the steady part, folds
the halves, and compares in wall units (u_tau = 1 from the imposed force):

- U+ relative L2 error over the half channel (reference points, trapezoid rule), limit 3 %;
- peak u'+ relative error, limit 10 %.

Writes ``<prefix>.json`` (numbers, criterion, times, command) and ``<prefix>.png``. With
``--dataset DIR`` it also merges the steady-state slices into DIR/train.h5 and DIR/val.h5 (the
last ``--val-fraction`` of the time span, after a ``--gap``), and with ``--sample PATH`` writes a
small sample of the training slices.

    .venv-dedalus/bin/python examples/validate_dedalus.py runs/re180 \\
        --prefix examples/results/dedalus_re180 --dataset data/dedalus_re180
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path

import numpy as np

from cfdseed.reference import compare_profiles, load_reference
from cfdseed.solvers.runner import build_dataset, mean_profiles, read_segments, read_timeseries
from cfdseed.transient import steady_start

LIMIT_U = 0.03
LIMIT_PEAK = 0.10


def compare(run: Path, t_start: float | None, fallback: float | None = None,
            ref_name: str = "lee-moser-180") -> dict:
    series = read_timeseries(run)
    spec = read_segments(run)[0]["note"]["spec"]
    ts = steady_start(series)
    by_criterion = t_start is None
    if t_start is not None:
        ts = t_start
    elif not math.isfinite(ts) and fallback is not None:
        ts, by_criterion = fallback, False
    if not math.isfinite(ts):
        raise SystemExit(f"{run}: no statistically steady state yet (t_end = {series['t'][-1]:.2f})")
    stats = mean_profiles(run, ts)
    y, full = stats["y"], stats["full"]
    ly, re_tau = float(spec["lengths"][1]), float(spec["re_tau"])
    cmp = compare_profiles(y, full, ly, (ly / 2) / re_tau, u_tau=1.0, reference=ref_name)
    steady = series["t"] >= ts
    res = dict(
        run=str(run), reference=cmp["reference"], reference_re_tau=cmp["reference_re_tau"], re_tau=re_tau,
        criterion=steady_start.__doc__.split("\n\n")[1].replace("\n", " ").strip(),
        t_end=float(series["t"][-1]), t_steady_start=ts, steady_by_criterion=by_criterion,
        bulk_drift_per_10=float(np.polyfit(series["t"][series["t"] >= ts], series["bulk"][series["t"] >= ts], 1)[0] * 10), averaging=dict(t0=stats["t0"], t1=stats["t1"], samples=stats["n"]),
        steady_means=dict(
            bulk=float(series["bulk"][steady].mean()),
            tau_lower=float(series["tau_lower"][steady].mean()),
            tau_upper=float(series["tau_upper"][steady].mean()),
            centre_u=float(series["centre_u"][steady].mean()),
        ),
        u_plus_rel_l2=cmp["u_plus_rel_l2"], u_plus_limit=LIMIT_U, u_plus_pass=cmp["u_plus_rel_l2"] <= LIMIT_U,
        centreline_u_plus=cmp["centreline_u_plus"], reference_centreline_u_plus=cmp["reference_centreline_u_plus"],
        peaks=cmp["peaks"], reference_peaks=cmp["reference_peaks"],
        peak_u_rel_err=cmp["peak_u_rel_err"], peak_u_limit=LIMIT_PEAK,
        min_uv_plus=cmp["min_uv_plus"], reference_min_uv_plus=cmp["reference_min_uv_plus"],
    )
    res["peak_u_pass"] = res["peak_u_rel_err"] <= LIMIT_PEAK
    res["passed"] = bool(res["u_plus_pass"] and res["peak_u_pass"])
    res["_plot"] = dict(cmp["curves"], ref=load_reference(ref_name), series=series, ts=ts)
    return res


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = res["_plot"]
    ref = p["ref"]
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    ax[0].semilogx(ref.yplus[1:], ref.profiles["U+"][1:], "k-", label="Lee & Moser 180")
    ax[0].semilogx(p["yp_ref"][1:], p["U"][1:], "r--", label="Dedalus")
    ax[0].set(xlabel="y+", ylabel="U+", title=f"U+ (rel. L2 {res['u_plus_rel_l2']:.2%})")
    ax[0].legend()
    for key, c in (("u'+", "C0"), ("v'+", "C1"), ("w'+", "C2")):
        ax[1].plot(ref.yplus, ref.profiles[key], "-", color=c, label=f"LM {key}")
        ax[1].plot(p["fine"], p["rms"][key], "--", color=c, label=f"Dedalus {key}")
    ax[1].plot(ref.yplus, ref.profiles["uv+"], "k-", label="LM uv+")
    ax[1].plot(p["fine"], p["uv"], "k--", label="Dedalus uv+")
    ax[1].set(xlabel="y+", title=f"rms, peak u'+ err {res['peak_u_rel_err']:.1%}", xlim=(0, 180))
    ax[1].legend(fontsize=7, ncol=2)
    s = p["series"]
    ax[2].plot(s["t"], s["bulk"] / s["bulk"][s["t"] >= p["ts"]].mean(), label="U_b / steady mean")
    ax[2].plot(s["t"], s["tau_lower"], lw=0.7, label="tau_w lower")
    ax[2].plot(s["t"], s["tau_upper"], lw=0.7, label="tau_w upper")
    how = "criterion" if res["steady_by_criterion"] else "chosen: criterion not met"
    ax[2].axvline(p["ts"], color="k", ls=":", label=f"averaging from ({how})")
    ax[2].set(xlabel="t u_tau/h", ylim=(0, 2), title=f"U_b drift {res['bulk_drift_per_10']:+.3f} per 10 h/u_tau")
    ax[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--prefix", type=Path, required=True, help="output prefix of .json/.png")
    ap.add_argument("--t-start", type=float, default=None, help="override the steady-state start")
    ap.add_argument("--fallback-t-start", type=float, default=None,
                    help="start to use (recorded as not by the criterion) if the criterion finds none")
    ap.add_argument("--dataset", type=Path, default=None, help="write train.h5/val.h5 here")
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--gap", type=float, default=0.5, help="h/u_tau dropped between train and val")
    ap.add_argument("--sample", type=Path, default=None, help="also write a small training sample here")
    ap.add_argument("--sample-size", type=int, default=48)
    args = ap.parse_args(argv)
    res = compare(args.run, args.t_start, args.fallback_t_start)
    args.prefix.parent.mkdir(parents=True, exist_ok=True)
    plot(res, args.prefix.with_suffix(".png"))
    del res["_plot"]
    res["command"] = " ".join(shlex.quote(a) for a in [sys.executable.split("/")[-1], *sys.argv])
    if args.dataset is not None:
        res["dataset"] = build_dataset(args.run, args.dataset, t_start=res["t_steady_start"],
                                       val_fraction=args.val_fraction, gap=args.gap,
                                       extra_attrs=dict(
                                           validation=json.dumps({k: res[k] for k in ("u_plus_rel_l2", "peak_u_rel_err")}),
                                           steady_criterion=res["criterion"],
                                           run_segments=json.dumps([
                                               dict(start_time=s["start_time"], argv=s["note"].get("argv"))
                                               for s in read_segments(args.run)]),
                                       ))
        if args.sample is not None:
            from cfdseed.slices import DatasetWriter, open_dataset

            with open_dataset(args.dataset / "train.h5") as ds:
                idx = np.linspace(0, len(ds) - 1, min(args.sample_size, len(ds))).round().astype(int)
                attrs = {k: v for k, v in ds.attrs.items() if k not in ("format", "format_version")}
                attrs["sample_of"] = str(args.dataset / "train.h5")
                args.sample.parent.mkdir(parents=True, exist_ok=True)
                with DatasetWriter(args.sample, ds.y, ds.z, attrs=attrs) as w:
                    w.append(ds.read(np.unique(idx)), t=ds.t[np.unique(idx)], x=ds.x[np.unique(idx)])
    args.prefix.with_suffix(".json").write_text(json.dumps(res, indent=1, default=float))
    print(json.dumps({k: res[k] for k in ("t_steady_start", "steady_by_criterion", "t_end", "u_plus_rel_l2", "peak_u_rel_err",
                                          "centreline_u_plus", "passed")}, default=float))
    return 0 if res["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
