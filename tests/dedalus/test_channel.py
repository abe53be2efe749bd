"""Dedalus channel adapter (run by tests/test_dedalus.py under `mpiexec -n 2` in .venv-dedalus).

Every rank runs the same tests on MPI.COMM_WORLD; temporary directories come from rank 0.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from cfdseed.constraints import Tolerances, check_field
from cfdseed.slices import open_dataset
from cfdseed.errors import CheckpointError, ConfigError, ConstraintError, DatasetError
from cfdseed.grid import check_tiling
from cfdseed.solvers.dedalus import ChannelSpec, DedalusChannel, gauss_weights
from cfdseed.solvers.runner import (STOP_FILE, RunSettings, build_dataset, drive, read_profiles, states_dataset,
                                    read_segments, read_timeseries)
from cfdseed.sources import resolve

comm = MPI.COMM_WORLD
SPEC = ChannelSpec(shape=(8, 16, 8), lengths=(math.pi, 2.0, math.pi / 2), re_tau=180.0,
                   cfl_safety=0.2, max_step=1e-3, initial_step=1e-3)
ANALYTIC = dict(bulk=15.0, amplitude=0.1)
# The adapter's grid carries the spectral operators, so a seeded field is solenoidal in Dedalus'
# own sense; after steps the first-order tau formulation leaves a top-mode divergence residual
# (the lifted tau term) and the solver's own dynamics (d<vw>/dy) give the state a small, physical
# mean W.
SPECTRAL_TOL = Tolerances(divergence_max=0.05, divergence_rms=0.02, cross_flow=1e-3)


def _dedalus_divergence_and_walls(channel):
    """Max |div u| and max |u| on the walls by Dedalus' own operators (every rank)."""
    d3 = channel._d3
    div = d3.div(channel.u).evaluate()
    div.change_scales(1)
    lo = channel.u(y=0).evaluate()
    hi = channel.u(y=SPEC.lengths[1]).evaluate()
    vals = [float(np.abs(f["g"]).max()) if f["g"].size else 0.0 for f in (div, lo, hi)]
    return comm.allreduce(vals[0], op=MPI.MAX), comm.allreduce(max(vals[1:]), op=MPI.MAX)


@pytest.fixture(scope="module")
def channel():
    return DedalusChannel(SPEC, comm)


@pytest.fixture
def shared_tmp():
    name = tempfile.mkdtemp(prefix="cfdseed-dedalus-") if comm.rank == 0 else None
    return Path(comm.bcast(name, root=0))


def test_grid_matches_dedalus_local_coordinates(channel):
    g = channel.grid
    x, z, y = channel.local_coordinates()
    assert g.shape == SPEC.shape and g.lengths == SPEC.lengths
    np.testing.assert_allclose(g.x[g.local[0]], x, atol=1e-14)
    np.testing.assert_allclose(g.z[g.local[2]], z, atol=1e-14)
    np.testing.assert_allclose(g.y, y, atol=1e-14)  # Dedalus' Chebyshev grid increases in y
    assert g.cell_centred and np.all(np.diff(g.y) > 0)
    views = channel.velocity_views()
    assert all(v.shape == (x.size, z.size, y.size) for v in views)
    blocks = comm.allgather([(s.start, s.stop) for s in g.local])
    check_tiling(blocks, g.shape)
    assert comm.size == 1 or g.local_size < g.size  # really distributed (Dedalus splits z here)


def test_gauss_weights_integrate_polynomials():
    w = gauss_weights(16, 2.0)
    y = np.polynomial.chebyshev.chebpts1(16) + 1.0
    np.testing.assert_allclose(w @ np.ones(16), 2.0, rtol=1e-13)
    np.testing.assert_allclose(w @ (y * (2 - y)), 4.0 / 3.0, rtol=1e-13)


def test_seed_writes_source_into_state_then_steps_stay_finite_and_checked(channel):
    report = channel.seed("analytic", options=ANALYTIC, seed=3)
    assert report.passed, str(report)
    g = channel.grid
    ref = resolve("analytic", ANALYTIC)(g.global_grid(), np.random.default_rng(3))  # (3, nx, ny, nz)
    state = channel.u["g"]  # (3, lnx, lnz, ny) components (x, z, y)
    block = ref[:, g.local[0], :, g.local[2]]  # (3, lnx, ny, lnz)
    for comp, dcomp in ((0, 0), (1, 2), (2, 1)):
        np.testing.assert_allclose(state[dcomp], np.transpose(block[comp], (0, 2, 1)), atol=1e-12)
    assert report.operators == "spectral"
    div0, wall0 = _dedalus_divergence_and_walls(channel)
    assert div0 < 1e-11 * 15.0 / SPEC.h and wall0 < 1e-12 * 15.0  # solenoidal and no-slip for Dedalus
    d0 = channel.diagnostics()
    assert d0.bulk == pytest.approx(15.0, rel=1e-12)  # the interpolant's integral is Dedalus' integ
    for _ in range(10):
        channel.step()
    d = channel.diagnostics()
    assert all(math.isfinite(v) for v in d.row().values())
    assert channel.iteration == 10 and d.t > 0
    assert d.bulk == pytest.approx(d0.bulk, rel=0.05)
    after = check_field(comm, g, channel.velocity_views(), axes="xzy", tolerances=SPECTRAL_TOL)
    assert after.passed, str(after)
    # first-order tau formulation: div u equals minus the lifted tau term (a top-mode residual),
    # small but not round-off on 16 Chebyshev modes; an unconstrained flow gives O(U_b / h)
    assert _dedalus_divergence_and_walls(channel)[0] < 0.02 * d.bulk / SPEC.h


