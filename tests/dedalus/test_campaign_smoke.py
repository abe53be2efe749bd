"""benchmarks/campaign.py on a tiny case (2 ranks, Dedalus): chunks exported as they complete,
a move to a fresh machine continued from the committed compact state, a STOP mid-chunk."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI
from _bench import load, part

comm = MPI.COMM_WORLD
ROOT = Path(__file__).resolve().parents[2]
RUN = dict(id="tiny", kind="reference", horizon=0.012, discard=0.0, chunk=0.005,
           spec=dict(shape=[8, 16, 8], lengths=[math.pi, 2.0, math.pi / 2], re_tau=180.0, cfl_safety=0.2,
                     max_step=1e-3, initial_step=1e-3),
           ic=dict(source="analytic", options=dict(bulk=15.0, amplitude=0.1), seed=1),
           series_every=2, checkpoint_every=4, slices_every=4, slices_after=0.0, slice_stride=2, profile_bin=0.002,
           snapshots=dict(after=0.004, every=0.005))

camp_plan = part("campaign_plan")
camp_records = part("campaign_records")
camp_ics = part("campaign_ics")


@pytest.fixture(scope="module")
def cp():
    return load("campaign")


@pytest.fixture(scope="module")
def where():
    name = tempfile.mkdtemp(prefix="cfdseed-campaign-") if comm.rank == 0 else None
    where = Path(comm.bcast(name, root=0))
    if comm.rank == 0:
        (where / "c").mkdir()
        (where / "c" / "plan.json").write_text(json.dumps({"runs": [RUN]}))
    comm.Barrier()
    return where


def edit_plan(where, edit):
    """Rank 0 changes the plan once every rank has finished reading it (a collective)."""
    comm.Barrier()
    if comm.rank == 0:
        path = where / "c" / "plan.json"
        plan = json.loads(path.read_text())
        edit(plan["runs"])
        tmp = path.with_name("plan.tmp")
        tmp.write_text(json.dumps(plan))
        tmp.replace(path)
    comm.Barrier()


def campaign(cp, where, *extra):
    comm.Barrier()
    rc = cp.main(["run", "--campaign", str(where / "c"), "--work", str(where / "w"), *extra])
    comm.Barrier()
    assert rc == 0
    return json.loads((where / "c" / "tiny" / "run.json").read_text())


def test_chunks_to_the_horizon_then_done(cp, where):
    prog = campaign(cp, where)
    assert prog["t"] >= RUN["horizon"] - 1e-9 and len(prog["chunks"]) == 3
    assert [c["stopped"] for c in prog["chunks"]] == ["duration"] * 3
    assert {c["fftw_rigor"] for c in prog["chunks"]} == {cp.FFTW_RIGOR}  # recorded with each chunk
    s, p = camp_records.read_chunks(where / "c", "tiny")
    assert np.all(np.diff(s["t"]) > 0) and s["t"][0] == 0.0
    assert camp_records.record_problems(where / "c", RUN) == []  # the records are what run.json says
    assert {"bulk_w", "dissipation", "probe_u", "tau_lower", "tau_upper", "tke"} <= set(s)
    assert p["U"].shape[1] == 16 and p["U"].dtype == np.float32 and np.all(p["n"] >= 1)
    assert (where / "c" / "tiny" / "state.npz").exists()
    snaps = sorted((where / "c" / "tiny" / "snapshots").glob("t*.npz"))  # due at 0.004 and 0.009
    assert len(snaps) == 2 and float(snaps[0].stem[1:]) >= 0.004
    assert any((where / "w" / "tiny").glob("seg*/slices_*.h5"))  # training data, not committed
    assert "done" in camp_plan.status_lines(where / "c", where / "w")[0]
    again = campaign(cp, where)  # nothing left: no new chunk
    assert len(again["chunks"]) == 3


def test_fresh_machine_continues_from_the_committed_state(cp, where):
    comm.Barrier()
    if comm.rank == 0:
        shutil.rmtree(where / "w")  # a fresh machine: only the committed folder is left
    edit_plan(where, lambda runs: runs[0].update(horizon=0.02))
    t_before = json.loads((where / "c" / "tiny" / "run.json").read_text())["t"]
    prog = campaign(cp, where)
    assert prog["t"] >= 0.02 - 1e-9 and prog["chunks"][3]["t0"] == pytest.approx(t_before)
    s, _ = camp_records.read_chunks(where / "c", "tiny")
    assert np.all(np.diff(s["t"]) > 0) and s["t"][-1] < prog["t"]
    # the restored run goes on from the float32 state without a jump in the bulk velocity
    k = np.searchsorted(s["t"], t_before)
    assert abs(s["bulk"][k] - s["bulk"][k - 1]) < 1e-3 * abs(s["bulk"][k - 1])


def test_max_wall_ends_a_chunk_early_and_it_is_exported(cp, where):
    edit_plan(where, lambda runs: runs[0].update(horizon=1.0, chunk=1.0))  # ~1000 steps, beyond max_wall
    n = len(json.loads((where / "c" / "tiny" / "run.json").read_text())["chunks"])
    prog = campaign(cp, where, "--max-wall", "0.3")
    assert len(prog["chunks"]) == n + 1 and prog["chunks"][-1]["stopped"] == "max_wall"
    assert prog["t"] < 1.0 and "paused" in camp_plan.status_lines(where / "c", where / "w")[0]


def test_a_control_starts_from_a_kept_state_through_the_snapshot_source(cp, where):
    snaps = sorted((where / "c" / "tiny" / "snapshots").glob("t*.npz"))
    ctl = dict(RUN, id="c1", kind="ic", horizon=0.004, chunk=0.004, ic=dict(state=str(snaps[0])), slices_every=0)
    ctl.pop("snapshots")
    edit_plan(where, lambda runs: runs.append(ctl))
    assert cp.main(["run", "--run", "c1", "--campaign", str(where / "c"), "--work", str(where / "w")]) == 0
    comm.Barrier()
    prog = json.loads((where / "c" / "c1" / "run.json").read_text())
    assert prog["t"] >= 0.004 - 1e-9
    s, _ = camp_records.read_chunks(where / "c", "c1")
    ref, _ = camp_records.read_chunks(where / "c", "tiny")
    t_snap = float(snaps[0].stem[1:])
    k = int(np.argmin(np.abs(ref["t"] - t_snap)))
    # the control starts at t = 0 from the reference's state (enforced, so the bulk is close, not equal)
    assert s["t"][0] == 0.0 and abs(s["bulk"][0] - ref["bulk"][k]) < 0.02 * abs(ref["bulk"][k])


def test_a_phase_randomised_baseline_starts_from_the_same_state(cp, where):
    """The fair baseline: the reference's state with random Fourier phases, through the same pipeline."""
    snaps = sorted((where / "c" / "tiny" / "snapshots").glob("t*.npz"))
    run = dict(RUN, id="p1", kind="ic", horizon=0.004, chunk=0.004, slices_every=0,
               ic=dict(state=str(snaps[0]), source="phase-randomised", seed=5))
    run.pop("snapshots")
    edit_plan(where, lambda runs: runs.append(run))
    assert cp.main(["run", "--run", "p1", "--campaign", str(where / "c"), "--work", str(where / "w")]) == 0
    comm.Barrier()
    s, _ = camp_records.read_chunks(where / "c", "p1")
    c, _ = camp_records.read_chunks(where / "c", "c1")
    # same one-point content (the bulk kept: phases do not touch the plane mean), other structures
    assert abs(s["bulk"][0] - c["bulk"][0]) < 1e-6 * abs(c["bulk"][0])
    assert s["probe_u"][0] != c["probe_u"][0]


