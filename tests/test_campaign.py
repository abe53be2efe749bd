"""benchmarks/campaign.py and its campaign_*.py parts without a solver: the plan, progress, status, workers,
records, registration, IC checks and the analysis."""

from __future__ import annotations

import json
import math
import shutil
import socket
import types
from pathlib import Path

import numpy as np
import pytest
from _bench import load, part

ROOT = Path(__file__).resolve().parents[1]

camp_plan = part("campaign_plan")
camp_records = part("campaign_records")
camp_ics = part("campaign_ics")
camp_register = part("campaign_register")
camp_analysis = part("campaign_analysis")
camp_workers = part("campaign_workers")


@pytest.fixture(scope="module")
def cp():
    return load("campaign")


def _plan(tmp_path: Path, *runs: dict) -> Path:
    (tmp_path / "plan.json").write_text(json.dumps({"runs": list(runs)}))
    return tmp_path


def test_committed_plan_is_readable_and_has_the_reference():
    runs = camp_plan.read_plan()
    ref = [r for r in runs if r["kind"] == "reference"]
    assert ref and ref[0]["horizon"] - ref[0]["discard"] >= 200  # >= 200 h/u_tau of stationary record
    for key in ("spec", "ic", "chunk", "series_every", "checkpoint_every", "profile_bin"):
        assert key in ref[0]


def test_duplicate_ids_are_refused(tmp_path):
    _plan(tmp_path, dict(id="a", kind="reference", horizon=1.0), dict(id="a", kind="ic", horizon=1.0))
    with pytest.raises(ValueError, match="duplicate"):
        camp_plan.read_plan(tmp_path)


def test_status_pending_paused_running_done(tmp_path):
    (tmp_path / "c").mkdir()
    camp = _plan(tmp_path / "c", dict(id="a", kind="reference", horizon=10.0), dict(id="b", kind="ic", horizon=4.0),
                 dict(id="c", kind="ic", horizon=4.0), dict(id="d", kind="ic", horizon=4.0))
    work = tmp_path / "w"
    for rid, t, wall in (("a", 5.0, 3600.0), ("b", 4.0, 1800.0), ("c", 1.0, 360.0)):
        (camp / rid).mkdir()
        (camp / rid / "run.json").write_text(json.dumps(dict(id=rid, t=t, iteration=0, chunks=[{}], wall_s=wall, cpu_s=0)))
    (work / "c").mkdir(parents=True)
    (work / "c" / "RUNNING").write_text(json.dumps(dict(pid=1, host=socket.gethostname(), heartbeat=1000.0, t=1.5)))
    lines = camp_plan.status_lines(camp, work, now=1010.0)
    assert "paused" in lines[0] and "5.0 h/u_tau per wall-h" in lines[0]
    assert lines[1].endswith("done")
    assert "running (pid 1, at t = 1.5)" in lines[2] and "10.0 h/u_tau per wall-h" in lines[2]
    assert lines[3].endswith("pending")
    # left: 5 (a) + 3 (c) + 4 (d); d has no rate of its own: the IC runs' median (8 and 10: 9) stands in
    # for it: 5 / 5 + 3 / 10 + 4 / 9 = 1.74 wall-h
    assert lines[-1].startswith("left: 12.0 h/u_tau (1.7 wall-h for one worker") and "median 9.0" in lines[-1]
    assert lines[4:6] == ["tier a: 0 of 1 runs done, 5.0 h/u_tau left, ~0.6 wall-h for one worker at the median rate",
                          "tier ic: 1 of 3 runs done, 7.0 h/u_tau left, ~0.8 wall-h for one worker at the median rate"]
    (camp / "b" / "run.json").write_text(json.dumps(dict(id="b", t=0.0, iteration=0, chunks=[], wall_s=0, cpu_s=0)))
    (camp / "c" / "run.json").write_text(json.dumps(dict(id="c", t=0.0, iteration=0, chunks=[], wall_s=0, cpu_s=0)))
    assert "wall time unknown" in camp_plan.status_lines(camp, work, now=1010.0)[-1]  # no IC run has a rate yet
    assert "stale lock" in camp_plan.status_lines(camp, work, now=1000.0 + camp_plan.HEARTBEAT_S + 1)[2]
    assert camp_plan.next_run(camp)["id"] == "a"


def test_status_names_each_block_of_a_tier_where_the_workers_meet_it(tmp_path):
    """A tier whose runs lie in two places of the plan (amendment 20: the exploratory runs before and
    after the flow-rate reference and the fair tier) gets a line at each, in plan order."""
    camp = _plan(tmp_path, dict(id="a", kind="ic", tier="exploratory", horizon=2.0),
                 dict(id="r", kind="reference", horizon=5.0), dict(id="b", kind="ic", tier="fair", horizon=3.0),
                 dict(id="c", kind="ic", tier="exploratory", horizon=4.0), dict(id="d", kind="ic", tier="exploratory", horizon=1.0))
    lines = camp_plan.status_lines(camp, tmp_path / "w", now=0.0)
    assert [x.split(":")[0] for x in lines if x.startswith("tier")] == [
        "tier exploratory (part 1 of 2)", "tier r", "tier fair", "tier exploratory (part 2 of 2)"]
    assert "tier exploratory (part 2 of 2): 0 of 2 runs done, 5.0 h/u_tau left" in lines[-2]


def test_status_counts_the_flow_rate_view_s_runs_until_they_are_registered(tmp_path):
    """The runs the protocol fixes but registers after ref-cfr's gate (members x ICs x horizon) are
    named below the total until the plan holds the view's IC runs (its reference's tier aside)."""
    camp = _plan(tmp_path, dict(id="ref-cfr", kind="reference", tier="flow_rate", horizon=5.0))
    fr = dict(members=8, horizon=20.0, ics={"gan": {}, "trig": {}, "control": {}})
    (camp / "protocol.json").write_text(json.dumps({"flow_rate": fr}))
    lines = camp_plan.status_lines(camp, tmp_path / "w", now=0.0)
    assert lines[-1].startswith("not yet registered: the flow-rate view's IC runs, 480 h/u_tau")
    _plan(tmp_path, dict(id="ref-cfr", kind="reference", tier="flow_rate", horizon=5.0),
          dict(id="f1", kind="ic", tier="flow_rate", horizon=20.0))
    assert camp_plan.status_lines(camp, tmp_path / "w", now=0.0)[-1].startswith("left: ")


def test_status_rates_come_from_the_latest_chunks():
    """A run that sped up is judged by its last chunks; chunks without times fall back to the average."""
    chunks = [dict(t0=0.0, t1=1.0, wall_s=3600.0)] + [dict(t0=1.0 + i, t1=2.0 + i, wall_s=1800.0) for i in range(3)]
    prog = dict(t=4.0, wall_s=3600.0 + 3 * 1800.0, chunks=chunks)
    assert camp_plan.recent_rate(prog) == pytest.approx(2.0)  # 3 h/u_tau in 1.5 wall-h; the whole run: 4 / 2.5
    assert camp_plan.recent_rate(prog, last=4) == pytest.approx(4.0 / 2.5)
    assert camp_plan.recent_rate(dict(t=3.0, wall_s=7200.0, chunks=[{}])) == pytest.approx(1.5)
    assert math.isnan(camp_plan.recent_rate(dict(t=0.0, wall_s=0.0, chunks=[])))


def test_next_run_skips_runs_held_by_another_live_worker(tmp_path):
    """Several ``run --all`` workers share a plan: a run whose fresh lock names another live process
    of this host is skipped; a dead pid, a stale heartbeat, our own pid or another host do not hold it."""
    import os
    import subprocess
    import sys
    import time

    camp = _plan(tmp_path, dict(id="a", kind="ic", horizon=4.0), dict(id="b", kind="ic", horizon=4.0))
    work = tmp_path / "w"
    (work / "a").mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        def lock(**kw):
            (work / "a" / "RUNNING").write_text(json.dumps(
                dict(dict(pid=other.pid, host=socket.gethostname(), heartbeat=time.time(), t=1.0), **kw)))

        lock()
        assert camp_plan.held_elsewhere(work, "a") and camp_plan.next_run(camp, work)["id"] == "b"
        assert camp_plan.next_run(camp)["id"] == "a"  # without the working folder: the plan's order
        lock(heartbeat=time.time() - camp_plan.HEARTBEAT_S - 1)
        assert camp_plan.next_run(camp, work)["id"] == "a"
        lock(pid=os.getpid())
        assert camp_plan.next_run(camp, work)["id"] == "a"
        lock(host="elsewhere")
        assert camp_plan.next_run(camp, work)["id"] == "a"
    finally:
        other.kill()
        other.wait()
    lock()  # the pid has exited
    assert not camp_plan.held_elsewhere(work, "a")


def test_bin_profiles_means_per_bin():
    t = np.array([0.0, 0.2, 0.4, 0.6, 1.1, 1.4])
    prof = {"U": np.arange(12.0).reshape(6, 2)}
    b = camp_records.bin_profiles(t, prof, 0.0, 0.5)
    np.testing.assert_allclose(b["t"], [0.2, 0.6, 1.25])
    np.testing.assert_array_equal(b["n"], [3, 1, 2])
    np.testing.assert_allclose(b["U"], [[2, 3], [6, 7], [9, 10]])
    assert b["U"].dtype == np.float32


def test_read_chunks_joins_in_order(tmp_path):
    (tmp_path / "r").mkdir()
    for k, (t0, t1) in enumerate(((0.0, 1.0), (1.0, 2.0))):
        t = np.linspace(t0, t1, 5, endpoint=False)
        np.savez(tmp_path / "r" / f"chunk_{k:03d}.npz", **{"series/t": t, "series/bulk": t + 10,
                 "profiles/t": t[:2], "profiles/U": np.ones((2, 3), np.float32)}, y=np.arange(3.0))
    s, p = camp_records.read_chunks(tmp_path, "r")
    assert np.all(np.diff(s["t"]) > 0) and s["t"].size == 10
    np.testing.assert_allclose(s["bulk"], s["t"] + 10)
    assert p["U"].shape == (4, 3) and p["y"].tolist() == [0, 1, 2]


def test_record_problems_find_what_run_json_does_not_say(tmp_path):
    """A chunk lost between a worker and a commit, one not listed, a count or a range that differs,
    a gap between chunks, a repeated time, a NaN, a finished run ending early: each is named, and
    the analysis refuses the run; a run committed as a worker commits it has none."""
    run = dict(id="r", kind="ic", horizon=2.0)
    t = np.arange(0.0, 2.0, 0.01)
    series = dict(t=t, step=np.round(t / 0.01), bulk=15.7 + 0 * t)

    def problems(mutate=lambda d: None, end_within=0.025):
        d = tmp_path / "c"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        _commit_run(d, "r", 2.0, series, chunks=({}, {}, {}))
        mutate(d / "r")
        return camp_records.record_problems(d, run, end_within=end_within)

    def edit_json(f, fn):
        prog = json.loads((f / "run.json").read_text())
        fn(prog)
        (f / "run.json").write_text(json.dumps(prog))

    def edit_chunk(f, k, fn):
        with np.load(f / f"chunk_{k:03d}.npz") as z:
            cols = {key: z[key] for key in z.files}
        fn(cols)
        np.savez(f / f"chunk_{k:03d}.npz", **cols)

    assert problems() == []
    assert problems(lambda f: (f / "chunk_001.npz").unlink()) == ["chunk files missing: chunk_001.npz"]
    assert "not in run.json: chunk_003.npz" in problems(
        lambda f: (f / "chunk_003.npz").write_bytes((f / "chunk_002.npz").read_bytes()))[0]
    assert problems(lambda f: edit_json(f, lambda p: p["chunks"][1].update(records=p["chunks"][1]["records"] + 1))) == [
        "chunk_001.npz holds 67 records, run.json counts 68"]
    gap = problems(lambda f: edit_json(f, lambda p: p["chunks"][2].update(t0=1.4)))
    assert any("starts at t = 1.4" in g for g in gap) and any("outside its [1.4" in g for g in gap)
    assert problems(lambda f: edit_chunk(f, 0, lambda c: c["series/t"].__setitem__(5, c["series/t"][4]))) == [
        "time not strictly increasing (1 places)"]
    assert problems(lambda f: edit_chunk(f, 2, lambda c: c["series/bulk"].__setitem__(3, np.nan))) == [
        "chunk_002.npz: non-finite values in bulk"]
    assert problems(lambda f: edit_chunk(f, 1, lambda c: c["series/step"].__setitem__(0, 1e9))) == [
        "the step counter decreases"]
    short = problems(end_within=0.005)  # the last record 0.01 before the horizon
    assert short == ["last record at t = 1.99, more than 0.005 before the horizon 2"]
    assert problems(end_within=None) == []
    camp = tmp_path / "c"
    (camp / "protocol.json").write_text(json.dumps({"dt": 0.05}))
    (camp / "plan.json").write_text(json.dumps({"runs": [run]}))
    (camp / "r" / "chunk_001.npz").unlink()
    with pytest.raises(SystemExit, match="r: chunk files missing: chunk_001.npz"):
        camp_records.refuse_record_problems(camp, [run], 0.05)
    assert camp_records.committed_problems(camp, tmp_path / "work", camp_plan.progresses(camp)) == [
        "r: chunk files missing: chunk_001.npz"]


def test_committed_runs_are_whole():
    """Every committed run's records are what its run.json says (CI guards each campaign commit; a
    run a live worker here is writing is left to the next check)."""
    assert camp_records.committed_problems(camp_plan.CAMPAIGN, camp_plan.WORK, camp_plan.progresses()) == []


def test_snapshots_kept_once_per_due_time(cp, tmp_path):
    run = dict(id="r", horizon=100.0, snapshots=dict(after=40.0, every=20.0))
    assert cp.snapshot_times(run) == [40.0, 60.0, 80.0, 100.0]
    assert cp.snapshot_times(dict(horizon=10.0)) == []
    (tmp_path / "state.npz").write_bytes(b"state")
    for t in (36.0, 40.2, 44.3, 61.0, 64.9):  # chunk ends
        cp._keep_snapshot(tmp_path, run, t)
    kept = sorted(p.name for p in (tmp_path / "snapshots").glob("*.npz"))
    assert kept == ["t0040.200.npz", "t0061.000.npz"]


@pytest.fixture(scope="module")
def cr():
    return load("campaign_report")


def _run_series(rng, t_end, offset=0.0):
    """Campaign-like series: AR(1) noise (correlation 2 h/u_tau) on every column, bulk + offset(t);
    the step counter of a constant step of 0.01."""
    t = np.arange(0.0, t_end + 1e-9, 0.01)
    phi = math.exp(-0.01 / 2.0)
    e = rng.standard_normal((7, t.size))
    x = np.empty_like(e)
    x[:, 0] = e[:, 0]
    for i in range(1, t.size):
        x[:, i] = phi * x[:, i - 1] + math.sqrt(1 - phi**2) * e[:, i]
    bulk = 15.7 + 0.1 * x[0] + (offset(t) if callable(offset) else offset)
    return t, dict(t=t, step=np.round(t / 0.01), bulk=bulk, tau_lower=1 + 0.05 * x[1], tau_upper=1 + 0.05 * x[2], bulk_w=0.01 * x[3],
                   probe_u=18 + 0.5 * x[4], tke=0.9 + 0.02 * x[5], dissipation=bulk * (1 + 0.03 * x[6]))


