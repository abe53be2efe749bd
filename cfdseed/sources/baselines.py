"""Classical initial conditions: ``plug``, ``laminar``, ``trig``, ``streaks``, ``snapshot``,
``phase-randomised``.

Every one builds the global field on the root, then runs :func:`cfdseed.enforce.enforce`
(no-slip, divergence-free projection on the target grid, exact bulk velocity), so all of them pass
the default checks. Options shared by all (defaults): the unit options ``re_tau``, ``u_tau``,
``nu``, ``bulk`` (resolved by :func:`cfdseed.units.resolve_units`: wall units at Re_tau 180 with
the bulk of Reichardt's profile, 15.515, unless given; ``snapshot``: see below), ``seed`` (None:
the rng that :func:`cfdseed.coupling.init_field` passes, seeded by its ``seed``; else a
non-negative integer, a list of them or a SeedSequence), ``no_slip``/``divergence_free`` (True;
booleans only), ``blend`` (0.1 half-heights), ``max_ratio`` (10; both positive finite numbers);
``noise`` is the RMS of smooth random noise relative to ``|bulk|``. The resolved units are in the
source's :class:`~cfdseed.sources.base.SourceInfo` (``units``).

- ``plug``: uniform ``u = bulk`` plus noise (default 0.05); the no-slip blend gives it thin wall
  layers.
- ``laminar``: Poiseuille ``u = 1.5 bulk (1 - (y/h - 1)^2)`` plus noise (default 0.01).
- ``trig``: sine/cosine streamwise-varying rolls on the ``mean`` profile (``"laminar"`` or
  ``"turbulent"`` = Reichardt's law at the resolved ``re_tau``): ``v = A phi(y) cos(ax x + px)
  cos(az z + pz)`` with ``phi = (1 - (y/h - 1)^2)^2`` and ``u, w`` from continuity; ``amplitude``
  A = 0.1 bulk, ``waves = (1, 2)`` periods in x and z, random phases; noise 0.
- ``streaks``: near-wall streaks in the style of OpenFOAM's perturbU (our own formulas) on the
  turbulent mean profile at the resolved ``re_tau`` (which also sets the wall units of the
  ``*_plus`` options): ``u' = A (y+/yp) exp((1 - (y+/yp)^2)/2) cos(b z) (1 + s sin(a x))`` at
  each wall, ``w'`` from continuity, with spanwise spacing ``spacing_plus`` (100 wall units,
  rounded to fit lz) and streamwise wavelength
  ``length_plus`` (500); ``amplitude`` A = 0.25 bulk, peak height ``peak_plus`` (15 wall units),
  streamwise ``modulation`` s = 0.5, noise 0.01.
- ``snapshot``: a field from an HDF5 file written by ``cfdseed generate`` (``path``), interpolated
  to the grid (:func:`cfdseed.interp.field_to_grid`, ``y_method``), velocities times ``scale``
  (1.0, a positive number), noise 0. Units: by default the file's own velocities (times
  ``scale``) and bulk velocity. A file that records ``u_tau`` (``cfdseed generate`` writes
  ``re_tau``, ``u_tau``, ``nu``) has known units: the four unit options are resolved with the
  file's ``u_tau`` (times ``scale``) as the default friction velocity, its ``re_tau`` as the
  default Re_tau and its own bulk in wall units as ``bulk_plus``, and the velocities (times
  ``scale``) are multiplied by ``u_tau / (u_tau_file scale)``; so ``u_tau``, ``nu`` or ``bulk``
  rescale the field (``bulk`` alone: to that bulk velocity), ``re_tau`` alone only restates it. A file without ``u_tau``
  takes ``bulk`` (set exactly) and ``scale`` only: ``re_tau``, ``u_tau``, ``nu`` are refused, and
  the source records no units.
- ``phase-randomised``: the same, after the file's Fourier coefficients in x and z were given
  random phases (:func:`randomise_phases`): one phase per (k_x, k_z), the same for the three
  components and every y. Every one-point statistic, spectrum and cross-spectrum of the file, its
  no-slip walls and its continuity (for any x/z derivative that is diagonal in Fourier space) are
  kept exactly; its coherent structures are not: the baseline with the data's information but no
  structure. Units as for ``snapshot``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from .._values import number
from ..enforce import DEFAULT_BLEND, DEFAULT_MAX_RATIO, enforce, require_grid
from ..errors import SourceError
from ..grid import Grid
from ..interp import field_to_grid
from ..units import (
    DEFAULT_RE_TAU,
    UNIT_OPTIONS,
    Units,
    check_unit_options,
    reichardt_profile,
    resolve_units,
)
from .base import Source, SourceInfo, check_enforcement, check_seed, parse_options, warn_unresolved_waves, waves

__all__ = ["plug", "laminar", "trig", "streaks", "snapshot", "phase_randomised", "BASELINE_DEFAULTS",
           "reichardt_profile", "smooth_noise", "randomise_phases"]

#: The unit options (None: resolved by cfdseed.units.resolve_units) and the enforcement switches.
_COMMON: dict[str, Any] = {**dict.fromkeys(UNIT_OPTIONS), "seed": None, "no_slip": True, "divergence_free": True,
                           "blend": DEFAULT_BLEND, "max_ratio": DEFAULT_MAX_RATIO}
#: Options of each baseline and their defaults.
BASELINE_DEFAULTS: dict[str, dict[str, Any]] = {
    "plug": {**_COMMON, "noise": 0.05},
    "laminar": {**_COMMON, "noise": 0.01},
    "trig": {**_COMMON, "mean": "laminar", "amplitude": 0.1, "waves": (1, 2), "noise": 0.0},
    "streaks": {**_COMMON, "amplitude": 0.25, "spacing_plus": 100.0, "length_plus": 500.0,
                "peak_plus": 15.0, "modulation": 0.5, "noise": 0.01},
    "snapshot": {**_COMMON, "path": None, "scale": 1.0, "y_method": "auto", "noise": 0.0},
    "phase-randomised": {**_COMMON, "path": None, "scale": 1.0, "y_method": "auto"},
}
#: ``(grid, rng, units) -> raw field (3, nx, ny, nz)`` before the enforcement.
Build = Callable[[Grid, np.random.Generator, Units], np.ndarray]


def _units(name: str, o: dict[str, Any], grid: Grid) -> Units:
    """The source's units on ``grid`` (:func:`cfdseed.units.resolve_units`, default Re_tau 180)."""
    return resolve_units(grid.lengths[1], **{k: o[k] for k in UNIT_OPTIONS}, source=name)


