"""Training configuration: dataclasses with commented defaults, TOML loading, ``--set`` overrides.

A config file has the sections ``[data]``, ``[model]``, ``[train]``, ``[log]`` (all optional);
every key is a field below. Unknown sections or keys and values of the wrong type raise
:class:`~cfdseed.errors.ConfigError` naming the key. ``--set train.lr_g=1e-4`` overrides one key;
the value is parsed as TOML (numbers, booleans, lists) or taken as a bare string, then type
checked. :func:`to_toml` writes the resolved config that is saved with every run.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["DataConfig", "ModelConfig", "TrainConfig", "LogConfig", "Config", "load_config",
           "apply_overrides", "from_dict", "to_dict", "to_toml"]


#: The allowed values, one home for the config checks here and the library's own
#: (:func:`cfdseed.data.split_indices`, :mod:`cfdseed.model`), which import them from here.
SPLIT_MODES = ("blocks", "random", "last")  # train/validation split of the slices
NORMS = ("layer", "none")  # critic normalisation (never batch norm)
KINDS = ("plane", "conditional")  # generator kind: latent -> plane, or (plane, latent) -> next plane


def check_device(device: str, key: str) -> None:
    """ConfigError naming ``key`` unless ``device`` is auto, cpu, cuda or cuda:N (training, and the
    generators :func:`cfdseed.model.torch_device` loads)."""
    if not (device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ConfigError(f"{key} {device!r} unknown; must be one of auto, cpu, cuda, cuda:N")


@dataclass
class DataConfig:
    path: str = ""  # HDF5 dataset (cfdseed.slices format); relative paths are relative to the config
    val_fraction: float = 0.1  # share of samples held out for validation (0 = none)
    val_path: str = ""  # a validation dataset of its own (same grid and units; relative paths as path):
    #                     the validation batch comes from it and data.path trains whole (val_fraction 0)
    split: str = "blocks"  # "blocks": whole time blocks (seeded) go to validation; "last": the last
    #                        blocks in time; "random": seeded shuffle
    split_blocks: int = 10  # number of contiguous time blocks for split="blocks" / "last"
    val_gap: float = 0.0  # training samples (pairs) within this time of a validation one are dropped
    #                       (dataset time units, e.g. h/u_tau; needs /t); 0 = keep all
    lx: float = 0.0  # conditional: streamwise period of the planes, for the wrap pair last -> first;
    #                  0 = the dataset's attribute lx (or lengths[0]); without either, no wrap pair
    augment_roll: bool = True  # random periodic shift in z
    augment_spanwise: bool = True  # z -> -z with w -> -w, probability 1/2
    augment_wall: bool = False  # y -> ly - y with v -> -v (only if y is symmetric)
    num_workers: int = 0  # DataLoader worker processes reading the HDF5 file (0 = main process)
    stats_chunk: int = 64  # samples per read while computing normalisation statistics


@dataclass
class ModelConfig:
    kind: str = "plane"  # "plane": latent -> y-z slice (v1); "conditional": (plane, latent) -> next plane
    preset: str = "auto"  # plane: published-128 | wide-512 | cpu-small | cpu-tiny; conditional:
    #                       cond-small | cond-tiny; auto (by grid size)
    latent_dim: int = 128  # latent space dimension (published: 128)
    norm: str = "layer"  # critic normalisation: "layer" or "none" (never batch norm)
    g_channels: list[int] = field(default_factory=list)  # override the preset's generator widths
    c_channels: list[int] = field(default_factory=list)  # override the preset's critic widths
    residual: bool = True  # conditional: next = prev + learned increment (false: next = decoder output)
    memory: bool = False  # conditional, residual: next = m * prev + increment, m per component and row, learned,
    #                       starting at the training data's one-step correlation (the data's decorrelation rate)
    band_limit: bool = False  # conditional: remove the output's spanwise Nyquist mode (even nz; the DNS has none)


@dataclass
class TrainConfig:
    iterations: int = 5000  # generator iterations (published: 1000-5000)
    batch_size: int = 64  # global batch, split over DDP ranks (published: 64)
    n_critic: int = 5  # critic updates per generator update
    gp_lambda: float = 10.0  # gradient penalty weight
    lr_g: float = 5e-4  # Adam learning rate, generator (published: 5e-4)
    lr_c: float = 5e-4  # Adam learning rate, critic (published: 5e-4)
    betas: list[float] = field(default_factory=lambda: [0.0, 0.9])  # Adam betas, both nets
    physics_weight: float = 0.0  # weight of the batch-statistics loss ("Case 3"; conditional: plus the
    #                              one-step correlation prev -> next per component and y); 0 = off
    spectrum_weight: float = 0.0  # weight of the log spanwise spectrum loss (losses.spectrum_loss; conditional:
    #                               every unrolled step); 0 = off
    spectrum_target: str = "batch"  # "batch": each plane's spectra against the real batch's; "data": the
    #                                 generated planes' pooled spectra (conditional: all unrolled and replayed
    #                                 planes) against the training data's (SPECTRUM_PLANES planes): no
    #                                 sampling noise on the real side, little on the generated one
    innovation_weight: float = 0.0  # conditional: log spread of next given prev (two draws) against the data's
    #                                 innovation variance (losses.innovation_variance); 0 = off
    lag_weight: float = 0.0  # conditional: correlation of each unrolled plane with prev (lags 1..unroll) per
    #                          component and row against the data's (losses.lag_loss); 0 = off
    uv_weight: float = 0.0  # u-v correlation coefficient per row against the real batch's (losses.uv_loss;
    #                         conditional: every unrolled and replayed plane); 0 = off
    replay: bool = False  # conditional: also continue the generator's own chains (one batch, refreshed from
    #                       real planes, anchored as a rollout) every G step, their one-point statistics (and
    #                       u-v correlation) in the loss
    replay_refresh: int = 8  # replay: one in this many replayed chains restarts from a real plane each G step
    #                          (chains on average replay_refresh x unroll planes old)
    unroll: int = 1  # conditional: generator steps per training pair (k > 1: trained on its own rollouts, the
    #                  critic judging every step's pair, later steps' one-point statistics in the physics loss)
    seed: int = 0  # seeds weights, data order, augmentation, latents
    init_from: str = ""  # a checkpoint (path or packaged model name) whose weights start a new run: its generator, its critic
    #                      when it is a training checkpoint, its normalisation and start modes; fresh optimisers
    device: str = "auto"  # auto | cpu | cuda | cuda:N (under torchrun: cuda:LOCAL_RANK)
    deterministic: bool = True  # torch deterministic algorithms (CPU runs are bitwise repeatable)


@dataclass
class LogConfig:
    out: str = "runs/train"  # run folder: checkpoints, config.toml, log.csv, losses.png
    checkpoint_every: int = 100  # iterations between checkpoints (also written at the end/Ctrl-C)
    log_every: int = 1  # iterations between CSV rows
    eval_every: int = 100  # iterations between slice_metrics evaluations (0 = never)
    eval_samples: int = 64  # size of the fixed validation batch
    eval_halves: bool = False  # score each half of the channel apart: a profile counts its worse half's error
    #                            (cfdseed.metrics, "Halves apart"; needs y symmetric about the centre)
    progress: bool = True  # tqdm progress bar (rank 0)
    tensorboard: bool = False  # also log to TensorBoard (only if installed)
    plot: bool = True  # losses.png at the end


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)


_SECTIONS = {f.name: f for f in dataclasses.fields(Config)}


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(key: str, value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list of {item.__name__}, got {value!r}")
        return [_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported field type {tp}")


def from_dict(d: Mapping[str, Any]) -> Config:
    """Build and validate a :class:`Config` from nested mappings (as parsed from TOML)."""
    cfg = Config()
    for sec, body in d.items():
        if sec not in _SECTIONS:
            raise ConfigError(f"unknown config section [{sec}]; allowed: {', '.join(_SECTIONS)}")
        if not isinstance(body, Mapping):
            raise ConfigError(f"[{sec}] must be a table of keys, got {body!r}")
        obj = getattr(cfg, sec)
        hints = _hints(type(obj))
        for key, value in body.items():
            if key not in hints:
                raise ConfigError(
                    f"unknown config key {sec}.{key}; allowed in [{sec}]: {', '.join(hints)}"
                )
            setattr(obj, key, _coerce(f"{sec}.{key}", value, hints[key]))
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Range checks that do not need the data; ConfigError naming the key."""
    t, d, lg, m = cfg.train, cfg.data, cfg.log, cfg.model
    positive = {"train.iterations": t.iterations, "train.batch_size": t.batch_size, "train.replay_refresh": t.replay_refresh,
                "train.n_critic": t.n_critic, "train.unroll": t.unroll, "model.latent_dim": m.latent_dim,
                "log.checkpoint_every": lg.checkpoint_every, "log.log_every": lg.log_every,
                "log.eval_samples": lg.eval_samples, "data.split_blocks": d.split_blocks,
                "data.stats_chunk": d.stats_chunk, "train.lr_g": t.lr_g, "train.lr_c": t.lr_c}
    for k, v in positive.items():
        if v <= 0:
            raise ConfigError(f"{k} must be positive, got {v}")
    nonneg = {"train.gp_lambda": t.gp_lambda, "train.physics_weight": t.physics_weight,
              "train.spectrum_weight": t.spectrum_weight, "train.innovation_weight": t.innovation_weight,
              "train.lag_weight": t.lag_weight, "train.uv_weight": t.uv_weight, "log.eval_every": lg.eval_every,
              "data.num_workers": d.num_workers, "train.seed": t.seed, "data.val_gap": d.val_gap, "data.lx": d.lx}
    for k, v in nonneg.items():
        if v < 0:
            raise ConfigError(f"{k} must be >= 0, got {v}")
    if t.seed >= 2**63:  # torch's generators take a signed 64-bit seed
        raise ConfigError(f"train.seed must be below 2**63, got {t.seed}")
    if not str(lg.out).strip():
        raise ConfigError("log.out is empty; name the run folder (log.out or --out DIR)")
    if t.spectrum_target not in ("batch", "data"):
        raise ConfigError(f"train.spectrum_target must be 'batch' or 'data', got {t.spectrum_target!r}")
    if len(t.betas) != 2 or not all(0.0 <= b < 1.0 for b in t.betas):
        raise ConfigError(f"train.betas must be two numbers in [0, 1), got {t.betas}")
    if not 0.0 <= d.val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction must be in [0, 1), got {d.val_fraction}")
    if d.val_path and d.val_fraction > 0:
        raise ConfigError(f"data.val_path gives the validation set, so data.path trains whole: set data.val_fraction "
                          f"= 0 (got {d.val_fraction})")
    if d.split not in SPLIT_MODES:
        raise ConfigError(f"data.split {d.split!r} unknown; must be one of {', '.join(SPLIT_MODES)}")
    if m.kind not in KINDS:
        raise ConfigError(f"model.kind {m.kind!r} unknown; must be one of {', '.join(KINDS)}")
    if t.unroll != 1 and m.kind != "conditional":
        raise ConfigError(f"train.unroll = {t.unroll} needs model.kind = 'conditional' (a plane model has no steps)")
    if t.innovation_weight > 0 and m.kind != "conditional":
        raise ConfigError("train.innovation_weight > 0 needs model.kind = 'conditional' (a spread given prev)")
    if t.lag_weight > 0 and m.kind != "conditional":
        raise ConfigError("train.lag_weight > 0 needs model.kind = 'conditional' (correlations along a rollout)")
    changed = [f"model.{k} = {str(v).lower()}" for k, v, default in
               (("residual", m.residual, True), ("memory", m.memory, False), ("band_limit", m.band_limit, False))
               if v != default]
    if changed and m.kind != "conditional":
        raise ConfigError(f"{', '.join(changed)} needs model.kind = 'conditional' (a plane model has no such part)")
    if t.replay and (m.kind != "conditional" or t.physics_weight <= 0):
        raise ConfigError("train.replay needs model.kind = 'conditional' and train.physics_weight > 0 "
                          "(its loss is the physics loss deep into the chains)")
    if m.norm not in NORMS:
        raise ConfigError(f"model.norm {m.norm!r} unknown; must be one of {', '.join(NORMS)}")
    check_device(t.device, "train.device")