def test_reference_statistics_calibrate_and_blind_onsets(cr):
    protocol = dict(cr.read_protocol(ROOT / "benchmarks" / "campaign"), horizon=8.0, calibration_surrogates=60,
                    members_candidates=[3], bootstrap=40, min_steady=2.0)
    run = dict(id="ref", kind="reference", horizon=120.0, discard=20.0, spec=dict(lengths=[3.14, 2.0, 1.57]))
    rng = np.random.default_rng(7)
    _, series = _run_series(rng, 120.0)
    stats = cr.reference_statistics(protocol, run, series)
    assert stats["complete"] and stats["stationary_span"] == pytest.approx(100.0)
    eps = stats["signals"]["eps_ratio"]
    assert eps["mean"] == pytest.approx(1.0, abs=0.01) and eps["sigma_window_mean"] > 0
    assert set(stats["signals"]) == set(protocol["signals"])
    assert set(stats["k"]) == {"1", "3"} and all(2.0 < v < 6.0 for v in stats["k"].values())
    # resamples of 3 members stray further from the mean than the ensembles: a wider band
    assert set(stats["k_boot"]) == {"3"} and stats["k_boot"]["3"] > 1.1 * stats["k"]["3"]
    seg = stats["per_run_rule_on_reference_segments"]
    assert seg["segments"] > 10 and seg["censored_fraction"] <= 0.25
    assert any("band constant" in line for line in cr.format_reference(stats))
    ref = cr.reference(protocol, run, series)
    groups = {"g1": [], "g2": []}
    for _ in range(3):
        groups["g1"].append(_run_series(rng, 8.0))
        t, s = _run_series(rng, 8.0, offset=lambda t: np.where(t < 4.0, 2.0, 0.0))
        groups["g2"].append((t, cr.signals(s, protocol["signals"], 1.0)))
    groups["g1"] = [(t, cr.signals(s, protocol["signals"], 1.0)) for t, s in groups["g1"]]
    judged = cr.judge_groups({g: cr.Ensemble(m) for g, m in groups.items()}, ref, stats["k"], stats["k_boot"],
                             protocol, 23)
    res = cr.ensemble_onsets(judged, ref, stats["k"], protocol)
    # amendment 11: a group's resamples are its own; judged alone, g2 gets the same numbers
    alone = cr.judge_groups({"g2": cr.Ensemble(groups["g2"])}, ref, stats["k"], stats["k_boot"], protocol, 23)
    assert np.ptp(judged["g2"].boot["time"]) > 0  # the resamples differ: the comparison can fail
    assert np.array_equal(alone["g2"].censored, judged["g2"].censored)
    assert np.array_equal(alone["g2"].boot["time"], judged["g2"].boot["time"])
    assert cr.ensemble_onsets(alone, ref, stats["k"], protocol)["g2"] == res["g2"]
    other = cr.judge_groups({"g2": cr.Ensemble(groups["g2"])}, ref, stats["k"], stats["k_boot"], protocol, 24)
    assert not np.array_equal(other["g2"].boot["time"], judged["g2"].boot["time"])  # the seed does matter
    assert res["g1"]["onset_time"] == pytest.approx(1.0) and res["g2"]["onset_time"] > 4.0
    assert len(res["g2"]["per_run"]) == 3
    # descriptive: the offset was in U_b only, so U_b alone gives g2's onset and the others the first window
    by = res["g2"]["by_signal"]
    assert by["bulk"]["onset_time"] == res["g2"]["onset_time"] and math.isfinite(by["bulk"]["offset_second_half"])
    assert all(v["onset_time"] == pytest.approx(1.0) for n, v in by.items() if n != "bulk"), by
    assert set(by) == set(protocol["signals"])
    named = cr.join(res, {"g1": "control", "g2": "trig"})
    assert cr.join(res, {"g1": {"ic": "control", "tier": "c"}, "g2": {"ic": "trig", "tier": "c"}}) == named
    assert named["trig"]["group"] == "g2"
    with pytest.raises(KeyError, match="g2"):
        cr.join(res, {"g1": "control"})
    both = cr.join(res, {"g1": {"ic": "gan", "tier": "confirmatory"}, "g2": {"ic": "gan", "tier": "flow_rate"}})
    assert {k: v["group"] for k, v in both.items()} == {"gan (confirmatory)": "g1", "gan (flow_rate)": "g2"}


def test_reference_statistics_before_the_horizon_is_covered(cr):
    protocol = dict(cr.read_protocol(ROOT / "benchmarks" / "campaign"), calibration_surrogates=10)
    run = dict(id="ref", kind="reference", horizon=240.0, discard=5.0, spec=dict(lengths=[3.14, 2.0, 1.57]))
    _, series = _run_series(np.random.default_rng(8), 30.0)
    stats = cr.reference_statistics(protocol, run, series)
    assert stats["k"] is None and not stats["complete"] and "no calibration yet" in stats["note"]
    # complete by the run's progress, though its last record lies a record interval before the horizon
    run_short = dict(run, horizon=30.0)
    assert not cr.reference_statistics(protocol, run_short, {k: v[:-1] for k, v in series.items()})["complete"]
    assert cr.reference_statistics(protocol, run_short, {k: v[:-1] for k, v in series.items()}, t_done=30.0)["complete"]


def test_reference_command_writes_the_json(cp, cr, tmp_path, capsys):
    protocol = dict(cr.read_protocol(ROOT / "benchmarks" / "campaign"), horizon=8.0, calibration_surrogates=20,
                    members_candidates=[2])
    (tmp_path / "protocol.json").write_text(json.dumps(protocol))
    _plan(tmp_path, dict(id="ref", kind="reference", horizon=60.0, discard=10.0,
                         spec=dict(lengths=[3.14, 2.0, 1.57])))
    _, series = _run_series(np.random.default_rng(9), 60.0)
    (tmp_path / "ref").mkdir()
    for k, (a, b) in enumerate(((0.0, 30.0), (30.0, 60.01))):
        m = (series["t"] >= a) & (series["t"] < b)
        np.savez(tmp_path / "ref" / f"chunk_{k:03d}.npz", **{f"series/{c}": v[m] for c, v in series.items()})
    out = tmp_path / "reference.json"
    assert cp.main(["reference", "--campaign", str(tmp_path), "--results", str(out)]) == 0
    stats = json.loads(out.read_text())
    assert stats["stationary_span"] == pytest.approx(50.0, abs=0.02) and set(stats["k"]) == {"1", "2"}
    assert set(stats["k_boot"]) == {"2"}
    assert "band constant k" in capsys.readouterr().out


def test_power_template_and_rule(cr):
    grid = np.arange(0.0, 32.0 + 1e-9, 0.05)
    t = np.linspace(0.0, 16.0, 50)
    tmpl = cr.bulk_template(t, 15.6 + 0.5 * np.exp(-t / 5.0), 15.6, 8.0, grid)
    np.testing.assert_allclose(tmpl[grid <= 16.0][:3], 0.5 * np.exp(-grid[:3] / 5.0), rtol=1e-3)
    assert tmpl[-1] == pytest.approx(0.5 * math.exp(-16 / 5.0) * math.exp(-16 / 8.0), rel=1e-6)
    protocol = dict(cr.read_protocol(ROOT / "benchmarks" / "campaign"), members_candidates=[2, 4],
                    power_simulations=30, calibration_surrogates=30)
    assert (protocol["horizon"], protocol["dt"], protocol["window"], protocol["min_steady"]) == (32.0, 0.05, 1.0, 4.0)
    run = dict(id="ref", kind="reference", horizon=200.0, discard=20.0, spec=dict(lengths=[3.14, 2.0, 1.57]))
    _, series = _run_series(np.random.default_rng(10), 200.0)
    ref = cr.reference(protocol, run, series)

    def power(template, k2, k4):
        return cr.power(ref, template, {"2": k2, "4": k4}, protocol, np.random.default_rng(11))

    # Templates with known onsets: the bulk's excess (1e6, ~1e7 band units) either there or not, the
    # band k = 1e3 far above the surrogates' noise. The trailing window spans 21 samples (1.0):
    # full from t = 1.0; after the excess ends at t = 9.95 (index 199), clear of it from t = 11.0.
    excess = 1e6
    for template, onset in ((np.zeros_like(grid), 1.0), (np.where(grid < 9.975, excess, 0.0), 11.0)):
        res = power(template, 1e3, 1e3)
        for row in res["per_n"].values():
            assert row["censored_fraction"] == 0.0 and row["meets_rule"] is True
            np.testing.assert_allclose(row["onset_q025_q50_q975"], [onset] * 3, rtol=0, atol=1e-9)
        assert res["rule_met"] is True and res["chosen_n"] == 2 and res["simulations"] == 30  # the smallest N
    # never steady: an excess to the horizon, or gone at 28.95, steady from 30.0 (2 < min_steady 4 before
    # the horizon): every ensemble censored, the rule unmet, the largest N
    for template in (np.full_like(grid, excess), np.where(grid < 28.975, excess, 0.0)):
        res = power(template, 1e3, 1e3)
        for row in res["per_n"].values():
            assert row["censored_fraction"] == 1.0 and row["meets_rule"] is False
            assert np.isnan(row["onset_q025_q50_q975"]).all()
        assert res["rule_met"] is False and res["chosen_n"] == 4
    # per N its own k: N = 2 never inside a band of 1e-6, N = 4 steady at 11.0 -> N = 4 by the rule
    res = power(np.where(grid < 9.975, excess, 0.0), 1e-6, 1e3)
    assert res["per_n"]["2"]["censored_fraction"] == 1.0 and res["per_n"]["2"]["meets_rule"] is False
    assert res["per_n"]["4"]["onset_q025_q50_q975"] == pytest.approx([11.0] * 3) and res["per_n"]["4"]["meets_rule"]
    assert res["rule_met"] is True and res["chosen_n"] == 4
    # a realistic transient: onsets spread around its decay
    big = cr.bulk_template(t, 15.7 + 3.0 * np.exp(-t / 3.0), 15.7, 3.0, grid)
    q = power(big, 3.5, 3.5)["per_n"]["4"]["onset_q025_q50_q975"]
    assert 5.0 < q[1] < 25.0 and q[0] <= q[1] <= q[2]


@pytest.mark.parametrize(("onsets", "meets"), [
    (np.linspace(14.0, 16.0, 40), True),  # 2.5-97.5 % range 1.9 <= half the median 7.5
    (np.linspace(10.0, 20.0, 40), False),  # range 9.5 > 7.5
    (np.r_[np.nan, np.full(39, 15.0)], True),  # 1 of 40 censored: 0.025, at the limit
    (np.r_[np.nan, np.nan, np.full(38, 15.0)], False),  # 0.05 censored
])
def test_power_rule_on_given_onsets(cr, monkeypatch, onsets, meets):
    """The rule on simulated onsets given outright (Reference.simulate replaced): at most 2.5 %
    censored and a 2.5-97.5 % range at most half the median; N = 4 always passes, so N = 2 is
    chosen exactly when it meets the rule."""
    protocol = dict(cr.read_protocol(ROOT / "benchmarks" / "campaign"), members_candidates=[4, 2],
                    power_simulations=40)
    run = dict(id="ref", kind="reference", horizon=200.0, discard=20.0, spec=dict(lengths=[3.14, 2.0, 1.57]))
    _, series = _run_series(np.random.default_rng(10), 200.0)
    ref = cr.reference(dict(protocol, calibration_surrogates=2), run, series)
    given = {2: onsets, 4: np.full(40, 15.0)}
    monkeypatch.setattr(type(ref), "simulate", lambda self, template, members, horizon, **kw: given[members].copy())
    res = cr.power(ref, np.zeros(641), {"2": 3.5, "4": 3.5}, protocol, np.random.default_rng(0))
    assert res["per_n"]["2"]["meets_rule"] is meets and res["per_n"]["4"]["meets_rule"] is True
    assert res["chosen_n"] == (2 if meets else 4) and res["rule_met"] is True
    assert res["per_n"]["2"]["censored_fraction"] == pytest.approx(np.isnan(onsets).mean())


def test_bin_profiles_of_an_empty_chunk_keep_their_shape():
    b = camp_records.bin_profiles(np.zeros(0), {"U": np.zeros((0, 4))}, 0.0, 0.5)
    assert b["U"].shape == (0, 4) and b["t"].shape == (0,) and b["n"].shape == (0,)


def test_register_blinds_and_interleaves_a_tier(tmp_path):
    """Opaque run ids and group labels, member-major order (a tier stopped part-way leaves equal
    ensembles), controls one state a member, the key apart; an ensemble is registered once."""
    camp = tmp_path / "c"
    camp.mkdir()
    ref = dict(id="ref", kind="reference", horizon=240.0, spec={"shape": [4, 5, 4]})
    (camp / "plan.json").write_text(json.dumps({"about": "x", "runs": [ref]}))
    (camp / "protocol.json").write_text(json.dumps({"horizon": 32.0, "member_seeds": [101, 102, 103, 104]}))
    ics = {"trig": dict(source="trig", options={"bulk": 15.7}), "plug": dict(source="plug", options={"bulk": 15.7}),
           "control": dict(states=[f"s{j}.npz" for j in range(5)])}
    key = camp_register.register(camp, "confirmatory", ics, 3, seed=7)
    assert sorted(key.values()) == ["control", "plug", "trig"]
    runs = camp_plan.read_plan(camp)[1:]
    assert len(runs) == 9 and all(r["kind"] == "ic" and r["horizon"] == 32.0 and r["spec"] == ref["spec"] for r in runs)
    for m, seed in enumerate((101, 102, 103)):  # member by member
        block = runs[3 * m : 3 * m + 3]
        assert {r["group"] for r in block} == set(key) and {r["ic"]["seed"] for r in block} == {seed}
    for r in runs:  # nothing in a run names its IC but the ic entry itself
        assert not any(name in r["id"] or name in r["group"] for name in ics)
    controls = [r["ic"]["state"] for r in runs if key[r["group"]] == "control"]
    assert controls == ["s0.npz", "s1.npz", "s2.npz"]
    stored = json.loads((camp / "key.json").read_text())
    assert {g: v["ic"] for g, v in stored.items()} == key
    with pytest.raises(SystemExit, match="run once"):
        camp_register.register(camp, "confirmatory", {"trig": ics["trig"]}, 3, seed=8)
    # the next registration draws its own labels (its seed counts the groups registered before it)
    (camp / "protocol.json").write_text(json.dumps({"horizon": 32.0, "member_seeds": [101, 102, 103, 104], "seed": 7}))
    assert camp_register.registration_seed(camp) == 7 + 2 + 3
    later = camp_register.register(camp, "confirmatory", {"gan": dict(source="gan")}, 3, seed=camp_register.registration_seed(camp))
    first = {x[1:] for x in key} | {r["id"][1:] for r in runs}
    assert not first & ({x[1:] for x in later} | {r["id"][1:] for r in camp_plan.read_plan(camp)[10:]})
    with pytest.raises(SystemExit, match="4 member seeds"):
        camp_register.register(camp, "fair", {"sem": dict(source="sem")}, 6, seed=8)


def test_confirmatory_ics_from_the_protocol():
    ics = camp_register.tier_ics(camp_plan.CAMPAIGN, "confirmatory", ["trig", "plug", "control"])
    assert ics["trig"] == {"source": "trig", "options": {"bulk": 15.7}}
    assert all(s.startswith("benchmarks/campaign/ref/snapshots/t") for s in ics["control"]["states"])
    assert ics["control"]["states"] == sorted(ics["control"]["states"])
    with pytest.raises(SystemExit, match="its own amendment"):
        camp_register.tier_ics(camp_plan.CAMPAIGN, "confirmatory", ["gan"])
    with pytest.raises(SystemExit, match="not a confirmatory IC"):
        camp_register.tier_ics(camp_plan.CAMPAIGN, "confirmatory", ["sem"])