def _enforced(raw: np.ndarray, grid: Grid, o: dict[str, Any], bulk: float | bool,
              units: Units | None) -> tuple[np.ndarray, SourceInfo]:
    """``raw`` through the enforcement (``bulk``: the target, True keeps the field's own)."""
    out, rep = enforce(raw, grid, no_slip=o["no_slip"], divergence_free=o["divergence_free"], bulk=bulk,
                       blend=o["blend"], max_ratio=o["max_ratio"], copy=False)
    return out, SourceInfo(enforcement=rep, units=units)


def _source(name: str, build: Build, o: dict[str, Any]) -> Source:
    """The source: resolve the units, ``build`` the raw field, then enforce the constraints."""

    def make(grid: Grid, rng: np.random.Generator) -> tuple[np.ndarray, SourceInfo]:
        require_grid(grid)  # before any work
        units = _units(name, o, grid)
        rng = rng if o["seed"] is None else np.random.default_rng(o["seed"])
        return _enforced(build(grid, rng, units), grid, o, units.bulk, units)

    return Source(name, make)


def _options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The source's options with their defaults, checked before anything runs (the enforcement
    switches, the seed, the numbers and the file sources' path; y_method when the source runs)."""
    o = parse_options(name, options, BASELINE_DEFAULTS[name])
    for key in ("noise", "amplitude"):
        if key in o:
            o[key] = number(f"{name}: {key}", o[key], minimum=0)
    o.update(check_unit_options(name, o))
    check_enforcement(name, o)  # checked only: the values reach enforce() as given
    check_seed(name, o["seed"])
    if "modulation" in o:
        number(f"{name}: modulation", o["modulation"])
    if "path" in o and o["path"] is not None and not isinstance(o["path"], (str, os.PathLike)):
        raise SourceError(f"{name}: path must be a field file name (a string or path), got {o['path']!r}")
    return o


