"""The ``cfdseed`` command: ``cfdseed train|generate|evaluate|openfoam|cmakedir|models``.

Argument parsing, checks of the command line (output paths, clashing options), logging set-up and
printing; the work is done by :func:`cfdseed.train.train`, :func:`cfdseed.generate.generate` and
:func:`cfdseed.evaluate.evaluate`. Exit status: 0 success, 1 failed checks, 2 bad input (one line
on stderr says what), 130 training interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import CfdseedError, ConfigError

__all__ = ["main", "build_parser", "parse_options"]

_EXIT = """\
exit status:
  0    success
  1    the checks failed (generate: the written field violates a channel constraint)
  2    bad input: unreadable or inconsistent files, options or units (one line on stderr says what)
  130  training was interrupted (Ctrl-C, SIGTERM); the checkpoint is written, continue with --resume
"""

_MAIN = """\
Synthetic turbulence for channel-flow simulations: train a generator (a WGAN-GP) on y-z slices of
real turbulence, write an initial condition for your own grid instead of waiting out the start-up
transient, and compare fields with data and published DNS.
"""

_MAIN_EPILOG = """\
examples:
  cfdseed generate --shape 64 65 48 --lengths 12.566 2 4.189 --y chebyshev --seed 1 --out ic.h5
  cfdseed evaluate --fields ic.h5 --out ic-report
  cfdseed train examples/train_tiny.toml
  cfdseed openfoam channel395 --seed 1                          # an OpenFOAM channel case's 0/U
  cmake -S solver -B build -Dcfdseed_DIR=$(cfdseed cmakedir)   # C, C++ and Fortran solvers
  cfdseed models                                                # the packaged generators

Run `cfdseed COMMAND --help` for the options of a command.

