"""Constraint kernels (cfdseed._core) vs their numpy oracles (tests/test_operators.py) on one block.

    OMP_NUM_THREADS=1 python benchmarks/kernels.py [--shape 192 128 128] [--repeat 3]

One rank's work in ``check_field`` on a realistic block (default 3 x 192 x 128 x 128 float32, C
order, plus the same block as a Fortran-ordered (z, y, x) view): stats of 3 components, 6 wall
values, 6 seam/increment passes, the divergence. The oracles are the same algorithms in vectorised
numpy. Best of ``--repeat`` runs; prints the speed-up ratio per kernel and in total, writes
``benchmarks/results/kernels.json``. Target: total >= 2x.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from cfdseed import _core

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import test_operators as oracle  # noqa: E402  (the numpy oracles live with the tests)


def _calls(field, planes, yext, wy):
    """(name, kernel call, oracle call) of one rank's check on ``field`` (3, x, y, z views)."""
    u, v, w = field
    (xlo, xhi), (ylo, yhi), (zlo, zhi) = planes
    div = (u, v, w, xlo[0], xhi[0], ylo[1], yhi[1], zlo[2], zhi[2], yext, 0.05, 0.03, 0, u.shape[1])
    rows = [
        ("stats", lambda: [_core.stats(c, wy) for c in field], lambda: [oracle.o_stats(c, wy) for c in field]),
        ("wall", lambda: [_core.wall_absmax(c[:, :1], c[:, 1:2], -0.5) for c in field for _ in (0, 1)],
         lambda: [oracle.o_wall(c[:, :1], c[:, 1:2], -0.5) for c in field for _ in (0, 1)]),
        ("increments", lambda: [_core.increments(c, h[k], a, 3) for k, c in enumerate(field)
                                for a, h in ((0, xhi), (2, zhi))],
         lambda: [oracle.o_increments(c, h[k], a, 3) for k, c in enumerate(field) for a, h in ((0, xhi), (2, zhi))]),
        ("divergence", lambda: _core.divergence(*div), lambda: oracle.o_divergence(*div)),
    ]
    return rows


def _best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=int, nargs=3, default=(192, 128, 128), metavar=("NX", "NY", "NZ"))
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    nx, ny, nz = args.shape
    rng = np.random.default_rng(0)
    base = rng.standard_normal((3, nx, ny, nz), dtype=np.float32)  # (3, nx, ny, nz) C order
    planes = [tuple(rng.standard_normal((3, *(1 if d == a else n for d, n in enumerate((nx, ny, nz)))),
                                        dtype=np.float32) for _ in (0, 1)) for a in range(3)]
    yext = np.concatenate([[0.0], np.sort(rng.uniform(0, 2, ny)), [2.0]])
    wy = rng.random(ny)
    layouts = {
        "C (x, y, z)": base,
        "Fortran (z, y, x)": np.asfortranarray(base.transpose(0, 3, 2, 1)).transpose(0, 3, 2, 1),
    }
    results = {"shape": [3, nx, ny, nz], "dtype": "float32", "repeat": args.repeat,
               "machine": platform.machine(), "python": platform.python_version(),
               "load_average_1min": os.getloadavg()[0], "cpus": os.cpu_count(), "layouts": {}}
    for name, field in layouts.items():
        rows, tk, to = {}, 0.0, 0.0
        for kernel, ours, ref in _calls(field, planes, yext, wy):
            a, b = _best(ours, args.repeat), _best(ref, args.repeat)
            rows[kernel] = {"kernel_s": a, "oracle_s": b, "speedup": b / a}
            tk, to = tk + a, to + b
            print(f"{name:<18} {kernel:<11} kernel {a * 1e3:8.1f} ms  oracle {b * 1e3:8.1f} ms  speed-up {b / a:6.1f}x")
        rows["total"] = {"kernel_s": tk, "oracle_s": to, "speedup": to / tk}
        print(f"{name:<18} {'total':<11} kernel {tk * 1e3:8.1f} ms  oracle {to * 1e3:8.1f} ms  speed-up {to / tk:6.1f}x"
              f"  (target >= 2x)")
        results["layouts"][name] = rows
    out = ROOT / "benchmarks" / "results" / "kernels.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