def test_run_all_goes_through_the_pending_runs_until_a_global_stop(cp, where):
    """``run --all`` runs every pending run in one call; WORK/STOP ends it after the running chunk
    (consumed, so the next call goes on)."""
    def ic_run(rid, horizon):
        r = dict(RUN, id=rid, kind="ic", horizon=horizon, chunk=0.002, slices_every=0)
        r.pop("snapshots")
        return r

    edit_plan(where, lambda runs: (runs.clear(), runs.extend([ic_run("a1", 0.002), ic_run("a2", 0.002)])))
    campaign_all = ["run", "--all", "--campaign", str(where / "c"), "--work", str(where / "w")]
    assert cp.main(campaign_all) == 0
    comm.Barrier()
    for rid in ("a1", "a2"):
        assert json.loads((where / "c" / rid / "run.json").read_text())["t"] >= 0.002 - 1e-9
    edit_plan(where, lambda runs: runs.extend([ic_run("a3", 0.004), ic_run("a4", 0.002)]))
    if comm.rank == 0:
        (where / "w" / "STOP").write_text("")
    comm.Barrier()
    assert cp.main(campaign_all) == 0
    comm.Barrier()
    assert len(json.loads((where / "c" / "a3" / "run.json").read_text())["chunks"]) == 1  # stopped after one
    assert not (where / "c" / "a4").exists() and not (where / "w" / "STOP").exists()
    assert cp.main(campaign_all) == 0
    comm.Barrier()
    assert json.loads((where / "c" / "a4" / "run.json").read_text())["t"] >= 0.002 - 1e-9
    # a STOP seen as a run's last chunk ends still ends --all (it was consumed by the chunk loop and
    # the next run started)
    edit_plan(where, lambda runs: runs.extend([ic_run("a5", 0.002), ic_run("a6", 0.002)]))
    if comm.rank == 0:
        (where / "w" / "STOP").write_text("")
    comm.Barrier()
    assert cp.main(campaign_all) == 0
    comm.Barrier()
    assert json.loads((where / "c" / "a5" / "run.json").read_text())["t"] >= 0.002 - 1e-9
    assert not (where / "c" / "a6").exists() and not (where / "w" / "STOP").exists()


