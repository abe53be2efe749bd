"""WGAN-GP training: checkpoints, resume determinism, bad input, eval hook, DDP equivalence (the losses:
test_losses.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import types
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from cfdseed import CheckpointError, ConfigError, DatasetError, load_generator
from cfdseed.checkpoint import read_checkpoint, save_checkpoint
from cfdseed.cli import main as cli_main
from cfdseed.config import Config, apply_overrides, to_toml
from cfdseed.data import split_indices
from cfdseed.grid import wall_normal
from cfdseed.model import Generator
from cfdseed.slices import DatasetWriter, open_dataset
from cfdseed.targets import dataset_target
from cfdseed.train import train

torch.set_num_threads(1)
ATTRS = dict(re_tau=180.0, nu=1.0 / 180.0, u_tau=1.0, ly=2.0, lz=np.pi, source="synthetic")


def write_dataset(path, n=40, ny=9, nz=8, seed=0, y=None):
    """Random spanwise-periodic fields with a channel-like mean profile."""
    rng = np.random.default_rng(seed)
    y = wall_normal("chebyshev", ny, 2.0) if y is None else y
    prof = (1.0 - (y - 1.0) ** 2)[None, :, None]
    kz = np.arange(nz) * 2 * np.pi / nz
    phase = rng.uniform(0, 2 * np.pi, (n, 3, 1, 1))
    f = 0.3 * prof * np.sin(kz + phase) + 0.1 * prof * rng.standard_normal((n, 3, ny, nz))
    f[:, 0] += 5.0 * prof
    with DatasetWriter(path, y, np.arange(nz) * np.pi / nz, attrs=ATTRS) as w:
        w.append(f, t=np.arange(n) * 0.1)
    return f


def tiny_config(data, out, *extra):
    return apply_overrides(Config(), [
        f"data.path={data}", f"log.out={out}", "model.preset=cpu-tiny", "model.latent_dim=16",
        "train.iterations=4", "train.batch_size=8", "train.n_critic=2", "log.eval_every=0",
        "log.progress=false", "log.plot=false", *extra])


@pytest.fixture
def dataset(tmp_path):
    p = tmp_path / "data.h5"
    write_dataset(p)
    return p


def _weights(path):
    ck = torch.load(path, weights_only=True)
    return ck["generator"], ck.get("training", {}).get("critic")


def _assert_same_run(a: Path, b: Path) -> None:
    """Two training folders hold bit-identical generators (``model.pt``) and critics (``ckpt.pt``)."""
    for i, name in ((0, "model.pt"), (1, "ckpt.pt")):
        wa, wb = _weights(a / name)[i], _weights(b / name)[i]
        assert wa.keys() == wb.keys()
        for k in wa:
            assert torch.equal(wa[k], wb[k]), (name, k)


def test_spectrum_target_from_data_pools_the_generated_planes(planes, tmp_path):
    """train.spectrum_target = "data": the target is the training planes' pooled power (rows
    mirrored under the wall flip; the data's own planes score ~0 against it); a conditional run
    with it logs a positive spectrum loss, and an unknown target is refused."""
    from cfdseed.config import ConfigError
    from cfdseed.losses import pooled_power, spectrum_error

    g = torch.Generator().manual_seed(0)  # not the global stream: the margin must not depend on test order
    x = torch.randn(64, 3, 5, 8, generator=g)
    assert spectrum_error(pooled_power([x]), pooled_power([x[:32], x[32:]])).item() < 1e-12
    assert spectrum_error(pooled_power([x]), pooled_power([x.flip(-1)])).item() < 1e-10  # z reflection
    loud = x + 0.5 * torch.tensor([(-1.0) ** k for k in range(8)]) * torch.randn(64, 3, 5, 1, generator=g)
    assert spectrum_error(pooled_power([x]), pooled_power([loud])).item() > 0.05
    res = train(cond_config(planes, tmp_path / "run", "train.spectrum_weight=0.5", "train.unroll=2",
                            "train.spectrum_target=data"))
    assert res.iteration == 4 and np.isfinite(res.last["spectrum"]) and res.last["spectrum"] > 0
    with pytest.raises(ConfigError, match="spectrum_target"):
        cond_config(planes, tmp_path / "bad", "train.spectrum_target=real")


def test_few_iterations_finite_losses_loadable_model(dataset, tmp_path):
    cfg = tiny_config(dataset, tmp_path / "run", "train.physics_weight=1.0", "log.plot=true",
                      "data.augment_wall=true", "train.spectrum_weight=0.5")
    res = train(cfg)
    assert res.iteration == 4 and not res.interrupted
    assert all(np.isfinite(v) for v in res.last.values()) and res.last["physics"] > 0 and res.last["spectrum"] > 0
    run = tmp_path / "run"
    for name in ("ckpt.pt", "model.pt", "config.toml", "log.csv", "losses.png"):
        assert (run / name).is_file(), name
    h = load_generator(run / "model.pt", device="cpu")
    x = h.sample(6, seed=0)
    assert x.shape == (6, 3, 9, 8) and np.all(np.isfinite(x))
    with open_dataset(dataset) as ds:  # the fixture's fields, and the split the trainer made of them
        f = ds.read(slice(None))
        d = cfg.data
        train_idx, _ = split_indices(ds.n, val_fraction=d.val_fraction, seed=cfg.train.seed, mode=d.split,
                                     blocks=d.split_blocks, t=ds.t, gap=d.val_gap)
    mean, std = f[:, 0].mean(axis=(0, 2)), f[:, 0].std(axis=(0, 2))  # (ny,)
    # physical units: each row denormalised around the data's mean (an untrained generator's
    # normalised output stays within a few units; the centre's mean is 5, its std ~0.25)
    assert np.all(np.abs(x[:, 0].mean(axis=(0, 2)) - mean) <= 4 * std + 1e-3)
    assert "training" not in torch.load(run / "model.pt", weights_only=True)
    assert len((run / "log.csv").read_text().strip().splitlines()) == 5
    # the training data's statistics travel with the model (its default calibration target): the
    # training samples' own, every profile
    t = h.statistics
    assert t is not None and t.re_tau == 180.0 and t.y_delta[0] == 0.0 and t.y_delta[-1] == pytest.approx(1.0)
    want = dataset_target(dataset, train_idx)
    for k in ("y_delta", "U", "uu", "vv", "ww", "uv"):
        np.testing.assert_allclose(getattr(t, k), getattr(want, k), rtol=1e-5, atol=1e-7, err_msg=k)
    assert np.all(t.uv ** 2 <= t.uu * t.vv + 1e-12)


def test_resume_after_interrupt_equals_uninterrupted(dataset, tmp_path):
    extra = ("log.checkpoint_every=100", "data.augment_wall=true")
    train(tiny_config(dataset, tmp_path / "full", *extra))

    def ctrl_c(it):
        if it == 2:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGTERM)  # both in one iteration: one clean stop

    cfg = tiny_config(dataset, tmp_path / "cut", *extra)
    res = train(cfg, _on_iteration=ctrl_c)
    assert res.interrupted and res.iteration == 2
    assert read_checkpoint(tmp_path / "cut" / "ckpt.pt")["training"]["iteration"] == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    res = train(cfg, resume=True)
    assert res.iteration == 4 and res.iterations_run == 2
    _assert_same_run(tmp_path / "full", tmp_path / "cut")
    rows = (tmp_path / "cut" / "log.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1.0", "2.0", "3.0", "4.0"]


def test_resume_from_a_moved_dataset_equals_uninterrupted_and_other_data_is_flagged(dataset, tmp_path, caplog):
    """data.path may change on resume: a moved copy (same content digest) resumes exactly; other data
    (regenerated planes, here another seed) continues with a warning naming both digests."""
    extra = ("log.checkpoint_every=100",)
    train(tiny_config(dataset, tmp_path / "full", *extra))
    train(tiny_config(dataset, tmp_path / "cut", *extra, "train.iterations=2"))
    moved = tmp_path / "elsewhere" / "data.h5"
    moved.parent.mkdir()
    moved.write_bytes(dataset.read_bytes())
    dataset.unlink()
    caplog.set_level("INFO", logger="cfdseed.train")
    train(tiny_config(moved, tmp_path / "cut", *extra), resume=True)
    _assert_same_run(tmp_path / "full", tmp_path / "cut")
    assert "dataset moved" in caplog.text and "other data" not in caplog.text
    assert read_checkpoint(tmp_path / "cut" / "ckpt.pt")["training"]["config"]["data"]["path"] == str(moved)

    other = tmp_path / "other.h5"
    write_dataset(other, seed=1)
    caplog.clear()
    res = train(tiny_config(other, tmp_path / "cut", *extra, "train.iterations=5"), resume=True)
    assert res.iteration == 5 and "resuming on other data" in caplog.text
    with open_dataset(moved) as a, open_dataset(other) as b:
        assert a.identity() != b.identity() and len(a.identity()) == 16
        from cfdseed.checkpoint import model_summary  # the model records what it was trained on
        assert model_summary(tmp_path / "full" / "model.pt")["dataset_identity"] == a.identity()
        assert model_summary(tmp_path / "cut" / "model.pt")["dataset_identity"] == b.identity()


def test_auto_resume_starts_continues_and_finishes_like_one_run(dataset, tmp_path):
    """resume="auto" (--auto-resume): a new run in an empty folder, the exact continuation of an
    interrupted one, nothing more once finished; a start that never checkpointed is started again,
    a folder holding weights without a checkpoint is refused."""
    extra = ("log.checkpoint_every=100",)
    train(tiny_config(dataset, tmp_path / "full", *extra))
    cfg = tiny_config(dataset, tmp_path / "job", *extra)

    def stop_at_2(it):
        if it == 2:
            signal.raise_signal(signal.SIGTERM)  # a batch system's preemption

    first = train(cfg, resume="auto", _on_iteration=stop_at_2)
    assert first.interrupted and first.iteration == 2
    again = train(cfg, resume="auto")  # the requeued job: the same command
    assert again.iteration == 4 and again.iterations_run == 2
    _assert_same_run(tmp_path / "full", tmp_path / "job")
    done = train(cfg, resume="auto")
    assert done.iteration == 4 and done.iterations_run == 0

    killed = tmp_path / "killed"  # a start that never checkpointed: its files only
    killed.mkdir()
    (killed / "config.toml").write_text("# from a job killed at once\n")
    (killed / "log.csv").write_text("iteration\n")
    train(tiny_config(dataset, killed, *extra), resume="auto")
    _assert_same_run(tmp_path / "full", killed)
    (killed / "ckpt.pt").unlink()  # weights without a checkpoint: not the start's files
    with pytest.raises(ConfigError, match="already holds a run"):
        train(tiny_config(dataset, killed, *extra), resume="auto")
    with pytest.raises(ConfigError, match="must be True, False or 'auto'"):
        train(cfg, resume="yes")
    with pytest.raises(ConfigError, match="exclude each other"):
        train(cfg, resume="auto", force=True)


def _toml(tmp_path, cfg):
    path = tmp_path / "cfg.toml"
    path.write_text(to_toml(cfg))
    return path


def test_a_diverging_run_stops_with_its_last_finite_checkpoint(dataset, tmp_path, capsys):
    """A learning rate that blows the weights up ends training with a TrainingError (the CLI: exit 2
    and the message) instead of writing a NaN model; ckpt.pt keeps the last finite state, and a
    checkpoint file holding non-finite weights is refused when read."""
    from cfdseed import TrainingError

    run = tmp_path / "div"
    with pytest.raises(TrainingError, match=r"diverged .* keeps iteration (\d+)") as info:
        train(tiny_config(dataset, run, "train.iterations=40", "log.checkpoint_every=1", "train.lr_g=1e2",
                          "train.lr_c=1e2"))
    ck = read_checkpoint(run / "ckpt.pt")
    kept = int(re.search(r"keeps iteration (\d+)", str(info.value)).group(1))
    assert ck["training"]["iteration"] == kept < 40 and not (run / "model.pt").exists()
    assert all(bool(torch.isfinite(v).all()) for v in ck["generator"].values() if v.is_floating_point())
    rc = cli_main(["train", str(_toml(tmp_path, tiny_config(dataset, tmp_path / "cli", "train.iterations=40",
                                                              "train.lr_g=1e30", "train.lr_c=1e30")))])
    assert rc == 2 and "training diverged" in capsys.readouterr().err
    bad = dict(ck)
    bad["generator"] = {k: v.clone() for k, v in ck["generator"].items()}
    next(v for v in bad["generator"].values() if v.is_floating_point()).view(-1)[0] = float("nan")
    from cfdseed.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "nan.pt", bad)
    with pytest.raises(CheckpointError, match="non-finite generator weights"):
        read_checkpoint(tmp_path / "nan.pt")


def test_loader_workers_do_not_change_results(dataset, tmp_path, caplog):
    train(tiny_config(dataset, tmp_path / "w0", "train.iterations=2"))
    train(tiny_config(dataset, tmp_path / "w1", "train.iterations=2", "data.num_workers=1",
                      "log.tensorboard=true"))
    a, b = _weights(tmp_path / "w0" / "model.pt")[0], _weights(tmp_path / "w1" / "model.pt")[0]
    assert all(torch.equal(a[k], b[k]) for k in a)
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        assert "tensorboard is not installed" in caplog.text
    else:
        assert (tmp_path / "w1" / "tb").is_dir()


def test_more_loader_workers_than_cpus_is_refused_before_any_starts(dataset, tmp_path):
    from cfdseed.train import _usable_cpus

    cpus = _usable_cpus()
    with pytest.raises(ConfigError, match=rf"data.num_workers = {cpus + 1} exceeds the {cpus} CPU\(s\)"):
        train(tiny_config(dataset, tmp_path / "w", "train.iterations=2", f"data.num_workers={cpus + 1}"))
    assert not (tmp_path / "w").exists()  # refused before the run folder was made


def test_seeded_runs_are_identical_and_seed_matters(dataset, tmp_path):
    train(tiny_config(dataset, tmp_path / "a", "train.iterations=2"))
    train(tiny_config(dataset, tmp_path / "b", "train.iterations=2"))
    train(tiny_config(dataset, tmp_path / "c", "train.iterations=2", "train.seed=1"))
    a, b, c = (_weights(tmp_path / n / "model.pt")[0] for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resume_errors(dataset, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        train(tiny_config(dataset, tmp_path / "none"), resume=True)
    train(tiny_config(dataset, tmp_path / "r", "train.iterations=1"))
    with pytest.raises(ConfigError, match=r"train.lr_g: 0.0005 -> 0.001"):
        train(tiny_config(dataset, tmp_path / "r", "train.lr_g=1e-3"), resume=True)
    res = train(tiny_config(dataset, tmp_path / "r", "train.iterations=2"), resume=True)  # extend
    assert res.iteration == 2 and res.iterations_run == 1


def _bad(path, **changes):
    f = write_dataset(path)
    with h5py.File(path, "r+") as h:
        if "nan" in changes:
            h["fields"][7, 1, 2, 3] = np.nan
        if "drop" in changes:
            del h.attrs[changes["drop"]]
    return f


@pytest.mark.parametrize("case,err,match", [
    ("nan", DatasetError, r"sample\(s\) \[7\] hold NaN"),
    ("attr", DatasetError, "missing attribute.*nu"),
    ("few", DatasetError, "at least 64 needed"),
    ("split", DatasetError, "fewer than one batch"),
    ("wall", DatasetError, "symmetric"),
    ("rank", DatasetError, r"\(N, 3, ny, nz\)"),
    ("nodata", ConfigError, "data.path is empty"),
    ("ddp", ConfigError, "divisible"),
    ("preset", ConfigError, r"\[model\]: unknown model preset 'huge'"),
])
def test_bad_input_fails_before_training(tmp_path, case, err, match, monkeypatch):
    p = tmp_path / "bad.h5"
    extra: list[str] = []
    if case == "nan":
        _bad(p, nan=True)
    elif case == "attr":
        _bad(p, drop="nu")
    elif case == "few":
        write_dataset(p, n=20)
        extra = ["train.batch_size=64"]
    elif case == "split":
        write_dataset(p, n=20)
        extra = ["train.batch_size=16", "data.val_fraction=0.5"]
    elif case == "wall":
        y = wall_normal("tanh:2", 9, 2.0) ** 1.3
        write_dataset(p, y=y * 2.0 / y[-1])
        extra = ["data.augment_wall=true"]
    elif case == "rank":
        with h5py.File(p, "w") as h:
            h["fields"], h["y"], h["z"] = np.zeros((10, 9, 8), np.float32), np.linspace(0, 2, 9), np.arange(8.0)
    elif case == "preset":
        write_dataset(p)
        extra = ["model.preset=huge"]
    elif case == "ddp":
        write_dataset(p)
        monkeypatch.setattr("cfdseed._torch_dist.TorchDist.__init__", _fake_two_ranks)
        extra = ["train.batch_size=9"]
    cfg = tiny_config("" if case == "nodata" else p, tmp_path / "run", *extra)
    with pytest.raises(err, match=match):
        train(cfg)
    assert not (tmp_path / "run" / "ckpt.pt").exists()


def _fake_two_ranks(self, device_kind):
    self.world, self.rank, self.local_rank, self.owned = 2, 0, 0, False
    self.backend, self.device = "gloo", torch.device("cpu")


def test_eval_hook_logs_metrics_and_keeps_best(dataset, tmp_path, monkeypatch):
    calls = []
    scores = iter([3.0, 1.0, 2.0])

    def slice_metrics(real, fake, y, lz, *, nu, u_tau, ly):
        calls.append((real.copy(), fake.shape, y.shape, lz, nu, u_tau, ly))
        return {"combined": next(scores), "mean_u": 0.5}

    fake_mod = types.ModuleType("cfdseed.metrics")
    fake_mod.slice_metrics = slice_metrics
    monkeypatch.setitem(sys.modules, "cfdseed.metrics", fake_mod)
    res = train(tiny_config(dataset, tmp_path / "run", "train.iterations=6", "log.eval_every=2",
                            "log.eval_samples=3"))
    assert len(calls) == 3 and res.best_combined == 1.0
    real, fshape, yshape, lz, nu, u_tau, ly = calls[0]
    data = h5py.File(dataset)["fields"][...]
    assert real.shape == (3, 3, 9, 8) and fshape == (3, 3, 9, 8) and yshape == (9,)
    assert any(np.array_equal(real[0], d) for d in data)  # physical units, straight from the file
    assert (lz, nu, u_tau, ly) == (ATTRS["lz"], ATTRS["nu"], ATTRS["u_tau"], ATTRS["ly"])  # ly: not inferred from y
    best = read_checkpoint(tmp_path / "run" / "best.pt")
    assert best["metadata"]["iteration"] == 4 and best["metadata"]["combined"] == 1.0
    rows = (tmp_path / "run" / "metrics.csv").read_text().strip().splitlines()
    assert rows[0] == "iteration,combined,mean_u" and len(rows) == 4

    def broken(*a, **k):
        raise RuntimeError("metric bug")

    fake_mod.slice_metrics = broken
    res = train(tiny_config(dataset, tmp_path / "run2", "train.iterations=2", "log.eval_every=1"))
    assert res.iteration == 2 and res.best_combined is None  # logged, training went on


def test_eval_halves_scores_each_half_apart(dataset, tmp_path):
    """log.eval_halves: the run's metrics carry each half's profile errors, and best.pt is kept by
    the combined value that counts each profile's worse half; a resume that switches it chooses
    best.pt afresh (the two kinds of combined do not compare); a grid it cannot halve is refused."""
    from cfdseed.stats import PROFILES

    run = tmp_path / "run"
    train(tiny_config(dataset, run, "train.iterations=2", "log.eval_every=2", "log.eval_samples=3"))
    folded_best = read_checkpoint(run / "best.pt")["metadata"]["combined"]
    ck = read_checkpoint(run / "ckpt.pt")
    ck["training"]["best"] = -1.0  # a folded best nothing beats: kept, best.pt would never move again
    save_checkpoint(run / "ckpt.pt", ck)
    res = train(tiny_config(dataset, run, "train.iterations=4", "log.eval_every=2", "log.eval_samples=3",
                            "log.eval_halves=true"), resume=True)
    lines = (run / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert {f"{k} {h}" for k in PROFILES for h in ("lower", "upper")} | {"combined_folded"} <= set(header)
    row = {k: float(v) for k, v in zip(header, lines[-1].split(","))}
    worse = [max(row[f"{k} lower"], row[f"{k} upper"]) for k in PROFILES]
    spectra = np.mean([row["E_uu"], row["E_vv"], row["E_ww"]])
    assert row["combined"] == pytest.approx(0.5 * np.mean(worse) + 0.5 * spectra, rel=1e-9)
    best = read_checkpoint(run / "best.pt")["metadata"]
    assert best["iteration"] == 4 and best["combined"] == pytest.approx(row["combined"], rel=1e-9)
    assert res.best_combined == pytest.approx(row["combined"]) and folded_best != best["combined"]
    skewed = tmp_path / "skewed.h5"
    write_dataset(skewed, y=np.linspace(0.0, 2.0, 9) ** 1.2 / 2.0 ** 0.2)  # walls at 0 and 2, not symmetric
    with pytest.raises(ConfigError, match="eval_halves needs y symmetric"):
        train(tiny_config(skewed, tmp_path / "run2", "log.eval_every=2", "log.eval_halves=true"))


def test_val_path_validates_on_a_file_of_its_own(dataset, planes, tmp_path, caplog):
    """data.val_path: data.path trains whole and the fixed validation batch comes from the other file
    (plane mode: its first samples; conditional: its own pairs); a file on another grid or in other
    units, and a split asked for as well, are refused; a resume onto another validation file chooses
    best.pt afresh, the same file keeps it."""
    from cfdseed import traindata
    from test_pairs import write_planes

    val = tmp_path / "val.h5"
    want = write_dataset(val, n=12, seed=5)
    cfg = tiny_config(dataset, tmp_path / "x", f"data.val_path={val}", "data.val_fraction=0")
    split = traindata.open_data(cfg, None)
    assert split.train.tolist() == list(range(40)) and split.val.tolist() == list(range(12))
    np.testing.assert_array_equal(split.eval_batch(cfg, 3), want[:3].astype(np.float32))
    cond_val = tmp_path / "cond_val.h5"
    boxes = write_planes(cond_val, times=2, nx=8, seed=9)
    ccfg = cond_config(planes, tmp_path / "y", f"data.val_path={cond_val}", "data.val_fraction=0")
    csplit = traindata.open_data(ccfg, None)
    assert csplit.train.size == 48 and csplit.val.size == 16  # 2 snapshots of 8 planes, wrap included
    batch = csplit.eval_batch(ccfg, 4)
    assert batch.shape == (4, 2, 3, 9, 8)
    real = {b.astype(np.float32).tobytes() for b in boxes.reshape(-1, 3, 9, 8)}
    assert all(plane.tobytes() in real for plane in batch.reshape(-1, 3, 9, 8))  # the validation file's planes

    with pytest.raises(ConfigError, match="val_fraction"):
        tiny_config(dataset, tmp_path / "x", f"data.val_path={val}")
    for other, match in ((dict(nz=6), "nz = 6"), (dict(seed=5, n=12, y=wall_normal("uniform", 9, 2.0)),
                                                  "wall-normal points")):
        bad = tmp_path / "bad.h5"
        write_dataset(bad, **other)
        with pytest.raises(DatasetError, match=match):
            traindata.open_data(tiny_config(dataset, tmp_path / "x", f"data.val_path={bad}", "data.val_fraction=0"),
                                None)
    with h5py.File(bad, "a") as f:  # right grid, wall units of another u_tau
        f.attrs["u_tau"] = 1.05
    with pytest.raises(DatasetError, match="u_tau"):
        traindata.open_data(tiny_config(dataset, tmp_path / "x", f"data.val_path={bad}", "data.val_fraction=0"), None)

    run = tmp_path / "run"
    common = ("data.val_fraction=0", "log.eval_every=2", "log.eval_samples=3")
    train(tiny_config(dataset, run, f"data.val_path={val}", "train.iterations=2", *common))
    assert read_checkpoint(run / "best.pt")["metadata"]["validation"] == str(val)
    ck = read_checkpoint(run / "ckpt.pt")
    ck["training"]["best"] = -1.0  # a best nothing beats
    save_checkpoint(run / "ckpt.pt", ck)
    train(tiny_config(dataset, run, f"data.val_path={val}", "train.iterations=4", *common), resume=True)
    assert read_checkpoint(run / "best.pt")["metadata"]["iteration"] == 2  # same validation file: kept
    other = tmp_path / "val2.h5"
    write_dataset(other, n=12, seed=6)
    with caplog.at_level("WARNING", logger="cfdseed"):
        train(tiny_config(dataset, run, f"data.val_path={other}", "train.iterations=6", *common), resume=True)
    assert "validation set changed on resume" in caplog.text
    best = read_checkpoint(run / "best.pt")["metadata"]
    assert best["iteration"] == 6 and best["validation"] == str(other)


def test_cli_train_and_bad_config(dataset, tmp_path, capsys):
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(to_toml(tiny_config(dataset, tmp_path / "ignored", "train.iterations=2")))
    rc = cli_main(["train", str(cfg_path), "--device", "cpu", "--out", str(tmp_path / "cli"),
                   "--set", "train.iterations=1"])
    assert rc == 0 and (tmp_path / "cli" / "model.pt").is_file()
    assert "iterations = 1" in (tmp_path / "cli" / "config.toml").read_text()
    rc = cli_main(["train", str(cfg_path), "--device", "cpu", "--out", str(tmp_path / "cli"), "--auto-resume"])
    assert rc == 0 and read_checkpoint(tmp_path / "cli" / "ckpt.pt")["training"]["iteration"] == 2  # went on to 2
    rc = cli_main(["train", str(cfg_path), "--set", "train.iterations=fast"])
    assert rc == 2 and "train.iterations: expected an integer" in capsys.readouterr().err


def test_cli_train_refuses_a_run_folder_it_cannot_create(dataset, tmp_path, capsys):
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(to_toml(tiny_config(dataset, tmp_path / "ignored")))
    assert cli_main(["train", str(cfg_path), "--device", "cpu", "--out", "/proc/runx"]) == 2
    err = capsys.readouterr().err
    assert "/proc/runx" in err and "cannot" in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["plane", "conditional"])
def test_ddp_two_processes_match_one_process(dataset, planes, tmp_path, kind):
    """2-process gloo run (torchrun) == 1-process run with the same global batch, in both modes."""
    extra = ("train.iterations=3", "data.augment_wall=true")
    make, data = (tiny_config, dataset) if kind == "plane" else (cond_config, planes)
    train(make(data, tmp_path / "one", *extra))
    cfg_path = tmp_path / "ddp.toml"
    cfg_path.write_text(to_toml(make(data, tmp_path / "two", *extra)))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           "-m", "cfdseed.cli", "train", str(cfg_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    g1, c1 = _weights(tmp_path / "one" / "ckpt.pt")
    g2, c2 = _weights(tmp_path / "two" / "ckpt.pt")
    for k in g1:
        torch.testing.assert_close(g2[k], g1[k], rtol=1e-4, atol=1e-5)
    for k in c1:
        torch.testing.assert_close(c2[k], c1[k], rtol=1e-4, atol=1e-5)
    ck = read_checkpoint(tmp_path / "one" / "ckpt.pt")
    torch.manual_seed(0)  # the comparison means something only if training moved the weights
    from cfdseed.conditional import CondGenerator

    g0 = (Generator if kind == "plane" else CondGenerator)(ck["arch"]).state_dict()
    assert max((g1[k] - g0[k]).abs().max().item() for k in g0) > 1e-3
    if kind == "plane":  # the requeued job under DDP: both processes see the checkpoint and go on
        proc = subprocess.run(cmd + ["--auto-resume", "--set", "train.iterations=4"], env=env, capture_output=True,
                              text=True, timeout=240)
        assert proc.returncode == 0 and "continuing from" in proc.stderr, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert read_checkpoint(tmp_path / "two" / "ckpt.pt")["training"]["iteration"] == 4


def test_existing_run_folder_refused_unless_resume_or_force(dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    run = tmp_path / "run"
    train(tiny_config(dataset, run, "train.iterations=3", "log.eval_every=3", "log.eval_samples=4"))
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ  # set for the run only
    first = (run / "model.pt").read_bytes()
    with pytest.raises(ConfigError, match=r"already holds a run \(ckpt.pt, model.pt, best.pt.*--resume.*--force"):
        train(tiny_config(dataset, run, "train.iterations=1"))
    assert (run / "model.pt").read_bytes() == first and read_checkpoint(run / "ckpt.pt")["training"]["iteration"] == 3
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(to_toml(tiny_config(dataset, run, "train.iterations=1")))
    assert cli_main(["train", str(cfg_path)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="exclude each other"):
        train(tiny_config(dataset, run), resume=True, force=True)
    with pytest.raises(DatasetError):  # a failing set-up leaves the old run alone
        train(tiny_config(tmp_path / "none.h5", run, "train.iterations=1"), force=True)
    assert (run / "best.pt").is_file()
    assert cli_main(["train", str(cfg_path), "--force"]) == 0
    assert read_checkpoint(run / "ckpt.pt")["training"]["iteration"] == 1
    assert not (run / "best.pt").exists() and not (run / "metrics.csv").exists()  # the old run's files are gone


def _ddp_fault(tmp_path, cfg, inject):
    """``train(cfg)`` under torchrun on 2 processes after the script lines ``inject`` (a fault on one
    rank): each rank prints the exception it ends with; returns those lines, sorted by rank."""
    cfg_path = tmp_path / "ddp.toml"
    cfg_path.write_text(to_toml(cfg))
    script = tmp_path / "fault.py"
    script.write_text(
        "import os, sys\n"
        "from cfdseed.config import load_config\n"
        "from cfdseed.train import train\n"
        + inject +
        "try:\n"
        "    train(load_config(sys.argv[1]))\n"
        "except Exception as exc:\n"  # one write() per line: print's text and newline interleaved
        "    os.write(1, f\"rank {os.environ['RANK']}: {type(exc).__name__}: {exc}\\n\".encode())\n")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script),
           str(cfg_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = sorted(line for line in proc.stdout.splitlines() if line.startswith("rank "))
    assert len(lines) == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    return lines


@pytest.mark.slow
def test_ddp_one_rank_failing_to_open_the_dataset_fails_every_rank(dataset, tmp_path):
    """Rank 1 cannot open the dataset: both ranks raise the same DatasetError, none hangs."""
    lines = _ddp_fault(tmp_path, tiny_config(dataset, tmp_path / "run"),
                       "import cfdseed.traindata as t\n"
                       "from cfdseed.errors import DatasetError\n"
                       "opened = t.open_dataset\n"
                       "def open_dataset(path, **kw):\n"
                       "    if os.environ['RANK'] == '1':\n"
                       "        raise DatasetError(f'dataset file {str(path)!r} does not exist')\n"
                       "    return opened(path, **kw)\n"
                       "t.open_dataset = open_dataset\n")
    assert all("DatasetError" in line and "does not exist" in line for line in lines), lines
    assert lines[0].startswith("rank 0: DatasetError: [rank 1] dataset file")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_ddp_rank0_failing_to_write_a_checkpoint_fails_every_rank(dataset, tmp_path):
    """Rank 0 writes the run's files alone; a write failing there (a full disk) ends every rank with
    the same error instead of leaving the others in the next step's all-reduce."""
    lines = _ddp_fault(tmp_path, tiny_config(dataset, tmp_path / "run", "log.checkpoint_every=2"),
                       "import cfdseed.train as t\n"
                       "def full(path, payload):\n"
                       "    raise OSError(f'No space left on device: {path.name}')\n"
                       "if os.environ['RANK'] == '0':\n"
                       "    t.save_checkpoint = full\n")
    assert all("OSError" in line and "No space left on device: ckpt.pt" in line for line in lines), lines


