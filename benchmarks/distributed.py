"""The distributed strategy against the root strategy (issue 19): peak memory per rank, CPU time
per cell and bytes sent, 1-8 ranks with a fixed block per rank (weak scaling), one-rank block-size
fits, and a measured-then-modelled table for 1e8-1e10 cells on 1e2-1e4 ranks.

    .venv/bin/python benchmarks/distributed.py run [--ranks 1 2 4 8] [--per-rank 256 65 192]
                                                   [--size-fractions 0.125 0.25 0.5] [--model NAME]
    .venv/bin/python benchmarks/distributed.py model

``run`` starts, per rank count P and strategy, one fresh ``mpiexec -n P`` job: ``init_field`` of
the ``gan`` source (calibrated, checked; ``--model``: a packaged name or checkpoint, default the
packaged default) on the grid ``(P nx, ny, nz)`` in a ``4 pi P x 2 x 4 pi / 3``
box (the main job's spacing), decomposed in 3-D blocks (``Grid.block``), after a warm-up call on a
tiny grid (imports, thread pools, FFT plans: fixed costs of the process, not of the field).
Memory: each rank's high-water mark (Linux ``VmHWM``, reset to the resident set right before the
call) minus that resident set, against its own block plus one x slab (the issue's bound: peak <= 2 x
block + slab). CPU: user + system seconds of every rank, per cell, and the same without the CPU
spent inside MPI calls (:class:`_Timed`: a waiting rank spins, and on more ranks than cores that
CPU is the oversubscription's); on more ranks than cores the wall time says nothing. Then one-rank
distributed runs with the block's x extent scaled by ``--size-fractions``: the fits of memory and
compute as fixed + per cell. Oversubscribed runs share the machine with whatever else runs:
ratios within one ``run`` are what counts. Writes ``benchmarks/results/distributed.json``;
``model`` prints the weak-scaling ratios, the fits and the table from it.
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


def _status_bytes(key: str) -> int:
    """A memory figure of this process from /proc/self/status (Linux), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise SystemExit(f"no {key} in /proc/self/status: this benchmark needs Linux")


class _Timed:
    """A communicator that books what this process does inside its MPI calls (and those of the
    communicators it duplicates): CPU seconds (on more ranks than cores a waiting rank spins, and
    that CPU is the oversubscription's, not the work's), bytes sent to other ranks by point-to-point
    sends and all-to-alls, and the number of all-to-all rounds."""

    def __init__(self, comm: object, book: dict[str, float]) -> None:
        self._comm, self._book = comm, book

    def __getattr__(self, name: str) -> object:
        from mpi4py import MPI

        attr = getattr(self._comm, name)
        if not callable(attr):
            return attr
        book = self._book

        def call(*a: object, **k: object) -> object:
            if name == "Alltoallv":
                buf, counts, _, mpitype = a[0]
                book["sent"] += (int(np.sum(counts)) - int(counts[self._comm.Get_rank()])) * mpitype.Get_size()
                book["rounds"] += 1
            elif name in ("Send", "Isend", "Ssend", "Issend"):
                buf = a[0][0] if isinstance(a[0], (list, tuple)) else a[0]
                book["sent"] += np.asarray(buf).nbytes
            t = time.process_time()
            try:
                out = attr(*a, **k)
            finally:
                book["cpu_mpi"] += time.process_time() - t
            return _Timed(out, book) if isinstance(out, MPI.Comm) else out
        return call


