"""3-D fields from a generator of 2-D y-z slices: latent paths, rollouts, units, :func:`synthesise`
(what the ``"gan"`` source of :mod:`cfdseed.sources.gan` runs).

**Two streamwise constructions** (``x_construction``): ``"latent"`` (plane models, their default and
only choice) generates each x-station's slice from a point of a periodic latent path (next
paragraph); ``"rollout"`` (conditional models, :mod:`cfdseed.conditional`, their default and only
choice) steps a chain of planes downstream with the model (see "Rollout" below), so streamwise
structure, and each component's own decorrelation, come from data.

**Streamwise coherence and periodicity** of the latent construction: :mod:`cfdseed.latent`
(a random periodic latent path whose correlation length is ``corr_length``).

**Rollout.** The conditional model ``G(prev, z) -> next`` advances one plane by its step ``dx``
(the training data's plane spacing, stored in wall units: ``dx+``). Like the slice width, the step
keeps its size in wall units at the target Re_tau: ``dx = dx+ h / Re_tau`` in the target's units.
A chain starts from Gaussian planes with the training data's in-plane two-point statistics
(:func:`cfdseed.conditional.start_modes`, stored in the checkpoint by the trainer; checkpoints
without them: the training mean profile plus :data:`cfdseed.conditional.START_NOISE` noise) and runs
:data:`cfdseed.conditional.BURN_IN` half-heights of the *model* (6 h, about four integral lengths
of u, the longest-lived component) before planes are kept, so the start is forgotten. Then
``n = round(lx / dx)`` planes fill the box (the step is stretched by ``lx / (n dx)`` so that a whole
number of planes fits: a relative change below ``1 / 2n``), plus an overlap of
:data:`ROLLOUT_OVERLAP` half-heights (at least 4 planes, at most ``n / 2``). The overlap -- the
chain's natural continuation past the end of the box -- is cross-faded into the first planes
(:func:`close_ring`): at plane ``j`` of the overlap the continuation has the weight
``cos^2(pi (j + 1/2) / 2 n_ov)`` and the chain's own plane ``sin^2``, so the ring joins the
continuation of its last plane at its start and its own planes at the end of the overlap, with no
jump anywhere; deviations from the mean profile are divided by ``sqrt(cos^4 + sin^4)``, which keeps
their variance (the two are ``lx`` apart in the chain, independent for boxes longer than the
correlation length). The ring is Fourier-resampled onto the grid's ``nx``
(:func:`cfdseed.interp.resample_periodic`). Spans wider than a slice get one independent chain per
tile (joined by :func:`join_tiles`); everything after (y interpolation, units, enforcement,
calibration) is the same for both constructions. A model that drifts over long chains (energy
growing or dying away step by step) is held by the *anchor* (``anchor``, default
:data:`ROLLOUT_ANCHOR` per step): each new plane's mean and energy per component and row are
divided back to the training data's by their running averages (each tile's chain by its own), so
plane-to-plane variability stays and the long-run statistics are the data's. ``corr_length`` and ``x_stations`` belong to the
latent construction (either other than "auto" with a rollout is an error).

**Inference cost.** All streamwise variation comes from the latent path, which has few
harmonics; by default (``x_stations="auto"``) only 8 slices per harmonic (at least 32, at most nx)
are generated and the field is Fourier-interpolated to the grid's x (difference from generating
every x: ~1 % of the fluctuation RMS on a test generator). ``x_stations="all"`` generates one
slice per grid x.

**Units.** Velocities are scaled in wall units (``u+ = u / u_tau`` kept), the wall-normal
coordinate in outer units (``y / ly``: the slice spans the whole channel), the spanwise coordinate
in wall units (a slice ``lz_m+ = lz_m u_tau_m / nu_m`` wide stays that wide, so near-wall streak
spacing is kept; see "Wide boxes" for spans wider than a slice). The target is given by any
consistent subset of ``re_tau``, ``u_tau``, ``nu``, ``bulk``, resolved by
:func:`cfdseed.units.resolve_units` like every source's (``re_tau`` defaults to the model's,
``u_tau`` to 1), with ``bulk_plus`` the calibration target's bulk velocity in wall units (the
default, ``calibrate="model"``) or, uncalibrated, the generated field's own. When the target
``Re_tau`` differs from the model's by the ratio ``r``: near-wall structures sit at ``r`` times
their wall-unit height (the y-mapping is outer), the log layer is too short or too long, and the
bulk velocity of an uncalibrated field, unless given, is corrected by the log-law shift
``ln(r) / kappa`` in wall units (part of its ``bulk_plus``; a calibrated field's is the target's,
already at the target Re_tau). This is trustworthy for ``1/2 <= r <= 2`` (:data:`RE_TAU_WARN`);
beyond it one ``RuntimeWarning`` is issued (not also logged, :func:`check_re_tau_ratio`), and
beyond ``1/4 <= r <= 4`` (:data:`RE_TAU_ERROR`) it is an error -- unless the field is calibrated to
statistics at the target Re_tau (the default ``calibrate="model"`` falls back to the Lee & Moser
profiles interpolated to it, :func:`cfdseed.reference.interpolate_reference`): then one warning
says that the one-point statistics are right and the spectra and structure sizes the model's.

**Coarse grids.** The slice is never resampled to a spanwise spacing finer than half the grid's
(its width in wall units is stretched when the grid is that coarse, e.g. an LES-like grid far above
the model's Re_tau): the grid could not carry the finer structures, and generating them costs
inference and tiles for nothing. On grids that resolve the model's spacing nothing changes.

**Wide boxes.** A target span covering ``m = round(lz / lz_slice) > 1`` slice widths gets ``m``
independent tiles (``z_tiles="independent"``, the default): each tile has its own latent path, and
neighbouring tiles are cross-faded with periodic ``cos^2`` windows (a partition of unity, so the
field is smooth and periodic over the span). The fluctuations about each tile's spanwise mean are
divided by ``sqrt(sum w_k^2)``, which keeps their variance where two independent tiles overlap; the
spanwise means are blended linearly. The result is stretched / resampled to the grid like a single
slice. ``z_tiles="periodic"`` repeats one slice ``m`` times instead (exactly periodic copies:
spanwise correlation 1 at a lag of one slice width). Inference cost grows ``m``-fold.

**Distributed.** The distributed strategy's synthesis (x slabs) is :mod:`cfdseed.synthesis_slabs`.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ._threads import apply_torch
from ._values import is_integer, is_real
from .enforce import DEFAULT_BLEND, DEFAULT_MAX_RATIO, enforce, require_grid
from .errors import CalibrationError, SourceError
from .grid import Grid
from .interp import resample_periodic, slices_to_grid, tile_factor
from .latent import DEFAULT_CORR_LENGTH, auto_stations, harmonic_weights, latent_path
from .targets import resolve_target
from .operators import bulk_velocity, trapezoid_weights
from .reference import KAPPA
from .units import Units, resolve_units

if TYPE_CHECKING:  # re-exported by __getattr__ below: cfdseed.synthesis_slabs imports this module
    from .synthesis_slabs import synthesise_slabs

__all__ = [
    "synthesise_slabs",
    "RE_TAU_WARN",
    "RE_TAU_ERROR",
    "KAPPA",
    "join_tiles",
    "close_ring",
    "X_CONSTRUCTIONS",
    "ROLLOUT_OVERLAP",
    "ROLLOUT_ANCHOR",
    "check_re_tau_ratio",
    "synthesise",
]

log = logging.getLogger(__name__)


def __getattr__(name: str) -> Any:
    """Re-export :func:`cfdseed.synthesis_slabs.synthesise_slabs`, imported on first use (that module
    imports this one: importing it at the top would be a cycle)."""
    if name == "synthesise_slabs":
        from .synthesis_slabs import synthesise_slabs

        return synthesise_slabs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Target/model Re_tau ratio beyond which (either way) a warning is issued.
RE_TAU_WARN = 2.0
#: Target/model Re_tau ratio beyond which (either way) synthesis refuses, unless calibrated.
RE_TAU_ERROR = 4.0
#: A calibration target within this relative distance of the target Re_tau lifts the refusal (the
#: slack of Lee & Moser's end profiles, :func:`cfdseed.reference.interpolate_reference`).
CALIBRATED_RTOL = 0.05
#: Streamwise constructions of :func:`synthesise`: latent path (plane models), rollout (conditional).
X_CONSTRUCTIONS = ("latent", "rollout")
#: Length of the rollout's ring-closing overlap in half-heights of the target (module docstring):
#: enough steps for smooth windows (10 at Re_tau 180, dx+ 18), a third of a pi-long box at most.
ROLLOUT_OVERLAP = 1.0
#: Default anchor rate of a rollout (``anchor="auto"``, :meth:`cfdseed.conditional.ConditionalHandle.rollout`):
#: the chain's plane means and energy per component and row are held to the training data's with a
#: memory of ~1 / 0.05 = 20 steps; with it every v2 pilot checkpoint held 0.83-1.11 of the data's
#: TKE over 124 steps, including those that ran away alone (``benchmarks/results/v2_drift_anchor.json``).
ROLLOUT_ANCHOR = 0.05
#: Default ``redraws``: new fields drawn when the stress calibration cannot reach its target (1 of
#: 200 default-model fields on the campaign grid; two failures in a row would be ~1 in 40 000).
DEFAULT_REDRAWS = 2


def _calibrated_at(target_re_tau: float, re_tau: float) -> bool:
    """Whether a calibration target at ``target_re_tau`` calibrates a field at ``re_tau``: within
    :data:`CALIBRATED_RTOL` (Lee & Moser's end profiles serve up to that far beyond them)."""
    return abs(math.log(target_re_tau / re_tau)) <= math.log1p(CALIBRATED_RTOL) + 1e-12


def check_re_tau_ratio(re_tau: float, model_re_tau: float, *, warn: bool = True, calibrated: bool = False) -> float:
    """The target/model Re_tau ratio ``r``, checked against :data:`RE_TAU_WARN` and :data:`RE_TAU_ERROR`.

    Beyond ``1/RE_TAU_WARN <= r <= RE_TAU_WARN`` one ``RuntimeWarning`` is issued (not also logged;
    ``warn=False`` silences it). With ``calibrated`` (the field is calibrated to a published or
    interpolated profile at the target Re_tau) any ratio is accepted, and the warning beyond
    RE_TAU_WARN says what is right (one-point statistics, mean profile) and what is not (spectra
    and structure sizes: the model's, rescaled).

    Raises
    ------
    SourceError
        ``r`` beyond :data:`RE_TAU_ERROR` (or below its inverse) without ``calibrated``.
    """
    ratio = re_tau / model_re_tau
    spread = max(ratio, 1.0 / ratio)
    if spread > RE_TAU_WARN and calibrated:
        if warn:
            warnings.warn(
                f"target Re_tau = {re_tau:.6g} is {ratio:.3g} x the model's {model_re_tau:.6g}: the field is calibrated "
                f"to the target's published one-point statistics (mean profile, Reynolds stresses: right), but its "
                f"spectra and structure sizes are the model's rescaled (in wall units near the wall, outer units in "
                "y), not those of this Re_tau: expect a longer transient than at the model's own Re_tau",
                RuntimeWarning, stacklevel=2)
        return ratio
    if spread > RE_TAU_ERROR:
        raise SourceError(
            f"target Re_tau = {re_tau:.6g} is {ratio:.3g} x the model's {model_re_tau:.6g}; the generator "
            f"supports ratios in [{1 / RE_TAU_ERROR:g}, {RE_TAU_ERROR:g}] uncalibrated (train a model nearer the target, "
            "or calibrate to the target's statistics: calibrate='reference' or a file at this Re_tau)"
        )
    if spread > RE_TAU_WARN and warn:
        msg = (f"target Re_tau = {re_tau:.6g} is {ratio:.3g} x the model's {model_re_tau:.6g} (outside "
               f"[{1 / RE_TAU_WARN:g}, {RE_TAU_WARN:g}]): near-wall structures and the log layer are "
               "mis-scaled, expect a longer transient")
        # one channel only (not also the log): the warnings machinery shows it once per call site
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return ratio


@dataclass
class SynthesisInfo:
    """What :func:`synthesise` did: model, units, latent weights, timings (s), enforcement report."""

    model: str = ""  # checkpoint path and, when recorded, its name
    units: Units | None = None  # resolved by cfdseed.units.resolve_units, as SourceInfo.units
    harmonics: int = 0
    stations: int = 0
    tiles: int = 1  # independent spanwise tiles
    x_construction: str = "latent"  # "latent" (latent path) or "rollout" (conditional model)
    steps: int = 0  # rollout: planes stepped per chain (burn-in, box, overlap); 0 for "latent"
    anchor: float | None = None  # rollout: the anchor rate used (None: the generator alone)
    calibration_target: str | None = None  # name of the stress target, None without calibration
    redraws: int = 0  # fields drawn anew because the calibration could not reach the target
    timings: dict[str, float] = field(default_factory=dict)
    enforcement: Any = None


def tile_mean(tiles: list[np.ndarray]) -> np.ndarray:
    """The mean profile of sets of slices ``(ns, 3, ny, nz)`` over tiles, slices and z: ``(1, 3, ny, 1)``."""
    return np.mean([t.mean(axis=(0, -1)) for t in tiles], axis=0)[None, ..., None]


def join_tiles(tiles: list[np.ndarray], mean: np.ndarray | None = None) -> np.ndarray:
    """Cross-fade ``m`` independent sets of periodic slices ``(ns, 3, ny, nz)`` into ``(ns, 3, ny, m nz)``.

    Tile ``k`` is centred at ``(k + 1/2)`` slice widths with the window ``cos^2(pi d / 2)``, ``d``
    the periodic distance in slice widths (zero beyond 1): the windows sum to one everywhere.
    Deviations from the mean profile (over tiles, slices and z) are scaled by
    ``1 / sqrt(sum_k w_k^2)``, which keeps their variance where independent tiles overlap; the mean
    profile is kept. One tile is returned as is. ``mean`` ``(1, 3, ny, 1)``: that mean profile
    when the slices are only part of the stations (distributed synthesis), else computed here.
    """
    m = len(tiles)
    if m == 1:
        return tiles[0]
    nz = tiles[0].shape[-1]
    z = np.arange(m * nz) / nz  # position in slice widths
    w = np.empty((m, m * nz))
    for k in range(m):
        d = np.abs((z - (k + 0.5) + 0.5 * m) % m - 0.5 * m)
        w[k] = np.where(d < 1.0, np.cos(0.5 * np.pi * d) ** 2, 0.0)
    norm = 1.0 / np.sqrt((w**2).sum(axis=0))
    if mean is None:
        mean = tile_mean(tiles)
    fluct = np.zeros(tiles[0].shape[:-1] + (m * nz,))
    for k, t in enumerate(tiles):
        j = np.flatnonzero(w[k])  # the tile's window: two slice widths at most
        fluct[..., j] += w[k, j] * (t[..., j % nz] - mean)  # periodic continuation of the tile
    fluct *= norm
    fluct += mean
    return fluct


def close_ring(planes: np.ndarray, n: int) -> np.ndarray:
    """Close a chain of planes ``(n + n_ov, 3, ny, nz)`` into a periodic ring of ``n`` planes.

    The last ``n_ov`` planes (the chain's continuation past plane ``n - 1``) are cross-faded into
    the first ``n_ov``: weight ``a_j = cos^2(pi (j + 1/2) / (2 n_ov))`` for the continuation,
    ``1 - a_j`` for the plane itself; per overlap plane and component, deviations from the mean
    profile (over planes and z) are scaled so that their mean square is the mean of the two
    planes' -- ``sqrt(a_j^2 + (1 - a_j)^2)`` for independent parts, nearer 1 for correlated ones
    (a chain that decorrelates slowly over the box). ``n_ov = 0`` returns the first ``n`` planes.
    """
    m = planes.shape[0]
    if not 1 <= n <= m or m - n > n:
        raise ValueError(f"need n <= planes <= 2 n, got n = {n} and {m} planes")
    out = np.array(planes[:n], dtype=np.float64)
    n_ov = m - n
    if n_ov == 0:
        return out
    a = np.cos(0.5 * np.pi * (np.arange(n_ov) + 0.5) / n_ov) ** 2  # (n_ov,) continuation weight
    a = a.reshape(-1, *([1] * (planes.ndim - 1)))
    mean = out.mean(axis=(0, -1), keepdims=True)  # (1, 3, ny, 1)
    head, tail = out[:n_ov] - mean, np.asarray(planes[n:], dtype=np.float64) - mean
    mixed = a * tail + (1.0 - a) * head
    axes = tuple(range(2, planes.ndim))  # per overlap plane and component
    want = 0.5 * ((head**2).mean(axis=axes, keepdims=True) + (tail**2).mean(axis=axes, keepdims=True))
    have = (mixed**2).mean(axis=axes, keepdims=True)
    out[:n_ov] = mean + mixed * np.sqrt(want / np.maximum(have, 1e-300))
    return out


def _load(model: Any, device: str | None) -> Any:
    from .checkpoint import default_model
    from .conditional import ConditionalHandle
    from .model import GeneratorHandle, load_generator

    apply_torch()  # torch is imported now: the build's thread setting (cfdseed._threads) applies to it
    if isinstance(model, (GeneratorHandle, ConditionalHandle)):
        return model
    if model is None:
        model = default_model()
    if not isinstance(model, (str, os.PathLike)):
        raise SourceError(f"model must be a checkpoint path, a packaged model's name, a GeneratorHandle or a ConditionalHandle, "
                          f"got {type(model).__name__}")
    return load_generator(model, device=device)


def _construction(x_construction: str | None, kind: str) -> str:
    if x_construction is not None and x_construction not in X_CONSTRUCTIONS:
        raise ValueError(f"x_construction must be one of {', '.join(X_CONSTRUCTIONS)} (or None: the model's), "
                         f"got {x_construction!r}")
    allowed = "latent" if kind == "plane" else "rollout"
    if x_construction is not None and x_construction != allowed:
        raise SourceError(f"x_construction={x_construction!r} needs a {'plane' if allowed == 'rollout' else 'conditional'}"
                          f" model; this {kind} model allows x_construction={allowed!r} (or None)")
    return allowed


def _rollout(gen: Any, lx: float, h: float, re_tau: float, tiles: int, rng: np.random.Generator,
             batch: int, anchor: float | None) -> tuple[list[np.ndarray], int]:
    """Per tile a ring of planes ``(n, 3, ny_m, nz_m)`` (module docstring, "Rollout"); and the steps run."""
    dx = gen.dx_plus * h / re_tau  # one model step in the target's units, kept in wall units
    n = round(lx / dx)
    if n < 2:
        raise SourceError(f"the box (lx = {lx:.4g}) is shorter than two steps of this conditional model "
                          f"(dx = {dx:.4g} at Re_tau {re_tau:.4g}, dx+ = {gen.dx_plus:.4g})")
    n_ov = min(n // 2, max(4, math.ceil(ROLLOUT_OVERLAP * h / dx)))
    # each tile's chain held to its own averages: one chain running away cannot hide behind the others'
    # (one chain: the joint averages are its own; that reduction keeps one-tile fields bit for bit)
    chain = gen.rollout(n + n_ov, chains=tiles, rng=rng, batch=batch, anchor=anchor,
                        anchor_per_chain=tiles > 1)  # (tiles, n + n_ov, 3, ny_m, nz_m)
    return [close_ring(c, n) for c in chain], gen.burn_in + n + n_ov


def _anchor(anchor: float | str | None, construction: str) -> float | None:
    """The rollout's anchor rate: ``"auto"`` is :data:`ROLLOUT_ANCHOR` for a rollout, None for a latent path."""
    if anchor == "auto":
        return ROLLOUT_ANCHOR if construction == "rollout" else None
    if anchor is None:
        return None
    if isinstance(anchor, bool) or not isinstance(anchor, (int, float)) or not 0 < anchor <= 1:
        raise ValueError(f"anchor must be 'auto', None or a rate in (0, 1], got {anchor!r}")
    if construction != "rollout":
        raise ValueError(f"anchor={anchor!r} applies to x_construction='rollout' (conditional models); "
                         "a latent path has no chain to anchor")
    return float(anchor)


def _stations(x_stations: int | str, nx: int, lx: float, corr: float | None) -> int:
    if x_stations == "auto":
        return auto_stations(nx, lx, corr)
    if x_stations == "all":
        return nx
    if isinstance(x_stations, bool) or not isinstance(x_stations, int) or not 2 <= x_stations <= nx:
        raise ValueError(f"x_stations must be 'auto', 'all' or an int in [2, nx={nx}], got {x_stations!r}")
    return x_stations


def synthesise(model: Any, grid: Grid, rng: np.random.Generator, *, corr_length: float | str | None = "auto",
               re_tau: float | None = None, u_tau: float | None = None, nu: float | None = None,
               bulk: float | None = None, batch: int = 64, device: str | None = None, y_method: str = "auto",
               no_slip: bool = True, divergence_free: bool = True, blend: float = DEFAULT_BLEND,
               max_ratio: float = DEFAULT_MAX_RATIO, x_stations: int | str = "auto",
               z_tiles: str = "independent", calibrate: Any = "model",
               x_construction: str | None = None, anchor: float | str | None = "auto",
               redraws: int = DEFAULT_REDRAWS) -> tuple[np.ndarray, SynthesisInfo]:
    """Generate a constraint-satisfying global field ``(3, nx, ny, nz)`` on ``grid`` from a generator.

    Parameters
    ----------
    model : path, packaged model name, GeneratorHandle, ConditionalHandle or None
        Checkpoint (None: :func:`cfdseed.checkpoint.default_model`).
    grid : Grid
        Target grid (global description used); needs nx >= 2, ny >= 3, nz >= 2.
    rng : numpy.random.Generator
        Draws the latent path, or the rollout's start and latents (seeded by the caller).
    corr_length : "auto", float or None
        Latent correlation length in half-heights of the target (module docstring; "auto":
        :data:`cfdseed.latent.DEFAULT_CORR_LENGTH`, None: the first harmonic only); "latent" only
        (anything but "auto" with a rollout is an error).
    re_tau, u_tau, nu, bulk : float, optional
        Target units (:func:`cfdseed.units.resolve_units`; default: the model's Re_tau in wall
        units, u_tau = 1); ``bulk`` is enforced exactly when given.
    batch : int
        Slices per generator call.
    device : str, optional
        Torch device for inference (``"cpu"``, ``"cuda"``); default: CUDA when available.
    y_method : {"auto", "barycentric", "cubic"}
        Wall-normal interpolation (:func:`cfdseed.interp.y_matrix`).
    no_slip, divergence_free, blend, max_ratio
        Enforcement switches (:func:`cfdseed.enforce.enforce`).
    x_stations : int, "auto" or "all"
        Number of slices generated along x; fewer than nx are Fourier-interpolated to the grid's
        x. ``"auto"`` (:func:`cfdseed.latent.auto_stations`: 8 per latent harmonic) resolves the latent path, which
        carries all streamwise variation, at a fraction of the inference cost; ``"all"``: nx.
    z_tiles : {"independent", "periodic"}
        Spans wider than one slice: independent cross-faded tiles or copies of one slice (module
        docstring, "Wide boxes").
    calibrate : "model", "reference", a reference name, path, dict, StressTarget, or None/False
        Calibrate the mean profile and the Reynolds stresses (:mod:`cfdseed.calibrate`) to a
        target in wall units (:func:`cfdseed.targets.resolve_target`; "model": the training
        data's statistics stored in the checkpoint, carried to the target Re_tau within 10 % of the
        model's, else the Lee & Moser profiles interpolated to the target Re_tau). The default bulk velocity is then the target profile's. None or False: off; off
        too without ``no_slip`` and ``divergence_free`` (it calibrates a solenoidal field).
    x_construction : {"latent", "rollout"} or None
        Streamwise construction (module docstring): a latent path (plane models) or a rollout
        (conditional models); None: the model's. Each model kind allows only its own.
    anchor : "auto", float in (0, 1] or None
        Rollout only: hold the chain's plane means and energy per component and row to the
        training data's at this rate per step
        (:meth:`cfdseed.conditional.ConditionalHandle.rollout`); ``"auto"``: :data:`ROLLOUT_ANCHOR`
        for a rollout, nothing for a latent path; None: the generator alone.
    redraws : int
        A rare raw field cannot be calibrated to the target (:class:`~cfdseed.errors.CalibrationError`;
        ~1 in 200 fields of the default model on the campaign grid): draw a new one from ``rng`` as
        it stands, up to this many times (logged; :attr:`SynthesisInfo.redraws`), then raise. The
        result stays a function of the seed; 0: raise at once.

    Returns
    -------
    field : ndarray (3, nx, ny, nz) float64
    info : SynthesisInfo

    Raises
    ------
    GridError, SourceError, CheckpointError, ValueError
        Incompatible grid, Re_tau far from the model's, missing/foreign model, bad options, an
        ``x_construction`` the model does not allow, a box shorter than two rollout steps;
        :class:`~cfdseed.errors.CalibrationError` (a SourceError) when none of the ``1 + redraws``
        fields drawn could be calibrated to the target.
    """
    load_s = 0.0

    def once(attempt: int) -> tuple[np.ndarray, SynthesisInfo]:
        nonlocal model, load_s
        plan = _plan(model, grid, rng, quiet=attempt > 0, corr_length=corr_length, re_tau=re_tau, u_tau=u_tau, nu=nu, bulk=bulk,
                     batch=batch, device=device, no_slip=no_slip, divergence_free=divergence_free,
                     x_stations=x_stations, z_tiles=z_tiles, calibrate=calibrate, x_construction=x_construction,
                     anchor=anchor)
        model = plan.gen  # a redraw reuses the loaded generator; its info keeps the load's time
        load_s = plan.info.timings["load"] = load_s + plan.info.timings["load"]
        gen, info, ns, tiles = plan.gen, plan.info, plan.stations, plan.tiles
        nx = grid.shape[0]
        t = time.perf_counter()
        if plan.construction == "rollout":
            raw, info.steps = _rollout(gen, grid.lengths[0], plan.h, plan.re_tau, tiles, rng, batch, info.anchor)  # per tile
            ns = info.stations = raw[0].shape[0]
        else:
            raw = [_sample(gen, lat, batch) for lat in plan.latents]  # per tile (ns, 3, ny_m, nz_m)
        t_inf = time.perf_counter() - t
        t = time.perf_counter()
        slices = join_tiles(raw)  # (ns, 3, ny_m, tiles * nz_m)
        del raw
        out = _on_grid(plan, slices, grid, y_method, batch)
        del slices
        if ns != nx:
            out = resample_periodic(out, 1, nx)  # (3, nx, ny, nz); a rollout may hold more planes than nx
        info.timings["inference"], info.timings["interpolation"] = t_inf, time.perf_counter() - t
        stresses, bulk_plus, units = _targets(plan, grid, lambda: bulk_velocity(out, grid))
        t = time.perf_counter()
        out, rep = enforce(out, grid, no_slip=no_slip, divergence_free=divergence_free, bulk=bulk_plus,
                           blend=blend, max_ratio=max_ratio, copy=False, stresses=stresses)
        out *= units.u_tau
        info.timings["enforcement"] = time.perf_counter() - t
        info.enforcement = rep
        _log_done(plan, nx)
        return out, info

    return _redrawn(once, redraws)


def _redrawn(once: Callable[[int], tuple[np.ndarray, SynthesisInfo]], redraws: int,
             comm: Any = None) -> tuple[np.ndarray, SynthesisInfo]:
    """``once(attempt)`` (0 first, then 1, 2, ...: a redraw plans quietly, :func:`_plan`) until its
    field calibrates, at most ``redraws`` more times (``synthesise``'s ``redraws``). A
    :class:`CalibrationError` is raised alike on every rank (the calibration's decisions come from
    reduced sums), so the ranks redraw together."""
    if not (is_integer(redraws) and redraws >= 0):
        raise SourceError(f"redraws must be an integer >= 0, got {redraws!r}")
    attempt = 0
    while True:
        try:
            out, info = once(attempt)
        except CalibrationError as exc:
            if attempt >= redraws:
                raise
            attempt += 1
            if comm is None or comm.Get_rank() == 0:
                log.warning("%s; drawing a new field (redraw %d of at most %d)", exc, attempt, redraws)
            continue
        info.redraws = attempt
        return out, info


@dataclass
class _Plan:
    """Everything :func:`synthesise` decides before generating (identical on every rank)."""

    gen: Any
    info: SynthesisInfo
    construction: str
    given: dict[str, float | None]
    re_tau: float  # the target's
    h: float
    target: Any  # StressTarget or None
    ratio: float
    lz_src: float  # slice width in target units
    tiles: int
    stations: int
    latents: list[np.ndarray]  # latent paths per tile ("latent"), empty for a rollout


def _plan(model: Any, grid: Grid, rng: np.random.Generator, *, quiet: bool = False, **kwargs: Any) -> _Plan:
    """:func:`_planned`; ``quiet``: a redraw's plan, whose RuntimeWarnings (the Re_tau ratio, the
    calibration target) the first draw gave already."""
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore", RuntimeWarning)
        return _planned(model, grid, rng, **kwargs)


def _planned(model: Any, grid: Grid, rng: np.random.Generator, *, corr_length: float | str | None, re_tau: float | None,
          u_tau: float | None, nu: float | None, bulk: float | None, batch: int, device: str | None,
          no_slip: bool, divergence_free: bool, x_stations: int | str, z_tiles: str, calibrate: Any,
          x_construction: str | None, anchor: float | str | None) -> _Plan:
    """Load the model, resolve units and the stress target, size tiles and stations, draw latents."""
    require_grid(grid)
    if not (is_integer(batch) and batch >= 1):
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    if not (corr_length is None or corr_length == "auto"
            or (is_real(corr_length) and math.isfinite(float(corr_length)) and float(corr_length) > 0)):
        raise ValueError(f"corr_length must be 'auto', None or a positive number (in h), got {corr_length!r}")
    if z_tiles not in ("independent", "periodic"):
        raise ValueError(f"z_tiles must be 'independent' or 'periodic', got {z_tiles!r}")
    info = SynthesisInfo()
    t0 = time.perf_counter()
    gen = _load(model, device)
    info.timings["load"] = time.perf_counter() - t0
    construction = info.x_construction = _construction(x_construction, getattr(gen, "kind", "plane"))
    if construction == "rollout" and not (isinstance(corr_length, str) and corr_length == "auto"):
        raise ValueError(f"corr_length={corr_length!r} applies to x_construction='latent'; a rollout's streamwise "
                         "structure is the model's own")
    if corr_length == "auto":
        corr_length = DEFAULT_CORR_LENGTH
    if construction == "rollout" and x_stations != "auto":
        raise ValueError(f"x_stations={x_stations!r} applies to x_construction='latent'; a rollout generates "
                         "one plane per model step")
    info.anchor = _anchor(anchor, construction)
    name = gen.metadata.get("name")
    info.model = f"{gen.path} ({name})" if name else str(gen.path)
    nx, ny, nz = grid.shape
    lx, ly, lz = grid.lengths
    h = 0.5 * ly
    given = {"re_tau": re_tau, "u_tau": u_tau, "nu": nu, "bulk": bulk}
    units = resolve_units(ly, **given, default_re_tau=gen.re_tau, source="gan")  # fixes re_tau, checks values
    target = None
    if calibrate is not None and calibrate is not False and no_slip and divergence_free:
        target = resolve_target(calibrate, units.re_tau, getattr(gen, "statistics", None))
    # calibrated to a profile at the target's own Re_tau, one-point statistics are right at any ratio
    ratio = check_re_tau_ratio(units.re_tau, gen.re_tau,
                               calibrated=target is not None and _calibrated_at(target.re_tau, units.re_tau))
    # slice width in target units, keeping its width in wall units -- but never finer than half the
    # grid's spanwise spacing: structures the grid cannot carry are not generated (an LES-like grid
    # at a Re_tau far above the model's would otherwise cost tiles by the dozen for nothing)
    lz_src = max((gen.lz / (0.5 * gen.ly)) * (gen.re_tau / units.re_tau) * h, gen.nz * 0.5 * lz / nz)
    tiles = tile_factor(lz_src, lz)[0] if z_tiles == "independent" else 1
    ns, latents = 0, []
    if construction == "latent":
        corr = None if corr_length is None else corr_length * h
        ns = _stations(x_stations, nx, lx, corr)
        latents = [latent_path(nx, gen.latent_dim, rng, lx=lx, corr_length=corr, stations=ns) for _ in range(tiles)]
        info.harmonics = harmonic_weights(nx, lx, corr).size
    info.stations, info.tiles = ns, tiles
    return _Plan(gen, info, construction, given, units.re_tau, h, target, ratio, lz_src, tiles, ns, latents)


def _sample(gen: Any, lat: np.ndarray, batch: int) -> np.ndarray:
    """The generator's slices ``(n, 3, ny_m, nz_m)`` for latent vectors ``lat`` ``(n, D)``, in batches."""
    n = lat.shape[0]
    if n == 0:
        return np.zeros((0, 3, gen.ny, gen.nz), dtype=np.float32)
    return np.concatenate([gen.sample(min(batch, n - s), latent=lat[s : s + batch], batch=batch)
                           for s in range(0, n, batch)])


def _on_grid(plan: _Plan, slices: np.ndarray, grid: Grid, y_method: str, batch: int) -> np.ndarray:
    """Joined slices ``(n, 3, ny_m, nz_s)`` onto the grid's y and z, in wall units: ``(3, n, ny, nz)``."""
    gen = plan.gen
    ns = slices.shape[0]
    out = np.empty((3, ns, grid.shape[1], grid.shape[2]))
    for s in range(0, ns, batch):
        out[:, s : s + batch] = slices_to_grid(slices[s : s + batch], gen.y, gen.ly, plan.tiles * plan.lz_src, grid,
                                               y_method) / gen.u_tau
    return out


def _targets(plan: _Plan, grid: Grid, field_bulk: Any) -> tuple[Any, float, Units]:
    """Stress profiles on the grid (None without calibration), the bulk velocity in wall units
    and the final units; ``field_bulk()`` is the raw field's bulk velocity (called without a target)."""
    ly, lz, nz = grid.lengths[1], grid.lengths[2], grid.shape[2]
    info, gen = plan.info, plan.gen
    stresses = None
    if plan.target is not None:
        # wall units, like the field until the end; rows nearer a wall than two spanwise spacings
        # are not judged (near-wall eddies scale in z; an LES-like grid does not carry them)
        stresses = plan.target.on_grid(grid.y, ly, spacing=2.0 * lz / nz)
        own_plus = float(trapezoid_weights(grid) @ stresses.U)
        info.calibration_target = plan.target.name
    else:
        # expected bulk velocity in wall units: the field's own plus the log-law shift for another Re_tau
        own_plus = field_bulk() + math.log(plan.ratio) / KAPPA
    units = resolve_units(ly, **plan.given, default_re_tau=gen.re_tau, bulk_plus=own_plus, source="gan")
    info.units = units
    return stresses, units.bulk / units.u_tau, units


def _log_done(plan: _Plan, nx: int) -> None:
    info, gen, units = plan.info, plan.gen, plan.info.units
    how = (f"{info.harmonics} latent harmonics" if plan.construction == "latent"
           else f"rollout of {info.steps} steps per tile (burn-in {gen.burn_in})")
    log.info("gan: %d x-stations generated for %d, %d spanwise tile(s), %s, Re_tau %.4g (model %.4g), "
             "u_tau %.4g, bulk %.4g; %s", info.stations, nx, info.tiles, how, units.re_tau, gen.re_tau,
             units.u_tau, units.bulk, ", ".join(f"{k} {v:.3f} s" for k, v in info.timings.items()))
