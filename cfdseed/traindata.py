"""The training data as the loop sees it (:mod:`cfdseed.train`): the split, the normalisation, batches
read by index, and the targets some losses compare with, each computed once from evenly spread
training samples (:mod:`cfdseed.losses`).

- :func:`open_data`: the dataset checked and split by samples (plane mode) or by consecutive-plane
  pairs (conditional mode) into a :class:`TrainData` (``data.val_path``: validated on a file of its
  own; :meth:`TrainData.eval_batch` is the fixed validation batch);
- :func:`norm_stats`: the training samples' normalisation, closed under the augmentations;
- :func:`read_batch`, :func:`read_pairs`: samples or pairs by index;
- targets: :func:`memory_init` (a ``memory`` generator's initial skip factors),
  :func:`spectrum_target` (``train.spectrum_target = "data"``), :func:`innovation_target`,
  :func:`lag_target` (each mirrored about the centre under the wall flip: :func:`mirrored`), and
  :func:`start_modes_of` (a conditional model's Gaussian start).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .conditional import start_modes
from .config import Config
from .data import NormStats, compute_stats, split_indices
from .errors import CheckpointError, DatasetError
from .losses import innovation_variance, plane_chains, pooled_power, step_correlation
from .pairs import PlanePairs, plane_pairs, split_pairs, streamwise_period
from .slices import open_dataset

__all__ = ["TrainData", "open_data", "norm_stats", "evenly", "read_batch", "read_pairs", "mirrored", "memory_init",
           "spectrum_target", "innovation_target", "lag_target", "start_modes_of", "MEMORY_PAIRS",
           "SPECTRUM_PLANES", "INNOVATION_PAIRS", "LAG_CHAINS", "START_PLANES"]


@dataclass
class TrainData:
    """The split dataset: indices of samples (plane mode) or of pairs (conditional mode)."""

    train: np.ndarray
    val: np.ndarray
    grid: dict[str, Any]
    source: str
    pairs: PlanePairs | None = None
    identity: str = ""  # the dataset's content digest (slices.Dataset.identity): what a resume checks
    val_path: str = ""  # data.val_path: the file ``val`` indexes ("": data.path)
    val_pairs: PlanePairs | None = None  # conditional with val_path: that file's pairs
    val_identity: str = ""  # val_path's content digest ("" without one)

    def planes(self, idx: np.ndarray) -> np.ndarray:
        """Sample indices behind ``idx`` (the samples themselves, or the planes of those pairs)."""
        return idx if self.pairs is None else self.pairs.planes(idx)

    def eval_batch(self, cfg: Config, n: int) -> np.ndarray:
        """The fixed validation batch in physical units: the first ``n`` validation samples
        ``(E, 3, ny, nz)``, or (conditional) ``n`` validation pairs spread evenly over them
        ``(E, 2, 3, ny, nz)`` (prev, next); the training ones when there is no validation set."""
        pool = self.val if self.val.size else self.train
        own = bool(self.val_path)  # a validation file is never empty (open_data refuses one)
        path = self.val_path if own else cfg.data.path
        pairs = self.val_pairs if own else self.pairs
        if pairs is None:
            return read_batch(cfg, pool[:n], path)
        pick = evenly(pool, n)
        real = read_batch(cfg, pairs.pairs[pick].ravel(), path)
        return real.reshape(pick.size, 2, *real.shape[1:])


def open_data(cfg: Config, stats: NormStats | None) -> TrainData:
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
        split = TrainData(train_idx, val_idx, grid, ds.source, pairs, ds.identity())
        if d.val_path:
            _own_validation(cfg, split, ds)
        return split


def _own_validation(cfg: Config, split: TrainData, ds: Any) -> None:
    """``data.val_path``: every sample (plane mode) or pair (conditional) of that file validates;
    refused unless it lies on the training data's grid in its units."""
    d = cfg.data
    with open_dataset(d.val_path, check_finite=False) as vs:
        for name in ("ny", "nz"):
            if getattr(vs, name) != getattr(ds, name):
                raise DatasetError(f"{vs.path}: {name} = {getattr(vs, name)}, the training data's is {getattr(ds, name)}")
        for name in ("ly", "lz", "re_tau", "u_tau", "nu"):
            if not np.isclose(getattr(vs, name), getattr(ds, name), rtol=1e-6, atol=0.0):
                raise DatasetError(f"{vs.path}: {name} = {getattr(vs, name)!r}, the training data's is "
                                   f"{getattr(ds, name)!r} (validation compares in the training data's units)")
        if not np.allclose(vs.y, ds.y, rtol=0.0, atol=1e-9 * ds.ly):
            raise DatasetError(f"{vs.path}: its wall-normal points differ from the training data's")
        if split.pairs is not None:
            split.val_pairs = plane_pairs(vs.t, vs.x, lx=d.lx or streamwise_period(vs.attrs), where=str(vs.path))
            split.val = np.arange(len(split.val_pairs), dtype=np.int64)
        else:
            split.val = np.arange(vs.n, dtype=np.int64)
        split.val_path, split.val_identity = str(vs.path), vs.identity()


def norm_stats(cfg: Config, train_idx: np.ndarray) -> NormStats:
    """Normalisation of the training samples (one streaming pass), closed under the augmentations."""
    with open_dataset(cfg.data.path, check_finite=False) as ds:
        base = compute_stats(ds, train_idx, chunk=cfg.data.stats_chunk)
    return base.symmetrised(spanwise=cfg.data.augment_spanwise, wall=cfg.data.augment_wall)