""" + _EXIT


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a generator on a slice dataset",
        description="Train a generator (WGAN-GP) on the y-z slices of a dataset, as a TOML config describes\n"
                    "(sections [data], [model], [train], [log]; see the README). The run folder receives\n"
                    "ckpt.pt (training state), model.pt (the generator to use), best.pt (best by the\n"
                    "validation metric), config.toml, log.csv, metrics.csv and losses.png. Ctrl-C writes a\n"
                    "checkpoint and stops; --resume continues exactly.",
        epilog="examples:\n"
               "  cfdseed train examples/train_tiny.toml\n"
               "  cfdseed train run.toml --set train.iterations=5000 --out runs/long\n"
               "  cfdseed train run.toml --out runs/long --resume\n"
               "  cfdseed train run.toml --out runs/long --auto-resume   # in a requeued batch job\n"
               "  torchrun --nproc-per-node=4 -m cfdseed.cli train run.toml   # several processes or GPUs\n\n"
               + _EXIT,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(run=_run_train)
    p.add_argument("config", help="TOML config file; data.path in it is relative to the file")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run in the run folder from its ckpt.pt (same config; more iterations allowed)")
    again.add_argument("--auto-resume", action="store_true",
                       help="continue the run if the run folder holds a ckpt.pt, else start it: one command for a "
                            "batch job that may be requeued (a finished run returns at once)")
    again.add_argument("--force", action="store_true",
                       help="replace the run already in the run folder (deletes its checkpoints and logs); "
                            "without --resume or --force such a folder is refused")
    p.add_argument("--device", help="where to train: auto (a GPU when available), cpu, cuda or cuda:N")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="change one config value, e.g. --set train.lr_g=1e-4 (repeatable)")
    p.add_argument("--out", metavar="DIR", help="run folder (default: log.out of the config); created with any missing parent folders")


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="write an initial condition for a grid",
        description="Write a velocity field for your grid as an initial condition: OUT.h5 (HDF5, the layout\n"
                    "is in the README), OUT.xmf (open it in ParaView) and OUT.png (a quick look at u').\n"
                    "The field meets the channel's constraints (no-slip walls, periodic, divergence-free,\n"
                    "the bulk velocity), which are checked and printed. By default it comes from the\n"
                    "packaged generator, trained at Re_tau = 180.",
        epilog="examples:\n"
               "  cfdseed generate --shape 64 65 48 --lengths 12.566 2 4.189 --y chebyshev --seed 1 --out ic.h5\n"
               "  cfdseed generate --shape 64 65 48 --lengths 12.566 2 4.189 --re-tau 300 --model run/model.pt --out ic.h5\n"
               "  cfdseed generate --source streaks --option re_tau=180 --shape 64 65 48 --lengths 12.566 2 4.189 "
               "--out streaks.h5\n\n"
               + _EXIT,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(run=_run_generate)
    p.add_argument("--source", default="gan", metavar="NAME",
                   help="what makes the field: gan (the trained generator, default), sem (synthetic eddies, "
                        "calibrated like gan), plug, laminar, trig, streaks, snapshot or phase-randomised (an "
                        "existing field file, --option path=F.h5) or analytic")
    p.add_argument("--model", default=None, metavar="FILE", help="generator checkpoint or packaged model name for --source gan (default: the packaged default)")
    p.add_argument("--shape", nargs=3, type=int, required=True, metavar=("NX", "NY", "NZ"),
                   help="grid points (streamwise, wall-normal, spanwise)")
    p.add_argument("--lengths", nargs=3, type=float, required=True, metavar=("LX", "LY", "LZ"),
                   help="box size; walls at y = 0 and y = LY")
    p.add_argument("--y", default="uniform", metavar="POINTS",
                   help="wall-normal points: uniform (default), chebyshev, tanh[:S]; -cc variants "
                        "(uniform-cc, chebyshev-cc, tanh-cc[:S]) have no point on the walls")
    p.add_argument("--re-tau", type=float, default=None,
                   help="friction Reynolds number of your flow (default: the model's for gan, 180 otherwise)")
    p.add_argument("--u-tau", type=float, default=None,
                   help="friction velocity of your flow (default: re_tau nu / h, else bulk / expected bulk+, "
                        "else 1: wall units; the same for every source)")
    p.add_argument("--nu", type=float, default=None, help="kinematic viscosity of your flow (default: u_tau h / re_tau)")
    p.add_argument("--bulk", type=float, default=None,
                   help="bulk velocity to set exactly (default: the expected turbulent bulk velocity in these units, "
                        "15.5 u_tau at Re_tau 180; snapshot: the file's own)")
    p.add_argument("--corr-length", type=float, default=None,
                   help="gan, latent models (v1) only: how far (in half-heights) structures stay correlated along x "
                        "(default 1.5); a conditional model's rollout refuses it")
    p.add_argument("--device", default=None, help="gan: where the generator runs, cpu or cuda (default: a GPU when available)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="further setting of the source, e.g. --option amplitude=0.2 (repeatable; values are JSON)")
    p.add_argument("--seed", type=_seed, default=None, help="random seed, for a reproducible field (default: a fresh one)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64", help="stored precision (default float64)")
    p.add_argument("--strategy", choices=("auto", "root", "distributed"), default="auto",
                   help="under mpiexec: build and write on rank 0 (root), or every rank its own x slab with MPI-IO "
                        "output (distributed: OUT.h5 holds the metadata, OUT.raw the velocity); auto: distributed "
                        "past 4 GiB of field when the source can (gan, sem)")
    p.add_argument("--no-png", action="store_true", help="do not draw OUT.png")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="output file, ending in .h5 or .hdf5, in an existing folder (OUT.xmf and OUT.png go next to it)")


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="compare generated or given fields with data and published DNS",
        description="Turbulence statistics in wall units (mean and rms profiles, spectra, PDFs,\n"
                    "correlations) of a model's samples or of field files, compared with DNS data (--against)\n"
                    "and published DNS (Lee & Moser, Moser-Kim-Mansour). Writes OUT/metrics.json,\n"
                    "OUT/report.md and PNG figures. Several --fields LABEL=FILE give a side-by-side report:\n"
                    "one table column and one line in every figure per input, the DNS in black.",
        epilog="examples:\n"
               "  cfdseed evaluate --out report                          # the packaged model vs DNS\n"
               "  cfdseed evaluate --model run/model.pt --against val.h5 --out report\n"
               "  cfdseed evaluate --fields ic.h5 --out ic-report\n"
               "  cfdseed evaluate --fields gan=gan.h5 --fields sem=sem.h5 --fields phase-randomised=pr.h5 \\\n"
               "                   --against dns.h5 --out compare      # side by side\n\n"
               + _EXIT,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(run=_run_evaluate)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", metavar="FILE", help="generator checkpoint or packaged model name to sample (default: the packaged default)")
    src.add_argument("--fields", metavar="[LABEL=]FILE", action="append",
                     help="file to evaluate instead of a model: a slice dataset or a field written by `cfdseed "
                          "generate`; repeat for a side-by-side report, LABEL naming each input (default: the "
                          "file name without suffix)")
    p.add_argument("--nu", type=float, help="kinematic viscosity of --fields, slice datasets and field files alike "
                                            "(default: from the files; --against keeps its own)")
    p.add_argument("--u-tau", type=float, help="friction velocity of --fields, slice datasets and field files alike "
                                               "(default: from the files; --against keeps its own)")
    p.add_argument("--samples", type=int, metavar="N", help="slices drawn from the model (default 256)")
    p.add_argument("--seed", type=_seed, help="random seed of the model's samples (default 0)")
    p.add_argument("--device", help="where the model runs: cpu, cuda or cuda:N (default: a GPU when available)")
    p.add_argument("--against", metavar="FILE", help="DNS data to compare with: a slice dataset (e.g. the training data or "
                                                     "held-out data) or a field file")
    p.add_argument("--against-samples", type=int, default=1024, metavar="N",
                   help="use at most this many slices of --against, evenly spread over the file (default 1024)")
    p.add_argument("--reference", default="auto", metavar="NAME",
                   help="published DNS to compare with: lee-moser-180|-550|-1000|-2000|-5200, mkm-180; "
                        "auto = Lee & Moser nearest in Re_tau (default); none")
    p.add_argument("--heights", type=float, nargs="+", default=[5.0, 15.0, 30.0, 100.0], metavar="YPLUS",
                   help="y+ of spectra, PDFs and correlations (default 5 15 30 100; the centre is always added)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder, created if missing (the folder above it must exist)")


def _add_openfoam(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "openfoam", help="write the initial velocity of an OpenFOAM channel case",
        description="Write the initial velocity (TIME/U, internalField only) of an OpenFOAM channel case: walls\n"
                    "normal to y, cyclic in x and z. The mesh is read through OpenFOAM's own postProcess\n"
                    "(cell centres and volumes; it must be on PATH) and the case's files with foamlib. The\n"
                    "bulk velocity is the Ubar of a meanVelocityForce, nu comes from transportProperties\n"
                    "and, unless given, re_tau is the one that fits U_b h / nu. Writes 0/U of the\n"
                    "reconstructed case and/or processor*/0/U of a decomposed one (--layout); under mpiexec\n"
                    "the ranks share the processor directories out. Each U is replaced atomically and the\n"
                    "original kept as U.before-cfdseed.bak; a second run needs --force.",
        epilog="examples:\n"
               "  cfdseed openfoam channel395 --seed 1\n"
               "  cfdseed openfoam channel395 --source streaks --layout decomposed\n"
               "  mpiexec -n 4 cfdseed openfoam channel395 --re-tau 395 --force\n\n"
               + _EXIT,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(run=_run_openfoam)
    p.add_argument("case", metavar="CASE", help="the OpenFOAM case folder")
    p.add_argument("--source", default="gan", metavar="NAME",
                   help="what makes the field (as for generate; default gan, the packaged generator)")
    p.add_argument("--model", default=None, metavar="FILE", help="generator checkpoint or packaged model name for --source gan")
    p.add_argument("--re-tau", type=float, default=None,
                   help="friction Reynolds number (default: the one whose turbulent bulk velocity fits Ubar h / nu)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="further setting of the source, e.g. --option amplitude=0.2 (repeatable; values are JSON)")
    p.add_argument("--seed", type=_seed, default=None, help="random seed, for a reproducible field")
    p.add_argument("--time", default="0", metavar="DIR", help="time directory to write (default 0)")
    p.add_argument("--layout", choices=("auto", "reconstructed", "decomposed"), default="auto",
                   help="which U to write: auto (default) every layout present, or one of them")
    p.add_argument("--force", action="store_true",
                   help="write although an earlier run's backup U.before-cfdseed.bak exists (it is kept)")
    p.add_argument("--strategy", choices=("auto", "root", "distributed"), default="auto",
                   help="build the structured field on rank 0 (root) or as x slabs on every rank (distributed: "
                        "gan, sem); auto: distributed on more than one rank past 4 GiB when the source can")


def _add_cmakedir(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cmakedir", help="print the folder of the CMake package (C, C++ and Fortran solvers)",
        description="Write the CMake package of this Python environment (if it changed) and print its folder,\n"
                    "for find_package(cfdseed CONFIG): the solver's build then compiles libcfdseed with the\n"
                    "solver's own compilers and MPI, embedding this environment's interpreter (README: Compiled\n"
                    "solvers). The folder is <prefix>/share/cmake/cfdseed of this environment.",
        epilog="examples:\n"
               "  cmake -S solver -B build -Dcfdseed_DIR=$(.venv/bin/cfdseed cmakedir) -DMPI_C_COMPILER=$PWD/.venv/bin/mpicc\n\n"
               + _EXIT,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(run=_run_cmakedir)


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models", help="list the packaged generators (or describe model files)",
        description="One line per packaged generator (or per MODEL given: a packaged name or a checkpoint\n"
                    "file): name, default marker, generator kind, training Re_tau, the file's sha256 (what a\n"
                    "registration pins) and the TKE of its stored statistics (its default calibration target,\n"
                    "half channel, wall units). --json writes every field as JSON (model card: cfdseed/models/README.md).",
        epilog="examples:\n"
               "  cfdseed models\n"
               "  cfdseed models run/best.pt --json\n\n" + _EXIT,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="*", help="packaged model names or checkpoint files (default: every packaged model)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of the table")
    p.set_defaults(run=_run_models)


def _seed(text: str) -> int:
    """The ``--seed`` argument: a non-negative integer (argparse names the option in its message)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