@pytest.mark.parametrize("source, options", [("gan", {"re_tau": 180}), ("plug", {"bulk": 15.7})])
def test_enforced_sources_are_solenoidal_and_no_slip_in_dedalus_own_operators(channel, source, options):
    """The enforcement under the spectral operators gives Dedalus a field it sees as divergence-free
    with zero wall values, to round-off (the 2nd-order projection left O(1 %) divergence)."""
    report = channel.seed(source, options=options, seed=11)
    assert report.passed and report.operators == "spectral", str(report)
    div, wall = _dedalus_divergence_and_walls(channel)
    ub = channel.diagnostics().bulk
    assert div < 1e-10 * ub / SPEC.h and wall < 1e-12 * ub


def test_checkpoint_restores_state_exactly(channel, shared_tmp):
    channel.seed("analytic", options=ANALYTIC, seed=5)
    channel.step()
    ck = channel.save_checkpoint(shared_tmp / "ck")
    assert channel.latest_checkpoint(shared_tmp / "ck") == ck
    saved = np.array(channel.u["c"])
    t, it = channel.sim_time, channel.iteration
    channel.step()
    channel.step()
    meta = channel.load_checkpoint(ck)
    assert meta["iteration"] == it and channel.sim_time == t
    np.testing.assert_array_equal(channel.u["c"], saved)
    other = DedalusChannel(dataclasses.replace(SPEC, shape=(8, 16, 12)), comm)
    with pytest.raises(CheckpointError, match=r"shape \(8, 16, 8\) != \(8, 16, 12\); .*snapshot source"):
        other.load_checkpoint(ck)
    for change, what in ((dict(lengths=(2 * math.pi, 2.0, math.pi / 2)), "box"), (dict(re_tau=395.0), "re_tau"),
                         (dict(driving="flow_rate"), "driving"),  # other physics: load_state's job
                         (dict(dealias=1.0), r"dealias 1\.5 != 1\.0")):  # another nonlinear term: loaded silently
        with pytest.raises(CheckpointError, match=what):
            DedalusChannel(dataclasses.replace(SPEC, **change), comm).load_checkpoint(ck)
    # another rank count: the error says how to move the run (a compact state)
    if comm.rank == 0:
        meta_path = ck / "meta.json"
        meta_path.write_text(meta_path.read_text().replace(f'"nranks": {comm.size}', f'"nranks": {comm.size + 1}'))
    comm.Barrier()
    with pytest.raises(CheckpointError, match=rf"written by {comm.size + 1} ranks, running on {comm.size}; .*"
                                              r"save_state.*--save-state FILE.*--state FILE"):
        channel.load_checkpoint(ck)


def _fixed_steps(channel, n, dt=1e-3):
    for _ in range(n):
        channel.solver.step(dt)


def test_overwriting_a_stepped_state_steps_as_a_new_channel_would(channel, shared_tmp):
    """seed, perturb and the loaders restart SBDF2's history: the next steps are those of a new
    channel from the same state (they mixed the old state's right-hand sides in: a re-seed at
    U_b 10 after steps at 15 stepped to 8.33)."""
    def velocity(ch):
        return comm.allreduce(float(np.abs(np.stack(ch.velocity_views())).max()), op=MPI.MAX), \
            np.stack(ch.velocity_views()).copy()

    channel.seed("analytic", options=ANALYTIC, seed=7)
    _fixed_steps(channel, 5)
    channel.seed("analytic", options=dict(ANALYTIC, bulk=10.0), seed=8)
    assert channel.timestep == channel.cfl.stored_dt == SPEC.initial_step  # as a new channel's first step
    _fixed_steps(channel, 2)
    fresh = DedalusChannel(SPEC, comm)
    fresh.seed("analytic", options=dict(ANALYTIC, bulk=10.0), seed=8)
    _fixed_steps(fresh, 2)
    scale, a = velocity(channel)
    _, b = velocity(fresh)
    assert comm.allreduce(float(np.abs(a - b).max()), op=MPI.MAX) < 1e-10 * scale
    assert fresh.diagnostics().bulk == pytest.approx(channel.diagnostics().bulk, rel=1e-12)

    channel.save_state(shared_tmp / "s.npz")
    fresh.load_state(shared_tmp / "s.npz")  # a channel that has stepped takes the state: as a new one
    new = DedalusChannel(SPEC, comm)
    new.load_state(shared_tmp / "s.npz")
    for ch in (fresh, new):
        ch.perturb("analytic", options=ANALYTIC, seed=9)
        _fixed_steps(ch, 3)
    assert comm.allreduce(float(np.abs(velocity(fresh)[1] - velocity(new)[1]).max()), op=MPI.MAX) < 1e-10 * scale


def test_run_outputs_round_trip_and_restart(shared_tmp):
    ch = DedalusChannel(SPEC, comm)
    out = shared_tmp / "run"
    planes = (0, 3, 6)
    settings = RunSettings(duration=6e-3, series_every=2, slices_every=2, slice_x=planes,
                           slices_per_file=2, checkpoint_every=4, source="dedalus:analytic",
                           provenance=dict(solver="dedalus"))
    drive(ch, out, settings, restart=False, seed_fn=lambda: ch.seed("analytic", options=ANALYTIC, seed=1))
    last = ch.slices(list(planes))  # (3, 3, ny, nz) on rank 0, the state recorded last
    t_last = ch.sim_time
    if comm.rank == 0:
        files = sorted((out / "seg000").glob("slices_*.h5"))
        assert len(files) >= 2
        with open_dataset(files[-1]) as ds:
            m = np.nonzero(ds.t == t_last)[0]
            assert m.size == len(planes)
            np.testing.assert_allclose(ds.read(m), last.astype(np.float32))
            np.testing.assert_allclose(ds.x[m], ch.grid.x[list(planes)])
            np.testing.assert_allclose(ds.y, ch.grid.y)
            assert ds.attrs["solver"] == "dedalus" and ds.re_tau == 180.0
    comm.Barrier()
    ch2 = DedalusChannel(SPEC, comm)
    with pytest.raises(ConfigError, match="already holds checkpoints"):  # rank 0 decides, every rank raises
        drive(ch2, out, settings, restart=False)
    with pytest.raises(ConfigError, match="no complete checkpoint"):
        drive(ch2, shared_tmp / "empty", settings, restart=True)
    drive(ch2, out, dataclasses.replace(settings, duration=4e-3), restart=True)
    assert ch2.sim_time > t_last
    if comm.rank == 0:
        segs = read_segments(out)
        assert [s["index"] for s in segs] == [0, 1] and segs[1]["start_time"] == pytest.approx(t_last)
        ts = read_timeseries(out)
        assert np.all(np.diff(ts["t"]) > 0) and ts["t"][-1] == pytest.approx(ch2.sim_time)
        t, y, prof = read_profiles(out)
        assert t.size == ts["t"].size and prof["U"].shape == (t.size, SPEC.shape[1])
        res = build_dataset(out, out / "data", t_start=0.0, val_fraction=0.3, gap=0.0)
        with open_dataset(out / "data" / "train.h5") as tr, open_dataset(out / "data" / "val.h5") as va:
            assert len(tr) == res["counts"]["train"] and len(va) == res["counts"]["val"]
            assert tr.t.max() < va.t.min()
        one = build_dataset(out, out / "one", t_start=0.0, val_fraction=0.0)
        with open_dataset(out / "one" / "all.h5") as al:  # one file, every slice: the trainer splits
            assert len(al) == one["counts"]["all"] == res["counts"]["train"] + res["counts"]["val"]
            assert one["t_val"] is None and al.t.min() == pytest.approx(res["spans"]["train"][0])
    comm.Barrier()


