"""The training pipeline over slice datasets: normalisation, augmentation, the reproducible
train/validation split, and the streaming torch dataset and batch sampler.

The file format itself (writer, validated reader) is :mod:`cfdseed.slices`. Imports only numpy and
h5py at module level; :class:`SliceDataset` imports torch when it is used.

Training never loads the whole file: :class:`SliceDataset` reads one sample per access with the
file opened once per process (DataLoader worker), so datasets larger than memory train.

Normalisation (:class:`NormStats`) is per channel and per wall-normal row: mean and standard
deviation over samples and z, computed once in one streaming pass, stored in the checkpoint and
inverted when sampling.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from .config import SPLIT_MODES
from .errors import DatasetError
from .slices import Dataset, open_dataset
from .stats import y_is_symmetric

__all__ = [
    "NormStats",
    "compute_stats",
    "augment",
    "split_indices",
    "SliceDataset",
    "EpochBatchSampler",
]


@dataclass(frozen=True)
class NormStats:
    """Per channel and wall-normal row mean and standard deviation, both ``(3, ny)`` float64.

    ``normalise(x) = (x - mean) / std`` broadcast over samples and z; rows with zero variance
    (e.g. no-slip walls) use a floor so that ``denormalise`` returns the mean exactly there.
    """

    mean: np.ndarray
    std: np.ndarray

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """``(..., 3, ny, nz)`` physical -> normalised (float32)."""
        return ((x - self.mean[..., None]) / self.std[..., None]).astype(np.float32)

    def denormalise(self, x: np.ndarray) -> np.ndarray:
        """``(..., 3, ny, nz)`` normalised -> physical (float32)."""
        return (x * self.std[..., None] + self.mean[..., None]).astype(np.float32)

    def symmetrised(self, *, spanwise: bool = False, wall: bool = False) -> NormStats:
        """Statistics of the data closed under the reflections used as augmentations.

        Spanwise reflection (w -> -w) makes the mean of w zero; wall reflection (row j <-> ny-1-j,
        v -> -v) averages each row with its mirror. Second moments are averaged, then the variance
        is recomputed, so the result equals the stats of the augmented distribution.
        """
        mean, m2 = self.mean.copy(), self.std**2 + self.mean**2
        if spanwise:
            mean[2] = 0.0
        if wall:
            sign = np.array([1.0, -1.0, 1.0])[:, None]
            mean = 0.5 * (mean + sign * mean[:, ::-1])
            m2 = 0.5 * (m2 + m2[:, ::-1])
        return NormStats(mean, _std_floor(np.sqrt(np.maximum(m2 - mean**2, 0.0))))

    def to_dict(self) -> dict[str, list[list[float]]]:
        """Plain nested lists (safe for ``torch.load(weights_only=True)`` and JSON)."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NormStats:
        """Inverse of :meth:`to_dict` (accepts lists, arrays or tensors)."""
        mean = np.asarray(d["mean"], dtype=np.float64)
        std = np.asarray(d["std"], dtype=np.float64)
        if mean.ndim != 2 or mean.shape[0] != 3 or std.shape != mean.shape:
            raise DatasetError(f"normalisation stats must be (3, ny); got {mean.shape} and {std.shape}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise DatasetError("normalisation stats must be finite with positive std")
        return cls(mean, std)


def _std_floor(std: np.ndarray) -> np.ndarray:
    # Rows with (near) zero variance, e.g. velocity at a no-slip wall: avoid dividing by zero.
    scale = np.max(std, axis=1, keepdims=True)
    floor = np.where(scale > 0, 1e-6 * scale, 1.0)
    return np.maximum(std, floor)


def compute_stats(ds: Dataset, indices: np.ndarray | None = None, *, chunk: int = 64) -> NormStats:
    """Per channel and row mean/std over the chosen samples and z, in one streaming pass.

    Blocks are combined with the pairwise (Chan et al.) update in float64, so large datasets do not
    lose precision. Raises DatasetError naming non-finite samples.
    """
    count = 0
    mean = np.zeros((3, ds.ny))
    m2 = np.zeros((3, ds.ny))
    for part, block in ds.iter_chunks(chunk, indices):
        ok = np.isfinite(block).reshape(block.shape[0], -1).all(axis=1)
        if not ok.all():
            raise DatasetError(f"{ds.path}: sample(s) {part[~ok][:10].tolist()} hold NaN/Inf values")
        b = block.astype(np.float64)  # (k, 3, ny, nz)
        nb = b.shape[0] * b.shape[3]
        bmean = b.mean(axis=(0, 3))
        bm2 = ((b - bmean[None, :, :, None]) ** 2).sum(axis=(0, 3))
        delta = bmean - mean
        tot = count + nb
        mean = mean + delta * nb / tot
        m2 = m2 + bm2 + delta**2 * count * nb / tot
        count = tot
    if count == 0:
        raise DatasetError(f"{ds.path}: no samples to compute normalisation statistics from")
    return NormStats(mean, _std_floor(np.sqrt(m2 / count)))


def augment(
    sample: np.ndarray,
    rng: np.random.Generator,
    *,
    roll: bool = True,
    spanwise: bool = True,
    wall: bool = False,
) -> np.ndarray:
    """Random physically valid symmetry of one slice ``(3, ny, nz)`` (copy).

    Leading axes are allowed (``(..., 3, ny, nz)``, e.g. a pair of consecutive planes
    ``(2, 3, ny, nz)``): the same transform is applied to every slice.

    - ``roll``: periodic spanwise shift by a uniform random number of points.
    - ``spanwise``: with probability 1/2, z -> -z (index k -> -k mod nz) with w -> -w.
    - ``wall``: with probability 1/2, y -> ly - y (row j -> ny-1-j) with v -> -v; only valid
      when y is symmetric (:func:`cfdseed.stats.y_is_symmetric`; the caller checks).
    """
    out = np.array(sample, dtype=np.float32, copy=True)
    nz = out.shape[-1]
    # draw all three regardless of the switches so the stream does not depend on them
    shift, flip_z, flip_y = int(rng.integers(nz)), bool(rng.integers(2)), bool(rng.integers(2))
    if roll and shift:
        out = np.roll(out, shift, axis=-1)
    if spanwise and flip_z:
        out = np.roll(out[..., ::-1], 1, axis=-1)  # index k -> (-k) mod nz
        out[..., 2, :, :] *= -1.0
    if wall and flip_y:
        out = out[..., ::-1, :].copy()
        out[..., 1, :, :] *= -1.0
    return np.ascontiguousarray(out)


def split_indices(
    n: int,
    *,
    val_fraction: float,
    seed: int,
    mode: str = "blocks",
    blocks: int = 10,
    t: np.ndarray | None = None,
    gap: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Reproducible train/validation split of ``n`` samples -> ``(train, val)`` sorted indices.

    ``mode="blocks"``: samples ordered by time ``t`` (file order when None) are cut into ``blocks``
    contiguous blocks and whole blocks (chosen by ``seed``) go to validation, so validation samples
    are not near-duplicates of neighbouring training snapshots. ``mode="last"``: the same blocks,
    the last ones in time go to validation (a gap then costs training data on one side only).
    ``mode="random"``: a seeded permutation. ``val_fraction=0`` gives an empty validation set.
    ``gap > 0`` drops the training samples whose time lies within ``gap`` of a validation sample's
    (needs ``t``), so that validation is at least ``gap`` away in time from every training sample.

    Raises
    ------
    DatasetError
        Unknown ``mode``, ``val_fraction`` outside [0, 1), ``gap`` < 0 or ``gap > 0`` without ``t``.
    """
    if mode not in SPLIT_MODES:
        raise DatasetError(f"split mode {mode!r} unknown; must be one of {', '.join(SPLIT_MODES)}")
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not gap >= 0.0:
        raise DatasetError(f"the validation gap must be >= 0, got {gap}")
    if gap > 0.0 and t is None:
        raise DatasetError(f"a validation gap ({gap}) needs the time of each sample (/t); the dataset has none")
    rng = np.random.default_rng(seed)
    if val_fraction == 0.0:
        return np.arange(n), np.arange(0)
    if mode == "random":
        perm = rng.permutation(n)
        nval = max(1, int(round(val_fraction * n)))
        val = perm[:nval]
    else:
        order = np.arange(n) if t is None else np.argsort(np.asarray(t), kind="stable")
        nblocks = max(2, min(blocks, n))
        parts = np.array_split(order, nblocks)
        nval = max(1, int(round(val_fraction * nblocks)))
        chosen = (rng.choice(nblocks, size=nval, replace=False) if mode == "blocks"
                  else np.arange(nblocks - nval, nblocks))
        val = np.concatenate([parts[i] for i in chosen])
    mask = np.zeros(n, dtype=bool)
    mask[val] = True
    train = np.nonzero(~mask)[0]
    if gap > 0.0 and train.size:
        tt = np.asarray(t, dtype=np.float64)
        tv = np.sort(tt[mask])
        pos = np.searchsorted(tv, tt[train])  # nearest validation time on either side
        after = np.abs(tv[np.minimum(pos, tv.size - 1)] - tt[train])
        before = np.abs(tt[train] - tv[np.maximum(pos - 1, 0)])
        train = train[np.minimum(after, before) >= gap]
    return train, np.nonzero(mask)[0]


class SliceDataset:
    """Map-style torch dataset over an HDF5 file: normalised (and augmented) float32 tensors.

    Items are keyed by ``index`` (no augmentation) or ``(index, aug_seed)``: the augmentation is a
    pure function of the key, so results do not depend on worker count or order. The file is opened
    lazily once per process (safe with DataLoader workers) and samples are read one at a time.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        stats: NormStats,
        *,
        roll: bool = False,
        spanwise: bool = False,
        wall: bool = False,
    ) -> None:
        self.path = str(path)
        self.stats = stats
        self.roll, self.spanwise, self.wall = roll, spanwise, wall
        with open_dataset(path, check_finite=False) as ds:
            self.n = ds.n
            if wall and not y_is_symmetric(ds.y, ds.ly):
                raise DatasetError(
                    f"{path}: wall reflection augmentation needs y symmetric about ly/2; it is not"
                )
        self._file: h5py.File | None = None
        self._pid: int | None = None
        # float32 shift and inverse scale: the per-sample hot path stays in single precision
        self._shift = stats.mean.astype(np.float32)[:, :, None]  # (3, ny, 1)
        self._scale = (1.0 / stats.std).astype(np.float32)[:, :, None]

    def __len__(self) -> int:
        return self.n

    def _fields(self) -> h5py.Dataset:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file["fields"]

    def _prepare(self, x: np.ndarray, aug_seed: int | None) -> np.ndarray:
        if aug_seed is not None and (self.roll or self.spanwise or self.wall):
            x = augment(x, np.random.default_rng(int(aug_seed)), roll=self.roll,
                        spanwise=self.spanwise, wall=self.wall)
        return (x - self._shift) * self._scale

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        import torch

        index, aug_seed = (key, None) if isinstance(key, (int, np.integer)) else key
        x = np.asarray(self._fields()[int(index)], dtype=np.float32)  # (3, ny, nz)
        return torch.from_numpy(self._prepare(x, aug_seed))

    def __getitems__(self, keys: Sequence[int | tuple[int, int]]) -> list[Any]:
        """A whole batch (the DataLoader calls this instead of one ``__getitem__`` per key)."""
        import torch

        fields = self._fields()
        pairs = [(k, None) if isinstance(k, (int, np.integer)) else k for k in keys]
        # one read per sample: h5py point selections over many chunks are slower than this loop
        return [torch.from_numpy(self._prepare(np.asarray(fields[int(i)], dtype=np.float32), s))
                for i, s in pairs]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"], state["_pid"] = None, None  # h5py handles do not cross processes
        return state


class EpochBatchSampler:
    """Endless, resumable batches of ``(index, aug_seed)`` keys, sharded over ranks.

    Epoch ``e`` is a permutation of ``indices`` drawn from ``(seed, e)``; global batch ``b`` of that
    epoch is split into ``world`` equal parts and rank ``rank`` gets its part, so the union over
    ranks equals the single-process batch. Incomplete final batches are dropped. The position is
    the number of global batches consumed, so ``start`` resumes the exact data order.
    """

    def __init__(
        self,
        indices: np.ndarray,
        batch_size: int,
        seed: int,
        *,
        rank: int = 0,
        world: int = 1,
        start: int = 0,
    ) -> None:
        self.indices = np.asarray(indices, dtype=np.int64)
        if batch_size % world:
            raise DatasetError(f"batch size {batch_size} is not divisible by the {world} ranks")
        if self.indices.size < batch_size:
            raise DatasetError(
                f"{self.indices.size} training samples are fewer than one batch of {batch_size}"
            )
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world
        self.per_epoch = self.indices.size // batch_size
        self.start = start

    def batch(self, step: int) -> list[tuple[int, int]]:
        """Keys of this rank's part of global batch number ``step``."""
        epoch, b = divmod(step, self.per_epoch)
        rng = np.random.default_rng([self.seed, epoch])
        perm = rng.permutation(self.indices)
        seeds = rng.integers(0, 2**62, size=perm.size)
        local = self.batch_size // self.world
        lo = b * self.batch_size + self.rank * local
        return [(int(perm[i]), int(seeds[i])) for i in range(lo, lo + local)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start
        while True:
            yield self.batch(step)
            step += 1
