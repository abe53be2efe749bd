"""FFTW planning rigor of the campaign's Dedalus channel: steps per CPU-second and round-off.

Each trial is a fresh 1-rank process (Dedalus keeps a basis' FFTW plans for the life of a process)
that loads the campaign reference's committed state at t = 221.4, takes ``--warm`` steps, then
times ``--steps`` steps and saves the velocity. Rigors alternate (measure, patient, measure, ...)
so that load from other work on the machine hits both alike; ratios are patient over measure in the
same run. The state differences say whether the rigors give the same flow: FFTW chooses ``measure``
and ``patient`` plans by timing them, so two ``measure`` trials may differ at round-off already.

Run with the Dedalus environment (one core per trial):

    OMP_NUM_THREADS=1 .venv-dedalus/bin/python benchmarks/dedalus_planning.py --repeats 3
        [--out benchmarks/results/dedalus_planning.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / "benchmarks" / "campaign" / "ref" / "snapshots" / "t0221.402.npz"
RIGORS = ("measure", "patient")


def trial(rigor: str, steps: int, warm: int, out: Path) -> dict[str, float]:
    """In this process: the campaign channel planned with ``rigor``; time ``steps`` steps after
    ``warm``; save the grid velocity to ``out``."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from campaign_plan import read_plan

    from cfdseed.solvers.dedalus import ChannelSpec, DedalusChannel

    spec = ChannelSpec.from_json(next(r for r in read_plan() if r["id"] == "ref")["spec"])
    t0 = time.process_time()
    ch = DedalusChannel(spec, fftw_rigor=rigor)
    ch.load_state(STATE)
    ch.step()  # plans every transform
    setup = time.process_time() - t0
    for _ in range(warm - 1):
        ch.step()
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        ch.step()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    np.save(out, np.asarray(ch._grid_velocity()))
    return dict(rigor=rigor, steps=steps, setup_cpu_s=setup, steps_per_cpu_s=steps / cpu,
                steps_per_wall_s=steps / wall, sim_time=ch.sim_time)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warm", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ap.add_argument("--trial", choices=RIGORS, help=argparse.SUPPRESS)
    ap.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.trial:
        print(json.dumps(trial(a.trial, a.steps, a.warm, a.save)))
        return 0
    env = dict(os.environ, OMP_NUM_THREADS="1")
    rows, states = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeats):
            for rigor in RIGORS:
                save = Path(tmp) / f"{rigor}_{i}.npy"
                cmd = [sys.executable, __file__, "--trial", rigor, "--steps", str(a.steps),
                       "--warm", str(a.warm), "--save", str(save)]
                res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                row = json.loads(res.stdout.strip().splitlines()[-1])
                states[rigor, i] = np.load(save)
                rows.append(row)
                print(f"{rigor:8s} {row['steps_per_cpu_s']:6.2f} steps/CPU-s ({row['steps_per_wall_s']:.2f} "
                      f"per wall-s), setup {row['setup_cpu_s']:.1f} CPU-s", flush=True)
    base = states["measure", 0]
    scale = float(np.abs(base).max())
    diff = {f"{r}_{i}": float(np.abs(s - base).max()) / scale for (r, i), s in states.items() if (r, i) != ("measure", 0)}
    rate = {r: [x["steps_per_cpu_s"] for x in rows if x["rigor"] == r] for r in RIGORS}
    ratios = [p / m for m, p in zip(rate["measure"], rate["patient"])]
    out = dict(state=str(STATE.relative_to(ROOT)), steps=a.steps, warm=a.warm, trials=rows,
               patient_over_measure=ratios, median_ratio=float(np.median(ratios)),
               max_abs_diff_over_max_u_vs_first_measure=diff,
               command=f"OMP_NUM_THREADS=1 .venv-dedalus/bin/python benchmarks/dedalus_planning.py --repeats {a.repeats}",
               machine_load="see the README: measured beside the campaign's two workers unless said otherwise")
    print(f"patient / measure steps per CPU-second: {', '.join(f'{r:.3f}' for r in ratios)} "
          f"(median {out['median_ratio']:.3f}); state differences after {a.warm + a.steps} steps, relative to max|u|: "
          + ", ".join(f"{k} {v:.1e}" for k, v in diff.items()))
    if a.out:
        a.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