def test_auto_restart_with_until_is_one_command_for_a_requeued_job(shared_tmp):
    """restart="auto" + until: the first call seeds and runs to the end time (kicked once), the
    requeued call finds the run there and returns without a segment, a later end continues it
    (no second kick); one of duration/until is required."""
    out = shared_tmp / "auto"
    kicks = []
    seed = lambda ch: (lambda: ch.seed("analytic", options=ANALYTIC, seed=3))  # noqa: E731
    kick = lambda: kicks.append(1)  # noqa: E731 - counts the after_start calls
    ch = DedalusChannel(SPEC, comm)
    first = drive(ch, out, RunSettings(until=3e-3, series_every=2), restart="auto", seed_fn=seed(ch),
                  after_start=kick)
    assert first["stopped"] == "duration" and first["steps"] > 0 and ch.sim_time >= 3e-3 and len(kicks) == 1
    ch2 = DedalusChannel(SPEC, comm)
    again = drive(ch2, out, RunSettings(until=3e-3, series_every=2), restart="auto", seed_fn=seed(ch2),
                  after_start=kick)
    assert again["stopped"] == "until" and again["steps"] == 0 and ch2.sim_time == pytest.approx(ch.sim_time)
    later = drive(ch2, out, RunSettings(until=6e-3, series_every=2), restart="auto", after_start=kick)
    assert later["stopped"] == "duration" and later["steps"] > 0 and ch2.sim_time >= 6e-3 and len(kicks) == 1
    if comm.rank == 0:
        assert [s["start_time"] > 0 for s in read_segments(out)] == [False, True]  # no segment for the no-op
    for bad in (dict(), dict(duration=1.0, until=2.0), dict(until=-1.0)):
        with pytest.raises(ConfigError, match="duration"):
            RunSettings(**bad)
    with pytest.raises(ConfigError, match="must be True, False or 'auto'"):
        drive(ch2, out, RunSettings(until=1.0), restart="yes")
    comm.Barrier()


def test_stop_file_ends_segment_gracefully(channel, shared_tmp):
    out = shared_tmp / "stopped"

    def seed_then_request_stop():
        channel.seed("analytic", options=ANALYTIC, seed=2)
        if comm.rank == 0:
            (out / STOP_FILE).touch()

    if comm.rank == 0:
        out.mkdir(parents=True)
    comm.Barrier()
    summary = drive(channel, out, RunSettings(duration=1.0, series_every=1), restart=False,
                    seed_fn=seed_then_request_stop)
    assert summary["steps"] == 0
    assert channel.latest_checkpoint(out / "checkpoints") is not None


def test_perturb_adds_fluctuations_and_keeps_the_mean_flow(channel):
    channel.seed("analytic", options=dict(bulk=15.0, amplitude=0.0), seed=4)
    before = channel.diagnostics()
    rms = channel.perturb("analytic", options=dict(bulk=15.0, amplitude=0.2), seed=7)
    after = channel.diagnostics()
    assert rms > 0.1
    np.testing.assert_allclose(after.profiles["U"], before.profiles["U"], atol=1e-10)
    assert after.tke > before.tke + 0.1 * rms**2


def test_seeds_take_the_channel_s_units_unless_the_options_give_their_own(shared_tmp):
    """At Re_tau 395 a source gets the channel's re_tau and nu (u_tau = 1), so its default bulk
    velocity is Reichardt's at 395; given units, a file source or units="source" keep their own;
    under flow-rate driving the target bulk velocity is the channel's."""
    from cfdseed.units import reichardt_bulk

    ch = DedalusChannel(dataclasses.replace(SPEC, re_tau=395.0), comm)
    assert ch.source_options("trig", {}) == {"re_tau": 395.0, "nu": 1.0 / 395.0}
    assert ch.source_options("trig", {"u_tau": 2.0}) == {"u_tau": 2.0}
    assert ch.source_options("snapshot", {"path": "f.h5"}) == {"path": "f.h5"}
    assert ch.source_options("trig", {}, units="source") == {}
    with pytest.raises(ValueError, match="units must be 'solver' or 'source'"):
        ch.source_options("trig", {}, units="wall")
    ch.seed("trig", options={"noise": 0.0}, seed=1)
    assert ch.diagnostics().bulk == pytest.approx(reichardt_bulk(395.0), rel=5e-3)  # 17.63, not 15.52
    ch.seed("trig", options={"noise": 0.0}, seed=1, units="source")
    assert ch.diagnostics().bulk == pytest.approx(reichardt_bulk(180.0), rel=5e-3)
    rate = DedalusChannel(dataclasses.replace(SPEC, driving="flow_rate", bulk=14.0), comm)
    assert rate.source_options("plug", {})["bulk"] == 14.0
    assert rate.source_options("plug", {"bulk": 15.0})["bulk"] == 15.0


