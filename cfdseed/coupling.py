"""The collective entry points a solver calls: :func:`init_field` and (re-exported) :func:`check_field`.

``init_field`` validates everything on every rank and agrees (:mod:`cfdseed._collective`), runs the
source on the root only, validates its output there, agrees again, streams the field into every
rank's block (:mod:`cfdseed.transport`) and checks the delivered blocks
(:func:`cfdseed.constraints.check_field`). Any failure before the transfer raises the same error on
every rank and leaves ``out`` untouched. With ``result=True`` it returns an :class:`InitResult`:
the delivered blocks together with the report of those checks, so a solver need not run
``check_field`` again. Logs carry ``rank/size``; ranks > 0 log only warnings.

Strategies (``strategy=``): ``"root"`` builds the global field on the root (any source; memory:
the global field plus one chunk on the root); ``"distributed"`` has every rank build its own x
slab (sources with a slab path, :attr:`cfdseed.sources.Source.distributable`: ``gan`` -- with a
latent x construction every rank generates its own x stations, with a rollout the root runs the
ring and sends every rank its stations (:mod:`cfdseed.synthesis_slabs`) -- and ``sem``) and
redistributes the slabs into the blocks, so no rank holds more than its slab (or its spectrum), its
block and fixed-size buffers; ``"auto"`` (default) takes the distributed path on more
than one rank when the global float64 field would exceed :data:`AUTO_DISTRIBUTED_BYTES` and the
source can, the root path otherwise. Both deliver the same field for the same seed (to round-off).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._collective import agree, idle_until, run_agreed
from ._threads import root_build
from .constraints import ConstraintReport, Tolerances, check_field
from .errors import ConfigError, ConstraintError, SourceError
from .grid import Grid
from .sources import SourceFn, SourceInfo, build, resolve
from .sources.base import Source
from .transport import DEFAULT_CHUNK_BYTES, _beyond, prepare

__all__ = ["init_field", "check_field", "InitResult", "STRATEGIES", "AUTO_DISTRIBUTED_BYTES"]

#: Values of ``init_field(strategy=...)``.
STRATEGIES = ("auto", "root", "distributed")
#: ``strategy="auto"``: global float64 fields larger than this (4 GiB, ~1.8e8 cells) are built
#: distributed when the source can.
AUTO_DISTRIBUTED_BYTES = 4 << 30
#: Options of a source that may differ between ranks (where each rank runs, e.g. ``cuda:<local rank>``).
_PER_RANK_OPTIONS = frozenset({"device"})

log = logging.getLogger(__name__)


def _info(comm: Any, msg: str, *args: Any) -> None:
    """INFO on rank 0, DEBUG elsewhere (ranks > 0 report warnings only)."""
    rank, size = comm.Get_rank(), comm.Get_size()
    log.log(logging.INFO if rank == 0 else logging.DEBUG, f"[{rank}/{size}] {msg}", *args)


@dataclass(frozen=True)
class InitResult:
    """What :func:`init_field` returns with ``result=True``."""

    #: ``out`` (filled) or the new array: what ``init_field`` returns without ``result=True``.
    field: Any
    #: The report of the checks ``init_field`` ran on the delivered blocks (identical on every
    #: rank); None with ``check=False``.
    report: ConstraintReport | None
    #: On the root: what the source did (:class:`cfdseed.sources.SourceInfo`: enforcement
    #: figures, for ``gan`` the synthesis record); None on the other ranks.
    source_info: SourceInfo | None
    #: The path taken: "root" (built on the root) or "distributed" (x slabs on every rank).
    strategy: str = "root"


def _run_source(fn: SourceFn, name: str, grid: Grid, seed: Any,
                check: Any) -> tuple[np.ndarray | None, SourceInfo | None, BaseException | None]:
    """Root: run the source and validate its field; (field, info, None) or (None, None, SourceError),
    or a ``SystemExit``/``KeyboardInterrupt`` it raised as it is (agreed, then raised on the root)."""
    try:
        rng = np.random.default_rng(seed)
        built = build(fn, grid.global_grid(), rng)
    except Exception as exc:  # noqa: BLE001 - reported on every rank as SourceError
        err = SourceError(f"source {name} raised {type(exc).__name__}: {exc}")
        err.__cause__ = exc
        return None, None, err
    except BaseException as exc:  # noqa: BLE001 - not an error of the source's: the root must still exit
        return None, None, exc
    field = built.field
    err = check(field, SourceError)
    if err is None:
        bad = _nonfinite(field)
        if bad is not None:
            err = SourceError(f"source returned {bad} non-finite value(s) (NaN or Inf) in a field of {field.size}")
    return (None, None, err) if err is not None else (field, built.info, None)


def _nonfinite(a: np.ndarray) -> str | None:
    """How many values of ``a`` are NaN or Inf ("some" when counting runs out of memory), or None.
    NaN/Inf propagate through min/max: the check itself needs no array-sized boolean temporary."""
    if not a.size or (np.isfinite(np.min(a)) and np.isfinite(np.max(a))):
        return None
    try:  # the count does: its MemoryError must still reach the other ranks as the source's error
        return str(int(np.count_nonzero(~np.isfinite(a))))
    except MemoryError:
        return "some"


def _seed_key(seed: Any) -> Any:
    """What a seed is, comparable between ranks: the int(s), a SeedSequence's entropy and spawn key,
    a generator's state; ConfigError for what ``np.random.default_rng`` does not take."""
    if seed is None:
        return None
    if isinstance(seed, np.random.SeedSequence):
        return ("SeedSequence", seed.entropy, tuple(seed.spawn_key), seed.pool_size)
    if isinstance(seed, (np.random.Generator, np.random.BitGenerator)):
        bits = seed.bit_generator if isinstance(seed, np.random.Generator) else seed
        return (type(bits).__name__, repr(bits.state))
    try:
        np.random.SeedSequence(seed)  # ints >= 0 or sequences of them, as default_rng takes them
    except (TypeError, ValueError):
        raise ConfigError(f"seed must be None, a non-negative integer, a SeedSequence or a numpy Generator, "
                          f"got {seed!r}") from None
    return ("int", repr(np.asarray(seed).tolist()))


