"""One-plane halo exchange between the blocks of an arbitrary tiling (mpi4py).

:func:`exchange_faces` gives every rank, for each axis, the plane just below and just above its
block, restricted to the block's extent along the other two axes. The blocks of all ranks are known
(allgathered by the caller), so the plane beyond a face may be assembled from pieces of several
ranks — no Cartesian topology is assumed. x and z are periodic; beyond a non-periodic boundary
(the walls in y) the plane is zero, the velocity of a no-slip wall. Used by the divergence and
periodic-seam checks of :mod:`cfdseed.constraints`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._collective import run_agreed

__all__ = ["exchange_faces"]

_TAG = 7301  # + 2 * axis + side; one message per (sender, receiver, axis, side)


def _face_index(block: np.ndarray, axis: int, side: int, n: int, periodic: bool) -> int | None:
    """Global index of the plane beyond face ``side`` (0 low, 1 high) of ``block`` along ``axis``."""
    g = int(block[axis, 0]) - 1 if side == 0 else int(block[axis, 1])
    if 0 <= g < n:
        return g
    return g % n if periodic else None


def _overlap(a: np.ndarray, b: np.ndarray, axis: int, g: int) -> tuple[slice, slice, slice] | None:
    """Global slices of plane ``g`` along ``axis`` inside block ``a``, restricted to ``b``'s other extents."""
    if not a[axis, 0] <= g < a[axis, 1]:
        return None
    sl = []
    for d in range(3):
        if d == axis:
            sl.append(slice(g, g + 1))
            continue
        lo, hi = max(a[d, 0], b[d, 0]), min(a[d, 1], b[d, 1])
        if lo >= hi:
            return None
        sl.append(slice(int(lo), int(hi)))
    return tuple(sl)  # type: ignore[return-value]


def _shift(sl: tuple[slice, slice, slice], origin: np.ndarray) -> tuple[slice, ...]:
    return tuple(slice(s.start - int(o), s.stop - int(o)) for s, o in zip(sl, origin))


