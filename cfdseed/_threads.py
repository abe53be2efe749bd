"""Threads of cfdseed's own numerics on a node whose cores the solver's ranks share.

scipy.fft's ``workers=-1`` starts ``os.cpu_count()`` threads, torch's intra-op pool and OpenBLAS
(numpy's and scipy's products and solves) one per CPU of the process (or ``OMP_NUM_THREADS``). On
the distributed path every rank builds its slab at once: P unbound ranks on a node of C cores would
run P × C threads. Inside :func:`node_share` (``Source.build_slabs``) each rank uses its share of
its node's CPUs instead: every CPU of its affinity mask counts 1 / (the number of the node's ranks
whose masks hold it), so unbound ranks split the node and ranks bound to their own cores keep them;
torch and BLAS are only ever capped there (a user's ``OMP_NUM_THREADS=1`` stays), and restored
afterwards. Work one rank does while the others sleep (a conditional model's rollout) borrows the
node's CPUs (:func:`solo`), as the root path does.
On the root path (:func:`root_build`) the root builds while every other rank sleeps: a root with
other ranks on its node borrows their CPUs (its threads' affinity widened to the union of their masks,
where the OS allows) and sets torch, BLAS and the FFTs to that many threads, whatever
``OMP_NUM_THREADS`` says for the solver; its masks and settings come back afterwards. Outside a
build the transforms use the CPUs this process may run on.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["cpus", "share_of", "fft_workers", "apply_torch", "node_share", "solo", "root_build"]

log = logging.getLogger(__name__)
_share: int | None = None  # this rank's threads inside node_share, else None
_torch_restore: int | None = None  # torch's thread count before apply_torch changed it
_raise = False  # borrowing: torch and BLAS set to _share even above their own setting
_node: list[list[int] | None] = []  # inside node_share: the affinity masks of the node's ranks


def _mask() -> list[int] | None:
    """The calling thread's affinity mask (the threads it starts inherit it), None without masks."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # no affinity masks (macOS)
        return None


def cpus() -> int:
    """The CPUs the calling thread may run on (its affinity mask, which the threads it starts
    inherit; ``os.cpu_count()`` where there are no masks)."""
    mask = _mask()
    return len(mask) if mask else (os.cpu_count() or 1)