def init_field(
    comm: Any,
    grid: Grid,
    *,
    source: str | SourceFn = "analytic",
    options: dict[str, Any] | None = None,
    root: int = 0,
    seed: Any = None,
    out: Any = None,
    axes: str = "xyz",
    dtype: Any = None,
    check: bool = True,
    tolerances: Tolerances | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    result: bool = False,
    strategy: str = "auto",
) -> Any:
    """Collective: build an initial velocity field on ``root`` and deliver it into every rank's block.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Every rank of the decomposition calls.
    grid : Grid
        Global grid, identical on every rank, with this rank's block ``grid.local``; the blocks of
        all ranks must tile the grid exactly once (any tiling).
    source : str or callable, default "analytic"
        A registered source name (:func:`cfdseed.sources.available`) or a function
        ``(grid, rng) -> ndarray (3, nx, ny, nz)`` (u, v, w); runs on the root only, on the global
        grid.
    options : dict, optional
        Options of a named source (e.g. ``{"bulk": 1.0, "amplitude": 0.1}`` for "analytic"; README:
        one table of every source's options).
    root : int, default 0
        Rank that runs the source.
    seed : int or SeedSequence, optional
        Seed of ``np.random.default_rng`` handed to the source (root only; distributed: every rank
        passes the same); None: fresh entropy.
    out : ndarray (3, ...) or tuple (u, v, w), optional
        This rank's own arrays, axes in the order ``axes``, any memory order, float32/float64;
        filled in place. Allocated (C order) when omitted.
    axes : str, default "xyz"
        Permutation of ``"xyz"`` naming the array axes (Dedalus stores ``"xzy"``).
    dtype : float32 or float64, optional
        Delivered dtype: default ``out``'s dtype, else float64. Must match ``out`` when both given.
    check : bool, default True
        Run :func:`check_field` on the delivered blocks and raise if a tolerance is violated.
    tolerances : cfdseed.constraints.Tolerances, optional
        Limits of the check (its documented defaults when omitted).
    chunk_bytes : int, default 32 MiB
        Bound on the root's packed buffer per streamwise chunk (memory: global field + one chunk).
    result : bool, default False
        Return an :class:`InitResult` (the blocks, the report of the checks, the source's info)
        instead of the blocks alone.
    strategy : {"auto", "root", "distributed"}, default "auto"
        Where the field is built (module docstring): on the root, or as x slabs on every rank
        (named sources that can, e.g. ``gan``; ``seed`` then seeds every rank alike, None: the
        root's fresh entropy, broadcast).

    Returns
    -------
    ndarray (3, ...) or tuple, or InitResult
        ``out`` (filled) when given, else this rank's block as a new array ``(3, *local shape)`` in
        ``axes`` order; with ``result=True`` that as ``InitResult.field``, with the report.

    Raises
    ------
    TransportError, GridError, DecompositionError
        Bad ``out``/``axes``/``dtype``/``root``, ranks disagreeing on the grid, blocks that do not
        tile it, a grid decomposed for another number of ranks; ranks disagreeing on ``strategy``,
        ``check`` or ``tolerances`` (and, where the field may be built distributed, on the source,
        its options or the seed: TransportError). Nothing is written.
    ConfigError
        ``tolerances`` not a :class:`~cfdseed.constraints.Tolerances`, an unknown ``strategy``, a
        ``check`` that is not a bool, or a ``seed`` that ``np.random.default_rng`` does not take.
        Nothing is written.
    SourceError
        Unknown source or bad options, ``strategy="distributed"`` for a source without a slab path,
        or the source raised, returned a non-array, the wrong shape or dtype, NaN/Inf, or values
        beyond the range of the delivered ``dtype`` (float32). Nothing is written.
    ConstraintError
        ``check=True`` and the delivered field violates a tolerance; ``exc.report`` holds the
        :class:`~cfdseed.constraints.ConstraintReport` (the field has been delivered).

    All errors are raised on every rank. A ``SystemExit`` or ``KeyboardInterrupt`` raised in the
    source is raised unchanged where it happened, and as a ``RuntimeError`` naming it elsewhere.
    """
    t0 = time.perf_counter()
    err: BaseException | None = None
    try:
        if tolerances is not None and not isinstance(tolerances, Tolerances):
            raise ConfigError(f"tolerances must be a cfdseed.constraints.Tolerances, got {type(tolerances).__name__}")
        if not (isinstance(source, str) or callable(source)):
            raise SourceError(f"source must be a registered name or a callable (grid, rng) -> field, "
                              f"got {type(source).__name__}")
        if strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        if not isinstance(check, (bool, np.bool_)):  # "no" would be truthy
            raise ConfigError(f"check must be True or False, got {check!r}")
        seed_key = _seed_key(seed)
        # what steers the collective steps must match on every rank (compared by prepare): the
        # checks' tolerances decide pass or fail on each; on the root path the source, its options
        # and the seed are the root's alone, on the distributed path every rank builds from them
        alike: dict[str, Any] = {"strategy": strategy, "check": bool(check), "the tolerances": tolerances}
        if isinstance(grid, Grid) and _may_distribute(comm, grid, strategy):
            alike.update({"the source": _source_name(source), "the options (digest)": _options_digest(options),
                          "the seed": seed_key})
    except Exception as exc:  # noqa: BLE001 - re-raised on every rank by agree
        err = exc
    agree(comm, err)
    plan = prepare(comm, grid, root=root, out=out, axes=axes, dtype=dtype, chunk_bytes=chunk_bytes, extras=alike)
    rank = comm.Get_rank()
    name = _source_name(source)
    distributed = _distributed(comm, grid, source, options, strategy)
    if distributed is not None:
        return _init_distributed(comm, grid, plan, distributed, name, seed, check, tolerances, result, axes, t0)

    field: np.ndarray | None = None
    info: SourceInfo | None = None
    err = None
    with root_build(comm, plan.root):  # the root borrows its node's CPUs while the others sleep
        if plan.is_root:
            try:
                fn = resolve(source, options)
            except BaseException as exc:  # noqa: BLE001 - re-raised on every rank by agree (SystemExit unchanged)
                keep = isinstance(exc, SourceError) or not isinstance(exc, Exception)
                err = exc if keep else SourceError(f"{type(exc).__name__}: {exc}")
            if err is None:
                field, info, err = _run_source(fn, name, grid, seed, plan.field_error)
    # the other ranks sleep until the root has built the field (a blocking collective would spin
    # on their cores, which the root's FFTs and inference can use)
    idle_until(comm)
    agree(comm, err)
    t1 = time.perf_counter()
    if plan.is_root:
        _info(comm, "source %s built %s %s field in %.3f s", name, "x".join(map(str, grid.shape)),
              field.dtype, t1 - t0)

    delivered = plan.send(field if rank == plan.root else None)
    del field  # the root frees the global field before the checks
    t2 = time.perf_counter()
    _info(comm, "delivered %s blocks in %d chunk(s) in %.3f s", plan.dtype, len(plan.chunks), t2 - t1)

    return _checked(comm, grid, delivered, info, check, tolerances, result, axes, t2)