def test_check_builds_each_ic_per_seed_and_reports_failures_without_hanging(where):
    """``campaign check``: every IC built for every seed as a run would build it; an IC that
    cannot be built is reported on every rank (agreed), and the check goes on."""
    ics = {"plug": dict(source="plug", options=dict(bulk=15.0)),
           "broken": dict(source="trig", options=dict(bulk=15.0, mean="nonsense"))}
    res = camp_ics.check_ics(ics, [1, 2], RUN["spec"], where / "check")
    assert set(res["plug"]) == {"1", "2"} and all(abs(r["bulk"] - 15.0) < 1e-6 for r in res["plug"].values())
    assert res["plug"]["1"]["tke"] > 0 and res["plug"]["1"]["tke"] != res["plug"]["2"]["tke"]  # seeded noise
    assert all("mean 'nonsense' unknown" in r["error"] for r in res["broken"].values())
    assert comm.allgather(json.dumps(res, sort_keys=True)) == [json.dumps(res, sort_keys=True)] * comm.size


def test_check_plan_reproduces_started_runs_and_flags_a_changed_ic(where):
    """``campaign check --plan``: a started run's IC rebuilt by the code of now matches its own record
    at t = 0; an IC entry changed after the run started does not; a run not started is only built."""
    res = camp_ics.check_plan(where / "c", where / "check", ["a1", "a6"])
    assert res["a1"]["same"] and res["a1"]["max_rel_diff"] < 1e-12
    assert "expected" not in res["a6"] and "same" not in res["a6"] and "tke" in res["a6"]["built"]
    edit_plan(where, lambda runs: next(r for r in runs if r["id"] == "a2")["ic"]["options"].update(amplitude=0.2))
    changed = camp_ics.check_plan(where / "c", where / "check", ["a2"])["a2"]
    assert not changed["same"] and changed["max_rel_diff"] > 1e-3
    # a run not started is compared with an earlier check's values
    again = camp_ics.check_plan(where / "c", where / "check", ["a6"], previous=res)["a6"]
    assert again["same"] and again["against"] == "previous check"
    moved = {"a6": {"built": dict(res["a6"]["built"], tke=2 * res["a6"]["built"]["tke"])}}
    assert not camp_ics.check_plan(where / "c", where / "check", ["a6"], previous=moved)["a6"]["same"]


