"""benchmarks/transient.py end to end on the tiny smoke case (2 ranks, Dedalus): a run to the cap
and its verdicts, resuming one with a larger cap, the gan and snapshot ICs."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from mpi4py import MPI

from cfdseed.solvers.runner import read_segments, read_timeseries
from _bench import load

comm = MPI.COMM_WORLD
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tb():
    return load("transient")


@pytest.fixture(scope="module")
def where():
    name = tempfile.mkdtemp(prefix="cfdseed-transient-") if comm.rank == 0 else None
    return Path(comm.bcast(name, root=0))


def run(tb, where, *extra):
    comm.Barrier()
    rc = tb.main(["run", "--smoke", "--runs", str(where / "runs"), "--results", str(where / "t.json"), *extra])
    comm.Barrier()
    assert rc == 0
    return {(r["ic"], r["seed"]): r for r in json.loads((where / "t.json").read_text())["runs"]}


def test_run_goes_to_the_cap_and_is_judged(tb, where):
    cap = tb.CASES["smoke"]["cap"]
    r = run(tb, where, "--ic", "plug")[("plug", 0)]
    assert r["t_end"] >= cap - 1e-3 and r["steps_end"] > 0 and r["cpu_end_s"] > 0
    assert set(r["signals"]) == set(tb.SIGNALS) and "reason" in r["band_rule"]
    if not r["censored"]:
        assert 0 <= r["onset_time"] <= r["t_end"] and r["onset_steps"] >= 0
    else:  # a bound, never a number: no onset, and the reason says why
        assert r["onset_time"] is None and "onset_steps" not in r and r["reason"]
    assert r["ranks"] == comm.size and r["series"]["t"] and r["command"].startswith("mpiexec")
    assert r["detector"]["signals"] == list(tb.SIGNALS)
    again = run(tb, where, "--ic", "plug")[("plug", 0)]  # finished: re-summarised, not extended
    assert again["t_end"] == r["t_end"]


def test_run_resumes_to_a_larger_cap(tb, where):
    r = run(tb, where, "--ic", "trig", "--cap", "0.01")[("trig", 0)]
    assert r["t_end"] >= 0.0099
    r2 = run(tb, where, "--ic", "trig", "--cap", "0.02")[("trig", 0)]
    assert r2["t_end"] >= 0.0199 and r2["cpu_end_s"] > r["cpu_end_s"] and r2["steps_end"] > r["steps_end"]
    out = where / "runs" / "smoke" / "trig-s0"
    if comm.rank == 0:
        assert len(read_segments(out)) == 2
        t = read_timeseries(out)["t"]
        assert (t[1:] > t[:-1]).all()  # one continuous series across the restart


def test_gan_and_snapshot_ics(tb, where):
    recs = run(tb, where, "--ic", "gan", "--cap", "0.005")
    assert recs[("gan", 0)]["ic_wall_s"] > 0 and recs[("gan", 0)]["source"] == "gan"
    ck = sorted((where / "runs" / "smoke" / "gan-s0" / "checkpoints").glob("it*"))[-1]
    comm.Barrier()
    assert tb.main(["snapshot", "--smoke", "--runs", str(where / "runs"), "--checkpoint", str(ck)]) == 0
    comm.Barrier()
    recs = run(tb, where, "--ic", "snapshot", "--cap", "0.005")
    assert recs[("snapshot", 0)]["options"]["path"].endswith("turbulent-smoke.h5")
    assert {"plug", "trig", "gan", "snapshot"} <= {ic for ic, _ in recs}
