"""The source contract, the record a named source returns, and the one option vocabulary.

A source function ``(grid, rng) -> ndarray (3, nx, ny, nz)`` builds the global field (u, v, w) on
the grid it is given (float32 or float64); :func:`cfdseed.init_field` runs it on the root only.
The built-in sources are :class:`Source` objects: calling one gives the field, :meth:`Source.build`
the field and its :class:`SourceInfo` (enforcement figures, synthesis record) together.
:func:`build` does the same for any source function.

:data:`OPTIONS` is the vocabulary of the built-in sources: one name per concept, the same meaning
in every source that takes it (README, "Initial conditions", is the table of it);
:func:`parse_options` rejects any other name, listing the names the source allows. The unit
options ``re_tau``, ``u_tau``, ``nu``, ``bulk`` are taken by every built-in source and resolved by
:func:`cfdseed.units.resolve_units` (the result is :attr:`SourceInfo.units`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .._threads import node_share
from .._values import is_integer, number
from ..errors import SourceError
from ..grid import Grid

if TYPE_CHECKING:
    from ..enforce import EnforceReport
    from ..synthesis import SynthesisInfo
    from ..units import Units

__all__ = ["SourceFn", "SourceInfo", "Built", "Source", "build", "OPTIONS", "parse_options", "waves",
           "warn_unresolved_waves", "check_flag", "check_seed", "check_enforcement"]

SourceFn = Callable[[Grid, np.random.Generator], np.ndarray]

#: Every option of the built-in sources and its meaning (one name per concept).
OPTIONS: dict[str, str] = {
    "bulk": "bulk velocity, set exactly (contract quadrature); default bulk_plus(re_tau) * u_tau (cfdseed.units)",
    "amplitude": "perturbation amplitude, relative to |bulk|",
    "waves": "(x, z) periods of the perturbation per box length",
    "noise": "RMS of smooth random noise, relative to |bulk| (snapshot: to the mean |u|)",
    "mean": "mean profile: laminar or turbulent (Reichardt at re_tau)",
    "re_tau": "friction Reynolds number of the target (default 180; gan: the model's)",
    "u_tau": "friction velocity of the target (default re_tau nu / h, else bulk / bulk_plus, else 1)",
    "nu": "kinematic viscosity of the target (default u_tau h / re_tau)",
    "spacing_plus": "spanwise streak spacing in wall units (rounded to fit lz)",
    "length_plus": "streamwise modulation wavelength in wall units",
    "peak_plus": "wall distance of the streak maximum in wall units",
    "modulation": "relative streamwise modulation of the streaks",
    "path": "field file written by cfdseed generate",
    "scale": "factor on the interpolated velocities (and on the file's u_tau)",
    "y_method": "wall-normal interpolation: auto, barycentric or cubic",
    "model": "generator checkpoint or packaged model name (default: the packaged default model)",
    "corr_length": "latent models only: streamwise latent correlation length in half-heights (auto: 1.5; None: first harmonic)",
    "calibrate": "Reynolds-stress calibration target: model, reference, a reference name or file; None: off",
    "x_construction": "streamwise construction: latent (plane models) or rollout (conditional models); None: the model's",
    "anchor": "rollout only: hold the chain's plane means and energy per row to the training data's at this rate per step",
    "redraws": "new fields drawn from the same random stream when the stress calibration cannot reach its target",
    "length": "factor on the eddy radii sigma = kappa d (d: wall distance, at most h; at least 2 x/z spacings)",
    "eddy_density": "eddies per sigma^3 volume (every point lies inside 4 pi / 3 times as many)",
    "batch": "slices per generator call",
    "device": "torch device for inference (default: CUDA when available)",
    "x_stations": "generated slices along x: auto, all or a number",
    "z_tiles": "spans wider than a slice: independent or periodic tiles",
    "seed": "seed of the source's own rng (default: init_field's)",
    "no_slip": "enforce no-slip walls",
    "divergence_free": "project onto discretely solenoidal fields",
    "blend": "no-slip blending width in half-heights",
    "max_ratio": "bound on max |u_i| / |bulk|",
}


@dataclass(frozen=True)
class SourceInfo:
    """What a named source did besides its field."""

    enforcement: EnforceReport | None = None  #: before/after figures, when the source enforces
    synthesis: SynthesisInfo | None = None  #: model, units, timings: gan only
    #: the resolved units (velocity scale) the field was built in: every built-in source (gan: the
    #: same object as ``synthesis.units``); None for snapshots of files without units
    units: Units | None = None


@dataclass(frozen=True)
class Built:
    """A source's global field ``(3, nx, ny, nz)`` and its :class:`SourceInfo`."""

    field: np.ndarray
    info: SourceInfo


