"""Driving loop and on-disk outputs of resumable channel runs, plus their post-processing.

A run directory holds::

    segments.json          one entry per (re)start: start time/iteration, options, wall clock
    checkpoints/it*/       solver restart files (see DedalusChannel.save_checkpoint)
    seg000/timeseries.csv  t, step, dt_sim, bulk, tau_lower, tau_upper, re_tau_lower, re_tau_upper,
                           probe_u, centre_u, tke, bulk_w, dissipation, wall_s (every
                           ``series_every`` steps)
    seg000/profiles.h5     t (n,), y (ny,), U V W uu vv ww uv (n, ny) plane averages
    seg000/slices_0000.h5  y-z slices in the cfdseed dataset format (contract 4), a new file every
                           ``slices_per_file`` snapshots so a killed run loses at most one file

A restarted segment continues from the newest checkpoint, so records of earlier segments later
than the restart time are superseded: the readers here keep for segment k only the records with
start_k <= t < start_{k+1}. Only rank 0 writes files (besides checkpoints). Creating the file
``STOP`` in the run directory ends a running segment gracefully (final checkpoint, files closed), and
so does SIGTERM or SIGUSR1 (:data:`STOP_SIGNALS`: a batch scheduler's notice) sent to any rank.

The driven object (``channel``) needs: ``spec`` (ChannelSpec), ``grid``, ``comm``, ``sim_time``,
``iteration``, ``step()``, ``diagnostics()``, ``slices(x_indices)``, ``save_checkpoint(dir,
extra=)``, ``latest_checkpoint(dir)``, ``load_checkpoint(path)``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._collective import agree, run_agreed
from .._values import is_integer, is_real, json_plain
from ..slices import DatasetWriter, open_dataset
from ..errors import ConfigError, DatasetError

__all__ = [
    "RunSettings", "drive", "read_segments", "read_timeseries", "read_profiles", "iter_slices",
    "mean_profiles", "build_dataset", "states_dataset", "SERIES_COLUMNS", "STOP_FILE", "STOP_SIGNALS",
]

log = logging.getLogger(__name__)

SERIES_COLUMNS = ("t", "step", "dt_sim", "bulk", "tau_lower", "tau_upper", "re_tau_lower",
                  "re_tau_upper", "probe_u", "centre_u", "tke", "bulk_w", "dissipation", "wall_s")
PROFILE_KEYS = ("U", "V", "W", "uu", "vv", "ww", "uv")
#: Creating this file in the run directory ends the segment gracefully (checkpoint, closed files).
STOP_FILE = "STOP"
#: Signals that end a running segment as the STOP file does (``stopped="signal"``): what batch
#: schedulers send before they kill a job (Slurm: SIGTERM at the time limit, ``--signal=USR1@120``
#: ahead of it). Open MPI's mpiexec forwards SIGUSR1 to the ranks, but a SIGTERM it gets itself kills
#: them a second later (``odls_base_sigkill_timeout``): send SIGTERM to the ranks, or SIGUSR1.
STOP_SIGNALS = ("SIGTERM", "SIGUSR1")


@dataclass
class RunSettings:
    """What to run and what to record.

    duration: simulated time to add in this segment (h/u_tau), or until: the simulated time to run
    to (one of the two; ``until`` makes a requeued job's one command go to the same end);
    max_wall: wall-clock limit (s; an infinite end time needs a finite one); series_every /
    slices_every / checkpoint_every: cadences in steps, integers >= 1 (slices_every: 0 disables
    slices); slices_per_file: snapshots per slice file (>= 1); slice_x: global x indices (integers
    >= 0, below the channel's nx: checked by :func:`drive`) of the y-z planes of each snapshot, at
    least one when slices are taken; slices_after: earliest simulated time for slices (finite);
    source: provenance string for the slice files. A wrong type or value is a :class:`ConfigError`
    naming the field.
    """

    duration: float | None = None
    max_wall: float = math.inf
    series_every: int = 20
    slices_every: int = 0
    slices_after: float = 0.0
    slice_x: tuple[int, ...] = (0,)
    slices_per_file: int = 25
    checkpoint_every: int = 1000
    source: str = "dedalus"
    provenance: dict[str, Any] | None = None
    until: float | None = None

    def __post_init__(self) -> None:
        if (self.duration is None) == (self.until is None):
            raise ConfigError(f"give one of duration (time to add) and until (time to reach); got duration="
                              f"{self.duration}, until={self.until}")
        for k in ("duration", "until", "max_wall"):
            v = getattr(self, k)
            if v is not None and not is_real(v):
                raise ConfigError(f"{k}={v!r} must be a number (times in h/u_tau, max_wall in s)")
        end = self.duration if self.until is None else self.until
        if not (end >= 0 and self.max_wall > 0):
            raise ConfigError(f"duration={self.duration} / until={self.until} must be >= 0 and "
                              f"max_wall={self.max_wall} > 0")
        if math.isinf(end) and math.isinf(self.max_wall):  # no end in time nor on the clock: a run without end
            raise ConfigError(f"duration={self.duration} / until={self.until} and max_wall={self.max_wall} are "
                              f"both infinite: the segment would never end; give a finite end time or max_wall")
        # a NaN or fractional cadence matches no iteration: no diagnostics (a blow-up never seen, the
        # STOP file never read), no checkpoint
        for k, unit in (("series_every", "steps"), ("checkpoint_every", "steps"), ("slices_per_file", "snapshots")):
            v = getattr(self, k)
            if not (is_integer(v) and v >= 1):
                raise ConfigError(f"{k}={v!r} must be an integer >= 1 ({unit})")
        if not (is_integer(self.slices_every) and self.slices_every >= 0):
            raise ConfigError(f"slices_every={self.slices_every!r} must be an integer >= 0 (steps; 0 disables slices)")
        if not (is_real(self.slices_after) and math.isfinite(self.slices_after)):
            raise ConfigError(f"slices_after={self.slices_after!r} must be a finite number (h/u_tau)")
        x = self.slice_x
        is_seq = (isinstance(x, np.ndarray) and x.ndim == 1) or (
            isinstance(x, Sequence) and not isinstance(x, (str, bytes)))
        if not (is_seq and all(is_integer(i) and i >= 0 for i in x)):
            raise ConfigError(f"slice_x={x!r} must be a sequence of x indices (integers >= 0)")
        if self.slices_every and len(x) == 0:
            raise ConfigError(f"slice_x={x!r} is empty but slices_every={self.slices_every}: give at least one "
                              f"x index, or slices_every=0 for no slices")




#: The settings every rank acts on (collectives: diagnostics, slices, checkpoints; the early
#: return of ``until``): :func:`drive` requires them equal on every rank, and ``restart`` too
#: (``"auto"`` skips ``after_start`` on a continuation, True does not). The others (duration,
#: max_wall, slices_per_file, source, provenance) are read on rank 0 only, which decides for all.
_AGREED = ("until", "series_every", "slices_every", "slices_after", "slice_x", "checkpoint_every")


def _agree_settings(comm: Any, settings: RunSettings, nx: int, restart: Any) -> None:
    """Collective: check ``restart``, ``settings`` (again: fields may have been assigned after
    construction) and its ``slice_x`` against ``nx`` on every rank (one rank's bad value raised on
    all), then that the ranks pass the same ``restart`` and :data:`_AGREED` fields; a
    :class:`ConfigError` on every rank otherwise (a rank recording at another cadence, or calling
    ``after_start`` where the others do not, would enter collectives the others do not, and the
    job would hang)."""

    def check() -> None:
        if restart not in (True, False, "auto"):
            raise ConfigError(f"restart={restart!r}; must be True, False or 'auto'")
        settings.__post_init__()
        bad = [int(i) for i in settings.slice_x if i >= nx]
        if bad:
            raise ConfigError(f"slice_x={tuple(int(i) for i in settings.slice_x)}: x indices {bad} out of range; "
                              f"the channel has nx={nx} planes (indices 0..{nx - 1})")

    run_agreed(comm, check)

    def plain(v: Any) -> Any:  # picklable, comparable: numpy scalars and arrays as Python numbers/tuples
        if isinstance(v, (np.ndarray, Sequence)) and not isinstance(v, str):
            return tuple(int(i) for i in v)
        return v if v is None else (int(v) if is_integer(v) else float(v))

    mode = restart if isinstance(restart, str) else bool(restart)  # checked: True, False or "auto"
    everyone = comm.allgather((mode, *(plain(getattr(settings, k)) for k in _AGREED)))  # the same list on every rank
    for j, k in enumerate(("restart", *(f"settings.{k}" for k in _AGREED))):
        values = [mine[j] for mine in everyone]
        if any(v != values[0] for v in values):
            raise ConfigError(f"ranks disagree on {k}: {values} (by rank); every rank must pass the same "
                              f"{k.removeprefix('settings.')}")


def read_segments(out: str | os.PathLike) -> list[dict[str, Any]]:
    """Segment list of a run directory (empty if none)."""
    p = Path(out) / "segments.json"
    return json.loads(p.read_text()) if p.exists() else []


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=json_plain))  # settings may hold numpy integers
    os.replace(tmp, path)


class _Recorder:
    """Rank-0 writers of one segment."""

    def __init__(self, segdir: Path, channel: Any, settings: RunSettings) -> None:
        segdir.mkdir(parents=True, exist_ok=True)
        self.dir, self.channel, self.settings = segdir, channel, settings
        self._csv = open(segdir / "timeseries.csv", "w", newline="")
        self._rows = csv.writer(self._csv)
        self._rows.writerow(SERIES_COLUMNS)
        self._prof = h5py.File(segdir / "profiles.h5", "w")
        ny = channel.spec.shape[1]
        self._prof.create_dataset("y", data=channel.grid.y)
        self._prof.create_dataset("t", shape=(0,), maxshape=(None,), dtype="f8")
        for k in PROFILE_KEYS:
            self._prof.create_dataset(k, shape=(0, ny), maxshape=(None, ny), dtype="f8", chunks=(64, ny))
        self._slices: DatasetWriter | None = None
        self._file_index = 0
        self._in_file = 0

    def series(self, d: Any, dt_sim: float, wall: float) -> None:
        re = self.channel.spec.re_tau
        row = d.row()
        self._rows.writerow([
            row["t"], row["step"], dt_sim, row["bulk"], row["tau_lower"], row["tau_upper"],
            re * math.sqrt(max(row["tau_lower"], 0.0)), re * math.sqrt(max(row["tau_upper"], 0.0)),
            row["probe_u"], row["centre_u"], row["tke"], row["bulk_w"], row["dissipation"], wall,
        ])
        self._csv.flush()
        n = self._prof["t"].shape[0]
        self._prof["t"].resize((n + 1,))
        self._prof["t"][n] = d.t
        for k in PROFILE_KEYS:
            self._prof[k].resize((n + 1, self._prof[k].shape[1]))
            self._prof[k][n] = d.profiles[k]
        self._prof.flush()

    def slices(self, planes: np.ndarray, t: float) -> None:
        spec, s = self.channel.spec, self.settings
        if self._slices is None:
            attrs = dict(
                re_tau=spec.re_tau, nu=spec.nu, u_tau=1.0, ly=spec.lengths[1], lz=spec.lengths[2],
                source=s.source, **(s.provenance or {}),
            )
            path = self.dir / f"slices_{self._file_index:04d}.h5"
            self._slices = DatasetWriter(path, self.channel.grid.y, self.channel.grid.z, attrs=attrs)
        x = self.channel.grid.x[list(s.slice_x)]
        self._slices.append(planes, t=np.full(len(x), t), x=x)
        self._in_file += 1
        if self._in_file >= s.slices_per_file:
            self._slices.close()
            self._slices, self._in_file = None, 0
            self._file_index += 1

    def close(self) -> None:
        self._csv.close()
        self._prof.close()
        if self._slices is not None:
            self._slices.close()


@contextlib.contextmanager
def _caught_signals() -> Iterator[list[int]]:
    """Within the block, :data:`STOP_SIGNALS` append their number to the list yielded instead of
    their usual action; the previous handlers are restored after it. Only in the main thread (the
    only one Python lets set handlers); elsewhere the list stays empty and nothing changes."""
    caught: list[int] = []
    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def flag(signum: int, frame: Any) -> None:  # only a flag: the loop decides, with the other ranks
        caught.append(signum)

    try:
        for name in STOP_SIGNALS:
            num = getattr(signal, name, None)  # (no SIGUSR1 on Windows)
            if num is not None:
                previous[num] = signal.signal(num, flag)
        yield caught
    finally:
        for num, handler in previous.items():
            signal.signal(num, signal.SIG_DFL if handler is None else handler)  # None: set outside Python


def drive(channel: Any, out: str | os.PathLike, settings: RunSettings, *, restart: bool | str,
          seed_fn: Any = None, after_start: Any = None, note: dict[str, Any] | None = None,
          monitor: Any = None) -> dict[str, Any]:
    """Run one segment: restart from the newest checkpoint (or call ``seed_fn()``), call
    ``after_start()`` if given (e.g. a perturbation), step until ``duration`` (or ``until``) or
    ``max_wall`` is reached, record outputs, checkpoint at the end. Collective.

    ``restart``: True continues the newest checkpoint under ``out`` (refused without one), False
    starts a new run (refused where checkpoints exist), ``"auto"`` continues when there is one and
    starts otherwise (one command for a requeued batch job: ``after_start`` then acts on a start
    only, not on each continuation; with ``settings.until`` a run already there returns at once,
    ``stopped="until"``, without a new segment).

    ``monitor(diagnostics, wall_s)``, if given, is called on rank 0 with every time-series record
    (``wall_s``: wall seconds since the segment started); returning True ends the segment like
    the ``STOP`` file does (e.g. once a steady-state detector is satisfied).

    Returns a summary dict (identical on every rank); ``stopped`` says why the segment ended:
    ``"duration"`` (the end time reached), ``"until"`` (already there: nothing run), ``"max_wall"``,
    ``"stop_file"``, ``"signal"`` (SIGTERM or SIGUSR1 reached a rank: :data:`STOP_SIGNALS`; the
    caller should end too, a requeued ``restart="auto"`` continues from the final checkpoint),
    ``"monitor"`` or ``"monitor_error"`` (the monitor raised; logged on rank 0, and every rank stops
    instead of hanging).

    While it runs (in the main thread), SIGTERM and SIGUSR1 only set a flag; at the STOP file's
    cadence (every ``series_every`` steps) the ranks agree on it and stop as for the STOP file; the
    previous handlers are restored on return.

    Raises :class:`ConfigError` on every rank, before anything is run or written, for an invalid
    ``restart`` or ``settings``, a ``slice_x`` index >= the channel's nx, or ranks passing different
    ``restart``, ``until``, cadences, ``slices_after`` or ``slice_x`` (the fields every rank acts on).
    """
    with _caught_signals() as caught:
        summary = _drive(channel, Path(out), settings, restart, seed_fn, after_start, note, monitor, caught)
        if caught and summary["stopped"] != "signal":  # came after the last check (the final checkpoint)
            log.warning("caught %s after the segment's last check: not acted on",
                        "/".join(signal.Signals(n).name for n in sorted(set(caught))))
    return summary


def _drive(channel: Any, out: Path, settings: RunSettings, restart: bool | str, seed_fn: Any, after_start: Any,
           note: dict[str, Any] | None, monitor: Any, caught: list[int]) -> dict[str, Any]:
    """:func:`drive`'s work; ``caught``: the stop signals received on this rank so far."""
    comm = channel.comm
    ckdir = out / "checkpoints"

    _agree_settings(comm, settings, channel.spec.shape[0], restart)

    def find() -> Path | None:  # rank 0 decides for all: ranks on unshared disks could list different sets
        if comm.rank != 0:
            return None
        latest = channel.latest_checkpoint(ckdir)
        if restart == "auto":
            return latest
        if not restart and latest is not None:
            raise ConfigError(f"{out} already holds checkpoints; continue it with restart or use a new directory")
        if restart and latest is None:
            raise ConfigError(f"--restart given but no complete checkpoint under {ckdir}")
        return latest if restart else None

    ck = comm.bcast(run_agreed(comm, find), root=0)
    auto = restart == "auto"
    if auto:
        restart = ck is not None
        log.info("auto-restart: %s", f"continuing {ck}" if restart else f"no checkpoint under {ckdir}: starting")

    def clear_stop() -> None:
        if comm.rank == 0 and (out / STOP_FILE).exists():
            (out / STOP_FILE).unlink()

    run_agreed(comm, clear_stop)
    if ck is not None:
        channel.load_checkpoint(ck)
        log.info("restarted from %s at t=%.4f it=%d", ck, channel.sim_time, channel.iteration)
    elif seed_fn is not None:
        seed_fn()
    if settings.until is not None and channel.sim_time >= settings.until:  # the same on every rank
        log.info("already at t=%.4f >= until=%.4f: nothing to run", channel.sim_time, settings.until)
        return dict(t=channel.sim_time, iteration=channel.iteration, steps=0, slices=0, wall_s=0.0, stopped="until")
    if after_start is not None and not (auto and restart):
        after_start()

    def open_segment() -> tuple[list[dict[str, Any]] | None, _Recorder | None]:
        """Rank 0: append this segment to segments.json and open its recorder."""
        if comm.rank != 0:
            return None, None
        out.mkdir(parents=True, exist_ok=True)
        segments = read_segments(out) if restart else []
        segments.append(dict(
            index=len(segments), start_time=channel.sim_time, start_iteration=channel.iteration,
            restart_from=str(ck) if ck else None, started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            settings={k: v for k, v in vars(settings).items() if k != "provenance"}, note=note or {},
        ))
        _write_json(out / "segments.json", segments)
        return segments, _Recorder(out / f"seg{len(segments) - 1:03d}", channel, settings)

    segments, rec = run_agreed(comm, open_segment)
    t_end = settings.until if settings.until is not None else channel.sim_time + settings.duration
    wall0 = time.time()
    n_slices = 0
    dt_sim = 0.0
    steps = 0
    reason = None  # set on rank 0 only; broadcast with the stop decision
    failure: BaseException | None = None  # a rank-0 recording error, raised everywhere below
    try:
        while True:
            it = channel.iteration
            if it % settings.series_every == 0:
                d = channel.diagnostics()
                if not all(math.isfinite(v) for v in d.row().values()):
                    raise FloatingPointError(f"non-finite diagnostics at t={d.t}: {d.row()}")
                if rec:
                    try:
                        rec.series(d, dt_sim, time.time() - wall0)
                    except Exception as exc:  # noqa: BLE001 - raised on every rank after the loop
                        failure, reason = exc, "record_error"
                if comm.rank == 0 and monitor is not None and reason is None:
                    try:
                        if monitor(d, time.time() - wall0):
                            reason = "monitor"
                    except Exception:  # noqa: BLE001 - raising on rank 0 alone would hang the others
                        log.exception("monitor failed at t=%.4f: ending the segment", d.t)
                        reason = "monitor_error"
            if settings.slices_every and it % settings.slices_every == 0 and channel.sim_time >= settings.slices_after:
                planes = channel.slices(settings.slice_x)
                if rec and failure is None:
                    try:
                        rec.slices(planes, channel.sim_time)
                    except Exception as exc:  # noqa: BLE001 - raised on every rank after the loop
                        failure, reason = exc, "record_error"
                n_slices += len(settings.slice_x)
            if steps and it % settings.checkpoint_every == 0:
                channel.save_checkpoint(ckdir, extra=dict(segment=len(segments or []) - 1))
            # a signal reaches one rank or all: the ranks agree at the STOP file's cadence
            signalled = it % settings.series_every == 0 and comm.allreduce(len(caught)) > 0
            if comm.rank == 0 and reason is None:
                if channel.sim_time >= t_end:
                    reason = "duration"
                elif (time.time() - wall0) >= settings.max_wall:
                    reason = "max_wall"
                elif it % settings.series_every == 0 and (out / STOP_FILE).exists():
                    log.info("found %s: stopping", out / STOP_FILE)
                    reason = "stop_file"
                elif signalled:
                    log.info("caught %s: stopping", "/".join(signal.Signals(n).name for n in sorted(set(caught))) or
                             "a stop signal on another rank")
                    reason = "signal"
            reason = comm.bcast(reason, root=0)
            if reason is not None:
                break
            dt_sim = channel.step()
            steps += 1
    finally:
        if rec:
            try:
                rec.close()
            except Exception as exc:  # noqa: BLE001 - raised on every rank below
                failure = failure or exc
    channel.save_checkpoint(ckdir)
    agree(comm, failure)
    summary = dict(t=channel.sim_time, iteration=channel.iteration, steps=steps, slices=n_slices,
                   wall_s=time.time() - wall0, stopped=reason)
    log.info("segment done: %s", summary)
    return summary


# -- post-processing (serial) -------------------------------------------------------------------
def _segment_ranges(out: Path) -> list[tuple[Path, float, float]]:
    segs = read_segments(out)
    if not segs:
        raise DatasetError(f"{out}: no segments.json; not a run directory")
    ranges = []
    for k, s in enumerate(segs):
        stop = segs[k + 1]["start_time"] if k + 1 < len(segs) else math.inf
        ranges.append((out / f"seg{s['index']:03d}", s["start_time"], stop))
    return ranges


def read_timeseries(out: str | os.PathLike) -> dict[str, np.ndarray]:
    """Time series of all segments, superseded records dropped: column -> (n,) array."""
    cols: dict[str, list[float]] = {c: [] for c in SERIES_COLUMNS}
    for segdir, t0, t1 in _segment_ranges(Path(out)):
        p = segdir / "timeseries.csv"
        if not p.exists():
            continue
        with open(p) as fh:
            for row in csv.DictReader(fh):
                if len(row) != len(SERIES_COLUMNS) or None in row.values():
                    continue  # a line cut by a killed run
                t = float(row["t"])
                if t0 <= t < t1:
                    for c in SERIES_COLUMNS:
                        cols[c].append(float(row[c]))
    return {c: np.asarray(v) for c, v in cols.items()}


def read_profiles(out: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``(t (n,), y (ny,), {key: (n, ny)})`` of all segments, superseded records dropped."""
    ts, y, acc = [], None, {k: [] for k in PROFILE_KEYS}
    for segdir, t0, t1 in _segment_ranges(Path(out)):
        p = segdir / "profiles.h5"
        if not p.exists():
            continue
        # a running segment holds its profiles file open for writing (flushed after every record)
        with h5py.File(p, "r", locking=False) as f:
            t = f["t"][:]
            n = min([t.size] + [f[k].shape[0] for k in PROFILE_KEYS])
            keep = np.nonzero((t[:n] >= t0) & (t[:n] < t1))[0]
            y = f["y"][:]
            ts.append(t[keep])
            for k in PROFILE_KEYS:
                acc[k].append(f[k][:n][keep])
    if y is None:
        raise DatasetError(f"{out}: no profiles recorded")
    return np.concatenate(ts), y, {k: np.concatenate(v) for k, v in acc.items()}


def iter_slices(out: str | os.PathLike):
    """Yield ``(fields (n,3,ny,nz), t (n,), x (n,), attrs, y, z)`` per readable slice file."""
    for segdir, t0, t1 in _segment_ranges(Path(out)):
        for p in sorted(segdir.glob("slices_*.h5")):
            try:
                ds = open_dataset(p)
            except (DatasetError, OSError) as exc:
                log.warning("skipping unreadable slice file %s: %s", p, exc)
                continue
            with ds:
                keep = np.nonzero((ds.t >= t0) & (ds.t < t1))[0]
                if keep.size:
                    yield ds.read(keep), ds.t[keep], ds.x[keep], dict(ds.attrs), ds.y, ds.z


def mean_profiles(out: str | os.PathLike, t_start: float, t_stop: float = math.inf) -> dict[str, Any]:
    """Time-averaged plane-averaged profiles over [t_start, t_stop), half-channel folded.

    Returns ``y`` (ny,), full-channel ``U, urms, vrms, wrms, uv`` and the folded lower-half
    versions (distance to the nearer wall ``yw``), plus the sample count and time span.
    """
    t, y, prof = read_profiles(out)
    m = (t >= t_start) & (t < t_stop)
    if not m.any():
        raise DatasetError(f"{out}: no profiles in [{t_start}, {t_stop})")
    avg = {k: prof[k][m].mean(axis=0) for k in PROFILE_KEYS}
    # Second moments about the time-and-plane mean: add the variance of the plane means in time.
    for k, (a, b) in {"uu": ("U", "U"), "vv": ("V", "V"), "ww": ("W", "W"), "uv": ("U", "V")}.items():
        avg[k] = avg[k] + (prof[a][m] * prof[b][m]).mean(axis=0) - avg[a] * avg[b]
    ny = y.size
    half = ny // 2
    fold = {
        "U": 0.5 * (avg["U"][:half] + avg["U"][::-1][:half]),
        "uu": 0.5 * (avg["uu"][:half] + avg["uu"][::-1][:half]),
        "vv": 0.5 * (avg["vv"][:half] + avg["vv"][::-1][:half]),
        "ww": 0.5 * (avg["ww"][:half] + avg["ww"][::-1][:half]),
        "uv": 0.5 * (avg["uv"][:half] - avg["uv"][::-1][:half]),
    }
    return dict(
        y=y, yw=y[:half], n=int(m.sum()), t0=float(t[m][0]), t1=float(t[m][-1]), full=avg,
        U=fold["U"], urms=np.sqrt(np.maximum(fold["uu"], 0)), vrms=np.sqrt(np.maximum(fold["vv"], 0)),
        wrms=np.sqrt(np.maximum(fold["ww"], 0)), uv=fold["uv"],
    )


def build_dataset(out: str | os.PathLike | Sequence[str | os.PathLike], dest: str | os.PathLike, *,
                  t_start: float, val_fraction: float = 0.2, gap: float = 1.0,
                  extra_attrs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge the run's slices with t >= t_start into ``dest/train.h5`` and ``dest/val.h5``.

    ``out``: a run folder, or several (e.g. replays of a long run from its committed states, each
    over its own time span), read in the order given.

    The validation part is the last ``val_fraction`` of the sampled time span; slices within
    ``gap`` (h/u_tau) before it are dropped so the parts come from separate times. With
    ``val_fraction = 0`` every slice goes into one ``dest/all.h5``, for a trainer that splits by
    time itself (``data.split``, ``data.val_gap``: the conditional mode). Returns counts and time
    ranges.
    """
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction={val_fraction} must be in [0, 1)")
    outs = [out] if isinstance(out, (str, os.PathLike)) else list(out)
    ts = [t[(t >= t_start)] for o in outs for _, t, *_ in iter_slices(o)]
    ts = np.concatenate(ts) if ts else np.zeros(0)
    if ts.size == 0:
        raise DatasetError(f"{out}: no slices at t >= {t_start}")
    t_val = ts.min() + (1 - val_fraction) * (ts.max() - ts.min()) if val_fraction else math.inf
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    writers: dict[str, DatasetWriter] = {}
    names = ("train", "val") if val_fraction else ("all",)
    counts = {n: 0 for n in names}
    spans: dict[str, list[float]] = {n: [math.inf, -math.inf] for n in names}
    try:
        for fields, t, x, attrs, y, z in (item for o in outs for item in iter_slices(o)):
            parts = ((("train", (t >= t_start) & (t < t_val - gap)), ("val", t >= t_val)) if val_fraction
                     else (("all", t >= t_start),))
            for part, m in parts:
                if not m.any():
                    continue
                if part not in writers:
                    a = {k: v for k, v in attrs.items() if k not in ("format", "format_version")}
                    a.update(extra_attrs or {}, part=part, t_start=t_start, gap=gap)
                    if val_fraction:
                        a["t_val"] = float(t_val)
                    writers[part] = DatasetWriter(dest / f"{part}.h5", y, z, attrs=a)
                writers[part].append(fields[m], t=t[m], x=x[m])
                counts[part] += int(m.sum())
                spans[part] = [min(spans[part][0], float(t[m].min())), max(spans[part][1], float(t[m].max()))]
    finally:
        for w in writers.values():
            w.close()
    for part, w in writers.items():
        with h5py.File(w.path, "a") as f:
            f.attrs["t_first"], f.attrs["t_last"] = spans[part]
    return dict(counts=counts, spans=spans, t_start=t_start, t_val=float(t_val) if val_fraction else None, gap=gap)


def states_dataset(states: Sequence[str | os.PathLike], dest: str | os.PathLike, *,
                   extra_attrs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every x-plane of solver state files (``DedalusChannel.save_state``: a campaign run's
    ``state.npz``, a reference's kept snapshots) as one slice dataset ``dest``.

    What git keeps of a run is its compact states, so a dataset built from them exists on any
    machine in seconds: e.g. a fixed validation set (``data.val_path``) for a training run whose
    training planes are regenerated on each machine. ``/t`` numbers the states 0, 1, ... (the
    snapshots consecutive-plane pairs are taken within; states of several runs may share a time),
    ``/x`` is each plane's position; the attributes are the runner's slices' (the case's units,
    u_tau = 1) plus ``lx`` and, per state, ``state_files`` and ``state_times``.

    Raises
    ------
    CheckpointError
        An unreadable state file.
    DatasetError
        No states, or states of different cases (shape, box, Re_tau).
    """
    from .dedalus_case import ChannelSpec, gauss_points, read_state

    if not states:
        raise DatasetError("states_dataset: no state files given")
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    spec: ChannelSpec | None = None
    times: list[float] = []
    writer: DatasetWriter | None = None
    try:
        for k, path in enumerate(states):
            u, meta = read_state(path)
            s = ChannelSpec.from_json(meta["spec"])
            if spec is None:
                spec = s
                nx, ny, nz = s.shape
                lx, ly, lz = s.lengths
                attrs = dict(re_tau=s.re_tau, nu=s.nu, u_tau=1.0, ly=ly, lz=lz, lx=lx, source="solver states",
                             **(extra_attrs or {}))
                writer = DatasetWriter(dest, gauss_points(ny, ly), np.arange(nz) * lz / nz, attrs=attrs)
            elif (s.shape, s.lengths, s.re_tau) != (spec.shape, spec.lengths, spec.re_tau):
                raise DatasetError(f"{path}: case {s.shape} {s.lengths} Re_tau {s.re_tau} differs from the first "
                                   f"state's {spec.shape} {spec.lengths} Re_tau {spec.re_tau}")
            planes = np.moveaxis(u, 1, 0)  # (nx, 3, ny, nz)
            writer.append(planes, t=np.full(nx, float(k)), x=np.arange(nx) * lx / nx)
            times.append(float(meta["sim_time"]))
    finally:
        if writer is not None:
            writer.close()
    with h5py.File(dest, "a") as f:
        f.attrs["state_files"] = json.dumps([str(p) for p in states])
        f.attrs["state_times"] = json.dumps(times)
    return dict(states=len(times), planes=len(times) * spec.shape[0], path=str(dest))