def exchange_faces(
    comm: Any,
    blocks: Sequence[Sequence[Sequence[int]]],
    shape: Sequence[int],
    arrays: Sequence[np.ndarray],
    periodic: Sequence[bool] = (True, False, True),
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Collective: the neighbour planes of this rank's block along every axis.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        Communicator of the tiling (every rank calls).
    blocks : (size, 3, 2) integers
        ``blocks[r] = ((x0, x1), (y0, y1), (z0, z1))`` of every rank; they must tile ``shape``
        (see :func:`cfdseed.grid.check_tiling`); empty blocks take no part.
    shape : (nx, ny, nz)
        Global grid shape.
    arrays : sequence of ndarray
        This rank's components, each a (possibly strided) ``(x, y, z)`` view of the block, one dtype.
    periodic : 3 bools
        Periodicity per axis; beyond a non-periodic boundary the plane is zero.

    Returns
    -------
    list of 3 (lo, hi) pairs
        ``lo``/``hi`` along axis ``a`` have shape ``(ncomp, *local_shape)`` with 1 along ``a``
        (the ``(x, y, z)`` axes after the component axis): the planes at global index
        ``start - 1`` and ``stop`` of that axis.

    Every buffer is allocated before any message is posted, and an error there (memory) is raised
    on every rank, as are malformed arguments on any rank and ranks passing different ``blocks``,
    ``shape``, ``periodic``, numbers of components or dtypes (ValueError).
    """
    from mpi4py import MPI

    rank, size = comm.Get_rank(), comm.Get_size()
    parsed, err = None, None
    try:  # this rank's view of the call; compared below, so that no rank posts messages the others do not
        parsed = _parse(blocks, shape, arrays, periodic, size)
    except Exception as exc:  # noqa: BLE001 - re-raised on every rank by run_agreed below
        err = exc
    keys = comm.allgather(None if parsed is None else parsed[-1])  # None from the ranks that failed

    def buffers() -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple], list[tuple]]:
        """The planes, every receive buffer and every packed send buffer of this rank."""
        if err is not None:
            raise err
        _compare(keys)
        b, shp, per, ncomp, dtype, _ = parsed
        me = b[rank]
        active = [r for r in range(len(b)) if np.prod(b[r, :, 1] - b[r, :, 0]) > 0]
        lshape = me[:, 1] - me[:, 0]
        out: list[tuple[np.ndarray, np.ndarray]] = []
        for axis in range(3):
            pshape = (ncomp, *(1 if d == axis else int(lshape[d]) for d in range(3)))
            out.append((np.zeros(pshape, dtype), np.zeros(pshape, dtype)))
        recvs: list[tuple] = []  # (source, tag, buffer, plane, where in the plane)
        sends: list[tuple] = []  # (dest, tag, packed piece)
        if rank not in active:
            return out, recvs, sends
        for axis in range(3):
            for side in (0, 1):
                g = _face_index(me, axis, side, shp[axis], per[axis])
                if g is None:
                    continue
                for r in active:  # receive every piece of plane g that lies in another block
                    sl = _overlap(b[r], me, axis, g)
                    if sl is None:
                        continue
                    dest = list(_shift(sl, me[:, 0]))
                    dest[axis] = slice(0, 1)
                    buf = np.empty((ncomp, *(s.stop - s.start for s in sl)), dtype)
                    recvs.append((r, _TAG + 2 * axis + side, buf, out[axis][side], (slice(None), *dest)))
        for r in active:  # send every piece of my block that lies beyond a face of block r
            for axis in range(3):
                for side in (0, 1):
                    g = _face_index(b[r], axis, side, shp[axis], per[axis])
                    if g is None:
                        continue
                    sl = _overlap(me, b[r], axis, g)
                    if sl is None:
                        continue
                    local = _shift(sl, me[:, 0])
                    piece = np.empty((ncomp, *(s.stop - s.start for s in sl)), dtype)
                    for c, a in enumerate(arrays):
                        piece[c] = a[local]
                    sends.append((r, _TAG + 2 * axis + side, piece))
        return out, recvs, sends

    # agreed before any message is posted: a rank that cannot allocate must not leave its
    # neighbours waiting for its planes
    out, recvs, sends = run_agreed(comm, buffers)
    requests = [comm.Irecv(buf, source=r, tag=tag) for r, tag, buf, _, _ in recvs]
    requests += [comm.Isend(piece, dest=r, tag=tag) for r, tag, piece in sends]
    MPI.Request.Waitall(requests)
    for _, _, buf, plane, where in recvs:
        plane[where] = buf
    return out


def _parse(blocks: Any, shape: Any, arrays: Sequence[np.ndarray], periodic: Any,
           size: int) -> tuple[np.ndarray, tuple[int, ...], tuple[bool, ...], int, np.dtype, tuple]:
    """``(blocks (size, 3, 2), shape, periodic, ncomp, dtype, key)`` of one rank's arguments;
    ``key`` is what every rank must share (a digest of the blocks, not the blocks themselves)."""
    b = np.asarray(blocks, dtype=np.int64).reshape(-1, 3, 2)
    if len(b) != size:
        raise ValueError(f"blocks must hold one block per rank ({size}), got {len(b)}")
    shp = tuple(int(n) for n in shape)
    per = tuple(bool(p) for p in periodic)
    if len(shp) != 3 or len(per) != 3:
        raise ValueError(f"shape and periodic must have 3 entries (x, y, z), got {shape!r} and {periodic!r}")
    ncomp = len(arrays)
    dtype = np.result_type(*arrays) if ncomp else np.dtype(np.float64)
    key = (hashlib.sha256(b.tobytes()).hexdigest(), shp, per, ncomp, dtype.str)
    return b, shp, per, ncomp, dtype, key


def _compare(keys: list[Any]) -> None:
    """Raise a ValueError naming the first argument that differs between ranks (``keys[r]``: rank
    r's key from :func:`_parse`, None where that rank failed: its own error is raised instead)."""
    if None in keys:
        return
    for j, what in enumerate(("the blocks", "the shape", "periodic", "the number of components", "the dtype")):
        bad = [r for r, k in enumerate(keys) if k[j] != keys[0][j]]
        if not bad:
            continue
        if j == 0:  # a digest: nothing to show
            raise ValueError(f"ranks disagree on the blocks of exchange_faces: rank {bad[0]}'s differ from rank 0's")
        first, other = keys[0][j], keys[bad[0]][j]
        if j == 4:
            first, other = np.dtype(first), np.dtype(other)
        raise ValueError(f"ranks disagree on {what} of exchange_faces: rank 0 has {first}, rank {bad[0]} has {other}")
