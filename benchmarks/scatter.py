"""Streaming scatter of a ~28 M-cell float32 field (3 components) vs a plain memcpy of the same bytes.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scatter.py [--ranks 2 4] [--shape 384 192 384] [--repeat 5]

For each rank count the script relaunches itself under the venv's ``mpiexec``. In that run the root
holds the global field (3, nx, ny, nz) float32 (generated in place, no temporaries) and measures:

- ``memcpy``: ``np.copyto`` of the whole field into a preallocated array of the same size (root);
- ``scatter``: :func:`cfdseed.transport.scatter` into the solver's preallocated blocks (balanced
  ``Grid.block`` blocks and streamwise slabs, default 32 MiB chunks), barrier to barrier;
- root memory: extra bytes allocated during one scatter (tracemalloc peak, numpy's allocations
  included) and the growth of the peak RSS (``ru_maxrss``), both relative to the global field:
  ``peak / field = (field + extra) / field``. Once with ``out`` preallocated by the solver (the
  coupling use) and once with ``out=None`` (the root then also allocates its own block).

Times are the minimum and median over ``--repeat`` runs; ratio = scatter / memcpy (minimum).
Prints the ratios and writes ``benchmarks/results/scatter.json``. Targets: scatter <= 3x memcpy,
root peak <= 1.25x the field.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "scatter.json"


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _worker(args: argparse.Namespace) -> None:
    from mpi4py import MPI

    from cfdseed import Grid
    from cfdseed.transport import DEFAULT_CHUNK_BYTES, scatter

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    shape = tuple(args.shape)
    dims = (size, 1, 1) if args.layout == "xslab" else None
    grid = Grid.block(comm, shape, (4 * np.pi, 2.0, 4 * np.pi / 3), dims=dims)
    field = None
    if rank == 0:
        field = np.empty((3, *shape), np.float32)  # (3, nx, ny, nz)
        rng = np.random.default_rng(0)
        for c in field:
            rng.standard_normal(dtype=np.float32, out=c)
    out = np.empty((3, *grid.local_shape), np.float32)
    out.fill(0.0)  # touch the pages: the solver's arrays exist before the call

    def timed(fn) -> float:
        comm.Barrier()
        t0 = time.perf_counter()
        fn()
        comm.Barrier()
        return time.perf_counter() - t0

    # memory first (fresh process: the peak RSS so far is the field + out + interpreter)
    mem = {}
    for label, target in (("out_preallocated", out), ("out_none", None)):
        rss0 = _maxrss_bytes()
        tracemalloc.start()
        res = scatter(comm, grid, field, out=target, dtype=np.float32)
        extra = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del res
        mem[label] = {"tracemalloc_peak_extra_bytes": extra, "maxrss_growth_bytes": _maxrss_bytes() - rss0}

    t_scatter = [timed(lambda: scatter(comm, grid, field, out=out)) for _ in range(args.repeat)]
    if rank == 0:  # compare: field exactly as delivered
        ok = bool(np.array_equal(out, field[(slice(None), *grid.local)]))
    t_copy = []
    if rank == 0:
        dst = np.empty_like(field)
        dst.fill(0.0)
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            np.copyto(dst, field)
            t_copy.append(time.perf_counter() - t0)
        del dst
        nbytes = field.nbytes
        result = {
            "ranks": size,
            "layout": args.layout,
            "dims": list(grid.dims),
            "shape": list(shape),
            "cells": int(np.prod(shape)),
            "field_bytes": nbytes,
            "chunk_bytes": DEFAULT_CHUNK_BYTES,
            "delivered_bit_for_bit_on_root": ok,
            "scatter_s": {"min": min(t_scatter), "median": float(np.median(t_scatter)), "all": t_scatter},
            "memcpy_s": {"min": min(t_copy), "median": float(np.median(t_copy)), "all": t_copy},
            "ratio_scatter_over_memcpy": min(t_scatter) / min(t_copy),
            "ratio_median": float(np.median(t_scatter) / np.median(t_copy)),
            "root_memory": {
                k: {**v, "peak_over_field": (nbytes + max(v["tracemalloc_peak_extra_bytes"],
                                                          v["maxrss_growth_bytes"])) / nbytes}
                for k, v in mem.items()
            },
        }
        Path(args.json).write_text(json.dumps(result, indent=2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", type=int, nargs="+", default=[2, 4])
    p.add_argument("--shape", type=int, nargs=3, default=[384, 192, 384], help="nx ny nz (default 28.3 M cells)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--layouts", nargs="+", default=["balanced", "xslab"], choices=["balanced", "xslab"],
                   help="balanced Grid.block blocks (MPI_Dims_create) and/or streamwise slabs")
    p.add_argument("--layout", default="balanced", help=argparse.SUPPRESS)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        _worker(args)
        return

    mpiexec = str(Path(sys.executable).with_name("mpiexec"))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    runs = []
    for n, layout in [(n, lay) for n in args.ranks for lay in args.layouts]:
        with tempfile.TemporaryDirectory() as tmp:
            js = Path(tmp) / "r.json"
            cmd = [mpiexec, "-n", str(n), sys.executable, __file__, "--worker", "--json", str(js),
                   "--shape", *map(str, args.shape), "--repeat", str(args.repeat), "--layout", layout]
            subprocess.run(cmd, check=True, env=env)
            r = json.loads(js.read_text())
        runs.append(r)
        m = r["root_memory"]
        print(f"{n} ranks, {layout} (dims {r['dims']}), {r['cells'] / 1e6:.1f} M cells, {r['field_bytes'] / 2**20:.0f} MiB: "
              f"scatter {r['scatter_s']['min']:.3f} s vs memcpy {r['memcpy_s']['min']:.3f} s -> "
              f"{r['ratio_scatter_over_memcpy']:.2f}x (median {r['ratio_median']:.2f}x; target <= 3x); "
              f"root peak {m['out_preallocated']['peak_over_field']:.3f}x field with out given, "
              f"{m['out_none']['peak_over_field']:.3f}x with out=None (target <= 1.25x)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                               "python": platform.python_version()},
                                   "runs": runs}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