def test_a_held_flow_rate_case_is_built_on_its_own_channel_and_runs(cp, where):
    """Amendment 9's view beside the body force's: ``check --plan`` builds each case on its own
    channel (one call, two cases), and a run under a held flow rate keeps U_b at its target through
    the campaign's chunks."""
    held = dict(RUN["spec"], driving="flow_rate", bulk=15.0)  # the IC's bulk (amendment 9: every IC's is the held one)
    edit_plan(where, lambda runs: runs.append(dict(next(r for r in runs if r["id"] == "a6"), id="f1", spec=held,
                                                           horizon=0.006, chunk=0.006)))
    res = camp_ics.check_plan(where / "c", where / "check", ["a6", "f1"])
    assert abs(res["f1"]["built"]["bulk"] - 15.0) < 1e-9  # the IC's own bulk option, the one held
    assert res["f1"]["built"]["tke"] == pytest.approx(res["a6"]["built"]["tke"], rel=1e-9)  # same IC, same grid
    comm.Barrier()
    assert cp.main(["run", "--run", "f1", "--campaign", str(where / "c"), "--work", str(where / "w")]) == 0
    comm.Barrier()
    series, _ = camp_records.read_chunks(where / "c", "f1")
    assert series["t"][-1] > 0 and np.allclose(series["bulk"], 15.0, rtol=1e-9)


def test_a_run_whose_ic_no_longer_builds_as_registered_is_not_started(cp, where):
    """``check --plan`` records every IC's first build in ic_check.json (kept, never overwritten by a
    different build); a run's worker compares its IC with it before the first step and refuses a
    changed one."""
    comm.Barrier()
    edit_plan(where, lambda runs: runs.append(dict(next(r for r in runs if r["id"] == "a6"), id="a7")))
    args = ["check", "--plan", "--campaign", str(where / "c"), "--work", str(where / "w"),
            "--results", str(where / "results" / "reference.json")]
    rc = cp.main(args)  # a2's IC was changed after it ran (test above): reported, rc 1
    comm.Barrier()
    kept = json.loads((where / "c" / camp_ics.IC_CHECK).read_text())["runs"]
    report = json.loads((where / "results" / "campaign_check_plan.json").read_text())["runs"]
    assert rc == 1 and not report["a2"]["same"] and report["a1"]["same"] and "a7" in kept
    # a7's registered build tampered with: its worker refuses to start it
    if comm.rank == 0:
        path = where / "c" / camp_ics.IC_CHECK
        doc = json.loads(path.read_text())
        doc["runs"]["a7"]["built"]["tke"] *= 1.01
        path.write_text(json.dumps(doc))
    comm.Barrier()
    with pytest.raises(RuntimeError, match="changed a registered IC"):
        cp.main(["run", "--run", "a7", "--campaign", str(where / "c"), "--work", str(where / "w")])
    comm.Barrier()
    assert not (where / "c" / "a7" / "chunk_000.npz").exists()
    assert cp.main(args) == 1  # the tampered value is kept: the check keeps reporting the change
    comm.Barrier()
    assert json.loads((where / "c" / camp_ics.IC_CHECK).read_text())["runs"]["a7"]["built"]["tke"] != \
        json.loads((where / "results" / "campaign_check_plan.json").read_text())["runs"]["a7"]["built"]["tke"]


def test_a_run_that_blows_up_is_recorded_as_failed_and_the_worker_moves_on(cp, where, monkeypatch):
    """Non-finite diagnostics (FloatingPointError from the runner, on every rank alike): run.json
    records the failure after its last committed time, the run counts as done (censored by the
    protocol), and a worker goes on with the next run instead of repeating the chunk."""
    import cfdseed.solvers.runner as runner

    boom = dict(RUN, id="boom", kind="ic", horizon=0.004, chunk=0.004, slices_every=0)
    boom.pop("snapshots")
    edit_plan(where, lambda runs: runs.append(boom))

    def blow_up(*args, **kwargs):
        raise FloatingPointError("non-finite diagnostics at t=0.001: {...}")

    monkeypatch.setattr(runner, "drive", blow_up)
    assert cp.main(["run", "--run", "boom", "--campaign", str(where / "c"), "--work", str(where / "w")]) == 0
    comm.Barrier()
    prog = json.loads((where / "c" / "boom" / "run.json").read_text())
    assert prog["failed"]["reason"].startswith("FloatingPointError: non-finite") and prog["failed"]["after_t"] == 0.0
    assert prog["chunks"] == [] and camp_plan.is_done(boom, prog)
    assert any("failed" in line for line in camp_plan.status_lines(where / "c", where / "w") if line.startswith("boom"))