@pytest.mark.slow
def test_ddp_one_rank_failing_to_read_a_batch_fails_every_rank(dataset, tmp_path):
    """A batch read failing on rank 1 mid-run (a truncated file, a lost mount) ends both ranks with
    its error. Before, rank 0 waited in the gradient all-reduce: under torchrun it got gloo's opaque
    "connection closed by peer" once rank 1's process had exited (a rank that lives on, e.g. a caller
    that catches the error, left it hanging)."""
    lines = _ddp_fault(tmp_path, tiny_config(dataset, tmp_path / "run"),
                       "import cfdseed.data as d\n"
                       "read = d.SliceDataset.__getitems__\n"
                       "calls = [0]\n"
                       "def flaky(self, keys):\n"
                       "    calls[0] += 1\n"
                       "    if os.environ['RANK'] == '1' and calls[0] == 4:\n"
                       "        raise OSError('Can\\'t read data (truncated file)')\n"
                       "    return read(self, keys)\n"
                       "d.SliceDataset.__getitems__ = flaky\n")
    assert all("OSError" in line and "truncated file" in line for line in lines), lines
    assert lines[0].startswith("rank 0: OSError: [rank 1]"), lines


# -- conditional mode (model.kind = "conditional": pairs of consecutive planes) ---------------------------
@pytest.fixture
def planes(tmp_path):
    from test_pairs import write_planes

    p = tmp_path / "planes.h5"
    write_planes(p, times=6, nx=8)  # 6 snapshots of 8 planes pi/8 apart: 48 pairs (wrap included)
    return p


