"""The transient campaign: long Dedalus runs done in resumable chunks across working periods.

The plan (``benchmarks/campaign/plan.json``, committed) lists the runs: the stationary reference
and, once the protocol is pre-registered, the IC ensembles. Each run advances in *chunks* (one
:func:`cfdseed.solvers.runner.drive` segment, ``chunk`` h/u_tau or less when stopped early). After
every chunk the run's committed folder ``benchmarks/campaign/<id>/`` gets:

    chunk_NNN.npz   the chunk's full time series (every column of the runner, every record) and its
                    plane-averaged profiles binned in ``profile_bin`` h/u_tau (float32); immutable
    state.npz       compact restart state: the velocity on the grid, float32, any rank count
    snapshots/      copies of state.npz from ``snapshots.after`` every ``snapshots.every`` h/u_tau
                    (the first chunk end at or after each time): the controls' initial states
    run.json        progress: simulated time, iteration, chunks, wall and CPU seconds, settings

so a run survives a move to a fresh machine through what is committed. The working folder
``runs/campaign/<id>/`` (ignored by git) holds the exact float64 checkpoints and the y-z slices
(all x planes every ``slices_every`` steps: the v2 model's training data); a run continues from
its newest working checkpoint when that is at least as new as ``state.npz``, else from
``state.npz``. Creating ``runs/campaign/<id>/STOP`` ends the running chunk gracefully (exported
like any other chunk); ``runs/campaign/STOP`` ends ``run --all`` after the running chunk.

Commands (Dedalus environment; ``MPI="/usr/bin/mpiexec -n 2 --bind-to none"``,
``PY=.venv-dedalus/bin/python``, ``OMP_NUM_THREADS=1`` and, as root,
``OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1``)::

    $MPI $PY benchmarks/transient.py campaign run [--max-wall S] [--run ID]   # next pending run
    $MPI $PY benchmarks/transient.py campaign run --all   # every pending run in turn (stop: touch WORK/STOP)
    # workers share the plan: each skips runs another live worker holds (e.g. two 1-rank workers,
    # started a minute apart, ~10 % more steps per second than one 2-rank run; STOP ends one of them)
    $PY benchmarks/transient.py campaign register --members N [--ics trig plug control]   # a blinded tier
    $PY benchmarks/transient.py campaign register --tier fair --members N --ics sem phase-randomised streaks --model M
    $PY benchmarks/transient.py campaign register --tier sweep   # the trig-turbulent amplitude sweep
    $PY benchmarks/transient.py campaign check --tier fair --members N --ics ... --model M   # build, don't run
    $PY benchmarks/transient.py campaign check --plan   # every planned IC rebuilt; started runs vs their t = 0
    $PY benchmarks/transient.py campaign select   # sweep done: its scores; trig-turbulent joins the fair tier
    $PY benchmarks/transient.py campaign analyse [--unblind]   # onsets per opaque group (names: --unblind)
    # --unblind also compares the ensembles (gan vs the others; --compare A:B ...), both write a figure
    $PY benchmarks/transient.py campaign status                              # done/running/pending
    $PY benchmarks/transient.py campaign start [--count 2]   # the missing 1-rank workers, detached, 60 s apart
    $PY benchmarks/transient.py campaign stop    # every live worker's chunk ended and exported; waits; clears STOP

This file is the command line and the running of a run (chunks, export, snapshots); the rest lives
beside it: ``campaign_plan.py`` (plan, progress, locks, status, decisions due), ``campaign_workers.py``
(start/stop), ``campaign_records.py`` (reading and checking committed chunks), ``campaign_ics.py``
(IC sources and the registered-IC checks), ``campaign_register.py`` (blinded registration, the
sweep), ``campaign_analysis.py`` (validation, power template, sweep scores, onsets) and
``campaign_report.py`` (the statistics).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the campaign_*.py modules beside this file
from campaign_analysis import (analyse, power_template, reference_json_of, reference_run,  # noqa: E402
                               report_module, validate_reference)
from campaign_ics import (IC_CHECK, check_ics, check_plan, ic_source, initial_values,  # noqa: E402
                          same_as_registered)
from campaign_plan import (CAMPAIGN, ROOT, WORK, decisions_due, is_done, next_run, progress,  # noqa: E402
                           progresses, read_plan, status_lines)
from campaign_records import bin_profiles, committed_problems  # noqa: E402
from campaign_register import (register, register_flow_rate, register_sweep, registration_seed,  # noqa: E402
                               select_amplitude, sweep_ics, tier_ics)
from campaign_workers import start_workers, stop_workers  # noqa: E402

#: FFTW planning rigor of the workers' solver (amendment 10: from commit ccb888d, 2026-12-06 04:00 UTC;
#: before it Dedalus' default ``measure``): ~15 % more steps per CPU-second, results equal to round-off.
FFTW_RIGOR = "patient"

log = logging.getLogger("campaign")


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


def _export_chunk(campaign: Path, work: Path, run: dict[str, Any], prog: dict[str, Any], t0: float,
                  summary: dict[str, Any], ranks: int, commit: str) -> dict[str, Any]:
    """Rank 0: write chunk_NNN.npz for records in [t0, now) and update run.json."""
    from cfdseed.solvers.runner import read_profiles, read_timeseries

    series = read_timeseries(work)
    t1 = summary["t"]
    m = (series["t"] >= t0 - 1e-12) & (series["t"] < t1 - 1e-12)
    tp, y, prof = read_profiles(work)
    mp = (tp >= t0 - 1e-12) & (tp < t1 - 1e-12)
    binned = bin_profiles(tp[mp], {k: v[mp] for k, v in prof.items()}, t0, run["profile_bin"])
    k = len(prog["chunks"])
    arrays = {f"series/{c}": v[m] for c, v in series.items()}
    arrays.update({f"profiles/{c}": v for c, v in binned.items()}, y=y)
    dest = campaign / run["id"] / f"chunk_{k:03d}.npz"
    tmp = dest.with_name(dest.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, dest)
    chunk = dict(index=k, t0=t0, t1=t1, records=int(m.sum()), steps=summary["steps"], wall_s=summary["wall_s"],
                 ranks=ranks, stopped=summary["stopped"], slices=summary["slices"], host=platform.node(),
                 commit=commit, fftw_rigor=FFTW_RIGOR, finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    prog = dict(prog, t=t1, iteration=summary["iteration"], chunks=prog["chunks"] + [chunk],
                wall_s=prog["wall_s"] + summary["wall_s"], cpu_s=prog["cpu_s"] + summary["wall_s"] * ranks)
    _write_json(campaign / run["id"] / "run.json", prog)
    return prog


def _record_failure(campaign: Path, run: dict[str, Any], prog: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    """Rank 0: the run blew up, so it is over and censored (PROTOCOL.md, "Exclusions"): ``run.json``
    records why and after which committed time; its committed chunks stand, the failing chunk's
    records are not exported."""
    prog = dict(prog, failed=dict(reason=f"{type(exc).__name__}: {exc}", after_t=prog["t"],
                                  when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
    _write_json(campaign / run["id"] / "run.json", prog)
    log.error("%s blew up after t = %.3f (%s): recorded as failed, censored by the protocol",
              run["id"], prog["t"], exc)
    return prog


def snapshot_times(run: dict[str, Any]) -> list[float]:
    """Times from which the run keeps its state as a snapshot (the controls' initial states)."""
    snap = run.get("snapshots")
    if not snap:
        return []
    n = int(math.floor((run["horizon"] - snap["after"]) / snap["every"] + 1e-9)) + 1
    return [snap["after"] + j * snap["every"] for j in range(max(n, 0))]


def _keep_snapshot(cdir: Path, run: dict[str, Any], t: float) -> None:
    """Rank 0: copy state.npz to snapshots/ when t passed the next snapshot time (>= 1 a chunk)."""
    kept = sorted((cdir / "snapshots").glob("t*.npz"))
    due = [s for s in snapshot_times(run) if s <= t + 1e-9]
    if len(due) > len(kept):
        (cdir / "snapshots").mkdir(exist_ok=True)
        dest = cdir / "snapshots" / f"t{t:08.3f}.npz"
        tmp = dest.with_name(dest.name + ".tmp.npz")
        tmp.write_bytes((cdir / "state.npz").read_bytes())
        os.replace(tmp, dest)


def run_chunks(run: dict[str, Any], *, campaign: Path = CAMPAIGN, work_root: Path = WORK,
               max_wall: float = math.inf, commit: str = "unknown") -> dict[str, Any]:
    """Advance one run chunk by chunk until its horizon, ``max_wall`` or a STOP file. Collective.

    Returns the run's progress record (identical on every rank).
    """
    from mpi4py import MPI

    import dedalus

    from cfdseed._collective import run_agreed
    from cfdseed.solvers.dedalus import ChannelSpec, DedalusChannel
    from cfdseed.solvers.runner import STOP_FILE, RunSettings, drive

    comm = MPI.COMM_WORLD
    work = work_root / run["id"]
    cdir = campaign / run["id"]
    state_file = cdir / "state.npz"
    spec = ChannelSpec.from_json(run["spec"])
    ch = DedalusChannel(spec, comm, fftw_rigor=FFTW_RIGOR)
    prog = comm.bcast(run_agreed(comm, lambda: progress(campaign, run) if comm.rank == 0 else None), root=0)
    nx = spec.shape[0]
    stride = run.get("slice_stride", 1)
    settings_base = dict(series_every=run["series_every"], checkpoint_every=run["checkpoint_every"],
                         slices_every=run.get("slices_every", 0), slices_after=run.get("slices_after", 0.0),
                         slice_x=tuple(range(0, nx, stride)), source=f"dedalus:campaign:{run['id']}",
                         provenance=dict(solver="dedalus", solver_version=dedalus.__version__, timestepper="SBDF2",
                                         campaign_run=run["id"], nranks=comm.size, fftw_rigor=FFTW_RIGOR))
    wall0 = time.time()
    while prog["t"] < run["horizon"] - 1e-9:
        def where_from() -> tuple[bool, float]:
            """Rank 0: continue from the newest working checkpoint if it is not older than the
            committed state and from this rank count (else move the working folder aside)."""
            if comm.rank != 0:
                return False, -math.inf
            ck = ch.latest_checkpoint(work / "checkpoints")
            meta = json.loads((ck / "meta.json").read_text()) if ck is not None else None
            ok = meta is not None and meta["sim_time"] >= prog["t"] - 1e-9 and meta["nranks"] == comm.size
            if not ok and work.exists():
                aside = work.with_name(f"{work.name}.old-{int(time.time())}")
                log.warning("%s: its checkpoints are older than %s or from another rank count; moved to %s",
                            work, state_file, aside)
                work.rename(aside)
            work.mkdir(parents=True, exist_ok=True)
            _write_json(work / "RUNNING", dict(pid=os.getpid(), host=socket.gethostname(),
                                               heartbeat=time.time(), t=prog["t"]))
            return ok, meta["sim_time"] if ok else -math.inf

        ck_ok, ck_t = comm.bcast(run_agreed(comm, where_from), root=0)

        def seed_fn() -> None:
            if prog["t"] > 0:
                meta = ch.load_state(state_file)
                log.info("continued from %s at t=%.4f", state_file, meta["sim_time"])
            else:
                source, options = ic_source(run["ic"], ch, work)
                ch.seed(source, options=options, seed=run["ic"].get("seed"), units="source")  # as registered
                built = initial_values(ch)  # the IC must be the one registered (amendment 6)
                run_agreed(comm, lambda: comm.rank == 0 and same_as_registered(campaign, run["id"], built))

        budget = comm.bcast(max_wall - (time.time() - wall0), root=0)  # one clock decides for all
        if budget <= 0:
            break
        t0 = prog["t"]
        target = min(run["chunk"], run["horizon"] - t0)
        if ck_ok:
            target = max(t0 + target - ck_t, 0.0)  # the checkpoint is already into this chunk
        settings = RunSettings(duration=target, max_wall=budget, **settings_base)

        beat = [0.0]

        def heartbeat(d: Any, wall_s: float) -> bool:  # rank 0, every record; the lock says who runs
            if wall_s - beat[0] >= 30:
                beat[0] = wall_s
                _write_json(work / "RUNNING", dict(pid=os.getpid(), host=socket.gethostname(),
                                                   heartbeat=time.time(), t=d.t))
            return False

        try:
            summary = drive(ch, work, settings, restart=ck_ok, seed_fn=seed_fn, monitor=heartbeat,
                            note=dict(campaign_run=run["id"], chunk=len(prog["chunks"])))
        except FloatingPointError as exc:  # non-finite diagnostics, global: raised on every rank alike
            failed, blew = prog, exc
            prog = comm.bcast(run_agreed(comm, lambda: _record_failure(campaign, run, failed, blew)
                                         if comm.rank == 0 else None), root=0)
            break
        ch.save_state(state_file, extra=dict(run=run["id"], chunk=len(prog["chunks"])))
        def export() -> dict[str, Any] | None:
            if comm.rank != 0:
                return None
            new = _export_chunk(campaign, work, run, prog, t0, summary, comm.size, commit)
            _keep_snapshot(cdir, run, new["t"])
            log.info("%s: chunk %d done, t = %.3f (%s)", run["id"], len(new["chunks"]) - 1, new["t"], summary["stopped"])
            return new

        prog = comm.bcast(run_agreed(comm, export), root=0)
        if summary["stopped"] != "duration":
            break
        if comm.bcast(comm.rank == 0 and (work / STOP_FILE).exists(), root=0) or _stop_asked(work_root):
            break
    if comm.rank == 0 and (work / "RUNNING").exists():
        (work / "RUNNING").unlink()
    return prog


def _reference(campaign: Path, results: Path, run_id: str | None = None) -> int:
    """``campaign reference``: a reference run's statistics and calibration under its view of the
    protocol -> JSON (:func:`reference_json_of`) + table."""
    report = report_module()
    run, series, _ = reference_run(campaign, run_id)
    protocol = report.view(report.read_protocol(campaign), report.driving_of(run))
    stats = report.reference_statistics(protocol, run, series, t_done=progress(campaign, run)["t"])
    stats["reproduce"] = ("python benchmarks/transient.py campaign reference"
                          + (f" --run {run['id']}" if run_id else "") + " (from the committed chunks)")
    dest = reference_json_of(results, run)
    report.write_json(dest, stats)
    print("\n".join(report.format_reference(stats)))
    print(f"written: {dest}")
    return 0


def _power(campaign: Path, reference_json: Path) -> int:
    """``campaign power``: the protocol's ensemble-size decision (complete reference only)."""
    report = report_module()
    stats = json.loads(reference_json.read_text())
    if not stats.get("complete") or not stats.get("k"):
        raise SystemExit(f"{reference_json}: the reference is not complete; the protocol decides N only then")
    protocol = report.read_protocol(campaign)
    run, series, _ = reference_run(campaign)
    ref = report.reference(protocol, run, series)
    res = report.power(ref, power_template(ref, protocol), stats["k"], protocol,
                       np.random.default_rng(protocol["seed"] + 1))
    res["template"] = "trig seed 0 bulk velocity of benchmarks/results/transient.json, continued by its integral time"
    out = reference_json.with_name("power.json")
    report.write_json(out, res)
    print(json.dumps(res, indent=1))
    print(f"written: {out}")
    return 0


def load_library(package: str = "cfdseed") -> list[str]:
    """Import every module of ``package`` now; return the names skipped for a missing optional dependency.

    A worker runs for hours while the library may be edited beside it: loading it whole at start keeps
    it on one version (a lazy import of an edited module beside stale ones failed once). A module
    whose import fails for any reason other than a missing third-party package raises.
    """
    import importlib
    import pkgutil

    root = importlib.import_module(package)
    skipped = []
    for m in pkgutil.walk_packages(root.__path__, f"{package}."):
        try:
            importlib.import_module(m.name)
        except ModuleNotFoundError as e:
            if e.name is None or e.name == package or e.name.startswith(f"{package}."):
                raise
            skipped.append(m.name)
    return skipped


def main(argv: list[str] | None = None, commit: str = "unknown") -> int:
    p = argparse.ArgumentParser(prog="transient.py campaign", description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=("run", "status", "reference", "power", "register", "check", "select",
                                         "analyse", "validate", "start", "stop"))
    p.add_argument("--run", default=None, help="run id (run: default the next pending run of the plan; reference: default ref; validate: default ref-cfr)")
    p.add_argument("--all", action="store_true",
                   help="run: go on with the next pending run until none is left or WORK/STOP exists")
    p.add_argument("--plan", action="store_true",
                   help="check: rebuild every planned run's IC (or --run's); compare with its t = 0 record "
                        "or the previous check")
    p.add_argument("--unblind", action="store_true", help="analyse: join the IC names from key.json")
    p.add_argument("--compare", nargs="+", default=None, metavar="A:B",
                   help="analyse --unblind: pairs of IC labels to compare (default: gan against every other)")
    p.add_argument("--tier", default="confirmatory",
                   help="register: the tier (confirmatory, fair, exploratory, flow_rate; sweep: the protocol's trig_sweep)")
    p.add_argument("--ics", nargs="+", default=["trig", "plug", "control"], help="register: the tier's ICs")
    p.add_argument("--members", type=int, default=None, help="register: ensemble size (amendment 1's N)")
    p.add_argument("--before", default=None, metavar="TIER",
                   help="register --tier exploratory: the runs go before that tier's first run (default: appended)")
    p.add_argument("--model", default=None,
                   help="register --ics gan (or sem): the model (a packaged model's name) whose sha256 the runs check")
    p.add_argument("--max-wall", type=float, default=math.inf, help="wall-clock limit of this invocation (s)")
    p.add_argument("--count", type=int, default=2, help="start: workers to have running (default %(default)s)")
    p.add_argument("--stagger", type=float, default=60.0, help="start: seconds between workers (default %(default)s)")
    p.add_argument("--campaign", default=str(CAMPAIGN), help="committed campaign folder (default %(default)s)")
    p.add_argument("--work", default=str(WORK), help="working folder (default %(default)s)")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "reference.json"),
                   help="reference statistics JSON written by 'reference' (default %(default)s)")
    args = p.parse_args(argv)
    campaign, work = Path(args.campaign), Path(args.work)
    if args.action == "start":
        pids = start_workers(args.count, stagger=args.stagger, campaign=campaign, work=work)
        print(f"started {len(pids)} worker(s): pids {pids}" if pids else f"{args.count} worker(s) already running")
        return 0
    if args.action == "stop":
        held = stop_workers(work=work)
        print(f"stopped: {', '.join(f'{r} (pid {p})' for r, p in held.items())}; commit 'benchmarks/campaign'"
              if held else "no live worker")
        return 0
    if args.action == "status":
        progs = progresses(campaign)
        print("\n".join(status_lines(campaign, work, progs=progs)
                        + [f"due: {d}" for d in decisions_due(campaign, progs)]
                        + [f"problem: {p}" for p in committed_problems(campaign, work, progs)]))
        return 0
    if args.action == "reference":
        return _reference(campaign, Path(args.results), args.run)
    if args.action == "power":
        return _power(campaign, Path(args.results))
    if args.action == "validate":
        run_id = args.run or "ref-cfr"
        res = validate_reference(campaign, run_id)
        dest = Path(args.results).with_name(f"validation_{run_id}.json")
        report_module().write_json(dest, res)
        print(f"{run_id} ({res['driving']}, t = {res['span'][0]:.1f}-{res['span'][1]:.1f}"
              f"{'' if res['complete'] else ', not complete'}): Re_tau {res['re_tau']:.1f}, "
              f"U+ L2 {100 * res['u_plus_rel_l2']:.2f} %, peak u'+ {100 * res['peak_u_rel_err']:.2f} %: "
              f"{'passed' if res['passed'] else 'FAILED ' + str([k for k, v in res['checks'].items() if not v])}")
        print(f"written: {dest}")
        return 0
    if args.action == "analyse":
        key = json.loads((campaign / "key.json").read_text()) if args.unblind else None
        if args.compare and key is None:
            raise SystemExit("--compare names ICs: only with --unblind")
        pairs = [tuple(p.split(":", 1)) for p in args.compare] if args.compare else None
        if pairs and any(len(p) != 2 for p in pairs):
            raise SystemExit(f"--compare takes pairs A:B of IC labels, got {args.compare}")
        dest = Path(args.results).with_name("campaign_onsets_named.json" if args.unblind else "campaign_onsets.json")
        res = analyse(campaign, Path(args.results), key, figure=dest.with_suffix(".png"), pairs=pairs)
        report = report_module()
        report.write_json(dest, res)
        label = report.ic_labels(key) if key is not None else {}
        for g, e in sorted(res["ensembles"].items()):
            name = f" ({label[g]})" if g in label else ""
            onset = "censored" if e["censored"] else f"{e['onset_time']:.2f} h/u_tau"
            print(f"{g}{name}: {e['members']} members, onset {onset}, 95 % interval {e.get('onset_ci95')}")
        if "comparisons" in res:
            print("\n".join(report.format_comparisons(res["comparisons"])))
        print(f"{sum(v['finished'] for v in res['groups'].values())} of "
              f"{sum(v['registered'] for v in res['groups'].values())} IC runs finished; written: {dest}"
              + (f", {dest.with_suffix('.png')}" if "figure" in res else ""))
        return 0
    if args.action == "register":
        if args.before is not None:
            if args.tier != "exploratory":
                raise SystemExit("--before places exploratory runs only (a registered tier keeps the protocol's order)")
            if not any(r.get("tier") == args.before for r in read_plan(campaign) if r["kind"] != "reference"):
                raise SystemExit(f"--before {args.before}: the plan has no run of tier {args.before!r}")
        if args.tier == "sweep":
            key = register_sweep(campaign)
            print(f"registered the trig sweep: groups {', '.join(f'{g} ({n})' for g, n in key.items())}")
            return 0
        if args.members is None:
            raise SystemExit("register needs --members (the ensemble size decided by the power analysis)")
        if args.tier == "flow_rate":
            key = register_flow_rate(campaign, args.ics, args.members, args.model)
        else:
            key = register(campaign, args.tier, tier_ics(campaign, args.tier, args.ics, args.model), args.members,
                           registration_seed(campaign), before_tier=args.before)
        print(f"registered {len(key)} ensembles of {args.members} in tier {args.tier!r}: groups {', '.join(key)}")
        return 0
    if args.action == "check" and args.plan:
        return _check_plan_command(campaign, work, Path(args.results).with_name("campaign_check_plan.json"),
                                   [args.run] if args.run else None)
    if args.action == "check":
        ics, seeds = (sweep_ics(campaign) if args.tier == "sweep" else
                      (tier_ics(campaign, args.tier, args.ics, args.model),
                       json.loads((campaign / "protocol.json").read_text())["member_seeds"][:args.members]))
        spec = next(r for r in read_plan(campaign) if r["kind"] == "reference")["spec"]
        res = check_ics(ics, seeds, spec, work / "check")
        dest = Path(args.results).with_name(f"campaign_check_{args.tier}.json")
        return _root_decides(lambda: _record_tier_check(dest, args.tier, seeds, res))
    if args.action == "select":
        res, key = select_amplitude(campaign)
        dest = Path(args.results).with_name("trig_sweep.json")
        res["registered"] = key
        res["reproduce"] = "python benchmarks/transient.py campaign select (from the committed sweep chunks)"
        report_module().write_json(dest, res)
        for a, m in res["per_amplitude"].items():
            print(f"amplitude {a}: score {m:.3f}")
        print(f"chosen {res['chosen']:g}: registered {', '.join(key)} in tier 'fair'; written: {dest}")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from mpi4py import MPI

    from cfdseed._collective import run_agreed

    skipped = run_agreed(MPI.COMM_WORLD, load_library)  # an import failing on one rank stops every rank
    if skipped:
        log.info("not loaded (optional dependencies missing): %s", ", ".join(skipped))
    runs = {r["id"]: r for r in read_plan(campaign)}
    if args.run is not None and args.run not in runs:
        raise SystemExit(f"unknown run {args.run!r}; the plan has {', '.join(runs)}")
    wall0 = time.time()
    while True:
        # rank 0 decides (the locks it reads may change between ranks' reads)
        run = runs[args.run] if args.run else _root_decides(lambda: next_run(campaign, work))
        if run is None:
            print("campaign: every planned run is done")
            return 0
        (campaign / run["id"]).mkdir(parents=True, exist_ok=True)
        prog = run_chunks(run, campaign=campaign, work_root=work, max_wall=args.max_wall - (time.time() - wall0),
                          commit=commit)
        print(f"campaign {run['id']}: t = {prog['t']:.2f} / {run['horizon']} h/u_tau, {len(prog['chunks'])} chunks")
        stop = _stop_all(work)  # consumed here, whether it ended the run's chunks or not
        if not args.all or args.run or not is_done(run, prog) or stop:
            return 0


