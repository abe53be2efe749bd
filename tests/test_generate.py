"""Tests of cfdseed generate: HDF5 layout, XDMF sidecar, PNG, report, errors (CLI end to end)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import h5py
import numpy as np
import pytest

from cfdseed.cli import main
from cfdseed.units import reichardt_bulk

from test_synthesis import tiny_model


def _run(tmp_path, *extra):
    out = tmp_path / "ic.h5"
    rc = main(["generate", "--shape", "8", "13", "6", "--lengths", "4.0", "2.0", "3.0", "--y", "tanh:2.0",
               "--seed", "2", "--out", str(out), *extra])
    return rc, out


@pytest.mark.parametrize("source", ["plug", "laminar", "trig", "streaks", "analytic"])
def test_generate_baseline_writes_checked_field(tmp_path, capsys, source):
    rc, out = _run(tmp_path, "--source", source)
    text = capsys.readouterr().out
    assert rc == 0 and "PASSED" in text and "wrote" in text
    with h5py.File(out) as h:
        assert h["u"].shape == (6, 13, 8)  # (nz, ny, nx)
        assert tuple(h.attrs["lengths"]) == (4.0, 2.0, 3.0) and h.attrs["source"] == source
        u = h["u"][...].transpose(2, 1, 0)
        y = h["y"][...]
        assert np.all(u[:, 0] == 0) and np.all(u[:, -1] == 0)
        # the unit contract's default: wall units at Re_tau 180 with Reichardt's bulk, recorded
        assert h.attrs["bulk_velocity"] == pytest.approx(reichardt_bulk(180.0), rel=1e-9)
        assert (h.attrs["re_tau"], h.attrs["u_tau"], h.attrs["nu"]) == pytest.approx((180.0, 1.0, 1 / 180))
        assert len(h["x"]) == 8 and y[0] == 0.0
    xmf = ET.parse(out.with_suffix(".xmf")).getroot()
    topo = xmf.find(".//Topology")
    assert topo.get("Dimensions") == "6 13 8"
    names = [a.get("Name") for a in xmf.iter("Attribute")]
    assert names == ["u", "v", "w", "velocity"]
    hdf = [item for item in xmf.iter("DataItem") if item.get("Format") == "HDF"]
    assert len(hdf) >= 4  # u, v, w and the velocity's parts point into the file
    for item in hdf:
        fname, _, dset = item.text.partition(":/")
        assert fname == "ic.h5"
        with h5py.File(out) as h:
            assert " ".join(map(str, h[dset].shape)) == item.get("Dimensions")
    png = out.with_suffix(".png")
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


def test_generate_gan_and_snapshot(tmp_path, capsys):
    model = tiny_model(tmp_path / "m.pt")
    rc, out = _run(tmp_path, "--model", str(model), "--device", "cpu", "--re-tau", "200", "--bulk", "1.5",
                   "--dtype", "float32", "--no-png", "--option", "calibrate=null")  # an untrained generator
    text = capsys.readouterr().out
    assert rc == 0 and "projection" in text and "PASSED" in text
    assert not out.with_suffix(".png").exists()
    with h5py.File(out) as h:
        assert h["u"].dtype == np.float32 and h.attrs["re_tau"] == pytest.approx(200.0)
    snap = tmp_path / "snap.h5"
    rc = main(["generate", "--source", "snapshot", "--option", f"path={out}", "--shape", "12", "17", "8",
               "--lengths", "8.0", "1.0", "6.0", "--y", "chebyshev-cc", "--out", str(snap), "--no-png"])
    assert rc == 0 and "PASSED" in capsys.readouterr().out


def test_generate_errors(tmp_path, capsys):
    rc, _ = _run(tmp_path, "--source", "sinusoid")
    assert rc == 2 and "unknown source" in capsys.readouterr().err
    rc, _ = _run(tmp_path, "--model", str(tmp_path / "missing.pt"))
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    rc = main(["generate", "--source", "plug", "--shape", "1", "9", "4", "--lengths", "1", "2", "1",
               "--out", str(tmp_path / "x.h5")])
    assert rc == 2 and "too small" in capsys.readouterr().err
    rc, _ = _run(tmp_path, "--source", "plug", "--option", "noise")
    assert rc == 2 and "key=value" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["generate", "--shape", "8", "9", "--lengths", "1", "2", "1", "--out", "x.h5"])


def test_generate_distributed_names_every_file_it_wrote(tmp_path, capsys):
    """--strategy distributed (here on one rank): the velocity goes into OUT.raw, named with the rest."""
    model = tiny_model(tmp_path / "m.pt")
    rc, out = _run(tmp_path, "--model", str(model), "--device", "cpu", "--option", "calibrate=null",
                   "--strategy", "distributed")
    wrote = capsys.readouterr().out.splitlines()[-1]
    assert rc == 0 and out.with_suffix(".raw").is_file()
    assert wrote == f"wrote {out}, {out.with_suffix('.raw')}, {out.with_suffix('.xmf')}, {out.with_suffix('.png')}"


def test_generate_library_call(tmp_path):
    from cfdseed.generate import generate
    from cfdseed.grid import Grid

    res = generate(Grid((8, 13, 6), (4.0, 2.0, 3.0)), tmp_path / "f.h5", source="plug", seed=0, picture=False)
    assert res.report.passed and res.path.is_file() and res.xdmf == tmp_path / "f.xmf"
    assert res.picture is None
    with h5py.File(res.path) as h:
        assert h.attrs["seed"] == 0 and h.attrs["source"] == "plug"


def test_the_recorded_options_replay_the_field(tmp_path):
    """Options were recorded as text (None as "None", 0.2 as "0.2"): passed back they failed or
    changed type; now the JSON record passed back makes the same field."""
    import json

    from cfdseed.fields import read_field
    from cfdseed.generate import generate
    from cfdseed.grid import Grid

    grid = Grid((8, 13, 6), (4.0, 2.0, 3.0))
    opts = {"amplitude": 0.2, "waves": [1, 2], "mean": "turbulent", "re_tau": None}
    first = generate(grid, tmp_path / "a.h5", source="trig", options=opts, seed=3, picture=False)
    f, _, _, attrs = read_field(first.path)
    recorded = attrs["options"] if isinstance(attrs["options"], dict) else json.loads(attrs["options"])
    assert recorded == opts
    again = generate(grid, tmp_path / "b.h5", source="trig", options=recorded, seed=3, picture=False)
    assert np.array_equal(read_field(again.path)[0], f)


def test_numpy_options_are_recorded_as_numbers_and_replay(tmp_path):
    """numpy numbers and arrays in the options were recorded as text ("0.2", "[1 2]"): passed back
    they failed; now they are JSON numbers and lists, and the record makes the same field."""
    import json

    from cfdseed.fields import read_field
    from cfdseed.generate import generate
    from cfdseed.grid import Grid

    grid = Grid((8, 13, 6), (4.0, 2.0, 3.0))
    opts = {"amplitude": np.float32(0.25), "waves": np.array([1, 2]), "mean": "turbulent"}
    first = generate(grid, tmp_path / "a.h5", source="trig", options=opts, seed=3, picture=False)
    f, _, _, attrs = read_field(first.path)
    recorded = attrs["options"] if isinstance(attrs["options"], dict) else json.loads(attrs["options"])
    assert recorded == {"amplitude": 0.25, "waves": [1, 2], "mean": "turbulent"}
    assert isinstance(recorded["amplitude"], float) and isinstance(recorded["waves"], list)
    again = generate(grid, tmp_path / "b.h5", source="trig", options=recorded, seed=3, picture=False)
    assert np.array_equal(read_field(again.path)[0], f)


def test_a_field_without_a_given_seed_records_the_one_it_used(tmp_path):
    """No seed: a fresh one, stored, and the field made again from it is the same."""
    from cfdseed.fields import read_field
    from cfdseed.generate import generate
    from cfdseed.grid import Grid

    grid = Grid((8, 13, 6), (4.0, 2.0, 3.0))
    first = generate(grid, tmp_path / "a.h5", source="trig", picture=False)
    f, _, _, attrs = read_field(first.path)
    assert attrs["seed"] >= 0
    again = generate(grid, tmp_path / "b.h5", source="trig", seed=int(attrs["seed"]), picture=False)
    assert np.array_equal(read_field(again.path)[0], f)
    other, _, _, other_attrs = read_field(generate(grid, tmp_path / "c.h5", source="trig", picture=False).path)
    assert other_attrs["seed"] != attrs["seed"] and not np.array_equal(other, f)  # fresh each time


@pytest.mark.parametrize("seed", ["abc", "5", 1.7, 1.0, True, -1, 2**64, [1, 2]])
def test_generate_refuses_a_seed_that_is_not_a_non_negative_integer(tmp_path, seed):
    """seed="abc" was a bare ValueError, 1.7 silently became 1, 2**64 failed (TypeError) after the field was
    built: a ConfigError naming the seed, before anything is built or written."""
    import re

    from cfdseed.errors import ConfigError
    from cfdseed.generate import generate
    from cfdseed.grid import Grid

    with pytest.raises(ConfigError, match=f"^seed must be a non-negative integer below 2\\*\\*64 .*got {re.escape(repr(seed))}$"):
        generate(Grid((8, 13, 6), (4.0, 2.0, 3.0)), tmp_path / "f.h5", source="plug", seed=seed, picture=False)
    assert not (tmp_path / "f.h5").exists()


def test_generate_slabs_refuses_a_bad_seed(tmp_path):
    from mpi4py import MPI

    from cfdseed.errors import ConfigError
    from cfdseed.generate import generate_slabs
    from cfdseed.grid import Grid

    with pytest.raises(ConfigError, match="^seed must be a non-negative integer below 2\\*\\*64 .*got 1.7$"):
        generate_slabs(MPI.COMM_SELF, Grid((8, 13, 6), (4.0, 2.0, 3.0)), tmp_path / "f.h5", source="sem", seed=1.7,
                       picture=False)
    assert not (tmp_path / "f.h5").exists()


def test_generate_takes_numpy_and_large_seeds(tmp_path):
    from cfdseed.fields import read_field
    from cfdseed.generate import generate
    from cfdseed.grid import Grid

    grid = Grid((8, 13, 6), (4.0, 2.0, 3.0))
    a, _, _, attrs = read_field(generate(grid, tmp_path / "a.h5", source="plug", seed=3, picture=False).path)
    b, _, _, _ = read_field(generate(grid, tmp_path / "b.h5", source="plug", seed=np.int64(3), picture=False).path)
    np.testing.assert_array_equal(a, b)
    _, _, _, big = read_field(generate(grid, tmp_path / "c.h5", source="plug", seed=2**64 - 1, picture=False).path)
    assert attrs["seed"] == 3 and big["seed"] == 2**64 - 1