def _version() -> str:
    """``cfdseed X (torch Y, Python Z)``, from the installed metadata (torch is not imported)."""
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    try:
        torch = version("torch")
    except PackageNotFoundError:
        torch = "not installed"
    return f"cfdseed {__version__} (torch {torch}, Python {sys.version.split()[0]})"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cfdseed`` and its sub-commands."""
    parser = argparse.ArgumentParser(prog="cfdseed", description=_MAIN, epilog=_MAIN_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version(),
                        help="print cfdseed's version (with torch's and Python's) and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_generate(sub)
    _add_evaluate(sub)
    _add_openfoam(sub)
    _add_train(sub)
    _add_cmakedir(sub)
    _add_models(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cfdseed`` command; returns the exit status (see the module docstring)."""
    stdout, sys.stdout = sys.stdout, _Stdout(sys.stdout)
    try:
        try:
            args = build_parser().parse_args(argv)
        finally:
            sys.stdout.flush()  # --help's and --version's text, before their SystemExit
        run: Callable[[argparse.Namespace], int] = args.run
        status = int(run(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except _StdoutClosed:  # the reader went away (`cfdseed models | head`): end quietly, as a shell tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())  # the exit's flush has nowhere to fail
        return 141
    except (CfdseedError, ValueError) as exc:  # bad input; anything else is a bug and keeps its traceback
        if _other_rank():  # under mpiexec the ranks agreed on the error: rank 0 says it once
            return 2
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"cfdseed {args.command}: error: {message}", file=sys.stderr)
        return 2
    finally:
        sys.stdout = stdout


class _StdoutClosed(Exception):
    """Standard output's reader went away (a BrokenPipeError writing to it, and only to it)."""


class _Stdout:
    """``sys.stdout`` whose broken pipe is :class:`_StdoutClosed` (a broken pipe elsewhere, a data
    loader's or a subprocess', stays an error with its traceback)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError as exc:
            raise _StdoutClosed from exc

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError as exc:
            raise _StdoutClosed from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _other_rank() -> bool:
    """Whether this process is an MPI rank other than 0 of the world (mpi4py started MPI)."""
    mpi = sys.modules.get("mpi4py.MPI")
    return (mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized()
            and mpi.COMM_WORLD.Get_rank() > 0)


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` -> dict; values parsed as JSON where possible (numbers, lists, null)."""
    out: dict[str, Any] = {}
    for it in items or []:
        key, sep, val = it.partition("=")
        if not sep or not key:
            raise ConfigError(f"source option {it!r} must look like key=value")
        try:
            out[key.strip()] = json.loads(val)
        except json.JSONDecodeError:
            out[key.strip()] = val
    return out


def _parent_exists(path: Path, what: str) -> None:
    if not path.resolve().parent.is_dir():
        raise ConfigError(f"--out {str(path)!r}: the folder {str(path.parent)!r} does not exist; create it first "
                          f"({what})")


def _run_models(args: argparse.Namespace) -> int:
    from .checkpoint import model_summary, packaged_models

    rows = [model_summary(m) for m in (args.model or packaged_models())]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'model':<22} {'':<9} {'kind':<12} {'Re_tau':>6} {'TKE':>6}  sha256")
    for r in rows:
        tke = "-" if r["statistics_tke"] is None else f"{r['statistics_tke']:.3f}"
        print(f"{r['name']:<22} {'(default)' if r['default'] else '':<9} {r['kind']:<12} {r['re_tau']:>6g} "
              f"{tke:>6}  {r['sha256']}")
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .train import train

    overrides = list(args.set or [])
    if args.device:
        overrides.append(f"train.device={args.device}")
    if args.out:
        overrides.append(f"log.out={args.out}")
    cfg = load_config(args.config, overrides)
    rank, world = os.environ.get("RANK", "0"), os.environ.get("WORLD_SIZE", "1")
    logging.basicConfig(level=logging.INFO if rank == "0" else logging.WARNING,
                        format=f"%(asctime)s rank {rank}/{world} %(name)s %(levelname)s: %(message)s")
    res = train(cfg, resume="auto" if args.auto_resume else args.resume, force=args.force)
    if rank == "0":
        state = "interrupted" if res.interrupted else "finished"
        print(f"cfdseed train: {state} at iteration {res.iteration}; run folder {res.out}")
    return 130 if res.interrupted else 0


