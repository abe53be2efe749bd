"""Runs tests/dedalus/ under `mpiexec -n 2` in the Dedalus environment (.venv-dedalus).

Skipped, with the reason shown, where .venv-dedalus is absent (create it with
.ci/setup-dedalus.sh). The Dedalus environment uses the system Open MPI, so its mpiexec is
/usr/bin/mpiexec, never the core venv's. The checks of the case and run settings as plain data
(ChannelSpec, RunSettings) and the committed sample need no Dedalus and run here.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _ci import missing

ROOT = Path(__file__).resolve().parents[1]
PY = ROOT / ".venv-dedalus" / "bin" / "python"
MPIEXEC = shutil.which("mpiexec", path="/usr/bin")

pytestmark = [pytest.mark.dedalus, pytest.mark.slow]


def test_dedalus_suite_two_ranks():
    if not PY.exists():
        missing(f"{PY} absent: run .ci/setup-dedalus.sh to test the Dedalus adapter")
    if MPIEXEC is None:
        missing("system /usr/bin/mpiexec (Open MPI) absent: run .ci/setup-dedalus.sh")
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1",
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    cmd = [MPIEXEC, "-n", "2", "--oversubscribe", str(PY), "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "-x", str(ROOT / "tests" / "dedalus")]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as exc:  # as tests/test_mpi.py: say so, with where it stood
        pytest.fail(f"tests/dedalus on 2 ranks hung for 600 s (a rank left waiting?)\n{(exc.stdout or b'')[-20000:]!r}")
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-20000:])
        sys.stderr.write(proc.stderr[-20000:])
    assert proc.returncode == 0, f"{' '.join(cmd)} failed (rc {proc.returncode}); output above"


SAMPLE = ROOT / "examples" / "dedalus_re180_sample.h5"


def test_packaged_sample_is_a_valid_dedalus_dataset():
    """The committed sample of the Dedalus Re_tau = 180 training data (no Dedalus needed)."""
    import numpy as np

    from cfdseed.slices import open_dataset
    from cfdseed.solvers.dedalus_case import gauss_points

    if not SAMPLE.exists():
        pytest.fail(f"{SAMPLE} is committed; regenerate it with examples/validate_dedalus.py --sample")
    assert SAMPLE.stat().st_size <= 5 * 2**20
    with open_dataset(SAMPLE) as ds:
        assert ds.attrs["solver"] == "dedalus" and ds.re_tau == 180.0 and ds.u_tau == 1.0
        assert ds.attrs["solver_version"].startswith("3.")
        assert ds.ny == 64 and ds.nz == 32
        np.testing.assert_allclose(ds.y, gauss_points(64, 2.0), rtol=1e-12)
        assert ds.t.min() >= ds.attrs["t_start"]
        f = ds.read(slice(None))  # (n, 3, ny, nz)
    assert np.isfinite(f).all()
    u = f[:, 0].mean(axis=(0, 2))  # (ny,)
    assert 14.0 < u[ds.ny // 2] < 22.0  # centreline U+ of Re_tau = 180 is ~18.3
    assert abs(f[:, 1].mean()) < 0.05 * u.mean() and abs(f[:, 2].mean()) < 0.1 * u.mean()


# -- ChannelSpec and RunSettings as plain data (no Dedalus, no MPI) -------------------------------
BAD_SETTINGS = [  # (RunSettings keywords besides duration=1.0, what the ConfigError says)
    (dict(series_every=math.nan), r"series_every=nan must be an integer >= 1"),
    (dict(series_every=math.inf), r"series_every=inf must be an integer >= 1"),
    (dict(series_every=1.5), r"series_every=1\.5 must be an integer >= 1"),
    (dict(series_every=True), r"series_every=True must be an integer"),
    (dict(checkpoint_every=2.5), r"checkpoint_every=2\.5 must be an integer >= 1"),
    (dict(slices_per_file=math.nan), r"slices_per_file=nan must be an integer >= 1"),
    (dict(slices_every=math.nan), r"slices_every=nan must be an integer >= 0"),
    (dict(slices_every=0.5), r"slices_every=0\.5 must be an integer >= 0"),
    (dict(slices_after=math.nan), r"slices_after=nan must be a finite number"),
    (dict(slices_after=math.inf), r"slices_after=inf must be a finite number"),
    (dict(slices_after="0"), r"slices_after='0' must be a finite number"),
    (dict(slice_x=3), r"slice_x=3 must be a sequence of x indices \(integers >= 0\)"),
    (dict(slice_x=(-1,)), r"slice_x=\(-1,\) must be a sequence of x indices"),
    (dict(slice_x=(0, 2.0)), r"slice_x=\(0, 2\.0\) must be a sequence of x indices"),
    (dict(slice_x="0"), r"slice_x='0' must be a sequence"),
    (dict(slice_x=(), slices_every=10), r"slice_x=\(\) is empty but slices_every=10"),
    (dict(duration=math.inf), r"duration=inf / until=None and max_wall=inf are both infinite"),
    (dict(duration=None, until=math.inf), r"until=inf and max_wall=inf are both infinite"),
    (dict(duration="1"), r"duration='1' must be a number"),
    (dict(max_wall="60"), r"max_wall='60' must be a number"),
]


@pytest.mark.parametrize("kwargs, match", BAD_SETTINGS, ids=[str(k) for k, _ in BAD_SETTINGS])
def test_run_settings_refuse_bad_cadences_times_and_slice_planes(kwargs, match):
    """A NaN or fractional cadence matches no step (no diagnostics: a blow-up never seen, the STOP
    file never read), slice planes that are no x indices failed at the first slice, hours in, and
    infinite time with an infinite wall clock never ends: ConfigError naming the field."""
    import numpy as np

    from cfdseed.errors import ConfigError
    from cfdseed.solvers.runner import RunSettings

    with pytest.raises(ConfigError, match=match):
        RunSettings(**{"duration": 1.0, **kwargs})
    ok = RunSettings(duration=1.0, series_every=np.int64(20), slices_every=np.int32(0), checkpoint_every=np.int64(5),
                     slices_per_file=np.int16(3), slices_after=np.float32(2.0), slice_x=np.arange(4))
    assert ok.series_every == 20  # numpy integers and index arrays are integers
    for fine in (dict(slice_x=[0, 3]), dict(slice_x=range(0, 32, 4)), dict(slice_x=()),  # () without slices
                 dict(duration=math.inf, max_wall=3600.0), dict(until=5.0, duration=None, max_wall=math.inf)):
        RunSettings(**{"duration": 1.0, **fine})


BAD_SPECS = [  # (ChannelSpec keywords, what the ConfigError says)
    (dict(shape=(8.0, 16.0, 8.0)), r"shape must be three integers \(nx, ny, nz\), got \(8\.0, 16\.0, 8\.0\)"),
    (dict(shape=None), r"shape must be three integers \(nx, ny, nz\), got None"),
    (dict(shape=math.nan), r"shape must be three integers .*got nan"),
    (dict(shape="abc"), r"shape must be three integers .*got 'abc'"),
    (dict(lengths=None), r"lengths must be three positive numbers, got None"),
    (dict(lengths=("3.1", "2", "1.5")), r"lengths must be three positive numbers, got \('3\.1'"),
    (dict(re_tau="180"), r"re_tau='180' must be a positive finite number"),
    (dict(max_step=None), r"max_step=None must be a positive finite number"),
    (dict(bulk="15.7"), r"bulk='15\.7' must be a positive finite number"),
    (dict(dealias=0.5), r"dealias=0\.5 under-resolves the quadratic terms; allowed >= 1"),
    (dict(initial_step=0.02, max_step=0.01), r"initial_step=0\.02 > max_step=0\.01"),
    (dict(cfl_safety=0.6), r"cfl_safety=0\.6 too large; allowed \(0, 0\.5\], use <= 0\.15"),  # as the README
]


@pytest.mark.parametrize("kwargs, match", BAD_SPECS, ids=[str(k) for k, _ in BAD_SPECS])
def test_channel_spec_refuses_wrong_types_under_dealiasing_and_a_first_step_above_the_largest(kwargs, match):
    """shape (8.0, ...) failed in numpy ("deg must be an integer"), None or strings with a bare
    TypeError, dealias < 1 under-resolves the quadratic terms: ConfigError naming the field."""
    import numpy as np

    from cfdseed.errors import ConfigError
    from cfdseed.solvers.dedalus_case import ChannelSpec

    with pytest.raises(ConfigError, match=match):
        ChannelSpec(**kwargs)
    kept = ChannelSpec(shape=(np.int64(8), 16, np.int32(8)), lengths=[3, 2, 1], dealias=1, initial_step=0.01,
                       max_step=0.01)  # numpy integers, integer lengths, dealias 1, equal steps: as before
    assert kept.shape == (8, 16, 8)


def test_channel_spec_from_json_names_unknown_keys():
    from cfdseed.errors import ConfigError
    from cfdseed.solvers.dedalus_case import ChannelSpec

    with pytest.raises(ConfigError, match=r"unknown ChannelSpec key\(s\) 'foo'; allowed: shape, lengths, re_tau"):
        ChannelSpec.from_json({"foo": 1})
    with pytest.raises(ConfigError, match=r"JSON form is an object \(dict\), got list"):
        ChannelSpec.from_json([8, 16, 8])


def test_read_state_reads_a_state_file_and_names_a_bad_one(tmp_path):
    """read_state (no Dedalus): the velocity and metadata of a save_state file; a velocity that is not
    its spec's shape, a file that is no state, and a missing one are CheckpointErrors naming the file."""
    import json

    import numpy as np

    from cfdseed.errors import CheckpointError
    from cfdseed.solvers.dedalus_case import ChannelSpec, read_state

    spec = ChannelSpec(shape=(4, 8, 4))
    u = np.random.default_rng(0).standard_normal((3, 4, 8, 4)).astype(np.float32)
    meta = dict(sim_time=1.5, iteration=7, timestep=1e-3, spec=spec.to_dict(), extra={})
    np.savez_compressed(tmp_path / "ok.npz", u=u, meta=json.dumps(meta))
    got, got_meta = read_state(tmp_path / "ok.npz")
    np.testing.assert_array_equal(got, u)
    assert got_meta["sim_time"] == 1.5 and ChannelSpec.from_json(got_meta["spec"]) == spec
    np.savez_compressed(tmp_path / "short.npz", u=u[:, :3], meta=json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"short.npz: velocity \(3, 3, 8, 4\) != \(3, 4, 8, 4\), its spec's"):
        read_state(tmp_path / "short.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a state")
    for name in ("junk.npz", "missing.npz"):
        with pytest.raises(CheckpointError, match=f"{name}: unreadable state file"):
            read_state(tmp_path / name)


