"""The model card's commands (cfdseed/models/README.md, "Reproduce") run, on a tiny model and tiny data.

Each command of the card's regeneration block, with the card's flags: ``field_physics.py model``,
``cfdseed evaluate --model ... --against ...``, ``field_physics.py real`` (on a fake reference
folder of the campaign's layout) and ``field_physics.py figure``; their outputs hold what the card
reads from them."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
from test_conditional import tiny_conditional

from cfdseed.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
FP = ROOT / "benchmarks" / "field_physics.py"
SAMPLE = ROOT / "examples" / "dedalus_re180_sample.h5"
CARD = ROOT / "cfdseed" / "models" / "README.md"


def _run(*args: str) -> str:
    proc = subprocess.run([sys.executable, str(FP), *args], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _fake_reference(folder: Path, times: list[float]) -> None:
    """Slice files in the reference's layout: every x-plane (32) of the campaign grid per time."""
    from cfdseed.grid import wall_normal

    rng = np.random.default_rng(0)
    (folder / "seg000").mkdir(parents=True)
    y = wall_normal("chebyshev-cc", 64, 2.0)
    with h5py.File(folder / "seg000" / "slices_000.h5", "w") as f:
        n = 32 * len(times)
        fields = rng.standard_normal((n, 3, 64, 32)).astype(np.float32) * np.sin(np.pi * y / 2)[None, None, :, None]
        fields[:, 0] += (15.0 * y * (2 - y))[None, :, None]
        f["fields"] = fields
        f["t"] = np.repeat(times, 32)
        f["x"] = np.tile(np.arange(32) * math.pi / 32, len(times))
        f["y"], f["z"] = y, np.arange(32) * (math.pi / 2) / 32
        f.attrs["lz"] = math.pi / 2


def test_card_commands_run_on_a_tiny_model(tmp_path):
    model = str(tiny_conditional(tmp_path / "tiny.pt"))
    text = CARD.read_text()
    for command in ("field_physics.py model --model", "cfdseed evaluate --model", "field_physics.py real --times",
                    "field_physics.py figure --out"):
        assert command in text, f"the card no longer says {command!r}: update this test with it"

    _run("model", "--model", model, "--seeds", "1", "2", "--out", str(tmp_path / "m.json"))
    res = json.loads((tmp_path / "m.json").read_text())
    assert res["seeds"] == [1, 2] and len(res["rows"]) == 2
    s = res["summary"]
    assert {"tke_vs_median", "shear_inside", "max_abs_bulk_w", "max_abs_bulk_v", "projection_removed_over_tke",
            "streamwise_spectra_share_inside", "spanwise_spectra_share_inside",
            "spanwise_last_two_over_median_median"} <= set(s)
    # an untrained model's field may be out of the calibration's reach: recorded per seed, never fatal
    assert all("delivered_rms_over_median" in r or "delivery_failed" in r for r in res["rows"])
    tke = [r["delivered_tke"] for r in res["rows"] if "delivered_tke" in r]  # calibrated: the statistics' TKE
    assert tke and all(t > 0 for t in tke) and "delivered_tke" in s  # both seeds deliver today: at least one must
    assert len(res["median"]["profiles"]["u'"]) == 64 and len(res["median"]["spectra"]["kzEz_u_centre"]) == 16

    rc = cli_main(["evaluate", "--model", model, "--against", str(SAMPLE), "--device", "cpu", "--samples", "16",
                   "--against-samples", "64", "--out", str(tmp_path / "card")])
    assert rc == 0 and (tmp_path / "card" / "report.md").is_file() and (tmp_path / "card" / "profiles.png").is_file()

    _fake_reference(tmp_path / "ref", [50.0, 60.0])
    _run("real", "--runs", str(tmp_path / "ref"), "--times", "50", "60", "--out", str(tmp_path / "real.json"))
    real = json.loads((tmp_path / "real.json").read_text())
    assert real["times"] == [50.0, 60.0] and "median" in real

    _run("figure", "--out", str(tmp_path / "fields.png"), "--models", f"tiny={tmp_path / 'm.json'}",
         f"real={tmp_path / 'real.json'}")
    assert (tmp_path / "fields.png").stat().st_size > 10_000


def test_card_validation_states_command_builds_the_committed_fields(tmp_path):
    """The card's states_dataset command (the fixed validation file of a retraining that spans fresh
    machines): run as the card writes it, output redirected, on the committed campaign states, it
    gives the 32 confirmatory runs' end states, every x-plane, past their horizon."""
    import re

    from cfdseed.slices import open_dataset

    found = re.search(r'python -c "(import glob, json; from cfdseed\.solvers\.runner import states_dataset;.*?)"',
                      CARD.read_text(), flags=re.S)
    assert found, "the card no longer holds the states_dataset command: update this test with it"
    code = re.sub(r"\\\n\s*", "", found.group(1)).replace("'runs/val-states.h5'", repr(str(tmp_path / "v.h5")))
    assert str(tmp_path) in code
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open_dataset(tmp_path / "v.h5") as ds:
        times = json.loads(ds.attrs["state_times"])
        assert ds.n == 32 * 32 and (ds.ny, ds.nz) == (64, 32) and len(times) == 32 and min(times) >= 32.0


def test_spanwise_gain_script_writes_a_gained_model_of_the_same_case(tmp_path):
    """``benchmarks/spanwise_gain.py`` (the card's gained candidate): on a tiny model and planes of
    its own case it writes the model with ``sampling.spanwise_gain`` fitted to them (the planes
    carrying a known gain give it back), named after its parent and with its data recorded; planes
    of another case are refused."""
    from cfdseed.checkpoint import read_checkpoint
    from cfdseed.model import load_generator
    from cfdseed.slices import DatasetWriter

    model = tiny_conditional(tmp_path / "tiny.pt")
    h = load_generator(model, device="cpu")
    gain = np.random.default_rng(1).uniform(0.3, 1.4, (3, h.ny, h.nz // 2))
    f = np.fft.rfft(h.sample(32, seed=1000).astype(np.float64), axis=-1)
    f[..., 1:] *= gain
    planes = np.fft.irfft(f, n=h.nz, axis=-1).astype(np.float32)

    def dataset(name, lz):
        attrs = dict(re_tau=h.re_tau, nu=h.nu, u_tau=h.u_tau, ly=h.ly, lz=lz, source="test")
        with DatasetWriter(tmp_path / name, h.y, np.arange(h.nz) * lz / h.nz, attrs=attrs) as w:
            w.append(planes)
        return str(tmp_path / name)

    script = ROOT / "benchmarks" / "spanwise_gain.py"
    assert "benchmarks/spanwise_gain.py --model" in CARD.read_text(), "the card no longer says the command"
    out = tmp_path / "gained.pt"
    proc = subprocess.run([sys.executable, str(script), "--model", str(model), "--data", dataset("own.h5", h.lz),
                           "--out", str(out), "--samples", "32", "--seed", "1000"],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    ck = read_checkpoint(out)
    np.testing.assert_allclose(ck["sampling"]["spanwise_gain"], gain, rtol=1e-3)
    assert ck["metadata"]["parent"] == "tiny" and ck["metadata"]["spanwise_gain_planes"] == 32
    assert "training" not in ck and tuple(load_generator(out, device="cpu").spanwise_gain.shape) == (3, h.ny, h.nz // 2)
    proc = subprocess.run([sys.executable, str(script), "--model", str(model), "--data", dataset("other.h5", 2 * h.lz),
                           "--out", str(tmp_path / "no.pt"), "--samples", "32"],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode != 0 and "lz" in proc.stderr and not (tmp_path / "no.pt").exists()
