"""The transient campaign's plan and each run's committed progress (part of ``campaign.py``).

Which runs are planned (``plan.json``), how far each got (its ``run.json``), which a live worker on
this host holds (the working folder's ``RUNNING`` locks), the next run to take, the status lines and
the decisions the protocol makes once runs are done. Pure file reading, no MPI.
"""

from __future__ import annotations

import json
import math
import os
import socket
from collections import Counter
import time
from pathlib import Path
from typing import Any

import numpy as np


ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = ROOT / "benchmarks" / "campaign"
WORK = ROOT / "runs" / "campaign"
#: ``campaign analyse --unblind``'s result (the ensembles it judged): a complete tier not in it is due.
ONSETS_NAMED = ROOT / "benchmarks" / "results" / "campaign_onsets_named.json"
HEARTBEAT_S = 600  # a run whose lock is older than this is reported as stale, not running


def read_plan(campaign: Path = CAMPAIGN) -> list[dict[str, Any]]:
    """The planned runs, in order."""
    plan = json.loads((campaign / "plan.json").read_text())
    ids = [r["id"] for r in plan["runs"]]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{campaign / 'plan.json'}: duplicate run ids {ids}")
    return plan["runs"]


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


def fresh_here(lock: dict[str, Any] | None, now: float) -> bool:
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
    """Human-readable campaign status: one line a run, one a tier's block of consecutive runs in the
    plan (a reference: its own; a tier in two places, two lines), totals;
    rates from each run's latest chunks (:func:`recent_rate`). ``progs``: :func:`progresses`."""
    now = time.time() if now is None else now
    progs = progresses(campaign) if progs is None else progs
    lines, left_h, left_wall, unrated = [], 0.0, 0.0, []
    rates = []  # measured h/u_tau per wall-hour of the IC runs: the estimate for runs without one
    # contiguous blocks of the plan, each named by its tier (a reference: its id) -> [runs, done,
    # h/u_tau left]; a tier whose runs lie in two places of the plan gets a line for each
    tiers: list[tuple[str, list[float]]] = []
    plan = read_plan(campaign)
    for run in plan:
        prog = progs[run["id"]]
        name = run["id"] if run["kind"] == "reference" else run.get("tier", run["kind"])
        if not tiers or tiers[-1][0] != name:
            tiers.append((name, [0, 0, 0.0]))
        tier = tiers[-1][1]
        tier[0] += 1
        tier[1] += is_done(run, prog)
        tier[2] += max(run["horizon"] - prog["t"], 0.0) if not prog.get("failed") else 0.0
        lock = lock_info(work, run["id"])
        if prog.get("failed"):
            state = f"failed: {prog['failed']}"
        elif is_done(run, prog):
            state = "done"
        elif fresh_here(lock, now):
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
    blocks = Counter(name for name, _ in tiers)
    seen: Counter[str] = Counter()
    for name, (n, done, rest) in tiers:  # in plan order: the order the workers take them
        seen[name] += 1
        part = f" (part {seen[name]} of {blocks[name]})" if blocks[name] > 1 else ""
        est = f", ~{rest / typical:.1f} wall-h for one worker at the median rate" if rest > 0 and math.isfinite(typical) else ""
        lines.append(f"tier {name}{part}: {done} of {n} runs done, {rest:.1f} h/u_tau left{est}")
    lines.append(f"left: {left_h:.1f} h/u_tau ({wall})")
    later = unregistered(campaign, {r.get("tier") for r in plan if r["kind"] == "ic"})
    if later:
        est = f", ~{later / typical:.1f} wall-h for one worker at the median rate" if math.isfinite(typical) else ""
        lines.append(f"not yet registered: the flow-rate view's IC runs, {later:.0f} h/u_tau{est} (after ref-cfr "
                     "passes its gate, amendment 9)")
    return lines


def unregistered(campaign: Path, tiers: set[Any]) -> float:
    """h/u_tau of the runs the protocol fixes but registers later: the flow-rate view's IC runs
    (``protocol.json`` ``flow_rate``: members x ICs x horizon) while ``tiers``, the plan's IC runs'
    tiers, hold none of them."""
    path = campaign / "protocol.json"
    fr = json.loads(path.read_text()).get("flow_rate") if path.exists() else None
    if not fr or "flow_rate" in tiers:
        return 0.0
    return float(fr["members"] * len(fr["ics"]) * fr["horizon"])


def pid_alive(pid: int) -> bool:
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
                   "register --tier flow_rate ...' (amendment 9; refused unless the gate passes) and the view's "
                   "verdict study (amendment 21: protocol.json flow_rate.verdict_study.command)")
    study = protocol.get("flow_rate", {}).get("verdict_study", {})
    study_due = bool(study) and not (ROOT / study["output"]).exists()  # amendment 21, before the view's analysis
    if runs and all(done.values()):
        if study_due and any(r.get("tier") == "flow_rate" for r in runs):
            out.append(f"the flow-rate view is done: first its verdict study (amendment 21: {study['command']})")
        out.append("every planned run is done: 'campaign analyse', then '--unblind'")
        return out
    judged = set(json.loads(onsets.read_text())["ensembles"]) if onsets.exists() else set()
    tiers: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        if r["kind"] == "ic":
            tiers.setdefault(r.get("tier", "ic"), []).append(r)
    for tier, members in tiers.items():
        if all(done[r["id"]] for r in members) and not {r["group"] for r in members} <= judged:
            if tier == "flow_rate" and study_due:
                out.append(f"tier {tier} is done: first its verdict study (amendment 21: {study['command']})")
            out.append(f"tier {tier} is done: 'campaign analyse', then '--unblind' (amendment 11), and commit "
                       "the results")
        elif tier == "exploratory":  # amendment 19: an exploratory ensemble is analysed when its runs are done
            for g in sorted({r["group"] for r in members} - judged):
                if all(done[r["id"]] for r in members if r["group"] == g):
                    out.append(f"exploratory ensemble {g} is done: 'campaign analyse', then '--unblind' "
                               "(amendment 19), and commit the results")
    return out


def held_elsewhere(work: Path, run_id: str, now: float | None = None) -> bool:
    """Another live process on this host runs ``run_id`` (a fresh lock whose pid exists and is not ours)."""
    lock = lock_info(work, run_id)
    now = time.time() if now is None else now
    return fresh_here(lock, now) and lock["pid"] != os.getpid() and pid_alive(lock["pid"])


def next_run(campaign: Path = CAMPAIGN, work: Path | None = None) -> dict[str, Any] | None:
    """The first planned run that is not done (with ``work``: nor run by another live worker, so
    several ``campaign run --all`` workers, started a minute apart, share the plan)."""
    for run in read_plan(campaign):
        if not is_done(run, progress(campaign, run)) and not (work is not None and held_elsewhere(work, run["id"])):
            return run
    return None