def cond_config(data, out, *extra):
    return tiny_config(data, out, "model.kind=conditional", "model.preset=cond-tiny", "model.latent_dim=8",
                       "data.augment_wall=true", *extra)


#: Every generator loss term, as (kind, weight key, other settings it needs).
_LOSS_TERMS = [
    ("plane", "physics_weight", ()),
    ("plane", "spectrum_weight", ()),
    ("plane", "spectrum_weight", ("train.spectrum_target=data",)),
    ("plane", "uv_weight", ()),
    ("conditional", "physics_weight", ("train.unroll=2",)),
    ("conditional", "physics_weight", ("train.unroll=2", "train.replay=true")),
    ("conditional", "spectrum_weight", ("train.unroll=2",)),
    ("conditional", "spectrum_weight", ("train.unroll=2", "train.spectrum_target=data")),
    ("conditional", "innovation_weight", ("train.unroll=2",)),
    ("conditional", "uv_weight", ("train.unroll=2",)),
    ("conditional", "lag_weight", ("train.unroll=2",)),
]


@pytest.mark.parametrize(("kind", "key", "extra"), _LOSS_TERMS)
def test_every_weighted_loss_acts_on_the_generator(kind, key, extra, planes, dataset, tmp_path):
    """Doubling a loss's weight changes the trained generator: the term enters G's objective (the
    same targets are built and the same random numbers drawn in both runs, so a term that is only
    computed and logged leaves the weights bit-identical)."""
    def run(weight, name):
        config = cond_config if kind == "conditional" else tiny_config
        train(config(planes if kind == "conditional" else dataset, tmp_path / name, f"train.{key}={weight}",
                     "train.iterations=2", *extra))
        return _weights(tmp_path / name / "model.pt")[0]

    once, twice = run(0.5, "once"), run(1.0, "twice")
    assert any(not torch.equal(once[k], twice[k]) for k in once), f"train.{key} with {extra} does not reach G"