def _run_generate(args: argparse.Namespace) -> int:
    """Under ``mpiexec``: the root path (rank 0 works and writes) or, with the distributed strategy,
    every rank builds and writes its own x slab; every rank returns the exit status."""
    from mpi4py import MPI

    from ._collective import root_agreed, run_agreed
    from ._threads import root_build
    from .coupling import _distributed

    world = MPI.COMM_WORLD
    out, grid, options = run_agreed(world, _generate_setup, args)
    # distributed: generate_slabs refuses a source without a slab path in the command line's words
    if args.strategy == "distributed" or _distributed(world, grid, args.source, options, args.strategy):
        from .generate import generate_slabs

        res = generate_slabs(world, grid, out, source=args.source, options=options, seed=args.seed,
                             dtype=args.dtype, picture=not args.no_png)
    else:
        with root_build(world, 0):  # rank 0 borrows its node's CPUs while the others sleep
            res = root_agreed(world, _generate, args, out, grid, options)
    if world.Get_rank() == 0:  # outside the agreement: a closed stdout is rank 0's own matter
        _print_generated(res)
    return 0 if res.report.passed else 1


def _generate_setup(args: argparse.Namespace) -> tuple[Path, Any, dict[str, Any]]:
    """The output path, grid and source options of ``cfdseed generate``, checked (every rank)."""
    from .grid import Grid

    out = Path(args.out)
    if out.suffix.lower() not in (".h5", ".hdf5"):
        raise ConfigError(f"--out {args.out!r} must name an HDF5 file ending in .h5 or .hdf5 "
                          "(OUT.xmf and OUT.png are written next to it)")
    if out.is_dir():
        raise ConfigError(f"--out {args.out!r} is a folder; name the HDF5 file to write, e.g. {args.out}/ic.h5")
    _parent_exists(out, "cfdseed generate writes into an existing folder")
    options = parse_options(args.option)
    for key, val in (("re_tau", args.re_tau), ("u_tau", args.u_tau), ("nu", args.nu), ("bulk", args.bulk),
                     ("model", args.model), ("device", args.device), ("corr_length", args.corr_length)):
        if val is not None:
            if key in options:
                raise ConfigError(f"{key} given both as --{key.replace('_', '-')} and as --option")
            options[key] = val
    return out, Grid(args.shape, args.lengths, y=args.y), options


