"""WGAN-GP training loop (:func:`train`; command line ``cfdseed train CONFIG.toml`` in :mod:`cfdseed.cli`).

Owns the set-up, the loop, atomic checkpoints with exact resume, and DDP. Its parts: one
iteration's critic and generator updates in :mod:`cfdseed.trainstep`; the split data, the
normalisation and the losses' data targets in :mod:`cfdseed.traindata`; the losses themselves
(critic, gradient penalty, physics statistics, spectra, innovation, lags) in :mod:`cfdseed.losses`;
validation and ``best.pt`` in :mod:`cfdseed.trainval`; the logs (tqdm, CSV, optional TensorBoard,
PNG) in :mod:`cfdseed.trainlog`; the torch.distributed plumbing in :mod:`cfdseed._torch_dist`.

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

import functools
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

import torch
import torch.distributed as dist

from . import traindata
from ._collective import agree, run_agreed
from ._torch_dist import TorchDist
from .checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, model_path, read_checkpoint, save_checkpoint
from .conditional import CondGenerator, PairCritic, Unrolled, latent_size
from .config import Config, to_dict, to_toml
from .data import EpochBatchSampler, NormStats, SliceDataset
from .errors import CheckpointError, ConfigError, TrainingError
from .model import Critic, Generator, arch_config, count_parameters, torch_device
from .pairs import PairDataset
from .stats import y_is_symmetric
from .targets import dataset_target
from .trainlog import LOSSES, TrainLogger
from .trainstep import Targets, WganStep
from .trainval import Validation, metrics_function

__all__ = ["train", "TrainResult", "RUN_FILES"]

log = logging.getLogger(__name__)

# Keys a resumed run may change; anything else must equal the checkpoint's config (train.init_from
# acts on a new run only: a resumed one takes its weights from its own checkpoint; data.path may
# move, and what it holds is compared by content: _check_resumed_data).
_RESUMABLE = {("train", "iterations"), ("train", "device"), ("data", "num_workers"), ("train", "init_from"),
              ("data", "path"), ("data", "val_path")}
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


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _check_workers(cfg: Config) -> None:
    """``data.num_workers`` must not exceed the usable CPUs: each worker is a process with its own
    reader of the data file (10 000 of them exhausted the machine before the first batch)."""
    n, cpus = cfg.data.num_workers, _usable_cpus()
    if n > cpus:
        raise ConfigError(f"data.num_workers = {n} exceeds the {cpus} CPU(s) this process may use; each worker is a "
                          f"process reading the data file: use at most {cpus} (0: read in the main process)")


def _device(cfg: Config, dd: TorchDist) -> torch.device:
    dev = torch_device(cfg.train.device, "train.device")
    if dev.type == "cuda":
        if dev.index is None:
            dev = torch.device("cuda", dd.local_rank if dd.world > 1 else torch.cuda.current_device())
        torch.cuda.set_device(dev)
    return dev


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


def _resume_state(path: Path, cfg: Config) -> dict[str, Any]:
    """The training checkpoint to resume from, refused when the config changed beyond _RESUMABLE."""
    ck = read_checkpoint(path)
    if "training" not in ck:
        raise CheckpointError(f"{path} holds no training state (a shipped model?)")
    changes = _config_changes(ck["training"]["config"], cfg)
    if changes:
        raise ConfigError("cannot resume with a changed config: " + "; ".join(changes))
    return ck


def _check_resumed_data(training: Mapping[str, Any], path: str, identity: str) -> None:
    """Say what a resumed run's dataset is relative to the one its checkpoint trained on.

    A moved or copied file (same content digest) resumes exactly; other data (e.g. planes regenerated
    from a solver's restart states) continues the run, not bit for bit, which is logged as a warning.
    """
    old_path = training["config"].get("data", {}).get("path")
    old_identity = training.get("data_identity")
    if old_identity is None:
        if old_path != path:
            log.warning("resuming on %s; the checkpoint trained on %s and predates dataset digests, so whether "
                        "they hold the same data cannot be checked", path, old_path)
    elif old_identity != identity:
        log.warning("resuming on other data than the checkpoint trained on (%s: digest %s, was %s: %s): the run "
                    "continues, not bit for bit", path, identity, old_path, old_identity)
    elif old_path != path:
        log.info("dataset moved: %s -> %s (same content digest %s)", old_path, path, identity)


#: What a run writes before its first checkpoint: a folder holding only these is a run that never
#: checkpointed (killed at once), which an auto-resume starts again.
_START_FILES = {"config.toml", "log.csv", "metrics.csv", "losses.png", "tb"}


def _previous_run(out: Path, resume: bool, force: bool, auto: bool = False) -> list[Path]:
    """The files of a run already in ``out`` that ``force`` replaces; refused unless resuming or forced
    (``auto`` without a checkpoint: replaced when they are only a start's, :data:`_START_FILES`)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"run folder {out} is a file; choose a folder (--out / log.out)")
    old = [out / name for name in RUN_FILES if (out / name).exists()]
    if auto and not resume and old and {p.name for p in old} <= _START_FILES:
        return old
    if old and not (resume or force):
        raise ConfigError(
            f"run folder {out} already holds a run ({', '.join(p.name for p in old)}); continue it with "
            "--resume, replace it with --force, or choose another folder (--out / log.out)"
        )
    return old if force else []


def _diverged(what: str, out: Path, saved: int | None) -> TrainingError:
    """The error that ends a diverged run, saying what ``ckpt.pt`` still holds."""
    return TrainingError(f"training diverged {what}; {out / 'ckpt.pt'} keeps "
                         f"{'no state' if saved is None else f'iteration {saved}'} (nothing non-finite is written): "
                         "lower train.lr_g / train.lr_c or the loss weights and resume, or start again")


def _check_finite(gen: torch.nn.Module, it: int, out: Path, saved: int | None) -> None:
    """TrainingError before a diverged generator (NaN/Inf weights) would overwrite a checkpoint."""
    with torch.no_grad():
        if all(bool(torch.isfinite(p).all()) for p in gen.parameters()):
            return
    raise _diverged(f"by iteration {it}: non-finite generator weights", out, saved)


def _without(d: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


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


def train(cfg: Config, *, resume: bool | str = False, force: bool = False,
          _on_iteration: Callable[[int], None] | None = None) -> TrainResult:
    """Train a WGAN-GP generator as configured; returns a :class:`TrainResult`.

    Parameters
    ----------
    cfg
        The configuration (:mod:`cfdseed.config`); the run folder is ``cfg.log.out``, created with
        any missing parent folders.
    resume
        True: continue exactly from ``ckpt.pt`` in the run folder. ``"auto"``: continue when the run
        folder holds a ``ckpt.pt``, else start a new run there (replacing the files of a start
        that never checkpointed, :data:`_START_FILES`, but refusing a folder holding weights): one
        command for a batch job that may be requeued. The folder must be shared by the processes.
    force
        Replace a run already in the run folder (its files, :data:`RUN_FILES`, are deleted once the
        set-up has passed); without ``resume`` or ``force`` such a folder is refused.

    Raises
    ------
    DatasetError
        Dataset file, shapes, NaN/Inf, attributes, too few samples.
    ConfigError
        Bad config (an unknown or unavailable device), a run folder that already holds a run or
        cannot be created, ``resume`` together with ``force``, ``resume="auto"`` seeing ``ckpt.pt``
        on some processes only.
    CheckpointError
        ``resume`` without a usable ``ckpt.pt``.

    Everything above raises before the first step, on every rank alike. SIGINT (Ctrl-C) or SIGTERM
    (torchrun, SLURM preemption) finishes the current iteration, writes ``ckpt.pt`` and returns with
    ``interrupted=True``; a second one acts as without the handler (handlers are installed only
    from the main thread).
    """
    if resume not in (True, False, "auto"):
        raise ConfigError(f"resume={resume!r}; must be True, False or 'auto'")
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


def _train(cfg: Config, dd: TorchDist, resume: bool | str, force: bool,
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
    auto = resume == "auto"
    err = None
    try:
        _check_workers(cfg)
        device = _device(cfg, dd)
        if dd.backend == "nccl":
            dd.device = device
        if auto:  # each process looks (a shared folder: they agree; checked after the agreement below)
            resume = (out / "ckpt.pt").is_file()
        if resume:
            ck = _resume_state(out / "ckpt.pt", cfg)
            stats = NormStats.from_dict(ck["norm"])
        elif t_cfg.init_from:  # its weights mean something in its own normalisation: keep that
            init = read_checkpoint(model_path(t_cfg.init_from))  # a path or a packaged model's name
            stats = NormStats.from_dict(init["norm"])
        stale = _previous_run(out, resume, force, auto)
        data_split = traindata.open_data(cfg, stats)
    except Exception as exc:  # noqa: BLE001 - re-raised on every rank by agree
        err = exc
    agree(dd, err)
    if auto:
        if dd.world > 1 and dd.any(bool(resume)) and dd.any(not resume):
            raise ConfigError(f"auto-resume: {out / 'ckpt.pt'} exists for some processes only; the run folder must be "
                              "one folder shared by every process")
        if root:
            log.info("auto-resume: %s", f"continuing from {out / 'ckpt.pt'}" if resume else
                     f"no checkpoint in {out}: starting a new run")
    if ck is not None and root:
        _check_resumed_data(ck["training"], str(cfg.data.path), data_split.identity)
    cond = cfg.model.kind == "conditional"
    grid, source = data_split.grid, data_split.source
    train_idx = data_split.train  # samples, or pairs (conditional)
    planes = data_split.planes(train_idx)  # the training samples behind them
    if stats is None:
        stats = dd.from_root(lambda: traindata.norm_stats(cfg, planes))
    # the training data's one-point statistics: the model's default calibration target
    statistics = ck["statistics"] if ck is not None and "statistics" in ck else dd.from_root(
        lambda: dataset_target(cfg.data.path, planes, chunk=cfg.data.stats_chunk).to_dict())
    modes = None  # conditional: the rollout's Gaussian start (conditional.start_modes), kept on resume
    if cond:
        kept = next((c["start_modes"] for c in (ck, init) if c is not None and "start_modes" in c), None)
        modes = kept if kept is not None else dd.from_root(lambda: traindata.start_modes_of(cfg, planes, stats))
    augment = {"roll": cfg.data.augment_roll, "spanwise": cfg.data.augment_spanwise, "wall": cfg.data.augment_wall}
    # conditional: pairs spread over the validation times (neighbouring pairs of one snapshot are alike)
    real_eval = run_agreed(dd, data_split.eval_batch, cfg, cfg.log.eval_samples)
    if cond:
        data = run_agreed(dd, PairDataset, cfg.data.path, stats, data_split.pairs.pairs, **augment)
    else:
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
    # agreed: a rank out of device memory (a shared GPU) must not leave the others in from_root or DDP
    gen, critic = run_agreed(dd, lambda: (CondGenerator(arch).to(device), PairCritic(arch).to(device)) if cond
                             else (Generator(arch).to(device), Critic(arch).to(device)))
    if init is not None:
        gen.load_state_dict(init["generator"])
        if "training" in init:
            critic.load_state_dict(init["training"]["critic"])
    elif cond and gen.memory is not None and ck is None:  # the skip starts at the data's decorrelation rate
        with torch.no_grad():
            gen.memory.copy_(dd.from_root(lambda: traindata.memory_init(cfg, data_split, train_idx, stats)).to(device))
    targets = Targets()  # what some losses compare with, from the training data
    if t_cfg.spectrum_weight > 0 and t_cfg.spectrum_target == "data":  # the training planes' spanwise power
        targets.spectrum = dd.from_root(lambda: traindata.spectrum_target(cfg, planes, stats)).to(device)
    if cond and t_cfg.innovation_weight > 0:  # the data's innovation variance, normalised
        targets.innovation = dd.from_root(
            lambda: traindata.innovation_target(cfg, data_split, train_idx, stats)).to(device)
    if cond and t_cfg.lag_weight > 0:  # the data's correlation with the start at lags 1..unroll
        targets.lag = dd.from_root(
            lambda: traindata.lag_target(cfg, data_split, train_idx, stats, t_cfg.unroll)).to(device)
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
        rescored = [why for why, moved in (
            ("log.eval_halves changed", tr["config"].get("log", {}).get("eval_halves", False) != cfg.log.eval_halves),
            ("the validation set changed", tr.get("val_identity", "") != data_split.val_identity)) if moved]
        if rescored:  # the eval's kind, or data.val_path set, changed or dropped
            log.warning("%s on resume (validation on %s): the best combined so far (%s) was scored another way; "
                        "best.pt is chosen afresh from here", " and ".join(rescored),
                        cfg.data.val_path or "a split of data.path", best)
            best = None
    forward = Unrolled(gen) if cond else gen  # G's training forward (conditional: `unroll` steps in one call)
    if dd.world > 1:
        for p in critic.parameters():
            dist.broadcast(p.data, src=0)
        from torch.nn.parallel import DistributedDataParallel as DDP

        forward = DDP(forward, device_ids=[device.index] if device.type == "cuda" else None)
    params = {"generator": count_parameters(gen), "critic": count_parameters(critic)}

    sampler = EpochBatchSampler(train_idx, t_cfg.batch_size, t_cfg.seed, rank=dd.rank, world=dd.world,
                                start=consumed)
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler, num_workers=cfg.data.num_workers,
                                         pin_memory=device.type == "cuda")
    batches = run_agreed(dd, iter, loader)  # agreed: starting its worker processes may fail on one rank

    n_latent = latent_size(arch) if cond else arch["latent_dim"]  # conditional: global part + noise maps
    step = WganStep(t_cfg, dd, device, gen, critic, forward, opt_g, opt_c, noise, cond=cond, n_latent=n_latent,
                    targets=targets, std=stats.std, resumed=None if ck is None else ck["training"], consumed=consumed)
    validate = None  # rank 0 scores the fixed batch every log.eval_every iterations
    if cfg.log.eval_halves and not y_is_symmetric(grid["y"], grid["ly"]):  # refuse now, not at every score
        raise ConfigError("log.eval_halves needs y symmetric about the channel centre; this dataset's is not")
    metrics_fn = metrics_function("pair_metrics" if cond else "slice_metrics") if root and cfg.log.eval_every else None
    if metrics_fn is not None and cfg.log.eval_halves:
        metrics_fn = functools.partial(metrics_fn, halves=True)
    if metrics_fn is not None:
        validate = Validation(metrics_fn, gen, real_eval, stats, grid, n_latent, t_cfg.seed, device)
    metadata = {"source": source, "dataset": str(cfg.data.path), "dataset_identity": data_split.identity,
                "preset": preset}
    if data_split.val_path:
        metadata.update(validation=data_split.val_path, validation_identity=data_split.val_identity)
    if t_cfg.init_from:
        metadata["init_from"] = t_cfg.init_from
    if cond:
        metadata.update(pairs=len(data_split.pairs), wrap=data_split.pairs.wrap)

    def payload(it: int, training: bool) -> dict[str, Any]:
        p = _payload(gen, arch, stats, grid, {**metadata, "iteration": it}, statistics)
        if modes is not None:
            p["start_modes"] = modes
        if training:
            p["training"] = {
                "critic": critic.state_dict(), "opt_g": opt_g.state_dict(), "opt_c": opt_c.state_dict(),
                "noise_rng": noise.get_state(), "torch_rng": torch.get_rng_state(),
                "iteration": it, "consumed": step.consumed, "best": best, "config": to_dict(cfg),
                "data_identity": data_split.identity, "val_identity": data_split.val_identity, **step.state(),
            }
        return p

    def prepare_folder() -> None:
        if not root:
            return
        for p in stale:
            log.warning("replacing the previous run (%s): deleting %s",
                        "force" if force else "auto-resume, it never checkpointed", p)
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.toml").write_text(to_toml(cfg))
        except OSError as exc:
            raise ConfigError(f"run folder {out}: cannot create it or write in it ({exc.strerror or exc}); "
                              "choose another (--out / log.out)") from None
        log.info("training %s (%s): %d %s for training, grid %dx%d, preset %s, G %d / C %d parameters, "
                 "%d process(es) on %s", source, m.kind, train_idx.size, "pairs" if cond else "samples",
                 grid["ny"], grid["nz"], preset, params["generator"], params["critic"], dd.world, device)

    # rank 0 writes the run's files; each write is agreed, so its failure (a full disk) ends every
    # rank instead of leaving the others in the next step's collectives
    run_agreed(dd, prepare_folder)
    logger = run_agreed(dd, TrainLogger, out, cfg, start, t_cfg.iterations, root)

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

    if init is not None and ck is None and cfg.log.eval_every:
        # started from another run's weights: their own score first (iteration 0), so that best.pt
        # holds weights that beat the start, or the start itself
        best = run_agreed(dd, lambda: best if validate is None else
                          validate(0, best, logger, out, lambda: payload(0, False)))
    it = start
    saved = start if ck is not None else None  # the iteration ckpt.pt holds
    interrupted = False
    last: dict[str, float] = {}
    t0 = time.perf_counter()
    t_prev = t0
    try:
        while it < t_cfg.iterations:
            vals = step(batches)
            it += 1

            if it % cfg.log.log_every == 0 or it == t_cfg.iterations:
                dd.average_([vals])  # nccl: on device
                vals = vals.cpu()
                now = time.perf_counter()
                last = dict(zip(LOSSES, vals.tolist(), strict=True))
                if not all(math.isfinite(v) for v in last.values()):  # averaged: every rank alike
                    raise _diverged(f"at iteration {it}: non-finite losses {last}", out, saved)
                run_agreed(dd, logger.row, {"iteration": float(it), **last, "time_s": now - t0,
                                            "it_per_s": cfg.log.log_every / max(now - t_prev, 1e-12)})
                t_prev = now
            logger.progress(last or {"loss_c": float("nan"), "wasserstein": float("nan"), "gp": float("nan")})
            if cfg.log.eval_every and (it % cfg.log.eval_every == 0 or it == t_cfg.iterations):  # every rank alike
                best = run_agreed(dd, lambda: best if validate is None else
                                  validate(it, best, logger, out, lambda: payload(it, False)))
            if on_iteration is not None:
                on_iteration(it)
            interrupted = dd.any(stop["flag"])
            if it % cfg.log.checkpoint_every == 0 or interrupted or it == t_cfg.iterations:
                _check_finite(gen, it, out, saved)  # DDP keeps the generators alike: every rank decides alike
                run_agreed(dd, lambda: root and save_checkpoint(out / "ckpt.pt", payload(it, True)))
                saved = it
            if interrupted:
                log.warning("interrupted at iteration %d; checkpoint %s written, continue with --resume",
                            it, out / "ckpt.pt")
                break
        loop_seconds = time.perf_counter() - t0
        if it == t_cfg.iterations:
            run_agreed(dd, lambda: root and save_checkpoint(out / "model.pt", payload(it, False)))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler or signal.SIG_DFL)
        logger.close(out, cfg.log.plot)
    return TrainResult(out=out, iteration=it, interrupted=interrupted, last=last, loop_seconds=loop_seconds,
                       iterations_run=it - start, best_combined=best, parameters=params)