@pytest.mark.parametrize(("key", "a", "b"), [
    ("train.gp_lambda", "10.0", "1.0"), ("train.lr_g", "5e-4", "1e-3"), ("train.lr_c", "5e-4", "1e-3"),
    ("train.betas", "[0.0, 0.9]", "[0.5, 0.9]"), ("data.augment_roll", "true", "false"),
    ("data.augment_spanwise", "true", "false"), ("data.augment_wall", "true", "false"),
])
def test_training_settings_change_the_trained_generator(key, a, b, dataset, tmp_path):
    """Each setting reaches the run (its two values train different generators from the same seed)."""
    def run(value, name):
        train(tiny_config(dataset, tmp_path / name, f"{key}={value}", "train.iterations=2"))
        return _weights(tmp_path / name / "model.pt")[0]

    wa, wb = run(a, "a"), run(b, "b")
    assert any(not torch.equal(wa[k], wb[k]) for k in wa), f"{key} does not reach the run"


def test_conditional_run_finishes_with_a_loadable_model(planes, tmp_path):
    from cfdseed.conditional import ConditionalHandle

    res = train(cond_config(planes, tmp_path / "run", "train.physics_weight=1.0", "log.eval_every=2",
                            "log.eval_samples=6", "train.spectrum_weight=0.5", "train.unroll=2",
                            "train.innovation_weight=0.5"))
    assert res.iteration == 4 and all(np.isfinite(v) for v in res.last.values()) and res.last["physics"] > 0
    assert res.last["spectrum"] > 0 and res.last["innovation"] > 0
    run = tmp_path / "run"
    ck = read_checkpoint(run / "model.pt")
    assert ck["format_version"] == 3 and ck["arch"]["kind"] == "conditional"
    assert ck["grid"]["dx_plus"] == pytest.approx(np.pi / 8 * 180.0)  # dx u_tau / nu
    assert ck["metadata"]["pairs"] == 48 and ck["metadata"]["wrap"] is True
    h = load_generator(run / "model.pt", device="cpu")
    assert isinstance(h, ConditionalHandle) and h.statistics is not None
    # the rollout's Gaussian start: the training planes' in-plane statistics (nz // 2 + 1, 3 ny, rank)
    assert h.start_modes is not None and tuple(h.start_modes.shape) == (5, 27, 16)
    nxt = h.step(h.sample(3, seed=0), seed=1)
    assert nxt.shape == (3, 3, 9, 8) and np.all(np.isfinite(nxt))
    # validation: slice metrics of the next planes plus the one-step correlation errors; best.pt by combined
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    head = rows[0].split(",")
    assert {"combined", "combined_slices", "R1_u", "R1_v", "R1_w", "E_uu", "rollout_tke", "rollout_uv", "rollout_R1"} <= set(head)
    assert len(rows) == 3
    best = read_checkpoint(run / "best.pt")
    assert best["metadata"]["combined"] == pytest.approx(res.best_combined)
    assert load_generator(run / "best.pt", device="cpu").kind == "conditional"