def test_fair_ics_from_the_protocol():
    """Amendment 5: sem calibrated to the registered model's statistics (sha256 kept), the
    phase-randomised snapshots on the controls' states, streaks as the source has it; trig-turbulent
    only through the sweep's choice."""
    from cfdseed.checkpoint import DEFAULT_NAME

    ics = camp_register.tier_ics(camp_plan.CAMPAIGN, "fair", ["sem", "phase-randomised", "streaks"], model=DEFAULT_NAME)
    control = camp_register.tier_ics(camp_plan.CAMPAIGN, "confirmatory", ["control"])["control"]
    assert ics["sem"]["target_model"] == DEFAULT_NAME and ics["sem"]["model_sha256"] == camp_ics.model_sha256(DEFAULT_NAME)
    assert "model" not in ics["sem"]["options"]
    assert ics["phase-randomised"] == dict(control, source="phase-randomised")
    assert ics["streaks"] == {"source": "streaks", "options": {"bulk": 15.7}}
    with pytest.raises(SystemExit, match="sweep's choice"):
        camp_register.tier_ics(camp_plan.CAMPAIGN, "fair", ["trig-turbulent"])
    with pytest.raises(SystemExit, match="--model"):
        camp_register.tier_ics(camp_plan.CAMPAIGN, "fair", ["sem"])
    with pytest.raises(SystemExit, match="no IC table"):
        camp_register.tier_ics(camp_plan.CAMPAIGN, "flow-rate", ["gan"])


def test_exploratory_ics_from_the_protocol():
    """Amendment 8: the default users get (v2.1) as an exploratory gan ensemble, its sha256 kept."""
    ics = camp_register.tier_ics(camp_plan.CAMPAIGN, "exploratory", ["gan-v2.1"], model="default-re180-v2.1")
    assert ics == {"gan-v2.1": {"source": "gan", "options": {"bulk": 15.7, "model": "default-re180-v2.1"},
                                "model_sha256": camp_ics.model_sha256("default-re180-v2.1")}}
    with pytest.raises(SystemExit, match="--model"):
        camp_register.tier_ics(camp_plan.CAMPAIGN, "exploratory", ["gan-v2.1"])


def test_sem_runs_get_the_model_s_statistics_as_target(tmp_path):
    from mpi4py import MPI

    from cfdseed.targets import stress_target
    from cfdseed.checkpoint import DEFAULT_NAME
    from cfdseed.model import load_generator

    sem = camp_register.tier_ics(camp_plan.CAMPAIGN, "fair", ["sem"], model=DEFAULT_NAME)["sem"]
    source, options = camp_ics.ic_source(sem, types.SimpleNamespace(comm=MPI.COMM_SELF), tmp_path)
    assert source == "sem" and options["bulk"] == 15.7
    want = load_generator(DEFAULT_NAME).statistics
    got = stress_target(options["calibrate"])
    assert np.array_equal(got.uv, want.uv) and np.array_equal(got.y_delta, want.y_delta)
    json.dumps(options)  # plain values


def test_a_tier_registered_again_takes_each_member_after_its_own_runs(tmp_path):
    """With ``interleave`` a later ensemble of a tier (trig-turbulent after the sweep) joins each
    member's batch; the sweep's runs are not judged (kind) and have their own
    seeds and horizon."""
    camp = tmp_path / "c"
    camp.mkdir()
    ref = dict(id="ref", kind="reference", horizon=240.0, spec={"shape": [4, 5, 4]})
    (camp / "plan.json").write_text(json.dumps({"runs": [ref]}))
    (camp / "protocol.json").write_text(json.dumps({"horizon": 32.0, "member_seeds": [101, 102, 103], "seed": 5}))
    first = camp_register.register(camp, "fair", {"sem": dict(source="sem"), "streaks": dict(source="streaks")}, 3, seed=1)
    sweep = camp_register.register(camp, "sweep", {"a=0.1": dict(source="trig")}, 1, seed=2, kind="sweep", seeds=[201],
                        horizon=16.0)
    late = camp_register.register(camp, "fair", {"trig-turbulent": dict(source="trig")}, 3, seed=3, interleave=True)
    runs = camp_plan.read_plan(camp)[1:]
    order = [(r["group"], r["ic"]["seed"]) for r in runs]
    (g_late,) = late
    for m, seed in enumerate((101, 102, 103)):  # member m: sem, streaks (some order), then trig-turbulent
        assert {g for g, s in order[3 * m:3 * m + 2]} == set(first) and order[3 * m + 2] == (g_late, seed)
    assert runs[-1]["kind"] == "sweep" and runs[-1]["horizon"] == 16.0 and runs[-1]["ic"]["seed"] == 201
    assert all(r["kind"] == "ic" and r["horizon"] == 32.0 for r in runs[:-1])
    key = json.loads((camp / "key.json").read_text())
    assert key[next(iter(sweep))] == {"ic": "a=0.1", "tier": "sweep", "members": 1}


def test_the_sweep_scores_each_amplitude_and_selects_by_the_registered_rule(cr, tmp_path):
    """Synthetic sweep: the amplitude whose runs relax fastest scores lowest and is registered as
    trig-turbulent in the fair tier; an unfinished sweep refuses to select."""
    protocol = dict(cr.read_protocol(ROOT / "benchmarks" / "campaign"), horizon=8.0, member_seeds=[1, 2])
    protocol["trig_sweep"] = dict(protocol["trig_sweep"], amplitudes=[0.1, 0.2, 0.4], seeds=[7], horizon=8.0)
    camp = _synthetic_campaign(tmp_path, protocol)
    rng = np.random.default_rng(3)
    _commit_run(camp, "ref", 120.0, _run_series(rng, 120.0)[1])
    camp_register.register(camp, "fair", {"sem": dict(source="sem")}, 2, seed=1)
    camp_register.register_sweep(camp)
    sweep = [r for r in camp_plan.read_plan(camp) if r["kind"] == "sweep"]
    assert [r["ic"]["options"]["amplitude"] for r in sorted(sweep, key=lambda r: r["ic"]["options"]["amplitude"])] \
        == [0.1, 0.2, 0.4]
    assert all(r["ic"]["options"]["mean"] == "turbulent" and r["horizon"] == 8.0 for r in sweep)
    relax = {0.1: 6.0, 0.2: 1.5, 0.4: 4.0}  # the bulk excess lasts this long
    for r in sweep[:-1]:
        end = relax[r["ic"]["options"]["amplitude"]]
        _commit_run(camp, r["id"], 8.0, _run_series(rng, 8.0, offset=lambda t, e=end: np.where(t < e, 3.0, 0.0))[1])
    with pytest.raises(SystemExit, match="not done"):
        camp_analysis.sweep_scores(camp)
    end = relax[sweep[-1]["ic"]["options"]["amplitude"]]
    _commit_run(camp, sweep[-1]["id"], 8.0, _run_series(rng, 8.0, offset=lambda t: np.where(t < end, 3.0, 0.0))[1])
    res, key = camp_register.select_amplitude(camp)
    scores = res["per_amplitude"]
    assert res["chosen"] == 0.2 and scores["0.2"] < scores["0.4"] < scores["0.1"]
    (g,) = key
    tt = [r for r in camp_plan.read_plan(camp) if r.get("group") == g]
    assert len(tt) == 2 and all(r["ic"]["options"]["amplitude"] == 0.2 and r["kind"] == "ic" for r in tt)
    with pytest.raises(SystemExit, match="run once"):
        camp_register.select_amplitude(camp)


def test_gan_is_registered_with_its_model_s_sha256_and_runs_check_it(tmp_path):
    """register --ics gan --model NAME: the plan's ic entry holds the model's name and its file's
    sha256; ic_source delivers it unchanged while the file matches and refuses a changed file."""
    import hashlib

    from mpi4py import MPI

    from cfdseed.checkpoint import DEFAULT_NAME, default_model

    gan = camp_register.tier_ics(camp_plan.CAMPAIGN, "confirmatory", ["gan"], model=DEFAULT_NAME)["gan"]
    assert gan["options"] == {"bulk": 15.7, "model": DEFAULT_NAME} and gan["source"] == "gan"
    assert gan["model_sha256"] == hashlib.sha256(default_model().read_bytes()).hexdigest()
    ch = types.SimpleNamespace(comm=MPI.COMM_SELF)
    assert camp_ics.ic_source(gan, ch, tmp_path) == ("gan", gan["options"])
    other = tmp_path / "other.pt"
    other.write_bytes(default_model().read_bytes() + b"\0")
    with pytest.raises(RuntimeError, match="registered model only"):
        camp_ics.ic_source(dict(gan, options=dict(gan["options"], model=str(other))), ch, tmp_path)


def _synthetic_campaign(tmp_path, protocol):
    """A campaign folder with ``protocol`` and a plan holding only a 120 h/u_tau reference."""
    camp = tmp_path / "c"
    camp.mkdir()
    (camp / "protocol.json").write_text(json.dumps(protocol))
    ref = dict(id="ref", kind="reference", horizon=120.0, discard=20.0, spec=dict(lengths=[3.14, 2.0, 1.57]))
    (camp / "plan.json").write_text(json.dumps({"runs": [ref]}))
    return camp


def _commit_run(camp, rid, horizon, series, profiles=None, wall_s=1.0, cpu_s=2.0, chunks=({},)):
    """A finished run as a worker commits it: its series split at equal times into one file per
    record of ``chunks`` (extra fields of each chunk record; the binned profiles with the first),
    and run.json listing them (:func:`campaign_records.record_problems` finds nothing)."""
    (camp / rid).mkdir()
    t = np.asarray(series["t"])
    end = max(horizon, float(t[-1]) + 1e-9)  # a record at the horizon lies inside the last chunk
    edges = np.linspace(0.0, end, len(chunks) + 1)
    edges[-1] = end
    records = []
    for k, extra in enumerate(chunks):
        m = (t >= edges[k]) & (t < edges[k + 1])
        np.savez(camp / rid / f"chunk_{k:03d}.npz", **{f"series/{c}": np.asarray(v)[m] for c, v in series.items()},
                 **((profiles or {}) if k == 0 else {}))
        records.append(dict(index=k, t0=float(edges[k]), t1=float(edges[k + 1]), records=int(m.sum())) | dict(extra))
    (camp / rid / "run.json").write_text(json.dumps(dict(id=rid, t=end, iteration=0, chunks=records,
                                                         wall_s=wall_s, cpu_s=cpu_s)))


def _profiles(rng, t_end, offset=None, ny=12, width=0.5):
    """Binned profiles of a stationary run: fixed shapes plus independent noise per bin (``offset``:
    added to uu)."""
    y = np.linspace(0.0, 2.0, ny)
    shape = {"U": 15 * (1 - (1 - y) ** 2), "uu": 4 * y * (2 - y) + 1, "vv": 0.5 + 0 * y, "ww": 1 + 0 * y,
             "uv": -(1 - y)}
    t = np.arange(width / 2, t_end, width)
    out = {f"profiles/{q}": v[None, :] + 0.05 * rng.standard_normal((t.size, ny)) for q, v in shape.items()}
    if offset is not None:
        out["profiles/uu"] = out["profiles/uu"] + offset
    return {"profiles/t": t, "y": y, **out}


def test_profiles_after_the_onset_against_the_reference_s_own_segments(cr):
    rng = np.random.default_rng(11)
    flat = lambda d: {k.split("/")[-1]: v for k, v in d.items()}  # noqa: E731
    ref = flat(_profiles(rng, 120.0))
    same = [flat(_profiles(rng, 32.0)) for _ in range(4)]
    res = cr.profile_check(ref, 20.0, same, 10.0, 32.0, np.random.default_rng(0), n=500)
    assert res["bins"] == 44 and res["members"] == 4 and set(res["quantities"]) == set(cr.PROFILES)
    assert all(0 < v["deviation"] and 0 < v["band"] < 0.05 for v in res["quantities"].values())
    off = [flat(_profiles(rng, 32.0, offset=0.2)) for _ in range(4)]  # uu 4 % of its peak too high
    bad = cr.profile_check(ref, 20.0, off, 10.0, 32.0, np.random.default_rng(0), n=500)
    uu = bad["quantities"]["uu"]
    assert not uu["inside"] and uu["deviation"] > 3 * uu["band"] and not bad["inside"]
    # stationary ensembles land inside at about the level's rate
    inside = [cr.profile_check(ref, 20.0, [flat(_profiles(rng, 32.0)) for _ in range(4)], 10.0, 32.0,
                               np.random.default_rng(j), n=300)["quantities"]["uv"]["inside"] for j in range(40)]
    assert np.mean(inside) >= 0.8
    with pytest.raises(ValueError, match="member bins"):
        cr.profile_check(ref, 20.0, same, 40.0, 32.0, np.random.default_rng(0))


def test_analyse_judges_finished_ensembles_blind_then_unblinds(cr, tmp_path):
    """A synthetic campaign: reference + two registered groups of 3; a group is judged once all its
    members finished, the per-run onsets as runs finish; names only with the key."""
    protocol = dict(cr.read_protocol(ROOT / "benchmarks" / "campaign"), horizon=8.0, calibration_surrogates=60,
                    members_candidates=[3], bootstrap=40, min_steady=2.0, member_seeds=[1, 2, 3])
    camp = _synthetic_campaign(tmp_path, protocol)
    ref = camp_plan.read_plan(camp)[0]
    rng = np.random.default_rng(7)

    def commit_run(rid, horizon, series):  # two chunks, the second planned with patient (amendment 10)
        _commit_run(camp, rid, horizon, series, _profiles(rng, horizon),
                    chunks=[dict(steps=100), dict(steps=30, fftw_rigor="patient")])

    commit_run("ref", 120.0, _run_series(rng, 120.0)[1])
    results = tmp_path / "reference.json"
    cr.write_json(results, cr.reference_statistics(protocol, ref, camp_records.read_chunks(camp, "ref")[0]))
    key = camp_register.register(camp, "confirmatory", {"control": dict(source="a"), "late": dict(source="b")}, 3, seed=1)
    runs = camp_plan.read_plan(camp)[1:]
    late = next(g for g, n in key.items() if n == "late")
    for r in runs[:5]:  # one run of the last member still to go
        off = (lambda t: np.where(t < 4.0, 2.0, 0.0)) if r["group"] == late else 0.0
        commit_run(r["id"], 8.0, _run_series(rng, 8.0, offset=off)[1])
    res = camp_analysis.analyse(camp, results)
    assert len(res["per_run"]) == 5 and "named" not in res
    unfinished = runs[5]["group"]
    assert set(res["ensembles"]) == set(key) - {unfinished}  # judged once complete
    assert res["groups"][unfinished] == {"registered": 3, "finished": 2,
                                         "steps_by_fftw_rigor": {"measure": 200, "patient": 60}}
    assert all(v["steps_by_fftw_rigor"] == {"measure": 100, "patient": 30} for v in res["per_run"].values())
    commit_run(runs[5]["id"], 8.0, _run_series(rng, 8.0, offset=(lambda t: np.where(t < 4.0, 2.0, 0.0))
                                               if runs[5]["group"] == late else 0.0)[1])
    res = camp_analysis.analyse(camp, results, json.loads((camp / "key.json").read_text()))
    named = res["named"]
    assert named["control"]["onset_time"] < 2.0 and named["late"]["onset_time"] > 4.0
    prof = named["control"]["profiles_after_onset"]  # amendment 7: the steady part's profiles
    assert prof["members"] == 3 and prof["from"] == named["control"]["onset_time"] and "uv" in prof["quantities"]
    assert {v["ic"] for v in res["per_run_named"].values()} == {"control", "late"}
    assert res["comparisons"]["pairs"] == {} and "no gan ensemble registered" in res["comparisons"]["note"]
    assert set(res["comparisons"]["cost_to_onset"]) == {"control", "late"}


