"""WGAN-GP training loop (:func:`train`; command line ``cfdseed train CONFIG.toml`` in :mod:`cfdseed.cli`).

Owns the loop, atomic checkpoints with exact resume, DDP, and the losses' targets from the
training data; the losses themselves (critic, gradient penalty, physics statistics, spectra,
innovation, lags) live in :mod:`cfdseed.losses`, the logs (tqdm, CSV, optional TensorBoard, PNG) in
:mod:`cfdseed.trainlog`, the torch.distributed plumbing in :mod:`cfdseed._torch_dist`.

Two modes (``model.kind``): ``"plane"`` trains the v1 generator latent -> slice on single slices;
``"conditional"`` trains ``G(prev, z) -> next`` (:mod:`cfdseed.conditional`) as a conditional
WGAN-GP on consecutive-plane pairs (:mod:`cfdseed.pairs`): the critic scores pairs
``(prev, next)``, the gradient penalty interpolates ``next`` only (``prev`` is the condition, held
fixed), the physics loss adds the one-step correlation prev -> next per component and y
(:func:`cfdseed.losses.pair_physics_loss`), and ``best.pt`` follows the ``combined`` value of
:func:`cfdseed.metrics.pair_metrics`. Everything else (sharding, resume, checkpoints, logs) is the
same code for both.

Multi-process: ``torchrun --nproc-per-node=N -m cfdseed.cli train CONFIG.toml`` (gloo on CPU,
nccl on CUDA). Every global batch is split into equal per-rank shards; latents and interpolation
coefficients are drawn for the global batch on every rank and sliced, so a run with N processes
follows the single-process run with the same global batch. The generator is wrapped in
DistributedDataParallel. The critic is *not*: its loss contains a gradient penalty (a double
backward), which DDP's reducer does not handle correctly, so the critic runs unwrapped and its
gradients are averaged with one explicit all-reduce after ``backward``. The optional physics loss
uses each rank's local batch statistics (with one process: the whole batch).

Everything that can fail before the first step (device, resumed checkpoint, run folder, dataset)
is checked on every rank and agreed (:func:`cfdseed._collective.agree`): every rank raises the same
error, none waits for one that failed.

Run folder (``log.out``): ``ckpt.pt`` (latest, training state), ``model.pt`` (generator only, the
file users ship), ``best.pt`` (best validation ``combined`` metric), ``config.toml`` (resolved),
``log.csv``, ``metrics.csv``, ``losses.png``, ``tb/`` (TensorBoard). A folder holding a run is
refused unless the run is resumed (``resume=True``) or replaced (``force=True``: its files are
deleted once the set-up has passed).
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import shutil
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ._collective import agree, run_agreed
from ._torch_dist import TorchDist
from .targets import dataset_target
from .checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, read_checkpoint, save_checkpoint
from .config import Config, to_dict, to_toml
from .conditional import BURN_IN, Anchor, CondGenerator, PairCritic, Unrolled, latent_size, start_modes
from .data import EpochBatchSampler, NormStats, SliceDataset, compute_stats, split_indices
from .errors import CheckpointError, ConfigError, DatasetError
from .losses import (gradient_penalty, innovation_loss, innovation_variance, lag_loss, pair_physics_loss,
                     physics_loss, plane_chains, pooled_power, spectrum_error, spectrum_loss, step_correlation,
                     uv_loss)
from .model import Critic, Generator, arch_config, count_parameters
from .pairs import PairDataset, PlanePairs, plane_pairs, split_pairs, streamwise_period
from .slices import open_dataset
from .synthesis import ROLLOUT_ANCHOR
from .trainlog import LOSSES, TrainLogger

__all__ = ["train", "TrainResult", "RUN_FILES"]

log = logging.getLogger(__name__)

# Keys a resumed run may change; anything else must equal the checkpoint's config.
_RESUMABLE = {("train", "iterations"), ("train", "device"), ("data", "num_workers")}
#: What a run writes into its folder; any of them there means the folder holds a run.
RUN_FILES = ("ckpt.pt", "model.pt", "best.pt", "config.toml", "log.csv", "metrics.csv", "losses.png", "tb")


@dataclass
class TrainResult:
    """What :func:`train` returns (rank 0 has the logged values; all ranks the rest)."""

    out: Path
    iteration: int  # generator iterations completed
    interrupted: bool
    last: dict[str, float] = field(default_factory=dict)  # last logged losses
    loop_seconds: float = 0.0  # wall time of the iterations run in this call
    iterations_run: int = 0
    best_combined: float | None = None
    parameters: dict[str, int] = field(default_factory=dict)


def _device(cfg: Config, dd: TorchDist) -> torch.device:
    dev = cfg.train.device
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device={dev!r} but CUDA is not available; use cpu or auto")
        if dev == "cuda":
            dev = f"cuda:{dd.local_rank if dd.world > 1 else torch.cuda.current_device()}"
        torch.cuda.set_device(torch.device(dev))
    return torch.device(dev)


def _auto_preset(ny: int, nz: int, kind: str = "plane") -> str:
    if kind == "conditional":
        return "cond-small" if ny * nz >= 32 * 32 else "cond-tiny"
    if ny * nz >= 128 * 256:
        return "wide-512"
    if ny * nz >= 96 * 96:
        return "published-128"
    if ny * nz >= 32 * 32:
        return "cpu-small"
    return "cpu-tiny"


def _config_changes(old: Mapping[str, Any], new: Config) -> list[str]:
    changes = []
    defaults = to_dict(Config())
    for sec, body in to_dict(new).items():
        for key, value in body.items():
            if sec == "log" or (sec, key) in _RESUMABLE:
                continue
            if key not in old.get(sec, {}) and value == defaults[sec][key]:
                continue  # a key added after the checkpoint was written, at its default: no change
            if old.get(sec, {}).get(key) != value:
                changes.append(f"{sec}.{key}: {old.get(sec, {}).get(key)!r} -> {value!r}")
    return changes


def _metrics_fn(name: str = "slice_metrics") -> Callable[..., dict[str, float]] | None:
    try:
        mod = importlib.import_module("cfdseed.metrics")
    except ImportError as exc:
        log.warning("validation metrics off: cfdseed.metrics cannot be imported (%s)", exc)
        return None
    fn = getattr(mod, name, None)
    if fn is None:
        log.warning("validation metrics off: cfdseed.metrics has no %s", name)
    return fn


def _resume_state(path: Path, cfg: Config) -> dict[str, Any]:
    """The training checkpoint to resume from, refused when the config changed beyond _RESUMABLE."""
    ck = read_checkpoint(path)
    if "training" not in ck:
        raise CheckpointError(f"{path} holds no training state (a shipped model?)")
    changes = _config_changes(ck["training"]["config"], cfg)
    if changes:
        raise ConfigError("cannot resume with a changed config: " + "; ".join(changes))
    return ck


def _previous_run(out: Path, resume: bool, force: bool) -> list[Path]:
    """The files of a run already in ``out`` that ``force`` replaces; refused unless resuming or forced."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"run folder {out} is a file; choose a folder (--out / log.out)")
    old = [out / name for name in RUN_FILES if (out / name).exists()]
    if old and not (resume or force):
        raise ConfigError(
            f"run folder {out} already holds a run ({', '.join(p.name for p in old)}); continue it with "
            "--resume, replace it with --force, or choose another folder (--out / log.out)"
        )
    return old if force else []