def test_memory_generator_starts_at_the_data_decorrelation_rate(tmp_path):
    """model.memory: the skip factors start at traindata.memory_init of the run's training split and
    normalisation (mirrored under data.augment_wall; tested exactly in test_traindata.py), then are
    learned on: after one Adam step (lr_g) each is within a step of it. The data's correlation
    varies from row to row and between the halves, so neither a constant, nor all pairs, nor the
    unmirrored correlation lies within a step."""
    from test_traindata import write_noisy_planes

    from cfdseed import traindata

    cfg = cond_config(write_noisy_planes(tmp_path), tmp_path / "m", "model.memory=true", "train.iterations=1",
                      "train.unroll=2")
    res = train(cfg)
    assert res.iteration == 1
    m = read_checkpoint(tmp_path / "m" / "model.pt")["generator"]["memory"][..., 0]  # (3, ny)
    split = traindata.open_data(cfg, None)
    want = traindata.memory_init(cfg, split, split.train, traindata.norm_stats(cfg, split.planes(split.train)))[..., 0]
    assert (want.amax(dim=1) - want.amin(dim=1) > 0.25).all()
    step = cfg.train.lr_g
    assert torch.allclose(m, want, atol=1.5 * step, rtol=0)
    assert (m - want).abs().max() > 0.5 * step  # learned on