def _check_plan_command(campaign: Path, work: Path, report_path: Path, ids: list[str] | None) -> int:
    """``campaign check --plan``: :func:`check_plan` against the committed builds; the report to
    ``report_path``; :data:`IC_CHECK` keeps each run's first successful build (the registered IC:
    a later, different build is reported, never recorded over it), new runs added. Collective."""
    path = campaign / IC_CHECK
    kept = json.loads(path.read_text())["runs"] if path.exists() else {}
    res = check_plan(campaign, work / "check", ids, previous=kept)
    return _root_decides(lambda: _record_check(path, kept, res, report_path))


def _record_check(path: Path, kept: dict[str, Any], res: dict[str, Any], report_path: Path) -> int:
    """Rank 0 of ``check --plan``: write the builds kept and the report, print, the exit status."""
    for rid, e in res.items():
        old = kept.get(rid, {}).get("built")
        if "error" not in e["built"] and (old is None or "error" in old):  # a first successful build
            kept[rid] = {"built": e["built"]}
    report = report_module()
    report.write_json(path, {"about": "each IC run's initial values as first built by 'campaign check --plan'; a "
                                      "run whose IC no longer builds to these (relative 1e-4) is not started",
                             "runs": kept})
    report.write_json(report_path, {"runs": res, "reproduce": "python benchmarks/transient.py campaign check --plan"})
    failed = sorted(i for i, e in res.items() if "error" in e["built"])
    compared = {i: e for i, e in res.items() if "same" in e}
    changed = sorted(i for i, e in compared.items() if not e["same"])
    worst = max((e["max_rel_diff"] for e in compared.values()), default=0.0)
    print(f"{len(res) - len(failed)} of {len(res)} ICs built" + (f"; failed: {', '.join(failed)}" if failed else ""))
    print(f"{len(compared) - len(changed)} of {len(compared)} reproduced (started runs against their t = 0 record, "
          f"the others against {path.name}; largest relative difference {worst:.1e})"
          + (f"; CHANGED: {', '.join(changed)}" if changed else ""))
    print(f"written: {report_path}, {path}")
    return 1 if changed or failed else 0