def test_monitor_ends_segment_and_its_errors_stop_every_rank(channel, shared_tmp):
    seen = []

    def after_three(d, wall):
        seen.append((d.t, wall))
        return len(seen) >= 3

    it0 = channel.iteration  # the fixture's channel carries on from earlier tests; seeding keeps it
    summary = drive(channel, shared_tmp / "monitored", RunSettings(duration=1.0, series_every=2), restart=False,
                    seed_fn=lambda: channel.seed("analytic", options=ANALYTIC, seed=3), monitor=after_three)
    # records at even iterations: the third comes 4 steps in from an even start, 5 from an odd one
    assert summary["stopped"] == "monitor" and summary["steps"] == 4 + it0 % 2
    assert len(seen) == (3 if comm.rank == 0 else 0)  # called on rank 0 only
    assert all(w >= 0 for _, w in seen)

    def broken(d, wall):
        raise RuntimeError("detector bug")

    summary = drive(channel, shared_tmp / "monitored", RunSettings(duration=1.0, series_every=1), restart=True,
                    monitor=broken)
    assert summary["stopped"] == "monitor_error" and summary["steps"] == 0
    summary = drive(channel, shared_tmp / "monitored", RunSettings(duration=2e-3, series_every=1), restart=True)
    assert summary["stopped"] == "duration" and summary["steps"] >= 1


def test_dissipation_balances_power_in_laminar_flow_and_bulk_w_is_measured(channel):
    # Poiseuille flow under the body force f: U = f y (ly - y) / (2 nu), so nu <|dU/dy|^2> = f U_b
    nu, f = SPEC.nu, SPEC.force
    for view, comp in zip(channel.velocity_views(), range(3)):
        view[...] = 0.0
    u, v, w = channel.velocity_views()
    y = channel.grid.y
    u[...] = f * y * (SPEC.lengths[1] - y) / (2 * nu)
    w[...] = 0.25
    d = channel.diagnostics()
    assert d.dissipation == pytest.approx(f * d.bulk, rel=1e-10)
    assert d.bulk == pytest.approx(f / (3 * nu), rel=1e-10) and d.bulk_w == pytest.approx(0.25, rel=1e-12)
    assert set(d.row()) >= {"bulk_w", "dissipation"}


def test_compact_state_round_trips_in_float32_and_refuses_other_boxes(channel, shared_tmp):
    channel.seed("analytic", options=ANALYTIC, seed=6)
    channel.step()
    ref = np.stack(channel.velocity_views()).copy()
    t, it, dt = channel.sim_time, channel.iteration, channel.timestep
    channel.save_state(shared_tmp / "state.npz", extra=dict(note="x"))
    channel.step()
    other = DedalusChannel(SPEC, comm)
    meta = other.load_state(shared_tmp / "state.npz")
    assert (other.sim_time, other.iteration, other.timestep) == (t, it, dt) and meta["extra"] == {"note": "x"}
    np.testing.assert_allclose(np.stack(other.velocity_views()), ref, rtol=0, atol=1e-6 * np.abs(ref).max())
    other.step()
    assert all(math.isfinite(x) for x in other.diagnostics().row().values())
    wide = DedalusChannel(dataclasses.replace(SPEC, lengths=(2 * math.pi, 2.0, math.pi / 2)), comm)
    with pytest.raises(CheckpointError, match="box"):
        wide.load_state(shared_tmp / "state.npz")
    if comm.rank == 0:
        (shared_tmp / "junk.npz").write_bytes(b"not a state")
    comm.Barrier()
    with pytest.raises(CheckpointError, match="unreadable"):
        other.load_state(shared_tmp / "junk.npz")


@pytest.mark.parametrize("stage", ["open", "series", "slices", "checkpoint", "load"])
def test_a_failure_on_one_rank_raises_on_every_rank(channel, shared_tmp, monkeypatch, stage):
    """Fault injection: one rank fails at one stage of a segment; every rank raises the same."""
    import cfdseed.solvers.runner as runner

    bad = comm.size - 1 if stage in ("checkpoint", "load") else 0  # the recorder lives on rank 0

    def boom(*args, **kwargs):
        raise OSError(f"injected {stage} failure")

    if comm.rank == bad:
        target = {"open": (runner._Recorder, "__init__"), "series": (runner._Recorder, "series"),
                  "slices": (runner._Recorder, "slices"), "checkpoint": (np, "savez"), "load": (np, "load")}[stage]
        monkeypatch.setattr(*target, boom)
    out = shared_tmp / f"fault-{stage}"
    settings = RunSettings(duration=4e-3, series_every=1, slices_every=1, checkpoint_every=2)
    if stage == "load":
        if comm.rank == bad:
            monkeypatch.undo()
        drive(channel, out, settings, restart=False, seed_fn=lambda: channel.seed("analytic", options=ANALYTIC, seed=1))
        if comm.rank == bad:
            monkeypatch.setattr(np, "load", boom)
    with pytest.raises(OSError, match=f"injected {stage} failure"):
        drive(channel, out, settings, restart=stage == "load",
              seed_fn=lambda: channel.seed("analytic", options=ANALYTIC, seed=1))
    comm.Barrier()


@pytest.mark.parametrize("stage, name", [("seed", "array"), ("perturb", "asarray"), ("diagnostics", "stack"),
                                         ("slices", "stack")])
