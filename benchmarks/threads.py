"""Threads of a build on a node the solver's ranks share (``cfdseed._threads``), against the old
settings measured in the same run.

    .venv/bin/python benchmarks/threads.py [--paths distributed root] [--ranks 2] [--shape 96 97 96] [--repeat 3]

Each measurement is a fresh ``mpiexec -n P`` job: a warm-up build on a tiny grid (imports, thread
pools, FFT plans), then the timed ``init_field`` of the ``gan`` source (the packaged default) on
``Grid.block`` of ``--shape`` in a ``4 pi x 2 x 4 pi / 3`` box (the main job's), its wall time the
slowest rank's.

- ``distributed``: ``strategy="distributed"``, unbound ranks, ``OMP_NUM_THREADS`` unset (torch's
  default);
- ``root``: ``strategy="root"``, ranks bound one core each (``mpiexec -bind-to core``, as
  ``srun --cpu-bind=cores``) and ``OMP_NUM_THREADS=1`` (a cluster job's usual setting).

Old: the same code without cfdseed's own settings (``node_share`` and ``root_build`` no-ops, FFT
workers ``os.cpu_count()``, torch and BLAS at the process's defaults).

Settings alternate within each repeat, so a load that comes and goes hits both alike; the ratio
old / new of the medians is the result (> 1: the new setting is faster). On a machine with few
cores both effects are small, so the ratios are lower bounds of what a many-core node sees. Writes
``benchmarks/results/threads.json``.
"""

from __future__ import annotations

import argparse
import contextlib
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
SETTINGS = ("new", "old")
PATHS = ("distributed", "root")


def _job(args: argparse.Namespace) -> None:
    """One mpiexec job: warm up, time one build, print the slowest rank's seconds."""
    import numpy as np
    from mpi4py import MPI

    import cfdseed.coupling
    from cfdseed.coupling import init_field
    from cfdseed.grid import Grid

    comm = MPI.COMM_WORLD
    if args.setting == "old":  # no thread settings of cfdseed's own: workers=-1 meant os.cpu_count()
        import cfdseed.enforce
        import cfdseed.interp
        import cfdseed.pencils
        import cfdseed.sources.base

        cfdseed.coupling.root_build = lambda comm, root: contextlib.nullcontext()
        cfdseed.sources.base.node_share = lambda comm: contextlib.nullcontext()
        for module in (cfdseed.enforce, cfdseed.interp, cfdseed.pencils):
            module.fft_workers = lambda: os.cpu_count() or 1
    lengths = (4 * np.pi, 2.0, 4 * np.pi / 3)
    opts = {"re_tau": 180.0}
    warm = Grid.block(comm, (4 * comm.size, 33, 16), lengths, y="chebyshev")  # too coarse to calibrate
    init_field(comm, warm, source="gan", options=dict(opts, calibrate=None), seed=1, strategy=args.path,
               check=False)
    grid = Grid.block(comm, tuple(args.shape), lengths, y="chebyshev")
    comm.Barrier()
    t0 = time.perf_counter()
    init_field(comm, grid, source="gan", options=opts, seed=2, strategy=args.path, check=False)
    wall = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    if comm.rank == 0:
        print(json.dumps({"wall_s": wall}))


def _measure(path: str, ranks: int, setting: str, args: argparse.Namespace) -> float:
    mpiexec = Path(sys.executable).with_name("mpiexec")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if path == "root":
        env["OMP_NUM_THREADS"] = "1"
    bind = ["-bind-to", "core"] if path == "root" else []
    cmd = [str(mpiexec), *bind, "-n", str(ranks), sys.executable, __file__, "--job", "--setting", setting,
           "--path", path, "--shape", *map(str, args.shape)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["wall_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--shape", type=int, nargs=3, default=[96, 97, 96])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--job", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--setting", choices=SETTINGS, default="new", help=argparse.SUPPRESS)
    ap.add_argument("--path", choices=PATHS, default="distributed", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.job:
        return _job(args)
    rows = []
    for path in args.paths:
        walls: dict[str, list[float]] = {s: [] for s in SETTINGS}
        for i in range(args.repeat):
            for s in (SETTINGS if i % 2 == 0 else SETTINGS[::-1]):
                walls[s].append(_measure(path, args.ranks, s, args))
        med = {s: statistics.median(w) for s, w in walls.items()}
        rows.append({"path": path, "ranks": args.ranks, "wall_s": walls, "median_s": med,
                     "ratio_old_over_new": med["old"] / med["new"]})
        print(f"{path}, {args.ranks} ranks: new {med['new']:.2f} s, old {med['old']:.2f} s: "
              f"old / new = {med['old'] / med['new']:.2f}")
    OUT.write_text(json.dumps({
        "what": "init_field build time with cfdseed._threads' settings (new) against the old ones",
        "command": "python benchmarks/threads.py " + " ".join(sys.argv[1:]),
        "shape": args.shape, "repeat": args.repeat,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows}, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