def _record_tier_check(dest: Path, tier: str, seeds: list[int], res: dict[str, Any]) -> int:
    """Rank 0 of ``check --tier``: write the builds, print a line an IC, the exit status."""
    report_module().write_json(dest, {"tier": tier, "seeds": seeds, "ics": res, "reproduce":
                                       "python benchmarks/transient.py campaign check " + " ".join(sys.argv[2:])})
    for name, rows in res.items():
        bad = {s: r["error"] for s, r in rows.items() if "error" in r}
        ok = [r for r in rows.values() if "error" not in r]
        tke = f"TKE {min(r['tke'] for r in ok):.3f}-{max(r['tke'] for r in ok):.3f}" if ok else ""
        print(f"{name}: {len(ok)} of {len(rows)} built {tke}" + (f"; failed {bad}" if bad else ""))
    print(f"written: {dest}")
    return 0


def _root_decides(fn: Callable[[], Any]) -> Any:
    """Collective: ``fn()`` evaluated on rank 0 (an error there raised on every rank), broadcast."""
    from mpi4py import MPI

    from cfdseed._collective import run_agreed

    comm = MPI.COMM_WORLD
    return comm.bcast(run_agreed(comm, lambda: fn() if comm.rank == 0 else None), root=0)


def _stop_asked(work: Path) -> bool:
    """Collective: ``WORK/STOP`` exists on rank 0 (left for :func:`_stop_all` to consume)."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    return comm.bcast(comm.rank == 0 and (work / "STOP").exists(), root=0)


def _stop_all(work: Path) -> bool:
    """Collective: ``WORK/STOP`` (``--all``'s graceful stop) exists on rank 0; consumed."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    stop = _stop_asked(work)
    if stop and comm.rank == 0:
        (work / "STOP").unlink()
    return stop


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
