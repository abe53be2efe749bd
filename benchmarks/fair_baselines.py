"""The fair baselines beside the GAN and the DNS (issue 15), on the campaign's own box and grid.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fair_baselines.py [--seed 101] [--dns runs/v2data/all.h5]

Builds, on the transient campaign's grid (Dedalus Re_tau 180, pi x 2 x pi/2, 32 x 64 x 32 Gauss
points, spectral operators, bulk 15.7), one field of each initial condition the campaign compares:
``gan`` (the packaged model, calibrated), ``sem`` (synthetic eddies calibrated to the same
target), ``phase-randomised`` (the reference run's kept state at t = 60.16 with random Fourier
phases: the DNS's statistics and spectra without its structures), ``trig`` on the turbulent mean
profile, and ``trig`` as in the talk (laminar mean); then ``cfdseed evaluate`` puts them side by
side against the DNS: the reference run's y-z planes (``--dns``, a slice dataset merged from
``runs/campaign/ref/``; ``cfdseed.solvers.runner.build_dataset`` or the pilot merge described in
benchmarks/README.md). Writes ``benchmarks/results/fair_baselines/`` (report.md, metrics.json,
figures); the field files stay in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SNAPSHOT = HERE / "campaign" / "ref" / "snapshots" / "t0060.159.npz"
OUT = HERE / "results" / "fair_baselines"
BULK = 15.7
ICS = {
    "gan": ("gan", {"bulk": BULK}),
    "sem": ("sem", {"bulk": BULK}),
    "phase-randomised": ("phase-randomised", {"bulk": BULK}),  # path added below
    "trig-turbulent": ("trig", {"bulk": BULK, "mean": "turbulent"}),
    "trig": ("trig", {"bulk": BULK}),
}


def _grid():
    from cfdseed.grid import Grid

    return Grid((32, 64, 32), (math.pi, 2.0, math.pi / 2), y="chebyshev-cc", operators="spectral")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=101)
    ap.add_argument("--dns", default=str(HERE.parent / "runs" / "v2data" / "all.h5"))
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()

    from cfdseed.evaluate import evaluate
    from cfdseed.fields import write_field
    from cfdseed.sources import resolve

    grid = _grid()
    tmp = Path(tempfile.mkdtemp(prefix="cfdseed-fair-"))
    snap = np.load(SNAPSHOT)["u"].astype(np.float64)  # (3, nx, ny, nz), the reference's state
    snap_file = tmp / "dns-t60.h5"
    write_field(snap_file, snap, grid, attrs={"re_tau": 180.0, "u_tau": 1.0, "nu": 1.0 / 180.0,
                                             "source": "campaign ref state t = 60.16"})
    files, info = {}, {}
    for label, (source, options) in ICS.items():
        opts = dict(options, **({"path": str(snap_file)} if source == "phase-randomised" else {}))
        built = resolve(source, opts).build(grid, np.random.default_rng(args.seed))
        path = tmp / f"{label}.h5"
        write_field(path, built.field, grid, attrs={"re_tau": 180.0, "u_tau": 1.0, "nu": 1.0 / 180.0, "source": label})
        files[label] = str(path)
        cal = built.info.enforcement.calibration if built.info.enforcement is not None else None
        info[label] = {"source": source, "options": options,
                       "calibration_after": None if cal is None else cal.after}
    res = evaluate(args.out, fields=list(files.items()), against=args.dns, reference="lee-moser-180")
    Path(args.out, "ics.json").write_text(json.dumps({"seed": args.seed, "grid": grid.describe() | {"y": "chebyshev-cc"},
                                                      "dns": args.dns, "ics": info}, indent=1) + "\n")
    print(f"wrote {args.out}/report.md")
    return res


if __name__ == "__main__":
    main()
