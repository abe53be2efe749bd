"""Build ``cfdseed/models/default-re180-v2.1.pt``: v2's generator with corrected statistics.

v2's stored statistics (its default calibration target) were taken about the mean of all training
planes, so the slow wandering of the plane mean counted as turbulence (TKE +3.7 %; model card,
"Known limits"). v2.1 keeps v2's weights, normalisation and grid bit for bit and replaces the
statistics by the reference run's own plane averages over v2's training window, each moment about
its instant's plane mean (:func:`cfdseed.targets.profiles_target` on the committed
``benchmarks/campaign/ref`` chunks). Deterministic; run from the repository root::

    .venv/bin/python training/v2.1/build.py [--check]

``--check`` rebuilds in memory and compares with the packaged file instead of writing it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from campaign_records import read_chunks  # noqa: E402

from cfdseed.checkpoint import model_path, read_checkpoint, save_checkpoint  # noqa: E402
from cfdseed.targets import StressTarget, profiles_target, stress_target  # noqa: E402

PARENT = "default-re180-v2"
NAME = "default-re180-v2.1"
WINDOW = (52.0, 188.0)  # v2's training planes, h/u_tau (cfdseed/models/README.md, "Data (v2)")
LY, RE_TAU = 2.0, 180.0  # the reference's units: h = u_tau = 1


def reference_target(campaign: Path = ROOT / "benchmarks" / "campaign") -> StressTarget:
    """The reference run's profiles averaged over :data:`WINDOW` (record-weighted bins), folded."""
    _, prof = read_chunks(campaign, "ref")
    sel = (prof["t"] >= WINDOW[0]) & (prof["t"] <= WINDOW[1])
    w = prof["n"][sel].astype(np.float64)
    avg = {k: (prof[k][sel].astype(np.float64) * w[:, None]).sum(axis=0) / w.sum()
           for k in ("U", "uu", "vv", "ww", "uv")}
    return profiles_target(prof["y"], LY, avg["U"], avg["uu"], avg["vv"], avg["ww"], avg["uv"],
                           re_tau=RE_TAU, name=f"campaign reference, t = {WINDOW[0]:g}-{WINDOW[1]:g} h/u_tau")


def build() -> dict:
    """v2's checkpoint with :func:`reference_target` as its statistics and v2.1's metadata."""
    ck = read_checkpoint(model_path(PARENT))
    ck.pop("sha256", None)
    parent = stress_target(dict(ck["statistics"]))
    target = reference_target()
    ck["statistics"] = target.to_dict()
    ck["metadata"] = {**ck["metadata"], "name": NAME, "parent": PARENT,
                      "statistics_source": "plane averages of the campaign reference run over "
                      f"t = {WINDOW[0]:g}-{WINDOW[1]:g} h/u_tau, moments about each instant's plane mean "
                      "(training/v2.1/build.py)",
                      "statistics_volume_tke": target.tke_plus(),
                      "parent_statistics_volume_tke": parent.tke_plus()}
    return ck


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the packaged file, write nothing")
    args = ap.parse_args()
    ck = build()
    out = ROOT / "cfdseed" / "models" / f"{NAME}.pt"
    if args.check:
        have = read_checkpoint(out)
        same = have["statistics"] == ck["statistics"] and have["metadata"] == ck["metadata"]
        print(f"{out.name}: {'reproduced' if same else 'DIFFERS from this build'}")
        return 0 if same else 1
    save_checkpoint(out, ck)
    print(f"wrote {out} (statistics TKE {ck['metadata']['statistics_volume_tke']:.4f}, "
          f"v2's {ck['metadata']['parent_statistics_volume_tke']:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