def _checked(comm: Any, grid: Grid, delivered: Any, info: SourceInfo | None, check: bool,
             tolerances: Tolerances | None, result: bool, axes: str, t2: float, strategy: str = "root") -> Any:
    report = None
    if check:
        report = check_field(comm, grid, delivered, axes=axes, tolerances=tolerances)
        _info(comm, "constraint checks in %.3f s: %s", time.perf_counter() - t2,
              "passed" if report.passed else "FAILED")
        if not report.passed:
            raise ConstraintError(str(report), report)
    return InitResult(delivered, report, info, strategy) if result else delivered


def _may_distribute(comm: Any, grid: Grid, strategy: str) -> bool:
    """Whether ``strategy`` may take the distributed path (then every rank resolves the source)."""
    return strategy == "distributed" or (strategy == "auto" and comm.Get_size() > 1
                                         and 3 * grid.size * 8 > AUTO_DISTRIBUTED_BYTES)


def _distributed(comm: Any, grid: Grid, source: Any, options: dict[str, Any] | None,
                 strategy: str) -> Source | None:
    """Collective: the resolved source if the distributed path is taken, else None (alike everywhere)."""
    if not _may_distribute(comm, grid, strategy):
        return None  # the grid is agreed (prepare): the same answer everywhere, no source resolved

    def decide() -> Source | None:
        fn = resolve(source, options) if isinstance(source, str) else source
        can = isinstance(fn, Source) and fn.distributable
        if strategy == "distributed" and not can:
            raise SourceError(f"source {_source_name(source)} has no distributed path (strategy='distributed'); "
                              "use strategy='root'")
        return fn if can else None
    return run_agreed(comm, decide)


