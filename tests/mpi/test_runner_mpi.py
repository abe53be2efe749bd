"""cfdseed.solvers.runner.drive on several ranks with a stand-in channel whose diagnostics,
checkpoints and ``after_start`` are collective, as a solver's are: what every rank acts on must be
the same on every rank, or every rank raises (run by tests/test_mpi.py, whose timeout catches a hang)."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from cfdseed.errors import ConfigError
from cfdseed.solvers.runner import RunSettings, drive, read_segments

comm = MPI.COMM_WORLD
size, rank = comm.Get_size(), comm.Get_rank()


class _Diagnostics:
    def __init__(self, t: float) -> None:
        self.t = t
        self.profiles = {k: np.zeros(4) for k in ("U", "V", "W", "uu", "vv", "ww", "uv")}

    def row(self) -> dict[str, float]:
        return dict(t=self.t, step=0, bulk=1.0, tau_lower=1.0, tau_upper=1.0, probe_u=0.0, centre_u=0.0, tke=0.0,
                    bulk_w=0.0, dissipation=0.0)


class _Channel:
    """What drive needs of a channel; every call a solver makes collectively is a barrier here."""

    def __init__(self, checkpoint: Path | None) -> None:
        self.comm, self.checkpoint = comm, checkpoint
        self.spec = types.SimpleNamespace(shape=(4, 4, 4), re_tau=180.0, nu=1 / 180, lengths=(1.0, 2.0, 1.0))
        self.grid = types.SimpleNamespace(y=np.linspace(0.0, 2.0, 4), x=np.arange(4.0), z=np.arange(4.0))
        self.sim_time, self.iteration = 0.0, 0

    def step(self) -> float:
        self.sim_time += 0.1
        self.iteration += 1
        return 0.1

    def diagnostics(self) -> _Diagnostics:
        comm.Barrier()
        return _Diagnostics(self.sim_time)

    def slices(self, x):
        return None

    def save_checkpoint(self, folder, extra=None) -> None:
        comm.Barrier()

    def latest_checkpoint(self, folder) -> Path | None:
        return self.checkpoint

    def load_checkpoint(self, path) -> None:
        comm.Barrier()


@pytest.fixture
def out(tmp_path_factory) -> Path:
    """One run folder for every rank (rank 0's)."""
    return Path(comm.bcast(str(tmp_path_factory.mktemp("run")) if rank == 0 else None))


@pytest.mark.parametrize("first", [True, False])
def test_ranks_passing_different_restart_modes_raise_on_every_rank(first, out):
    """restart True and "auto" both continue a checkpoint, but "auto" skips after_start (a
    collective, e.g. a perturbation) on a continuation: the ranks would part ways there."""
    if size == 1:
        pytest.skip("one rank cannot disagree")
    restart = first if rank == 0 else "auto"
    with pytest.raises(ConfigError) as info:
        drive(_Channel(out / "checkpoints" / "it0"), out, RunSettings(duration=0.2, series_every=1), restart=restart,
              after_start=comm.Barrier)
    msgs = comm.allgather(str(info.value))
    assert all(f"ranks disagree on restart: [{first!r}, " in m for m in msgs), msgs
    assert not (out / "segments.json").exists()  # refused before anything is run or written


@pytest.mark.parametrize("restart", [True, 1, np.True_, "auto"])
def test_the_same_restart_mode_spelled_alike_runs(restart, out):
    """True, 1 and numpy's True are one mode; the segment runs and every rank returns alike."""
    called = []
    summary = drive(_Channel(out / "checkpoints" / "it0"), out, RunSettings(duration=0.2, series_every=1),
                    restart=restart, after_start=lambda: called.append(comm.allreduce(1)))
    assert comm.allgather(summary["steps"]) == [2] * size and summary["stopped"] == "duration"
    assert called == ([] if restart == "auto" else [size])
    if rank == 0:
        assert len(read_segments(out)) == 1


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGUSR1"])
def test_a_stop_signal_on_one_rank_ends_the_segment_on_every_rank(signame, out):
    """A batch scheduler's SIGTERM or SIGUSR1, here reaching the last rank only (after step 3),
    ends the segment on every rank at the next STOP-file check (series_every 2: iteration 4) as
    the STOP file does: a final checkpoint, stopped="signal"; the handlers from before are back."""
    import os
    import signal

    signum = getattr(signal, signame)
    ch = _Channel(None)
    saved = []
    step = ch.step

    def step_then_signal() -> float:
        dt = step()
        if ch.iteration == 3 and rank == size - 1:
            os.kill(os.getpid(), signum)
        return dt

    def save_checkpoint(folder, extra=None) -> None:
        comm.Barrier()
        saved.append(ch.iteration)

    ch.step, ch.save_checkpoint = step_then_signal, save_checkpoint
    before = signal.getsignal(signum)
    summary = drive(ch, out, RunSettings(duration=100.0, series_every=2), restart=False)
    assert summary["stopped"] == "signal" and summary["steps"] == 4 and saved == [4]
    assert comm.allgather(summary["stopped"]) == ["signal"] * size
    assert signal.getsignal(signum) == before