def smooth_noise(grid: Grid, rng: np.random.Generator, rms: float, kmax: int = 4) -> np.ndarray:
    """Random field ``(3, nx, ny, nz)`` of RMS ``rms`` with at most ``kmax`` waves per direction.

    Periodic in x and z (Fourier modes |k| <= kmax), smooth in y (sine modes vanishing at the walls).
    """
    nx, ny, nz = grid.shape
    if rms == 0:
        return np.zeros((3, nx, ny, nz))
    eta = grid.y / grid.lengths[1]
    basis = np.sin(np.pi * np.outer(np.arange(1, kmax + 1), eta))  # (kmax, ny)
    coef = rng.standard_normal((3, nx, kmax, nz))
    spec = np.fft.rfft(coef, axis=1)
    spec[:, kmax + 1 :] = 0.0
    coef = np.fft.irfft(spec, n=nx, axis=1)
    spec = np.fft.fft(coef, axis=3)
    kz = np.abs(np.fft.fftfreq(nz, 1.0 / nz))
    spec[..., kz > kmax] = 0.0
    coef = np.fft.ifft(spec, axis=3).real
    out = np.einsum("cxkz,ky->cxyz", coef, basis)
    norm = float(np.sqrt(np.mean(out * out)))
    return out * (rms / norm) if norm > 0 else out