def one(args: argparse.Namespace) -> None:
    import warnings

    from mpi4py import MPI

    from cfdseed import Grid, init_field
    from cfdseed._memory import trim
    from cfdseed.pencils import Slabs
    from cfdseed.synthesis import _load

    comm = MPI.COMM_WORLD
    size, rank = comm.Get_size(), comm.Get_rank()
    nx, ny, nz = args.shape
    shape = (nx * size, ny, nz)
    grid = Grid.block(comm, shape, (4 * math.pi * size, 2.0, 4 * math.pi / 3), y="chebyshev")
    options = {"device": "cpu", "model": args.model}
    _load(args.model, "cpu")  # the model in memory before the baseline
    with warnings.catch_warnings():  # and the imports, thread pools and FFT plans of a first call
        warnings.simplefilter("ignore")
        small = Grid.block(comm, (8 * size, 33, 24), (4 * math.pi * size / 8, 2.0, 4 * math.pi / 3 / 8), y="chebyshev")
        init_field(comm, small, source="gan", options=options, seed=1, strategy=args.strategy)
    trim()
    comm.Barrier()
    base = _status_bytes("VmRSS")  # resident now, and the high-water mark reset to it
    Path("/proc/self/clear_refs").write_text("5")
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    book = {"sent": 0, "rounds": 0, "cpu_mpi": 0.0}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = init_field(_Timed(comm, book), grid, source="gan", options=options, seed=1,
                         strategy=args.strategy, result=True)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    peak = _status_bytes("VmHWM")
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    slab = Slabs(comm, grid).slab_shape()
    row = {"rank": rank, "peak_delta": peak - base, "block": 3 * 8 * grid.local_size,
           "slab": 8 * int(np.prod(slab)), "cpu_s": cpu, "cpu_mpi_s": book["cpu_mpi"], "wall_s": wall,
           "sent": book["sent"], "rounds": book["rounds"],
           "strategy": res.strategy, "passed": bool(res.report.passed),
           "timings": res.source_info.synthesis.timings if res.source_info is not None else None}
    rows = comm.gather(row, root=0)
    if rank == 0:
        print(json.dumps({"ranks": size, "shape": shape, "cells": int(np.prod(shape)), "rows": rows}))


