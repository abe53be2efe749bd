"""Named initial-condition sources for :func:`cfdseed.init_field` (shared contract 3).

A source function ``(grid, rng) -> ndarray (3, nx, ny, nz)`` builds the global field (u, v, w) on
the grid it is given (float32 or float64); it runs on the root rank only. Sources are looked up by
name in a registry of factories::

    @register("name")
    def factory(**options) -> SourceFn: ...

:func:`resolve` accepts a callable or a registered name. Modules that register further sources
(the generator, baselines) are listed in :data:`_PLUGINS` and imported on the first lookup of a
name that is not built in, so ``"analytic"`` needs neither torch nor the generator code.

Built-in ``"analytic"``: a laminar Poiseuille profile plus periodic modes that vanish at the
walls and are divergence-free for the *discrete* operators of the constraint checks (contract 1):
u = D_y psi, v = -D_x psi - D_z chi, w = D_y chi with stream functions psi, chi that are zero on
the walls; D_x, D_y and D_z act on different axes and commute, so the discrete divergence cancels
to round-off.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import SourceError
from .grid import Grid
from .operators import d_dy, d_periodic, trapezoid_weights, y_ext

__all__ = ["SourceFn", "register", "resolve", "available", "analytic", "ANALYTIC_DEFAULTS"]

SourceFn = Callable[[Grid, np.random.Generator], np.ndarray]

_REGISTRY: dict[str, Callable[..., SourceFn]] = {}
#: Modules imported on the first lookup of a name not registered yet (each calls :func:`register`).
_PLUGINS: tuple[str, ...] = ("cfdseed.synthesis", "cfdseed.baselines")
_plugins_loaded = False


def register(name: str) -> Callable[[Callable[..., SourceFn]], Callable[..., SourceFn]]:
    """Decorator: register ``factory(**options) -> SourceFn`` under ``name``.

    Raises
    ------
    SourceError
        ``name`` is empty or already taken by another factory.
    """
    if not isinstance(name, str) or not name:
        raise SourceError(f"source name must be a non-empty string, got {name!r}")

    def deco(factory: Callable[..., SourceFn]) -> Callable[..., SourceFn]:
        old = _REGISTRY.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (factory.__module__, factory.__qualname__):
            raise SourceError(f"source {name!r} is already registered by {old.__module__}.{old.__qualname__}")
        _REGISTRY[name] = factory
        return factory

    return deco


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    for mod in _PLUGINS:
        try:
            importlib.import_module(mod)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must name itself
            raise SourceError(f"source plugin module {mod} failed to import: {type(exc).__name__}: {exc}") from exc
    _plugins_loaded = True


def available() -> list[str]:
    """Sorted names of every registered source (plugins included)."""
    _load_plugins()
    return sorted(_REGISTRY)


def resolve(source: str | SourceFn, options: dict[str, Any] | None = None) -> SourceFn:
    """The source function for a registered name (built with ``options``) or a callable.

    Parameters
    ----------
    source : str or callable
        A registered name (see :func:`available`) or a function ``(grid, rng) -> (3, nx, ny, nz)``.
    options : dict, optional
        Keyword options of a named source's factory; not allowed with a callable.

    Raises
    ------
    SourceError
        Unknown name (the message lists the known ones), options given with a callable, or
        options the factory rejects.
    """
    if options is not None and not isinstance(options, dict):
        raise SourceError(f"options must be a dict, got {type(options).__name__}")
    if callable(source):
        if options:
            raise SourceError(f"options {sorted(options)} apply to named sources only, not to a callable source")
        return source
    if not isinstance(source, str):
        raise SourceError(f"source must be a registered name or a callable (grid, rng) -> field, "
                          f"got {type(source).__name__}")
    if source not in _REGISTRY:
        _load_plugins()
    factory = _REGISTRY.get(source)
    if factory is None:
        raise SourceError(f"unknown source {source!r}; registered sources: {', '.join(sorted(_REGISTRY))}")
    try:
        fn = factory(**(options or {}))
    except SourceError:
        raise
    except (TypeError, ValueError) as exc:
        raise SourceError(f"bad options for source {source!r}: {exc}") from exc
    if not callable(fn):
        raise SourceError(f"factory of source {source!r} returned {type(fn).__name__}, not a callable")
    return fn


# -- built-in "analytic" source --------------------------------------------------------------
#: Options of ``"analytic"`` and their defaults.
ANALYTIC_DEFAULTS: dict[str, Any] = {
    "u_bulk": 1.0,  # bulk velocity (trapezoid in y of the plane-averaged u, as the checks measure it)
    "amplitude": 0.1,  # max |u_i'| of the modes, relative to |u_bulk| (absolute if u_bulk is 0)
    "modes": (1, 1),  # streamwise and spanwise mode numbers (periods per lx, per lz)
}


def _modes(value: Any) -> tuple[int, int]:
    try:
        mx, mz = (int(m) for m in value)
        if (mx, mz) != tuple(value) or mx < 0 or mz < 0:
            raise ValueError
    except (TypeError, ValueError):
        raise SourceError(f"option modes must be two non-negative integers (mx, mz), got {value!r}") from None
    return mx, mz


@register("analytic")
def analytic(**options: Any) -> SourceFn:
    """Laminar Poiseuille flow plus divergence-free periodic modes that vanish at the walls.

    Options (defaults in :data:`ANALYTIC_DEFAULTS`): ``u_bulk`` (1.0) the bulk velocity, set
    exactly for the discrete quadrature of the checks; ``amplitude`` (0.1) the largest |u_i'| of
    the modes relative to ``|u_bulk|``; ``modes`` ((1, 1)) the streamwise and spanwise mode numbers.
    The phases are drawn from the ``rng`` (so ``seed`` changes the field).

    The modes come from stream functions ``psi = f(y) sin(kx x + a) cos(kz z + b)`` and
    ``chi = f(y) [cos(kx x + c) sin(kz z + d) + sin(kz z + e)]`` with ``f = (y (ly - y))^2``:
    ``u = D_y psi``, ``v = -D_x psi - D_z chi``, ``w = D_y chi`` (contract-1 operators, virtual
    zero wall points on cell-centred grids). Every value at a wall point is exactly 0.

    On cell-centred grids the checks extrapolate linearly to the wall, which misses the parabola by
    O(dy^2): with the default ``no_slip_extrapolated`` tolerance (0.05) that needs 11 or more
    uniform cells (Chebyshev/tanh cells cluster at the walls and pass with fewer).
    """
    unknown = sorted(set(options) - set(ANALYTIC_DEFAULTS))
    if unknown:
        raise SourceError(f"unknown option(s) {', '.join(unknown)} for source 'analytic'; "
                          f"allowed: {', '.join(ANALYTIC_DEFAULTS)}")
    opts = {**ANALYTIC_DEFAULTS, **options}
    try:
        u_bulk, amplitude = float(opts["u_bulk"]), float(opts["amplitude"])
    except (TypeError, ValueError):
        raise SourceError(f"options u_bulk and amplitude must be numbers, got {opts['u_bulk']!r}, "
                          f"{opts['amplitude']!r}") from None
    if not (np.isfinite(u_bulk) and np.isfinite(amplitude) and amplitude >= 0):
        raise SourceError(f"u_bulk must be finite and amplitude finite and >= 0, got {u_bulk}, {amplitude}")
    mx, mz = _modes(opts["modes"])

    def source(grid: Grid, rng: np.random.Generator) -> np.ndarray:
        (nx, ny, nz), (lx, ly, lz) = grid.shape, grid.lengths
        lo, _ = grid.walls
        # y with virtual wall points where no grid point lies on a wall; ext index of real points
        yext = y_ext(grid)

        def bulk(u: np.ndarray) -> float:  # contract-1 bulk of u on yext (zero at virtual walls)
            return float(u[:, real].mean(axis=(0, 2)) @ weights)

        weights = trapezoid_weights(grid)
        j0 = 0 if lo else 1
        real = slice(j0, j0 + ny)
        x = grid.x[:, None, None]
        z = grid.z[None, None, :]
        eta = yext / ly
        f = ((eta * (1.0 - eta)) ** 2)[None, :, None]  # zero (double root) on both walls
        a, b, c, d, e = rng.uniform(0.0, 2.0 * np.pi, 5)
        kx, kz = 2.0 * np.pi * mx / lx, 2.0 * np.pi * mz / lz
        psi = f * np.sin(kx * x + a) * np.cos(kz * z + b)  # (nx, ny_ext, nz)
        chi = f * (np.cos(kx * x + c) * np.sin(kz * z + d) + np.sin(kz * z + e))
        up = np.zeros((3, nx, yext.size, nz))
        up[0, :, 1:-1] = d_dy(psi, yext)
        up[1] = -d_periodic(psi, 0, lx / nx) - d_periodic(chi, 2, lz / nz)
        up[2, :, 1:-1] = d_dy(chi, yext)
        # amplitude = largest deviation from the plane (x-z) mean; on coarse grids a mode can alias
        # onto the plane mean, which then belongs to the mean flow, not to u'
        real_up = up[:, :, real]
        full = np.abs(up).max()
        scale = np.abs(real_up - real_up.mean(axis=(1, 3), keepdims=True)).max()
        if scale <= 1e-12 * full:  # only plane-mean (aliased) modes: no u' to measure
            scale = full
        ref = abs(u_bulk) if u_bulk != 0 else 1.0
        if scale > 0:
            up *= amplitude * ref / scale
        # mean profile, then a y-only correction (divergence-free, zero at walls) for the exact bulk
        prof = (eta * (1.0 - eta))[None, :, None]  # (1, ny_ext, 1)
        up[0] += prof * ((u_bulk - bulk(up[0])) / bulk(prof))
        return up[:, :, real]

    return source
