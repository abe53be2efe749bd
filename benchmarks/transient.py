"""Transient benchmark: how soon a real solver (Dedalus 3) reaches statistically steady turbulence
from each initial condition (IC).

Every IC runs the same case: Re_tau = 180, 32 x 64 x 32 modes in pi x 2 x pi/2, SBDF2, CFL safety
0.15, constant streamwise force (the validated set-up of examples/validate_dedalus.py), bulk
velocity 15.7 u_tau at t = 0 for the ICs that set one. ICs: ``plug``, ``trig`` (sine/cosine
rolls), ``streaks`` (perturbU-like), ``gan`` (the packaged default model) and ``snapshot`` (a
turbulent field of the same simulation at a later time than any training slice: the physical
limit). The end of the transient is judged by :func:`cfdseed.transient.detect_steady`, band rule on
the wall shear stress averaged over both walls: its 2 h/u_tau trailing mean within 5 % of the
force-balance value 1 and staying there; a run stops 4 h/u_tau after the onset it first reports
(so the onset is confirmed) or at the cap. A run that never gets there is *censored*: reported as
"not steady within t_end", never as a number. Steps, simulated time, wall and CPU seconds
(wall x ranks, IC generation included) are measured to the onset.

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

CASES: dict[str, dict[str, Any]] = {
    "re180": dict(
        spec=dict(shape=(32, 64, 32), lengths=(math.pi, 2.0, math.pi / 2), re_tau=180.0, cfl_safety=0.15,
                  max_step=0.01),
        detector=dict(method="band", target=1.0, band=0.05, window=2.0, min_steady=4.0),
        cap=12.0, series_every=20, checkpoint_every=1000, check_every=10,
    ),
    "smoke": dict(  # plumbing only: a few hundred steps on 8 x 16 x 8
        spec=dict(shape=(8, 16, 8), lengths=(math.pi, 2.0, math.pi / 2), re_tau=180.0, cfl_safety=0.2,
                  max_step=1e-3, initial_step=1e-3),
        detector=dict(method="band", target=1.0, band=0.05, window=0.004, min_steady=0.004),
        cap=0.03, series_every=2, checkpoint_every=10, check_every=1,
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


def judgeable(t: Any, detector: dict[str, Any]) -> bool:
    """Whether the series is long enough for the band rule to reach a verdict."""
    t = np.asarray(t)
    return t.size >= 2 and float(t[-1] - t[0]) > detector["window"] + detector.get("min_steady", detector["window"])


def summarise(series: dict[str, np.ndarray], detector: dict[str, Any], ranks: int, ic_wall: float) -> dict[str, Any]:
    """Detector verdict plus steps / simulated time / wall / CPU seconds to the onset."""
    from cfdseed.transient import detect_steady

    t = np.asarray(series["t"])
    if not judgeable(t, detector):
        return {"censored": True, "reason": "series shorter than the detector's window + min_steady",
                "onset_time": None, "t_end": float(t[-1]) if t.size else 0.0,
                "steps_end": int(series["step"][-1]) if t.size else 0,
                "wall_end_s": float(cumulative_wall(series["wall_s"])[-1]) + ic_wall if t.size else ic_wall,
                "cpu_end_s": (float(cumulative_wall(series["wall_s"])[-1]) + ic_wall if t.size else ic_wall) * ranks}
    res = detect_steady(t, tau_mean(series), **detector)
    wall = cumulative_wall(series["wall_s"]) + ic_wall
    step = np.asarray(series["step"], dtype=np.float64)
    out: dict[str, Any] = {
        "censored": res.censored, "reason": res.reason, "onset_time": res.onset_time, "t_end": float(t[-1]),
        "steps_end": int(step[-1]), "wall_end_s": float(wall[-1]), "cpu_end_s": float(wall[-1]) * ranks,
    }
    if not res.censored:
        t0 = float(res.onset_time)
        out.update(
            onset_steps=int(round(float(np.interp(t0, t, step)) - step[0])),
            onset_wall_s=float(np.interp(t0, t, wall)),
            onset_cpu_s=float(np.interp(t0, t, wall)) * ranks,
            steady_tau_mean=res.mean,
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


def reductions(records: list[dict[str, Any]], case: str = "re180") -> dict[str, Any]:
    """Time to steady state per IC and the GAN's reductions (JSON-ready).

    Reduction vs a baseline B: ``1 - T_gan / T_B``. A censored baseline makes it a lower bound
    ("at least"); a censored GAN makes it undefined (None). GAN vs snapshot: ``T_gan / T_snapshot``
    (an upper bound when the snapshot is censored is impossible to state: then None).
    """
    by_ic: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r["case"] == case:
            by_ic.setdefault(r["ic"], []).append(r)
    out: dict[str, Any] = {"case": case, "time_to_steady": {}, "gan_reduction": {}, "gan_vs_snapshot": {}}
    metrics = ("onset_time", "onset_steps", "onset_cpu_s")
    for ic, recs in sorted(by_ic.items()):
        out["time_to_steady"][ic] = {
            m: {"value": v, "lower_bound": c} for m in metrics for v, c in [_time_to_steady(recs, m)]
        }
        out["time_to_steady"][ic]["seeds"] = sorted(r["seed"] for r in recs)
    gan = out["time_to_steady"].get("gan")
    for m in metrics:
        if gan is None:
            break
        g, g_cens = gan[m]["value"], gan[m]["lower_bound"]
        for b in GAN_BASELINES:
            if b not in out["time_to_steady"]:
                continue
            base, b_cens = out["time_to_steady"][b][m]["value"], out["time_to_steady"][b][m]["lower_bound"]
            red = None if g_cens or base <= 0 else 1.0 - g / base
            out["gan_reduction"].setdefault(b, {})[m] = {
                "value": red, "at_least": bool(b_cens and red is not None),
                "target": TARGETS.get(b), "meets_target": None if red is None or b not in TARGETS else red >= TARGETS[b],
            }
        if "snapshot" in out["time_to_steady"]:
            s, s_cens = out["time_to_steady"]["snapshot"][m]["value"], out["time_to_steady"]["snapshot"][m]["lower_bound"]
            ratio = None if g_cens or s_cens or s <= 0 else g / s
            out["gan_vs_snapshot"][m] = {"ratio": ratio, "target": SNAPSHOT_FACTOR,
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

    from cfdseed.generate import write_field
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
    """Run (or continue) one IC until the detector is satisfied or the cap is reached."""
    from mpi4py import MPI

    import dedalus

    from cfdseed.solvers.dedalus import DedalusChannel
    from cfdseed.solvers.runner import RunSettings, drive, read_segments, read_timeseries
    from cfdseed.transient import detect_steady

    comm = MPI.COMM_WORLD
    case = CASES[args.case]
    cap = args.cap if args.cap is not None else case["cap"]
    spec = _spec(args.case)
    runs = Path(args.runs)
    out = runs / args.case / f"{args.ic}-s{args.seed}"
    snapshot = Path(args.snapshot) if args.snapshot else runs / f"turbulent-{args.case}.h5"
    source, options = ic_source(args.ic, snapshot)
    if args.ic == "snapshot" and not snapshot.exists():
        raise SystemExit(f"{snapshot} missing: write it first with `transient.py snapshot --checkpoint ...`")
    ch = DedalusChannel(spec, comm)
    restart = ch.latest_checkpoint(out / "checkpoints") is not None
    ic_wall = [0.0]

    def seed_fn() -> None:
        t0 = time.perf_counter()
        report = ch.seed(source, options=options, seed=args.seed)
        ic_wall[0] = time.perf_counter() - t0
        if comm.rank == 0:
            log.info("seeded %s in %.1f s:\n%s", args.ic, ic_wall[0], report)

    history: dict[str, list[float]] = {"t": [], "tau": []}
    if comm.rank == 0 and restart:
        s = read_timeseries(out)
        history = {"t": list(s["t"]), "tau": list(tau_mean(s))}
        ic_wall[0] = float(read_segments(out)[0].get("note", {}).get("ic_wall_s", 0.0))
    checks = [0]

    def monitor(d: Any, wall: float) -> bool:
        history["t"].append(d.t)
        history["tau"].append(0.5 * (d.tau_lower + d.tau_upper))
        checks[0] += 1
        if checks[0] % case["check_every"] or not judgeable(history["t"], case["detector"]):
            return False
        return not detect_steady(history["t"], history["tau"], **case["detector"]).censored

    t_start = 0.0
    if restart:
        t_start = float(json.loads(sorted((out / "checkpoints").glob("it*/meta.json"))[-1].read_text())["sim_time"])
    done = False  # a finished run (detector satisfied) is only re-summarised, never extended
    if comm.rank == 0 and restart and judgeable(history["t"], case["detector"]):
        done = not detect_steady(history["t"], history["tau"], **case["detector"]).censored
    done = comm.bcast(done, root=0)
    status = "ok"
    if t_start < cap - 1e-9 and not done:
        settings = RunSettings(duration=cap - t_start, series_every=case["series_every"],
                               checkpoint_every=case["checkpoint_every"], source=f"dedalus:{args.ic}")
        note = dict(argv=sys.argv, ic=args.ic, source=source, options=options, seed=args.seed, case=args.case)
        try:
            summary = drive(ch, out, settings, restart=restart, seed_fn=seed_fn, monitor=monitor, note=note)
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
        result = summarise(series, case["detector"], comm.size, ic_wall[0])
        if status != "ok":
            result.update(censored=True, reason=status, onset_time=None)
        rec = dict(
            case=args.case, ic=args.ic, seed=args.seed, source=source, options=options, cap=cap,
            detector=case["detector"], spec={k: list(v) if isinstance(v, tuple) else v for k, v in case["spec"].items()},
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
    print(f"{'IC':10s} {'seed':>4s} {'steady from t':>14s} {'steps':>8s} {'CPU s':>9s}  verdict")
    for r in sorted(records, key=lambda r: (ICS.index(r["ic"]), r["seed"])):
        if r["censored"]:
            print(f"{r['ic']:10s} {r['seed']:4d} {'> ' + format(r['t_end'], '.2f'):>14s} {'> ' + str(r['steps_end']):>8s} "
                  f"{'> ' + format(r['cpu_end_s'], '.0f'):>9s}  censored: {r['reason']}")
        else:
            print(f"{r['ic']:10s} {r['seed']:4d} {r['onset_time']:14.2f} {r['onset_steps']:8d} {r['onset_cpu_s']:9.0f}  steady")
    for b, by_metric in red["gan_reduction"].items():
        tgt = f" (target {100 * TARGETS[b]:.0f} %)" if b in TARGETS else ""
        print(f"GAN vs {b:8s}: time {_fmt(by_metric['onset_time'])}, steps {_fmt(by_metric['onset_steps'])}, "
              f"CPU {_fmt(by_metric['onset_cpu_s'])}{tgt}")
    if red["gan_vs_snapshot"]:
        g = red["gan_vs_snapshot"]
        print(f"GAN / snapshot: time {_fmt(g['onset_time'], False)}, steps {_fmt(g['onset_steps'], False)}, "
              f"CPU {_fmt(g['onset_cpu_s'], False)} (target <= {SNAPSHOT_FACTOR}x)")
    if not args.no_figure:
        print(f"figure: {plot(records, Path(args.figure))}")
    return 0


def plot(records: list[dict[str, Any]], path: Path) -> Path:
    """Centre-line velocity and wall shear vs time, one curve per IC, onsets marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 7), constrained_layout=True)
    FigureCanvasAgg(fig)
    ax_u, ax_t = fig.subplots(2, 1, sharex=True)
    colours = {"plug": "tab:gray", "trig": "tab:blue", "streaks": "tab:green", "gan": "tab:red", "snapshot": "k"}
    for r in sorted(records, key=lambda r: (ICS.index(r["ic"]), r["seed"])):
        s = r["series"]
        c = colours.get(r["ic"], "tab:purple")
        label = f"{r['ic']} (seed {r['seed']})" + (" censored" if r["censored"] else f": steady at {r['onset_time']:.1f}")
        ax_u.plot(s["t"], s["centre_u"], color=c, lw=1.2, label=label)
        ax_t.plot(s["t"], s["tau"], color=c, lw=1.0)
        if not r["censored"]:
            for ax in (ax_u, ax_t):
                ax.axvline(r["onset_time"], color=c, ls="--", lw=0.9)
    det = records[0]["detector"]
    ax_t.axhspan(det["target"] * (1 - det["band"]), det["target"] * (1 + det["band"]), color="0.85", zorder=0,
                 label=f"force balance +-{100 * det['band']:.0f} % ({det['window']} h/u_tau running mean must stay here)")
    ax_u.set_ylabel("centre-line u / u_tau")
    ax_t.set_ylabel("wall shear (both walls) / rho u_tau^2")
    ax_t.set_xlabel("t u_tau / h")
    ax_u.legend(fontsize=8)
    ax_t.legend(fontsize=8, loc="upper right")
    ax_u.grid(alpha=0.3)
    ax_t.grid(alpha=0.3)
    fig.suptitle(f"Start-up transient, Dedalus channel {records[0]['case']} (dashed: detected onset)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> int:
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
