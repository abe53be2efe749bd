"""Training data of the conditional plane generator: consecutive-plane pairs of a slice dataset.

A dataset whose samples carry their time ``/t`` and streamwise position ``/x``
(:mod:`cfdseed.slices`), e.g. every x-plane of a DNS box saved at many times, is grouped by ``t``
(exactly equal times: the planes of one snapshot) and each group is sorted by ``x``. Within a
group the planes must be equispaced, with one spacing ``dx`` shared by every group (the model
learns one step); each plane is paired with the next, ``(prev, next) = (x_k, x_k + dx)``. When the
planes of a group cover the streamwise period ``lx`` (``n dx = lx``), the last plane is also paired
with the first (the periodic wrap). ``lx`` comes from the config (``data.lx``) or the dataset's
attribute ``lx`` (or ``lengths[0]``); without it no wrap pair is formed. A dataset without ``/t``
is one snapshot.

The train/validation split is by time (:func:`split_pairs`: whole snapshots, in time blocks, with an
optional gap), and :class:`PairDataset` serves normalised pairs ``(2, 3, ny, nz)`` with the same
augmentation applied to both planes (:func:`cfdseed.data.augment`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .data import NormStats, SliceDataset, split_indices
from .errors import DatasetError
from .slices import open_dataset

__all__ = ["PlanePairs", "plane_pairs", "streamwise_period", "dataset_pairs", "split_pairs", "PairDataset"]

_RTOL = 1e-6  # relative tolerance of "equispaced" and "covers the period"


@dataclass(frozen=True)
class PlanePairs:
    """Consecutive-plane pairs of a dataset.

    Attributes
    ----------
    pairs : ndarray (P, 2) int64
        Sample indices ``(prev, next)``, ``next`` one step ``dx`` downstream of ``prev``.
    t : ndarray (P,) float64
        Time of each pair (of its snapshot).
    dx : float
        The plane spacing, in the dataset's length units.
    wrap : bool
        Whether the last plane of a snapshot was paired with the first (planes cover the period).
    snapshots : int
        Number of times that gave pairs.
    """

    pairs: np.ndarray
    t: np.ndarray
    dx: float
    wrap: bool
    snapshots: int

    def __len__(self) -> int:
        return int(self.pairs.shape[0])

    def planes(self, which: np.ndarray | None = None) -> np.ndarray:
        """Sorted unique sample indices of the pairs ``which`` (all when None)."""
        p = self.pairs if which is None else self.pairs[np.asarray(which, dtype=np.int64)]
        return np.unique(p)


def plane_pairs(t: np.ndarray | None, x: np.ndarray | None, *, lx: float | None = None,
                where: str = "dataset") -> PlanePairs:
    """Pairs of consecutive planes from per-sample times ``t`` and positions ``x`` (module docstring).

    Raises
    ------
    DatasetError
        No ``x``; two planes of one snapshot at the same x; planes of a snapshot not equispaced;
        snapshots with different spacings; planes spanning more than ``lx``; no pair at all.
    """
    if x is None:
        raise DatasetError(f"{where}: no /x; consecutive-plane pairs need the streamwise position of every sample")
    x = np.asarray(x, dtype=np.float64)
    t = np.zeros_like(x) if t is None else np.asarray(t, dtype=np.float64)
    times, group = np.unique(t, return_inverse=True)
    pairs: list[np.ndarray] = []
    pair_t: list[np.ndarray] = []
    dx_ref: float | None = None
    wrap = False
    for g, tg in enumerate(times):
        idx = np.flatnonzero(group == g)
        if idx.size < 2:
            continue
        idx = idx[np.argsort(x[idx], kind="stable")]
        steps = np.diff(x[idx])
        dx = float(steps.mean())
        if np.any(steps <= 0):
            k = int(np.argmin(steps))
            raise DatasetError(f"{where}: samples {idx[k]} and {idx[k + 1]} (t = {tg:.6g}) are both at x = "
                               f"{x[idx[k]]:.6g}; a snapshot holds one plane per x")
        if not np.allclose(steps, dx, rtol=_RTOL, atol=0.0):
            raise DatasetError(f"{where}: the planes at t = {tg:.6g} are not equispaced in x (spacings "
                               f"{steps.min():.6g} .. {steps.max():.6g}); the conditional model learns one step dx")
        if dx_ref is None:
            dx_ref = dx
        elif not np.isclose(dx, dx_ref, rtol=_RTOL, atol=0.0):
            raise DatasetError(f"{where}: plane spacing dx = {dx:.6g} at t = {tg:.6g} differs from {dx_ref:.6g} "
                               "at an earlier time; the conditional model learns one step")
        span = idx.size * dx  # the length the planes cover, each owning one spacing
        closes = lx is not None and abs(span - lx) <= _RTOL * lx
        if lx is not None and span > lx * (1 + _RTOL):
            raise DatasetError(f"{where}: {idx.size} planes {dx:.6g} apart at t = {tg:.6g} span {span:.6g}, more than "
                               f"the period lx = {lx:.6g}")
        prev, nxt = idx[:-1], idx[1:]
        if closes:
            prev, nxt = np.append(prev, idx[-1]), np.append(nxt, idx[0])
            wrap = True
        pairs.append(np.stack([prev, nxt], axis=1))
        pair_t.append(np.full(prev.size, tg))
    if not pairs:
        raise DatasetError(f"{where}: no consecutive-plane pairs: no time has two or more planes "
                           f"({x.size} samples at {times.size} times)")
    return PlanePairs(np.concatenate(pairs).astype(np.int64), np.concatenate(pair_t), float(dx_ref), wrap,
                      len(pairs))


def streamwise_period(attrs: dict[str, Any]) -> float | None:
    """The period ``lx`` a dataset's attributes state (``lx``, else ``lengths[0]``), None without one."""
    for key in ("lx", "lengths"):
        try:
            v = float(np.asarray(attrs[key], dtype=np.float64).reshape(-1)[0])
        except (KeyError, TypeError, ValueError, IndexError):
            continue
        if np.isfinite(v) and v > 0:
            return v
    return None


