"""Training config: TOML loading, unknown keys, types, overrides, round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from cfdseed import ConfigError
from cfdseed.config import Config, apply_overrides, load_config, to_toml


def test_defaults_are_the_published_hyperparameters():
    t = Config().train
    assert (t.gp_lambda, t.n_critic, t.lr_g, t.lr_c, t.batch_size, t.betas) == (10.0, 5, 5e-4, 5e-4, 64, [0.0, 0.9])
    assert Config().model.latent_dim == 128 and t.physics_weight == 0.0


def test_load_and_relative_data_path(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[data]\npath = "d.h5"\nval_path = "v/val.h5"\nval_fraction = 0\n'
                 '[train]\nlr_g = 1\niterations = 7\nbetas = [0.5, 0.99]\n')
    cfg = load_config(p)
    assert cfg.data.path == str(tmp_path / "d.h5") and cfg.data.val_path == str(tmp_path / "v" / "val.h5")
    assert cfg.train.lr_g == 1.0 and isinstance(cfg.train.lr_g, float)
    assert cfg.train.iterations == 7 and cfg.train.betas == [0.5, 0.99]


@pytest.mark.parametrize("text,match", [
    ("[train]\nlearning_rate = 1e-3\n", "unknown config key train.learning_rate"),
    ("[optim]\nlr = 1\n", r"unknown config section \[optim\]"),
    ("[train]\niterations = 1.5\n", "train.iterations: expected an integer"),
    ("[train]\niterations = true\n", "train.iterations: expected an integer"),
    ("[train]\nlr_g = \"fast\"\n", "train.lr_g: expected a number"),
    ("[data]\naugment_roll = 1\n", "data.augment_roll: expected true or false"),
    ("[train]\nbetas = [0.0, \"x\"]\n", r"train.betas\[1\]: expected a number"),
    ("[train]\nbatch_size = 0\n", "train.batch_size must be positive"),
    ("[train]\nbetas = [0.0]\n", "train.betas must be two numbers"),
    ("[train]\ndevice = \"tpu\"\n", "train.device 'tpu' unknown"),
    ("[train\n", "invalid TOML"),
    ("[model]\nkind = \"sequence\"\n", "model.kind 'sequence' unknown; must be one of plane, conditional"),
    ("[data]\nval_gap = -1.0\n", "data.val_gap must be >= 0"),
    ("[data]\nsplit = \"first\"\n", "must be one of blocks, random, last"),
    ("[model]\nresidual = 1\n", "model.residual: expected true or false"),
    ("[model]\nmemory = true\n", "model.memory = true needs model.kind = 'conditional'"),
    ("[train]\nseed = 9223372036854775808\n", r"train.seed must be below 2\*\*63"),
    ("[log]\nout = \"  \"\n", "log.out is empty"),
    ("[model]\nresidual = false\nband_limit = true\n",
     "model.residual = false, model.band_limit = true needs model.kind = 'conditional'"),
])
def test_bad_configs(tmp_path, text, match):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(p)


@pytest.mark.parametrize("name,why", [("folder", "it is a folder"), ("tiny.h5", "not UTF-8 text")])
def test_a_folder_or_a_binary_file_is_not_a_config(tmp_path, capsys, name, why):
    from cfdseed.cli import main

    (tmp_path / "folder").mkdir()
    (tmp_path / "tiny.h5").write_bytes(b"\x89HDF\r\n\x1a\n\x00\x00\x00\x00\xff")
    path = tmp_path / name
    with pytest.raises(ConfigError, match=f"^{path}: not a TOML config file \\({why}"):
        load_config(path)
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: not a TOML config file ({why}" in err and err.count("\n") == 1


def test_overrides_typed():
    cfg = apply_overrides(Config(), ["train.lr_g=1e-4", "train.betas=[0.5, 0.9]", "model.preset=cpu-tiny",
                                     "data.augment_wall=true", "train.iterations=3", "log.out=/tmp/x y"])
    assert cfg.train.lr_g == 1e-4 and cfg.train.betas == [0.5, 0.9] and cfg.model.preset == "cpu-tiny"
    assert cfg.data.augment_wall is True and cfg.train.iterations == 3 and cfg.log.out == "/tmp/x y"
    with pytest.raises(ConfigError, match="unknown config key train.lr"):
        apply_overrides(Config(), ["train.lr=1"])
    with pytest.raises(ConfigError, match="train.iterations: expected an integer"):
        apply_overrides(Config(), ["train.iterations=many"])
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_overrides(Config(), ["iterations=3"])


def test_toml_round_trip(tmp_path):
    cfg = apply_overrides(Config(), ['log.out=a "quoted" dir', "train.physics_weight=0.5"])
    p = tmp_path / "r.toml"
    p.write_text(to_toml(cfg))
    assert load_config(p) == cfg
    assert load_config(None) == Config()
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml")


def test_shipped_configs_parse():
    root = Path(__file__).resolve().parents[1]
    files = sorted(root.glob("examples/configs/*.toml")) + [root / "examples" / "train_tiny.toml"]
    assert len(files) >= 2
    for f in files:
        cfg = load_config(f)
        assert Path(cfg.data.path).is_absolute(), f
