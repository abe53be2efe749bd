"""Generator iterations/s of ``cfdseed.train`` vs a plain textbook WGAN-GP loop (same nets, batch).

    OMP_NUM_THREADS=1 python benchmarks/train_speed.py [--iterations 4] [--device cpu]

Cases 3x64x64 and 3x128x128 (presets as ``cfdseed train`` picks them: cpu-small, published-128),
batch 64, n_critic 5, latent 128. Our trainer reads a synthetic HDF5 file from disk (streaming,
augmentation, normalisation, CSV logging included); the baseline indexes an in-memory tensor.

The machine is shared, so the two are timed *paired* in one process: after each of our iterations
(through the trainer's iteration hook) one baseline iteration runs, and each side is charged only
its own time. Seconds per generator iteration = median over the iterations after the first
(warm-up) of the process CPU time (single-threaded, far less disturbed by other jobs than wall
time; on CUDA the wall time is used). Peak memory comes from separate runs, one subprocess per
method (peak RSS; peak CUDA memory on GPU). Prints ratios, writes
``benchmarks/results/train_speed.json``.
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
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

CASES = {"3x64x64": (64, 64), "3x128x128": (128, 128)}
BATCH, N_CRITIC, LATENT, LAMBDA = 64, 5, 128, 10.0


def _dataset(path: Path, ny: int, nz: int, n: int = 2 * BATCH) -> None:
    from cfdseed.slices import DatasetWriter
    from cfdseed.grid import wall_normal

    rng = np.random.default_rng(0)
    y = wall_normal("chebyshev", ny, 2.0)
    with DatasetWriter(path, y, np.arange(nz) * np.pi / nz,
                       attrs=dict(re_tau=180.0, nu=1 / 180, u_tau=1.0, ly=2.0, lz=np.pi, source="bench")) as w:
        w.append(rng.standard_normal((n, 3, ny, nz)).astype(np.float32))


def _clock(device: str) -> tuple[float, float]:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter(), time.process_time()


def _textbook(path: Path, device: str) -> Callable[[], None]:
    """One iteration of the loop as usually written: in-memory data, fake detached, no shortcuts."""
    from cfdseed.slices import read_slices as read_fields
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

    def iteration() -> None:
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

    return iteration


def _ours(path: Path, iterations: int, device: str, out: Path, hook: Callable[[int], None]) -> None:
    from cfdseed.config import Config, apply_overrides
    from cfdseed.train import train

    cfg = apply_overrides(Config(), [
        f"data.path={path}", f"log.out={out}", f"train.iterations={iterations}", f"train.device={device}",
        "data.val_fraction=0", "log.eval_every=0", "log.progress=false", "log.plot=false",
        f"log.checkpoint_every={iterations}", f"train.batch_size={BATCH}", f"train.n_critic={N_CRITIC}"])
    train(cfg, _on_iteration=hook)


def _paired(case: str, iterations: int, device: str) -> dict[str, list[tuple[float, float]]]:
    ny, nz = CASES[case]
    times: dict[str, list[tuple[float, float]]] = {"ours": [], "textbook": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.h5"
        _dataset(path, ny, nz)
        baseline = _textbook(path, device)
        mark = [_clock(device)]

        def hook(it: int) -> None:  # ours just finished an iteration: charge it, then the baseline
            t1 = _clock(device)
            times["ours"].append((t1[0] - mark[0][0], t1[1] - mark[0][1]))
            baseline()
            t2 = _clock(device)
            times["textbook"].append((t2[0] - t1[0], t2[1] - t1[1]))
            mark[0] = _clock(device)

        _ours(path, iterations, device, Path(tmp) / "run", hook)
    return times


def _memory(case: str, method: str, device: str) -> dict[str, float | None]:
    ny, nz = CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.h5"
        _dataset(path, ny, nz)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        if method == "ours":
            _ours(path, 2, device, Path(tmp) / "run", lambda it: None)
        else:
            step = _textbook(path, device)
            step()
            step()
        peak = _peak_rss_mib()
        gpu = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    return {"peak_rss_mib": peak, "peak_gpu_mib": gpu}


def _peak_rss_mib() -> float:
    # VmHWM belongs to this process image; ru_maxrss would carry the parent's peak across exec
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _summary(times: list[tuple[float, float]], device: str) -> dict[str, float]:
    timed = times[1:] or times  # the first iteration is warm-up
    wall, cpu = np.array([t[0] for t in timed]), np.array([t[1] for t in timed])
    main = cpu if device == "cpu" else wall
    return {"seconds_per_iteration": float(np.median(main)), "iterations_per_s": float(1 / np.median(main)),
            "wall_seconds_per_iteration": float(np.median(wall)),
            "cpu_seconds_per_iteration": float(np.median(cpu)), "iterations_timed": len(timed)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=4, help="paired iterations per case; first is warm-up")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--memory-worker", nargs=2, metavar=("CASE", "METHOD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.memory_worker:
        print(json.dumps(_memory(*args.memory_worker, args.device)))
        return
    results: dict[str, dict] = {}
    for case in CASES:
        raw = _paired(case, args.iterations, args.device)
        res = {m: _summary(t, args.device) for m, t in raw.items()}
        for method in res:
            cmd = [sys.executable, __file__, "--memory-worker", case, method, "--device", args.device]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            res[method].update(json.loads(out.strip().splitlines()[-1]))
        ratio = res["textbook"]["seconds_per_iteration"] / res["ours"]["seconds_per_iteration"]
        ratio_wall = res["textbook"]["wall_seconds_per_iteration"] / res["ours"]["wall_seconds_per_iteration"]
        results[case] = {**res, "speedup_vs_textbook": ratio, "speedup_vs_textbook_wall": ratio_wall,
                         "raw_seconds_wall_cpu": raw}
        print(f"{case}: ours {res['ours']['seconds_per_iteration']:.3f} s/it "
              f"(peak RSS {res['ours']['peak_rss_mib']:.0f} MiB), textbook "
              f"{res['textbook']['seconds_per_iteration']:.3f} s/it "
              f"(peak RSS {res['textbook']['peak_rss_mib']:.0f} MiB): {ratio:.2f}x "
              f"(wall time: {ratio_wall:.2f}x)", flush=True)
    meta = {"device": args.device, "iterations": args.iterations, "batch": BATCH, "n_critic": N_CRITIC,
            "latent": LATENT, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "load_average": os.getloadavg()}
    suffix = "" if args.device == "cpu" else "_" + args.device.replace(":", "")
    dest = Path(__file__).resolve().parent / "results" / f"train_speed{suffix}.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps({"meta": meta, "cases": results}, indent=2))
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