def _source_name(source: Any) -> str:
    """What messages call ``source``: its registered name, or the callable's name."""
    return source if isinstance(source, str) else getattr(source, "__name__", type(source).__name__)


def _options_digest(options: Any) -> str:
    """Digest of a named source's options for comparing ranks: plain values by value, arrays by
    dtype and shape, anything else (a loaded model) by type; :data:`_PER_RANK_OPTIONS` left out."""
    items = options.items() if isinstance(options, dict) else ()
    kept = {str(k): v for k, v in items if k not in _PER_RANK_OPTIONS}
    return hashlib.sha256(_canonical(kept)).hexdigest()


def _canonical(value: Any) -> bytes:
    """Bytes equal on every rank for equal plain values (no addresses, no pickle memo)."""
    if isinstance(value, (type(None), bool, int, float, complex, str, bytes, os.PathLike, np.generic)):
        return repr(value).encode()
    if isinstance(value, np.ndarray):
        return f"ndarray({value.dtype}, {value.shape})".encode()
    if isinstance(value, (list, tuple)):
        return type(value).__name__.encode() + b"(" + b",".join(map(_canonical, value)) + b")"
    if isinstance(value, dict):
        return b"{" + b",".join(_canonical(str(k)) + b":" + _canonical(v)
                               for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))) + b"}"
    return type(value).__qualname__.encode()


def _init_distributed(comm: Any, grid: Grid, plan: Any, fn: Source, name: str, seed: Any, check: bool,
                      tolerances: Tolerances | None, result: bool, axes: str, t0: float) -> Any:
    """Every rank builds its x slab (Source.build_slabs), the slabs go into the blocks, then the checks."""
    from .pencils import Slabs

    rank = comm.Get_rank()
    if seed is None:
        seed = comm.bcast(np.random.SeedSequence().entropy if rank == 0 else None, root=0)

    slabs = Slabs(comm, grid)

    def build_() -> Any:
        try:
            built = fn.build_slabs(comm, grid.global_grid(), np.random.default_rng(seed))
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported on every rank as SourceError
            raise SourceError(f"source {name} raised {type(exc).__name__}: {exc}") from exc
        # a user's source may return anything on any rank: checked here, agreed, before the exchange
        slab, want = built.field, slabs.slab_shape()
        if not isinstance(slab, np.ndarray) or slab.shape != want or not np.issubdtype(slab.dtype, np.floating):
            raise SourceError(f"source {name}'s slab on rank {rank} is {type(slab).__name__} "
                              f"{getattr(slab, 'shape', '')} {getattr(slab, 'dtype', '')}; expected a float array "
                              f"of shape {want} (3, this rank's x slab, ny, nz)")
        bad = _nonfinite(slab)
        if bad is not None:
            raise SourceError(f"source {name} returned {bad} non-finite value(s) (NaN or Inf) in rank {rank}'s slab")
        beyond = _beyond(slab, plan.dtype)
        if beyond:
            raise SourceError(f"source {name}'s slab on rank {rank} {beyond}")
        return built

    built = run_agreed(comm, build_)
    slab, info = built.field, built.info
    del built
    t1 = time.perf_counter()
    _info(comm, "source %s built %s field as x slabs on %d ranks in %.3f s", name, "x".join(map(str, grid.shape)),
          comm.Get_size(), t1 - t0)
    delivered = plan.from_slabs(slab, slabs.x_ranges, consume=True)
    del slab
    t2 = time.perf_counter()
    _info(comm, "redistributed slabs into %s blocks in %.3f s", plan.dtype, t2 - t1)
    return _checked(comm, grid, delivered, info if rank == plan.root else None, check, tolerances, result, axes, t2,
                    "distributed")