def dataset_pairs(path: str | os.PathLike, lx: float = 0.0) -> PlanePairs:
    """:func:`plane_pairs` of a slice dataset; ``lx`` 0: the file's attribute ``lx`` or ``lengths[0]``.

    Raises
    ------
    DatasetError
        As :func:`open_dataset` and :func:`plane_pairs`.
    """
    with open_dataset(path, check_finite=False) as ds:
        period = float(lx) if lx else streamwise_period(ds.attrs)
        return plane_pairs(ds.t, ds.x, lx=period, where=str(path))


def split_pairs(pp: PlanePairs, *, val_fraction: float, seed: int, mode: str = "blocks", blocks: int = 10,
                gap: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Train/validation split of the pairs by time -> ``(train, val)`` indices into ``pp.pairs``.

    The snapshot times are split by :func:`cfdseed.data.split_indices` (whole snapshots; ``mode``
    "blocks", "last" or "random"; training snapshots within ``gap`` of a validation one are
    dropped), and every pair follows its snapshot.
    """
    times, group = np.unique(pp.t, return_inverse=True)
    tr, va = split_indices(times.size, val_fraction=val_fraction, seed=seed, mode=mode, blocks=blocks,
                           t=times, gap=gap)
    return np.flatnonzero(np.isin(group, tr)), np.flatnonzero(np.isin(group, va))


class PairDataset(SliceDataset):
    """Map-style torch dataset of normalised (and augmented) pairs ``(2, 3, ny, nz)`` float32.

    Items are keyed by pair index (into ``pairs``) or ``(pair index, aug_seed)``, as
    :class:`cfdseed.data.SliceDataset` (whose file handling and normalisation it shares); one draw
    of the augmentation transforms both planes alike.
    """

    def __init__(self, path: str | os.PathLike, stats: NormStats, pairs: np.ndarray, *, roll: bool = False,
                 spanwise: bool = False, wall: bool = False) -> None:
        super().__init__(path, stats, roll=roll, spanwise=spanwise, wall=wall)
        self.pairs = np.asarray(pairs, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.pairs.shape[0])

    def _pair(self, fields: Any, index: int, aug_seed: int | None) -> Any:
        import torch

        i, j = self.pairs[int(index)]
        x = np.stack([np.asarray(fields[int(i)], dtype=np.float32),
                      np.asarray(fields[int(j)], dtype=np.float32)])  # (2, 3, ny, nz)
        return torch.from_numpy(np.ascontiguousarray(self._prepare(x, aug_seed)))

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        index, aug_seed = (key, None) if isinstance(key, (int, np.integer)) else key
        return self._pair(self._fields(), index, aug_seed)

    def __getitems__(self, keys: Any) -> list[Any]:
        fields = self._fields()
        return [self._pair(fields, *((k, None) if isinstance(k, (int, np.integer)) else k)) for k in keys]
