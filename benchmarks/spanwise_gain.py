"""A conditional model with a fitted spanwise gain (issue 13): its kept planes' spanwise spectra
taken to the data's (``sampling.spanwise_gain``, :func:`cfdseed.conditional.spanwise_gain`).

The generator's weights, statistics and grid stay as they are; the written checkpoint adds the
factors per component, row and spanwise mode that take the model's mean spanwise power to that of
``--data`` (real planes in the model's units, e.g. the reference's committed states as one slice
file, ``cfdseed.solvers.runner.states_dataset``). Measure the result with the model card's
commands (``field_physics.py model --model OUT``, ``cfdseed evaluate --model OUT --against ...``).
Run from the repository root::

    .venv/bin/python benchmarks/spanwise_gain.py --model default-re180-v2.1 \\
        --data runs/ref-states.h5 --out runs/v2.1-gain.pt [--samples 512] [--seed 1000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cfdseed.checkpoint import model_path, read_checkpoint, save_checkpoint
from cfdseed.conditional import spanwise_gain
from cfdseed.model import load_generator
from cfdseed.slices import open_dataset


def build(model: str, data: str, samples: int, seed: int) -> dict:
    """``model``'s checkpoint with ``sampling.spanwise_gain`` fitted to ``data``'s planes."""
    handle = load_generator(model, device="cpu")
    if handle.kind != "conditional":
        raise SystemExit(f"{model}: a spanwise gain is for conditional models, this one is {handle.kind}")
    with open_dataset(data) as ds:
        identity = ds.identity()
        planes = ds.read(np.arange(ds.n))
        for key in ("re_tau", "ly", "lz", "u_tau", "nu"):  # the same case in the same units
            have, want = float(getattr(ds, key)), float(getattr(handle, key))
            if not np.isclose(have, want, rtol=1e-6):
                raise SystemExit(f"{data}: {key} {have:.6g} is not the model's {want:.6g}")
    gain = spanwise_gain(handle, planes, samples=samples, seed=seed)
    ck = read_checkpoint(model_path(model))
    ck.pop("sha256", None)
    ck.pop("training", None)
    parent = ck.get("metadata", {}).get("name") or Path(model).stem
    ck["sampling"] = {**(ck.get("sampling") or {}), "spanwise_gain": gain.tolist()}
    ck["metadata"] = {**ck.get("metadata", {}), "name": f"{parent}+spanwise-gain", "parent": parent,
                      "spanwise_gain_data": str(data), "spanwise_gain_data_identity": identity,
                      "spanwise_gain_planes": int(planes.shape[0]), "spanwise_gain_samples": samples,
                      "spanwise_gain_seed": seed}
    return ck


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="conditional checkpoint or packaged model name")
    ap.add_argument("--data", required=True, help="slice dataset of real planes in the model's units")
    ap.add_argument("--out", required=True)
    ap.add_argument("--samples", type=int, default=512, help="model planes the model's power is measured on")
    ap.add_argument("--seed", type=int, default=1000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    ck = build(args.model, args.data, args.samples, args.seed)
    save_checkpoint(args.out, ck)
    g = np.asarray(ck["sampling"]["spanwise_gain"])
    last = {c: float(np.median(g[i, :, -2])) for i, c in enumerate("uvw")}  # the last mode below Nyquist
    print(f"wrote {args.out} ({ck['metadata']['name']}; {ck['metadata']['spanwise_gain_planes']} data planes, "
          f"{args.samples} model planes, {time.perf_counter() - t0:.0f} s): gain {g.min():.3f}..{g.max():.3f}, "
          f"median over rows at mode nz/2 - 1: " + ", ".join(f"{c} {v:.3f}" for c, v in last.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
