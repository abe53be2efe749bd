"""The distributed strategy against the root strategy (issue 19): peak memory per rank, CPU time
per cell and bytes sent, 1-8 ranks with a fixed block per rank (weak scaling), and a
measured-then-modelled table for 1e8-1e10 cells on 1e2-1e4 ranks.

    .venv/bin/python benchmarks/distributed.py run [--ranks 1 2 4 8] [--per-rank 64 65 48]
    .venv/bin/python benchmarks/distributed.py model

``run`` starts, per rank count P and strategy, one fresh ``mpiexec -n P`` job (peak memory is a
process-lifetime figure): ``init_field`` of the packaged ``gan`` (calibrated, checked) on the grid
``(P nx, ny, nz)`` in a ``4 pi P x 2 x 4 pi / 3`` box (the main job's spacing), decomposed in 3-D
blocks (``Grid.block``). Memory: each rank's peak resident set minus its resident set after the
imports and the model load, against its own block plus one x slab (the issue's bound: peak <= 2 x
block + slab). CPU: user + system seconds of every rank, per cell; on more ranks than cores the
wall time says nothing, the CPU time per cell does. Oversubscribed runs share the machine with
whatever else runs: ratios within one ``run`` are what counts. Writes
``benchmarks/results/distributed.json``; ``model`` prints the table from it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "distributed.json"
#: modelling assumptions (stated in the table): per-rank injection bandwidth and all-to-all latency
BANDWIDTH = 5e9  # bytes/s per rank
LATENCY = 2e-6  # s per message


def one(args: argparse.Namespace) -> None:
    import warnings

    from mpi4py import MPI

    from cfdseed import Grid, init_field
    from cfdseed.pencils import Slabs, bytes_sent
    from cfdseed.synthesis import _load

    comm = MPI.COMM_WORLD
    size, rank = comm.Get_size(), comm.Get_rank()
    nx, ny, nz = args.shape
    shape = (nx * size, ny, nz)
    grid = Grid.block(comm, shape, (4 * math.pi * size, 2.0, 4 * math.pi / 3), y="chebyshev")
    _load(None, "cpu")  # the model in memory before the baseline
    comm.Barrier()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    bytes_sent(reset=True)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = init_field(comm, grid, source="gan", options={"device": "cpu"}, seed=1, strategy=args.strategy,
                         result=True)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    peak = cpu1.ru_maxrss * 1024
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    slab = Slabs(comm, grid).slab_shape()
    row = {"rank": rank, "peak_delta": peak - base, "block": 3 * 8 * grid.local_size,
           "slab": 8 * int(np.prod(slab)), "cpu_s": cpu, "wall_s": wall, "sent": bytes_sent(),
           "strategy": res.strategy, "passed": bool(res.report.passed)}
    rows = comm.gather(row, root=0)
    if rank == 0:
        print(json.dumps({"ranks": size, "shape": shape, "cells": int(np.prod(shape)), "rows": rows}))


def run(args: argparse.Namespace) -> None:
    results = []
    mpiexec = str(Path(sys.executable).with_name("mpiexec"))
    for p in args.ranks:
        for strategy in ("root", "distributed"):
            cmd = [mpiexec, "-n", str(p), sys.executable, __file__, "one", "--strategy", strategy,
                   "--shape", *map(str, args.per_rank)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
            if proc.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
            rec = json.loads(proc.stdout.strip().splitlines()[-1])
            rec["strategy"] = strategy
            results.append(rec)
            summarise(rec)
    OUT.write_text(json.dumps({"per_rank_shape": args.per_rank, "runs": results,
                               "how": "benchmarks/distributed.py run (docstring)"}, indent=1) + "\n")
    model(args)


def summarise(rec: dict) -> dict[str, float]:
    rows = rec["rows"]
    mib = 1 << 20
    worst = max(r["peak_delta"] / (2 * r["block"] + r["slab"]) for r in rows)
    out = {"ranks": rec["ranks"], "cells": rec["cells"], "strategy": rec["strategy"],
           "peak_max_mib": max(r["peak_delta"] for r in rows) / mib,
           "block_mib": rows[0]["block"] / mib, "slab_mib": rows[0]["slab"] / mib,
           "peak_to_bound": worst, "cpu_per_cell_us": 1e6 * sum(r["cpu_s"] for r in rows) / rec["cells"],
           "sent_per_cell": sum(r["sent"] for r in rows) / rec["cells"],
           "wall_s": max(r["wall_s"] for r in rows), "passed": all(r["passed"] for r in rows)}
    print(f"{out['strategy']:11s} P={out['ranks']}: {out['cells']:.3g} cells, peak +{out['peak_max_mib']:.0f} MiB on "
          f"the worst rank ({out['peak_to_bound']:.2f} x (2 block + slab), block {out['block_mib']:.0f} MiB), "
          f"CPU {out['cpu_per_cell_us']:.2f} us/cell, sent {out['sent_per_cell']:.0f} B/cell, wall {out['wall_s']:.1f} s",
          flush=True)
    return out


def model(args: argparse.Namespace) -> None:
    data = json.loads(OUT.read_text())
    dist = [summarise(r) for r in data["runs"] if r["strategy"] == "distributed"]
    one_rank = next(d for d in dist if d["ranks"] == 1)
    print("\nweak scaling (distributed): CPU per cell relative to 1 rank: " +
          ", ".join(f"P={d['ranks']} {d['cpu_per_cell_us'] / one_rank['cpu_per_cell_us']:.2f}" for d in dist))
    big = max(dist, key=lambda d: d["ranks"])
    cpu = big["cpu_per_cell_us"] * 1e-6
    sent = big["sent_per_cell"]
    mem = big["peak_to_bound"]
    print(f"\nmodel (from P={big['ranks']}: {cpu * 1e6:.2f} us CPU and {sent:.0f} B sent per cell, peak "
          f"{mem:.2f} x (2 block + slab); {BANDWIDTH / 1e9:g} GB/s per rank, {LATENCY * 1e6:g} us per message, "
          "8 all-to-alls):")
    print(f"{'cells':>8} {'ranks':>6} {'memory/rank':>12} {'compute s':>10} {'transfer s':>10} {'latency s':>10}  dominant")
    for n in (1e8, 1e9, 1e10):
        for p in (1e2, 1e3, 1e4):
            per = n / p
            memory = mem * (2 * 24 * per + 24 * per)
            compute = cpu * per
            transfer = sent * per / BANDWIDTH
            latency = 8 * p * LATENCY
            parts = {"compute": compute, "transfer": transfer, "latency": latency}
            print(f"{n:8.0e} {p:6.0e} {memory / 2**30:10.2f} GiB {compute:10.2f} {transfer:10.3f} {latency:10.3f}  "
                  f"{max(parts, key=parts.get)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("one")
    o.add_argument("--strategy", required=True)
    o.add_argument("--shape", type=int, nargs=3, required=True)
    o.set_defaults(fn=one)
    r = sub.add_parser("run")
    r.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4, 8])
    r.add_argument("--per-rank", type=int, nargs=3, default=[64, 65, 48])
    r.set_defaults(fn=run)
    m = sub.add_parser("model")
    m.set_defaults(fn=model)
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