def _generate(args: argparse.Namespace, out: Path, grid: Any, options: dict[str, Any]) -> Any:
    from .generate import generate

    return generate(grid, out, source=args.source, options=options, seed=args.seed, dtype=args.dtype,
                    picture=not args.no_png)


def _print_generated(res: Any) -> None:
    if res.enforcement is not None:
        print(res.enforcement)
    print(res.report)
    print("wrote " + ", ".join(str(f) for f in (res.path, res.raw, res.xdmf, res.picture) if f is not None))


def _run_openfoam(args: argparse.Namespace) -> int:
    """Every rank works (collective); rank 0 prints."""
    from mpi4py import MPI

    from .errors import ConstraintError
    from .solvers.openfoam import write_initial_field

    world = MPI.COMM_WORLD
    options = parse_options(args.option)
    for key, val in (("re_tau", args.re_tau), ("model", args.model)):
        if val is not None:
            if key in options:
                raise ConfigError(f"{key} given both as --{key.replace('_', '-')} and as --option")
            options[key] = val
    if world.Get_rank() == 0:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        res = write_initial_field(world, args.case, source=args.source, options=options, seed=args.seed,
                                  time=args.time, layout=args.layout, force=args.force, strategy=args.strategy)
    except ConstraintError as exc:
        if world.Get_rank() == 0:
            print(f"cfdseed openfoam: the field fails a channel check, nothing written: {exc}", file=sys.stderr)
        return 1
    if world.Get_rank() == 0:
        print(res.summary())
        print("checks of the structured field, before sampling onto the mesh (the cell field's finite-volume "
              "divergence is not zero: the solver's first pressure projection removes it):")
        print(res.report)
    return 0