def test_local_work_between_dedalus_collectives_failing_on_one_rank_fails_every_rank(channel, monkeypatch,
                                                                                      stage, name):
    """Fault injection: the local step of seed's Nyquist round trip (the copies between the
    transforms), perturb (before its Allreduce), diagnostics (before its Allreduce) or slices (before
    the gather) fails on the last rank only (numpy as the adapter sees it); every rank raises the same
    (they waited in the next transform or reduction)."""
    import cfdseed.solvers.dedalus as adapter

    def boom(*args, **kwargs):
        raise MemoryError(f"injected {name} failure")

    class OneFailing:  # numpy, but for the one function
        def __getattr__(self, attr):
            return boom if attr == name else getattr(np, attr)

    channel.seed("analytic", options=ANALYTIC, seed=5)
    call = {"seed": lambda: channel.seed("analytic", options=ANALYTIC, seed=6),
            "perturb": lambda: channel.perturb("analytic", options=ANALYTIC, seed=9),
            "diagnostics": channel.diagnostics, "slices": lambda: channel.slices([0, 3])}[stage]
    if comm.rank == comm.size - 1:
        monkeypatch.setattr(adapter, "np", OneFailing())
    try:
        call()
        got = None
    except MemoryError as exc:
        got = str(exc)
    monkeypatch.undo()
    got = comm.allgather(got)  # judged on every rank: a rank that did not raise must not strand the others
    assert all(g is not None and f"injected {name} failure" in g for g in got), got
    assert channel.diagnostics().bulk > 0  # every rank stopped at the same point: the channel goes on


def test_a_checkpoint_of_the_current_point_continues_the_run_exactly(shared_tmp):
    """A driver that writes a checkpoint and loads it to go on (the campaign's chunks in one
    process) keeps SBDF2's history: the steps are those of a run never interrupted."""
    runs = []
    for reload in (False, True):
        ch = DedalusChannel(SPEC, comm)
        ch.seed("analytic", options=ANALYTIC, seed=4)
        _fixed_steps(ch, 3)
        if reload:
            ch.load_checkpoint(ch.save_checkpoint(shared_tmp / "here"))
        _fixed_steps(ch, 3)
        runs.append(np.array(ch.u["c"]))
    # round-off only (the checkpoint's layout changes: ~2e-15 of the largest coefficient); a
    # restarted history differs by ~2e-5. The scale is global: a rank's own largest coefficient
    # can be 1e-3 of it, which made round-off fail a per-rank bound on another CPU.
    scale = comm.allreduce(float(np.abs(runs[0]).max()), op=MPI.MAX)
    np.testing.assert_allclose(runs[1], runs[0], rtol=0, atol=1e-10 * scale)


def test_content_dedalus_does_not_represent_is_refused(channel):
    """A field with x-Nyquist content (zero at the walls, divergence-free by the spectral
    operators, which give that mode no derivative) passed the checks and vanished in Dedalus'
    first transform; seed now measures what the transform drops."""
    def nyquist(grid, rng):
        x, y = grid.x[:, None, None], grid.y[None, :, None]
        f = np.zeros((3, *grid.shape))
        f[0] = 15.0 * (1 - (y - 1.0) ** 2) + np.cos(np.pi * grid.shape[0] * x / grid.lengths[0]) * y * (2.0 - y)
        return f

    with pytest.raises(ConstraintError, match="Nyquist"):
        channel.seed(nyquist, check=True, units="source")
    rep = channel.seed("analytic", options=ANALYTIC, seed=5)  # the built-in sources have none
    assert rep.passed


def test_flow_rate_driving_holds_the_bulk_velocity_and_reports_the_gradient():
    """driving="flow_rate": U_b stays at its target to round-off while the flow evolves; the
    pressure gradient that holds it is reported and balances the wall shear on average."""
    spec = dataclasses.replace(SPEC, driving="flow_rate", bulk=15.0)
    ch = DedalusChannel(spec, comm)
    ch.seed("analytic", options=ANALYTIC, seed=3)
    b0 = ch.diagnostics()
    assert b0.bulk == pytest.approx(15.0, rel=1e-12)
    for _ in range(20):
        ch.step()
    d = ch.diagnostics()
    assert d.bulk == pytest.approx(15.0, rel=1e-9) and abs(d.bulk_w) < 1e-6
    # a laminar-ish start: the held gradient is what the wall shear needs (both walls' mean)
    assert d.forcing == pytest.approx(0.5 * (d.tau_lower + d.tau_upper) / SPEC.h, rel=0.2)
    assert d.forcing > 0 and d.row()["forcing"] == d.forcing
    with pytest.raises(ConfigError, match="driving='pressure' unknown; must be one of force, flow_rate"):
        dataclasses.replace(SPEC, driving="pressure")
    force = DedalusChannel(SPEC, comm)
    assert force.diagnostics().forcing == pytest.approx(1.0 / SPEC.h)
    # a seed at another bulk velocity would be forced to 15 by an impulsive first step: refused
    with pytest.raises(ConfigError, match=r"seeded bulk velocity 14 != the held 15 of this flow_rate channel: give "
                                          r"the source the option bulk=15 .*except to the file sources snapshot"):
        ch.seed("analytic", options=dict(ANALYTIC, bulk=14.0), seed=3)


def test_fftw_rigor_sets_dedalus_planning_and_rejects_unknown_values():
    """fftw_rigor reaches Dedalus' configuration before the channel plans its transforms and the
    channel steps; an unknown rigor is a ConfigError on every rank (no rank left waiting). (That
    the rigors agree to round-off is measured in a fresh process each: Dedalus caches a basis'
    plans for the process, benchmarks/README.md.)"""
    from dedalus.tools.config import config

    before = config["transforms-fftw"]["PLANNING_RIGOR"]
    try:
        for rigor, nz in (("estimate", 10), ("patient", 14)):  # shapes no other test plans
            ch = DedalusChannel(dataclasses.replace(SPEC, shape=(8, 16, nz)), comm, fftw_rigor=rigor)
            assert config["transforms-fftw"]["PLANNING_RIGOR"] == rigor
            ch.seed("analytic", options=ANALYTIC, seed=4)
            for _ in range(5):
                ch.step()
            assert np.isfinite(ch._grid_velocity()).all() and ch.diagnostics().bulk == pytest.approx(15.0, rel=0.01)
        with pytest.raises(ConfigError, match="fftw_rigor='fast' unknown; must be one of estimate, measure"):
            DedalusChannel(SPEC, comm, fftw_rigor="fast")
    finally:
        config["transforms-fftw"]["PLANNING_RIGOR"] = before


