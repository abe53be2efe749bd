"""Validation during training (:mod:`cfdseed.train`): metrics of the generator on one fixed batch,
logged to ``metrics.csv``, and ``best.pt`` kept at the best ``combined`` value.

Plane mode scores generated slices with :func:`cfdseed.metrics.slice_metrics`; conditional mode
scores the next planes generated from the batch's previous ones, and the last two planes of an
anchored rollout, with :func:`cfdseed.metrics.pair_metrics`. The latents are fixed (their own
seeds, not the training stream's), so validation neither varies between calls nor changes the run.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import save_checkpoint
from .conditional import BURN_IN, Anchor
from .data import NormStats
from .synthesis import ROLLOUT_ANCHOR
from .trainlog import TrainLogger

__all__ = ["Validation", "metrics_function"]

log = logging.getLogger(__name__)


def metrics_function(name: str = "slice_metrics") -> Callable[..., dict[str, float]] | None:
    """``cfdseed.metrics.<name>``, or None (logged) when it cannot be imported."""
    try:
        mod = importlib.import_module("cfdseed.metrics")
    except ImportError as exc:
        log.warning("validation metrics off: cfdseed.metrics cannot be imported (%s)", exc)
        return None
    fn = getattr(mod, name, None)
    if fn is None:
        log.warning("validation metrics off: cfdseed.metrics has no %s", name)
    return fn


class Validation:
    """The fixed validation batch and the generator's scores on it.

    Parameters
    ----------
    fn
        The metrics (:func:`metrics_function`).
    gen
        The generator (unwrapped).
    real
        ``(E, 3, ny, nz)`` slices (plane mode) or ``(E, 2, 3, ny, nz)`` pairs (prev, next), physical units.
    stats, grid
        The run's normalisation and grid (``y, ly, lz, nu, u_tau``; conditional: ``dx_plus``).
    n_latent, seed, device
        Latent size, the run's seed, the generator's device.
    """

    def __init__(self, fn: Callable[..., dict[str, float]], gen: torch.nn.Module, real: np.ndarray,
                 stats: NormStats, grid: Mapping[str, Any], n_latent: int, seed: int, device: torch.device) -> None:
        self.fn, self.gen, self.real, self.stats, self.grid = fn, gen, real, stats, grid
        self.n_latent, self.seed, self.device = n_latent, seed, device
        self.cond = real.ndim == 5
        self.latent = torch.randn(real.shape[0], n_latent, generator=torch.Generator().manual_seed(seed + 2))
        self.prev = torch.from_numpy(stats.normalise(real[:, 0])) if self.cond else None  # (E, 3, ny, nz)

    def fake(self) -> np.ndarray:
        """Generated planes for the fixed validation batch, physical units."""
        gen = self.gen
        was_training = gen.training
        gen.eval()
        with torch.no_grad():
            args = (self.prev.to(self.device),) if self.cond else ()
            x = gen(*args, self.latent.to(self.device)).cpu().numpy()  # (E, 3, ny, nz)
        gen.train(was_training)
        return self.stats.denormalise(x)

    def rolled(self) -> tuple[np.ndarray, np.ndarray]:
        """The last two planes of a burn-in's worth of rollout steps from the fixed validation prev
        planes (fixed latents, physical units), anchored as the synthesis anchors them
        (:data:`cfdseed.synthesis.ROLLOUT_ANCHOR`): the drift and the freezing one-step validation
        cannot see."""
        grid, gen, device = self.grid, self.gen, self.device
        # the synthesis's burn-in (ConditionalHandle.burn_in: BURN_IN half-heights, h = ly / 2)
        steps = math.ceil(BURN_IN * 0.5 * grid["ly"] / (grid["dx_plus"] * grid["nu"] / grid["u_tau"]))
        g = torch.Generator().manual_seed(self.seed + 3)  # not the training stream: resume stays exact
        was_training = gen.training
        gen.eval()
        hold = Anchor(ROLLOUT_ANCHOR, torch.as_tensor(self.stats.std, dtype=torch.float32)[..., None].to(device))
        with torch.no_grad():
            x = before = self.prev.to(device)
            for _ in range(steps):
                before, x = x, hold(gen(x, torch.randn(x.shape[0], self.n_latent, generator=g).to(device)))
        gen.train(was_training)
        return self.stats.denormalise(x.cpu().numpy()), self.stats.denormalise(before.cpu().numpy())

    def __call__(self, it: int, best: float | None, logger: TrainLogger, out: Path,
                 make_payload: Callable[[], dict[str, Any]]) -> float | None:
        """Score iteration ``it``, log the metrics, write ``out/best.pt`` (``make_payload()``) when
        ``combined`` beats ``best``; returns the best value so far. A failing metric is logged and
        skipped: it must not end a days-long run."""
        grid = self.grid
        fake = self.fake()  # (E, 3, ny, nz) physical
        given = (self.real[:, 0], self.real[:, 1]) if self.cond else (self.real,)
        try:
            extra = dict(zip(("rolled", "rolled_prev"), self.rolled())) if self.cond else {}
            values = self.fn(*given, fake, np.asarray(grid["y"]), grid["lz"], nu=grid["nu"], u_tau=grid["u_tau"],
                             ly=grid["ly"], **extra)
        except Exception:  # noqa: BLE001 - see the docstring
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
