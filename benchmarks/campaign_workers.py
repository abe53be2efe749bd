"""Starting and stopping the campaign's background workers (``campaign start`` / ``stop``).

A worker is one 1-rank ``campaign run --all`` under the system Open MPI (the Dedalus environment),
detached, logging to ``runs/campaign-w<i>.log``; stopping asks each running chunk to end and be
exported (its ``STOP`` file) and waits for the processes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from campaign_plan import CAMPAIGN, ROOT, WORK, held_elsewhere, lock_info, pid_alive


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
            alive = {rid: pid for rid, pid in held.items() if pid_alive(pid)}
            if not alive:
                return held
            if time.time() - t0 > timeout:
                raise TimeoutError(f"workers still running after {timeout:g} s: {alive}")
            time.sleep(poll)
    finally:
        if not any(pid_alive(pid) for pid in held.values()):
            for f in flags:
                f.unlink(missing_ok=True)
