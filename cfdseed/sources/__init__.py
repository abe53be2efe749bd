"""Named initial conditions for :func:`cfdseed.init_field`: the registry and the built-in sources.

A source function ``(grid, rng) -> ndarray (3, nx, ny, nz)`` builds the global field (u, v, w);
it runs on the root rank only (contract in :mod:`cfdseed.sources.base`). Named sources come from
factories ``(**options) -> source function`` in one explicit registry: the built-ins are listed
in :data:`_REGISTRY` below, users add theirs with :func:`register`::

    @cfdseed.sources.register("name")
    def factory(**options) -> SourceFn: ...

:func:`resolve` turns a name (and its options) or a callable into a source function. Built-ins
return :class:`Source` objects, whose :meth:`Source.build` also returns what the source did
(:class:`SourceInfo`); :func:`build` runs any source function that way.

Every built-in takes the unit options ``re_tau``, ``u_tau``, ``nu``, ``bulk`` and resolves them
with :func:`cfdseed.units.resolve_units`: the same options give the same velocity scale whichever
source (:attr:`SourceInfo.units` records it).

Modules: :mod:`~cfdseed.sources.base` (contract, option vocabulary :data:`OPTIONS`),
:mod:`~cfdseed.sources.analytic`, :mod:`~cfdseed.sources.baselines` (plug, laminar, trig,
streaks, snapshot, phase-randomised), :mod:`~cfdseed.sources.gan` (the trained generator),
:mod:`~cfdseed.sources.sem` (divergence-free synthetic eddies, the classical baseline of ``gan``).
Importing this package loads neither torch nor MPI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import SourceError
from . import analytic as _analytic
from . import baselines as _baselines
from . import gan as _gan
from . import sem as _sem
from .analytic import ANALYTIC_DEFAULTS
from .base import OPTIONS, Built, Source, SourceFn, SourceInfo, build

__all__ = ["SourceFn", "Source", "SourceInfo", "Built", "build", "register", "resolve", "available",
           "ANALYTIC_DEFAULTS", "OPTIONS", "BUILT_IN", "FILE_SOURCES"]

Factory = Callable[..., SourceFn]


#: Name -> factory of every known source: the built-ins here, user sources added by :func:`register`.
_REGISTRY: dict[str, Factory] = {
    "analytic": _analytic.analytic,
    "gan": _gan.gan,
    "plug": _baselines.plug,
    "laminar": _baselines.laminar,
    "trig": _baselines.trig,
    "streaks": _baselines.streaks,
    "snapshot": _baselines.snapshot,
    "phase-randomised": _baselines.phase_randomised,
    "sem": _sem.sem,
}


#: The built-in sources; every one takes the unit options re_tau, u_tau, nu and bulk.
BUILT_IN = tuple(_REGISTRY)
#: Built-in sources that deliver a field file's own velocities (unit options only rescale a file
#: that records its units).
FILE_SOURCES = ("snapshot", "phase-randomised")


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator: register ``factory(**options) -> SourceFn`` under ``name``.

    Raises
    ------
    SourceError
        ``name`` is empty or already taken by another factory.
    """
    if not isinstance(name, str) or not name:
        raise SourceError(f"source name must be a non-empty string, got {name!r}")

    def deco(factory: Factory) -> Factory:
        old = _REGISTRY.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (factory.__module__, factory.__qualname__):
            raise SourceError(f"source {name!r} is already registered by {old.__module__}.{old.__qualname__}")
        _REGISTRY[name] = factory
        return factory

    return deco


def available() -> list[str]:
    """Sorted names of every registered source."""
    return sorted(_REGISTRY)


def resolve(source: str | SourceFn, options: dict[str, Any] | None = None) -> SourceFn:
    """The source function for a registered name (built with ``options``) or a callable.

    Parameters
    ----------
    source : str or callable
        A registered name (see :func:`available`) or a function ``(grid, rng) -> (3, nx, ny, nz)``.
    options : dict, optional
        Keyword options of a named source's factory (README: one table of all options); not
        allowed with a callable.

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