# -- comparisons and the figure (synthetic ensembles; a wide band keeps noise exits rare) ---------
@pytest.fixture(scope="module")
def synth(cr):
    """A reference of the synthetic signals, a 16 h/u_tau horizon, and a maker of ensembles whose
    bulk velocity relaxes by ``offset(t)`` (per member: amplitude ``amps[i]``) at a known step and
    CPU rate (one for all members or one per member)."""
    protocol = dict(cr.read_protocol(ROOT / "benchmarks" / "campaign"), horizon=16.0, min_steady=2.0, bootstrap=200)
    run = dict(id="ref", kind="reference", horizon=120.0, discard=20.0, spec=dict(lengths=[3.14, 2.0, 1.57]))
    ref = cr.reference(protocol, run, _run_series(np.random.default_rng(0), 120.0)[1])

    def ensemble(rng, offset, amps, dt=0.01, cpu_per_time=1.0):
        members, steps = [], []
        for a in amps:
            t, s = _run_series(rng, 16.0, offset=lambda t, a=a: a * offset(t))
            members.append((t, cr.signals(s, protocol["signals"], 1.0)))
            steps.append((t, t / dt))
        return cr.Ensemble(members, steps, np.broadcast_to(cpu_per_time, len(amps)).tolist())

    return types.SimpleNamespace(protocol=protocol, ref=ref, ensemble=ensemble, k=6.0, k_boot=6.0)


def test_steps_to_the_onset_follow_each_member_s_own_step_counter(cr, synth):
    """CFL-adaptive steps: each member's counter grows non-linearly (its step size shrinking as the
    flow becomes turbulent) from its own start (a run continued from a state starts above 0): the
    ensemble's steps to its onset are the members' mean of s_i(T) - s_i(0), independently computed,
    for the point and for every resample's bound or onset."""
    rng = np.random.default_rng(7)
    ens = synth.ensemble(rng, _ramp(3.0), rng.uniform(0.5, 1.5, 6))
    counters = [(lambda t, c=c, s0=s0: s0 + 100.0 * t + c * t**2) for c, s0 in zip(np.linspace(5, 30, 6),
                                                                                     [0, 0, 1000, 0, 37, 0])]
    ens = cr.Ensemble(ens.members, [(m[0], f(m[0])) for m, f in zip(ens.members, counters)], ens.cpu_per_time)
    j = cr.judge(ens, synth.ref, synth.k, synth.k_boot, synth.protocol, np.random.default_rng(1))
    t_on = j.point["time"]
    assert not j.onset.censored and t_on > 1.0
    assert j.point["steps"] == pytest.approx(np.mean([f(t_on) - f(0.0) for f in counters]), rel=1e-6)
    for tb, sb in zip(j.boot["time"], j.boot["steps"]):  # a resample's: a mean of members' counts at its time
        each = [f(tb) - f(0.0) for f in counters]
        assert min(each) * (1 - 1e-9) <= sb <= max(each) * (1 + 1e-9)


def _ramp(end):
    return lambda t: np.clip(1.0 - t / end, 0.0, None)


def test_fast_against_slow_ensemble_reduction_interval_and_units(cr, synth, monkeypatch):
    """Bulk relaxing in ~2 vs ~10 h/u_tau (member amplitudes vary): the reduction is about 0.8 and its
    interval (both ensembles resampled) holds the noise-free truth; steps and CPU-seconds follow the
    known step sizes (0.01, 0.02) and CPU rates (100, 300 s per h/u_tau) exactly."""
    monkeypatch.setattr(cr, "TAILS", (0.025, 0.025))  # the mechanics at 2.5 % tails (40 resamples)
    rng = np.random.default_rng(109)
    fast = synth.ensemble(rng, _ramp(1.8), rng.uniform(0.5, 1.5, 6), dt=0.01, cpu_per_time=100.0)
    slow = synth.ensemble(rng, _ramp(11.5), rng.uniform(0.5, 1.5, 6), dt=0.02, cpu_per_time=300.0)
    judged = {"fast": cr.judge(fast, synth.ref, synth.k, synth.k_boot, synth.protocol, rng),
              "slow": cr.judge(slow, synth.ref, synth.k, synth.k_boot, synth.protocol, rng)}
    clean = {}  # the truth: the rule on the noise-free population (amplitude 1, no noise)
    for name, end in (("fast", 1.8), ("slow", 11.5)):
        t = np.arange(0.0, 16.0 + 1e-9, 0.01)
        sig = {s: np.full(t.size, synth.ref.mean[i]) for i, s in enumerate(synth.ref.signals)}
        sig["bulk"] = sig["bulk"] + _ramp(end)(t)
        clean[name] = synth.ref.onset([(t, sig)] * 6, k=synth.k, horizon=16.0, min_steady=2.0).onset_time
    truth = 1.0 - clean["fast"] / clean["slow"]
    assert truth == pytest.approx(0.8, abs=0.03)
    pair = cr.compare(judged, [("fast", "slow")])["fast vs slow"]
    assert pair["censored"] == []
    red = pair["reduction"]["time"]
    assert red["estimate"] == pytest.approx(0.8, abs=0.05) and red["lower_bound"] is None
    assert red["ci95"][0] < truth < red["ci95"][1] and red["ci95"][1] - red["ci95"][0] > 0.01
    # both ensembles resampled: the difference is at least as uncertain as either onset
    width = {n: np.subtract(*cr.onset_cost(j)["time"]["ci95"][::-1]) for n, j in judged.items()}
    assert width["slow"] > 2 * width["fast"]
    assert np.subtract(*pair["difference"]["time"]["ci95"][::-1]) >= 0.9 * width["slow"]
    ta, tb = judged["fast"].point["time"], judged["slow"].point["time"]
    assert pair["difference"]["time"]["estimate"] == pytest.approx(ta - tb)
    assert pair["difference"]["steps"]["estimate"] == pytest.approx(ta / 0.01 - tb / 0.02)
    assert pair["reduction"]["steps"]["estimate"] == pytest.approx(1 - (ta / 0.01) / (tb / 0.02))
    assert pair["difference"]["cpu_s"]["estimate"] == pytest.approx(100 * ta - 300 * tb)
    assert pair["reduction"]["cpu_s"]["estimate"] == pytest.approx(1 - ta / (3 * tb))
    # the step reduction is 1 - 2 (1 - r_time) resample by resample: the same map holds for its interval
    np.testing.assert_allclose(pair["reduction"]["steps"]["ci95"], [1 - 2 * (1 - q) for q in red["ci95"]], rtol=1e-9)
    cost = cr.onset_cost(judged["slow"])
    assert cost["steps"]["estimate"] == pytest.approx(tb / 0.02) and cost["cpu_s"]["estimate"] == pytest.approx(300 * tb)
    lo, hi = pair["reduction"]["steps"]["ci95"]  # about [0.57, 0.66]: the verdict reads the interval
    for low, expected in ((lo - 0.01, "met"), ((lo + hi) / 2, "undecided"), (hi + 0.01, "not met")):
        assert cr.verdict(pair["reduction"]["steps"], cr.Target("reduction", "steps", low=low))["verdict"] == expected
    assert cr.verdict(pair["difference"]["time"], cr.Target("difference", "time", high=-9.0))["verdict"] == "not met"


def test_censored_baseline_is_a_bound_and_decides_only_when_the_bound_proves_the_target(cr, synth, monkeypatch):
    """A baseline that never settles: every comparison with it is a range with an open side (no
    estimate), met only where its 95 % limit proves the target; a censored GAN side bounds the other
    way, both censored bound nothing. A baseline inside the band too briefly before the horizon is
    bounded by the time it entered, not by the horizon. An ensemble whose resamples are censored in
    part has a one-sided interval."""
    monkeypatch.setattr(cr, "TAILS", (0.025, 0.025))  # the mechanics at 2.5 % tails (40 resamples)
    rng = np.random.default_rng(5)
    fast = synth.ensemble(rng, lambda t: 0.0 * t, [1.0] * 4, cpu_per_time=[50.0, 100.0, 150.0, 200.0])
    ramp = synth.ensemble(rng, _ramp(3.0), rng.uniform(0.5, 1.5, 4))
    never = synth.ensemble(rng, lambda t: 2.0 + 0.0 * t, [1.0] * 4)
    late = synth.ensemble(rng, lambda t: np.where(t < 13.6, 2.0, 0.0), [1.0] * 4)
    # one member off by 0.7: inside the band as 1 of 4, outside where a resample draws it twice (~26 %)
    mixed = synth.ensemble(rng, lambda t: 0.7 + 0.0 * t, [0.0, 0.0, 0.0, 1.0])
    judged = {n: cr.judge(e, synth.ref, synth.k, synth.k_boot, synth.protocol, rng)
              for n, e in (("fast", fast), ("ramp", ramp), ("never", never), ("late", late), ("mixed", mixed))}
    assert judged["never"].onset.censored and judged["never"].point["time"] == pytest.approx(16.0)
    assert judged["late"].onset.censored and 14.0 <= judged["late"].point["time"] < 16.0 - 1.0
    assert judged["late"].point["steps"] == pytest.approx(100 * judged["late"].point["time"])
    cost = cr.onset_cost(judged["fast"])  # onset 1 in every resample; CPU-seconds by each run's own rate
    assert cost["time"]["ci95"] == [1.0, 1.0] and cost["cpu_s"]["estimate"] == pytest.approx(125.0)
    assert cost["cpu_s"]["ci95"][0] < 100.0 and cost["cpu_s"]["ci95"][1] > 150.0
    never_cost = cr.onset_cost(judged["never"])["time"]
    assert never_cost["lower_bound"] == pytest.approx(16.0) and never_cost["ci95"] == [pytest.approx(16.0), None]
    pairs = cr.compare(judged, [("fast", "never"), ("never", "fast"), ("never", "late"), ("ramp", "never")])
    p = pairs["fast vs never"]
    assert p["censored"] == ["never"]
    for unit in ("time", "steps", "cpu_s"):  # T_b censored: difference (-inf, x], reduction [x, 1]
        d, r = p["difference"][unit], p["reduction"][unit]
        assert d["estimate"] is None and d["lower_bound"] is None and d["upper_bound"] is not None
        assert d["ci95"][0] is None and d["ci95"][1] is not None and d["text"].startswith("<=")
        assert r["estimate"] is None and r["upper_bound"] == 1.0 and r["ci95"][1] == 1.0
    bound = p["reduction"]["steps"]
    assert bound["lower_bound"] == pytest.approx(1 - judged["fast"].point["steps"] / judged["never"].point["steps"])
    assert bound["lower_bound"] > 0.9
    assert cr.verdict(bound, cr.Target("reduction", "steps", low=0.8))["verdict"] == "met"
    assert cr.verdict(bound, cr.Target("reduction", "steps", low=0.97))["verdict"] == "undecided"
    # a bound decides by its own 95 % limit: the ramp's onset varies over the resamples
    bound = pairs["ramp vs never"]["reduction"]["steps"]
    lo = bound["ci95"][0]
    assert lo < bound["lower_bound"] - 0.01
    mid = (lo + bound["lower_bound"]) / 2
    assert cr.verdict(bound, cr.Target("reduction", "steps", low=mid))["verdict"] == "undecided"
    assert cr.verdict(bound, cr.Target("reduction", "steps", low=lo))["verdict"] == "met"
    # a number whose resamples are censored in part (more than 2.5 %): an interval open above
    assert not judged["mixed"].onset.censored and judged["mixed"].censored.mean() > 0.1
    mixed_cost = cr.onset_cost(judged["mixed"])["time"]
    assert mixed_cost["estimate"] is not None and mixed_cost["ci95"][0] is not None and mixed_cost["ci95"][1] is None
    assert "unbounded above" in mixed_cost["note"]
    q = cr.compare(judged, [("fast", "mixed")])["fast vs mixed"]["reduction"]["steps"]
    assert q["estimate"] is not None and q["ci95"][0] is not None and q["ci95"][1] == 1.0
    assert cr.verdict(q, cr.Target("reduction", "steps", low=-1.0))["verdict"] == "met"
    back = pairs["never vs fast"]["reduction"]["steps"]  # the censored side is the one judged
    assert back["upper_bound"] < 0 and back["estimate"] is None and back["lower_bound"] is None
    assert back["ci95"][0] is None and back["ci95"][1] < 0
    assert cr.verdict(back, cr.Target("reduction", "steps", low=0.5))["verdict"] == "not met"
    assert cr.verdict(back, cr.Target("reduction", "steps", low=-100.0))["verdict"] == "undecided"
    none = pairs["never vs late"]["difference"]["time"]
    assert none["estimate"] is None and none["lower_bound"] is None and none["upper_bound"] is None
    assert none["ci95"] == [None, None] and none["text"].startswith("unbounded")
    assert pairs["never vs late"]["reduction"]["time"]["upper_bound"] == 1.0
    assert cr.verdict(none, cr.Target("difference", "time", high=1.0))["verdict"] == "undecided"
    with pytest.raises(KeyError, match="complete ensembles"):
        cr.compare(judged, [("fast", "gan")])
    # "ahead" is strict: a range reaching a tie (0) is not ahead, one starting at a tie is not met
    for ci, expected in (([-2.0, -0.1], "met"), ([-2.0, 0.0], "undecided"), ([0.0, 3.0], "not met")):
        assert cr.verdict({"ci95": ci}, cr.AHEAD)["verdict"] == expected, ci
    assert cr.verdict({"ci95": [-2.0, 0.0]}, cr.Target("difference", "time", high=0.0))["verdict"] == "met"


def test_resamples_are_judged_with_their_own_band_constant(cr, synth):
    """k_N judges the ensemble, k_N^boot its resamples: an offset outside the one band and inside
    the other censors the ensemble and none of its resamples (and the other way round)."""
    rng = np.random.default_rng(12)
    off = synth.ensemble(rng, lambda t: 0.4 + 0.0 * t, [1.0] * 4)  # ~9 band units of sigma / 2
    wide = cr.judge(off, synth.ref, synth.k, 3 * synth.k, synth.protocol, rng)
    assert wide.onset.censored and not wide.censored.any()
    narrow = cr.judge(off, synth.ref, 3 * synth.k, synth.k, synth.protocol, rng)
    assert not narrow.onset.censored and narrow.censored.all()


def _hand_judged(cr, point, censored, boot, boot_censored):
    """A :class:`Judged` from hand-made onsets (time only; steps = 100 per unit of time)."""
    onset = cr.SteadyState(censored, None if censored else point, None if censored else 0, 16.0, "test", "")
    boot = np.asarray(boot, dtype=np.float64)
    return cr.Judged(np.zeros(1), np.zeros((1, 1, 1)), onset, {"time": point, "steps": 100 * point},
                     np.asarray(boot_censored, dtype=bool), {"time": boot, "steps": 100 * boot})