def test_init_from_takes_a_packaged_model_s_name(planes, tmp_path, monkeypatch):
    """train.init_from, like every option that takes a checkpoint, loads a packaged model by name."""
    import shutil

    train(cond_config(planes, tmp_path / "a"))
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(tmp_path / "a" / "ckpt.pt", models / "packaged-tiny.pt")
    monkeypatch.setattr("cfdseed.checkpoint.MODELS", models)
    res = train(cond_config(planes, tmp_path / "b", "train.iterations=1", "train.init_from=packaged-tiny"))
    a, b = read_checkpoint(tmp_path / "a" / "ckpt.pt"), read_checkpoint(res.out / "ckpt.pt")
    assert torch.equal(a["norm"]["mean"], b["norm"]["mean"]) and b["metadata"]["init_from"] == "packaged-tiny"


def test_init_from_scores_the_start_first(planes, tmp_path):
    """A run started from another's weights validates them before its first step (iteration 0), so
    best.pt holds the better of the start and what training made of it; a resume does not score
    again, and a run without init_from starts scoring at eval_every."""
    train(cond_config(planes, tmp_path / "a", "train.iterations=2"))
    start = read_checkpoint(tmp_path / "a" / "model.pt")
    extra = ("log.eval_every=2", "log.eval_samples=4")
    train(cond_config(planes, tmp_path / "b", *extra, "train.iterations=2",
                      f"train.init_from={tmp_path / 'a' / 'ckpt.pt'}"))
    rows = [line.split(",") for line in (tmp_path / "b" / "metrics.csv").read_text().splitlines()]
    col = rows[0].index("combined")
    scores = {int(float(r[0])): float(r[col]) for r in rows[1:]}
    assert sorted(scores) == [0, 2]
    best = read_checkpoint(tmp_path / "b" / "best.pt")
    assert best["metadata"]["combined"] == pytest.approx(min(scores.values()), rel=1e-12)
    if best["metadata"]["iteration"] == 0:  # the start won: best.pt is its generator
        assert all(torch.equal(w, start["generator"][k]) for k, w in best["generator"].items())
    train(cond_config(planes, tmp_path / "b", *extra, "train.iterations=4",
                      f"train.init_from={tmp_path / 'a' / 'ckpt.pt'}"), resume=True)
    its = [int(float(line.split(",")[0])) for line in (tmp_path / "b" / "metrics.csv").read_text().splitlines()[1:]]
    assert its == [0, 2, 4]
    train(cond_config(planes, tmp_path / "c", *extra, "train.iterations=2"))
    assert [line.split(",")[0] for line in (tmp_path / "c" / "metrics.csv").read_text().splitlines()[1:]] == ["2.0"]