def _run_cmakedir(args: argparse.Namespace) -> int:
    from .capi import cmake_dir

    try:
        folder = cmake_dir()
    except OSError as exc:
        raise ConfigError(str(exc)) from None
    print(folder)
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {args.out!r} is a file; name the folder to write the report into")
    _parent_exists(out, "cfdseed evaluate creates the output folder itself, not the ones above it")
    sampling = {k: v for k in ("samples", "seed", "device") if (v := getattr(args, k)) is not None}
    if args.fields is not None and sampling:
        raise ConfigError(f"{', '.join('--' + k for k in sampling)}: only for a model's samples, not with --fields")
    units = [f"--{k.replace('_', '-')}" for k in ("nu", "u_tau") if getattr(args, k) is not None]
    if args.fields is None and args.against is None and units:
        raise ConfigError(f"{', '.join(units)}: only for --fields and an --against field file without units; "
                          "a model's samples are in its own units")
    fields = None if args.fields is None else [_labelled(f) for f in args.fields]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    m = evaluate(out, fields=fields, model=args.model, nu=args.nu, u_tau=args.u_tau, against=args.against,
                 against_samples=args.against_samples, reference=args.reference,
                 heights=[*args.heights, "centre"], **sampling)
    if "labels" in m:
        return _print_side_by_side(m, out)
    print(f"cfdseed evaluate: {m['evaluated']['source']}")
    if m["vs_dataset"]:
        print(f"  combined metric vs {m['against']['source']}: {m['vs_dataset']['combined']:.4g}")
        print("  profile errors: " + ", ".join(f"{k} {v:.3g}" for k, v in m["vs_dataset"]["profiles"].items()))
    if m["vs_reference"]:
        r = m["vs_reference"]
        print(f"  vs {r['name']}: " + ", ".join(f"{k} {v:.3g}" for k, v in r["profiles"].items()))
    print(f"  wrote {out}/metrics.json, report.md and {len(m['figures'])} figures")
    return 0


def _labelled(text: str) -> str | tuple[str, str]:
    """``--fields`` value: ``LABEL=FILE`` -> (label, file); an existing file or text without '=' -> itself."""
    label, sep, path = text.partition("=")
    if not sep or Path(text).is_file():
        return text
    return label, path


def _print_side_by_side(m: dict[str, Any], out: Path) -> int:
    print(f"cfdseed evaluate: {len(m['labels'])} inputs side by side"
          + (f" against {m['against']['source']}" if m["against"] else ""))
    for label in m["labels"]:
        e = m["inputs"][label]
        parts = [e["source"]]
        if e["vs_dataset"]:
            parts.append(f"combined metric {e['vs_dataset']['combined']:.4g}")
        if e["vs_reference"]:
            parts.append(f"U+ vs {e['vs_reference']['name']} {e['vs_reference']['profiles']['U+']:.3g}")
        print(f"  {label}: " + "; ".join(parts))
    print(f"  wrote {out}/metrics.json, report.md (side-by-side table) and {len(m['figures'])} figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