class Source:
    """A named source ready to run, as its factory returns it.

    Parameters
    ----------
    name : str
        The registered name (for messages).
    make : callable ``(grid, rng) -> (field, SourceInfo)``
        Builds the global field on ``grid``.
    make_slabs : callable ``(comm, grid, rng) -> (slab, SourceInfo)``, optional
        Collective: builds this rank's x slab ``(3, nx_local, ny, nz)`` (``block_split(nx, P,
        rank)``) of the same field, no rank holding the global field (``init_field``'s
        distributed strategy); None when the source has no such path. Its callers agree on what it
        raises after it returns, so between two of its own collectives it must raise on every rank
        alike or on none (a rank raising alone there leaves the others waiting in the next one):
        agree local failures as the built-in sources do (``cfdseed._collective.run_agreed``), or
        run the job under :func:`cfdseed.abort_on_error`.
    """

    def __init__(self, name: str, make: Callable[[Grid, np.random.Generator], tuple[np.ndarray, SourceInfo]],
                 make_slabs: Callable[[Any, Grid, np.random.Generator], tuple[np.ndarray, SourceInfo]] | None = None
                 ) -> None:
        self.name = name
        self.__name__ = name  # what init_field's messages call the source
        self._make = make
        self._make_slabs = make_slabs

    @property
    def distributable(self) -> bool:
        """Whether :meth:`build_slabs` exists (the distributed strategy of ``init_field``)."""
        return self._make_slabs is not None

    def build_slabs(self, comm: Any, grid: Grid, rng: np.random.Generator) -> Built:
        """Collective: this rank's x slab of the field and what the source did (same on every rank)."""
        if self._make_slabs is None:
            raise SourceError(f"source {self.name!r} builds the global field only (no distributed path)")
        with node_share(comm):  # every rank builds at once: each uses its share of the node's cores
            slab, info = self._make_slabs(comm, grid, rng)
        return Built(slab, info)

    def build(self, grid: Grid, rng: np.random.Generator) -> Built:
        """The field on ``grid`` and what the source did."""
        field, info = self._make(grid, rng)
        return Built(field, info)

    def __call__(self, grid: Grid, rng: np.random.Generator) -> np.ndarray:
        return self.build(grid, rng).field

    def __repr__(self) -> str:
        return f"Source({self.name!r})"


def build(source: SourceFn, grid: Grid, rng: np.random.Generator) -> Built:
    """Run any source function: a :class:`Source` with its info, another callable with an empty one."""
    if isinstance(source, Source):
        return source.build(grid, rng)
    return Built(source(grid, rng), SourceInfo())


def parse_options(source: str, options: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``defaults`` updated with ``options``; an option not in ``defaults`` is an error.

    Raises
    ------
    SourceError
        Unknown option names; the message lists the ones ``source`` allows.
    """
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise SourceError(f"unknown option(s) {', '.join(unknown)} for source {source!r}; "
                          f"allowed: {', '.join(defaults)}")
    return {**defaults, **options}


def waves(source: str, value: Any, z_min: int = 0) -> tuple[int, int]:
    """The ``waves`` option: two integers ``(x >= 0, z >= z_min)``.

    Raises
    ------
    SourceError
        Anything else (floats with a fraction, strings, other lengths, negative numbers).
    """
    try:
        a, b = (int(v) for v in value)
        if (a, b) != tuple(value) or a < 0 or b < z_min:
            raise ValueError
    except (TypeError, ValueError):
        raise SourceError(f"{source}: waves must be two integers (x >= 0, z >= {z_min}), got {value!r}") from None
    return a, b


def warn_unresolved_waves(source: str, counts: tuple[int, int], grid: Grid) -> None:
    """Warn (``RuntimeWarning``) when ``waves`` reach the grid's Nyquist limit in x or z.

    ``m`` periods on ``n`` points are resolved only for ``2 m < n``; beyond, the sampled wave is
    mode ``min(m mod n, n - m mod n)`` (0: constant in that direction). The field stays valid
    (the constraints are met on the grid), so this warns rather than refuses.
    """
    for axis, m, n in (("x", counts[0], grid.shape[0]), ("z", counts[1], grid.shape[2])):
        if 2 * m >= n and m > 0:
            seen = min(m % n, n - m % n)
            seen_as = "the Nyquist mode (its sines vanish on the points)" if 2 * seen == n else f"mode {seen}"
            warnings.warn(f"{source}: waves {m} in {axis} on {n} points reach the Nyquist limit ({n / 2:g}); "
                          f"the grid sees {seen_as}", RuntimeWarning, stacklevel=3)


def check_flag(source: str, key: str, value: Any) -> None:
    """The option ``key`` must be a boolean (Python's True/False, JSON's true/false, numpy's bool).

    Raises
    ------
    SourceError
        Anything else: a truthy string such as ``"False"`` (the command line keeps a value that
        is not JSON as a string) would otherwise switch the option on.
    """
    if isinstance(value, (bool, np.bool_)):
        return
    hint = ""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        hint = f" (a string; write {value.strip().lower()}, unquoted JSON, or Python's {value.strip().capitalize()})"
    raise SourceError(f"{source}: {key} must be true or false, got {value!r}{hint}")


def check_seed(source: str, value: Any) -> None:
    """The ``seed`` option: None (the rng the source is given), a non-negative integer, a list of
    them or a :class:`numpy.random.SeedSequence` (what :func:`numpy.random.default_rng` takes).

    Raises
    ------
    SourceError
        Anything else (negative numbers, floats, strings, bools).
    """
    def whole(v: Any) -> bool:
        return is_integer(v) and v >= 0

    if value is None or isinstance(value, np.random.SeedSequence) or whole(value):
        return
    if isinstance(value, (list, tuple)) and value and all(whole(v) for v in value):
        return
    raise SourceError(f"{source}: seed must be a non-negative integer or a list of them (None: the rng "
                      f"init_field passes), got {value!r}")


def check_enforcement(source: str, o: Mapping[str, Any]) -> None:
    """The enforcement options of ``o``: ``no_slip``, ``divergence_free`` booleans (:func:`check_flag`),
    ``blend``, ``max_ratio`` positive finite numbers. The values are only checked, never converted.

    Raises
    ------
    SourceError
        The first bad value, naming the option and what is allowed.
    """
    for key in ("no_slip", "divergence_free"):
        check_flag(source, key, o[key])
    for key in ("blend", "max_ratio"):
        number(f"{source}: {key}", o[key], minimum=0, strict=True)