def test_example_replays_a_committed_state_and_the_replays_merge_into_one_dataset(shared_tmp):
    """examples/dedalus_channel.py --state: the run goes on from a compact state file (its velocity,
    time and step count; how the campaign reference's planes are regenerated), and build_dataset
    merges several such run folders into one dataset."""
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("dedalus_channel_example", root / "examples" / "dedalus_channel.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    ch = DedalusChannel(SPEC, comm)
    ch.seed("analytic", options=ANALYTIC, seed=6)
    for _ in range(4):  # an iteration the replay records at (series every 2)
        ch.step()
    state = shared_tmp / "state.npz"
    ch.save_state(state)
    t_state, it_state, bulk_state = ch.sim_time, ch.iteration, ch.diagnostics().bulk
    outs = [shared_tmp / f"replay{i}" for i in range(2)]
    for out, planes in zip(outs, (4, 2)):
        assert example.main(["--out", str(out), "--state", str(state), "--shape", "8", "16", "8", "--cfl", "0.2",
                             "--max-step", "1e-3", "--duration", "4e-3", "--series-every", "2",
                             "--slices-every", "2", "--slice-planes", str(planes)]) == 0
    got = None
    if comm.rank == 0:  # read on rank 0, judged on every rank (a failed assert must not strand rank 1)
        ts = read_timeseries(outs[0])
        res = build_dataset(outs, shared_tmp / "merged", t_start=0.0, val_fraction=0.0)
        single = [build_dataset(o, shared_tmp / f"one{i}", t_start=0.0, val_fraction=0.0)["counts"]["all"]
                  for i, o in enumerate(outs)]
        with open_dataset(shared_tmp / "merged" / "all.h5") as al:
            got = dict(start=read_segments(outs[0])[0]["start_time"], t0=float(ts["t"][0]), step0=int(ts["step"][0]),
                       bulk0=float(ts["bulk"][0]), merged=len(al), counted=res["counts"]["all"], single=single,
                       t_min=float(al.t.min()), ic=al.attrs["ic"])
    got = comm.bcast(got, root=0)
    assert got["start"] == pytest.approx(t_state) and got["t0"] == pytest.approx(t_state) and got["step0"] == it_state
    assert got["bulk0"] == pytest.approx(bulk_state, rel=1e-6)  # the state's flow (float32)
    assert got["merged"] == got["counted"] == sum(got["single"]) > 0 and got["t_min"] >= t_state - 1e-12
    assert got["ic"] == f"state:{state}"


def test_states_dataset_holds_the_planes_the_solver_writes(shared_tmp):
    """states_dataset: every x-plane of saved states, on the solver's own coordinates, equal to the
    planes the runner's slices take at the same time (float32); t numbers the states; states of
    another case are refused."""
    ch = DedalusChannel(SPEC, comm)
    ch.seed("analytic", options=ANALYTIC, seed=7)
    states, planes = [shared_tmp / "s0.npz", shared_tmp / "s1.npz"], []
    for path in states:
        for _ in range(3):
            ch.step()
        ch.save_state(path)
        planes.append(ch.slices(range(SPEC.shape[0])))
    got = None
    if comm.rank == 0:
        res = states_dataset(states, shared_tmp / "states.h5")
        with open_dataset(shared_tmp / "states.h5") as ds:
            got = dict(res=res, fields=ds.read(slice(None)), t=ds.t, x=ds.x, y=ds.y, z=ds.z, lx=ds.attrs["lx"],
                       times=ds.attrs["state_times"])
        other = shared_tmp / "other.npz"
        with np.load(states[0]) as f:
            meta = json.loads(str(f["meta"]))
            meta["spec"] = dataclasses.replace(SPEC, re_tau=360.0).to_dict()
            np.savez(other, u=f["u"], meta=json.dumps(meta))
        with pytest.raises(DatasetError, match="Re_tau 360"):
            states_dataset([states[0], other], shared_tmp / "bad.h5")
    got = comm.bcast(got, root=0)
    nx = SPEC.shape[0]
    assert got["res"]["states"] == 2 and got["fields"].shape == (2 * nx, 3, 16, 8)
    if comm.rank == 0:
        np.testing.assert_allclose(got["fields"], np.concatenate(planes).astype(np.float32), rtol=0, atol=0)
    assert got["t"].tolist() == [0.0] * nx + [1.0] * nx and got["lx"] == pytest.approx(math.pi)
    np.testing.assert_allclose(got["x"], np.tile(ch.grid.x, 2), atol=1e-12)
    np.testing.assert_allclose(got["y"], ch.grid.y, atol=1e-12)
    np.testing.assert_allclose(got["z"], ch.grid.z, atol=1e-12)
    assert json.loads(got["times"])[1] == pytest.approx(ch.sim_time)


def test_spec_from_its_json_form():
    """ChannelSpec.from_json reads a spec as JSON stores it (a campaign plan's: lists for tuples)."""
    import json

    stored = json.loads(json.dumps(dataclasses.asdict(SPEC)))
    assert isinstance(stored["shape"], list) and ChannelSpec.from_json(stored) == SPEC
    assert ChannelSpec.from_json(json.loads(json.dumps(SPEC.to_dict()))) == SPEC  # as checkpoints store it


def test_drive_refuses_settings_the_ranks_disagree_on_or_planes_beyond_nx_on_every_rank(channel, shared_tmp):
    """A rank with another cadence, slice planes or end time would enter collectives the others do
    not (the job hangs): drive compares them first and raises the same ConfigError on every rank;
    slice_x beyond nx and settings changed after construction are refused up front (not at the first
    slice, hours in), before anything is written."""
    import faulthandler
    import re

    r = comm.rank
    nan_after = RunSettings(duration=1e-3)
    nan_after.series_every = math.nan  # assigned after the checks of construction
    cases = [
        (RunSettings(duration=1e-3, series_every=1 + r), r"ranks disagree on settings\.series_every: \[1, 2"),
        (RunSettings(duration=1e-3, checkpoint_every=2 + r), r"ranks disagree on settings\.checkpoint_every"),
        (RunSettings(duration=1e-3, slices_every=2 + r), r"ranks disagree on settings\.slices_every"),
        (RunSettings(duration=1e-3, slices_every=1, slice_x=(0, 3 + r)), r"ranks disagree on settings\.slice_x"),
        (RunSettings(duration=1e-3, slices_every=1, slices_after=0.5 * r), r"ranks disagree on settings\.slices_after"),
        (RunSettings(until=1e-3 * (1 + r)), r"ranks disagree on settings\.until"),
        (RunSettings(duration=1e-3, slices_every=1, slice_x=(0, SPEC.shape[0])),
         r"x indices \[8\] out of range; the channel has nx=8"),
        (nan_after, r"series_every=nan must be an integer >= 1"),
    ]
    if comm.size == 1:  # nothing to disagree on
        cases = cases[-2:]
    out = shared_tmp / "refused"
    # without the agreement the ranks deadlock in mismatched collectives: end the job (tracebacks
    # shown) after 120 s rather than at the suite's 600 s timeout
    faulthandler.dump_traceback_later(120, exit=True)
    try:
        for settings, match in cases:
            try:
                drive(channel, out, settings, restart=False,
                      seed_fn=lambda: channel.seed("analytic", options=ANALYTIC, seed=1))
                got = None
            except ConfigError as exc:
                got = str(exc)
            got = comm.allgather(got)  # judged on every rank: every rank raised, the same check
            assert all(g is not None and re.search(match, g) for g in got), (match, got)
    finally:
        faulthandler.cancel_dump_traceback_later()
    comm.Barrier()
    assert not out.exists()  # refused before a segment was opened


def test_drive_takes_numpy_integers_and_arrays_as_settings(channel, shared_tmp):
    """Cadences and slice planes may be numpy integers (an index array): the run records them in
    segments.json as plain numbers."""
    out = shared_tmp / "numpy"
    settings = RunSettings(duration=2e-3, series_every=np.int64(1), slices_every=np.int32(2),
                           slice_x=np.array([0, 4]), checkpoint_every=np.int64(4))
    summary = drive(channel, out, settings, restart=False,
                    seed_fn=lambda: channel.seed("analytic", options=ANALYTIC, seed=1))
    assert summary["stopped"] == "duration" and summary["slices"] > 0
    stored = comm.bcast(read_segments(out)[0]["settings"] if comm.rank == 0 else None, root=0)
    assert stored["series_every"] == 1 and stored["slices_every"] == 2 and stored["slice_x"] == [0, 4]



def test_a_flow_rate_channel_takes_only_a_state_of_its_own_bulk(channel, shared_tmp):
    """load_state into a flow_rate channel refused another bulk velocity no more than seed does
    (the first step imposed it: an impulsive pressure gradient); a state of the held flow loads."""
    held = DedalusChannel(dataclasses.replace(SPEC, driving="flow_rate", bulk=15.0), comm)
    held.seed("analytic", options=ANALYTIC, seed=3)
    held.step()
    held.save_state(shared_tmp / "held.npz")
    channel.seed("analytic", options=dict(ANALYTIC, bulk=14.0), seed=3)  # force-driven, U_b 14
    channel.save_state(shared_tmp / "other.npz")
    with pytest.raises(CheckpointError, match=r"other\.npz: bulk velocity 14 != the held 15 of this flow_rate channel"):
        held.load_state(shared_tmp / "other.npz")
    meta = held.load_state(shared_tmp / "held.npz")
    assert held.sim_time == meta["sim_time"] and held.diagnostics().bulk == pytest.approx(15.0, rel=1e-6)
    assert channel.load_state(shared_tmp / "held.npz")["sim_time"] == meta["sim_time"]  # force driving: any bulk


def test_example_replays_a_flow_rate_state_with_the_bulk_held(shared_tmp):
    """examples/dedalus_channel.py --driving flow_rate --bulk: a held-flow-rate state (the campaign's
    ref-cfr keeps them) goes on under its own physics, U_b held to round-off in every record, its
    planes recording the driving; the same state under the default force driving is not held."""
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("dedalus_channel_example", root / "examples" / "dedalus_channel.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    held = DedalusChannel(dataclasses.replace(SPEC, driving="flow_rate", bulk=15.0), comm)
    held.seed("analytic", options=ANALYTIC, seed=7)
    held.step()
    state = shared_tmp / "held_state.npz"
    held.save_state(state)
    common = ["--state", str(state), "--shape", "8", "16", "8", "--cfl", "0.2", "--max-step", "1e-3",
              "--duration", "6e-3", "--series-every", "1"]
    outs = {d: shared_tmp / f"replay_{d}" for d in ("flow_rate", "force")}
    assert example.main(["--out", str(outs["flow_rate"]), "--driving", "flow_rate", "--bulk", "15.0", *common,
                         "--slices-every", "2", "--slice-planes", "2"]) == 0
    assert example.main(["--out", str(outs["force"]), *common]) == 0
    got = None
    if comm.rank == 0:  # read on rank 0, judged on every rank
        got = {d: read_timeseries(o)["bulk"] for d, o in outs.items()}
        build_dataset(outs["flow_rate"], shared_tmp / "held_data", t_start=0.0, val_fraction=0.0)
        with open_dataset(shared_tmp / "held_data" / "all.h5") as ds:  # the planes say how they were driven
            got["attrs"] = (str(ds.attrs["driving"]), float(ds.attrs["held_bulk"]))
    got = comm.bcast(got, root=0)
    assert got["attrs"] == ("flow_rate", 15.0)
    assert len(got["flow_rate"]) >= 4 and np.abs(got["flow_rate"] - 15.0).max() < 1e-7  # measured 1.3e-9
    assert np.abs(got["force"] - 15.0).max() > 1e-4  # the body force lets it move (measured 4.4e-3)


def test_a_stored_time_step_above_max_step_continues_at_max_step(channel, shared_tmp):
    """A run continued with a smaller max_step took the checkpoint's (or state's) time step into
    the CFL unchecked: the first steps exceeded max_step. Clamped on load; a step within it stays."""
    channel.seed("analytic", options=ANALYTIC, seed=5)
    for _ in range(6):
        channel.step()
    dt = channel.timestep
    assert dt > 1e-4
    ck = channel.save_checkpoint(shared_tmp / "ck")
    channel.save_state(shared_tmp / "s.npz")
    small = DedalusChannel(dataclasses.replace(SPEC, max_step=1e-4, initial_step=1e-4), comm)
    for load, path in ((small.load_checkpoint, ck), (small.load_state, shared_tmp / "s.npz")):
        assert load(path)["timestep"] == dt
        assert small.timestep == small.cfl.stored_dt == 1e-4
        assert max(small.step() for _ in range(12)) <= 1e-4  # across the CFL's evaluations (every 5)
    same = DedalusChannel(SPEC, comm)
    same.load_checkpoint(ck)
    assert same.timestep == same.cfl.stored_dt == dt  # within max_step: as stored (runs continue as before)


def test_a_signal_ends_a_run_with_a_checkpoint_and_the_requeued_command_continues(shared_tmp):
    """SIGTERM (a batch scheduler's notice) to a running examples/dedalus_channel.py ends it as the
    STOP file does: a final checkpoint, files closed, stopped="signal", exit 0; the requeued
    --auto-restart --until command continues from that checkpoint. The run is a one-rank process
    started by rank 0 (the signal goes to the process that runs the loop); the stored spec reads
    back with ChannelSpec.from_json, and the run moves to this job's rank count as the checkpoint's
    error says: through the compact state that --save-state writes."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from cfdseed._collective import idle_until

    root = Path(__file__).resolve().parents[2]
    out = shared_tmp / "signalled"
    cmd = [sys.executable, str(root / "examples" / "dedalus_channel.py"), "--out", str(out), "--ic", "analytic",
           "--ic-options", json.dumps(ANALYTIC), "--shape", "8", "16", "8", "--cfl", "0.2", "--max-step", "1e-3",
           "--auto-restart", "--until", "50", "--series-every", "5", "--checkpoint-every", "100000"]
    # a process of its own, not a rank of this job: without the launcher's variables
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "ORTE_", "OPAL_"))}
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")

    def run(extra, log, signal_after_rows=None):
        with open(log, "w") as fh:
            proc = subprocess.Popen(cmd + extra, env=env, stdout=fh, stderr=subprocess.STDOUT)
            try:
                if signal_after_rows is not None:
                    series = out / "seg000" / "timeseries.csv"
                    t0 = time.time()
                    while not (series.exists() and len(series.read_text().splitlines()) > signal_after_rows):
                        if proc.poll() is not None or time.time() - t0 > 240:
                            raise RuntimeError(f"the run ended or never recorded: {log.read_text()[-3000:]}")
                        time.sleep(0.2)
                    proc.send_signal(signal.SIGTERM)
                rc = proc.wait(timeout=240)
            finally:
                if proc.poll() is None:
                    proc.kill()
        return rc, log.read_text()

    def on_root():
        rc, text = run([], shared_tmp / "first.log", signal_after_rows=3)
        ck = DedalusChannel.latest_checkpoint(out / "checkpoints")
        meta = json.loads((ck / "meta.json").read_text()) if ck else None
        moved = ["--max-wall", "2", "--save-state", str(shared_tmp / "moved.npz")]
        rc2, text2 = run(moved, shared_tmp / "requeued.log")
        segs = read_segments(out)
        ts = read_timeseries(out)
        return dict(rc=rc, signalled="'stopped': 'signal'" in text, tail=text[-3000:], ck=str(ck), meta=meta,
                    rc2=rc2, continued=f"auto-restart: continuing {ck}" in text2, tail2=text2[-3000:],
                    starts=[(s["start_time"], s["restart_from"]) for s in segs], t_last=float(ts["t"][-1]),
                    specs=[meta["spec"], segs[0]["note"]["spec"]],
                    last=str(DedalusChannel.latest_checkpoint(out / "checkpoints")))

    got = None
    if comm.rank == 0:
        try:
            got = on_root()
        except Exception as exc:  # noqa: BLE001 - judged on every rank below
            got = dict(error=f"{type(exc).__name__}: {exc}")
    idle_until(comm)  # the other ranks sleep while rank 0 runs the subprocesses
    got = comm.bcast(got, root=0)
    assert "error" not in got, got.get("error")
    assert got["rc"] == 0 and got["signalled"], got["tail"]
    assert got["meta"] is not None and got["meta"]["iteration"] > 0, got["tail"]
    assert got["rc2"] == 0 and got["continued"], got["tail2"]
    t_ck = got["meta"]["sim_time"]
    assert got["starts"] == [(0.0, None), (t_ck, got["ck"])] and got["t_last"] > t_ck
    spec = ChannelSpec(shape=(8, 16, 8), cfl_safety=0.2, max_step=1e-3, initial_step=2e-4)
    assert all(ChannelSpec.from_json(stored) == spec for stored in got["specs"])
    ch = DedalusChannel(spec, comm)
    if comm.size > 1:
        with pytest.raises(CheckpointError, match=rf"written by 1 ranks, running on {comm.size}; .*--save-state FILE"):
            ch.load_checkpoint(got["last"])
    assert ch.load_state(shared_tmp / "moved.npz")["sim_time"] > t_ck
