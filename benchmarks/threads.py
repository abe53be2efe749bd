"""Threads of a distributed build (``cfdseed._threads``): ``init_field``'s distributed path with each
rank on its share of its node's CPUs, against the old setting measured in the same run.

    .venv/bin/python benchmarks/threads.py [--ranks 2 4] [--shape 96 97 96] [--repeat 3] [--source gan]

Each measurement is a fresh ``mpiexec -n P`` job, with ``OMP_NUM_THREADS`` unset (torch's default,
as a user's job has it): a warm-up build on a tiny grid (imports, thread pools, FFT plans), then the
timed ``init_field(..., strategy="distributed")`` on ``Grid.block`` of ``--shape`` in a
``4 pi x 2 x 4 pi / 3`` box (the main job's), its wall time the slowest rank's. The old setting
(every rank: scipy.fft workers ``os.cpu_count()``, torch threads its default) is the same code
with the share replaced by ``os.cpu_count()``. Settings alternate within each repeat, so a load
that comes and goes hits both alike; the ratio old / share is the result (> 1: the share is
faster). On a machine with few cores the oversubscription is mild, so the ratio is a lower bound
of what a many-core node with one unbound rank per core would see. Writes
``benchmarks/results/threads.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "threads.json"
SETTINGS = ("share", "old")


def _job(args: argparse.Namespace) -> None:
    """One mpiexec job: warm up, time one distributed build, print the slowest rank's seconds."""
    import numpy as np
    from mpi4py import MPI

    from cfdseed import _threads
    from cfdseed.coupling import init_field
    from cfdseed.grid import Grid

    comm = MPI.COMM_WORLD
    if args.setting == "old":
        _threads._node_share = lambda comm: os.cpu_count() or 1  # what workers=-1 and torch's default gave
    lengths = (4 * np.pi, 2.0, 4 * np.pi / 3)
    opts = {"re_tau": 180.0} if args.source in ("gan", "sem") else {}
    warm = Grid.block(comm, (4 * comm.size, 33, 16), lengths, y="chebyshev")  # too coarse to calibrate
    init_field(comm, warm, source=args.source, options=dict(opts, calibrate=None) if args.source == "gan" else opts,
               seed=1, strategy="distributed", check=False)
    grid = Grid.block(comm, tuple(args.shape), lengths, y="chebyshev")
    comm.Barrier()
    t0 = time.perf_counter()
    init_field(comm, grid, source=args.source, options=opts, seed=2, strategy="distributed", check=False)
    wall = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    with _threads.node_share(comm) as share:
        shares = comm.gather(share if args.setting == "share" else os.cpu_count(), root=0)
    if comm.rank == 0:
        print(json.dumps({"wall_s": wall, "threads_per_rank": shares}))


def _measure(ranks: int, setting: str, args: argparse.Namespace) -> dict:
    mpiexec = Path(sys.executable).with_name("mpiexec")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    cmd = [str(mpiexec), "-n", str(ranks), sys.executable, __file__, "--job", "--setting", setting,
           "--source", args.source, "--shape", *map(str, args.shape)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--shape", type=int, nargs=3, default=[96, 97, 96])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--source", default="gan")
    ap.add_argument("--job", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--setting", choices=SETTINGS, default="share", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.job:
        return _job(args)
    rows = []
    for p in args.ranks:
        walls: dict[str, list[float]] = {s: [] for s in SETTINGS}
        threads: dict[str, list[int]] = {}
        for i in range(args.repeat):
            for s in (SETTINGS if i % 2 == 0 else SETTINGS[::-1]):
                got = _measure(p, s, args)
                walls[s].append(got["wall_s"])
                threads[s] = got["threads_per_rank"]
        med = {s: statistics.median(w) for s, w in walls.items()}
        rows.append({"ranks": p, "wall_s": walls, "median_s": med, "threads_per_rank": threads,
                     "ratio_old_over_share": med["old"] / med["share"]})
        print(f"{p} rank(s): share {med['share']:.2f} s ({threads['share']} threads), "
              f"old {med['old']:.2f} s ({threads['old']}): old / share = {med['old'] / med['share']:.2f}")
    OUT.write_text(json.dumps({
        "what": "init_field distributed build, each rank on its node share vs the old thread setting",
        "command": "python benchmarks/threads.py " + " ".join(sys.argv[1:]),
        "source": args.source, "shape": args.shape, "repeat": args.repeat,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows}, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