def test_channel_spec_from_json_reads_the_stored_form_and_checks_its_derived_values():
    """Every checkpoint, state and segment stores to_dict() (the fields plus nu, force, u_tau, h):
    from_json reads it back; a derived value that is not the spec's is a ConfigError naming it."""
    import json

    from cfdseed.errors import ConfigError
    from cfdseed.solvers.dedalus_case import DERIVED_KEYS, ChannelSpec

    spec = ChannelSpec(shape=(8, 16, 8), lengths=(3.0, 2.5, 1.5), re_tau=395.0, driving="flow_rate", bulk=17.0)
    stored = json.loads(json.dumps(spec.to_dict()))
    assert set(DERIVED_KEYS) <= set(stored) and ChannelSpec.from_json(stored) == spec
    assert ChannelSpec.from_json({"shape": [8, 16, 8], "nu": 1 / 180, "h": 1.0}) == ChannelSpec(shape=(8, 16, 8))
    for key, value in (("nu", 0.01), ("h", 1.0), ("u_tau", 2.0), ("force", "1"), ("nu", None)):
        with pytest.raises(ConfigError, match=rf"ChannelSpec key {key}={value!r} contradicts the spec's own {key}="):
            ChannelSpec.from_json(dict(stored, **{key: value}))
    with pytest.raises(ConfigError, match=r"unknown ChannelSpec key\(s\) 'Re'; allowed: .* \(and the derived nu, "
                                          r"force, u_tau, h\)"):
        ChannelSpec.from_json(dict(stored, Re=1.0))


