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
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import platform
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = ROOT / "benchmarks" / "campaign"
WORK = ROOT / "runs" / "campaign"
#: Amendment 10's measurement: steps per CPU-second, FFTW patient over measure (its median ratio).
PLANNING = ROOT / "benchmarks" / "results" / "dedalus_planning.json"
#: ``campaign analyse --unblind``'s result (the ensembles it judged): a complete tier not in it is due.
ONSETS_NAMED = ROOT / "benchmarks" / "results" / "campaign_onsets_named.json"
HEARTBEAT_S = 600  # a run whose lock is older than this is reported as stale, not running
#: FFTW planning rigor of the workers' solver (amendment 10: from commit ccb888d, 2026-12-06 04:00 UTC;
#: before it Dedalus' default ``measure``): ~15 % more steps per CPU-second, results equal to round-off.
FFTW_RIGOR = "patient"

log = logging.getLogger("campaign")


# -- plan and progress (pure, no MPI) -----------------------------------------------------------
def read_plan(campaign: Path = CAMPAIGN) -> list[dict[str, Any]]:
    """The planned runs, in order."""
    plan = json.loads((campaign / "plan.json").read_text())
    ids = [r["id"] for r in plan["runs"]]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{campaign / 'plan.json'}: duplicate run ids {ids}")
    return plan["runs"]


def verdict_study(rule: str) -> Path:
    """The measurement of a resample rule's verdicts on simulated pairs: amendment 15's study of it
    (400 pairs) where there is one, else amendment 13's (``benchmarks/campaign_verdicts.py``)."""
    results = ROOT / "benchmarks" / "results"
    decided = results / f"campaign_decision_{rule}.json"
    return decided if decided.exists() else results / f"campaign_verdicts_{rule}.json"


def progress(campaign: Path, run: dict[str, Any]) -> dict[str, Any]:
    """Committed progress of one run (``run.json``), or a fresh record."""
    p = campaign / run["id"] / "run.json"
    if p.exists():
        return json.loads(p.read_text())
    return dict(id=run["id"], t=0.0, iteration=0, chunks=[], wall_s=0.0, cpu_s=0.0)


def is_done(run: dict[str, Any], prog: dict[str, Any]) -> bool:
    return prog["t"] >= run["horizon"] - 1e-9 or prog.get("failed") is not None


def lock_info(work: Path, run_id: str) -> dict[str, Any] | None:
    """The running chunk's lock (pid, host, heartbeat) or None."""
    p = work / run_id / "RUNNING"
    return json.loads(p.read_text()) if p.exists() else None


def _fresh_here(lock: dict[str, Any] | None, now: float) -> bool:
    """A lock written on this host within :data:`HEARTBEAT_S`."""
    return bool(lock) and lock.get("host") == socket.gethostname() and now - lock["heartbeat"] < HEARTBEAT_S


#: How many of a run's latest chunks give its rate in ``campaign status`` (chunks got faster with
#: amendment 10 and slower with other work on the cores: the latest say most about what is left).
RATE_CHUNKS = 3


def recent_rate(prog: dict[str, Any], last: int = RATE_CHUNKS) -> float:
    """h/u_tau per wall-hour over a run's ``last`` chunks (the whole run's average where its chunks
    do not record their times); NaN before any wall time."""
    timed = [c for c in prog["chunks"] if {"t0", "t1", "wall_s"} <= c.keys() and c["wall_s"] > 0][-last:]
    if timed:
        return sum(c["t1"] - c["t0"] for c in timed) / (sum(c["wall_s"] for c in timed) / 3600)
    return prog["t"] / (prog["wall_s"] / 3600) if prog["wall_s"] > 0 else math.nan


def progresses(campaign: Path = CAMPAIGN) -> dict[str, dict[str, Any]]:
    """Every planned run's committed progress by id (read once for a status and its due lines)."""
    return {r["id"]: progress(campaign, r) for r in read_plan(campaign)}


