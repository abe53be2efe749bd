"""The collective entry points a solver calls: :func:`init_field` and (re-exported) :func:`check_field`.

``init_field`` validates everything on every rank and agrees (:mod:`cfdseed._collective`), runs the
source on the root only, validates its output there, agrees again, streams the field into every
rank's block (:mod:`cfdseed.transport`) and checks the delivered blocks
(:func:`cfdseed.constraints.check_field`). Any failure before the transfer raises the same error on
every rank and leaves ``out`` untouched. With ``result=True`` it returns an :class:`InitResult`:
the delivered blocks together with the report of those checks, so a solver need not run
``check_field`` again. Logs carry ``rank/size``; ranks > 0 log only warnings.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._collective import agree, idle_until
from .constraints import ConstraintReport, Tolerances, check_field
from .errors import ConfigError, ConstraintError, SourceError
from .grid import Grid
from .sources import SourceFn, SourceInfo, build, resolve
from .transport import DEFAULT_CHUNK_BYTES, prepare

__all__ = ["init_field", "check_field", "InitResult"]

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


def _run_source(fn: SourceFn, name: str, grid: Grid, seed: Any,
                check: Any) -> tuple[np.ndarray | None, SourceInfo | None, Exception | None]:
    """Root: run the source and validate its field; (field, info, None) or (None, None, SourceError)."""
    try:
        rng = np.random.default_rng(seed)
        built = build(fn, grid.global_grid(), rng)
    except Exception as exc:  # noqa: BLE001 - reported on every rank as SourceError
        err = SourceError(f"source {name} raised {type(exc).__name__}: {exc}")
        err.__cause__ = exc
        return None, None, err
    field = built.field
    err = check(field, SourceError)
    if err is None:
        # NaN/Inf propagate through min/max: a finite check without a field-sized boolean temporary
        lo, hi = float(np.min(field)), float(np.max(field))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            bad = int(np.count_nonzero(~np.isfinite(field)))
            err = SourceError(f"source returned {bad} non-finite value(s) (NaN or Inf) in a field of {field.size}")
    return (None, None, err) if err is not None else (field, built.info, None)


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
        Seed of ``np.random.default_rng`` handed to the source (root only); None: fresh entropy.
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

    Returns
    -------
    ndarray (3, ...) or tuple, or InitResult
        ``out`` (filled) when given, else this rank's block as a new array ``(3, *local shape)`` in
        ``axes`` order; with ``result=True`` that as ``InitResult.field``, with the report.

    Raises
    ------
    TransportError, GridError, DecompositionError
        Bad ``out``/``axes``/``dtype``/``root``, ranks disagreeing on the grid, blocks that do not
        tile it, a grid decomposed for another number of ranks. Nothing is written.
    SourceError
        Unknown source or bad options, or the source raised, returned a non-array, the wrong shape
        or dtype, or NaN/Inf on the root. Nothing is written.
    ConstraintError
        ``check=True`` and the delivered field violates a tolerance; ``exc.report`` holds the
        :class:`~cfdseed.constraints.ConstraintReport` (the field has been delivered).

    All errors are raised on every rank.
    """
    t0 = time.perf_counter()
    err: Exception | None = None
    try:
        if tolerances is not None and not isinstance(tolerances, Tolerances):
            raise ConfigError(f"tolerances must be a cfdseed.constraints.Tolerances, got {type(tolerances).__name__}")
        if not (isinstance(source, str) or callable(source)):
            raise SourceError(f"source must be a registered name or a callable (grid, rng) -> field, "
                              f"got {type(source).__name__}")
    except Exception as exc:  # noqa: BLE001 - re-raised on every rank by agree
        err = exc
    agree(comm, err)
    plan = prepare(comm, grid, root=root, out=out, axes=axes, dtype=dtype, chunk_bytes=chunk_bytes)
    rank = comm.Get_rank()

    field: np.ndarray | None = None
    info: SourceInfo | None = None
    err = None
    name = source if isinstance(source, str) else getattr(source, "__name__", type(source).__name__)
    if plan.is_root:
        try:
            fn = resolve(source, options)
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank by agree
            err = exc if isinstance(exc, SourceError) else SourceError(f"{type(exc).__name__}: {exc}")
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

    report = None
    if check:
        report = check_field(comm, grid, delivered, axes=axes, tolerances=tolerances)
        _info(comm, "constraint checks in %.3f s: %s", time.perf_counter() - t2,
              "passed" if report.passed else "FAILED")
        if not report.passed:
            raise ConstraintError(str(report), report)
    return InitResult(delivered, report, info) if result else delivered