def test_intervals_of_ranges_on_hand_made_resamples(cr, monkeypatch):
    """Every resample is a range ([bound, inf) when censored), every pair of resamples the range of
    T_a - T_b or 1 - T_a/T_b over both; the interval runs from the 2.5 % quantile of the lower ends
    to the 97.5 % quantile of the upper ends (of 40 resamples: the second smallest and the second largest),
    open where that is infinite; the verdict reads an open side as infinite."""
    monkeypatch.setattr(cr, "TAILS", (0.025, 0.025))  # the mechanics at 2.5 % tails (40 resamples)
    a = _hand_judged(cr, 2.0, False, 0.1 * np.arange(1, 41), np.zeros(40))  # resamples 0.1 ... 4.0
    one = np.zeros(40, dtype=bool)
    one[0] = True
    b1 = _hand_judged(cr, 10.0, False, np.full(40, 10.0), one)  # 1 of 40 censored: 2.5 %
    two = one.copy()
    two[1] = True
    b2 = _hand_judged(cr, 10.0, False, np.full(40, 10.0), two)  # 2 of 40: 5 %
    assert cr.onset_cost(a)["time"]["ci95"] == [pytest.approx(0.2), pytest.approx(3.9)]
    assert cr.onset_cost(b1)["time"]["ci95"] == [10.0, 10.0]
    c2 = cr.onset_cost(b2)["time"]
    assert c2["estimate"] == 10.0 and c2["ci95"] == [10.0, None]
    assert c2["note"].startswith("5.0% of the resamples unbounded above") and c2["text"] == "10 [10, inf]"
    pair = cr.compare({"a": a, "b": b2}, [("a", "b")])["a vs b"]
    d, r = pair["difference"]["time"], pair["reduction"]["time"]
    # b's censored resamples (paired with a's 0.1 and 0.2) leave T_a - T_b unbounded below
    assert d["estimate"] == -8.0 and d["ci95"] == [None, pytest.approx(3.9 - 10.0)]
    assert r["estimate"] == pytest.approx(0.8) and r["ci95"] == [pytest.approx(0.61), 1.0]
    at_most_1_later = cr.Target("difference", "time", high=1.0)
    assert cr.verdict(d, at_most_1_later)["verdict"] == "met"  # (-inf, -6.1] inside (-inf, 1]
    assert cr.verdict(d, cr.Target("difference", "time", high=-7.0))["verdict"] == "undecided"
    assert cr.verdict(d, at_most_1_later)["range95"] == [None, pytest.approx(-6.1)]
    for low, expected in ((0.5, "met"), (0.7, "undecided"), (1.01, "not met")):
        assert cr.verdict(r, cr.Target("reduction", "time", low=low))["verdict"] == expected
    # the point itself is a range by the same logic: a censored at 5 (b at 10), then both censored
    ac = _hand_judged(cr, 5.0, True, np.full(40, 5.0), np.ones(40))
    pair = cr.compare({"a": ac, "b": b1, "c": ac}, [("a", "b"), ("a", "c")])
    d, r = pair["a vs b"]["difference"]["time"], pair["a vs b"]["reduction"]["steps"]
    assert (d["estimate"], d["lower_bound"], d["upper_bound"], d["ci95"]) == (None, -5.0, None, [-5.0, None])
    assert (r["estimate"], r["lower_bound"], r["upper_bound"], r["ci95"]) == (None, None, 0.5, [None, 0.5])
    assert d["text"] == ">= -5 [-5, inf]" and r["text"] == "<= 0.5 [-inf, 0.5]"
    d, r = pair["a vs c"]["difference"]["time"], pair["a vs c"]["reduction"]["time"]
    assert (d["lower_bound"], d["upper_bound"], d["ci95"]) == (None, None, [None, None])
    assert (r["lower_bound"], r["upper_bound"], r["ci95"]) == (None, 1.0, [None, 1.0])
    assert cr.verdict(d, at_most_1_later)["verdict"] == "undecided"
    assert cr.verdict(r, cr.Target("reduction", "time", low=1.5))["verdict"] == "not met"


def test_analyse_compares_after_unblinding_writes_the_figure_and_stays_blind(cp, cr, tmp_path, capsys):
    """``campaign analyse`` on a synthetic campaign (three ensembles of 3): blind, its JSON, its
    printout and its figure's legend hold group labels only; unblinded, the GAN ensemble is compared
    with the others, with the protocol's targets' verdicts, and the named figure is written."""
    protocol = dict(cr.read_protocol(ROOT / "benchmarks" / "campaign"), horizon=8.0, members_candidates=[3],
                    bootstrap=40, min_steady=2.0, member_seeds=[1, 2, 3])
    camp = _synthetic_campaign(tmp_path, protocol)
    rng = np.random.default_rng(3)

    def commit_run(rid, horizon, series, cpu_s, rigor=None):
        chunk = dict(steps=100) if rigor is None else dict(steps=100, fftw_rigor=rigor)
        _commit_run(camp, rid, horizon, series, wall_s=cpu_s, cpu_s=cpu_s, chunks=[chunk])

    commit_run("ref", 120.0, _run_series(rng, 120.0)[1], 1.0)
    results = tmp_path / "res" / "reference.json"
    cr.write_json(results, {"complete": True, "k": {"1": 6.0, "3": 6.0}})
    with pytest.raises(SystemExit, match="k_boot"):  # amendment 4: resamples need their own band constant
        camp_analysis.analyse(camp, results)
    cr.write_json(results, {"complete": True, "k": {"1": 6.0, "3": 6.0}, "k_boot": {"3": 6.0}})
    key = camp_register.register(camp, "confirmatory", {n: dict(source=n) for n in ("gan", "trig", "control")}, 3, seed=1)
    end = {"gan": 1.0, "trig": 4.0, "control": 0.0}
    for r in camp_plan.read_plan(camp)[1:]:
        e = end[key[r["group"]]]
        commit_run(r["id"], 8.0, _run_series(rng, 8.0, offset=lambda t, e=e: np.where(t < e, 2.0, 0.0))[1], 80.0,
                   rigor="patient" if key[r["group"]] == "gan" else None)  # amendment 10: gan after the change
    assert cp.main(["analyse", "--campaign", str(camp), "--results", str(results)]) == 0
    blind = (tmp_path / "res" / "campaign_onsets.json").read_text()
    out = capsys.readouterr().out.replace(str(tmp_path), "")
    assert json.loads(blind)["figure"]["legend"] and "comparisons" not in json.loads(blind)
    for name in end:
        assert name not in blind and name not in out
    png = tmp_path / "res" / "campaign_onsets.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert cp.main(["analyse", "--unblind", "--campaign", str(camp), "--results", str(results)]) == 0
    res = json.loads((tmp_path / "res" / "campaign_onsets_named.json").read_text())
    comp = res["comparisons"]
    assert set(comp["pairs"]) == {"gan vs trig", "gan vs control"} and set(comp["cost_to_onset"]) == set(end)
    trig = comp["pairs"]["gan vs trig"]
    assert trig["target"]["target"].startswith(">= 50 % fewer steps") and trig["target"]["verdict"] == "met"
    assert trig["reduction"]["time"]["estimate"] == pytest.approx(1 - 2.0 / 5.0, abs=0.1)
    assert comp["pairs"]["gan vs control"]["target"]["unit"] == "time"
    assert any(entry.startswith("gan (N = 3)") for entry in res["figure"]["legend"])
    assert comp["patient_share"] == {"gan": 1.0, "trig": 0.0, "control": 0.0}
    out = capsys.readouterr().out
    assert "gan vs trig" in out and "cpu_s: steps planned with FFTW patient 100% / 0%" in out
    planning = json.loads(camp_analysis.PLANNING.read_text())  # the cost per step is amendment 10's measurement
    assert comp["patient_speedup"] == planning["median_ratio"] == sorted(planning["patient_over_measure"])[1]
    assert f"({1 - 1 / planning['median_ratio']:.0%} cheaper per step, amendment 10)" in out
    rule = protocol.get("resample_rule", "exit")  # the registered procedure's measured power
    study = json.loads(camp_analysis.verdict_study(rule).read_text())
    assert study["rule"] == rule == "exit"
    power = study["levels"][str(protocol["level"])]["verdicts"]["s0 vs s1 (>= 0.5)"]
    met = power.get("met", 0) / sum(power.values())
    assert comp["verdict_power"]["force"]["trig"]["met_share"] == met and trig["target"]["baseline_ic"] == "trig"
    assert f"called a perfect IC's reduction 'met' in {met:.0%} of {sum(power.values())} simulated pairs" in out
    assert (tmp_path / "res" / "campaign_onsets_named.png").stat().st_size > 10_000
    res = camp_analysis.analyse(camp, results, json.loads((camp / "key.json").read_text()), pairs=[("trig", "control")])
    assert set(res["comparisons"]["pairs"]) == {"trig vs control"} and "figure" not in res
    assert "target" not in res["comparisons"]["pairs"]["trig vs control"]  # the targets are the GAN's
    # a trig run blew up after its first 4 h/u_tau: censored, and the comparison with trig becomes a bound
    blown = next(r["id"] for r in camp_plan.read_plan(camp)[1:] if key[r["group"]] == "trig")
    series, _ = camp_records.read_chunks(camp, blown)
    kept = {c: v[series["t"] < 4.0] for c, v in series.items()}
    shutil.rmtree(camp / blown)
    _commit_run(camp, blown, 4.0, kept, wall_s=40.0, cpu_s=40.0, chunks=[dict(steps=50)])
    prog = json.loads((camp / blown / "run.json").read_text())
    (camp / blown / "run.json").write_text(json.dumps(dict(prog, failed=dict(reason="FloatingPointError: ...",
                                                                             after_t=prog["t"]))))
    assert camp_plan.is_done(next(r for r in camp_plan.read_plan(camp) if r["id"] == blown),
                             json.loads((camp / blown / "run.json").read_text()))  # done: failed, before its horizon
    res = camp_analysis.analyse(camp, results, json.loads((camp / "key.json").read_text()))
    assert set(res["comparisons"]["pairs"]) == {"gan vs trig", "gan vs control"}
    assert res["named"]["trig"]["censored"] and res["per_run"][blown]["censored"] and "failed" in res["per_run"][blown]
    gan = res["named"]["gan"]["onset_time"]
    r = res["comparisons"]["pairs"]["gan vs trig"]["reduction"]["time"]
    assert r["estimate"] is None and r["lower_bound"] == pytest.approx(1 - gan / 8.0)  # trig >= the horizon


def test_a_failed_run_is_outside_the_band_from_its_last_record():
    """A run that blew up: its committed records, then NaN to the horizon (steps held); one that
    failed before its first chunk: NaN from t = 0. The rule censors both at the horizon."""
    from cfdseed.transient.calibrated import onset_from_z

    template = {"t": np.zeros(1), "step": np.zeros(1), "bulk": np.zeros(1)}
    rec = camp_analysis.failed_record({"t": np.array([0.0, 1.0]), "step": np.array([0.0, 10.0]),
                                       "bulk": np.array([15.0, 15.1])}, template, 32.0)
    assert rec["t"].tolist() == [0.0, 1.0, 32.0] and rec["step"].tolist() == [0.0, 10.0, 10.0]
    assert rec["bulk"][:2].tolist() == [15.0, 15.1] and np.isnan(rec["bulk"][2])
    none = camp_analysis.failed_record({}, template, 32.0)
    assert none["t"].tolist() == [0.0, 32.0] and none["step"].tolist() == [0.0, 0.0] and np.isnan(none["bulk"]).all()
    z = np.full((2, 5), np.nan)
    z[:, :2] = 0.0
    r = onset_from_z(np.arange(5.0), z, 2.0, 1.0, ["bulk", "tke"])
    assert r.censored and "no record at the horizon" in r.reason


def test_registered_tails_are_amendment_4_s(cr):
    """Amendment 4's interval: 1 % on each side (of 40 resamples: the smallest and the largest)."""
    assert cr.TAILS == (0.01, 0.01)
    lo = hi = 0.1 * np.arange(1, 41)
    assert cr._interval(lo, hi) == [pytest.approx(0.1), pytest.approx(4.0)]
    assert cr._interval(lo, hi, tails=(0.025, 0.025)) == [pytest.approx(0.2), pytest.approx(3.9)]


def test_a_run_s_ic_is_checked_against_its_registered_build(tmp_path):
    """The worker's guard: no record, or a failed build recorded: nothing to compare (False); the
    same values within 1e-4: True; a difference beyond it: refused."""
    row = dict(bulk=15.7, bulk_w=0.0, tau_lower=1.0, tau_upper=1.0, probe_u=18.0, tke=1.9)
    assert camp_ics.same_as_registered(tmp_path, "r1", row) is False
    (tmp_path / camp_ics.IC_CHECK).write_text(json.dumps({"runs": {"r1": {"built": row}, "r2": {"built": {"error": "x"}}}}))
    assert camp_ics.same_as_registered(tmp_path, "r1", dict(row, tke=1.9 * (1 + 5e-5))) is True
    assert camp_ics.same_as_registered(tmp_path, "r2", row) is False and camp_ics.same_as_registered(tmp_path, "r3", row) is False
    with pytest.raises(RuntimeError, match="changed a registered IC"):
        camp_ics.same_as_registered(tmp_path, "r1", dict(row, tke=1.9 * 1.001))
    with pytest.raises(RuntimeError, match="W_b"):
        camp_ics.same_as_registered(tmp_path, "r1", dict(row, bulk_w=1e-3))


def _two_tier_pairs(cr, tmp_path, seed, confirmatory, other_tier, other, end):
    """The default comparisons of a synthetic campaign: ensembles of 3 of the ``confirmatory`` ICs and
    of ``other`` (in ``other_tier``), each member offset by 2 band units until its ``end[name]``."""
    protocol = dict(cr.read_protocol(ROOT / "benchmarks" / "campaign"), horizon=8.0, members_candidates=[3],
                    bootstrap=40, min_steady=2.0, member_seeds=[1, 2, 3])
    camp = _synthetic_campaign(tmp_path, protocol)
    rng = np.random.default_rng(seed)
    _commit_run(camp, "ref", 120.0, _run_series(rng, 120.0)[1])
    results = tmp_path / "res" / "reference.json"
    cr.write_json(results, {"complete": True, "k": {"1": 6.0, "3": 6.0}, "k_boot": {"3": 6.0}})
    key = camp_register.register(camp, "confirmatory", {n: dict(source=n) for n in confirmatory}, 3, seed=1)
    key |= camp_register.register(camp, other_tier, other, 3, seed=2)
    for r in camp_plan.read_plan(camp)[1:]:
        e = end[key[r["group"]]]
        _commit_run(camp, r["id"], 8.0, _run_series(rng, 8.0, offset=lambda t, e=e: np.where(t < e, 2.0, 0.0))[1],
                    wall_s=80.0, cpu_s=80.0)
    return camp_analysis.analyse(camp, results, json.loads((camp / "key.json").read_text()))["comparisons"]["pairs"]


def test_exploratory_ensembles_are_compared_with_the_gan_descriptively(cr, tmp_path):
    """An exploratory ensemble is no baseline of the GAN's targets: by default it is compared with
    the registered GAN ensemble, without a target, and the GAN's pairs stay the registered ones."""
    pairs = _two_tier_pairs(cr, tmp_path, 5, ("gan", "trig"), "exploratory", {"gan-v2.1": dict(source="gan")},
                            {"gan": 1.0, "trig": 4.0, "gan-v2.1": 2.0})
    assert set(pairs) == {"gan vs trig", "gan-v2.1 vs gan"}
    assert "target" in pairs["gan vs trig"] and "target" not in pairs["gan-v2.1 vs gan"]
    assert pairs["gan-v2.1 vs gan"]["difference"]["time"]["estimate"] == pytest.approx(1.0, abs=0.6)


def test_an_exploratory_gan_ensemble_is_compared_with_the_controls_too(cr, tmp_path):
    """Amendment 19: an exploratory ensemble against the registered GAN ensemble and the controls,
    both descriptive."""
    pairs = _two_tier_pairs(cr, tmp_path, 7, ("gan", "control"), "exploratory", {"gan-own-bulk": dict(source="gan")},
                            {"gan": 3.0, "control": 0.0, "gan-own-bulk": 1.0})
    assert set(pairs) == {"gan vs control", "gan-own-bulk vs gan", "gan-own-bulk vs control"}
    assert "target" in pairs["gan vs control"]
    assert "target" not in pairs["gan-own-bulk vs gan"] and "target" not in pairs["gan-own-bulk vs control"]