def _example():
    """examples/dedalus_channel.py as a module (its argument parsing needs no Dedalus nor MPI)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("dedalus_channel_example", ROOT / "examples" / "dedalus_channel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BASE_ARGS = ["--out", "o", "--shape", "16", "32", "16", "--duration", "0.01"]
BAD_ARGS = [  # (arguments besides BASE_ARGS, what the usage error says)
    (["--slices-every", "2", "--slice-planes", "24"],
     r"--slice-planes: 24 planes on nx=16; allowed: a divisor of nx between 1 and nx \(1, 2, 4, 8, 16\)"),
    (["--slices-every", "2", "--slice-planes", "5"], r"--slice-planes: 5 planes on nx=16"),  # uneven spacing
    (["--slice-planes", "-3"], r"--slice-planes: -3 planes on nx=16"),
    (["--slice-planes", "0"], r"--slice-planes: 0 planes"),
    (["--ic-options", "{bulk: 15.7}"], r"argument --ic-options: not valid JSON .*'\{bulk: 15\.7\}'; give an object"),
    (["--kick", "streaks", "--kick-options", "[1, 2]"],
     r"argument --kick-options: '\[1, 2\]' is JSON but not an object"),
]


@pytest.mark.parametrize("extra, match", BAD_ARGS, ids=[" ".join(a) for a, _ in BAD_ARGS])
def test_example_refuses_bad_slice_planes_and_options_while_parsing(extra, match, capsys):
    """--slice-planes 24 on nx = 16 duplicated planes, 5 spaced them unevenly, -3 was a raw numpy
    error; options that are no JSON object failed after the solver was built (an MPI abort): all
    are usage errors now, before MPI or Dedalus start."""
    example = _example()
    with pytest.raises(SystemExit) as info:
        example.parse_args(BASE_ARGS + extra)
    assert info.value.code == 2
    import re

    assert re.search(match, capsys.readouterr().err.replace("\n", " ")), match
    ok = example.parse_args(BASE_ARGS + ["--slices-every", "2", "--slice-planes", "4", "--ic-options", '{"bulk": 15.7}',
                                         "--kick", "streaks", "--kick-options", '{"noise": 0.1}'])
    assert ok.ic_opts == {"bulk": 15.7} and ok.kick_opts == {"noise": 0.1} and ok.ic_options == '{"bulk": 15.7}'
    assert example.parse_args(BASE_ARGS + ["--slice-planes", "24"]).slice_planes == 24  # no slices: unused


@pytest.mark.parametrize("extra, match", [
    (["--until", "-1"], r"--until: -1.0; allowed: a time >= 0"), (["--until", "nan"], r"--until: nan"),
    (["--duration", "0"], r"--duration: 0.0; allowed: a time > 0 \(0 only with --restart and --save-state"),
    (["--duration", "0", "--restart"], r"--duration: 0.0"), (["--duration", "0.1", "--cfl", "0"], r"--cfl"),
    (["--duration", "0.1", "--max-step", "-1"], r"--max-step"), (["--duration", "0.1", "--max-wall", "0"], r"--max-wall"),
    (["--duration", "0.1", "--series-every", "0"], r"--series-every: 0; allowed: steps >= 1"),
    (["--duration", "0.1", "--checkpoint-every", "0"], r"--checkpoint-every"),
    (["--duration", "0.1", "--slices-every", "-2"], r"--slices-every"),
    (["--duration", "0.1", "--driving", "flow_rate", "--bulk", "0"], r"--bulk: 0.0; allowed: a bulk velocity > 0"),
    (["--duration", "0.1", "--bulk", "15.2"], r"--bulk: 15.2; allowed: .*with --driving flow_rate only"),
    (["--duration", "0.1", "--driving", "flow_rate", "--bulk", "15.2", "--ic-options", '{"bulk": 15.7}'],
     r"--ic-options: bulk 15.7 under --driving flow_rate with --bulk 15.2"),
    (["--duration", "0.1", "--driving", "pressure"], r"--driving: invalid choice: 'pressure'"),
])
def test_example_refuses_bad_times_and_cadences_while_parsing(extra, match, capsys):
    """--until -1 was refused only after the solver was built (an MPI job's worth of set-up)."""
    import re

    with pytest.raises(SystemExit) as info:
        _example().parse_args(["--out", "o", "--shape", "16", "32", "16", *extra])
    assert info.value.code == 2 and re.search(match, capsys.readouterr().err), match


def test_example_takes_a_held_flow_rate():
    """``--driving flow_rate --bulk B`` (the campaign's flow-rate reference, replayed from its states)."""
    args = _example().parse_args(["--out", "o", "--duration", "1", "--driving", "flow_rate", "--bulk", "15.2"])
    assert args.driving == "flow_rate" and args.bulk == 15.2
    args = _example().parse_args(["--out", "o", "--duration", "1", "--driving", "flow_rate"])
    assert args.bulk == 15.7  # the default held bulk velocity
    args = _example().parse_args(["--out", "o", "--duration", "1", "--ic-options", '{"bulk": 15.2}'])
    assert args.driving == "force" and args.bulk is None  # the body force: the IC's bulk is the start only


def test_example_takes_the_documented_state_only_restart():
    """``--restart --duration 0 --save-state FILE`` (README, the example's docstring) was refused."""
    args = _example().parse_args(["--out", "o", "--restart", "--duration", "0", "--save-state", "s.npz"])
    assert args.duration == 0 and args.restart and args.save_state == "s.npz"


def test_stop_signals_are_caught_in_the_main_thread_only_and_the_previous_handlers_restored():
    """drive's handlers (runner._caught_signals): in the main thread SIGTERM/SIGUSR1 only note
    themselves, and the handlers from before are back afterwards, also after an error; in another
    thread (where Python sets no handlers) nothing changes."""
    import os
    import signal
    import threading

    from cfdseed.solvers import runner

    assert runner.STOP_SIGNALS == ("SIGTERM", "SIGUSR1")
    mine = []
    before = {s: signal.signal(s, lambda n, f: mine.append(n)) for s in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        with runner._caught_signals() as caught:
            os.kill(os.getpid(), signal.SIGUSR1)
            os.kill(os.getpid(), signal.SIGTERM)
            assert caught == [signal.SIGUSR1, signal.SIGTERM] and mine == []
        with pytest.raises(RuntimeError, match="boom"), runner._caught_signals():
            raise RuntimeError("boom")
        os.kill(os.getpid(), signal.SIGUSR1)  # the previous handler again
        assert mine == [signal.SIGUSR1]
        seen = []

        def in_thread():
            with runner._caught_signals() as caught:
                seen.append((caught, signal.getsignal(signal.SIGTERM)))

        t = threading.Thread(target=in_thread)
        t.start()
        t.join()
        assert seen[0][0] == [] and seen[0][1] is signal.getsignal(signal.SIGTERM)
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def test_every_committed_spec_and_campaign_run_settings_still_read():
    """Every ChannelSpec committed under benchmarks/ (the campaign plan's runs, the transient
    results) reads as before, equal to its JSON, and the campaign's RunSettings of every planned run
    are accepted (benchmarks/campaign.py builds them so)."""
    import dataclasses
    import json

    from cfdseed.solvers.dedalus_case import ChannelSpec
    from cfdseed.solvers.runner import RunSettings

    def specs(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k == "spec" and isinstance(v, dict):
                    yield v
                yield from specs(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from specs(v)

    found = 0
    for path in sorted((ROOT / "benchmarks").rglob("*.json")):
        for d in specs(json.loads(path.read_text())):
            spec = ChannelSpec.from_json(d)
            assert {k: getattr(spec, k) for k in d} == {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
            assert ChannelSpec.from_json(json.loads(json.dumps(dataclasses.asdict(spec)))) == spec
            found += 1
    assert found > 0
    plan = json.loads((ROOT / "benchmarks" / "campaign" / "plan.json").read_text())
    for run in plan["runs"]:
        nx = ChannelSpec.from_json(run["spec"]).shape[0]
        for duration, max_wall in ((run["chunk"], math.inf), (0.0, 60.0)):
            RunSettings(duration=duration, max_wall=max_wall, series_every=run["series_every"],
                        checkpoint_every=run["checkpoint_every"], slices_every=run.get("slices_every", 0),
                        slices_after=run.get("slices_after", 0.0),
                        slice_x=tuple(range(0, nx, run.get("slice_stride", 1))), source="dedalus:campaign")