def test_init_from_starts_a_new_run_from_another_runs_weights(planes, tmp_path):
    """train.init_from: generator, critic, normalisation and start modes of the given checkpoint
    start a fresh run (iteration 0, fresh optimisers); the lag loss is logged; a checkpoint of
    another architecture is refused, naming the key."""
    train(cond_config(planes, tmp_path / "a", "model.memory=true", "train.unroll=2"))
    a = read_checkpoint(tmp_path / "a" / "ckpt.pt")
    extra = ("model.memory=true", "train.unroll=2", "train.iterations=1", "train.lag_weight=1.0",
             "train.seed=7")  # another seed: the weights come from the checkpoint, not the seed
    res = train(cond_config(planes, tmp_path / "b", *extra, f"train.init_from={tmp_path / 'a' / 'ckpt.pt'}"))
    assert res.iteration == 1 and res.last["lag"] > 0
    b = read_checkpoint(tmp_path / "b" / "ckpt.pt")
    fresh = read_checkpoint(train(cond_config(planes, tmp_path / "c", *extra)).out / "ckpt.pt")
    lr = 5e-4  # Config's default learning rates: one Adam step moves a weight by about lr
    for k, w in a["generator"].items():
        assert (b["generator"][k] - w).abs().max() <= 3 * lr, k
    assert any((fresh["generator"][k] - w).abs().max() > 10 * lr for k, w in a["generator"].items())
    for k, w in a["training"]["critic"].items():
        assert (b["training"]["critic"][k] - w).abs().max() <= 3 * lr * 2, k  # n_critic = 2 steps
    assert torch.equal(a["start_modes"], b["start_modes"]) and torch.equal(a["norm"]["mean"], b["norm"]["mean"])
    assert b["metadata"]["init_from"] == str(tmp_path / "a" / "ckpt.pt")
    assert "lag" in (tmp_path / "b" / "log.csv").read_text().splitlines()[0]
    with pytest.raises(CheckpointError, match="train.init_from"):
        train(cond_config(planes, tmp_path / "d", *extra[1:], f"train.init_from={tmp_path / 'a' / 'ckpt.pt'}"))
    # a parameter-free key (the band limit) may be added while fine-tuning; on resume it may not change
    res = train(cond_config(planes, tmp_path / "e", *extra, "model.band_limit=true",
                            f"train.init_from={tmp_path / 'a' / 'ckpt.pt'}"))
    assert read_checkpoint(res.out / "ckpt.pt")["arch"]["band_limit"] is True
    with pytest.raises(ConfigError, match="model.band_limit: True -> False"):
        train(cond_config(planes, tmp_path / "e", *extra, "train.iterations=2",
                          f"train.init_from={tmp_path / 'a' / 'ckpt.pt'}"), resume=True)
    with pytest.raises(ConfigError, match="train.lag_weight > 0 needs model.kind = 'conditional'"):
        tiny_config(planes, tmp_path / "plane", "train.lag_weight=1.0")


def test_replay_continues_the_generators_own_chains(planes, tmp_path):
    """train.replay: a batch of the generator's chains is continued every G step (its physics loss
    logged as "replay"), anchored as a rollout (per row mean ~0, RMS ~1 in normalised units), kept
    with the anchor's state in the training checkpoint; train.uv_weight logs "uv"; refused without a
    conditional model or a physics weight."""
    res = train(cond_config(planes, tmp_path / "r", "train.unroll=2", "train.physics_weight=1.0", "train.replay=true",
                            "train.uv_weight=1.0"))
    assert res.iteration == 4 and res.last["replay"] > 0 and np.isfinite(res.last["replay"])
    assert res.last["uv"] > 0 and np.isfinite(res.last["uv"])
    tr = torch.load(tmp_path / "r" / "ckpt.pt", weights_only=True)["training"]
    buf, (mean, square) = tr["replay"], tr["replay_anchor"]
    assert buf.shape == (8, 3, 9, 8) and torch.isfinite(buf).all()
    assert mean.shape == square.shape == (3, 9, 1) and not torch.equal(square, torch.ones_like(square))
    inner = buf[:, :, 1:-1]  # rows with variance: anchored toward the data's 0 and 1
    assert inner.pow(2).mean(dim=(0, 3)).sqrt().max() < 3.0
    with pytest.raises(ConfigError, match="train.replay needs"):
        cond_config(planes, tmp_path / "x", "train.replay=true")
    with pytest.raises(ConfigError, match="train.replay needs"):
        tiny_config(planes, tmp_path / "y", "train.replay=true", "train.physics_weight=1.0")


def test_replay_refresh_sets_how_many_chains_restart(planes, tmp_path):
    """train.replay_refresh: one in this many replayed chains restarts from a real plane per G step
    (1: all of them; the default 8: one of the 8 here), so the kept chains differ; 0 is refused."""
    base = ("train.unroll=2", "train.physics_weight=1.0", "train.replay=true")
    bufs = []
    for name, extra in (("a", ()), ("b", ("train.replay_refresh=1",))):
        train(cond_config(planes, tmp_path / name, *base, *extra))
        bufs.append(torch.load(tmp_path / name / "ckpt.pt", weights_only=True)["training"]["replay"])
    assert bufs[0].shape == bufs[1].shape and not torch.allclose(bufs[0], bufs[1])
    with pytest.raises(ConfigError, match="train.replay_refresh must be positive"):
        cond_config(planes, tmp_path / "x", *base, "train.replay_refresh=0")