@dataclass
class _Data:
    """The split dataset: indices of samples (plane mode) or of pairs (conditional mode)."""

    train: np.ndarray
    val: np.ndarray
    grid: dict[str, Any]
    source: str
    pairs: PlanePairs | None = None

    def planes(self, idx: np.ndarray) -> np.ndarray:
        """Sample indices behind ``idx`` (the samples themselves, or the planes of those pairs)."""
        return idx if self.pairs is None else self.pairs.planes(idx)


def _open_data(cfg: Config, stats: NormStats | None) -> _Data:
    """Validate the dataset and split it (by samples, or by consecutive-plane pairs)."""
    bs, d = cfg.train.batch_size, cfg.data
    cond = cfg.model.kind == "conditional"
    with open_dataset(d.path, check_finite=False, min_samples=1 if cond else bs) as ds:
        pairs = None
        if cond:
            pairs = plane_pairs(ds.t, ds.x, lx=d.lx or streamwise_period(ds.attrs), where=str(ds.path))
            train_idx, val_idx = split_pairs(pairs, val_fraction=d.val_fraction, seed=cfg.train.seed, mode=d.split,
                                             blocks=d.split_blocks, gap=d.val_gap)
        else:
            train_idx, val_idx = split_indices(ds.n, val_fraction=d.val_fraction, seed=cfg.train.seed, mode=d.split,
                                               blocks=d.split_blocks, t=ds.t, gap=d.val_gap)
        what = "pairs" if cond else "samples"
        if train_idx.size < bs:
            raise DatasetError(
                f"{ds.path}: {train_idx.size} training {what} after the validation split are fewer "
                f"than one batch of {bs}; lower data.val_fraction, data.val_gap or train.batch_size"
            )
        if stats is not None and stats.mean.shape != (3, ds.ny):
            raise CheckpointError(f"checkpoint normalisation is for ny={stats.mean.shape[1]}, data has {ds.ny}")
        grid = {"ny": ds.ny, "nz": ds.nz, "y": torch.as_tensor(ds.y), "ly": ds.ly, "lz": ds.lz,
                "re_tau": ds.re_tau, "u_tau": ds.u_tau, "nu": ds.nu}
        if pairs is not None:
            grid["dx_plus"] = pairs.dx * ds.u_tau / ds.nu  # one generated step, in wall units
        return _Data(train_idx, val_idx, grid, ds.source, pairs)


def _norm_stats(cfg: Config, train_idx: np.ndarray) -> NormStats:
    """Normalisation of the training samples (one streaming pass), closed under the augmentations."""
    with open_dataset(cfg.data.path, check_finite=False) as ds:
        base = compute_stats(ds, train_idx, chunk=cfg.data.stats_chunk)
    return base.symmetrised(spanwise=cfg.data.augment_spanwise, wall=cfg.data.augment_wall)


