"""Generate + enforce + scatter a ~28 M-cell generated field, with a breakdown; projection scaling.

    OMP_NUM_THREADS=1 .venv/bin/mpiexec -n 2 .venv/bin/python benchmarks/generate.py \\
        [--shape 768 96 384] [--x-stations auto] [--device cpu] [--scaling] [--model published-128|NAME|PATH]

The generator is the packaged default model (calibrated to its target like the main job), or with
``--model published-128`` the published-size architecture (3x128x128 slices, ~6.7e5 parameters)
with untrained weights: its inference costs what a trained one's does, but it has no turbulence to
calibrate, so calibration is off there. Rank 0
runs the ``gan`` source inside :func:`cfdseed.init_field` (inference, interpolation to the solver
grid, enforcement: no-slip, projection, bulk), then the field is scattered to the ranks and checked.
Breakdown: inference, interpolation, projection, stress calibration (the default, to Lee & Moser
180: the untrained generator has no statistics of its own) and the other enforcement steps,
transport (init_field's time after the source returned), checks; target <= 30 s in total.

``--scaling`` (root only, after the main run) times the projection alone on grids of N, 2N, 4N,
8N points and prints the time per N log2 N relative to the smallest (O(N log N): ratios ~1).

Writes ``benchmarks/results/generate.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

TARGET = 30.0  # seconds for the whole field on 2 ranks, calibration included (issues 12, 16)
#: main: 28.3 M cells in the main-job box at Re_tau 180; talk: the talk's box (12.5 x 1 x 4 in units
#: of the channel height) at Re_tau 2260 with its cell count (examples/talk_case.py says why this grid)
CASES = {
    "main": {"shape": [768, 96, 384], "lengths": [4 * math.pi, 2.0, 4 * math.pi / 3], "y": "tanh:2.0", "re_tau": 180.0},
    "talk": {"shape": [1024, 96, 288], "lengths": [25.0, 2.0, 8.0], "y": "tanh:2.5", "re_tau": 2260.0},
}


def _model(path: Path) -> None:
    import torch

    from cfdseed.grid import wall_normal
    from cfdseed.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
    from cfdseed.model import Generator, arch_config

    ny, nz = 128, 128
    arch = arch_config("published-128", ny, nz)
    torch.manual_seed(0)
    y = wall_normal("chebyshev", ny, 2.0)
    mean = np.zeros((3, ny))
    mean[0] = 18.0 * y * (2.0 - y)  # a channel-like mean in wall units so the bounds step is meaningful
    std = np.tile(np.sin(np.pi * y / 2.0), (3, 1))
    save_checkpoint(path, {
        "format": CHECKPOINT_FORMAT, "format_version": 1, "arch": arch,
        "generator": Generator(arch).state_dict(),
        "norm": {"mean": torch.as_tensor(mean), "std": torch.as_tensor(0.1 * std)},
        "grid": {"ny": ny, "nz": nz, "y": torch.as_tensor(y), "ly": 2.0, "lz": math.pi, "re_tau": 180.0,
                 "u_tau": 1.0, "nu": 1 / 180},
        "metadata": {"source": "benchmark (untrained)"},
    })


def _scaling(base: tuple[int, int, int]) -> list[dict[str, float]]:
    from cfdseed.enforce import _project
    from cfdseed.grid import Grid

    out = []
    nx, ny, nz = base
    for k, shape in enumerate([(nx, ny, nz), (2 * nx, ny, nz), (2 * nx, ny, 2 * nz), (2 * nx, 2 * ny, 2 * nz)]):
        g = Grid(shape, (4 * math.pi, 2.0, 2 * math.pi), y="tanh:2.0")
        f = np.random.default_rng(k).standard_normal((3, *shape))
        _project(f[:, :8, :, :8].copy(), Grid((8, shape[1], 8), g.lengths, y="tanh:2.0"))  # warm-up
        best = math.inf
        for _ in range(2):
            t = time.perf_counter()
            _project(f, g)
            best = min(best, time.perf_counter() - t)
        n = math.prod(shape)
        out.append({"shape": list(shape), "points": n, "seconds": best, "per_NlogN": best / (n * math.log2(n))})
    for r in out:
        r["ratio_to_smallest"] = r["per_NlogN"] / out[0]["per_NlogN"]
    return out


def _profiles(full: np.ndarray, grid, re_tau: float, u_tau: float) -> dict:
    """Largest relative error of U+, u'+, v'+, w'+, uv+ against Lee & Moser at re_tau (interpolated)
    on the rows the grid resolves (>= two spanwise spacings from a wall), and the momentum balance."""
    from cfdseed.stats import balance_figures
    from cfdseed.reference import interpolate_reference

    f = np.asarray(full, dtype=np.float64) / u_tau
    lx, ly, lz = grid.lengths
    d = np.minimum(grid.y, ly - grid.y)
    lower = (grid.y <= 0.5 * ly) & (d >= 2.0 * lz / grid.shape[2])
    mean = f.mean(axis=(1, 3))
    fl = f - mean[:, None, :, None]
    rms = np.sqrt((fl**2).mean(axis=(1, 3)))
    uv = (fl[0] * fl[1]).mean(axis=(0, 2))
    ref = interpolate_reference(re_tau).interpolate(d[lower] / (0.5 * ly) * re_tau)
    out = {"resolved_from_yplus": float(d[lower].min() / (0.5 * ly) * re_tau), "rows": int(lower.sum())}
    for k, v in (("U+", mean[0]), ("u'+", rms[0]), ("v'+", rms[1]), ("w'+", rms[2]), ("uv+", uv)):
        r = ref[k]
        rel = np.abs(v[lower] - r) / np.maximum(np.abs(r), 0.05 * np.abs(r).max())
        out[f"{k}_max_rel_error"] = float(rel.max())
    b = balance_figures(f[None], grid.y, ly, 0.5 * ly / re_tau, 1.0)
    out["balance_residual_max_all_rows"] = b["balance_residual_max"]
    # total shear stress -uv+ + dU+/dy+ against 1 - y/h on the resolved rows
    tau = -uv + np.gradient(mean[0], grid.y) * (0.5 * ly / re_tau)
    out["balance_residual_max"] = float(np.abs(tau - (1.0 - grid.y / (0.5 * ly)))[lower].max())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", default="main", choices=tuple(CASES),
                    help="main: the main-job box at Re_tau 180; talk: the talk's box at Re_tau 2260 (issue 16)")
    ap.add_argument("--shape", nargs=3, type=int, default=None)
    ap.add_argument("--lengths", nargs=3, type=float, default=None)
    ap.add_argument("--y", default=None)
    ap.add_argument("--x-stations", default="auto")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--scaling", action="store_true")
    ap.add_argument("--no-calibrate", action="store_true", help="calibrate=None (the enforcement as before issue 12)")
    ap.add_argument("--source", default="gan", choices=("gan", "sem"),
                    help="gan (default) or sem (synthetic eddies calibrated to the same target, issue 15)")
    ap.add_argument("--model", default="default",
                    help="default: the packaged model (calibrated); published-128: the published-size architecture "
                         "untrained (inference cost of the talk's generator; no turbulence to calibrate: calibration "
                         "off); else a packaged model's name or a checkpoint path (calibrated like the default)")
    ap.add_argument("--out", default=None, help="default results/generate.json (main), results/generate-talk.json")
    args = ap.parse_args()
    case = CASES[args.case]
    args.shape = args.shape or case["shape"]
    args.lengths = args.lengths or case["lengths"]
    args.y = args.y or case["y"]

    import torch

    from cfdseed.constraints import check_field
    from cfdseed.coupling import init_field
    from cfdseed.grid import Grid
    from cfdseed.sources import resolve
    from cfdseed.transport import gather

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    # the root builds the field while the other ranks sleep (init_field): it may use every core
    torch.set_num_threads((os.cpu_count() or 1) if args.device == "cpu" and rank == 0 else 1)
    stations = args.x_stations if args.x_stations in ("auto", "all") else int(args.x_stations)
    opts = {"device": args.device, "x_stations": stations, "re_tau": case["re_tau"]}
    if args.no_calibrate:
        opts["calibrate"] = None
    if args.model == "published-128":
        tmp = Path(tempfile.mkdtemp())
        model = tmp / "published128.pt"
        if rank == 0:
            _model(model)
        comm.Barrier()
        opts.update(model=str(model), calibrate=None)
    elif args.model != "default":
        opts["model"] = args.model
    src = resolve("gan", opts) if args.source == "gan" else resolve("sem", {"re_tau": case["re_tau"]})
    grid = Grid.block(comm, args.shape, args.lengths, y=args.y)
    dtype = np.dtype(args.dtype)

    comm.Barrier()
    t0 = time.perf_counter()
    seeded = init_field(comm, grid, source=src, seed=1, dtype=dtype, check=False, result=True)
    block = seeded.field
    comm.Barrier()
    t1 = time.perf_counter()
    report = check_field(comm, grid, block)
    comm.Barrier()
    t2 = time.perf_counter()
    full = gather(comm, grid, block)  # for the profiles against the target (not timed)

    if rank == 0 and args.source == "sem":
        info = seeded.source_info
        enf = dict(info.enforcement.timings)
        row = {"ranks": size, "shape": list(grid.shape), "cells": grid.size, "dtype": str(dtype), "source": "sem",
               "seconds": {**{k: v for k, v in enf.items()},
                           "eddies_figures_and_transport": (t1 - t0) - sum(enf.values()),
                           "total": t1 - t0, "checks": t2 - t1},
               "target_total_seconds": TARGET, "report_passed": report.passed,
               "calibration": info.enforcement.calibration.to_dict(),
               "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}}
        row["ratio_total_to_target"] = (t1 - t0) / TARGET
        row["profiles"] = _profiles(full, grid, case["re_tau"], info.units.u_tau)
        print(report)
        for k, v in row["seconds"].items():
            print(f"  {k:<32} {v:8.2f} s")
        out = Path(args.out or Path(__file__).parent / "results" / f"generate-sem-{args.case}.json")
        out.write_text(json.dumps(row, indent=2))
        print(f"wrote {out}")
    elif rank == 0:
        info = seeded.source_info.synthesis
        tm = dict(info.timings)
        enf = dict(info.enforcement.timings)
        source_s = sum(tm.values())
        row = {
            "ranks": size, "shape": list(grid.shape), "cells": grid.size, "dtype": str(dtype),
            "device": args.device, "x_stations": info.stations, "latent_harmonics": info.harmonics,
            "generator": ("published-128 (untrained weights), 3x128x128 slices" if args.model == "published-128"
                          else f"packaged default model ({info.model})" if args.model == "default"
                          else f"{args.model} ({info.model})"),
            "seconds": {
                "load_model": tm.get("load", 0.0),
                "inference": tm["inference"],
                "interpolation": tm["interpolation"],
                "projection": enf.get("projection", 0.0),
                "calibration": enf.get("calibration", 0.0),
                "no_slip_and_bulk": enf.get("no-slip", 0.0) + enf.get("bulk", 0.0),
                "enforcement_total": tm["enforcement"],
                "transport": (t1 - t0) - source_s,
                "generate_enforce_scatter_total": t1 - t0,
                "checks": t2 - t1,
            },
            "target_total_seconds": TARGET,
            "calibration": None if info.enforcement.calibration is None else info.enforcement.calibration.to_dict(),
            "calibration_target": info.calibration_target,
            "report_passed": report.passed,
            "divergence_max": report.divergence_max,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
            # peak resident memory of the root (the global field, the spectrum of the projection and
            # of the calibration, the model); Linux reports kiB
            "root_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        }
        row["ratio_total_to_target"] = row["seconds"]["generate_enforce_scatter_total"] / TARGET
        row["case"] = args.case
        row["profiles"] = _profiles(full, grid, case["re_tau"], info.units.u_tau)
        del full
        print("  profiles vs Lee & Moser at Re_tau", case["re_tau"], json.dumps(row["profiles"]))
        print(report)
        for k, v in row["seconds"].items():
            print(f"  {k:<32} {v:8.2f} s")
        print(f"  total / {TARGET:g} s target: {row['ratio_total_to_target']:.2f}; root peak memory "
              f"{row['root_peak_rss_mib']:.0f} MiB")
        if args.scaling:
            del block
            row["projection_scaling"] = _scaling((96, 48, 96))
            for r in row["projection_scaling"]:
                print(f"  projection {r['shape']}: {r['seconds']:.3f} s, per N log N ratio {r['ratio_to_smallest']:.2f}")
        out = Path(args.out or Path(__file__).parent / "results" / ("generate.json" if args.case == "main"
                                                                       else f"generate-{args.case}.json"))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(row, indent=2))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
