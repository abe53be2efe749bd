"""Turbulent channel flow in Dedalus 3, seeded through cfdseed.init_field; resumable.

Run in the Dedalus environment (see .ci/setup-dedalus.sh), e.g. Re_tau = 180 on 2 ranks::

    export OMP_NUM_THREADS=1
    mpiexec -n 2 .venv-dedalus/bin/python examples/dedalus_channel.py --out runs/re180 \\
        --ic streaks --duration 20 --max-wall 3600 --slices-every 100 --slices-after 12
    # from a committed state instead (e.g. to regenerate the campaign reference's planes):
    mpiexec -n 2 .venv-dedalus/bin/python examples/dedalus_channel.py --out runs/replay-t060 \\
        --state benchmarks/campaign/ref/snapshots/t0060.159.npz --duration 20 --slices-every 200 --slice-planes 32
    # the flow-rate reference's planes (campaign amendment 9: U_b held at 15.7), from its first kept state:
    mpiexec -n 2 .venv-dedalus/bin/python examples/dedalus_channel.py --out runs/cfr-replay-first \\
        --state $(ls benchmarks/campaign/ref-cfr/snapshots/t0*.npz | head -1) --driving flow_rate --bulk 15.7 \\
        --duration 20 --slices-every 200 --slice-planes 32
    # continue the same run later (same rank count; a flow-rate run: with its --driving and --bulk):
    mpiexec -n 2 .venv-dedalus/bin/python examples/dedalus_channel.py --out runs/re180 --restart \\
        --duration 20
    # a batch job that may be requeued: one command, started or continued, to t = 200 (SIGTERM or
    # SIGUSR1 to the ranks, or a STOP file in --out, ends it with a final checkpoint)
    mpiexec -n 2 .venv-dedalus/bin/python examples/dedalus_channel.py --out runs/long --ic streaks \\
        --auto-restart --until 200 --max-wall 3500
    # move a run to another rank count: a compact state from its last checkpoint, then --state
    mpiexec -n 2 .venv-dedalus/bin/python examples/dedalus_channel.py --out runs/re180 --restart \\
        --duration 0 --save-state runs/re180.npz

Outputs (see cfdseed.solvers.runner): time series CSV, plane-averaged profiles, y-z slice files
in the cfdseed dataset format, restart checkpoints.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys

import numpy as np


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from cfdseed.solvers.dedalus import FFTW_RIGORS  # no Dedalus import: parsing works in any venv
    from cfdseed.solvers.dedalus_case import ChannelSpec

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="run directory (created)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--restart", action="store_true", help="continue from the newest checkpoint in --out")
    again.add_argument("--auto-restart", action="store_true",
                       help="continue from the newest checkpoint in --out if there is one, else start (a requeued "
                            "batch job's one command; --kick then acts on the start only; best with --until)")
    p.add_argument("--ic", default="analytic", help="init_field source name (e.g. analytic, streaks, gan)")
    p.add_argument("--state", default=None,
                   help="start from this compact state file instead of --ic (DedalusChannel.save_state, e.g. "
                        "the campaign's benchmarks/campaign/ref/snapshots/*.npz): its velocity as stored, "
                        "its time and step count")
    p.add_argument("--ic-options", default="{}", help="JSON options of the source")
    p.add_argument("--seed", type=int, default=0, help="random seed of the source")
    p.add_argument("--no-check", action="store_true", help="skip init_field's constraint checks")
    p.add_argument("--kick", default=None, help="after start/restart add the fluctuations of this source")
    p.add_argument("--kick-options", default="{}", help="JSON options of the --kick source")
    p.add_argument("--shape", type=int, nargs=3, default=(32, 64, 32), metavar=("NX", "NY", "NZ"))
    p.add_argument("--lengths", type=float, nargs=3, default=(math.pi, 2.0, math.pi / 2), metavar=("LX", "LY", "LZ"))
    p.add_argument("--re-tau", type=float, default=180.0)
    p.add_argument("--driving", choices=("force", "flow_rate"), default="force",
                   help="force: the constant body force (default); flow_rate: the bulk velocity held at --bulk")
    p.add_argument("--bulk", type=float, default=None,
                   help="the held bulk velocity of --driving flow_rate (u_tau units; default 15.7); only with it")
    p.add_argument("--cfl", type=float, default=0.15, help="CFL safety factor (keep <= 0.15: 0.2 was rejected, README)")
    p.add_argument("--max-step", type=float, default=0.01, help="largest time step (h/u_tau)")
    p.add_argument("--fftw-rigor", choices=FFTW_RIGORS, default=None,
                   help="FFTW planning rigor of Dedalus' transforms (default: Dedalus' own, measure; "
                        "patient: ~15 %% faster steps on the default case)")
    end = p.add_mutually_exclusive_group(required=True)
    end.add_argument("--duration", type=float, help="simulated time to add (h/u_tau)")
    end.add_argument("--until", type=float, help="simulated time to reach (h/u_tau): the same command goes on to it")
    p.add_argument("--max-wall", type=float, default=math.inf, help="wall-clock limit of this segment (s)")
    p.add_argument("--series-every", type=int, default=20, help="steps between time-series/profile records")
    p.add_argument("--slices-every", type=int, default=0, help="steps between y-z slice snapshots (0: none)")
    p.add_argument("--slices-after", type=float, default=0.0, help="no slices before this time (h/u_tau)")
    p.add_argument("--slice-planes", type=int, default=8, help="equally spaced x planes per snapshot")
    p.add_argument("--checkpoint-every", type=int, default=1000, help="steps between checkpoints")
    p.add_argument("--save-state", default=None,
                   help="at the end of the segment also write the compact state to this .npz (DedalusChannel."
                        "save_state): another rank count or other physics start from it with --state")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    # checked here, before MPI and Dedalus start: a mistake is a usage error, not an aborted job
    args.ic_opts = _json_object(p, "--ic-options", args.ic_options)
    args.kick_opts = _json_object(p, "--kick-options", args.kick_options)
    for flag, value, ok, allowed in (
            ("--duration", args.duration, args.duration is None or 0 < args.duration < math.inf
             or (args.duration == 0 and args.restart and args.save_state is not None),
             "a time > 0 (0 only with --restart and --save-state: write the state, run nothing)"),
            ("--until", args.until, args.until is None or 0 <= args.until < math.inf, "a time >= 0"),
            ("--max-wall", args.max_wall, args.max_wall > 0, "seconds > 0"),
            ("--cfl", args.cfl, 0 < args.cfl <= 1, "a safety factor in (0, 1]; keep <= 0.15"),
            ("--max-step", args.max_step, 0 < args.max_step < math.inf, "a time step > 0"),
            ("--bulk", args.bulk, args.bulk is None or (args.driving == "flow_rate" and 0 < args.bulk < math.inf),
             "a bulk velocity > 0, with --driving flow_rate only (the body force sets its own)"),
            ("--series-every", args.series_every, args.series_every >= 1, "steps >= 1"),
            ("--checkpoint-every", args.checkpoint_every, args.checkpoint_every >= 1, "steps >= 1"),
            ("--slices-every", args.slices_every, args.slices_every >= 0, "steps >= 0 (0: none)")):
        if not ok:  # NaN fails every comparison above
            p.error(f"argument {flag}: {value}; allowed: {allowed}")
    if args.driving == "flow_rate":
        args.bulk = ChannelSpec.bulk if args.bulk is None else args.bulk
        if args.ic_opts.get("bulk", args.bulk) != args.bulk:
            p.error(f"argument --ic-options: bulk {args.ic_opts['bulk']} under --driving flow_rate with --bulk "
                    f"{args.bulk}; the seeded field must carry the held bulk velocity (leave it out: it is added)")
    nx, n = args.shape[0], args.slice_planes
    if n < 1 or (args.slices_every and (n > nx or nx % n)):  # equally spaced distinct x planes
        p.error(f"argument --slice-planes: {n} planes on nx={nx}; allowed: a divisor of nx between 1 and nx "
                f"({', '.join(str(d) for d in _divisors(nx))})")
    return args


def _json_object(p: argparse.ArgumentParser, flag: str, text: str) -> dict:
    """``text`` as a JSON object, or a usage error naming ``flag``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        p.error(f"argument {flag}: not valid JSON ({exc}): {text!r}; give an object, e.g. '{{\"bulk\": 15.7}}'")
    if not isinstance(value, dict):
        p.error(f"argument {flag}: {text!r} is JSON but not an object; give an object, e.g. '{{\"bulk\": 15.7}}'")
    return value


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0] if n >= 1 else []


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from mpi4py import MPI

    import dedalus

    from cfdseed.solvers.dedalus import ChannelSpec, DedalusChannel
    from cfdseed.solvers.runner import RunSettings, drive

    comm = MPI.COMM_WORLD
    logging.basicConfig(level=logging.INFO if args.verbose or comm.rank == 0 else logging.WARNING,
                        format=f"%(asctime)s r{comm.rank} %(name)s %(levelname)s %(message)s")
    log = logging.getLogger("dedalus_channel")
    spec = ChannelSpec(shape=tuple(args.shape), lengths=tuple(args.lengths), re_tau=args.re_tau,
                       cfl_safety=args.cfl, max_step=args.max_step,
                       initial_step=min(ChannelSpec.initial_step, args.max_step), driving=args.driving,
                       bulk=ChannelSpec.bulk if args.bulk is None else args.bulk)
    channel = DedalusChannel(spec, comm, fftw_rigor=args.fftw_rigor)
    nx = spec.shape[0]
    planes = tuple(int(i) for i in np.linspace(0, nx, args.slice_planes, endpoint=False).round().astype(int))
    provenance = dict(
        solver="dedalus", solver_version=dedalus.__version__, timestepper="SBDF2",
        shape=list(spec.shape), lengths=list(spec.lengths), dealias=spec.dealias, cfl_safety=spec.cfl_safety,
        driving=spec.driving, held_bulk=spec.bulk if spec.driving == "flow_rate" else "",
        nranks=comm.size, ic=args.ic if args.state is None else f"state:{args.state}",
        ic_options=args.ic_options, seed=args.seed,
        kick=args.kick or "", kick_options=args.kick_options if args.kick else "",
        wall_units=json.dumps(spec.wall_units()),
    )
    settings = RunSettings(
        duration=args.duration, until=args.until, max_wall=args.max_wall, series_every=args.series_every,
        slices_every=args.slices_every, slices_after=args.slices_after, slice_x=planes,
        checkpoint_every=args.checkpoint_every, source=f"dedalus:{provenance['ic']}", provenance=provenance,
    )

    def seed() -> None:
        if args.state is not None:
            meta = channel.load_state(args.state)
            if comm.rank == 0:
                log.info("started from %s at t = %.4f (iteration %d)", args.state, meta["sim_time"], meta["iteration"])
            return
        report = channel.seed(args.ic, options=args.ic_opts, seed=args.seed, check=not args.no_check)
        if comm.rank == 0:
            log.info("seeded with %r:\n%s", args.ic, report)

    def kick() -> None:
        rms = channel.perturb(args.kick, options=args.kick_opts, seed=args.seed + 1000)
        if comm.rank == 0:
            log.info("kicked with the fluctuations of %r (rms %.4g) at t=%.4f", args.kick, rms, channel.sim_time)

    if comm.rank == 0:
        log.info("spec %s, wall units %s, %d ranks", spec.to_dict(), spec.wall_units(), comm.size)
    summary = drive(channel, args.out, settings, restart="auto" if args.auto_restart else args.restart, seed_fn=seed,
                    after_start=kick if args.kick else None,
                    note=dict(argv=sys.argv, spec=spec.to_dict()))
    if args.save_state is not None:
        channel.save_state(args.save_state, extra=dict(run=args.out))
    if comm.rank == 0:
        log.info("done: %s", summary)
        if summary["stopped"] == "signal":
            log.info("stopped by a signal at t = %.4f; the same command with --auto-restart (or --restart) "
                     "continues from the final checkpoint", summary["t"])
    return 0


if __name__ == "__main__":
    parse_args()  # a usage error exits here (status 2, on every rank alike), before MPI starts

    from mpi4py import MPI

    import cfdseed

    with cfdseed.abort_on_error(MPI.COMM_WORLD):  # a failure on one rank ends the job, not hangs it
        sys.exit(main())
