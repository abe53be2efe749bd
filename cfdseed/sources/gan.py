"""The ``"gan"`` source: a trained generator's slices made into a 3-D field by
:func:`cfdseed.synthesis.synthesise` (which documents every option)."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from ..grid import Grid
from ..synthesis import synthesise
from ..synthesis_slabs import synthesise_slabs
from ..units import check_unit_options
from .base import Source, SourceInfo, check_enforcement, parse_options

__all__ = ["gan", "GAN_DEFAULTS"]

#: Options of ``"gan"`` and their defaults: the checkpoint (None: the packaged default model) and
#: the keyword arguments of :func:`~cfdseed.synthesis.synthesise`.
GAN_DEFAULTS: dict[str, Any] = {"model": None, **{
    p.name: p.default for p in inspect.signature(synthesise).parameters.values() if p.kind is p.KEYWORD_ONLY}}


def gan(**options: Any) -> Source:
    """Generated turbulence. Options (defaults): ``model`` (checkpoint path; the packaged default
    model), ``corr_length`` (latent models: "auto" = 1.5 half-heights; None = first latent harmonic only), ``re_tau``,
    ``u_tau``, ``nu``, ``bulk`` (target units by :func:`cfdseed.units.resolve_units`, as for every
    source; default the model's Re_tau in wall units, u_tau = 1, the calibration target's bulk
    velocity, uncalibrated the field's own with the log-law shift), ``batch`` (64), ``device``
    (CUDA when available), ``y_method`` ("auto"), ``no_slip``/``divergence_free`` (True),
    ``blend`` (0.1), ``max_ratio`` (10), ``x_stations`` ("auto": 8 slices per latent harmonic,
    Fourier-interpolated in x; "all": one slice per grid x), ``z_tiles`` ("independent": spans
    wider than a slice get independent cross-faded tiles; "periodic": copies of one slice),
    ``calibrate`` ("model": the training data's stresses), ``x_construction`` (None: the model's,
    "latent" or "rollout"), ``anchor`` ("auto": 0.05 per step for a rollout), ``redraws`` (2: new
    fields drawn when the calibration cannot reach its target).

    Raises
    ------
    SourceError
        Unknown options, bad unit values, ``no_slip``/``divergence_free`` not booleans, ``blend``
        or ``max_ratio`` not positive finite numbers (the other values, and contradicting units, are
        checked when the source runs).
    """
    o = parse_options("gan", options, GAN_DEFAULTS)
    o.update(check_unit_options("gan", o))
    check_enforcement("gan", o)  # checked only: the values reach synthesise() as given
    kwargs = {k: v for k, v in o.items() if k != "model"}

    def make(grid: Grid, rng: np.random.Generator) -> tuple[np.ndarray, SourceInfo]:
        field, info = synthesise(o["model"], grid, rng, **kwargs)
        return field, SourceInfo(enforcement=info.enforcement, synthesis=info, units=info.units)

    def make_slabs(comm: Any, grid: Grid, rng: np.random.Generator) -> tuple[np.ndarray, SourceInfo]:
        slab, info = synthesise_slabs(comm, o["model"], grid, rng, **kwargs)
        return slab, SourceInfo(enforcement=info.enforcement, synthesis=info, units=info.units)

    return Source("gan", make, make_slabs)
