"""Command line: ``cfdseed train|generate|evaluate``. Argument parsing only; work lives in modules."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a WGAN-GP generator from a TOML config")
    p.set_defaults(_run="cfdseed.train:cli_run")
    # owned by cfdseed.train
    p.add_argument("config", help="TOML config ([data], [model], [train], [log]; see cfdseed.config)")
    p.add_argument("--resume", action="store_true", help="continue exactly from OUT/ckpt.pt")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (overrides train.device)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one config key, e.g. --set train.lr_g=1e-4 (repeatable)")
    p.add_argument("--out", help="run folder (overrides log.out)")


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="write an initial condition (HDF5 + XDMF + PNG) for a grid")
    p.set_defaults(_run="cfdseed.generate:cli_run")
    # owned by cfdseed.generate
    p.add_argument("--source", default="gan",
                   help="named source: gan (default), plug, laminar, trig, streaks, snapshot, analytic")
    p.add_argument("--model", default=None, help="generator checkpoint for --source gan (default: packaged model)")
    p.add_argument("--shape", nargs=3, type=int, required=True, metavar=("NX", "NY", "NZ"),
                   help="grid points (streamwise, wall-normal, spanwise)")
    p.add_argument("--lengths", nargs=3, type=float, required=True, metavar=("LX", "LY", "LZ"),
                   help="box size; walls at y = 0 and y = LY")
    p.add_argument("--y", default="uniform",
                   help="wall-normal distribution: uniform, chebyshev, tanh[:s], uniform-cc, chebyshev-cc, tanh-cc[:s]")
    p.add_argument("--re-tau", type=float, default=None, help="target friction Reynolds number (default: the model's)")
    p.add_argument("--u-tau", type=float, default=None, help="target friction velocity")
    p.add_argument("--nu", type=float, default=None, help="target kinematic viscosity")
    p.add_argument("--bulk", type=float, default=None, help="target bulk velocity (set exactly)")
    p.add_argument("--corr-length", type=float, default=None,
                   help="gan: streamwise latent correlation length in half-heights (default 1.5)")
    p.add_argument("--device", default=None, help="gan: torch device for inference (cpu, cuda)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="further source option (JSON value), repeatable, e.g. --option amplitude=0.2")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: fresh entropy)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64", help="stored precision")
    p.add_argument("--no-png", action="store_true", help="skip the PNG quick-look")
    p.add_argument("--out", required=True, help="output HDF5 file (an .xmf sidecar and a .png go next to it)")


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="compare generated or given fields with data and DNS")
    p.set_defaults(_run="cfdseed.evaluate:cli_run")
    # owned by cfdseed.evaluate
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", help="generator checkpoint to sample (default: the packaged default model)")
    src.add_argument("--fields", help="HDF5 to evaluate: a cfdseed slice dataset (N,3,ny,nz) or a 3-D field "
                     "written by `cfdseed generate`")
    p.add_argument("--nu", type=float, help="kinematic viscosity of --fields (default: from the file)")
    p.add_argument("--u-tau", type=float, help="friction velocity of --fields (default: from the file)")
    p.add_argument("--samples", type=int, default=256, help="slices drawn from the model (default 256)")
    p.add_argument("--seed", type=int, default=0, help="latent seed of the model samples (default 0)")
    p.add_argument("--device", help="device of the model: cpu | cuda | cuda:N (default: CUDA if available)")
    p.add_argument("--against", help="reference slice dataset (e.g. the training data or its validation split)")
    p.add_argument("--against-samples", type=int, default=1024,
                   help="at most this many slices of --against, evenly spread over the file (default 1024)")
    p.add_argument("--reference", default="auto",
                   help="published DNS profiles: lee-moser-180|-550|-1000|-2000|-5200, mkm-180; "
                   "auto = Lee & Moser nearest in Re_tau (default); none")
    p.add_argument("--heights", type=float, nargs="+", default=[5.0, 15.0, 30.0, 100.0], metavar="YPLUS",
                   help="y+ of spectra, PDFs and correlations (default 5 15 30 100; the centre is always added)")
    p.add_argument("--out", required=True, help="output folder (metrics.json, report.md, PNG figures)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cfdseed", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_generate(sub)
    _add_evaluate(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cfdseed`` command; returns the exit status."""
    import importlib

    args = build_parser().parse_args(argv)
    module, _, func = args._run.partition(":")
    from .errors import CfdseedError

    try:
        return int(getattr(importlib.import_module(module), func)(args) or 0)
    except CfdseedError as exc:
        print(f"cfdseed {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
