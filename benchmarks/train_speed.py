"""Generator iterations/s of ``cfdseed.train`` vs a plain textbook WGAN-GP loop (same nets, batch).

    OMP_NUM_THREADS=1 python benchmarks/train_speed.py [--iterations 3] [--repeat 2] [--device cpu]

Cases 3x64x64 and 3x128x128 (presets chosen as ``cfdseed train`` would: cpu-small, published-128),
batch 64, n_critic 5. Our trainer reads a synthetic HDF5 file from disk (streaming, augmentation,
normalisation, logging included); the baseline indexes an in-memory tensor. Each (case, method,
repeat) runs in its own subprocess so peak RSS is its own, methods interleaved. Seconds per generator
iteration = median process CPU time of the iterations after the first (warm-up), single-threaded,
because wall time on a shared machine mostly measures the neighbours; wall-time medians are
reported too (on CUDA, CPU time is not the cost: read the wall figures there). Prints ratios and writes ``benchmarks/results/train_speed.json``.
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
from pathlib import Path

import numpy as np
import torch

CASES = {"3x64x64": (64, 64), "3x128x128": (128, 128)}
BATCH, N_CRITIC, LATENT, LAMBDA = 64, 5, 128, 10.0


def _dataset(path: Path, ny: int, nz: int, n: int = 2 * BATCH) -> None:
    from cfdseed.data import DatasetWriter
    from cfdseed.grid import wall_normal

    rng = np.random.default_rng(0)
    y = wall_normal("chebyshev", ny, 2.0)
    with DatasetWriter(path, y, np.arange(nz) * np.pi / nz,
                       attrs=dict(re_tau=180.0, nu=1 / 180, u_tau=1.0, ly=2.0, lz=np.pi, source="bench")) as w:
        w.append(rng.standard_normal((n, 3, ny, nz)).astype(np.float32))


def _ours(path: Path, iterations: int, device: str, out: Path) -> list[tuple[float, float]]:
    from cfdseed.config import Config, apply_overrides
    from cfdseed.train import train

    cfg = apply_overrides(Config(), [
        f"data.path={path}", f"log.out={out}", f"train.iterations={iterations}", f"train.device={device}",
        "data.val_fraction=0", "log.eval_every=0", "log.progress=false", "log.plot=false",
        f"log.checkpoint_every={iterations}", f"train.batch_size={BATCH}", f"train.n_critic={N_CRITIC}"])
    marks = [(time.perf_counter(), time.process_time())]
    train(cfg, _on_iteration=lambda it: marks.append((time.perf_counter(), time.process_time())))
    return [(b[0] - a[0], b[1] - a[1]) for a, b in zip(marks, marks[1:])]


def _textbook(path: Path, iterations: int, device: str) -> list[tuple[float, float]]:
    """The loop as usually written: in-memory data, fake kept with grad then detached."""
    from cfdseed.data import read_fields
    from cfdseed.model import Critic, Generator, arch_config
    from cfdseed.train import _auto_preset

    data = torch.from_numpy(read_fields(path))
    data = ((data - data.mean(dim=(0, 3), keepdim=True)) / data.std(dim=(0, 3), keepdim=True)).to(device)
    ny, nz = data.shape[2:]
    arch = arch_config(_auto_preset(ny, nz), ny, nz, latent_dim=LATENT)
    torch.manual_seed(0)
    gen, critic = Generator(arch).to(device), Critic(arch).to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=5e-4, betas=(0.0, 0.9))
    opt_c = torch.optim.Adam(critic.parameters(), lr=5e-4, betas=(0.0, 0.9))
    times = []
    for _ in range(iterations):
        t0 = (time.perf_counter(), time.process_time())
        for _ in range(N_CRITIC):
            real = data[torch.randint(0, data.shape[0], (BATCH,))]
            fake = gen(torch.randn(BATCH, LATENT, device=device))
            eps = torch.rand(BATCH, 1, 1, 1, device=device)
            x_hat = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
            grad = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)[0]
            gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            loss_c = critic(fake.detach()).mean() - critic(real).mean() + LAMBDA * gp
            opt_c.zero_grad()
            loss_c.backward()
            opt_c.step()
        loss_g = -critic(gen(torch.randn(BATCH, LATENT, device=device))).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0[0], time.process_time() - t0[1]))
    return times


def _worker(case: str, method: str, iterations: int, device: str) -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    ny, nz = CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.h5"
        _dataset(path, ny, nz)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        times = (_ours(path, iterations, device, Path(tmp) / "run") if method == "ours"
                 else _textbook(path, iterations, device))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        gpu = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    print(json.dumps({"iteration_seconds": times, "peak_rss_mib": peak / 1024,
                      "rss_before_mib": rss0 / 1024, "peak_gpu_mib": gpu}))


def _summary(runs: list[dict], device: str) -> dict:
    # The first iteration of each run is warm-up. The machine is shared, so wall time is disturbed
    # by other jobs; single-threaded CPU time of the process (OMP_NUM_THREADS=1) much less so: the
    # ratio uses medians of CPU time, wall-time medians are reported next to it.
    its = [t for r in runs for t in r["iteration_seconds"][1:]] or [t for r in runs for t in r["iteration_seconds"]]
    wall, cpu = np.array([t[0] for t in its]), np.array([t[1] for t in its])
    main = cpu if device == "cpu" else wall
    return {"seconds_per_iteration": float(np.median(main)), "wall_seconds_per_iteration": float(np.median(wall)),
            "cpu_seconds_per_iteration": float(np.median(cpu)),
            "fastest_wall_seconds": float(wall.min()), "iterations_timed": len(its),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs), "peak_gpu_mib": runs[0]["peak_gpu_mib"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=3)  # per run, first is warm-up
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--worker", nargs=2, metavar=("CASE", "METHOD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker(*args.worker, args.iterations, args.device)
        return
    results: dict[str, dict] = {}
    for case in CASES:
        runs: dict[str, list[dict]] = {"ours": [], "textbook": []}
        for _ in range(args.repeat):
            for method in ("textbook", "ours"):  # interleaved so load changes hit both
                cmd = [sys.executable, __file__, "--worker", case, method, "--iterations",
                       str(args.iterations), "--device", args.device]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                runs[method].append(json.loads(out.strip().splitlines()[-1]))
        best = {m: _summary(r, args.device) for m, r in runs.items()}
        ratio = best["textbook"]["seconds_per_iteration"] / best["ours"]["seconds_per_iteration"]
        ratio_wall = best["textbook"]["wall_seconds_per_iteration"] / best["ours"]["wall_seconds_per_iteration"]
        results[case] = {
            "ours": best["ours"], "textbook": best["textbook"],
            "ours_iterations_per_s": 1 / best["ours"]["seconds_per_iteration"],
            "textbook_iterations_per_s": 1 / best["textbook"]["seconds_per_iteration"],
            "speedup_vs_textbook": ratio, "speedup_vs_textbook_wall": ratio_wall, "all_runs": runs,
        }
        print(f"{case}: ours {best['ours']['seconds_per_iteration']:.3f} s/it "
              f"(peak RSS {best['ours']['peak_rss_mib']:.0f} MiB), textbook "
              f"{best['textbook']['seconds_per_iteration']:.3f} s/it "
              f"(peak RSS {best['textbook']['peak_rss_mib']:.0f} MiB): {ratio:.2f}x "
              f"(wall time: {ratio_wall:.2f}x)")
    meta = {"device": args.device, "iterations": args.iterations, "repeat": args.repeat, "batch": BATCH,
            "n_critic": N_CRITIC, "threads": os.environ.get("OMP_NUM_THREADS"), "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count()}
    dest = Path(__file__).resolve().parent / "results" / f"train_speed{'' if args.device == 'cpu' else '_' + args.device.replace(':', '')}.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps({"meta": meta, "cases": results}, indent=2))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