def test_exploratory_runs_may_go_before_a_later_tier_and_a_view_s_runs_follow_their_reference(tmp_path):
    """``register(before_tier=...)``: the runs go before that tier's first run after their reference,
    so the flow-rate view's IC runs (before_tier exploratory, reference ref-cfr) stay behind ref-cfr
    even when exploratory runs were placed earlier in the plan."""
    protocol = dict(json.loads((ROOT / "benchmarks" / "campaign" / "protocol.json").read_text()), member_seeds=[1, 2])
    camp = _synthetic_campaign(tmp_path, protocol)
    camp_register.register(camp, "fair", {"sem": dict(source="sem")}, 2, seed=1)
    plan = json.loads((camp / "plan.json").read_text())
    cfr = dict(plan["runs"][0], id="ref-cfr", spec=dict(plan["runs"][0]["spec"], driving="flow_rate"))
    plan["runs"].append(cfr)
    (camp / "plan.json").write_text(json.dumps(plan))
    camp_register.register(camp, "exploratory", {"gan-x": dict(source="gan")}, 2, seed=2)  # appended
    camp_register.register(camp, "exploratory", {"gan-y": dict(source="gan")}, 2, seed=3, before_tier="fair")
    camp_register.register(camp, "flow_rate", {"trig": dict(source="trig")}, 2, seed=4, reference="ref-cfr",
                           before_tier="exploratory")
    key = json.loads((camp / "key.json").read_text())
    order = [("ref" if r["kind"] == "reference" else key[r["group"]]["ic"]) for r in camp_plan.read_plan(camp)]
    assert order == ["ref", "gan-y", "gan-y", "sem", "sem", "ref", "trig", "trig", "gan-x", "gan-x"]


def test_amendment_19_s_runs_sit_between_the_sweep_and_the_flow_rate_reference():
    """The committed plan: gan-own-bulk's eight runs right after the sweep's, then (amendment 20) the
    flow-rate view's reference, then the fair tier."""
    runs = camp_plan.read_plan()
    key = json.loads((ROOT / "benchmarks" / "campaign" / "key.json").read_text())
    own = [i for i, r in enumerate(runs) if key.get(r.get("group"), {}).get("ic") == "gan-own-bulk"]
    assert len(own) == 8 and own == list(range(own[0], own[0] + 8))
    assert runs[own[0] - 1]["kind"] == "sweep" and runs[own[-1] + 1]["id"] == "ref-cfr"
    assert runs[own[-1] + 2]["tier"] == "fair"
    assert not any(r.get("tier") == "fair" for r in runs[:own[-1] + 2])
    protocol = json.loads((ROOT / "benchmarks" / "campaign" / "protocol.json").read_text())
    assert protocol["flow_rate"]["ic_runs_before"] == "fair"  # the view's IC runs will follow ref-cfr too
    assert all(runs[i]["ic"]["options"] == {"model": "default-re180-v2"} for i in own)  # no bulk option


def test_register_before_is_for_exploratory_runs_and_an_existing_tier(cp, tmp_path):
    protocol = dict(json.loads((ROOT / "benchmarks" / "campaign" / "protocol.json").read_text()), member_seeds=[1])
    camp = _synthetic_campaign(tmp_path, protocol)
    camp_register.register(camp, "fair", {"sem": dict(source="sem")}, 1, seed=1)
    with pytest.raises(SystemExit, match="exploratory runs only"):
        cp.main(["register", "--tier", "fair", "--ics", "streaks", "--members", "1", "--before", "fair",
                 "--campaign", str(camp)])
    with pytest.raises(SystemExit, match="no run of tier 'fiar'"):
        cp.main(["register", "--tier", "exploratory", "--ics", "gan-own-bulk", "--members", "1", "--before", "fiar",
                 "--model", "default-re180-v2", "--campaign", str(camp)])


def test_phase_randomised_is_compared_with_control_by_default_without_a_target(cr, tmp_path):
    """Amendment 5's descriptive pair: phase-randomised minus control, beside the GAN's registered
    pairs (phase-randomised with the target "ahead")."""
    pairs = _two_tier_pairs(cr, tmp_path, 6, ("gan", "control"), "fair",
                            {"phase-randomised": dict(source="phase-randomised")},
                            {"gan": 1.0, "control": 0.0, "phase-randomised": 3.0})
    assert set(pairs) == {"gan vs control", "gan vs phase-randomised", "phase-randomised vs control"}
    assert "target" not in pairs["phase-randomised vs control"] and "target" in pairs["gan vs phase-randomised"]
    assert pairs["phase-randomised vs control"]["difference"]["time"]["estimate"] == pytest.approx(3.0, abs=1.0)


def _package(tmp_path: Path, name: str, modules: dict[str, str]) -> None:
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for mod, text in modules.items():
        (pkg / f"{mod}.py").write_text(text)


def test_load_library_imports_every_module_and_skips_missing_optional_packages(cp, tmp_path, monkeypatch):
    import sys

    _package(tmp_path, "cfdseed_probe_a", {"ok": "X = 1\n", "optional": "import no_such_thirdparty_pkg_xyz\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cp.load_library("cfdseed_probe_a") == ["cfdseed_probe_a.optional"]
    assert "cfdseed_probe_a.ok" in sys.modules
    skipped = cp.load_library()  # the real library: every module loads or names its missing dependency
    import pkgutil

    import cfdseed

    names = {m.name for m in pkgutil.walk_packages(cfdseed.__path__, "cfdseed.")}
    assert names - set(skipped) <= set(sys.modules)


@pytest.mark.parametrize("text", ["from cfdseed_probe_{i} import gone\n", "import cfdseed_probe_{i}.gone\n"])
def test_load_library_raises_on_a_broken_own_module(cp, tmp_path, monkeypatch, text):
    name = f"cfdseed_probe_b{len(text)}"  # one package a case: the first import is cached
    _package(tmp_path, name, {"broken": text.format(i=name.removeprefix("cfdseed_probe_"))})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="gone"):
        cp.load_library(name)


def test_power_input_is_the_body_force_or_the_held_gradient(cr):
    """eps_ratio = dissipation / (driving * U_b): the constant force u_tau^2/h, or under a held flow
    rate the pressure gradient, which equals the mean wall shear over h (ly = 2 h)."""
    series = dict(bulk=np.full(3, 15.7), tau_lower=np.array([1.1, 0.9, 1.3]), tau_upper=np.array([0.9, 0.7, 1.1]),
                  dissipation=np.array([15.7, 12.56, 18.84]))
    force = dict(spec=dict(lengths=[3.14, 2.0, 1.57]))
    held = dict(spec=dict(lengths=[3.14, 2.0, 1.57], driving="flow_rate", bulk=15.7))
    assert cr.force_of(force, series) == 1.0
    np.testing.assert_allclose(cr.force_of(held, series), [1.0, 0.8, 1.2])
    np.testing.assert_allclose(cr.signals(series, ["eps_ratio"], cr.force_of(held, series))["eps_ratio"], 1.0)
    np.testing.assert_allclose(cr.signals(series, ["eps_ratio"], cr.force_of(force, series))["eps_ratio"],
                               [1.0, 0.8, 1.2])


def test_flow_rate_view_is_registered_before_amendment_8_s_exploratory_runs():
    """Amendment 9: ref-cfr is the committed case under a held flow rate, from a body-force state
    that is no control's, ahead of amendment 8's exploratory runs; its protocol block names what the
    tier needs."""
    runs = camp_plan.read_plan()
    ids = [r["id"] for r in runs]
    ref, cfr = runs[0], runs[ids.index("ref-cfr")]
    protocol = json.loads((ROOT / "benchmarks" / "campaign" / "protocol.json").read_text())["flow_rate"]
    assert cfr["kind"] == "reference" and cfr["spec"] == dict(ref["spec"], driving="flow_rate", bulk=protocol["bulk"])
    assert cfr["horizon"] == protocol["reference"]["horizon"] and cfr["discard"] == protocol["reference"]["discard"]
    assert cfr["horizon"] - cfr["discard"] >= 8 * 20 - 10  # eight control states 20 h/u_tau apart
    assert (ROOT / cfr["ic"]["state"]).exists() and cfr["ic"]["options"]["bulk"] == protocol["bulk"]
    assert all(r["ic"].get("state") != cfr["ic"]["state"] for r in runs if r["kind"] == "ic")
    key = json.loads((ROOT / "benchmarks" / "campaign" / "key.json").read_text())
    last = {g for g, v in key.items() if v["ic"] == "gan-v2.1"}  # amendment 8's exploratory runs, last in the plan
    assert ids.index("ref-cfr") < min(i for i, r in enumerate(runs) if r.get("group") in last)
    assert "bulk" not in protocol["signals"] and protocol["horizon"] < 32.0
    assert set(protocol["ics"]) == {"gan", "trig", "phase-randomised", "control"}
    assert all(ic["options"]["bulk"] == protocol["bulk"] for ic in protocol["ics"].values())
    gan = protocol["ics"]["gan"]
    assert camp_ics.model_sha256(gan["options"]["model"]) == gan["model_sha256"]  # amendment 3's model


def test_flow_rate_runs_go_where_the_protocol_places_them(tmp_path, monkeypatch):
    """Amendment 20: with ``ic_runs_before`` "fair" the view's IC runs follow its reference, ahead of
    the fair tier's runs and the exploratory ones; the other tiers keep their order; a tier the plan
    has no run of after the reference is refused."""
    fr = dict(json.loads((ROOT / "benchmarks" / "campaign" / "protocol.json").read_text())["flow_rate"], members=2)
    fr["ics"] = {"trig": dict(source="trig", options=dict(bulk=15.7))}
    protocol = dict(json.loads((ROOT / "benchmarks" / "campaign" / "protocol.json").read_text()),
                    member_seeds=[1, 2], flow_rate=fr)
    camp = _synthetic_campaign(tmp_path, protocol)
    camp_register.register(camp, "confirmatory", {"trig": dict(source="trig")}, 2, seed=1)
    plan = json.loads((camp / "plan.json").read_text())
    plan["runs"].append(dict(plan["runs"][0], id="ref-cfr", spec=dict(plan["runs"][0]["spec"], driving="flow_rate")))
    (camp / "plan.json").write_text(json.dumps(plan))
    camp_register.register(camp, "fair", {"sem": dict(source="sem")}, 2, seed=2)
    camp_register.register(camp, "exploratory", {"gan-x": dict(source="gan")}, 2, seed=3)
    monkeypatch.setattr(camp_register, "validate_reference", lambda c, rid: dict(complete=True, passed=True))
    (camp / "protocol.json").write_text(json.dumps(dict(protocol, flow_rate=dict(fr, ic_runs_before="fiar"))))
    with pytest.raises(SystemExit, match="no run of tier 'fiar' after 'ref-cfr'"):
        camp_register.register_flow_rate(camp, ["trig"], 2, None)  # a misnamed tier is refused, nothing appended
    (camp / "protocol.json").write_text(json.dumps(protocol))
    camp_register.register_flow_rate(camp, ["trig"], 2, None)
    order = [r["id"] if r["kind"] == "reference" else r["tier"] for r in camp_plan.read_plan(camp)]
    assert order == (["ref"] + ["confirmatory"] * 2 + ["ref-cfr"] + ["flow_rate"] * 2 + ["fair"] * 2
                     + ["exploratory"] * 2)


def test_validate_reference_passes_the_body_force_reference_and_fails_a_wrong_case(tmp_path):
    """Amendment 9's gate on the committed body-force reference (its own wall units: Re_tau 180);
    the same chunks declared as a case of nu = 1/150 fail it (wall units 17 % off)."""
    camp = ROOT / "benchmarks" / "campaign"
    res = camp_analysis.validate_reference(camp, "ref")
    assert res["passed"] and res["driving"] == "force" and res["complete"]
    assert res["re_tau"] == pytest.approx(180.0, abs=1.0) and res["u_plus_rel_l2"] < 0.01
    assert res["span"][0] >= 40.0  # the discard is excluded
    plan = json.loads((camp / "plan.json").read_text())
    ref = dict(plan["runs"][0], spec=dict(plan["runs"][0]["spec"], re_tau=150.0))
    (tmp_path / "plan.json").write_text(json.dumps({"runs": [ref]}))
    (tmp_path / "protocol.json").write_text((camp / "protocol.json").read_text())
    (tmp_path / "ref").symlink_to(camp / "ref")
    bad = camp_analysis.validate_reference(tmp_path, "ref")
    assert not bad["passed"] and not bad["checks"]["re_tau"] and not bad["checks"]["u_plus_rel_l2"]


def test_flow_rate_view_is_registered_after_its_gate_and_judged_on_its_own_reference(cr, tmp_path, monkeypatch):
    """Amendment 9 on a synthetic campaign: the view's runs are refused until its reference passes
    the gate, then take its case, horizon and place (before the exploratory runs); analyse judges
    each view against its own reference (U_b held: no bulk signal) and draws a figure per view."""
    fr = dict(json.loads((ROOT / "benchmarks" / "campaign" / "protocol.json").read_text())["flow_rate"],
              horizon=6.0, members=3)
    fr.pop("ic_runs_before")  # amendment 9's place: before the exploratory runs
    fr["ics"] = {"control": dict(source="snapshot", options=dict(bulk=15.7), states="the reference's"),
                 "trig": dict(source="trig", options=dict(bulk=15.7))}
    protocol = dict(cr.read_protocol(ROOT / "benchmarks" / "campaign"), horizon=8.0, calibration_surrogates=60,
                    members_candidates=[3], bootstrap=40, min_steady=2.0, member_seeds=[1, 2, 3], flow_rate=fr)
    camp = _synthetic_campaign(tmp_path, protocol)
    plan = json.loads((camp / "plan.json").read_text())
    cfr_spec = dict(plan["runs"][0]["spec"], driving="flow_rate", bulk=15.7)
    plan["runs"].append(dict(id="ref-cfr", kind="reference", horizon=120.0, discard=20.0, spec=cfr_spec))
    (camp / "plan.json").write_text(json.dumps(plan))
    rng = np.random.default_rng(5)

    def held(series):  # U_b held; the power input is the mean wall shear times U_b
        s = dict(series, bulk=np.full_like(series["bulk"], 15.7))
        s["dissipation"] = 0.5 * (s["tau_lower"] + s["tau_upper"]) * 15.7 * (1 + 0.03 * rng.standard_normal(s["t"].size))
        return s

    _commit_run(camp, "ref", 120.0, _run_series(rng, 120.0)[1])
    _commit_run(camp, "ref-cfr", 120.0, held(_run_series(rng, 120.0)[1]))
    (camp / "ref-cfr" / "snapshots").mkdir()
    for t in (20, 40, 60):
        (camp / "ref-cfr" / "snapshots" / f"t{t:08.3f}.npz").write_bytes(b"")
    results = tmp_path / "reference.json"
    for rid in ("ref", "ref-cfr"):
        run, series, _ = camp_analysis.reference_run(camp, rid)
        stats = cr.reference_statistics(cr.view(protocol, cr.driving_of(run)), run, series)
        cr.write_json(camp_analysis.reference_json_of(results, run), stats)
    cfr_stats = json.loads((tmp_path / "reference_ref-cfr.json").read_text())
    assert "bulk" not in cfr_stats["signals"] and set(cfr_stats["k"]) == {"1", "3"}
    camp_register.register(camp, "confirmatory", {"control": dict(source="a")}, 3, seed=1)
    camp_register.register(camp, "exploratory", {"gan-x": dict(source="b")}, 3, seed=2)

    monkeypatch.setattr(camp_register, "ROOT", tmp_path)
    with pytest.raises(SystemExit, match="ref-cfr"):
        camp_register.register_flow_rate(camp, ["control", "trig"], 3, None)  # the gate: no profiles, nothing validated
    monkeypatch.setattr(camp_register, "validate_reference", lambda c, rid: dict(complete=True, passed=True))
    with pytest.raises(SystemExit, match="N = 3"):
        camp_register.register_flow_rate(camp, ["control", "trig"], 8, None)
    key = camp_register.register_flow_rate(camp, ["control", "trig"], 3, None)
    runs = camp_plan.read_plan(camp)
    tiers = [r.get("tier") for r in runs if r["kind"] == "ic"]
    assert tiers == ["confirmatory"] * 3 + ["flow_rate"] * 6 + ["exploratory"] * 3
    mine = [r for r in runs if r.get("tier") == "flow_rate"]
    assert all(r["spec"] == cfr_spec and r["horizon"] == 6.0 for r in mine)
    controls = sorted((r for r in mine if key[r["group"]] == "control"), key=lambda r: r["ic"]["seed"])
    assert [Path(r["ic"]["state"]).name for r in controls] == ["t0020.000.npz", "t0040.000.npz", "t0060.000.npz"]
    assert all(r["ic"]["options"] == {"bulk": 15.7} for r in controls)

    for r in runs:
        if r["kind"] == "ic" and r.get("tier") != "exploratory":
            s = _run_series(rng, r["horizon"])[1]
            _commit_run(camp, r["id"], r["horizon"], held(s) if r.get("tier") == "flow_rate" else s)
    res = camp_analysis.analyse(camp, results, json.loads((camp / "key.json").read_text()), figure=tmp_path / "fig.png")
    assert set(res["views"]) == {"force", "flow_rate"}
    v = res["views"]["flow_rate"]
    assert v["reference"] == "ref-cfr" and v["horizon"] == 6.0 and "bulk" not in v["signals"]
    assert v["k"] == cfr_stats["k"] and res["k"] == res["views"]["force"]["k"]
    assert len(res["ensembles"]) == 3 and all(not e["censored"] for e in res["ensembles"].values())
    assert (tmp_path / "fig.png").exists() and (tmp_path / "fig_flow_rate.png").exists()
    # the views' cases differ: the flow-rate trig is compared with nothing of the body force's
    assert res["comparisons"]["pairs"] == {}


def test_decisions_due_name_the_registrations_that_wait_for_a_person(tmp_path):
    """The sweep done without trig-turbulent registered, the flow-rate reference done without its
    tier: status names the command; once made (in key.json), or before the runs are done, it does not."""
    camp = _plan(tmp_path, dict(id="ref", kind="reference", horizon=1.0),
                 dict(id="s1", kind="sweep", horizon=1.0), dict(id="ref-cfr", kind="reference", horizon=1.0))
    (camp / "protocol.json").write_text(json.dumps({"flow_rate": {"reference": {"id": "ref-cfr"}}}))

    def finish(rid):
        (camp / rid).mkdir()
        (camp / rid / "run.json").write_text(json.dumps(dict(id=rid, t=1.0, iteration=0, chunks=[{}], wall_s=1, cpu_s=1)))

    finish("ref")
    assert camp_plan.decisions_due(camp) == []
    finish("s1")
    assert ["campaign select" in d for d in camp_plan.decisions_due(camp)] == [True]
    (camp / "key.json").write_text(json.dumps({"g1": {"ic": "trig-turbulent", "tier": "fair", "members": 8}}))
    assert camp_plan.decisions_due(camp) == []
    finish("ref-cfr")
    due = camp_plan.decisions_due(camp)
    assert len(due) == 2 and "register --tier flow_rate" in due[0] and "campaign analyse" in due[1]
    (camp / "key.json").write_text(json.dumps({"g1": {"ic": "trig-turbulent", "tier": "fair", "members": 8},
                                               "g2": {"ic": "trig", "tier": "flow_rate", "members": 8}}))
    assert camp_plan.decisions_due(camp) == ["every planned run is done: 'campaign analyse', then '--unblind'"]


def test_decisions_due_name_a_complete_tier_until_it_is_analysed(tmp_path):
    """Amendment 11: a tier whose runs are all done is analysed then; status says so until the
    unblinded result holds its groups."""
    camp = _plan(tmp_path, dict(id="a1", kind="ic", tier="confirmatory", group="ga", horizon=1.0),
                 dict(id="b1", kind="ic", tier="confirmatory", group="gb", horizon=1.0),
                 dict(id="c1", kind="ic", tier="fair", group="gc", horizon=1.0))
    (camp / "protocol.json").write_text("{}")
    onsets = tmp_path / "onsets.json"
    for rid in ("a1", "b1"):
        (camp / rid).mkdir()
        (camp / rid / "run.json").write_text(json.dumps(dict(id=rid, t=0.5, iteration=0, chunks=[{}], wall_s=1, cpu_s=1)))
    assert camp_plan.decisions_due(camp, onsets=onsets) == []
    (camp / "b1" / "run.json").write_text(json.dumps(dict(id="b1", t=1.0, iteration=0, chunks=[{}], wall_s=1, cpu_s=1)))
    assert camp_plan.decisions_due(camp, onsets=onsets) == []  # a1 still runs
    (camp / "a1" / "run.json").write_text(json.dumps(dict(id="a1", t=1.0, iteration=0, chunks=[{}], wall_s=1, cpu_s=1)))
    due = camp_plan.decisions_due(camp, onsets=onsets)
    assert len(due) == 1 and due[0].startswith("tier confirmatory is done: 'campaign analyse'")
    onsets.write_text(json.dumps({"ensembles": {"ga": {}}}))
    assert len(camp_plan.decisions_due(camp, onsets=onsets)) == 1  # gb not analysed yet
    onsets.write_text(json.dumps({"ensembles": {"ga": {}, "gb": {}}}))
    assert camp_plan.decisions_due(camp, onsets=onsets) == []


def test_decisions_due_name_the_flow_rate_view_s_verdict_study_until_it_exists(tmp_path, monkeypatch):
    """Amendment 21: the view's tier done and its verdict study not yet run: status names the
    study's registered command first, then the analysis."""
    camp = _plan(tmp_path, dict(id="f1", kind="ic", tier="flow_rate", group="gf", horizon=1.0),
                 dict(id="p1", kind="ic", tier="fair", group="gp", horizon=1.0))  # still pending
    study = dict(command="benchmarks/campaign_verdicts.py --view flow_rate", output="tmp/study.json")
    (camp / "protocol.json").write_text(json.dumps({"flow_rate": {"verdict_study": study}}))
    (camp / "f1").mkdir()
    (camp / "f1" / "run.json").write_text(json.dumps(dict(id="f1", t=1.0, iteration=0, chunks=[{}], wall_s=1, cpu_s=1)))
    onsets, root = tmp_path / "onsets.json", tmp_path / "root"
    (root / "tmp").mkdir(parents=True)
    monkeypatch.setattr(camp_plan, "ROOT", root)
    due = camp_plan.decisions_due(camp, onsets=onsets)
    assert len(due) == 2 and "first its verdict study (amendment 21: benchmarks/campaign_verdicts.py" in due[0]
    assert due[1].startswith("tier flow_rate is done: 'campaign analyse'")
    (camp / "p1").mkdir()  # every run done: the study still comes first
    (camp / "p1" / "run.json").write_text(json.dumps(dict(id="p1", t=1.0, iteration=0, chunks=[{}], wall_s=1, cpu_s=1)))
    due = camp_plan.decisions_due(camp, onsets=onsets)
    assert len(due) == 2 and "first its verdict study (amendment 21" in due[0] and due[1].startswith("every planned")
    (root / "tmp" / "study.json").write_text("{}")
    assert camp_plan.decisions_due(camp, onsets=onsets) == due[1:]


def test_decisions_due_name_a_complete_exploratory_ensemble_before_its_tier_is_done(tmp_path):
    """Amendment 19: an exploratory ensemble is analysed when its own runs are done, even while the
    tier's other ensembles (later in the plan) wait."""
    camp = _plan(tmp_path, dict(id="x1", kind="ic", tier="exploratory", group="gx", horizon=1.0),
                 dict(id="y1", kind="ic", tier="exploratory", group="gy", horizon=1.0))
    (camp / "protocol.json").write_text("{}")
    onsets = tmp_path / "onsets.json"
    (camp / "x1").mkdir()
    (camp / "x1" / "run.json").write_text(json.dumps(dict(id="x1", t=0.5, iteration=0, chunks=[{}], wall_s=1, cpu_s=1)))
    assert camp_plan.decisions_due(camp, onsets=onsets) == []
    (camp / "x1" / "run.json").write_text(json.dumps(dict(id="x1", t=1.0, iteration=0, chunks=[{}], wall_s=1, cpu_s=1)))
    assert camp_plan.decisions_due(camp, onsets=onsets) == [
        "exploratory ensemble gx is done: 'campaign analyse', then '--unblind' (amendment 19), and commit the results"]
    onsets.write_text(json.dumps({"ensembles": {"gx": {}}}))
    assert camp_plan.decisions_due(camp, onsets=onsets) == []


FAKE_WORKER = """
import json, os, socket, sys, time
from pathlib import Path
run = Path(sys.argv[1]) / f"r{os.getpid()}"  # a run of its own, as a worker skips runs others hold
run.mkdir(parents=True, exist_ok=True)
(run / "RUNNING").write_text(json.dumps(dict(pid=os.getpid(), host=socket.gethostname(), heartbeat=time.time(), t=0.0)))
while not (run / "STOP").exists():
    time.sleep(0.05)
(run / "RUNNING").unlink()
print("stopped", flush=True)
"""


def test_start_and_stop_workers(tmp_path):
    """``campaign start`` launches the missing workers detached, each logging to its own file;
    ``campaign stop`` stops the live ones through their STOP files, waits for them, and clears the
    files so the next start goes on."""
    import sys
    import time

    work = tmp_path / "runs" / "campaign"
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER)
    pids = camp_workers.start_workers(2, stagger=0.0, work=work, command=[sys.executable, str(script), str(work)])
    assert len(pids) == 2
    assert sorted(f.name for f in (tmp_path / "runs").glob("*.log")) == ["campaign-w1.log", "campaign-w2.log"]
    t0 = time.time()
    while len(list(work.glob("*/RUNNING"))) < 2 and time.time() - t0 < 20:
        time.sleep(0.05)
    assert camp_workers.live_workers(work) == {f"r{p}": p for p in pids}
    assert camp_workers.start_workers(2, stagger=0.0, work=work, command=[sys.executable, "-c", "pass"]) == []  # both run
    assert camp_workers.stop_workers(work=work, timeout=20.0, poll=0.05) == {f"r{p}": p for p in pids}
    assert not any(camp_plan.pid_alive(p) for p in pids)
    assert not list(work.glob("STOP")) and not list(work.glob("*/STOP"))
    assert all("stopped" in (tmp_path / "runs" / f"campaign-w{i}.log").read_text() for i in (1, 2))
    assert camp_workers.stop_workers(work=work, timeout=1.0) == {}  # nothing running: returns at once, nothing left behind
    assert not (work / "STOP").exists()