def status_lines(campaign: Path = CAMPAIGN, work: Path = WORK, now: float | None = None,
                 progs: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Human-readable campaign status: one line a run, one a tier (a reference: its own), totals;
    rates from each run's latest chunks (:func:`recent_rate`). ``progs``: :func:`progresses`."""
    now = time.time() if now is None else now
    progs = progresses(campaign) if progs is None else progs
    lines, left_h, left_wall, unrated = [], 0.0, 0.0, []
    rates = []  # measured h/u_tau per wall-hour of the IC runs: the estimate for runs without one
    tiers: dict[str, list[float]] = {}  # tier (a reference: its id) -> [runs, done, h/u_tau left]
    for run in read_plan(campaign):
        prog = progs[run["id"]]
        tier = tiers.setdefault(run["id"] if run["kind"] == "reference" else run.get("tier", run["kind"]),
                              [0, 0, 0.0])
        tier[0] += 1
        tier[1] += is_done(run, prog)
        tier[2] += max(run["horizon"] - prog["t"], 0.0) if not prog.get("failed") else 0.0
        lock = lock_info(work, run["id"])
        if prog.get("failed"):
            state = f"failed: {prog['failed']}"
        elif is_done(run, prog):
            state = "done"
        elif _fresh_here(lock, now):
            state = f"running (pid {lock['pid']}, at t = {lock.get('t', prog['t']):.1f})"
        elif prog["t"] > 0 or lock:
            state = "paused" + (" (stale lock)" if lock else "")
        else:
            state = "pending"
        rate = recent_rate(prog)
        rest = max(run["horizon"] - prog["t"], 0.0)
        left_h += rest
        if rate > 0:
            left_wall += rest / rate
            rates += [rate] if run["kind"] == "ic" else []
        else:
            unrated.append(rest)
        rate_s = f"{rate:.1f} h/u_tau per wall-h lately" if math.isfinite(rate) else "rate unknown"
        lines.append(f"{run['id']:10s} {run['kind']:12s} t = {prog['t']:7.2f} / {run['horizon']:g} h/u_tau, "
                     f"{len(prog['chunks']):3d} chunks, {prog['wall_s'] / 3600:6.2f} wall-h, {rate_s}: {state}")
    if sum(unrated) == 0:
        wall = f"{left_wall:.1f} wall-h for one worker at the latest rates"
    elif rates:
        typical = float(np.median(rates))
        wall = (f"{left_wall + sum(unrated) / typical:.1f} wall-h for one worker at the latest rates, runs "
                f"without one at the IC runs' median {typical:.1f} h/u_tau per wall-h")
    else:
        wall = "wall time unknown"
    typical = float(np.median(rates)) if rates else math.nan
    for name, (n, done, rest) in tiers.items():  # in plan order: the order the workers take them
        est = f", ~{rest / typical:.1f} wall-h for one worker at the median rate" if rest > 0 and math.isfinite(typical) else ""
        lines.append(f"tier {name}: {done} of {n} runs done, {rest:.1f} h/u_tau left{est}")
    lines.append(f"left: {left_h:.1f} h/u_tau ({wall})")
    return lines


#: How a worker is started: one 1-rank run --all under the system Open MPI (Dedalus environment),
#: not bound to a core (two 1-rank runs would share one otherwise).
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def worker_command(campaign: Path = CAMPAIGN, work: Path = WORK) -> list[str]:
    return ["/usr/bin/mpiexec", "-n", "1", "--bind-to", "none", str(ROOT / ".venv-dedalus" / "bin" / "python"),
            str(ROOT / "benchmarks" / "transient.py"), "campaign", "run", "--all",
            "--campaign", str(campaign), "--work", str(work)]


def live_workers(work: Path = WORK, now: float | None = None) -> dict[str, int]:
    """``{run id: pid}`` of the runs a live process on this host holds (fresh lock, pid alive)."""
    out = {}
    for lock_path in sorted(work.glob("*/RUNNING")) if work.exists() else []:
        rid = lock_path.parent.name
        if held_elsewhere(work, rid, now):
            out[rid] = int(lock_info(work, rid)["pid"])
    return out


def start_workers(count: int, *, stagger: float = 60.0, campaign: Path = CAMPAIGN, work: Path = WORK,
                  command: list[str] | None = None) -> list[int]:
    """Start ``count`` background workers (``run --all``; :func:`worker_command`), ``stagger`` seconds
    apart so that each finds the runs the others hold locked; logs ``<work>/../campaign-w<i>.log``
    (appended). Workers already running count: only the missing ones start. Returns the new pids."""
    import subprocess

    running = len(set(live_workers(work).values()))
    cmd = command or worker_command(campaign, work)
    pids = []
    for i in range(running, count):
        if pids and stagger > 0:
            time.sleep(stagger)
        log_path = work.parent / f"campaign-w{i + 1}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, **WORKER_ENV), stdout=log_file,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        pids.append(proc.pid)
    return pids


def stop_workers(*, work: Path = WORK, timeout: float = 600.0, poll: float = 5.0) -> dict[str, int]:
    """End every live worker gracefully: each running chunk is stopped and exported (``<id>/STOP``)
    and ``run --all`` ends (``WORK/STOP``); waits until their processes are gone (or ``timeout``),
    then removes the STOP files so the next start goes on. Returns ``{run id: pid}`` stopped;
    raises TimeoutError naming the workers still alive."""
    from cfdseed.solvers.runner import STOP_FILE

    held = live_workers(work)
    flags = [work / rid / STOP_FILE for rid in held] + [work / "STOP"]
    work.mkdir(parents=True, exist_ok=True)
    for f in flags:
        f.touch()
    t0 = time.time()
    try:
        while True:
            alive = {rid: pid for rid, pid in held.items() if _alive(pid)}
            if not alive:
                return held
            if time.time() - t0 > timeout:
                raise TimeoutError(f"workers still running after {timeout:g} s: {alive}")
            time.sleep(poll)
    finally:
        if not any(_alive(pid) for pid in held.values()):
            for f in flags:
                f.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """The process ``pid`` exists (another user's counts) and, if our child, has not exited."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a finished child of ours is a zombie until reaped: not alive
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


def decisions_due(campaign: Path = CAMPAIGN, progs: dict[str, dict[str, Any]] | None = None,
                  onsets: Path = ONSETS_NAMED) -> list[str]:
    """The registrations and analyses the protocol makes once runs are done and nobody has made yet
    (a worker goes on with the plan as it is; these need a person's command, each its own commit).
    ``progs``: :func:`progresses`; ``onsets``: the unblinded analysis, where a complete tier's
    groups must appear (amendment 11: a tier is analysed when its runs are done)."""
    runs = read_plan(campaign)
    progs = progresses(campaign) if progs is None else progs
    key_path = campaign / "key.json"
    key = json.loads(key_path.read_text()) if key_path.exists() else {}
    done = {r["id"]: is_done(r, progs[r["id"]]) for r in runs}
    out = []
    sweep = [r["id"] for r in runs if r["kind"] == "sweep"]
    if sweep and all(done[i] for i in sweep) and not any(v.get("ic") == "trig-turbulent" for v in key.values()):
        out.append("the trig sweep is done: 'campaign select' registers trig-turbulent in the fair tier (amendment 5)")
    protocol = json.loads((campaign / "protocol.json").read_text())
    fr = protocol.get("flow_rate", {}).get("reference", {}).get("id")
    if fr in done and done[fr] and not any(v.get("tier") == "flow_rate" for v in key.values()):
        out.append(f"{fr} is done: 'campaign validate --run {fr}', 'campaign reference --run {fr}', then 'campaign "
                   "register --tier flow_rate ...' (amendment 9; refused unless the gate passes)")
    if runs and all(done.values()):
        out.append("every planned run is done: 'campaign analyse', then '--unblind'")
        return out
    judged = set(json.loads(onsets.read_text())["ensembles"]) if onsets.exists() else set()
    tiers: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        if r["kind"] == "ic":
            tiers.setdefault(r.get("tier", "ic"), []).append(r)
    for tier, members in tiers.items():
        if all(done[r["id"]] for r in members) and not {r["group"] for r in members} <= judged:
            out.append(f"tier {tier} is done: 'campaign analyse', then '--unblind' (amendment 11), and commit "
                       "the results")
    return out


def bin_profiles(t: np.ndarray, prof: dict[str, np.ndarray], t0: float, width: float) -> dict[str, np.ndarray]:
    """Means of profile records in bins ``[t0 + k width, t0 + (k+1) width)``: ``t`` (bin centres'
    mean record time), ``n`` (records per bin) and each key ``(nbins, ny)`` float32; empty bins dropped."""
    t = np.asarray(t, dtype=np.float64)
    k = np.floor((t - t0) / width + 1e-9).astype(int)
    bins = np.unique(k)
    out: dict[str, np.ndarray] = {
        "t": np.array([t[k == b].mean() for b in bins], dtype=np.float64).reshape(-1),
        "n": np.array([(k == b).sum() for b in bins], dtype=np.int64).reshape(-1),
    }
    for key, v in prof.items():
        v = np.asarray(v)
        means = np.empty((bins.size, *v.shape[1:]), dtype=np.float32)  # (nbins, ny), also when empty
        for i, b in enumerate(bins):
            means[i] = v[k == b].mean(axis=0)
        out[key] = means
    return out


def read_chunks(campaign: Path, run_id: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """All committed chunks of a run joined: (time series columns, binned profiles incl. ``y``)."""
    files = sorted((campaign / run_id).glob("chunk_*.npz"))
    series: dict[str, list[np.ndarray]] = {}
    prof: dict[str, list[np.ndarray]] = {}
    y = None
    for f in files:
        with np.load(f) as z:
            for key in z.files:
                if key.startswith("series/"):
                    series.setdefault(key[7:], []).append(z[key])
                elif key.startswith("profiles/"):
                    prof.setdefault(key[9:], []).append(z[key])
                elif key == "y":
                    y = z[key]
    s = {k: np.concatenate(v) for k, v in series.items()}
    p = {k: np.concatenate(v) for k, v in prof.items()}
    if y is not None:
        p["y"] = y
    return s, p


def record_problems(campaign: Path, run: dict[str, Any], prog: dict[str, Any] | None = None,
                    end_within: float | None = None) -> list[str]:
    """Why a run's committed records are not what ``run.json`` says (empty: they are): every chunk
    it lists present as ``chunk_NNN.npz`` and no other, each with the records it counts, all of them
    inside its [t0, t1); the chunks contiguous from t = 0 to the run's t; time strictly increasing
    and the step counter non-decreasing across the whole record; every series value finite. A
    finished run's last record at most ``end_within`` before its horizon (the analysis grid's half
    step; None: not checked). Blind: no signal's value is read beyond its finiteness.

    ``read_chunks`` joins whatever files are there; a chunk lost between a worker and a commit
    would leave a gap the analysis's interpolation bridges silently, so the analysis refuses a run
    with problems."""
    prog = progress(campaign, run) if prog is None else prog
    if prog.get("failed"):
        return []  # censored by the protocol, its series are not compared
    out: list[str] = []
    rid, chunks = run["id"], prog["chunks"]
    listed = [f"chunk_{c['index']:03d}.npz" for c in chunks]
    present = sorted(f.name for f in (campaign / rid).glob("chunk_*.npz"))
    if listed != [f"chunk_{k:03d}.npz" for k in range(len(chunks))]:
        out.append(f"run.json's chunk indices are not 0..{len(chunks) - 1}")
    if present != listed:
        missing, extra = sorted(set(listed) - set(present)), sorted(set(present) - set(listed))
        out.append(f"chunk files {'missing: ' + ', '.join(missing) if missing else ''}"
                   f"{'; ' if missing and extra else ''}{'not in run.json: ' + ', '.join(extra) if extra else ''}")
        return out
    t_prev, ts, steps = 0.0, [], []
    for c, name in zip(chunks, listed):
        if abs(c["t0"] - t_prev) > 1e-9:
            out.append(f"{name} starts at t = {c['t0']:.6g}, the previous chunk ended at {t_prev:.6g}")
        t_prev = c["t1"]
        with np.load(campaign / rid / name) as z:
            cols = {k[7:]: z[k] for k in z.files if k.startswith("series/")}
        t = cols.get("t", np.empty(0))
        if t.size != c["records"]:
            out.append(f"{name} holds {t.size} records, run.json counts {c['records']}")
        if t.size and (t[0] < c["t0"] - 1e-12 or t[-1] >= c["t1"] - 1e-12):
            out.append(f"{name}: records at t = {t[0]:.6g}..{t[-1]:.6g} outside its [{c['t0']:.6g}, {c['t1']:.6g})")
        bad = sorted(k for k, v in cols.items() if not np.all(np.isfinite(v)))
        if bad:
            out.append(f"{name}: non-finite values in {', '.join(bad)}")
        ts.append(t)
        steps.append(cols.get("step", np.zeros_like(t)))
    if abs(t_prev - prog["t"]) > 1e-9:
        out.append(f"the chunks end at t = {t_prev:.6g}, run.json's t is {prog['t']:.6g}")
    t, step = np.concatenate(ts) if ts else np.empty(0), np.concatenate(steps) if steps else np.empty(0)
    if np.any(np.diff(t) <= 0):
        out.append(f"time not strictly increasing ({int(np.sum(np.diff(t) <= 0))} places)")
    if np.any(np.diff(step) < 0):
        out.append("the step counter decreases")
    if end_within is not None and is_done(run, prog) and (not t.size or t[-1] < run["horizon"] - end_within):
        last = f"{t[-1]:.6g}" if t.size else "none"
        out.append(f"last record at t = {last}, more than {end_within:g} before the horizon {run['horizon']:g}")
    return out


def committed_problems(campaign: Path, work: Path, progs: dict[str, dict[str, Any]],
                       now: float | None = None) -> list[str]:
    """:func:`record_problems` of every run with committed chunks that no live worker on this host
    is writing, as ``"id: problem"`` (``campaign status``)."""
    now = time.time() if now is None else now
    dt = json.loads((campaign / "protocol.json").read_text())["dt"]
    return [f"{r['id']}: {why}" for r in read_plan(campaign)
            if progs[r["id"]]["chunks"] and not _fresh_here(lock_info(work, r["id"]), now)
            for why in record_problems(campaign, r, progs[r["id"]], end_within=dt / 2)]


def refuse_record_problems(campaign: Path, runs: Sequence[dict[str, Any]], dt: float) -> None:
    """Raise SystemExit naming every problem :func:`record_problems` finds in ``runs``, the runs an
    analysis reads (finished runs' last records within ``dt / 2`` of their horizons: the analysis
    grid's step ``dt``); runs still being written are left to ``campaign status``."""
    problems = [f"{r['id']}: {why}" for r in runs for why in record_problems(campaign, r, end_within=dt / 2)]
    if problems:
        raise SystemExit("committed records differ from their run.json (restore the files from git or the "
                         "worker's folder first):\n  " + "\n  ".join(problems))


# -- running (MPI, Dedalus) ---------------------------------------------------------------------
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


def steps_by_rigor(prog: dict[str, Any]) -> dict[str, int]:
    """A run's solver steps by the FFTW planning rigor its chunks ran with (amendment 10; a chunk
    without the record ran with Dedalus' default, ``measure``)."""
    out: Counter[str] = Counter()
    for c in prog["chunks"]:
        out[c.get("fftw_rigor", "measure")] += int(c.get("steps", 0))
    return dict(out)


def ic_source(ic: dict[str, Any], ch: Any, work: Path) -> tuple[str, dict[str, Any]]:
    """init_field source and options of a run's IC. Collective.

    ``{"state": PATH}`` (a control: a state of the reference, ``state.npz`` format) is written as a
    3-D field file first and delivered through ``source="snapshot"``, i.e. through the same
    interpolation and enforcement as every other IC; ``{"state": PATH, "source": "phase-randomised"}``
    delivers the same state with random Fourier phases (the fair baseline with the DNS's statistics
    and spectra but not its structures).
    """
    from cfdseed._collective import run_agreed
    from cfdseed.fields import write_field

    options = dict(ic.get("options") or {})
    if "model_sha256" in ic:  # a registered model: the file the runs judge must be the one registered
        model = ic.get("target_model", options.get("model"))

        def same_model() -> None:
            if ch.comm.rank == 0 and (got := model_sha256(model)) != ic["model_sha256"]:
                raise RuntimeError(f"model {model!r} has sha256 {got}, but {ic['model_sha256']} "
                                   "was registered: the runs judge the registered model only")
        run_agreed(ch.comm, same_model)
    if "target_model" in ic:  # calibrated to that model's training statistics (sem: the gan IC's target)
        options["calibrate"] = run_agreed(ch.comm, lambda: model_statistics(ic["target_model"]))
    if "state" not in ic:
        return ic["source"], options
    path = work / "control-field.h5"

    def convert() -> None:
        if ch.comm.rank == 0:
            with np.load(ROOT / ic["state"]) as f:
                meta = json.loads(str(f["meta"]))
                write_field(path, f["u"].astype(np.float64), ch.grid.global_grid(),
                            attrs=dict(source=f"campaign state {ic['state']}", t=meta["sim_time"]))

    run_agreed(ch.comm, convert)
    return ic.get("source", "snapshot"), dict(options, path=str(path))


def model_statistics(model: str) -> dict[str, Any]:
    """A model's stored training statistics (``StressTarget.to_dict``: a ``calibrate`` option)."""
    from cfdseed.calibrate import stress_target
    from cfdseed.checkpoint import model_path, read_checkpoint

    return stress_target(dict(read_checkpoint(model_path(model))["statistics"])).to_dict()


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
                ch.seed(source, options=options, seed=run["ic"].get("seed"))
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

        summary = drive(ch, work, settings, restart=ck_ok, seed_fn=seed_fn, monitor=heartbeat,
                        note=dict(campaign_run=run["id"], chunk=len(prog["chunks"])))
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


@functools.cache
def _report_module() -> Any:
    """``campaign_report.py``, loaded once (its dataclasses must be one class per process)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("campaign_report", Path(__file__).with_name("campaign_report.py"))
    report = importlib.util.module_from_spec(spec)
    sys.modules["campaign_report"] = report  # dataclasses look their module up there
    spec.loader.exec_module(report)
    return report


def _reference_run(campaign: Path, run_id: str | None = None
                   ) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A reference run's plan entry (``run_id``, default the first: the body force's), its time
    series and its binned profiles."""
    run = next((r for r in read_plan(campaign) if r["kind"] == "reference" and run_id in (None, r["id"])), None)
    if run is None:
        raise SystemExit(f"{campaign / 'plan.json'} has no reference run" + (f" {run_id!r}" if run_id else ""))
    return (run, *read_chunks(campaign, run["id"]))


def _reference(campaign: Path, results: Path, run_id: str | None = None) -> int:
    """``campaign reference``: a reference run's statistics and calibration under its view of the
    protocol -> JSON (:func:`reference_json_of`) + table."""
    report = _report_module()
    run, series, _ = _reference_run(campaign, run_id)
    protocol = report.view(report.read_protocol(campaign), report.driving_of(run))
    stats = report.reference_statistics(protocol, run, series, t_done=progress(campaign, run)["t"])
    stats["reproduce"] = ("python benchmarks/transient.py campaign reference"
                          + (f" --run {run['id']}" if run_id else "") + " (from the committed chunks)")
    dest = reference_json_of(results, run)
    report.write_json(dest, stats)
    print("\n".join(report.format_reference(stats)))
    print(f"written: {dest}")
    return 0


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
    report = _report_module()
    old = [r for r in json.loads((ROOT / "benchmarks" / "results" / "transient.json").read_text())["runs"]
           if r["ic"] == "trig" and r["seed"] == 0][0]["series"]
    b = ref.signals.index("bulk")
    grid = ref.dt * np.arange(int(round(protocol["horizon"] / ref.dt)) + 1)
    return report.bulk_template(old["t"], old["bulk"], float(ref.mean[b]), float(ref.integral_time()[b]), grid)


def _power(campaign: Path, reference_json: Path) -> int:
    """``campaign power``: the protocol's ensemble-size decision (complete reference only)."""
    report = _report_module()
    stats = json.loads(reference_json.read_text())
    if not stats.get("complete") or not stats.get("k"):
        raise SystemExit(f"{reference_json}: the reference is not complete; the protocol decides N only then")
    protocol = report.read_protocol(campaign)
    run, series, _ = _reference_run(campaign)
    ref = report.reference(protocol, run, series)
    res = report.power(ref, power_template(ref, protocol), stats["k"], protocol,
                       np.random.default_rng(protocol["seed"] + 1))
    res["template"] = "trig seed 0 bulk velocity of benchmarks/results/transient.json, continued by its integral time"
    out = reference_json.with_name("power.json")
    report.write_json(out, res)
    print(json.dumps(res, indent=1))
    print(f"written: {out}")
    return 0


#: Settings every IC run shares (the reference's case; no slices, no snapshots).
IC_RUN = dict(kind="ic", chunk=4.0, series_every=20, checkpoint_every=2000, profile_bin=0.5)


def member_entry(ic: dict[str, Any], m: int) -> dict[str, Any]:
    """Member ``m``'s ``ic`` entry of an IC (``states``: its state, one a member)."""
    entry = {k: v for k, v in ic.items() if k != "states"}
    if "states" in ic:
        entry["state"] = ic["states"][m]
    return entry


def register(campaign: Path, tier: str, ics: dict[str, dict[str, Any]], members: int,
             seed: int, *, kind: str = "ic", seeds: list[int] | None = None,
             horizon: float | None = None, interleave: bool = False, reference: str = "ref",
             before_tier: str | None = None) -> dict[str, str]:
    """Add a tier's IC ensembles to the plan, blinded; returns the new key ``{group: IC name}``.

    ``ics`` maps an IC name to its ``ic`` entry (``source``/``options`` or, for controls,
    ``states``: a list of state files, one a member). Every run gets an opaque id and its
    ensemble an opaque group label (drawn with ``seed``); the runs are ordered member by member,
    shuffled within a member, so a tier stopped part-way leaves ensembles of equal size; appended
    to the plan, or with ``interleave`` each new member's run right after that member's runs of the
    same tier (an ensemble joining a registered tier: trig-turbulent after the sweep). The key
    (group -> IC name, tier) is merged into ``key.json``, which the analysis reads only to join
    names to finished onsets (``campaign_report.join``). ``kind``,
    ``seeds`` and ``horizon``: the runs' kind (the analysis judges ``"ic"`` runs only), member
    seeds and horizon (default the protocol's); ``reference``: the reference run whose case (spec)
    the runs share; ``before_tier``: the runs go before that tier's first run (else appended).
    """
    plan_path, key_path = campaign / "plan.json", campaign / "key.json"
    plan = json.loads(plan_path.read_text())
    ref = next(r for r in plan["runs"] if r["kind"] == "reference" and r["id"] == reference)
    protocol = json.loads((campaign / "protocol.json").read_text())
    seeds = protocol["member_seeds"][:members] if seeds is None else list(seeds)
    if len(seeds) < members:
        raise SystemExit(f"the protocol lists {len(protocol['member_seeds'])} member seeds, not {members}")
    key = json.loads(key_path.read_text()) if key_path.exists() else {}
    if any(v["tier"] == tier and v["ic"] in ics for v in key.values()):
        raise SystemExit(f"tier {tier!r} already registers some of {sorted(ics)}: an ensemble is run once")
    rng = np.random.default_rng(seed)
    taken = {r["id"] for r in plan["runs"]} | set(key)
    def label(prefix: str) -> str:
        while (s := prefix + "".join(rng.choice(list("0123456789abcdef"), 6))) in taken:
            pass
        taken.add(s)
        return s
    for name, ic in ics.items():
        if "states" in ic and len(ic["states"]) < members:
            raise SystemExit(f"{name}: {len(ic['states'])} states for {members} members")
    groups = {name: label("g") for name in ics}
    batches = []
    for m, member_seed in enumerate(seeds):
        batch = []
        for name, ic in ics.items():
            entry = dict(member_entry(ic, m), seed=member_seed)
            batch.append(dict(id=label("r"), group=groups[name], tier=tier,
                              horizon=protocol["horizon"] if horizon is None else horizon,
                              spec=ref["spec"], ic=entry, **dict(IC_RUN, kind=kind)))
        batches.append([batch[j] for j in rng.permutation(len(batch))])
    new = [r for b in batches for r in b]
    at = next((i for i, r in enumerate(plan["runs"]) if before_tier and r.get("tier") == before_tier), None)
    if interleave:
        plan["runs"] = _insert_members(plan["runs"], tier, seeds, batches)
    elif at is not None:
        plan["runs"] = plan["runs"][:at] + new + plan["runs"][at:]
    else:
        plan["runs"] = plan["runs"] + new
    plan_path.write_text(json.dumps(plan, indent=1) + "\n")
    key.update({g: dict(ic=name, tier=tier, members=members) for name, g in groups.items()})
    key_path.write_text(json.dumps(key, indent=1) + "\n")
    return {g: name for name, g in groups.items()}


def _insert_members(runs: list[dict[str, Any]], tier: str, seeds: list[int],
                    batches: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """``runs`` with member ``m``'s new ``batches[m]`` right after the tier's last run of seed
    ``seeds[m]``; members the tier has no run of are appended, in member order."""
    out, tail = list(runs), []
    for member_seed, batch in zip(seeds, batches):
        at = [i for i, r in enumerate(out) if r.get("tier") == tier and r["ic"].get("seed") == member_seed]
        if at:
            out[at[-1] + 1:at[-1] + 1] = batch
        else:
            tail += batch
    return out + tail


def registration_seed(campaign: Path) -> int:
    """The label seed of the next registration: the protocol's seed + 2 + the groups registered so
    far (the first registration's seed unchanged), so that two registrations never draw the same labels."""
    key_path = campaign / "key.json"
    registered = len(json.loads(key_path.read_text())) if key_path.exists() else 0
    return int(json.loads((campaign / "protocol.json").read_text())["seed"]) + 2 + registered


def model_sha256(model: str) -> str:
    """sha256 of the checkpoint file behind ``model`` (a packaged model's name or a path)."""
    from cfdseed.checkpoint import file_sha256

    return file_sha256(model)


#: The protocol's IC tables, by tier (``protocol.json``).
TIER_ICS = {"confirmatory": "confirmatory_ics", "fair": "fair_ics", "exploratory": "exploratory_ics",
            "flow_rate": "flow_rate"}


def tier_table(protocol: dict[str, Any], tier: str) -> dict[str, Any] | None:
    """A tier's IC table of the protocol (the flow-rate view's in its own block, amendment 9)."""
    table = protocol.get(TIER_ICS.get(tier, ""))
    return table["ics"] if tier == "flow_rate" and table is not None else table


def tier_reference(protocol: dict[str, Any], tier: str) -> str:
    """The reference run a tier's runs share the case of and take their states from."""
    return protocol["flow_rate"]["reference"]["id"] if tier == "flow_rate" else "ref"


def tier_ics(campaign: Path, tier: str, names: list[str], model: str | None = None) -> dict[str, dict[str, Any]]:
    """The protocol's ICs ``names`` of ``tier`` as plan ``ic`` entries. Controls and
    phase-randomised: the reference's snapshots in time order, one a member; ``gan``: ``model``
    (a packaged model's name or a repository path) with its file's sha256, which every run checks
    before it builds its IC (every IC of source ``gan``: the exploratory ``gan-v2.1`` too); ``sem``: calibrated to that model's training statistics (the gan IC's
    target; sha256 checked alike). ``trig-turbulent`` is registered by :func:`select_amplitude`."""
    protocol = json.loads((campaign / "protocol.json").read_text())
    table = tier_table(protocol, tier)
    if table is None:
        raise SystemExit(f"tier {tier!r} has no IC table in the protocol (tiers: {', '.join(TIER_ICS)})")
    out = {}
    for name in names:
        if name not in table:
            raise SystemExit(f"{name!r} is not a {tier} IC of the protocol ({', '.join(table)})")
        ic = table[name]
        if "amplitude" in ic:
            raise SystemExit(f"{name}: its amplitude is the sweep's choice: 'campaign select' registers it")
        if ic["source"] in ("gan", "sem"):
            if model is None:
                raise SystemExit(f"{name} is registered with the GAN's model (--model NAME): its sha256 goes "
                                 "into the plan, and into its own amendment")
            entry = dict(source=ic["source"], options=dict(ic["options"]), model_sha256=model_sha256(model))
            if ic.get("model_sha256", entry["model_sha256"]) != entry["model_sha256"]:
                raise SystemExit(f"{name}: the protocol registered model sha256 {ic['model_sha256']}; "
                                 f"{model!r} has {entry['model_sha256']}")
            if ic["source"] == "gan":
                entry["options"]["model"] = model
            else:
                entry["target_model"] = model
            out[name] = entry
            continue
        if "states" in ic:
            snaps = sorted((campaign / tier_reference(protocol, tier) / "snapshots").glob("t*.npz"))
            out[name] = dict(states=[str(p.relative_to(ROOT)) for p in snaps])
            if ic["source"] != "snapshot":
                out[name]["source"] = ic["source"]
            if "options" in ic:
                out[name]["options"] = dict(ic["options"])
        else:
            out[name] = dict(source=ic["source"], options=dict(ic["options"]))
    return out


def register_flow_rate(campaign: Path, names: list[str], members: int, model: str | None) -> dict[str, str]:
    """Register the flow-rate view's IC runs (amendment 9): only once its reference is done and
    passes the validation gate (:func:`validate_reference`), with the view's ensemble size, case and
    horizon, before the exploratory runs."""
    protocol = json.loads((campaign / "protocol.json").read_text())
    fr = protocol["flow_rate"]
    if members != fr["members"]:
        raise SystemExit(f"the flow-rate view registered N = {fr['members']}, not {members}")
    ref_id = fr["reference"]["id"]
    gate = validate_reference(campaign, ref_id)
    if not gate["complete"] or not gate["passed"]:
        raise SystemExit(f"{ref_id} is {'not done' if not gate['complete'] else 'done but fails the gate'}: "
                         f"Re_tau {gate['re_tau']:.1f}, U+ L2 {gate['u_plus_rel_l2']:.4f}, peak u'+ "
                         f"{gate['peak_u_rel_err']:.4f} ({gate['checks']}); the view's IC runs are not registered")
    return register(campaign, "flow_rate", tier_ics(campaign, "flow_rate", names, model), members,
                    registration_seed(campaign), horizon=fr["horizon"], reference=ref_id, before_tier="exploratory")


def sweep_ics(campaign: Path) -> tuple[dict[str, dict[str, Any]], list[int]]:
    """The protocol's ``trig_sweep`` as plan ``ic`` entries (one an amplitude) and its seeds."""
    protocol = json.loads((campaign / "protocol.json").read_text())
    sw = protocol["trig_sweep"]
    base = protocol["fair_ics"][sw["ic"]]
    return ({f"{sw['ic']} a={a:g}": dict(source=base["source"], options=dict(base["options"], amplitude=a))
             for a in sw["amplitudes"]}, list(sw["seeds"]))


def register_sweep(campaign: Path) -> dict[str, str]:
    """Register the protocol's ``trig_sweep``: one group an amplitude, its seeds, its horizon, runs of
    kind ``"sweep"`` (exploratory, never judged by the rule; the key names each amplitude)."""
    ics, seeds = sweep_ics(campaign)
    horizon = json.loads((campaign / "protocol.json").read_text())["trig_sweep"]["horizon"]
    return register(campaign, "sweep", ics, len(seeds), registration_seed(campaign), kind="sweep",
                    seeds=seeds, horizon=horizon)


#: The initial values a check records (the runner's columns at t = 0).
INITIAL = ("bulk", "bulk_w", "tau_lower", "tau_upper", "probe_u", "tke")


def initial_values(ch: Any) -> dict[str, float]:
    """The channel's :data:`INITIAL` values now (``DedalusChannel.diagnostics``). Collective."""
    d = ch.diagnostics()
    return {k: float(getattr(d, k)) for k in INITIAL}


def build_ics(items: list[tuple[dict[str, Any], int]], spec: dict[str, Any], work: Path) -> list[dict[str, Any]]:
    """Build each ``(ic entry, seed)`` on the campaign's channel as its run would (:func:`ic_source`,
    ``DedalusChannel.seed`` with its checks), without running: the initial values :data:`INITIAL`,
    or the error that stopped it (rank 0's record on every rank). Collective."""
    from mpi4py import MPI

    from cfdseed.solvers.dedalus import ChannelSpec, DedalusChannel

    comm = MPI.COMM_WORLD
    ch = DedalusChannel(ChannelSpec.from_json(spec), comm)
    work.mkdir(parents=True, exist_ok=True)
    out = []
    for entry, seed in items:
        try:  # every step agrees on errors: all ranks raise alike
            source, options = ic_source(entry, ch, work)
            ch.seed(source, options=options, seed=seed)
        except Exception as exc:  # noqa: BLE001 - reported, the check goes on
            out.append({"error": f"{type(exc).__name__}: {exc}"})
            continue
        out.append(initial_values(ch))
    return comm.bcast(out, root=0)  # the root's words (the others' messages name the failing rank)


def check_ics(ics: dict[str, dict[str, Any]], seeds: list[int], spec: dict[str, Any], work: Path) -> dict[str, Any]:
    """:func:`build_ics` for every IC of ``ics`` (``states``: one a member) and member seed:
    ``{name: {seed: initial values (5 decimals) or error}}``. Collective."""
    items, where = [], []
    for name, ic in ics.items():
        for m, seed in enumerate(seeds):
            items.append((member_entry(ic, m), seed))
            where.append((name, str(seed)))
    out: dict[str, Any] = {name: {} for name in ics}
    for (name, seed), row in zip(where, build_ics(items, spec, work)):
        out[name][seed] = row if "error" in row else {k: round(v, 5) for k, v in row.items()}
    return out


#: The registered ICs' initial values (``campaign check --plan``), in the campaign folder.
IC_CHECK = "ic_check.json"
#: How closely a run's IC must reproduce its registered build (relative; W_b absolute).
IC_RTOL = 1e-4


def _differs(row: dict[str, float], want: dict[str, float]) -> tuple[float, float]:
    """Largest relative difference of the initial values (W_b, near zero: absolute) and W_b's."""
    rel = max(abs(row[k] - want[k]) / max(abs(want[k]), 1e-12) for k in INITIAL if k != "bulk_w")
    return rel, abs(row["bulk_w"] - want["bulk_w"])


def same_as_registered(campaign: Path, run_id: str, built: dict[str, float]) -> bool:
    """Rank 0, before a run's first step: its IC's initial values against the committed build of
    :data:`IC_CHECK` (where that has one); raises when they differ by more than :data:`IC_RTOL`: the
    code of now no longer builds the IC that was registered, and the run must not start."""
    path = campaign / IC_CHECK
    want = json.loads(path.read_text())["runs"].get(run_id, {}).get("built", {}) if path.exists() else {}
    if not want or "error" in want:
        return False
    rel, absw = _differs(built, want)
    if rel > IC_RTOL or absw > IC_RTOL:
        raise RuntimeError(f"run {run_id}: its IC differs from the build recorded in {path} (relative "
                           f"{rel:.1e}, W_b {absw:.1e}): the code changed a registered IC; the run is not "
                           "started ('campaign check --plan' shows which)")
    return True


def check_plan(campaign: Path, work: Path, ids: list[str] | None = None, rtol: float = IC_RTOL,
               previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rebuild the IC of every IC and sweep run of the plan (or of ``ids``) with the code of now and
    compare it with what it was: a started run with its own record at t = 0, another with its values
    in ``previous`` (an earlier check's ``runs``, e.g. the committed one), if any. ``same`` when every
    initial value agrees to ``rtol`` (relative; W_b, near zero, absolute): a registered IC the code
    no longer reproduces is a changed IC. Each case (spec) is built on its own channel. Per run id, no
    IC names. Collective."""
    runs = [r for r in read_plan(campaign) if (r["id"] in ids if ids else r["kind"] in ("ic", "sweep"))]
    by_case: dict[str, list[dict[str, Any]]] = {}  # one channel a case (the views' cases differ)
    for r in runs:
        by_case.setdefault(json.dumps(r["spec"], sort_keys=True), []).append(r)
    pairs = []
    for case_runs in by_case.values():
        pairs += zip(case_runs, build_ics([(r["ic"], r["ic"].get("seed")) for r in case_runs], case_runs[0]["spec"], work))
    out: dict[str, Any] = {}
    for run, row in pairs:
        entry: dict[str, Any] = {"built": row}
        first = campaign / run["id"] / "chunk_000.npz"
        before = (previous or {}).get(run["id"], {}).get("built", {})
        if first.exists():
            with np.load(first) as f:
                if float(f["series/t"][0]) == 0.0:
                    entry.update(against="t = 0 record", expected={k: float(f[f"series/{k}"][0]) for k in INITIAL})
        elif before and "error" not in before:
            entry.update(against="previous check", expected=before)
        if "expected" in entry and "error" not in row:
            rel, absw = _differs(row, entry["expected"])
            entry.update(max_rel_diff=rel, bulk_w_diff=absw, same=bool(rel <= rtol and absw <= rtol))
        out[run["id"]] = entry
    return out


def sweep_scores(campaign: Path) -> dict[str, Any]:
    """The sweep's score per run and per amplitude and the chosen amplitude (``trig_sweep.score``);
    raises SystemExit while a sweep run is not done."""
    report = _report_module()
    protocol = report.read_protocol(campaign)
    sw = protocol["trig_sweep"]
    plan = read_plan(campaign)
    runs = [r for r in plan if r["kind"] == "sweep"]
    if not runs:
        raise SystemExit("no sweep registered ('campaign register --tier sweep')")
    force_ref = [next(r for r in plan if r["kind"] == "reference")]  # what _reference_run reads
    refuse_record_problems(campaign, force_ref + [r for r in runs if is_done(r, progress(campaign, r))], protocol["dt"])
    ref_run, ref_series, _ = _reference_run(campaign)
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


def select_amplitude(campaign: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """``campaign select``: the sweep's scores and the ``trig-turbulent`` ensemble registered in the
    fair tier with the chosen amplitude (each member after that member's fair runs)."""
    res = sweep_scores(campaign)
    protocol = json.loads((campaign / "protocol.json").read_text())
    name = protocol["trig_sweep"]["ic"]
    base = protocol["fair_ics"][name]
    key = json.loads((campaign / "key.json").read_text())
    members = next((v["members"] for v in key.values() if v["tier"] == "fair"), None)
    if members is None:
        raise SystemExit("register the fair tier first: trig-turbulent joins its ensembles, of their size")
    ic = dict(source=base["source"], options=dict(base["options"], amplitude=res["chosen"]))
    return res, register(campaign, "fair", {name: ic}, members, registration_seed(campaign), interleave=True)


def reference_json_of(results: Path, run: dict[str, Any]) -> Path:
    """Where ``campaign reference`` writes a reference run's statistics: ``results`` for the body
    force's (``reference.json``), ``reference_<id>.json`` beside it for another view's."""
    report = _report_module()
    return results if report.driving_of(run) == "force" else results.with_name(f"reference_{run['id']}.json")


def _view_stats(reference_json: Path) -> dict[str, Any]:
    stats = json.loads(reference_json.read_text()) if reference_json.exists() else {}
    if not stats.get("complete") or not stats.get("k"):
        raise SystemExit(f"{reference_json}: the reference is not complete; no rule to judge by yet")
    if not stats.get("k_boot"):
        raise SystemExit(f"{reference_json}: no k_boot (the resamples' band constants, amendment 4): "
                         "run 'campaign reference' first")
    return stats


def analyse(campaign: Path, reference_json: Path, key: dict[str, Any] | None = None, *,
            figure: Path | None = None, pairs: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Onsets of the IC ensembles by the protocol's rule, on opaque groups (``campaign analyse``).

    Per-run onsets (band constant k_1) for every finished IC run; the ensemble onset with its
    bootstrap interval and its cost (simulated time, steps, CPU-seconds; ``campaign_report.judge``)
    for every group whose registered members have all finished (k_N exists for the protocol's
    candidate sizes only); a member that failed (blew up) makes its ensemble censored. Each view
    (driving: body force, held flow rate) is judged against its own reference and its part of the
    protocol (``campaign_report.view``; the body force's statistics in ``reference_json``, another
    view's beside it, :func:`reference_json_of`). ``key`` (``key.json``): the IC names are joined to
    the finished results (unblinding) and the ensembles compared (``campaign_report.comparisons``:
    ``pairs`` of IC labels, default each GAN ensemble against every other of its case). ``figure``:
    the campaign figure's PNG per view (``campaign_report.plot_onsets``; blind: group labels; another
    view's with its driving in the name).
    """
    report = _report_module()
    protocol = report.read_protocol(campaign)
    plan = read_plan(campaign)
    refuse_record_problems(campaign, [r for r in plan if r["kind"] in ("ic", "reference")
                                      and is_done(r, progress(campaign, r))], protocol["dt"])
    drivings = sorted({report.driving_of(r) for r in plan if r["kind"] == "ic"}, key=lambda d: d != "force")
    registered: dict[str, int] = {}
    case: dict[str, dict[str, Any]] = {}  # group -> its runs' spec (one case a group)
    failed: dict[str, list[str]] = {}
    per_run: dict[str, Any] = {}
    judged_all: dict[str, Any] = {}
    ensembles: dict[str, Any] = {}
    views: dict[str, Any] = {}
    label = report.ic_labels(key) if key is not None else None
    for driving in drivings or ["force"]:
        ref_run = next((r for r in plan if r["kind"] == "reference" and report.driving_of(r) == driving), None)
        if ref_run is None:
            raise SystemExit(f"{campaign / 'plan.json'} has IC runs driven by {driving!r} but no reference of it")
        stats = _view_stats(reference_json_of(reference_json, ref_run))
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
            if prog.get("failed"):
                failed.setdefault(g, []).append(run["id"])
                per_run[run["id"]] = {"group": g, "censored": True, "onset_time": None, "failed": prog["failed"]}
                continue
            series, prof = read_chunks(campaign, run["id"])
            member = (series["t"], report.signals(series, pv["signals"], report.force_of(run, series)))
            runs_of.setdefault(g, []).append((member, (series["t"], series["step"]), prog["cpu_s"] / prog["t"]))
            profiles_of.setdefault(g, []).append(prof)
            r = ref.onset([member], k=k["1"], horizon=horizon, min_steady=ms)
            per_run[run["id"]] = {"group": g, "seed": run["ic"].get("seed"), "censored": r.censored,
                                  "onset_time": None if r.censored else r.onset_time, "reason": r.reason,
                                  "steps_by_fftw_rigor": steps_by_rigor(prog)}
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
    for g, ids in failed.items():
        not_judged[g] = f"member(s) {', '.join(ids)} failed: censored, no series to compare"
        if finished[g] == registered[g]:
            ensembles[g] = {"members": registered[g], "censored": True, "onset_time": None,
                            "reason": f"member(s) {', '.join(ids)} failed"}
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
        if verdict_study(rule).exists():  # amendment 13: the registered verdicts' power, stated beside them
            out["comparisons"]["verdict_power"] = report.verdict_power(
                json.loads(verdict_study(rule).read_text()), rule, str(protocol["level"]))
    if "force" in views and "figure" in views["force"]:
        out["figure"] = views["force"]["figure"]
    return out


def held_elsewhere(work: Path, run_id: str, now: float | None = None) -> bool:
    """Another live process on this host runs ``run_id`` (a fresh lock whose pid exists and is not ours)."""
    lock = lock_info(work, run_id)
    now = time.time() if now is None else now
    return _fresh_here(lock, now) and lock["pid"] != os.getpid() and _alive(lock["pid"])


def next_run(campaign: Path = CAMPAIGN, work: Path | None = None) -> dict[str, Any] | None:
    """The first planned run that is not done (with ``work``: nor run by another live worker, so
    several ``campaign run --all`` workers, started a minute apart, share the plan)."""
    for run in read_plan(campaign):
        if not is_done(run, progress(campaign, run)) and not (work is not None and held_elsewhere(work, run["id"])):
            return run
    return None


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
        _report_module().write_json(dest, res)
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
        report = _report_module()
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
                           registration_seed(campaign))
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
        _report_module().write_json(dest, res)
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
    report = _report_module()
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
    _report_module().write_json(dest, {"tier": tier, "seeds": seeds, "ics": res, "reproduce":
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