def _job(mpiexec: str, p: int, strategy: str, shape: list[int], model: str | None) -> dict:
    cmd = [mpiexec, "-n", str(p), sys.executable, __file__, "one", "--strategy", strategy, "--shape", *map(str, shape),
           *(["--model", model] if model else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    rec["strategy"] = strategy
    return rec


def run(args: argparse.Namespace) -> None:
    results, sizes = [], []
    mpiexec = str(Path(sys.executable).with_name("mpiexec"))
    for p in args.ranks:
        for strategy in ("root", "distributed"):
            rec = _job(mpiexec, p, strategy, args.per_rank, args.model)
            results.append(rec)
            summarise(rec)
    nx, ny, nz = args.per_rank
    for f in args.size_fractions:  # one rank, smaller blocks: fixed + per-cell fits
        rec = _job(mpiexec, 1, "distributed", [max(8, int(nx * f)), ny, nz], args.model)
        sizes.append(rec)
        summarise(rec)
    OUT.write_text(json.dumps({"per_rank_shape": args.per_rank, "model": args.model, "runs": results, "sizes": sizes,
                               "how": "benchmarks/distributed.py run (docstring)"}, indent=1) + "\n")
    model(args)


def summarise(rec: dict) -> dict[str, float]:
    rows = rec["rows"]
    mib = 1 << 20
    worst = max(r["peak_delta"] / (2 * r["block"] + r["slab"]) for r in rows)
    cpu = sum(r["cpu_s"] for r in rows)
    mpi = sum(r.get("cpu_mpi_s", 0.0) for r in rows)
    out = {"ranks": rec["ranks"], "cells": rec["cells"], "strategy": rec["strategy"],
           "peak_max_mib": max(r["peak_delta"] for r in rows) / mib, "peak_max": max(r["peak_delta"] for r in rows),
           "block_mib": rows[0]["block"] / mib, "slab_mib": rows[0]["slab"] / mib,
           "cells_per_rank": rec["cells"] / rec["ranks"],
           "peak_to_bound": worst, "cpu_per_cell_us": 1e6 * cpu / rec["cells"],
           "compute_per_cell_us": 1e6 * (cpu - mpi) / rec["cells"],
           "sent_per_cell": sum(r["sent"] for r in rows) / rec["cells"],
           "rounds": max(r.get("rounds", 0) for r in rows),
           "wall_s": max(r["wall_s"] for r in rows), "passed": all(r["passed"] for r in rows)}
    print(f"{out['strategy']:11s} P={out['ranks']}: {out['cells']:.3g} cells, peak +{out['peak_max_mib']:.0f} MiB on "
          f"the worst rank ({out['peak_to_bound']:.2f} x (2 block + slab), block {out['block_mib']:.0f} MiB), "
          f"CPU {out['cpu_per_cell_us']:.2f} us/cell ({out['compute_per_cell_us']:.2f} outside MPI), "
          f"sent {out['sent_per_cell']:.0f} B/cell in {out['rounds']} all-to-alls, wall {out['wall_s']:.1f} s",
          flush=True)
    return out


def _fit(x: list[float], y: list[float]) -> tuple[float, float]:
    """Least-squares a + b x."""
    b, a = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return float(a), float(b)


def model(args: argparse.Namespace) -> None:
    data = json.loads(OUT.read_text())
    dist = [summarise(r) for r in data["runs"] if r["strategy"] == "distributed"]
    one_rank = next(d for d in dist if d["ranks"] == 1)
    print("\nweak scaling (distributed), CPU per cell relative to 1 rank, all / outside MPI calls: " +
          ", ".join(f"P={d['ranks']} {d['cpu_per_cell_us'] / one_rank['cpu_per_cell_us']:.2f} / "
                    f"{d['compute_per_cell_us'] / one_rank['compute_per_cell_us']:.2f}" for d in dist))
    ones = [summarise(r) for r in data.get("sizes", [])] + [one_rank]
    if len(ones) < 2:
        raise SystemExit("no block-size sweep in the results: rerun `run`")
    per = [o["cells_per_rank"] for o in ones]
    mem_a, mem_b = _fit(per, [o["peak_max"] for o in ones])
    cpu_a, cpu_b = _fit(per, [o["compute_per_cell_us"] * 1e-6 * o["cells"] for o in ones])
    big = max(dist, key=lambda d: d["ranks"])
    sent = big["sent_per_cell"] * big["ranks"] / max(big["ranks"] - 1, 1)  # per cell and (P-1)/P of it leaves
    rounds_per_cell = big["rounds"] / big["cells_per_rank"]
    print(f"\nfits on one rank ({len(ones)} block sizes, {min(per):.3g}-{max(per):.3g} cells): peak memory "
          f"{mem_a / 2**20:.0f} MiB + {mem_b:.1f} B/cell (the bound, 2 block + slab of float64: 72 B/cell); "
          f"compute {cpu_a:.2f} s + {cpu_b * 1e6:.2f} us/cell")
    print(f"model: memory and compute from the fits; traffic {sent:.0f} B/cell (P={big['ranks']}, scaled by "
          f"(P-1)/P) at {BANDWIDTH / 1e9:g} GB/s per rank; {big['rounds']} all-to-all rounds for "
          f"{big['cells_per_rank']:.3g} cells per rank, scaled with the cells per rank (fixed-size rounds), "
          f"{LATENCY * 1e6:g} us per message, P - 1 messages per round; grids cube-like (n = N^(1/3)): the x/kz "
          "slabs need P <= n/2 + 1")
    print(f"{'cells':>8} {'ranks':>6} {'memory/rank':>12} {'compute s':>10} {'transfer s':>10} {'latency s':>10}  dominant")
    for n in (1e8, 1e9, 1e10):
        for p in (1e2, 1e3, 1e4):
            cells = n / p
            memory = mem_a + mem_b * cells
            compute = cpu_a + cpu_b * cells
            transfer = sent * cells * (p - 1) / p / BANDWIDTH
            latency = max(1.0, rounds_per_cell * cells) * (p - 1) * LATENCY
            parts = {"compute": compute, "transfer": transfer, "latency": latency}
            fits = p <= round(n ** (1 / 3)) // 2 + 1
            print(f"{n:8.0e} {p:6.0e} {memory / 2**30:10.2f} GiB {compute:10.2f} {transfer:10.3f} {latency:10.3f}  "
                  f"{max(parts, key=parts.get)}{'' if fits else '  (P > n/2 + 1: past the slab layout, pencils needed)'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("one")
    o.add_argument("--strategy", required=True)
    o.add_argument("--shape", type=int, nargs=3, required=True)
    o.add_argument("--model", default=None, help="packaged model name or checkpoint (default: the packaged default)")
    o.set_defaults(fn=one)
    r = sub.add_parser("run")
    r.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4, 8])
    r.add_argument("--per-rank", type=int, nargs=3, default=[256, 65, 192])
    r.add_argument("--size-fractions", type=float, nargs="*", default=[0.125, 0.25, 0.5],
                   help="one-rank runs with these fractions of the per-rank x extent (the fits)")
    r.add_argument("--model", default=None, help="packaged model name or checkpoint (default: the packaged default)")
    r.set_defaults(fn=run)
    m = sub.add_parser("model")
    m.set_defaults(fn=model)
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