def test_rehearsal_runs_the_real_analysis_on_the_committed_reference(tmp_path):
    """``campaign analyse`` end to end on real records (benchmarks/campaign_rehearsal.py): ensembles
    of reference segments, two with a known U_b transient injected, judged blind and unblinded with
    the committed protocol and reference statistics. The segments end a record interval short of
    the horizon, as every IC run does (the analysis once refused them all)."""
    reh = load("campaign_rehearsal")
    stats = json.loads((ROOT / "benchmarks" / "results" / "reference.json").read_text())
    half = stats["k"]["8"] * stats["signals"]["bulk"]["sigma_window_mean"] / math.sqrt(8)
    res = reh.rehearse(ROOT / "benchmarks" / "results" / "reference.json", 20261206, half, tmp_path / "f.png")
    assert res["blind_groups_match"] and (tmp_path / "f.png").stat().st_size > 10_000
    on = res["onsets"]
    assert on["gan"]["onset_time"] == on["control"]["onset_time"] == 1.0  # the first full window
    for name in ("trig", "plug"):  # late, near where the injected offset enters the band
        assert not on[name]["censored"] and abs(on[name]["onset_time"] - on[name]["expected_entry"]) < 4.0
    assert on["trig"]["expected_entry"] > 10.0 and on["plug"]["onset_time"] > on["trig"]["onset_time"]
    assert set(res["comparisons"]) == {"gan vs trig", "gan vs plug", "gan vs control"}
    reh_seg = reh.segment({"t": np.arange(0.0, 10.0, 0.3), "step": np.arange(0.0, 10.0, 0.3) * 10},
                          {"t": np.arange(0.25, 10.0, 0.5), "y": np.zeros(2)}, 2.0, 5.0)
    assert reh_seg[0]["t"][0] == 0.0 and 5.0 - 0.3 < reh_seg[0]["t"][-1] <= 5.0 and reh_seg[0]["step"][0] == 0