#: Training pairs (evenly spread) behind a ``memory`` generator's initial skip factors.
MEMORY_PAIRS = 512


def evenly(idx: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` entries of ``idx``, evenly spread over it."""
    return idx[np.unique(np.linspace(0, idx.size - 1, min(n, idx.size)).astype(np.int64))]


def read_pairs(cfg: Config, data_split: TrainData, idx: np.ndarray, stats: NormStats) -> tuple[np.ndarray, np.ndarray]:
    """The pairs ``idx`` as normalised ``(prev, next)`` planes ``(n, 3, ny, nz)`` each."""
    pairs = read_batch(cfg, data_split.pairs.pairs[idx].ravel())
    pairs = pairs.reshape(idx.size, 2, *pairs.shape[1:])
    return stats.normalise(pairs[:, 0]), stats.normalise(pairs[:, 1])


def mirrored(cfg: Config, target: torch.Tensor, row_axis: int) -> torch.Tensor:
    """A per-row target averaged with its mirror about the centre when the wall flip augments the data
    (``data.augment_wall``): the target of the data as the generator sees it. Every target here is
    even in v (variances, powers, correlations of a component with itself), so the flip's sign
    change of v leaves it as it is and only the rows swap."""
    return 0.5 * (target + target.flip(row_axis)) if cfg.data.augment_wall else target


def memory_init(cfg: Config, data_split: TrainData, train_idx: np.ndarray, stats: NormStats) -> torch.Tensor:
    """``(3, ny, 1)``: the training pairs' one-step correlation per component and row, in [0, 1]
    (:func:`mirrored`)."""
    prev, nxt = (torch.from_numpy(a).double() for a in read_pairs(cfg, data_split, evenly(train_idx, MEMORY_PAIRS), stats))
    return mirrored(cfg, step_correlation(prev, nxt).clamp(0.0, 1.0).float()[..., None], 1)


#: Training pairs (evenly spread) behind the innovation target (innovation_variance).
INNOVATION_PAIRS = 4096


#: Training planes (evenly spread) behind ``train.spectrum_target = "data"``.
SPECTRUM_PLANES = 2048


def spectrum_target(cfg: Config, planes: np.ndarray, stats: NormStats) -> torch.Tensor:
    """``(3, ny, nk)``: the pooled spanwise power of :data:`SPECTRUM_PLANES` training planes
    (normalised; :func:`mirrored`)."""
    x = torch.as_tensor(stats.normalise(read_batch(cfg, evenly(planes, SPECTRUM_PLANES))), dtype=torch.float32)
    return mirrored(cfg, pooled_power([x]), 1)


def innovation_target(cfg: Config, data_split: TrainData, train_idx: np.ndarray, stats: NormStats) -> torch.Tensor:
    """``(3, ny, 1)``: :func:`innovation_variance` of :data:`INNOVATION_PAIRS` training pairs
    (:func:`mirrored`)."""
    prev, nxt = read_pairs(cfg, data_split, evenly(train_idx, INNOVATION_PAIRS), stats)
    return mirrored(cfg, torch.as_tensor(innovation_variance(prev, nxt), dtype=torch.float32)[..., None], 1)


#: Chains (evenly spread starting pairs) behind the lag target (lag_target).
LAG_CHAINS = 1024


def lag_target(cfg: Config, data_split: TrainData, train_idx: np.ndarray, stats: NormStats, lags: int) -> torch.Tensor:
    """``(lags, 3, ny)``: the data's correlation of planes ``1 .. lags`` steps downstream with their
    start, per component and row (:func:`step_correlation`), over :data:`LAG_CHAINS` training chains
    (:func:`mirrored`)."""
    pairs = data_split.pairs.pairs
    chains = plane_chains(pairs, pairs[evenly(train_idx, LAG_CHAINS), 0], lags)
    if not len(chains):
        raise DatasetError(f"{cfg.data.path}: no chain of {lags + 1} consecutive planes for train.lag_weight")
    planes = stats.normalise(read_batch(cfg, chains.ravel()))
    planes = planes.reshape(*chains.shape, *planes.shape[1:])  # (chains, lags + 1, 3, ny, nz)
    start = torch.from_numpy(planes[:, 0]).double()
    return mirrored(cfg, torch.stack([step_correlation(start, torch.from_numpy(planes[:, j]).double())
                                      for j in range(1, lags + 1)]).float(), 2)


#: Training planes (evenly spread) behind a conditional model's start modes.
START_PLANES = 4096


def start_modes_of(cfg: Config, planes: np.ndarray, stats: NormStats) -> torch.Tensor:
    """:func:`cfdseed.conditional.start_modes` of up to :data:`START_PLANES` training planes, normalised."""
    pick = evenly(planes, START_PLANES)
    with open_dataset(cfg.data.path, check_finite=False) as ds:
        return start_modes(stats.normalise(b) for _, b in ds.iter_chunks(cfg.data.stats_chunk, pick))


def read_batch(cfg: Config, idx: np.ndarray, path: str | None = None) -> np.ndarray:
    """Samples ``idx`` ``(E, 3, ny, nz)`` of ``path`` (default ``data.path``) in physical units;
    NaN/Inf refused."""
    path = path or cfg.data.path
    with open_dataset(path, check_finite=False) as ds:
        real = ds.read(idx)
    if not np.all(np.isfinite(real)):
        raise DatasetError(f"{path}: samples read hold NaN/Inf values")
    return real