def test_a_metric_added_since_the_run_began_gets_its_own_column_on_resume(planes, tmp_path):
    """A run resumed by a newer cfdseed that validates one more metric: metrics.csv gains the
    column (NaN in the earlier rows) instead of dropping the new values."""
    import csv

    cfg = cond_config(planes, tmp_path / "r", "log.eval_every=2", "log.eval_samples=6", "train.unroll=2")

    def ctrl_c(it):
        if it == 2:
            signal.raise_signal(signal.SIGINT)

    assert train(cfg, _on_iteration=ctrl_c).iteration == 2
    path = tmp_path / "r" / "metrics.csv"
    rows = list(csv.DictReader(path.open()))
    with path.open("w", newline="") as fh:  # as an older cfdseed wrote it: no rollout_uv
        w = csv.DictWriter(fh, fieldnames=[k for k in rows[0] if k != "rollout_uv"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    train(cfg, resume=True)
    rows = list(csv.DictReader(path.open()))
    assert [float(r["iteration"]) for r in rows] == [2.0, 4.0]
    assert np.isnan(float(rows[0]["rollout_uv"])) and np.isfinite(float(rows[1]["rollout_uv"]))


@pytest.mark.parametrize("unroll", [1, 3])
def test_conditional_resume_after_interrupt_equals_uninterrupted(planes, tmp_path, unroll):
    extra = ("log.checkpoint_every=100", "train.physics_weight=0.5", f"train.unroll={unroll}",
             *(("model.memory=true", "train.innovation_weight=1.0", "train.replay=true", "train.uv_weight=1.0")
               if unroll == 3 else ()))
    train(cond_config(planes, tmp_path / "full", *extra))

    def ctrl_c(it):
        if it == 2:
            signal.raise_signal(signal.SIGINT)

    cfg = cond_config(planes, tmp_path / "cut", *extra)
    res = train(cfg, _on_iteration=ctrl_c)
    assert res.interrupted and res.iteration == 2
    res = train(cfg, resume=True)
    assert res.iteration == 4 and res.iterations_run == 2
    _assert_same_run(tmp_path / "full", tmp_path / "cut")
    m1, m2 = (read_checkpoint(tmp_path / r / "model.pt")["start_modes"] for r in ("full", "cut"))
    assert torch.equal(m1, m2)
    with pytest.raises(ConfigError, match="model.kind: 'conditional' -> 'plane'"):  # a plane config cannot resume it
        train(tiny_config(planes, tmp_path / "cut", "train.iterations=5", *extra[:2]), resume=True)


def test_unrolled_training_judges_the_generators_own_rollouts(planes, tmp_path):
    """train.unroll = k: k steps per pair, from the real prev plane; a different run from k = 1 (the
    latents and the losses differ), finite, loadable; a plane model refuses the setting."""
    runs = {k: train(cond_config(planes, tmp_path / f"k{k}", "train.physics_weight=1.0", f"train.unroll={k}"))
            for k in (1, 2)}
    assert all(np.isfinite(v) for r in runs.values() for v in r.last.values())
    g1, g2 = _weights(tmp_path / "k1" / "model.pt")[0], _weights(tmp_path / "k2" / "model.pt")[0]
    assert any(not torch.equal(g1[k], g2[k]) for k in g1)
    assert load_generator(tmp_path / "k2" / "model.pt", device="cpu").kind == "conditional"
    with pytest.raises(ConfigError, match="train.unroll = 2 needs model.kind = 'conditional'"):
        tiny_config(planes, tmp_path / "plane", "train.unroll=2")
    with pytest.raises(ConfigError, match="train.unroll must be positive"):
        cond_config(planes, tmp_path / "zero", "train.unroll=0")


def test_unrolled_module_is_the_generator_stepped_k_times():
    from cfdseed.conditional import CondGenerator, Unrolled, latent_size
    from cfdseed.model import arch_config

    torch.manual_seed(0)
    gen = CondGenerator(arch_config("cond-tiny", 9, 8, kind="conditional", latent_dim=8)).eval()
    prev = torch.randn(2, 3, 9, 8)
    zs = torch.randn(3, 2, latent_size(gen.arch))
    with torch.no_grad():
        chain = Unrolled(gen)(prev, zs)
        x = prev
        for i in range(3):
            x = gen(x, zs[i])
            assert torch.equal(chain[i], x)


def test_conditional_mode_refuses_datasets_without_planes(dataset, planes, tmp_path):
    with pytest.raises(DatasetError, match="no /x; consecutive-plane pairs need"):  # slices without positions
        train(cond_config(dataset, tmp_path / "a"))
    with pytest.raises(DatasetError, match="training pairs after the validation split"):
        train(cond_config(planes, tmp_path / "b", "data.val_gap=10.0"))
    with pytest.raises(ConfigError, match=r"\[model\]: unknown model preset 'cpu-tiny' for kind 'conditional'"):
        train(cond_config(planes, tmp_path / "c", "model.preset=cpu-tiny"))
    assert not any((tmp_path / n / "ckpt.pt").exists() for n in "abc")


def test_checkpoints_from_before_new_config_keys_still_resume():
    """Keys added to the config later (model.kind, data.val_gap, ...) at their defaults are no change."""
    from cfdseed.config import to_dict
    from cfdseed.train import _config_changes

    cfg = Config()
    old = to_dict(cfg)
    for sec, key in (("model", "kind"), ("model", "residual"), ("data", "val_gap"), ("data", "lx")):
        del old[sec][key]
    assert _config_changes(old, cfg) == []
    assert _config_changes(old, apply_overrides(cfg, ["data.val_gap=5"])) == ["data.val_gap: None -> 5.0"]


def test_resume_ignores_where_the_start_weights_came_from():
    """train.init_from only starts a new run: a resume (its weights are its checkpoint's) may name
    the start checkpoint elsewhere (a moved checkout), and the data file may move (its content is
    compared instead: test_resume_from_a_moved_dataset...); other settings may not change."""
    from cfdseed.config import to_dict
    from cfdseed.train import _config_changes

    cfg = apply_overrides(Config(), ["train.init_from=/work/main/training/v2-lag/ckpt.pt"])
    old = to_dict(cfg)
    assert _config_changes(old, apply_overrides(cfg, ["train.init_from=elsewhere/ckpt.pt"])) == []
    assert _config_changes(old, apply_overrides(cfg, ["data.path=elsewhere.h5"])) == []
    assert _config_changes(old, apply_overrides(cfg, ["data.val_fraction=0.3"])) == [
        "data.val_fraction: 0.1 -> 0.3"]