def test_verdict_study_runs_both_methods(tmp_path):
    """benchmarks/campaign_verdicts.py on a minimal budget: every scenario gets a verdict per level,
    the registered resample constant is reproduced from the protocol's surrogate streams."""
    cv = load("campaign_verdicts")
    out = tmp_path / "v.json"
    assert cv.main(["--pairs", "1", "--resamples", "20", "--levels", "0.95", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    ref_stats = json.loads((ROOT / "benchmarks" / "results" / "reference.json").read_text())
    assert res["rule"] == "exit"
    assert res["levels"]["0.95"]["k_8_boot"] == pytest.approx(ref_stats["k_boot"]["8"], rel=1e-12)
    assert all(sum(c.values()) == 1 for c in res["levels"]["0.95"]["verdicts"].values())
    assert res["truth_onset"]["s0"] == 1.0 and res["truth_onset"]["s3"] > res["truth_onset"]["s1"] > 5.0
    assert cv.main(["--per-run", "--pairs", "1", "--out", str(out)]) == 0
    assert len(json.loads(out.read_text())["verdicts"]) == len(cv.SCENARIOS)


def test_analysis_refuses_finished_runs_with_problems_only(tmp_path):
    """Amendment 16's check where ``analyse`` reads: a finished run whose chunk is gone stops it; a
    run still under way (not read) with the same fault does not (``campaign status`` names it)."""
    reh = load("campaign_rehearsal")
    camp = tmp_path / "c"
    key = reh.build(camp, groups={"x": (0.0, 8.0)}, record=camp_records.read_chunks(camp_plan.CAMPAIGN, "ref"))
    reference = ROOT / "benchmarks" / "results" / "reference.json"
    plan = json.loads((camp / "plan.json").read_text())
    first = next(r for r in plan["runs"] if r["kind"] == "ic")
    paused = dict(first, id="xpaused")
    plan["runs"].append(paused)
    (camp / "plan.json").write_text(json.dumps(plan))
    (camp / "xpaused").mkdir()
    (camp / "xpaused" / "run.json").write_text(json.dumps(dict(id="xpaused", t=4.0, iteration=0, wall_s=1.0, cpu_s=1.0,
        chunks=[dict(index=0, t0=0.0, t1=4.0, records=10)])))  # its chunk file never arrived
    assert camp_records.committed_problems(camp, tmp_path / "w", camp_plan.progresses(camp)) == [
        "xpaused: chunk files missing: chunk_000.npz"]
    assert set(camp_analysis.analyse(camp, reference, None)["per_run"]) >= {first["id"]}  # judged, not refused
    (camp / first["id"] / "chunk_000.npz").unlink()
    with pytest.raises(SystemExit, match=f"{first['id']}: chunk files missing: chunk_000.npz"):
        camp_analysis.analyse(camp, reference, key)


def test_sweep_scores_on_real_records_pick_the_smallest_transient(tmp_path):
    """``campaign select``'s scores on the committed reference's own 16 h/u_tau segments (ending a
    record interval short of the horizon, as real runs do), with U_b transients of growing size
    injected in the registered amplitudes' order on one segment: the smallest transient scores lowest."""
    reh = load("campaign_rehearsal")
    camp = tmp_path / "c"
    series, prof = camp_records.read_chunks(camp_plan.CAMPAIGN, "ref")
    reh.build(camp, groups={"x": (0.0, 8.0)}, record=(series, prof))  # protocol, reference, a plan to extend
    protocol = json.loads((camp / "protocol.json").read_text())
    ref = camp_plan.read_plan(camp)[0]
    plan = [ref]
    for i, (amp, offset) in enumerate(zip(protocol["trig_sweep"]["amplitudes"], (-0.3, -1.0, -2.0, -4.0))):
        s, _ = reh.segment(series, prof, 60.0, 16.0)
        s["bulk"] = s["bulk"] + offset * np.exp(-s["t"] / 4.0)
        rid = f"s{i}"
        plan.append({"id": rid, "kind": "sweep", "tier": "sweep", "group": "gs", "horizon": 16.0, "spec": ref["spec"],
                     "ic": {"source": "trig", "options": {"amplitude": amp}, "seed": 201}})
        _commit_run(camp, rid, 16.0, s)
        assert s["t"][-1] < 16.0
    (camp / "plan.json").write_text(json.dumps({"runs": plan}))
    res = camp_analysis.sweep_scores(camp)
    scores = [res["per_run"][f"s{i}"]["score"] for i in range(4)]
    assert res["chosen"] == protocol["trig_sweep"]["amplitudes"][0] and scores == sorted(scores)


def test_resample_rules_bracket_each_other(cr):
    """On the same resamples: the last exit from the wide band k^boot (amendment 4) <= enter the
    ensemble's band k, then stay within k^boot (amendment 14) <= the last exit from k."""
    protocol = dict(cr.read_protocol(ROOT / "benchmarks" / "campaign"), horizon=8.0, min_steady=2.0, bootstrap=60)
    run = dict(id="ref", kind="reference", horizon=120.0, discard=20.0, spec=dict(lengths=[3.14, 2.0, 1.57]))
    rng = np.random.default_rng(17)
    ref = cr.reference(protocol, run, _run_series(rng, 120.0)[1])
    members = []
    for _ in range(4):
        t, s = _run_series(rng, 8.0, offset=lambda t: 0.6 * np.exp(-t / 1.5))
        members.append((t, cr.signals(s, protocol["signals"], 1.0)))
    ens, k, kb = cr.Ensemble(members), 3.0, 4.5

    def boot(rule, k_boot):
        j = cr.judge(ens, ref, k, k_boot, dict(protocol, resample_rule=rule), np.random.default_rng(3))
        return np.where(j.censored, np.inf, j.boot["time"]), j

    wide, _ = boot("exit", kb)
    narrow, _ = boot("exit", k)
    stay, j = boot("enter-stay", kb)
    assert np.all(wide <= stay) and np.all(stay <= narrow)
    assert np.any(wide < stay) and np.any(stay < narrow)  # the three rules differ on these resamples
    assert j.onset.onset_time == boot("exit", kb)[1].onset.onset_time  # the point keeps the registered rule
    with pytest.raises(ValueError, match="resample_rule"):
        cr.judge(ens, ref, k, kb, dict(protocol, resample_rule="first-entry"), np.random.default_rng(3))


def _held_stand_in(tmp_path: Path) -> tuple[Path, Path]:
    """The committed campaign with its flow-rate reference's record stood in for by the body-force
    reference's (``ref-cfr`` has no chunks yet), and a results folder whose ``reference_ref-cfr.json``
    is the body force's statistics."""
    camp, results = tmp_path / "c", tmp_path / "r"
    camp.mkdir()
    results.mkdir()
    src = ROOT / "benchmarks" / "campaign"
    for f in src.iterdir():
        if f.name != "ref-cfr":
            (camp / f.name).symlink_to(f.resolve())
    (camp / "ref-cfr").mkdir()
    for f in (src / "ref").iterdir():
        if f.name.startswith("chunk_") or f.name == "run.json":
            (camp / "ref-cfr" / f.name).symlink_to(f.resolve())
    for name in ("reference.json", "reference_ref-cfr.json"):
        shutil.copy(ROOT / "benchmarks" / "results" / "reference.json", results / name)
    return camp, results


def test_held_template_is_trig_s_transient_less_its_bulk_part_cut_at_its_onset(tmp_path, cr):
    """Amendment 21's template: the confirmatory trig members on the view's signals, less beta times
    their U_b excess, less the reference mean; zero from the onset the rule gives those members."""
    cv = load("campaign_verdicts")
    camp, _ = _held_stand_in(tmp_path)
    protocol = cr.read_protocol(camp)
    run, series, _ = camp_analysis.reference_run(camp)
    force = cr.reference(protocol, run, series)
    view = cr.view(protocol, "flow_rate")
    k8 = json.loads((ROOT / "benchmarks" / "results" / "reference.json").read_text())["k"]["8"]
    template, built = cv.held_template(camp, force, view, k8)
    grid = force.dt * np.arange(template.shape[1])
    assert template.shape == (len(view["signals"]), int(round(view["horizon"] / force.dt)) + 1)
    assert built["members"] == 8 and built["cut"] is not None and 2.0 < built["cut"] < view["horizon"]
    assert np.all(template[:, grid >= built["cut"]] == 0) and np.any(template[:, grid < built["cut"]] != 0)
    key = json.loads((camp / "key.json").read_text())
    assert key[built["group"]] == dict(key[built["group"]], ic="trig", tier="confirmatory")
    # t = 0 by hand: every trig member starts at the same state, U_b 15.7
    members = [camp_records.read_chunks(camp, r["id"])[0] for r in camp_plan.read_plan(camp)
               if r.get("group") == built["group"]]
    b, j = force.signals.index("bulk"), force.signals.index("probe_u")
    expect = np.mean([m["probe_u"][0] - built["beta"]["probe_u"] * (m["bulk"][0] - force.mean[b]) for m in members])
    assert template[view["signals"].index("probe_u"), 0] == pytest.approx(expect - force.mean[j], rel=1e-9)
    assert built["beta"]["probe_u"] > 0.5  # the centre probe follows U_b under the body force
    with pytest.raises(SystemExit, match="ends before the view's horizon 40"):
        cv.held_template(camp, force, dict(view, horizon=40.0), k8)  # the trig runs stop at 32


def test_held_verdict_study_judges_its_own_scenarios_on_its_reference(tmp_path, cr):
    """``campaign_verdicts.py --view flow_rate`` on a minimal budget (the stand-in reference): the
    view's scenarios only, its template recorded, the power statement of its trig target found."""
    cv = load("campaign_verdicts")
    camp, results = _held_stand_in(tmp_path)
    out = tmp_path / "v.json"
    args = ["--view", "flow_rate", "--campaign", str(camp), "--results", str(results),
            "--pairs", "1", "--resamples", "20", "--levels", "0.95", "--out", str(out)]
    assert cv.main(args) == 0
    res = json.loads(out.read_text())
    assert res["view"] == "flow_rate" and res["reference"] == "ref-cfr" and res["template"]["cut"] > 2.0
    assert list(res["levels"]["0.95"]["verdicts"]) == ([cr.scenario_key(*sc) for sc in cv.HELD_SCENARIOS]
                                                        + [cr.control_key(*sc) for sc in cv.HELD_CONTROLS])
    assert set(res["truth_onset"]) == {n for sc in cv.HELD_SCENARIOS + cv.HELD_CONTROLS for n in sc[:2]}
    assert res["truth_onset"]["s0"] == 1.0 and res["truth_onset"]["s1"] > 2.0
    assert res["true_difference"]["s0 vs s0"] == 0.0 and res["true_difference"]["s0.2 vs s0"] > 1.0
    assert "--view flow_rate" in res["reproduce"]
    power = cr.verdict_power(res, "exit", "0.95")
    assert set(power) == {"trig", "control"} and power["control"]["pairs"] == 1  # no plug in this view
    stats = json.loads((results / "reference_ref-cfr.json").read_text())
    (results / "reference_ref-cfr.json").write_text(json.dumps(dict(stats, complete=False)))
    with pytest.raises(SystemExit, match="campaign reference --run ref-cfr"):
        cv.main(args)
    with pytest.raises(SystemExit, match="body-force view only"):
        cv.main(["--view", "flow_rate", "--per-run"])


def test_verdict_power_is_stated_beside_its_own_view_s_verdicts(cr):
    """Each view's power statement (amendment 13: body force, 21: held flow rate) beside the
    verdicts of that view only."""
    def pair(driving):
        return {"a": "gan", "b": "trig", "difference": {}, "reduction": {},
                "target": {"target": ">= 50 %", "verdict": "undecided", "range95": [0.1, 0.9],
                           "baseline_ic": "trig", "driving": driving}}

    power = {"met_share": 0.25, "pairs": 400, "resamples": 1000}
    comp = {"pairs": {"gan (confirmatory) vs trig": pair("force"), "gan (flow_rate) vs trig": pair("flow_rate")},
            "not_compared": {}, "verdict_power": {"flow_rate": {"trig": power}}}
    text = "\n".join(cr.format_comparisons(comp))
    assert text.count("(power, amendment 21: this procedure called a perfect IC's reduction 'met' in 25% of 400") == 1
    assert "amendments 13 and 15" not in text
    comp["verdict_power"]["force"] = {"trig": dict(power, met_share=0.035)}
    assert "(power, amendments 13 and 15: this procedure called a perfect IC's reduction 'met' in 4% of 400" in \
        "\n".join(cr.format_comparisons(comp))
    comp["pairs"]["gan (flow_rate) vs control"] = dict(pair("flow_rate"), b="control")
    comp["pairs"]["gan (flow_rate) vs control"]["target"]["baseline_ic"] = "control"
    comp["verdict_power"]["flow_rate"]["control"] = dict(power, met_share=0.02)
    text = "\n".join(cr.format_comparisons(comp))
    assert "(power, amendment 21: this procedure called a perfect IC's onset against perfect controls 'met' in 2%" in text


def test_decision_between_two_studies_follows_the_registered_conditions(tmp_path):
    """Amendment 15's decision: false "met" below a target, coverage against the registered
    procedure on the same ensembles, power for a perfect IC; studies of other ensembles refused."""
    cv = load("campaign_verdicts")
    truth = {"s0": 1.0, "s0.2": 2.5, "s0.3": 5.5, "s0.4": 6.7, "s0.5": 7.5, "s1": 13.1, "s2": 22.1, "s3": 25.4}
    tr = {f"{g} vs {b}": 1 - truth[g] / truth[b] for g, b, _ in cv.SCENARIOS}

    def study(rule, level, met, cover, streams=5000):
        verdicts = {f"{g} vs {b} (>= {t:g})": {"met": met.get(g + " vs " + b, 0), "undecided": 100 - met.get(g + " vs " + b, 0)}
                    for g, b, t in cv.SCENARIOS}
        return {"rule": rule, "pairs": 100, "resamples": 1000, "streams": streams, "truth_onset": truth,
                "true_reduction": tr, "levels": {level: {"verdicts": verdicts,
                                                          "onset_interval_coverage": {n: cover for n in truth}}}}

    reg = study("exit", "0.95", {"s0 vs s1": 2}, 0.95)
    good = study("enter-stay", "0.99", {"s0 vs s1": 70, "s0 vs s3": 65, "s0.4 vs s1": 5}, 0.94)
    assert cv.decide(reg, good)["adopt"]
    assert not cv.decide(reg, study("enter-stay", "0.99", {"s0 vs s1": 70, "s0 vs s3": 65, "s0.4 vs s1": 6}, 0.94))["adopt"]
    assert not cv.decide(reg, study("enter-stay", "0.99", {"s0 vs s1": 70, "s0 vs s3": 65}, 0.92))["adopt"]  # coverage
    assert not cv.decide(reg, study("enter-stay", "0.99", {"s0 vs s1": 70, "s0 vs s3": 40}, 0.95))["adopt"]  # power
    with pytest.raises(SystemExit, match="same ensembles"):
        cv.decide(reg, study("enter-stay", "0.99", {}, 0.95, streams=100))
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(reg))
    b.write_text(json.dumps(good))
    assert cv.main(["--decide", str(a), str(b), "--out", str(tmp_path / "d.json")]) == 0
    assert json.loads((tmp_path / "d.json").read_text())["adopt"]


def test_a_verdict_s_open_sides_print_as_minus_and_plus_infinity():
    """The printed 95 % range of a target: an open lower side is -inf, an open upper side inf."""
    q = {"text": "x"}
    pair = {"difference": {"time": q}, "reduction": {"time": q}, "a": "gan", "b": "control",
            "target": {"target": "t", "verdict": "undecided", "range95": [None, 25.3]}}
    report = part("campaign_report")
    lines = report.format_comparisons({"pairs": {"gan vs control": pair}, "not_compared": {}})
    assert "(95 % range [-inf, 25.3])" in lines[-1]
    pair["target"]["range95"] = [1.0, None]
    assert "(95 % range [1, inf])" in report.format_comparisons({"pairs": {"p": pair}, "not_compared": {}})[-1]


def test_relaxation_predicts_an_offset_s_decay_and_reads_only_unblinded_ensembles(tmp_path):
    """campaign_relaxation on a synthetic campaign: the reference's AR(1) autocorrelation (2 h/u_tau)
    is found; an ensemble started 0.3 above the mean that relaxes as the mode does is predicted, early
    and late, within its noise, one held 0.3 above throughout is not; a group the unblinded analysis
    has not judged, and a flow-rate group, are not read (their runs have no files)."""
    relax = load("campaign_relaxation")
    rng = np.random.default_rng(11)
    camp = _synthetic_campaign(tmp_path, {})
    _commit_run(camp, "ref", 120.0, _run_series(rng, 120.0)[1])
    runs = [json.loads((camp / "plan.json").read_text())["runs"][0]]
    for group, offset in (("ga", lambda t: 0.3 * np.exp(-t / 2.0)), ("gb", 0.3)):
        for m in range(8):
            runs.append(dict(id=f"r{group}{m}", kind="ic", tier="confirmatory", group=group, horizon=32.0))
            _commit_run(camp, f"r{group}{m}", 32.0, _run_series(rng, 32.0, offset)[1])  # about the reference's 15.7
    runs += [dict(id="rgc0", kind="ic", tier="confirmatory", group="gc", horizon=32.0),
             dict(id="rgd0", kind="ic", tier="flow_rate", group="gd", horizon=20.0)]  # no files: reading fails
    (camp / "plan.json").write_text(json.dumps({"runs": runs}))
    onsets = tmp_path / "named.json"
    onsets.write_text(json.dumps({"named": {"relaxing": {"group": "ga"}, "held": {"group": "gb"},
                                            "held flow": {"group": "gd"}}}))
    res = relax.relaxation(camp, onsets)
    assert set(res["ensembles"]) == {"relaxing", "held"}
    assert res["reference"]["rho"]["2"] == pytest.approx(math.exp(-1.0), abs=0.15)
    errors = res["reference"]["mean_errors"]  # AR(1), sigma 0.1, T 2, 100 h/u_tau: 0.1 sqrt(4 / 100) = 0.02
    assert set(errors) == {"batch 20", "batch 25", "batch 40", "batch 50", "integral time"}
    assert all(0.005 < v < 0.06 for v in errors.values())
    relaxing = {tuple(w["window"]): w for w in res["ensembles"]["relaxing"]["windows"]}
    held = {tuple(w["window"]): w for w in res["ensembles"]["held"]["windows"]}
    start = res["ensembles"]["relaxing"]["start_offset"]
    assert start == pytest.approx(0.3, abs=0.12)
    expected = start * np.mean(np.exp(-np.arange(1.0, 4.0, 0.05) / 2.0))  # the mode's own decay over t = 1-4
    assert relaxing[(1.0, 4.0)]["predicted"] == pytest.approx(expected, abs=0.03)
    assert all(abs(w["z_range"][0]) < 3 and abs(w["z_range"][1]) < 3 for w in relaxing.values())
    assert abs(relaxing[(16.0, 32.0)]["predicted"]) < 0.01
    assert held[(16.0, 32.0)]["observed"] == pytest.approx(0.3, abs=0.1) and held[(16.0, 32.0)]["z_range"][0] > 3