def load_config(path: str | Path | None, overrides: Iterable[str] = ()) -> Config:
    """Read a TOML config (None: defaults), apply ``key=value`` overrides, validate.

    ``data.path`` and ``data.val_path`` relative to the config file are made absolute.

    Raises
    ------
    ConfigError
        Unreadable or invalid TOML (a folder, a binary file), unknown section/key, wrong type, value
        out of range.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {str(p)!r} does not exist") from None
        except IsADirectoryError:
            raise ConfigError(f"{p}: not a TOML config file (it is a folder)") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p}: not a TOML config file (not UTF-8 text: byte {exc.object[exc.start]:#04x} "
                              f"at offset {exc.start})") from None
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read the config file ({exc.strerror or exc})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: invalid TOML: {exc}") from None
        data = raw.get("data")
        for key in ("path", "val_path"):
            if isinstance(data, dict) and isinstance(data.get(key), str) and data[key]:
                dp = Path(data[key]).expanduser()
                data[key] = str(dp if dp.is_absolute() else (p.parent / dp).resolve())
    cfg = from_dict(raw)
    return apply_overrides(cfg, overrides)


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # bare word: a string


def apply_overrides(cfg: Config, overrides: Iterable[str]) -> Config:
    """Return a new config with ``section.key=value`` overrides applied and validated."""
    d = to_dict(cfg)
    for item in overrides:
        key, eq, text = item.partition("=")
        sec, dot, name = key.strip().partition(".")
        if not eq or not dot:
            raise ConfigError(f"override {item!r} must look like section.key=value (e.g. train.lr_g=1e-4)")
        if sec not in d:
            raise ConfigError(f"unknown config section [{sec}] in override {item!r}; allowed: {', '.join(d)}")
        if name not in d[sec]:
            raise ConfigError(f"unknown config key {sec}.{name}; allowed in [{sec}]: {', '.join(d[sec])}")
        value = _parse_value(text.strip())
        if isinstance(d[sec][name], str) and not isinstance(value, str):
            value = text.strip()  # e.g. --set model.preset=123 stays a string field
        d[sec][name] = value
    return from_dict(d)


def to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    """Nested plain dict (copies)."""
    return dataclasses.asdict(cfg)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ConfigError(f"cannot write {v!r} to TOML")


def to_toml(cfg: Config) -> str:
    """The resolved config as TOML text (round-trips through :func:`load_config`)."""
    lines: list[str] = []
    for sec, body in to_dict(cfg).items():
        lines.append(f"[{sec}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in body.items()]
        lines.append("")
    return "\n".join(lines)
