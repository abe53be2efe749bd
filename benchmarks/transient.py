"""Transient benchmark: how soon a real solver (Dedalus 3) reaches statistically steady turbulence
from each initial condition (IC).

Every IC runs the same case: Re_tau = 180, 32 x 64 x 32 modes in pi x 2 x pi/2, SBDF2, CFL safety
0.15, constant streamwise force (the validated set-up of examples/validate_dedalus.py), bulk
velocity 15.7 u_tau at t = 0 for the ICs that set one. ICs: ``plug``, ``trig`` (sine/cosine
rolls), ``streaks`` (perturbU-like), ``gan`` (the packaged default model) and ``snapshot`` (a
turbulent field of the same simulation at a later time than any training slice: the physical
limit). Every run goes to the same horizon (``cap``, 16 h/u_tau) and is judged afterwards by
:func:`cfdseed.transient.detect_steady` with the MSER-10 rule on three signals: the wall shear
stress averaged over both walls, the bulk velocity and the centre-line velocity; the run is steady
from the latest of the three onsets (:func:`cfdseed.transient.combine`). A signal that still drifts
over the first half of the run makes the run *censored*: reported as "not steady within t_end",
never as a number. The snapshot IC is the control: real turbulence must come out steady at once.
The band rule (2 h/u_tau running mean of the wall shear within 5 % of the force balance and
staying there 4 h/u_tau) is reported beside it: it was the first choice, and the control showed
it measures the wall-shear noise of this minimal box rather than the transient (see
benchmarks/README.md). Steps, simulated time, wall and CPU seconds (wall x ranks, IC generation
included) are measured to the onset.

Commands (Dedalus environment; ``MPI="/usr/bin/mpiexec -n 2 --oversubscribe"``, ``PY=.venv-dedalus/bin/python``,
``OMP_NUM_THREADS=1`` and, as root, ``OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1``)::

    $MPI $PY benchmarks/transient.py snapshot --checkpoint RUN/checkpoints/itNNN   # -> runs/transient/turbulent.h5
    $MPI $PY benchmarks/transient.py run --ic gan [--seed 0] [--cap 12]          # one IC; resumable
    $PY benchmarks/transient.py report                                           # table + figure

``run`` continues a killed run from its newest checkpoint (same rank count) and upserts one record
per (case, IC, seed) into ``benchmarks/results/transient.json``; ``report`` prints the reductions
(GAN vs trig, plug, streaks; GAN vs snapshot) and draws ``benchmarks/results/transient.png`` from
the JSON alone. ``--smoke`` runs a tiny case in seconds (CI plumbing test), written elsewhere.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "transient.json"
FIGURE = ROOT / "benchmarks" / "results" / "transient.png"
RUNS = ROOT / "runs" / "transient"  # ignored by git: solver outputs and checkpoints
BULK = 15.7  # u_tau: Lee & Moser Re_tau = 180 bulk velocity, the same start for every IC that sets one
ICS = ("plug", "trig", "streaks", "gan", "snapshot")
GAN_BASELINES = ("trig", "plug", "streaks")  # reductions reported against these
TARGETS = {"trig": 0.50, "plug": 0.80}  # required reductions of the GAN's time to steady state
SNAPSHOT_FACTOR = 1.5  # GAN within this factor of the snapshot
SIGNALS = ("tau", "bulk", "centre_u")  # judged by the detector; "tau": both walls' mean

CASES: dict[str, dict[str, Any]] = {
    "re180": dict(
        spec=dict(shape=(32, 64, 32), lengths=(math.pi, 2.0, math.pi / 2), re_tau=180.0, cfl_safety=0.15,
                  max_step=0.01),
        detector=dict(method="mser", batch=10), signals=SIGNALS,
        band=dict(method="band", target=1.0, band=0.05, window=2.0, min_steady=4.0),
        cap=16.0, series_every=20, checkpoint_every=1000,
    ),
    "smoke": dict(  # plumbing only: a few hundred steps on 8 x 16 x 8
        spec=dict(shape=(8, 16, 8), lengths=(math.pi, 2.0, math.pi / 2), re_tau=180.0, cfl_safety=0.2,
                  max_step=1e-3, initial_step=1e-3),
        detector=dict(method="mser", batch=1), signals=SIGNALS,
        band=dict(method="band", target=1.0, band=0.05, window=0.004, min_steady=0.004),
        cap=0.03, series_every=2, checkpoint_every=10,
    ),
}

log = logging.getLogger("transient")


# -- pure helpers (tested without Dedalus) ------------------------------------------------------
def ic_source(ic: str, snapshot: Path) -> tuple[str, dict[str, Any]]:
    """init_field source name and options of an IC."""
    if ic == "plug":
        return "plug", {"bulk": BULK}
    if ic == "trig":
        return "trig", {"bulk": BULK}
    if ic == "streaks":
        return "streaks", {"bulk": BULK, "re_tau": 180, "noise": 0.05}
    if ic == "gan":
        return "gan", {"bulk": BULK}
    if ic == "snapshot":
        return "snapshot", {"path": str(snapshot)}
    raise ValueError(f"unknown IC {ic!r}; choose from {', '.join(ICS)}")


def cumulative_wall(wall: np.ndarray) -> np.ndarray:
    """Per-segment wall clocks (reset to ~0 at every restart) -> one clock across segments."""
    wall = np.asarray(wall, dtype=np.float64)
    out = wall.copy()
    offset = 0.0
    for i in range(1, wall.size):
        if wall[i] < wall[i - 1]:
            offset += wall[i - 1]
        out[i] = wall[i] + offset
    return out


def tau_mean(series: dict[str, np.ndarray]) -> np.ndarray:
    """Wall shear stress averaged over both walls (1 at the force balance)."""
    return 0.5 * (np.asarray(series["tau_lower"]) + np.asarray(series["tau_upper"]))


def downsample(series: dict[str, np.ndarray], n: int = 400) -> dict[str, list[float]]:
    """At most ``n`` evenly spread records of t, tau (both walls), centre_u and bulk (for the figure)."""
    t = np.asarray(series["t"])
    idx = np.unique(np.linspace(0, t.size - 1, min(n, t.size)).round().astype(int)) if t.size else np.array([], int)
    tau = tau_mean(series)
    return {"t": t[idx].tolist(), "tau": tau[idx].tolist(),
            "centre_u": np.asarray(series["centre_u"])[idx].tolist(), "bulk": np.asarray(series["bulk"])[idx].tolist()}


def judgeable(t: Any, band: dict[str, Any]) -> bool:
    """Whether the series is long enough for the band rule to reach a verdict."""
    t = np.asarray(t)
    return t.size >= 2 and float(t[-1] - t[0]) > band["window"] + band.get("min_steady", band["window"])


def signal(series: dict[str, np.ndarray], name: str) -> np.ndarray:
    """One monitored signal: ``tau`` (both walls' mean) or a time-series column."""
    return tau_mean(series) if name == "tau" else np.asarray(series[name], dtype=np.float64)


def verdicts(series: dict[str, np.ndarray], case: dict[str, Any]) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(combined detector verdict, per-signal verdicts, band-rule verdict) of one run's series."""
    from cfdseed.transient import SteadyState, combine, detect_steady

    t = np.asarray(series["t"])
    if t.size < 2:
        short = SteadyState(True, None, None, float(t[-1]) if t.size else 0.0, "none", "series too short")
        return short, {}, short.to_dict()
    each = {name: detect_steady(t, signal(series, name), **case["detector"]) for name in case["signals"]}
    band = case["band"]
    if judgeable(t, band):
        b = detect_steady(t, tau_mean(series), **band).to_dict()
    else:
        b = {"censored": True, "onset_time": None, "reason": "series shorter than the band rule's window + min_steady"}
    per = {name: {"censored": r.censored, "onset_time": r.onset_time, "reason": r.reason} for name, r in each.items()}
    return combine(list(each.values())), per, {k: b[k] for k in ("censored", "onset_time", "reason")}


def summarise(series: dict[str, np.ndarray], case: dict[str, Any], ranks: int, ic_wall: float) -> dict[str, Any]:
    """Detector verdict plus steps / simulated time / wall / CPU seconds to the onset."""
    t = np.asarray(series["t"])
    res, per, band = verdicts(series, case)
    if t.size:
        wall = cumulative_wall(series["wall_s"]) + ic_wall
        step = np.asarray(series["step"], dtype=np.float64)
        ends = dict(t_end=float(t[-1]), steps_end=int(step[-1] - step[0]), wall_end_s=float(wall[-1]))
    else:
        ends = dict(t_end=0.0, steps_end=0, wall_end_s=ic_wall)
    out: dict[str, Any] = {"censored": res.censored, "reason": res.reason, "onset_time": res.onset_time, **ends,
                           "cpu_end_s": ends["wall_end_s"] * ranks, "signals": per, "band_rule": band}
    if not res.censored:
        t0 = float(res.onset_time)
        out.update(
            onset_steps=int(round(float(np.interp(t0, t, step)) - step[0])),
            onset_wall_s=float(np.interp(t0, t, wall)),
            onset_cpu_s=float(np.interp(t0, t, wall)) * ranks,
        )
    return out


def upsert(records: list[dict[str, Any]], rec: dict[str, Any]) -> list[dict[str, Any]]:
    """Replace the record with the same (case, ic, seed), else append."""
    key = (rec["case"], rec["ic"], rec["seed"])
    kept = [r for r in records if (r["case"], r["ic"], r["seed"]) != key]
    return kept + [rec]


def _time_to_steady(recs: list[dict[str, Any]], metric: str) -> tuple[float, bool]:
    """Mean over seeds of ``metric`` (onset_time / onset_steps / onset_cpu_s) and whether any seed
    was censored (then the value is a lower bound: the censored seeds count with their run length)."""
    end_key = {"onset_time": "t_end", "onset_steps": "steps_end", "onset_cpu_s": "cpu_end_s"}[metric]
    vals, censored = [], False
    for r in recs:
        if r["censored"]:
            censored = True
            vals.append(float(r[end_key]))
        else:
            vals.append(float(r[metric]))
    return float(np.mean(vals)), censored


def _reduction(t_gan: float | None, gan_censored: bool, base: dict[str, Any]) -> dict[str, Any]:
    """``1 - t_gan / T_base``: None for a censored GAN, "at least" for a censored baseline."""
    red = None if gan_censored or base["value"] <= 0 else 1.0 - t_gan / base["value"]
    return {"value": red, "at_least": bool(base["lower_bound"] and red is not None)}


def reductions(records: list[dict[str, Any]], case: str = "re180") -> dict[str, Any]:
    """Time to steady state per IC and the GAN's reductions (JSON-ready).

    Reduction vs a baseline B: ``1 - T_gan / T_B``. A censored baseline makes it a lower bound
    ("at least"); a censored GAN makes it undefined (None). GAN vs snapshot: ``T_gan / T_snapshot``
    and the lag ``T_gan - T_snapshot`` (None when either is censored; the ratio is also None when the
    snapshot is steady at once, T_snapshot = 0: then only the lag says how far the GAN is behind).
    ``gan_reduction_at_control``: the same reductions with the GAN charged ``max(T_gan, T_snapshot)``
    (real turbulence's own onset is the detector's floor: an earlier GAN onset is not resolved).
    ``gan_reduction_by_seed``: each GAN seed against the baselines' means (None for a censored seed).
    """
    by_ic: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r["case"] == case:
            by_ic.setdefault(r["ic"], []).append(r)
    out: dict[str, Any] = {"case": case, "time_to_steady": {}, "gan_reduction": {}, "gan_vs_snapshot": {},
                           "gan_reduction_at_control": {}, "gan_reduction_by_seed": {}}
    metrics = ("onset_time", "onset_steps", "onset_cpu_s")
    for ic, recs in sorted(by_ic.items()):
        out["time_to_steady"][ic] = {
            m: {"value": v, "lower_bound": c} for m in metrics for v, c in [_time_to_steady(recs, m)]
        }
        out["time_to_steady"][ic]["seeds"] = sorted(r["seed"] for r in recs)
    gan = out["time_to_steady"].get("gan")
    for r in sorted(by_ic.get("gan", []), key=lambda r: r["seed"]):
        for b in GAN_BASELINES:
            if b not in out["time_to_steady"]:
                continue
            for m in metrics:
                out["gan_reduction_by_seed"].setdefault(str(r["seed"]), {}).setdefault(b, {})[m] = _reduction(
                    r.get(m), r["censored"], out["time_to_steady"][b][m])
    for m in metrics:
        if gan is None:
            break
        g, g_cens = gan[m]["value"], gan[m]["lower_bound"]
        snap = out["time_to_steady"].get("snapshot")
        floor = None if snap is None or snap[m]["lower_bound"] else max(g, snap[m]["value"])
        for b in GAN_BASELINES:
            if b not in out["time_to_steady"]:
                continue
            for key, t_gan in (("gan_reduction", g), ("gan_reduction_at_control", floor)):
                if t_gan is None:
                    continue
                entry = _reduction(t_gan, g_cens, out["time_to_steady"][b][m])
                red = entry["value"]
                out[key].setdefault(b, {})[m] = dict(
                    entry, target=TARGETS.get(b), meets_target=None if red is None or b not in TARGETS else red >= TARGETS[b])
        if snap is not None:
            s, s_cens = snap[m]["value"], snap[m]["lower_bound"]
            ratio = None if g_cens or s_cens or s <= 0 else g / s
            out["gan_vs_snapshot"][m] = {"ratio": ratio, "lag": None if g_cens or s_cens else g - s,
                                         "target": SNAPSHOT_FACTOR,
                                         "meets_target": None if ratio is None else ratio <= SNAPSHOT_FACTOR}
    return out


def read_records(path: Path = RESULTS) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return json.loads(path.read_text())["runs"]


def write_records(records: list[dict[str, Any]], path: Path = RESULTS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "transient",
        "description": __doc__.split("\n\n")[0].replace("\n", " "),
        "reproduce": "see benchmarks/README.md (transient) and the module docstring of benchmarks/transient.py",
        "runs": sorted(records, key=lambda r: (r["case"], ICS.index(r["ic"]) if r["ic"] in ICS else 99, r["seed"])),
    }
    cases = sorted({r["case"] for r in records})
    doc["summary"] = {c: reductions(records, c) for c in cases}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    tmp.replace(path)


# -- solver side (MPI, Dedalus) ---------------------------------------------------------------
def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _spec(case: str) -> Any:
    from cfdseed.solvers.dedalus import ChannelSpec

    return ChannelSpec(**CASES[case]["spec"])


def cmd_snapshot(args: argparse.Namespace) -> int:
    """Write a solver checkpoint as a 3-D field file (the ``snapshot`` IC)."""
    from mpi4py import MPI

    from cfdseed.fields import write_field
    from cfdseed.solvers.dedalus import DedalusChannel
    from cfdseed.transport import gather

    comm = MPI.COMM_WORLD
    spec = _spec(args.case)
    ch = DedalusChannel(spec, comm)
    meta = ch.load_checkpoint(args.checkpoint)
    field = gather(comm, ch.grid, ch._grid_velocity(), axes="xzy")
    if comm.rank == 0:
        out = Path(args.out)
        write_field(out, field, ch.grid, attrs=dict(
            source=f"dedalus checkpoint {args.checkpoint}", t=float(meta["sim_time"]), re_tau=spec.re_tau,
            u_tau=1.0, nu=spec.nu))
        print(f"wrote {out} (t = {meta['sim_time']:.3f} h/u_tau)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run (or continue) one IC to the cap, then judge it."""
    from mpi4py import MPI

    import dedalus

    from cfdseed.solvers.dedalus import DedalusChannel
    from cfdseed.solvers.runner import RunSettings, drive, read_segments, read_timeseries

    comm = MPI.COMM_WORLD
    case = CASES[args.case]
    cap = args.cap if args.cap is not None else case["cap"]
    spec = _spec(args.case)
    runs = Path(args.runs)
    out = runs / args.case / f"{args.ic}-s{args.seed}"
    snapshot = Path(args.snapshot) if args.snapshot else runs / f"turbulent-{args.case}.h5"
    source, options = ic_source(args.ic, snapshot)
    if args.case == "smoke" and source == "gan":
        options["calibrate"] = None  # 8 x 16 x 8 resolves no turbulence to calibrate: plumbing only
    if args.ic == "snapshot" and not snapshot.exists():
        raise SystemExit(f"{snapshot} missing: write it first with `transient.py snapshot --checkpoint ...`")
    ch = DedalusChannel(spec, comm)
    restart = ch.latest_checkpoint(out / "checkpoints") is not None
    ic_wall = [0.0]

    def seed_fn() -> None:
        t0 = time.perf_counter()
        report = ch.seed(source, options=options, seed=args.seed, units="source")  # as its committed results
        ic_wall[0] = time.perf_counter() - t0
        if comm.rank == 0:
            log.info("seeded %s in %.1f s:\n%s", args.ic, ic_wall[0], report)

    if comm.rank == 0 and restart:
        ic_wall[0] = float(read_segments(out)[0].get("note", {}).get("ic_wall_s", 0.0))
    t_start = 0.0
    if restart:
        t_start = float(json.loads(sorted((out / "checkpoints").glob("it*/meta.json"))[-1].read_text())["sim_time"])
    status = "ok"
    if t_start < cap - 1e-9:  # every IC runs to the same horizon; a finished run is only re-summarised
        settings = RunSettings(duration=cap - t_start, series_every=case["series_every"],
                               checkpoint_every=case["checkpoint_every"], source=f"dedalus:{args.ic}")
        note = dict(argv=sys.argv, ic=args.ic, source=source, options=options, seed=args.seed, case=args.case)
        try:
            summary = drive(ch, out, settings, restart=restart, seed_fn=seed_fn, note=note)
        except FloatingPointError as exc:  # raised on every rank (diagnostics are global)
            status = f"blew up: {exc}"
            summary = {"stopped": "blew up"}
        if comm.rank == 0 and not restart:
            segs = read_segments(out)
            segs[0]["note"]["ic_wall_s"] = ic_wall[0]
            (out / "segments.json").write_text(json.dumps(segs, indent=1) + "\n")
        if comm.rank == 0:
            log.info("segment ended: %s", summary)
    if comm.rank == 0:
        series = read_timeseries(out)
        result = summarise(series, case, comm.size, ic_wall[0])
        if status != "ok":
            result.update(censored=True, reason=status, onset_time=None)
        rec = dict(
            case=args.case, ic=args.ic, seed=args.seed, source=source, options=options, cap=cap,
            detector=dict(case["detector"], signals=list(case["signals"])), band=case["band"],
            spec={k: list(v) if isinstance(v, tuple) else v for k, v in case["spec"].items()},
            ranks=comm.size, ic_wall_s=ic_wall[0], **result, series=downsample(series),
            solver=f"dedalus {dedalus.__version__} SBDF2", commit=_commit(),
            date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), host=platform.node(),
            command=f"mpiexec -n {comm.size} python benchmarks/transient.py run --ic {args.ic} --seed {args.seed} "
                    f"--case {args.case} --cap {cap}",
        )
        results = Path(args.results)
        write_records(upsert(read_records(results), rec), results)
        verdict = "censored: " + result["reason"] if result["censored"] else f"steady from t = {result['onset_time']:.2f}"
        print(f"{args.ic} seed {args.seed}: {verdict}; results in {results}")
    return 0


# -- report (any environment) -------------------------------------------------------------------
def _fmt(entry: dict[str, Any] | None, pct: bool = True) -> str:
    if entry is None or entry.get("value", entry.get("ratio")) is None:
        return "n/a"
    v = entry.get("value", entry.get("ratio"))
    s = f"{100 * v:.0f} %" if pct else f"{v:.2f}x"
    return ("at least " if entry.get("at_least") else "") + s


def cmd_report(args: argparse.Namespace) -> int:
    """Print the table and the reductions; draw the figure from the JSON."""
    results = Path(args.results)
    records = [r for r in read_records(results) if r["case"] == args.case]
    if not records:
        print(f"no {args.case} runs in {results}")
        return 1
    red = reductions(records, args.case)
    print(f"transient benchmark, case {args.case} ({results})")
    print(f"{'IC':9s} {'seed':>4s} {'steady from t':>14s} {'steps':>8s} {'CPU s':>8s}  "
          f"{'onsets ' + '/'.join(SIGNALS):>28s}  {'band rule':>9s}  verdict")
    for r in sorted(records, key=lambda r: (ICS.index(r["ic"]), r["seed"])):
        sig = "/".join("-" if v["onset_time"] is None else f"{v['onset_time']:.1f}" for v in r["signals"].values())
        band = "-" if r["band_rule"]["onset_time"] is None else f"{r['band_rule']['onset_time']:.2f}"
        if r["censored"]:
            print(f"{r['ic']:9s} {r['seed']:4d} {'> ' + format(r['t_end'], '.2f'):>14s} {'> ' + str(r['steps_end']):>8s} "
                  f"{'> ' + format(r['cpu_end_s'], '.0f'):>8s}  {sig:>28s}  {band:>9s}  censored: {r['reason']}")
        else:
            print(f"{r['ic']:9s} {r['seed']:4d} {r['onset_time']:14.2f} {r['onset_steps']:8d} {r['onset_cpu_s']:8.0f}  "
                  f"{sig:>28s}  {band:>9s}  steady")
    censored_gan = [str(r["seed"]) for r in records if r["ic"] == "gan" and r["censored"]]
    if censored_gan:
        print(f"GAN censored in seed(s) {', '.join(censored_gan)}: its mean time to steady state is a lower "
              "bound, so no reduction is claimed from the mean (n/a below); per seed:")
    for seed, by_base in red["gan_reduction_by_seed"].items():
        print(f"  GAN seed {seed}: " + "; ".join(
            f"vs {b} time {_fmt(v['onset_time'])}, steps {_fmt(v['onset_steps'])}" for b, v in by_base.items()))
    for b, by_metric in red["gan_reduction"].items():
        tgt = f" (target {100 * TARGETS[b]:.0f} %)" if b in TARGETS else ""
        print(f"GAN vs {b:8s}: time {_fmt(by_metric['onset_time'])}, steps {_fmt(by_metric['onset_steps'])}, "
              f"CPU {_fmt(by_metric['onset_cpu_s'])}{tgt}")
    for b, by_metric in red["gan_reduction_at_control"].items():
        print(f"  at the control's floor, GAN charged max(T_gan, T_snapshot), vs {b:8s}: time "
              f"{_fmt(by_metric['onset_time'])}, steps {_fmt(by_metric['onset_steps'])}, CPU {_fmt(by_metric['onset_cpu_s'])}")
    if red["gan_vs_snapshot"]:
        g = red["gan_vs_snapshot"]
        print(f"GAN / snapshot: time {_fmt(g['onset_time'], False)}, steps {_fmt(g['onset_steps'], False)}, "
              f"CPU {_fmt(g['onset_cpu_s'], False)} (target <= {SNAPSHOT_FACTOR}x)")
        lag = g["onset_time"].get("lag")
        if lag is not None:
            print(f"GAN - snapshot: {lag:.2f} h/u_tau, {g['onset_steps']['lag']:.0f} steps, "
                  f"{g['onset_cpu_s']['lag']:.0f} CPU s")
    if not args.no_figure:
        print(f"figure: {plot(records, Path(args.figure))}")
    return 0


def plot(records: list[dict[str, Any]], path: Path) -> Path:
    """Centre-line velocity, wall shear and bulk velocity vs time, one curve per IC, onsets marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 9), constrained_layout=True)
    FigureCanvasAgg(fig)
    ax_u, ax_t, ax_b = fig.subplots(3, 1, sharex=True)
    colours = {"plug": "tab:gray", "trig": "tab:blue", "streaks": "tab:green", "gan": "tab:red", "snapshot": "k"}
    for r in sorted(records, key=lambda r: (ICS.index(r["ic"]), r["seed"])):
        s = r["series"]
        c = colours.get(r["ic"], "tab:purple")
        ls = ("-", ":", "-.", "--")[r["seed"] % 4]  # seeds of one IC share its colour
        label = f"{r['ic']} (seed {r['seed']})" + (
            f": not steady within {r['t_end']:.0f}" if r["censored"] else f": steady from {r['onset_time']:.1f}")
        ax_u.plot(s["t"], s["centre_u"], color=c, ls=ls, lw=1.2, label=label)
        ax_t.plot(s["t"], s["tau"], color=c, ls=ls, lw=1.0)
        ax_b.plot(s["t"], s["bulk"], color=c, ls=ls, lw=1.2)
        if not r["censored"]:
            for ax in (ax_u, ax_t, ax_b):
                ax.axvline(r["onset_time"], color=c, ls="--", lw=0.9)
    band = records[0].get("band")
    if band:
        ax_t.axhspan(band["target"] * (1 - band["band"]), band["target"] * (1 + band["band"]), color="0.85", zorder=0,
                     label=f"band rule: force balance +-{100 * band['band']:.0f} %")
        ax_t.legend(fontsize=8, loc="upper right")
    ax_u.set_ylabel("centre-line u / u_tau")
    ax_t.set_ylabel("wall shear (both walls) / rho u_tau^2")
    ax_b.set_ylabel("bulk velocity / u_tau")
    ax_b.set_xlabel("t u_tau / h")
    ax_u.legend(fontsize=8)
    for ax in (ax_u, ax_t, ax_b):
        ax.grid(alpha=0.3)
    sig = "+".join(records[0]["detector"].get("signals", ["tau"]))
    fig.suptitle(f"Start-up transient, Dedalus channel {records[0]['case']} "
                 f"(dashed: onset, MSER on {sig})")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _campaign(argv: list[str]) -> int:
    """``transient.py campaign ...``: the long, resumable runs (see benchmarks/campaign.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("transient_campaign", Path(__file__).with_name("campaign.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("transient_campaign", mod)
    spec.loader.exec_module(mod)
    return mod.main(argv, commit=_commit())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["campaign"]:
        return _campaign(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("snapshot", "run", "report"):
        sp = sub.add_parser(name)
        sp.add_argument("--case", choices=sorted(CASES), default="re180")
        sp.add_argument("--smoke", action="store_const", dest="case", const="smoke", help="same as --case smoke")
        sp.add_argument("--results", default=str(RESULTS), help="results JSON (default %(default)s)")
        sp.add_argument("--runs", default=str(RUNS), help="run directories (default %(default)s)")
        if name == "snapshot":
            sp.add_argument("--checkpoint", required=True, help="a DedalusChannel checkpoint directory (same rank count)")
            sp.add_argument("--out", default=None, help="field file (default RUNS/turbulent-CASE.h5)")
        if name == "run":
            sp.add_argument("--ic", required=True, choices=ICS)
            sp.add_argument("--seed", type=int, default=0)
            sp.add_argument("--cap", type=float, default=None, help="simulated-time cap (h/u_tau; default per case)")
            sp.add_argument("--snapshot", default=None, help="field file of the snapshot IC (default RUNS/turbulent-CASE.h5)")
        if name == "report":
            sp.add_argument("--figure", default=str(FIGURE))
            sp.add_argument("--no-figure", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.cmd == "snapshot":
        args.out = args.out or str(Path(args.runs) / f"turbulent-{args.case}.h5")
        return cmd_snapshot(args)
    return {"run": cmd_run, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