#: Training pairs (evenly spread) behind a ``memory`` generator's initial skip factors.
MEMORY_PAIRS = 512


def _evenly(idx: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` entries of ``idx``, evenly spread over it."""
    return idx[np.unique(np.linspace(0, idx.size - 1, min(n, idx.size)).astype(np.int64))]


def _pairs(cfg: Config, data_split: _Data, idx: np.ndarray, stats: NormStats) -> tuple[np.ndarray, np.ndarray]:
    """The pairs ``idx`` as normalised ``(prev, next)`` planes ``(n, 3, ny, nz)`` each."""
    pairs = _eval_batch(cfg, data_split.pairs.pairs[idx].ravel())
    pairs = pairs.reshape(idx.size, 2, *pairs.shape[1:])
    return stats.normalise(pairs[:, 0]), stats.normalise(pairs[:, 1])


def _without(d: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


def _memory_init(cfg: Config, data_split: _Data, train_idx: np.ndarray, stats: NormStats) -> torch.Tensor:
    """``(3, ny, 1)``: the training pairs' one-step correlation per component and row, in [0, 1]."""
    prev, nxt = (torch.from_numpy(a).double() for a in _pairs(cfg, data_split, _evenly(train_idx, MEMORY_PAIRS), stats))
    return step_correlation(prev, nxt).clamp(0.0, 1.0).float()[..., None]


#: Training pairs (evenly spread) behind the innovation target (innovation_variance).
INNOVATION_PAIRS = 4096


#: Training planes (evenly spread) behind ``train.spectrum_target = "data"``.
SPECTRUM_PLANES = 2048


def _spectrum_target(cfg: Config, planes: np.ndarray, stats: NormStats) -> torch.Tensor:
    """``(3, ny, nk)``: the pooled spanwise power of :data:`SPECTRUM_PLANES` training planes
    (normalised), rows mirrored about the centre when the wall flip augments the data."""
    x = torch.as_tensor(stats.normalise(_eval_batch(cfg, _evenly(planes, SPECTRUM_PLANES))), dtype=torch.float32)
    s = pooled_power([x])
    return 0.5 * (s + s.flip(1)) if cfg.data.augment_wall else s


def _innovation_target(cfg: Config, data_split: _Data, train_idx: np.ndarray, stats: NormStats) -> torch.Tensor:
    """``(3, ny, 1)``: :func:`innovation_variance` of :data:`INNOVATION_PAIRS` training pairs."""
    prev, nxt = _pairs(cfg, data_split, _evenly(train_idx, INNOVATION_PAIRS), stats)
    return torch.as_tensor(innovation_variance(prev, nxt), dtype=torch.float32)[..., None]


#: Chains (evenly spread starting pairs) behind the lag target (_lag_target).
LAG_CHAINS = 1024


def _lag_target(cfg: Config, data_split: _Data, train_idx: np.ndarray, stats: NormStats, lags: int) -> torch.Tensor:
    """``(lags, 3, ny)``: the data's correlation of planes ``1 .. lags`` steps downstream with their
    start, per component and row (:func:`step_correlation`), over :data:`LAG_CHAINS` training chains."""
    pairs = data_split.pairs.pairs
    chains = plane_chains(pairs, pairs[_evenly(train_idx, LAG_CHAINS), 0], lags)
    if not len(chains):
        raise DatasetError(f"{cfg.data.path}: no chain of {lags + 1} consecutive planes for train.lag_weight")
    planes = stats.normalise(_eval_batch(cfg, chains.ravel()))
    planes = planes.reshape(*chains.shape, *planes.shape[1:])  # (chains, lags + 1, 3, ny, nz)
    start = torch.from_numpy(planes[:, 0]).double()
    return torch.stack([step_correlation(start, torch.from_numpy(planes[:, j]).double())
                        for j in range(1, lags + 1)]).float()


#: Training planes (evenly spread) behind a conditional model's start modes.
START_PLANES = 4096


def _start_modes(cfg: Config, planes: np.ndarray, stats: NormStats) -> torch.Tensor:
    """:func:`cfdseed.conditional.start_modes` of up to :data:`START_PLANES` training planes, normalised."""
    pick = _evenly(planes, START_PLANES)
    with open_dataset(cfg.data.path, check_finite=False) as ds:
        return start_modes(stats.normalise(b) for _, b in ds.iter_chunks(cfg.data.stats_chunk, pick))


def _eval_batch(cfg: Config, idx: np.ndarray) -> np.ndarray:
    """The fixed validation batch ``(E, 3, ny, nz)`` in physical units."""
    with open_dataset(cfg.data.path, check_finite=False) as ds:
        real = ds.read(idx)
    if not np.all(np.isfinite(real)):
        raise DatasetError(f"{cfg.data.path}: validation samples hold NaN/Inf values")
    return real


def _payload(gen: torch.nn.Module, arch: dict[str, Any], stats: NormStats, grid: dict[str, Any],
             metadata: dict[str, Any], statistics: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "arch": arch,
        "generator": {k: v.detach().cpu() for k, v in gen.state_dict().items()},
        "norm": {"mean": torch.as_tensor(stats.mean), "std": torch.as_tensor(stats.std)},
        "grid": grid,
        "metadata": metadata,
        "statistics": statistics,
    }


def train(cfg: Config, *, resume: bool = False, force: bool = False,
          _on_iteration: Callable[[int], None] | None = None) -> TrainResult:
    """Train a WGAN-GP generator as configured; returns a :class:`TrainResult`.

    Parameters
    ----------
    cfg
        The configuration (:mod:`cfdseed.config`); the run folder is ``cfg.log.out``, created with
        any missing parent folders.
    resume
        Continue exactly from ``ckpt.pt`` in the run folder.
    force
        Replace a run already in the run folder (its files, :data:`RUN_FILES`, are deleted once the
        set-up has passed); without ``resume`` or ``force`` such a folder is refused.

    Raises
    ------
    DatasetError
        Dataset file, shapes, NaN/Inf, attributes, too few samples.
    ConfigError
        Bad config, a run folder that already holds a run, ``resume`` together with ``force``.
    CheckpointError
        ``resume`` without a usable ``ckpt.pt``.

    Everything above raises before the first step, on every rank alike. SIGINT (Ctrl-C) finishes
    the current iteration, writes ``ckpt.pt`` and returns with ``interrupted=True``.
    """
    if resume and force:
        raise ConfigError("resume and force exclude each other: resume continues the run, force replaces it")
    t_cfg = cfg.train
    dev_kind = "cuda" if t_cfg.device.startswith("cuda") or (t_cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
    dd = TorchDist(dev_kind)
    determinism = (torch.are_deterministic_algorithms_enabled(),
                   torch.is_deterministic_algorithms_warn_only_enabled())
    # deterministic cuBLAS reads this when its handle is created; the caller's environment is restored
    cublas = t_cfg.deterministic and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    if cublas:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    ok = False
    try:
        result = _train(cfg, dd, resume, force, _on_iteration)
        ok = True
        return result
    finally:
        if cublas:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        torch.use_deterministic_algorithms(determinism[0], warn_only=determinism[1])  # process-global
        dd.close(sync=ok)  # no barrier after an error: a rank that failed alone must not hang the others


def _train(cfg: Config, dd: TorchDist, resume: bool, force: bool,
           on_iteration: Callable[[int], None] | None) -> TrainResult:
    t_cfg = cfg.train
    out = Path(cfg.log.out)
    root = dd.rank == 0
    if not cfg.data.path:
        raise ConfigError("data.path is empty; set it in [data] or with --set data.path=FILE.h5")
    if t_cfg.replay and dd.world > 1:
        raise ConfigError("train.replay runs on one process (each DDP rank would keep its own chains)")
    if t_cfg.batch_size % dd.world:
        raise ConfigError(f"train.batch_size={t_cfg.batch_size} is not divisible by the {dd.world} processes")
    if t_cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False

    # what may differ between ranks (devices, files seen) is checked on each, then agreed
    ck: dict[str, Any] | None = None
    init: dict[str, Any] | None = None  # train.init_from (a new run starting from another's weights)
    stats: NormStats | None = None
    err = None
    try:
        device = _device(cfg, dd)
        if dd.backend == "nccl":
            dd.device = device
        if resume:
            ck = _resume_state(out / "ckpt.pt", cfg)
            stats = NormStats.from_dict(ck["norm"])
        elif t_cfg.init_from:  # its weights mean something in its own normalisation: keep that
            init = read_checkpoint(t_cfg.init_from)
            stats = NormStats.from_dict(init["norm"])
        stale = _previous_run(out, resume, force)
        data_split = _open_data(cfg, stats)
    except Exception as exc:  # noqa: BLE001 - re-raised on every rank by agree
        err = exc
    agree(dd, err)
    cond = cfg.model.kind == "conditional"
    grid, source = data_split.grid, data_split.source
    train_idx, val_idx = data_split.train, data_split.val  # samples, or pairs (conditional)
    planes = data_split.planes(train_idx)  # the training samples behind them
    if stats is None:
        stats = dd.from_root(lambda: _norm_stats(cfg, planes))
    # the training data's one-point statistics: the model's default calibration target
    statistics = ck["statistics"] if ck is not None and "statistics" in ck else dd.from_root(
        lambda: dataset_target(cfg.data.path, planes, chunk=cfg.data.stats_chunk).to_dict())
    modes = None  # conditional: the rollout's Gaussian start (conditional.start_modes), kept on resume
    if cond:
        kept = next((c["start_modes"] for c in (ck, init) if c is not None and "start_modes" in c), None)
        modes = kept if kept is not None else dd.from_root(lambda: _start_modes(cfg, planes, stats))
    pool = val_idx if val_idx.size else train_idx
    augment = {"roll": cfg.data.augment_roll, "spanwise": cfg.data.augment_spanwise, "wall": cfg.data.augment_wall}
    if cond:
        # pairs spread over the validation times (neighbouring pairs of one snapshot are alike)
        pick = _evenly(pool, cfg.log.eval_samples)
        real_eval = run_agreed(dd, _eval_batch, cfg, data_split.pairs.pairs[pick].ravel())
        real_eval = real_eval.reshape(pick.size, 2, *real_eval.shape[1:])  # (E, 2, 3, ny, nz): prev, next
        data = run_agreed(dd, PairDataset, cfg.data.path, stats, data_split.pairs.pairs, **augment)
    else:
        real_eval = run_agreed(dd, _eval_batch, cfg, pool[: cfg.log.eval_samples])
        data = run_agreed(dd, SliceDataset, cfg.data.path, stats, **augment)

    m = cfg.model
    preset = _auto_preset(grid["ny"], grid["nz"], m.kind) if m.preset == "auto" else m.preset
    try:
        arch = arch_config(preset, grid["ny"], grid["nz"], kind=m.kind, latent_dim=m.latent_dim, norm=m.norm,
                           g_channels=m.g_channels or None, c_channels=m.c_channels or None, residual=m.residual,
                           memory=m.memory, band_limit=m.band_limit)
    except CheckpointError as exc:
        raise ConfigError(f"[model]: {exc}") from None
    for c, what, free in ((ck, "checkpoint", set()), (init, f"train.init_from {t_cfg.init_from}", {"band_limit"})):
        # init_from: parameter-free keys may differ (a band limit added while fine-tuning)
        if c is not None and _without({"kind": "plane", **c["arch"]}, free) != _without(arch, free):
            raise CheckpointError(f"{what}: architecture {c['arch']} differs from the configured {arch}")
    torch.manual_seed(t_cfg.seed)
    if cond:
        gen, critic = CondGenerator(arch).to(device), PairCritic(arch).to(device)
    else:
        gen, critic = Generator(arch).to(device), Critic(arch).to(device)
    if init is not None:
        gen.load_state_dict(init["generator"])
        if "training" in init:
            critic.load_state_dict(init["training"]["critic"])
    elif cond and gen.memory is not None and ck is None:  # the skip starts at the data's decorrelation rate
        with torch.no_grad():
            gen.memory.copy_(dd.from_root(lambda: _memory_init(cfg, data_split, train_idx, stats)).to(device))
    spec_target = None  # train.spectrum_target = "data": the training planes' spanwise power (3, ny, nk)
    if t_cfg.spectrum_weight > 0 and t_cfg.spectrum_target == "data":
        spec_target = dd.from_root(lambda: _spectrum_target(cfg, planes, stats)).to(device)
    innovation = None  # conditional: the data's innovation variance (3, ny, 1), normalised (innovation_loss)
    if cond and t_cfg.innovation_weight > 0:
        innovation = dd.from_root(lambda: _innovation_target(cfg, data_split, train_idx, stats)).to(device)
    unroll = t_cfg.unroll if cond else 1
    unrolled = Unrolled(gen) if cond else None  # G's training forward: `unroll` steps in one call (DDP)
    # conditional, train.replay: the last planes of the generator's own chains (one batch, normalised),
    # continued every G step; empty until the first batch; in the training checkpoint (exact resume)
    replay = (torch.empty(0) if ck is None else ck["training"]["replay"].to(device)) if cond and t_cfg.replay else None
    hold = None  # ... anchored as a rollout is (the same time scale: unroll steps between calls), on device
    if replay is not None:
        hold = Anchor(1 - (1 - ROLLOUT_ANCHOR) ** unroll,
                      torch.as_tensor(stats.std, dtype=torch.float32)[..., None].to(device))
        if ck is not None:
            hold.mean, hold.square = (t.to(device) for t in ck["training"]["replay_anchor"])
    lag_target = None  # conditional: the data's correlation with the start at lags 1..unroll (lag_loss)
    if cond and t_cfg.lag_weight > 0:
        lag_target = dd.from_root(lambda: _lag_target(cfg, data_split, train_idx, stats, unroll)).to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=t_cfg.lr_g, betas=tuple(t_cfg.betas))
    opt_c = torch.optim.Adam(critic.parameters(), lr=t_cfg.lr_c, betas=tuple(t_cfg.betas))
    noise = torch.Generator().manual_seed(t_cfg.seed + 1)  # latents + GP coefficients, all ranks alike
    start, consumed, best = 0, 0, None
    if ck is not None:
        tr = ck["training"]
        gen.load_state_dict(ck["generator"])
        critic.load_state_dict(tr["critic"])
        opt_g.load_state_dict(tr["opt_g"])
        opt_c.load_state_dict(tr["opt_c"])
        noise.set_state(tr["noise_rng"])
        torch.set_rng_state(tr["torch_rng"])
        start, consumed, best = int(tr["iteration"]), int(tr["consumed"]), tr["best"]
    if dd.world > 1:
        for p in critic.parameters():
            dist.broadcast(p.data, src=0)
        from torch.nn.parallel import DistributedDataParallel as DDP

        gen_step = DDP(unrolled if cond else gen, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        gen_step = unrolled if cond else gen
    params = {"generator": count_parameters(gen), "critic": count_parameters(critic)}

    sampler = EpochBatchSampler(train_idx, t_cfg.batch_size, t_cfg.seed, rank=dd.rank, world=dd.world,
                                start=consumed)
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler, num_workers=cfg.data.num_workers,
                                         pin_memory=device.type == "cuda")
    batches = iter(loader)
    local = t_cfg.batch_size // dd.world
    lo = dd.rank * local

    metrics_fn = _metrics_fn("pair_metrics" if cond else "slice_metrics") if (root and cfg.log.eval_every) else None
    n_latent = latent_size(arch) if cond else arch["latent_dim"]  # conditional: global part + noise maps
    eval_latent = torch.randn(real_eval.shape[0], n_latent,
                              generator=torch.Generator().manual_seed(t_cfg.seed + 2))
    eval_prev = torch.from_numpy(stats.normalise(real_eval[:, 0])) if cond else None  # (E, 3, ny, nz)
    metadata = {"source": source, "dataset": str(cfg.data.path), "preset": preset}
    if t_cfg.init_from:
        metadata["init_from"] = t_cfg.init_from
    if cond:
        metadata.update(pairs=len(data_split.pairs), wrap=data_split.pairs.wrap)

    def eval_fake() -> np.ndarray:
        """Generated planes for the fixed validation batch, physical units."""
        was_training = gen.training
        gen.eval()
        with torch.no_grad():
            args = (eval_prev.to(device),) if cond else ()
            x = gen(*args, eval_latent.to(device)).cpu().numpy()  # (E, 3, ny, nz)
        gen.train(was_training)
        return stats.denormalise(x)

    def eval_rolled() -> tuple[np.ndarray, np.ndarray]:
        """The last two planes of a burn-in's worth of rollout steps from the fixed validation prev
        planes (fixed latents, physical units), anchored as the synthesis anchors them
        (:data:`cfdseed.synthesis.ROLLOUT_ANCHOR`): the drift and the freezing one-step validation
        cannot see."""
        y = np.asarray(grid["y"])
        steps = math.ceil(BURN_IN * 0.5 * (y[-1] - y[0]) / (grid["dx_plus"] * grid["nu"] / grid["u_tau"]))
        g = torch.Generator().manual_seed(t_cfg.seed + 3)  # not the training stream: resume stays exact
        was_training = gen.training
        gen.eval()
        hold = Anchor(ROLLOUT_ANCHOR, torch.as_tensor(stats.std, dtype=torch.float32)[..., None].to(device))
        with torch.no_grad():
            x = before = eval_prev.to(device)
            for _ in range(steps):
                before, x = x, hold(gen(x, torch.randn(x.shape[0], n_latent, generator=g).to(device)))
        gen.train(was_training)
        return stats.denormalise(x.cpu().numpy()), stats.denormalise(before.cpu().numpy())

    def payload(it: int, training: bool) -> dict[str, Any]:
        p = _payload(gen, arch, stats, grid, {**metadata, "iteration": it}, statistics)
        if modes is not None:
            p["start_modes"] = modes
        if training:
            p["training"] = {
                "critic": critic.state_dict(), "opt_g": opt_g.state_dict(), "opt_c": opt_c.state_dict(),
                "noise_rng": noise.get_state(), "torch_rng": torch.get_rng_state(),
                "iteration": it, "consumed": consumed, "best": best, "config": to_dict(cfg),
            }
            if replay is not None:
                p["training"]["replay"] = replay.detach().cpu()
                p["training"]["replay_anchor"] = [hold.mean.cpu(), hold.square.cpu()]
        return p

    if root:
        for p in stale:
            log.warning("replacing the previous run (force): deleting %s", p)
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.toml").write_text(to_toml(cfg))
        log.info("training %s (%s): %d %s for training, grid %dx%d, preset %s, G %d / C %d parameters, "
                 "%d process(es) on %s", source, m.kind, train_idx.size, "pairs" if cond else "samples",
                 grid["ny"], grid["nz"], preset, params["generator"], params["critic"], dd.world, device)
    logger = TrainLogger(out, cfg, start, t_cfg.iterations, root)

    stop = {"flag": False}
    previous: dict[int, Any] = {}

    def _on_signal(signum: int, frame: Any) -> None:
        stop["flag"] = True
        signal.signal(signum, previous[signum] or signal.SIG_DFL)  # a 2nd signal acts as without us
        log.warning("%s: finishing the iteration and writing a checkpoint (send it again to abort)",
                    signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C; SIGTERM from torchrun, SLURM preemption
        try:
            previous[sig] = signal.signal(sig, _on_signal)
        except ValueError:  # not the main thread: no handler, signals act as usual
            break

    def draw_latent() -> torch.Tensor:
        z = torch.randn(t_cfg.batch_size, n_latent, generator=noise)  # (B, latent) global
        return z[lo : lo + local].to(device, non_blocking=True)

    it = start
    interrupted = False
    last: dict[str, float] = {}
    t0 = time.perf_counter()
    t_prev = t0
    try:
        while it < t_cfg.iterations:
            for _ in range(t_cfg.n_critic):
                real = next(batches).to(device, non_blocking=True)  # (b, 3, ny, nz) or pairs (b, 2, 3, ny, nz)
                consumed += 1
                # conditional: the condition prev goes first to both nets (and is fixed in the GP)
                prev, real = (real[:, 0], real[:, 1]) if cond else (None, real)  # (b, 3, ny, nz) each
                given = (prev,) if cond else ()
                zs = [draw_latent() for _ in range(unroll)]  # one latent per step (plane mode: one)
                eps = torch.rand(t_cfg.batch_size, generator=noise)[lo : lo + local].to(device)  # (b,)
                with torch.no_grad():  # no graph: the critic step does not train G
                    if unroll == 1:
                        cond_f, fake = prev, gen(*given, zs[0])  # (b, 3, ny, nz)
                    else:  # the last pair of a rollout from prev: the critic judges drifted chains too
                        chain = unrolled(prev, torch.stack(zs))
                        cond_f, fake = chain[-2], chain[-1]
                doubled = (torch.cat([prev, cond_f]),) if cond else ()  # the conditions of real and fake
                scores = critic(*doubled, torch.cat([real, fake]))  # (2b,)
                d_real, d_fake = scores[:local].mean(), scores[local:].mean()
                if unroll == 1:  # the condition is the same for real and fake: fixed in the penalty
                    gp = gradient_penalty(lambda x, c=given: critic(*c, x), real, fake, eps)
                else:  # conditions differ: interpolate (condition, next) jointly
                    gp = gradient_penalty(lambda x: critic(x[:, :3], x[:, 3:]), torch.cat([prev, real], 1),
                                          torch.cat([cond_f, fake], 1), eps)
                loss_c = d_fake - d_real + t_cfg.gp_lambda * gp
                opt_c.zero_grad(set_to_none=True)
                loss_c.backward()
                dd.average_([p.grad for p in critic.parameters() if p.grad is not None])
                opt_c.step()
            critic.requires_grad_(False)  # G step: no weight gradients for the critic
            if cond:  # unroll steps from the last critic batch's prev, each pair judged and kept physical
                zs = torch.stack([draw_latent() for _ in range(unroll)])  # (k, b, latent)
                starts, lats = [prev], [zs]  # one generator call (DDP): the batch, twins, replayed planes
                b = prev.shape[0]
                if innovation is not None:  # twins: the first q prev planes again, other latents
                    q = max(1, b // 4)
                    starts.append(prev[:q])
                    lats.append(torch.stack([draw_latent()[:q] for _ in range(unroll)]))
                if replay is not None:  # the generator's own chains, continued (refreshed from real planes)
                    if replay.numel() == 0:
                        replay = prev.detach().clone()
                    fresh = torch.randperm(b, generator=noise)[: max(1, b // t_cfg.replay_refresh)].to(device)
                    replay = replay.clone()
                    replay[fresh] = prev[fresh].detach()
                    starts.append(replay)
                    lats.append(torch.stack([draw_latent() for _ in range(unroll)]))
                both = gen_step(torch.cat(starts), torch.cat(lats, dim=1)) if len(starts) > 1 else gen_step(prev, zs)
                chain = both[:, :b]  # (k, b, 3, ny, nz)
                if innovation is not None:
                    twin = both[0, b : b + q]
                if replay is not None:
                    replayed = both[:, both.shape[1] - b :]
                    replay = hold(replayed[-1].detach())
                conds = [prev, *chain[:-1]]
                loss_g = -torch.stack([critic(c, x).mean() for c, x in zip(conds, chain)]).mean()
            else:
                fake = gen_step(draw_latent())  # (b, 3, ny, nz)
                loss_g = -critic(fake).mean()
            if t_cfg.physics_weight == 0:
                phys = torch.zeros((), device=device)
            elif cond:  # step 1 against the real next plane; later steps' one-point statistics against it
                phys = torch.stack([pair_physics_loss(prev, real, chain[0]),
                                    *(physics_loss(real, x) for x in chain[1:])]).mean()
            else:
                phys = physics_loss(real, fake)
            total_g = loss_g + t_cfg.physics_weight * phys if t_cfg.physics_weight > 0 else loss_g
            if innovation is not None:  # spread of next given prev against the data's innovation variance
                inno = innovation_loss(chain[0, : twin.shape[0]], twin, innovation)
                total_g = total_g + t_cfg.innovation_weight * inno
            else:
                inno = torch.zeros((), device=device)
            if replay is not None:  # one-point statistics (uv per row too) deep into the chains, vs the real batch
                rep_loss = torch.stack([physics_loss(real, x) for x in replayed]).mean()
                total_g = total_g + t_cfg.physics_weight * rep_loss
            else:
                rep_loss = torch.zeros((), device=device)
            # this step's generated planes (conditional: every unrolled and replayed one)
            generated = [*chain, *(replayed if replay is not None else ())] if cond else [fake]
            if t_cfg.uv_weight > 0:  # u-v correlation per row
                uv = torch.stack([uv_loss(real, x) for x in generated]).mean()
                total_g = total_g + t_cfg.uv_weight * uv
            else:
                uv = torch.zeros((), device=device)
            if lag_target is not None:  # every rollout plane's correlation with prev against the data's
                lag = lag_loss(prev, chain, lag_target)
                total_g = total_g + t_cfg.lag_weight * lag
            else:
                lag = torch.zeros((), device=device)
            if t_cfg.spectrum_weight == 0:
                spec = torch.zeros((), device=device)
            elif spec_target is not None:  # every generated plane of this step, pooled, against the data's
                spec = spectrum_error(spec_target, pooled_power(generated))
            else:  # conditional: every step of the chain against the real next planes
                spec = (torch.stack([spectrum_loss(real, x) for x in chain]).mean() if cond
                        else spectrum_loss(real, fake))
            if t_cfg.spectrum_weight > 0:
                total_g = total_g + t_cfg.spectrum_weight * spec
            opt_g.zero_grad(set_to_none=True)
            total_g.backward()
            opt_g.step()
            critic.requires_grad_(True)
            it += 1

            if it % cfg.log.log_every == 0 or it == t_cfg.iterations:
                vals = torch.stack([loss_c.detach(), loss_g.detach(), (d_real - d_fake).detach(),
                                    gp.detach(), phys.detach(), spec.detach(), inno.detach(), lag.detach(),
                                    rep_loss.detach(), uv.detach()]).float()  # nccl: on device
                dd.average_([vals])
                vals = vals.cpu()
                now = time.perf_counter()
                last = dict(zip(LOSSES, vals.tolist(), strict=True))
                if not all(math.isfinite(v) for v in last.values()):
                    log.warning("non-finite losses at iteration %d: %s", it, last)
                logger.row({"iteration": float(it), **last, "it_per_s": cfg.log.log_every / max(now - t_prev, 1e-12),
                            "time_s": now - t0})
                t_prev = now
            logger.progress(last or {"loss_c": float("nan"), "wasserstein": float("nan"), "gp": float("nan")})
            if metrics_fn is not None and (it % cfg.log.eval_every == 0 or it == t_cfg.iterations):
                best = _evaluate(metrics_fn, eval_fake, real_eval, grid, it, best, logger, out,
                                 eval_rolled if cond else None,
                                 lambda: payload(it, False))
            if on_iteration is not None:
                on_iteration(it)
            interrupted = dd.any(stop["flag"])
            if it % cfg.log.checkpoint_every == 0 or interrupted or it == t_cfg.iterations:
                if root:
                    save_checkpoint(out / "ckpt.pt", payload(it, True))
            if interrupted:
                log.warning("interrupted at iteration %d; checkpoint %s written, continue with --resume",
                            it, out / "ckpt.pt")
                break
        loop_seconds = time.perf_counter() - t0
        if root and it == t_cfg.iterations:
            save_checkpoint(out / "model.pt", payload(it, False))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler or signal.SIG_DFL)
        logger.close(out, cfg.log.plot)
    return TrainResult(out=out, iteration=it, interrupted=interrupted, last=last, loop_seconds=loop_seconds,
                       iterations_run=it - start, best_combined=best, parameters=params)


def _evaluate(fn: Callable[..., dict[str, float]], make_fake: Callable[[], np.ndarray], real: np.ndarray,
              grid: Mapping[str, Any], it: int, best: float | None, logger: TrainLogger, out: Path,
              make_rolled: Callable[[], tuple[np.ndarray, np.ndarray]] | None,
              make_payload: Callable[[], dict[str, Any]]) -> float | None:
    """Validation hook: metrics on the fixed batch, logged; ``best.pt`` when "combined" improves.

    ``real`` is ``(E, 3, ny, nz)`` (``fn`` = slice_metrics(real, fake, ...)) or pairs
    ``(E, 2, 3, ny, nz)`` (``fn`` = pair_metrics(prev, real next, fake next, ..., rolled=, rolled_prev=
    make_rolled())).
    """
    fake = make_fake()  # (E, 3, ny, nz) physical
    given = (real[:, 0], real[:, 1]) if real.ndim == 5 else (real,)
    try:
        extra = {} if make_rolled is None else dict(zip(("rolled", "rolled_prev"), make_rolled()))
        values = fn(*given, fake, np.asarray(grid["y"]), grid["lz"], nu=grid["nu"], u_tau=grid["u_tau"], **extra)
    except Exception:  # noqa: BLE001 - a failing metric must not end a days-long run
        log.exception("validation metrics failed at iteration %d; training continues", it)
        return best
    logger.metrics(it, values)
    combined = float(values.get("combined", float("nan")))
    if math.isfinite(combined) and (best is None or combined < best):
        p = make_payload()
        p["metadata"]["combined"] = combined
        save_checkpoint(out / "best.pt", p)
        return combined
    return best
