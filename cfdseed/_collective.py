"""Error agreement for collective paths: no rank raises while the others wait.

Pattern::

    err = None
    try:
        ...  # work that may fail on some ranks only
    except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
        err = exc
    agree(comm, err)          # every rank raises the same exception, or none does

Where user code runs (a source, a callback), catch ``BaseException``: a ``SystemExit`` or
``KeyboardInterrupt`` on one rank is agreed like any error (:func:`run_agreed` does so), and the
rank where it happened raises it again unchanged, so it still ends that process.
"""

from __future__ import annotations

import contextlib
import sys
import time
import traceback
from collections.abc import Iterator
from typing import Any

from . import errors as _errors

__all__ = ["agree", "run_agreed", "abort_on_error", "idle_until"]

_BUILTIN = {t.__name__: t for t in (ValueError, TypeError, RuntimeError, KeyError, IndexError,
                                    FileNotFoundError, OSError, MemoryError, NotImplementedError,
                                    FloatingPointError, ZeroDivisionError, OverflowError)}
_ABORT_GRACE_S = 1.0  # seconds between the failing rank's traceback and MPI_Abort


def _rebuild(name: str, message: str) -> BaseException:
    cls = getattr(_errors, name, None) or _BUILTIN.get(name)
    if cls is None or not (isinstance(cls, type) and issubclass(cls, Exception)):
        return RuntimeError(f"{name}: {message}")
    try:
        return cls(message)
    except Exception:  # exotic constructor signature
        return RuntimeError(f"{name}: {message}")


def agree(comm: Any, error: BaseException | None) -> None:
    """Collective: if any rank passes an error, raise it (lowest failing rank's) on every rank.

    The failing rank re-raises its own exception object (traceback kept); the others raise an
    exception of the same type (cfdseed error or common builtin; otherwise ``RuntimeError``) with
    the message prefixed by the failing rank. A rank whose own error is not an ``Exception``
    (``SystemExit``, ``KeyboardInterrupt``) re-raises that one, whichever rank failed first: the
    agreement must not turn an exit or an interrupt into an error that the caller may catch.
    """
    flag = 0 if error is None else 1
    if comm.allreduce(flag) == 0:
        return
    rank = comm.Get_rank()
    first = comm.allreduce(rank if error is not None else comm.Get_size(), op=_min_op())
    payload = (type(error).__name__, str(error)) if rank == first else None
    name, message = comm.bcast(payload, root=first)
    if error is not None and (rank == first or not isinstance(error, Exception)):
        raise error
    if comm.Get_size() > 1:
        message = f"[rank {first}] {message}"
    raise _rebuild(name, message) from error


def idle_until(comm: Any, *, longest: float = 0.05) -> None:
    """Collective barrier that sleeps instead of spinning.

    A non-blocking barrier polled with growing sleeps (1 ms up to ``longest`` s): MPI libraries
    busy-poll in blocking collectives (MPICH, Open MPI), so ranks that arrive early would take the
    cores the rank still working could use (the root building a field with threaded FFTs and
    inference). Communicators without ``Ibarrier`` (the tests' fakes) return at once.
    """
    ibarrier = getattr(comm, "Ibarrier", None)
    if ibarrier is None:
        return
    req = ibarrier()
    pause = 0.001
    while not req.Test():
        time.sleep(pause)
        pause = min(2.0 * pause, longest)


def root_agreed(comm: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` on rank 0 alone, its result broadcast; its exception (any
    ``BaseException``, as :func:`run_agreed`) raised on every rank. The other ranks sleep meanwhile
    (:func:`idle_until`) instead of spinning on the cores the root works on."""
    out, err = None, None
    if comm.Get_rank() == 0:
        try:
            out = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised on every rank by agree
            err = exc
    idle_until(comm)
    agree(comm, err)
    return comm.bcast(out, root=0)


def run_agreed(comm: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn(*args, **kwargs)`` on every rank, then :func:`agree` on its exception (if any).

    Any ``BaseException`` is agreed: a ``SystemExit`` or ``KeyboardInterrupt`` in ``fn`` is raised
    unchanged where it happened, and as an error naming it on the other ranks.
    """
    err = None
    result = None
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - re-raised on every rank by agree
        err = exc
    agree(comm, err)
    return result


def _min_op() -> Any:
    from mpi4py import MPI

    return MPI.MIN


@contextlib.contextmanager
def abort_on_error(comm: Any, code: int = 1) -> Iterator[None]:
    """End the whole MPI job when the block raises on any rank, instead of leaving the other
    ranks waiting in their next collective call.

    For the solver's own code, where errors are not agreed between ranks::

        with cfdseed.abort_on_error(comm):
            grid = cfdseed.Grid.collective(comm, ...)
            cfdseed.init_field(comm, grid, ...)
            run_my_solver()          # a bug on one rank ends the job, with its traceback

    The failing rank prints its traceback (prefixed with its rank) to stderr and calls
    ``comm.Abort(code)``, which ends every process of the job. ``SystemExit(0)`` and
    ``KeyboardInterrupt`` on a single process are passed on unchanged. A ``comm`` without
    ``Get_rank``/``Get_size``/``Abort`` (None, a rank number) is a TypeError at entry: checked
    there, it cannot replace the block's own error later.
    """
    missing = [m for m in ("Get_rank", "Get_size", "Abort") if not callable(getattr(comm, m, None))]
    if missing:
        raise TypeError(f"abort_on_error needs an MPI communicator (e.g. MPI.COMM_WORLD), got {comm!r} "
                        f"(no {', '.join(missing)})")
    try:
        yield
    except SystemExit as exc:
        if exc.code in (None, 0):
            raise
        _abort(comm, code)
    except KeyboardInterrupt:
        if comm.Get_size() == 1:
            raise
        _abort(comm, code)
    except BaseException:  # noqa: BLE001 - every error ends the job
        _abort(comm, code)


def _abort(comm: Any, code: int) -> None:
    rank = comm.Get_rank()
    text = "".join(traceback.format_exc())
    # one write: the launcher forwards what it has read when Abort tears the job down, and a second
    # write was once lost that way under load (the traceback arrived, the abort line did not)
    sys.stderr.write("".join(f"[rank {rank}] {line}\n" for line in text.splitlines())
                     + f"[rank {rank}] cfdseed.abort_on_error: aborting the MPI job (code {code})\n")
    sys.stderr.flush()
    # the launcher reads the pipe asynchronously; Abort can end the job before it has read the
    # write above (a CI run under load got an empty stderr), so give it a moment: a failing job
    # ends ~1 s later, and nothing waits on a job that is being torn down
    time.sleep(_ABORT_GRACE_S)
    comm.Abort(code)