def share_of(mine: Sequence[int] | None, masks: Sequence[Sequence[int] | None]) -> int:
    """Threads of a rank with affinity ``mine`` among a node's ranks with ``masks`` (its own
    included): each of its CPUs counts 1 / the number of masks holding it; at least 1. Without
    masks (None): ``os.cpu_count()`` split evenly."""
    if mine is None:
        return max(1, (os.cpu_count() or 1) // len(masks))
    count = Counter(c for m in masks if m for c in m)
    return max(1, int(sum(1.0 / count[c] for c in mine if count[c]) + 1e-9))


def fft_workers() -> int:
    """scipy.fft ``workers`` for cfdseed's transforms: the rank's share inside :func:`node_share`,
    else :func:`cpus`."""
    return _share or cpus()


def apply_torch() -> None:
    """Inside :func:`node_share`: lower torch's intra-op threads to the share; where the node's CPUs
    are borrowed (:func:`root_build`, :func:`solo`): set them to their count. Call it once torch is
    imported; the context restores them. Outside, or already done: nothing."""
    global _torch_restore
    if _share is None or _torch_restore is not None:
        return
    import torch

    n = torch.get_num_threads()
    if n > _share or (_raise and n != _share):
        _torch_restore = n
        torch.set_num_threads(_share)


def _node_masks(comm: Any) -> tuple[list[int] | None, list[list[int] | None]]:
    """Collective over ``comm``: this rank's affinity mask and those of its node's ranks (its own
    included; None where there are no masks)."""
    from mpi4py import MPI

    mine = _mask()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        masks = node.allgather(mine)
    finally:
        node.Free()
    return mine, masks


def _cap_blas(share: int, exact: bool = False) -> Any:
    """The BLAS libraries loaded in this process (threadpoolctl) lowered to ``share`` threads where
    they have more (``exact``: set to it); the limiter to restore them, or None. A cap that fails is
    skipped with a warning: raising here, on one rank, would leave the others in the build's next
    collective."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits

        over = {i["prefix"] for i in threadpool_info() if i["user_api"] == "blas"
                and (i["num_threads"] > share or (exact and i["num_threads"] != share))}
        return threadpool_limits(limits={p: share for p in over}) if over else None
    except Exception as exc:  # noqa: BLE001 - an optimisation, never a failure of the build
        log.warning("BLAS threads not set (%s: %s)", type(exc).__name__, exc)
        return None


@contextmanager
def _setting(share: int | None = None, masks: Sequence[Sequence[int]] | None = None) -> Iterator[int]:
    """Within the block torch, BLAS and the FFTs run on at most ``share`` threads (only lowered) or,
    with ``masks``, on exactly as many as the CPUs of their union, this process's threads borrowing
    them; afterwards everything is back. Yields the count. No step raises: a
    failure on one rank inside a build would leave the others in its next collective, so a step
    that fails is skipped with a warning (the thread counts, not the field, are at stake)."""
    global _share, _torch_restore, _raise
    outer = (_share, _torch_restore, _raise)
    saved, blas, exact = None, None, masks is not None
    try:
        if exact:
            saved = _guarded("CPUs not borrowed", _widen, masks)
        n = cpus() if exact else share
        _share, _torch_restore, _raise = n, None, exact
        blas = _cap_blas(n, exact=exact)
        if "torch" in sys.modules:
            _guarded("torch threads not set", apply_torch)
        yield n
    finally:
        if _torch_restore is not None:
            _guarded("torch threads not restored", sys.modules["torch"].set_num_threads, _torch_restore)
        if blas is not None:
            _guarded("BLAS threads not restored", blas.restore_original_limits)
        if saved is not None:
            _guarded("CPU affinity not restored", _restore, saved)
        _share, _torch_restore, _raise = outer


def _guarded(what: str, fn: Any, *args: Any) -> Any:
    """``fn(*args)``, or None with a warning naming ``what`` when it raises."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - an optimisation, never a failure of the build
        log.warning("%s (%s: %s)", what, type(exc).__name__, exc)
        return None


@contextmanager
def node_share(comm: Any) -> Iterator[int]:
    """Collective: within the block, cfdseed's transforms, torch and BLAS use this rank's share of
    its node's CPUs (module docstring); yields the share."""
    global _node
    mine, masks = _node_masks(comm)
    outer, _node = _node, masks
    try:
        with _setting(share_of(mine, masks)) as n:
            yield n
    finally:
        _node = outer


@contextmanager
def solo() -> Iterator[None]:
    """Within :func:`node_share`, for work this rank does while the node's other ranks sleep (a
    rollout): the node's CPUs borrowed as :func:`root_build` borrows them, the share again after.
    Outside, or alone on its node: nothing."""
    if _share is None or len(_node) < 2:
        yield
        return
    with _setting(masks=[m for m in _node if m]):
        yield


def _tasks() -> list[int]:
    """The thread ids of this process (Linux ``/proc``; elsewhere the calling thread only)."""
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


def _widen(masks: Sequence[Sequence[int]]) -> dict[int, set[int]] | None:
    """Every thread of this process onto the union of ``masks`` where that is more than the calling
    thread's own mask: the threads' masks before, to :func:`_restore`; None when nothing changed
    (no affinity masks, nothing to borrow, or the OS refused: the build runs on the own mask)."""
    own = _mask()
    union = set().union(*map(set, masks))
    if own is None or union <= set(own):
        return None
    saved: dict[int, set[int]] = {-1: set(own)}  # -1: what threads started meanwhile return to
    try:
        for tid in _tasks():
            try:
                saved[tid] = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, union)
            except ProcessLookupError:  # the thread ended meanwhile
                continue
    except OSError as exc:  # a cpuset narrower than the ranks' masks
        log.info("the build stays on this rank's own CPUs (%s)", exc)
        _restore(saved)
        return None
    except BaseException:  # an interrupt part-way: no thread keeps the borrowed CPUs
        _restore(saved)
        raise
    return saved


def _restore(saved: dict[int, set[int]]) -> None:
    """The masks :func:`_widen` saved back on the threads that had them; threads started since, the
    calling thread's own."""
    for tid in _tasks():
        mask = saved.get(tid, saved.get(-1))
        if mask is None:
            continue
        try:
            os.sched_setaffinity(tid, mask)
        except OSError:  # ended meanwhile
            continue


@contextmanager
def root_build(comm: Any, root: int) -> Iterator[int | None]:
    """Collective: a build that ``root`` runs while every other rank sleeps (``init_field``'s root
    path, ``cfdseed generate``). On the root the block runs on the CPUs of every rank of its node
    (module docstring) with torch, BLAS and the FFTs on that many threads; afterwards its masks and
    thread settings are back. A root alone on its node keeps its own setting. Yields the count on a
    root that borrowed, None elsewhere."""
    _, masks = _node_masks(comm)
    if comm.Get_rank() != root or len(masks) < 2:  # alone on its node: nothing to borrow, its own setting
        yield None
        return
    with _setting(masks=[m for m in masks if m]) as n:
        yield n