def _channel(grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Coordinates broadcastable to (nx, ny, nz) and the half-height."""
    return grid.x[:, None, None], grid.y[None, :, None], grid.z[None, None, :], 0.5 * grid.lengths[1]


def plug(**options: Any) -> Source:
    """Uniform bulk velocity plus smooth noise (``noise`` = 0.05 of the bulk velocity); units:
    :func:`cfdseed.units.resolve_units`."""
    o = _options("plug", options)

    def make(grid: Grid, rng: np.random.Generator, units: Units) -> np.ndarray:
        ub = units.bulk
        f = smooth_noise(grid, rng, o["noise"] * abs(ub))
        f[0] += ub
        return f

    return _source("plug", make, o)


def _laminar(grid: Grid, ub: float) -> np.ndarray:
    eta = grid.y / (0.5 * grid.lengths[1]) - 1.0
    return 1.5 * ub * (1.0 - eta * eta)


def laminar(**options: Any) -> Source:
    """Poiseuille profile with the resolved bulk velocity plus smooth noise (``noise`` = 0.01)."""
    o = _options("laminar", options)

    def make(grid: Grid, rng: np.random.Generator, units: Units) -> np.ndarray:
        ub = units.bulk
        f = smooth_noise(grid, rng, o["noise"] * abs(ub))
        f[0] += _laminar(grid, ub)[None, :, None]
        return f

    return _source("laminar", make, o)


def _mean(grid: Grid, kind: str, units: Units, ub: float) -> np.ndarray:
    """Mean profile in the field's units (the enforcement scales it to the exact bulk velocity)."""
    if kind == "laminar":
        return _laminar(grid, ub)
    return reichardt_profile(grid.y, grid.lengths[1], units.re_tau) * units.u_tau


def trig(**options: Any) -> Source:
    """Sine/cosine rolls on a mean profile; see the module docstring for options."""
    o = _options("trig", options)
    ax_n, az_n = waves("trig", o["waves"], z_min=1)
    if o["mean"] not in ("laminar", "turbulent"):
        raise SourceError(f"trig: mean {o['mean']!r} unknown; must be one of laminar, turbulent")

    def make(grid: Grid, rng: np.random.Generator, units: Units) -> np.ndarray:
        warn_unresolved_waves("trig", (ax_n, az_n), grid)
        ub = units.bulk
        x, y, z, h = _channel(grid)
        ax, az = 2 * np.pi * ax_n / grid.lengths[0], 2 * np.pi * az_n / grid.lengths[2]
        px, pz = rng.uniform(0, 2 * np.pi, 2)
        eta = y / h - 1.0
        phi = (1.0 - eta * eta) ** 2
        dphi = -4.0 * eta * (1.0 - eta * eta) / h
        amp = o["amplitude"] * abs(ub)
        k2 = ax * ax + az * az
        cx, sx, cz, sz = np.cos(ax * x + px), np.sin(ax * x + px), np.cos(az * z + pz), np.sin(az * z + pz)
        f = smooth_noise(grid, rng, o["noise"] * abs(ub))
        f[0] += _mean(grid, o["mean"], units, ub)[None, :, None] - amp * ax / k2 * dphi * sx * cz
        f[1] += amp * phi * cx * cz
        f[2] += -amp * az / k2 * dphi * cx * sz
        return f

    return _source("trig", make, o)


def streaks(**options: Any) -> Source:
    """Near-wall streaks (perturbU style) on the turbulent mean profile; see the module docstring."""
    o = _options("streaks", options)
    for key in ("spacing_plus", "length_plus", "peak_plus"):
        o[key] = number(f"streaks: {key}", o[key], minimum=0, strict=True)

    def make(grid: Grid, rng: np.random.Generator, units: Units) -> np.ndarray:
        ub = units.bulk
        x, y, z, h = _channel(grid)
        lx, ly, lz = grid.lengths
        plus = units.re_tau / h  # wall units per length unit
        nzw = max(1, round(lz * plus / o["spacing_plus"]))  # whole streaks across the span
        nxw = max(1, round(lx * plus / o["length_plus"]))
        b, a = 2 * np.pi * nzw / lz, 2 * np.pi * nxw / lx
        f = smooth_noise(grid, rng, o["noise"] * abs(ub))
        f[0] += reichardt_profile(grid.y, ly, units.re_tau)[None, :, None] * units.u_tau
        amp = o["amplitude"] * abs(ub)
        for dist in (y, ly - y):  # each wall its own streaks, random phases
            pz, px = rng.uniform(0, 2 * np.pi, 2)
            s = dist * plus / o["peak_plus"]
            g = s * np.exp(0.5 * (1.0 - s * s))  # peak 1 at y+ = peak_plus
            mod = 1.0 + o["modulation"] * np.sin(a * x + px)
            dmod = o["modulation"] * a * np.cos(a * x + px)
            f[0] += amp * g * np.cos(b * z + pz) * mod
            f[2] += -amp * g * np.sin(b * z + pz) * dmod / b  # du/dx + dw/dz = 0
        return f

    return _source("streaks", make, o)


def randomise_phases(field: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``field (3, nx, ny, nz)`` with random Fourier phases in x and z, one per (k_x, k_z).

    The phases are those of the 2-D transform of real white noise (so the result is real), with
    the plane mean (k_x = k_z = 0) kept as it is; the moduli of every coefficient are unchanged.
    """
    nx, _, nz = field.shape[1:]
    noise = np.fft.rfft2(rng.standard_normal((nx, nz)))  # (nx, nz//2+1), Hermitian by construction
    mod = np.abs(noise)
    phase = np.where(mod > 0, noise / np.where(mod > 0, mod, 1.0), 1.0)
    phase[0, 0] = 1.0
    spec = np.fft.rfft2(field, axes=(1, 3))  # (3, nx, ny, nz//2+1)
    return np.fft.irfft2(spec * phase[None, :, None, :], s=(nx, nz), axes=(1, 3))


def _file_units(attrs: dict[str, Any], lengths: tuple[float, float, float]) -> tuple[float, float] | None:
    """``(u_tau, re_tau)`` a field file records, or None without a positive finite ``u_tau``.

    ``re_tau``: the recorded one, else ``u_tau h / nu`` of the file's box, else 180.
    """
    def positive(key: str) -> float | None:
        try:
            v = float(attrs[key])
        except (KeyError, TypeError, ValueError):
            return None
        return v if math.isfinite(v) and v > 0 else None

    u_tau, re_tau, nu = positive("u_tau"), positive("re_tau"), positive("nu")
    if u_tau is None:
        return None
    if re_tau is None:
        re_tau = u_tau * 0.5 * lengths[1] / nu if nu is not None else DEFAULT_RE_TAU
    return u_tau, re_tau


def _from_file(name: str, o: dict[str, Any], prepare: Callable[[np.ndarray, np.random.Generator], np.ndarray]) -> Source:
    """A field file (``path``) ``prepare``-d on its own grid, interpolated to the target grid,
    times ``scale``, plus ``noise`` (relative to the mean |u|) when the source takes it, rescaled
    to the unit options when the file records its units (module docstring)."""
    if o["path"] is None:
        raise SourceError(f"{name}: option path (an HDF5 field file) is required")
    o["scale"] = number(f"{name}: scale", o["scale"], minimum=0, strict=True)

    def make(grid: Grid, rng: np.random.Generator) -> tuple[np.ndarray, SourceInfo]:
        from ..errors import DatasetError
        from ..fields import read_field
        from ..operators import bulk_velocity

        require_grid(grid)  # before any work
        rng = rng if o["seed"] is None else np.random.default_rng(o["seed"])
        try:
            field, y, lengths, attrs = read_field(o["path"])
        except DatasetError as exc:
            raise SourceError(f"{name}: {exc}") from None
        f = field_to_grid(prepare(field, rng), y, lengths, grid, o["y_method"]) * o["scale"]
        if o.get("noise"):
            f += smooth_noise(grid, rng, o["noise"] * float(np.abs(f[0]).mean()))
        own = _file_units(attrs, lengths)
        if own is None:  # the file's velocities, its bulk velocity unless bulk is given
            rescale = [k for k in ("re_tau", "u_tau", "nu") if o[k] is not None]
            if rescale:
                raise SourceError(f"{name}: {o['path']} records no u_tau, so {', '.join(rescale)} cannot rescale "
                                  "its velocities; give bulk (set exactly) or scale instead, or use a file that "
                                  "records its units (cfdseed generate writes re_tau, u_tau, nu)")
            return _enforced(f, grid, o, True if o["bulk"] is None else o["bulk"], None)
        u_own = own[0] * o["scale"]  # the friction velocity of f
        given = {k: o[k] for k in UNIT_OPTIONS}
        if given["u_tau"] is None and given["nu"] is None and given["bulk"] is None:
            given["u_tau"] = u_own  # nothing rescales: the file's own velocities
        units = resolve_units(grid.lengths[1], **given, default_re_tau=own[1],
                              bulk_plus=bulk_velocity(f, grid) / u_own, source=name)
        f *= units.u_tau / u_own
        return _enforced(f, grid, o, units.bulk, units)

    return Source(name, make)


def snapshot(**options: Any) -> Source:
    """An existing field (``path``, written by ``cfdseed generate``) interpolated to the grid."""
    o = _options("snapshot", options)  # default: the file's own velocities and bulk velocity
    return _from_file("snapshot", o, lambda field, rng: field)


def phase_randomised(**options: Any) -> Source:
    """An existing field with random Fourier phases in x and z (:func:`randomise_phases`),
    interpolated to the grid: the data's statistics and spectra without its structures."""
    o = _options("phase-randomised", options)
    return _from_file("phase-randomised", o, randomise_phases)
