"""Root -> blocks transport of a global velocity field (mpi4py): streaming scatter and test gather.

:func:`scatter` sends every rank exactly its block of a field ``(3, nx, ny, nz)`` held by the
root. The blocks of all ranks are allgathered and validated (:func:`cfdseed.grid.agree_grid`),
so any tiling works, Cartesian or not. The field is streamed in streamwise chunks (:func:`plan_chunks`):
for each chunk the root sends every other rank its piece, one message per component (``Isend`` on a
duplicate of the communicator), straight from the field where the piece is contiguous, else packed
into one buffer of at most ``chunk_bytes``; each rank receives straight into its own arrays where
the destination is contiguous, else through a one-chunk buffer (any axis order, any memory order,
one array ``(3, ...)`` or a tuple ``(u, v, w)``). So the root holds the global field plus at most
one chunk, non-root ranks at most one chunk piece besides their own arrays, and every MPI message
count stays below ``2**31 - 1`` elements however large the field is.

Every argument is validated on every rank and agreed (:func:`cfdseed._collective.agree`, the grid
by :func:`cfdseed.grid.agree_grid`) before the first byte moves: on error all ranks raise the same
exception and ``out`` is untouched. :func:`block_views` is the one reader of a rank's block as
given by a solver (also for :func:`cfdseed.constraints.check_field`).
Usage is split in two for callers that produce the field between validation and transfer
(:mod:`cfdseed.coupling`): :func:`prepare` then :meth:`ScatterPlan.send`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._collective import agree, run_agreed
from .errors import DecompositionError, GridError, TransportError
from .grid import Grid, agree_grid

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "MAX_COUNT",
    "ScatterPlan",
    "plan_chunks",
    "prepare",
    "scatter",
    "gather",
    "block_views",
    "alltoallv",
]

log = logging.getLogger(__name__)

#: Default bound on the root's packed send buffer (one streamwise chunk), in bytes.
DEFAULT_CHUNK_BYTES = 32 * 2**20
#: Largest element count of one MPI message (the C ``int`` limit of MPI counts).
MAX_COUNT = 2**31 - 1
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_GATHER_TAG = 7411
#: Bytes of one component of a slab :meth:`ScatterPlan.from_slabs` sends per all-to-all round (at
#: most; its send and receive buffers).
SLAB_ROUND_BYTES = 8 * 2**20
#: Smallest plane worth its own message (see :func:`_messages`).
_PLANE_MESSAGE_BYTES = 2**20

Box = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


# -- pure helpers (no MPI) ------------------------------------------------------------------
def plan_chunks(shape: Sequence[int], max_elements: int, ncomp: int = 3) -> list[Box]:
    """Split the global grid into streamwise chunks of at most ``max_elements`` values.

    A chunk is a box ``((x0, x1), (y0, y1), (0, nz))`` holding ``ncomp * (x1-x0) * (y1-y0) * nz``
    values. Whole x-planes are grouped while they fit; a single plane larger than the limit is
    split along y. The chunks cover the grid exactly once, in memory order of a C ``(nx, ny, nz)``
    array.

    Parameters
    ----------
    shape : (nx, ny, nz)
        Global grid shape.
    max_elements : int
        Largest number of values (all components) in one chunk; at least ``ncomp * nz``.
    ncomp : int, default 3
        Number of velocity components carried per point.

    Raises
    ------
    TransportError
        ``max_elements`` smaller than one row ``ncomp * nz``.
    """
    nx, ny, nz = (int(n) for n in shape)
    row = ncomp * nz
    if max_elements < row:
        raise TransportError(
            f"a chunk of {max_elements} values cannot hold one row of {row} values (3 x nz={nz}); "
            f"raise chunk_bytes"
        )
    plane = row * ny
    if plane <= max_elements:
        cx = max_elements // plane
        return [((x, min(x + cx, nx)), (0, ny), (0, nz)) for x in range(0, nx, cx)]
    cy = max_elements // row
    return [((x, x + 1), (y, min(y + cy, ny)), (0, nz)) for x in range(nx) for y in range(0, ny, cy)]


def _intersect(blocks: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """Lower corners ``(R, 3)`` and extents ``(R, 3)`` of every block inside ``box`` (extent 0: none)."""
    b = np.asarray(box, dtype=np.int64)
    lo = np.maximum(blocks[:, :, 0], b[:, 0])
    ext = np.clip(np.minimum(blocks[:, :, 1], b[:, 1]) - lo, 0, None)
    ext[(ext == 0).any(axis=1)] = 0
    return lo, ext


def _check_axes(axes: Any) -> tuple[int, int, int]:
    """``perm`` with ``array.transpose(perm)`` in (x, y, z) order for an array stored in ``axes`` order."""
    if not isinstance(axes, str) or sorted(axes) != ["x", "y", "z"]:
        raise TransportError(f"axes must be a permutation of 'xyz' (e.g. 'xyz', 'xzy', 'zyx'), got {axes!r}")
    return tuple(axes.index(a) for a in "xyz")  # type: ignore[return-value]


def block_views(local: Any, axes: str, shape: Sequence[int], *, writable: bool = False,
                what: str = "out") -> tuple[list[np.ndarray], np.dtype]:
    """(x, y, z)-ordered views (no copies) of a block given as ``(3, ...)`` array or ``(u, v, w)``.

    Parameters
    ----------
    local : ndarray (3, ...) or sequence of 3 ndarrays
        Components with their axes in the order ``axes``; float32 or float64, one dtype.
    axes : str
        Permutation of ``"xyz"``.
    shape : (sx, sy, sz)
        Expected block shape in (x, y, z) order.
    writable : bool
        Require writable arrays whose components do not share memory.

    Raises
    ------
    TransportError
        Anything not matching, with the offending and the expected values.
    """
    perm = _check_axes(axes)
    want = tuple(int(shape[p]) for p in ("xyz".index(a) for a in axes))
    if isinstance(local, np.ndarray):
        if local.shape != (3, *want):
            raise TransportError(f"{what} has shape {local.shape}; expected (3, ...) = {(3, *want)} (axes {axes!r}, "
                                 f"block {tuple(shape)} in x, y, z)")
        comps = list(local)
    elif isinstance(local, (tuple, list)) and len(local) == 3:
        comps = list(local)
        for name, c in zip("uvw", comps):
            if not isinstance(c, np.ndarray):
                raise TransportError(f"{what} component {name} must be a numpy array, got {type(c).__name__}")
            if c.shape != want:
                raise TransportError(f"{what} component {name} has shape {c.shape}; expected {want} "
                                     f"(axes {axes!r}, block {tuple(shape)} in x, y, z)")
    else:
        raise TransportError(f"{what} must be an ndarray (3, ...) or a tuple (u, v, w) of ndarrays, "
                             f"got {type(local).__name__}")
    dtypes = {c.dtype for c in comps}
    if len(dtypes) > 1:
        raise TransportError(f"{what} components must share one dtype, got {[str(c.dtype) for c in comps]}")
    dtype = comps[0].dtype
    if dtype not in _FLOATS:
        raise TransportError(f"{what} has dtype {dtype}; allowed: float32, float64")
    if writable:
        for name, c in zip("uvw", comps):
            if not c.flags.writeable:
                raise TransportError(f"{what} component {name} is read-only")
        for i in range(3):
            for j in range(i + 1, 3):
                if comps[i].size and _overlaps(comps[i], comps[j]):
                    raise TransportError(f"{what} components {'uvw'[i]} and {'uvw'[j]} share memory")
    return [c.transpose(perm) for c in comps], dtype


def _overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    try:
        return bool(np.shares_memory(a, b, max_work=10**5))
    except np.exceptions.TooHardError:  # interleaved layouts too costly to prove disjoint
        return False


# -- collective ------------------------------------------------------------------------------
@dataclass
class ScatterPlan:
    """Validated, agreed transfer set-up (from :func:`prepare`); :meth:`send` moves the field."""

    comm: Any
    grid: Grid
    root: int
    dtype: np.dtype
    blocks: np.ndarray  #: (size, 3, 2) [start, stop) of every rank's block
    chunks: list[Box]
    result: Any  #: what :meth:`send` returns: ``out`` or the new array
    views: list[np.ndarray]  #: (x, y, z)-ordered views of this rank's u, v, w

    @property
    def is_root(self) -> bool:
        """True on the root rank."""
        return self.comm.Get_rank() == self.root

    def field_error(self, field: Any, error: type[Exception] = TransportError) -> Exception | None:
        """Root only: the error (not raised) if ``field`` is not a float array ``(3, nx, ny, nz)``."""
        want = (3, *self.grid.shape)
        if not isinstance(field, np.ndarray):
            return error(f"the global field must be a numpy array {want}, got {type(field).__name__}")
        if field.shape != want:
            return error(f"the global field has shape {field.shape}; expected {want} (3, nx, ny, nz)")
        if field.dtype not in _FLOATS:
            return error(f"the global field has dtype {field.dtype}; allowed: float32, float64")
        beyond = _beyond(field, self.dtype)
        if beyond:
            return error(f"the global field {beyond}")
        return None

    def send(self, field: np.ndarray | None) -> Any:
        """Collective: deliver ``field`` (root; ignored elsewhere, pass None) into every rank's block.

        The field must have passed :meth:`field_error` (agreed). Returns ``out`` or the new array.
        Per chunk, the root sends each other rank its piece per component, as one message or plane
        by plane (:func:`_messages`): straight from the field where a message is contiguous and
        needs no cast, else packed into the chunk buffer
        (packing measured several times faster than MPI subarray datatypes with the PyPI MPICH);
        a rank receives straight into its array where the destination is contiguous, else into a
        buffer it then copies from.
        """
        from mpi4py import MPI

        rank, root = self.comm.Get_rank(), self.root
        mpitype = MPI.FLOAT if self.dtype == np.float32 else MPI.DOUBLE
        own = self.blocks[rank, :, 0]
        steps = [_intersect(self.blocks, box) for box in self.chunks]
        vols = [np.prod(ext, axis=1) for _, ext in steps]  # (size,) points per rank and chunk
        # the one thing that can fail once the plan is agreed is memory: every buffer is
        # allocated, and the allocation agreed, before the first message moves
        buf, err = None, None
        try:
            buf = self._buffer(field, steps, vols, own)
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank by agree
            err = exc
        agree(self.comm, err)
        comm = self.comm.Dup()  # private context: the solver's own messages cannot match ours
        try:
            # a cast to float32 must not raise mid-transfer on the root alone (np.seterr, warnings as
            # errors): values beyond float32 were refused by field_error; non-finite ones pass as such
            with np.errstate(all="ignore"):
                if rank == root:
                    nmsg = self._send_root(comm, field, steps, vols, mpitype, buf)
                else:
                    nmsg = self._receive(comm, steps, vols, mpitype, own, buf)
        finally:
            comm.Free()
        log.debug("rank %d/%d: scatter done in %d chunk(s), %d message(s)",
                  rank, self.comm.Get_size(), len(self.chunks), nmsg)
        return self.result

    def _buffer(self, field: np.ndarray | None, steps: list, vols: list, own: np.ndarray) -> np.ndarray | None:
        """The one chunk buffer this rank needs (None if none): on the root for the messages that
        must be packed (a cast or odd strides), elsewhere for destinations that are not contiguous."""
        rank, root = self.comm.Get_rank(), self.root
        shape, item = self.grid.shape, self.dtype.itemsize
        need = False
        for lo, ext in steps:
            if rank == root:
                for r in range(len(ext)):
                    if r == root or not np.prod(ext[r]):
                        continue
                    need = need or any(not (field.dtype == self.dtype and field[c][_slices(mlo, mext)].flags.c_contiguous)
                                       for c in range(3) for mlo, mext in _messages(lo[r], ext[r], shape, item))
            elif np.prod(ext[rank]):
                need = need or any(not v[_slices(mlo - own, mext)].flags.c_contiguous
                                   for v in self.views for mlo, mext in _messages(lo[rank], ext[rank], shape, item))
            if need:
                break
        if not need:
            return None
        if rank == root:
            return _allocate(3 * max(int(v.sum() - v[root]) for v in vols), self.dtype)
        return _allocate(3 * max(int(v[rank]) for v in vols), self.dtype)

    def _send_root(self, comm: Any, field: np.ndarray, steps: list, vols: list, mpitype: Any,
                   sendbuf: np.ndarray | None) -> int:
        from mpi4py import MPI

        root, own = self.root, self.blocks[self.root, :, 0]
        direct = field.dtype == self.dtype
        nmsg, prev = 0, []  # prev: the sends of the previous chunk, still in flight
        for (lo, ext), vol in zip(steps, vols):
            others = [r for r in np.nonzero(vol)[0] if r != root]
            reqs, off = [], 0
            for r in others:
                for c in range(3):
                    for mlo, mext in _messages(lo[r], ext[r], self.grid.shape, self.dtype.itemsize):
                        src = field[c][_slices(mlo, mext)]
                        if not (direct and src.flags.c_contiguous):  # cast or odd strides: pack
                            if off == 0:  # the previous chunk's sends may still read the buffer
                                MPI.Request.Waitall(prev)
                            packed = sendbuf[off : off + src.size].reshape(src.shape)
                            np.copyto(packed, src, casting="same_kind")
                            off += src.size
                            src = packed
                        reqs.append(comm.Isend([src, mpitype], dest=int(r), tag=c))
            if vol[root]:  # the root's own piece, copied while the others receive
                self._put(field[(slice(None), *_slices(lo[root], ext[root]))], lo[root] - own)
            MPI.Request.Waitall(prev)  # two chunks in flight at most
            nmsg, prev = nmsg + len(reqs), reqs
        MPI.Request.Waitall(prev)
        return nmsg

    def _receive(self, comm: Any, steps: list, vols: list, mpitype: Any, own: np.ndarray,
                 recvbuf: np.ndarray | None) -> int:
        from mpi4py import MPI

        rank, root = self.comm.Get_rank(), self.root
        nmsg = 0
        for (lo, ext), vol in zip(steps, vols):
            if not vol[rank]:
                continue
            reqs, pending, off = [], [], 0
            for c, view in enumerate(self.views):
                for mlo, mext in _messages(lo[rank], ext[rank], self.grid.shape, self.dtype.itemsize):
                    dst = view[_slices(mlo - own, mext)]
                    if not dst.flags.c_contiguous:
                        buf = recvbuf[off : off + dst.size].reshape(dst.shape)
                        off += dst.size
                        pending.append((dst, buf))
                        dst = buf
                    reqs.append(comm.Irecv([dst, mpitype], source=root, tag=c))
            MPI.Request.Waitall(reqs)
            for dst, buf in pending:
                dst[...] = buf
            nmsg += len(reqs)
        return nmsg

    def from_slabs(self, slab: np.ndarray, x_ranges: Sequence[slice], *, consume: bool = False) -> Any:
        """Collective: deliver a field held as x slabs (rank r: ``x_ranges[r]``, every y and z) into
        every rank's block; returns what :meth:`send` returns. All-to-alls of the overlaps of slabs
        and blocks (float64 on the wire), one component and one block of x planes of every overlap
        per round (:data:`SLAB_ROUND_BYTES`): no rank holds more than its slab, its block and the
        buffers of one round. ``consume``: the slab is dead afterwards, and each component's pages
        are given back once it is sent (:func:`cfdseed._memory.discard`). A slab that is not a real
        array ``(3, x_ranges[rank], ny, nz)``, or holds finite values beyond the range of the
        delivered dtype, is a TransportError on every rank before anything moves."""
        from ._memory import discard
        from mpi4py import MPI

        from .grid import block_split

        comm, size, rank = self.comm, self.comm.Get_size(), self.comm.Get_rank()
        nx, ny, nz = self.grid.shape

        def check() -> list[np.ndarray]:
            """The slabs' boxes, once this rank's slab is known to fit them and ``dtype``."""
            if len(x_ranges) != size or not all(isinstance(x, slice) for x in x_ranges):
                raise TransportError(f"x_ranges must be {size} slices (one per rank), got {x_ranges!r}")
            boxes = [np.array([[x.start, x.stop], [0, ny], [0, nz]]) for x in x_ranges]
            want = (3, int(boxes[rank][0, 1] - boxes[rank][0, 0]), ny, nz)
            if not (isinstance(slab, np.ndarray) and slab.dtype.kind in "iuf"):
                raise TransportError(f"the x slab must be a real numpy array {want}, got {type(slab).__name__} "
                                     f"{getattr(slab, 'dtype', '')}")
            if slab.shape != want:
                raise TransportError(f"the x slab on rank {rank} has shape {slab.shape}; expected {want} "
                                     f"(3, x_ranges[{rank}], ny, nz)")
            beyond = _beyond(slab, self.dtype)
            if beyond:
                raise TransportError(f"the x slab on rank {rank} {beyond}")
            return boxes

        boxes = run_agreed(comm, check)
        mine = boxes[rank]
        lo_out, ext_out = _intersect(self.blocks, mine)  # pieces of my slab for every rank
        lo_in, ext_in = _intersect(np.stack(boxes), self.blocks[rank])  # pieces of my block from every rank
        own = self.blocks[rank, :, 0]
        nxl = int(mine[0, 1] - mine[0, 0])
        rounds = comm.allreduce(min(max(nxl, 1), max(1, -(-8 * nxl * ny * nz // SLAB_ROUND_BYTES))), op=MPI.MAX)

        def part(lo: np.ndarray, ext: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
            """Round i's x planes of the overlap (lo, ext): the same split on both sides."""
            if not ext.all():
                return lo, np.zeros(3, dtype=np.int64)
            xs = block_split(int(ext[0]), rounds, i)
            return lo + np.array([xs.start, 0, 0]), np.array([xs.stop - xs.start, ext[1], ext[2]])

        for c in range(3):
            for i in range(rounds):
                outs = [part(lo_out[q], ext_out[q], i) for q in range(size)]
                ins = [part(lo_in[q], ext_in[q], i) for q in range(size)]
                got = alltoallv(comm, [slab[(c, *_slices(lo - mine[:, 0], ext))] for lo, ext in outs],
                                [int(np.prod(e)) for _, e in ins], np.float64)
                with np.errstate(all="ignore"):  # checked above: no cast may raise here on one rank alone
                    for (lo, ext), piece in zip(ins, got):
                        if piece.size:
                            dst = self.views[c][_slices(lo - own, ext)]
                            np.copyto(dst, piece.reshape(ext), casting="same_kind")
                del got
            if consume:
                discard(slab[c])
        return self.result

    def _put(self, piece: np.ndarray, start: np.ndarray) -> None:
        """Copy ``piece`` (3, ex, ey, ez) into this rank's views at block offset ``start``."""
        sl = _slices(start, piece.shape[1:])
        for view, comp in zip(self.views, piece):
            np.copyto(view[sl], comp, casting="same_kind")


def alltoallv(comm: Any, pieces: Sequence[np.ndarray], counts: Sequence[int] | None, dtype: Any) -> list[np.ndarray]:
    """Collective all-to-all: ``pieces[q]`` (any arrays or views, cast to ``dtype``) goes to rank q,
    packed straight into one send buffer; returns the flat piece received from every rank (views of
    one receive buffer). ``counts``: the element counts to receive from every rank, or None to
    exchange them first (one more all-to-all). An error allocating or packing the buffers is
    raised on every rank."""
    from mpi4py.util.dtlib import from_numpy_dtype

    dt = np.dtype(dtype)
    scounts = np.array([p.size for p in pieces], dtype=np.int64)
    if counts is None:
        rcounts = np.empty(comm.Get_size(), dtype=np.int64)
        comm.Alltoall(scounts, rcounts)
    else:
        rcounts = np.asarray(counts, dtype=np.int64)
    sdis = np.concatenate([[0], np.cumsum(scounts)[:-1]]).astype(np.int64)
    rdis = np.concatenate([[0], np.cumsum(rcounts)[:-1]]).astype(np.int64)

    def buffers() -> tuple[np.ndarray, np.ndarray]:
        send = _allocate(int(scounts.sum()), dt)
        for p, d in zip(pieces, sdis):
            send[d:d + p.size].reshape(p.shape)[...] = p
        return send, _allocate(int(rcounts.sum()), dt)
    # agreed: a rank that cannot allocate or pack must not leave the others waiting in Alltoallv
    send, recv = run_agreed(comm, buffers)
    mpitype = from_numpy_dtype(dt)
    comm.Alltoallv([send, scounts, sdis, mpitype], [recv, rcounts, rdis, mpitype])
    return [recv[d:d + n] for d, n in zip(rdis, rcounts)]


def _allocate(n: int, dtype: np.dtype) -> np.ndarray:
    """A transport buffer of ``n`` elements (its own function: fault-injection tests patch it)."""
    return np.empty(n, dtype)


def _messages(lo: np.ndarray, ext: np.ndarray, shape: Sequence[int],
              itemsize: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sub-boxes ``(lo, ext)`` of one piece sent as separate messages (per component).

    Decided from the geometry alone, so sender and receiver agree: a piece that spans whole
    z-lines but not whole x-planes, with at least :data:`_PLANE_MESSAGE_BYTES` per plane, is sent
    plane by plane (each plane is contiguous in a C-ordered field, so the root needs no packing
    copy; smaller planes cost more in per-message overhead than the copy); any other piece is one
    message.
    """
    big = ext[1] * ext[2] * itemsize >= _PLANE_MESSAGE_BYTES
    if ext[2] == shape[2] and ext[1] != shape[1] and ext[0] > 1 and big:
        step = np.array([1, 0, 0])
        one = np.array([1, ext[1], ext[2]])
        return [(lo + i * step, one) for i in range(int(ext[0]))]
    return [(lo, ext)]


def _beyond(a: np.ndarray, dtype: np.dtype) -> str | None:
    """What is wrong with casting ``a`` to a narrower ``dtype`` (finite values beyond its range), or None.

    From min and max: no array-sized temporary. Non-finite values are the callers' own checks
    (they cast to themselves), and hide the range: the casts are done under ``np.errstate``.
    """
    if a.dtype.itemsize <= dtype.itemsize or not a.size:
        return None
    lo, hi = float(np.min(a)), float(np.max(a))
    big = float(np.finfo(dtype).max)
    if math.isfinite(lo) and math.isfinite(hi) and max(-lo, hi) > big:
        return (f"holds values in [{lo:.6g}, {hi:.6g}], beyond the range of {dtype} it is delivered in "
                f"(|value| <= {big:.6g})")
    return None


def _slices(lo: Sequence[int], ext: Sequence[int]) -> tuple[slice, slice, slice]:
    return tuple(slice(int(a), int(a) + int(e)) for a, e in zip(lo, ext))  # type: ignore[return-value]


def _check_comm(comm: Any) -> None:
    for name in ("Get_rank", "Get_size", "allgather", "allreduce", "Dup", "Isend", "Irecv"):
        if not hasattr(comm, name):
            raise TransportError(f"comm must be an mpi4py intracommunicator, got {type(comm).__name__}")


def prepare(
    comm: Any,
    grid: Grid,
    *,
    root: int = 0,
    out: Any = None,
    axes: str = "xyz",
    dtype: Any = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    extras: Mapping[str, Any] | None = None,
) -> ScatterPlan:
    """Collective: validate and agree on a scatter before any data moves.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Every rank of the decomposition calls.
    grid : Grid
        The global grid (identical on every rank) with this rank's block ``grid.local``.
    root : int, default 0
        Rank that holds the global field; the same on every rank.
    out : ndarray (3, ...) or tuple (u, v, w), optional
        This rank's arrays, axes in the order ``axes``, any memory order; allocated (C order,
        ``axes`` order) when omitted.
    axes : str, default "xyz"
        Permutation of ``"xyz"`` naming the axes of ``out`` (Dedalus: ``"xzy"``).
    dtype : float32 or float64, optional
        Delivered dtype; default ``out``'s dtype, else float64. Must match ``out``.
    chunk_bytes : int, default DEFAULT_CHUNK_BYTES
        Bound on the root's packed buffer per streamwise chunk; the same on every rank.
    extras : mapping, optional
        The caller's own values every rank must pass alike (compared by ``==`` with the above).

    Raises
    ------
    TransportError
        Bad ``out``/``axes``/``dtype``/``root``/``chunk_bytes``, or ranks disagreeing on them or
        on ``extras``.
    GridError
        Ranks disagree on the global grid.
    DecompositionError
        The blocks do not tile the grid, or the grid was built for another number of ranks.
    """
    _check_comm(comm)
    size = comm.Get_size()
    err: BaseException | None = None
    views: list[np.ndarray] = []
    result = out
    dt = np.dtype(np.float64)
    try:
        if not isinstance(grid, Grid):
            raise GridError(f"grid must be a cfdseed.Grid, got {type(grid).__name__}")
        if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or not 0 <= root < size:
            raise TransportError(f"root must be a rank 0..{size - 1} of the communicator, got {root!r}")
        if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, (int, np.integer)) or chunk_bytes <= 0:
            raise TransportError(f"chunk_bytes must be a positive integer, got {chunk_bytes!r}")
        perm = _check_axes(axes)
        if dtype is not None:
            try:
                dt = np.dtype(dtype)
            except TypeError:
                raise TransportError(f"dtype must be float32 or float64, got {dtype!r}") from None
            if dt not in _FLOATS:
                raise TransportError(f"dtype must be float32 or float64, got {dt}")
        if out is not None:
            views, odt = block_views(out, axes, grid.local_shape, writable=True)
            if dtype is not None and odt != dt:
                raise TransportError(f"out has dtype {odt} but dtype={dt} was requested; pass dtype=np.{odt} "
                                     f"or omit it")
            dt = odt
        if grid.dims is not None and math.prod(grid.dims) != size:
            raise DecompositionError(f"grid was decomposed for {math.prod(grid.dims)} ranks (dims {grid.dims}) "
                                     f"but the communicator has {size}")
        if out is None:  # allocated here, so that a MemoryError is agreed with the arguments
            shape_axes = tuple(grid.local_shape["xyz".index(a)] for a in axes)
            result = _allocate(3 * math.prod(shape_axes), dt).reshape(3, *shape_axes)
            views = [c.transpose(perm) for c in result]
    except Exception as exc:  # noqa: BLE001 - re-raised on every rank by agree
        err = exc
    agree(comm, err)

    blocks = agree_grid(comm, grid, {"root": int(root), "the dtype": dt.name, "chunk_bytes": int(chunk_bytes),
                                     **(extras or {})})
    # the same (agreed) arguments on every rank: the same result, or the same error, everywhere
    chunks = plan_chunks(grid.shape, min(int(chunk_bytes) // dt.itemsize, MAX_COUNT))
    return ScatterPlan(comm, grid, int(root), dt, blocks, chunks, result, views)


def scatter(
    comm: Any,
    grid: Grid,
    field: np.ndarray | None,
    *,
    root: int = 0,
    out: Any = None,
    axes: str = "xyz",
    dtype: Any = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Any:
    """Collective: deliver the root's global field into every rank's block.

    Parameters
    ----------
    comm, grid, root, out, axes, dtype, chunk_bytes
        As in :func:`prepare`.
    field : ndarray (3, nx, ny, nz) or None
        The global field (u, v, w) on the root, float32 or float64 (cast to ``dtype`` on the fly);
        ignored on the other ranks, which never allocate it.

    Returns
    -------
    ndarray (3, ...) or tuple
        ``out`` when given, filled in place; else a new C-ordered array in ``axes`` order.

    Raises
    ------
    TransportError, GridError, DecompositionError
        On every rank, before anything is written (see :func:`prepare`); a bad ``field`` on the
        root is a TransportError (also finite values beyond the range of a float32 ``dtype``).
    """
    plan = prepare(comm, grid, root=root, out=out, axes=axes, dtype=dtype, chunk_bytes=chunk_bytes)
    agree(comm, plan.field_error(field) if plan.is_root else None)
    return plan.send(field if plan.is_root else None)


def gather(comm: Any, grid: Grid, local: Any, *, root: int = 0, axes: str = "xyz") -> np.ndarray | None:
    """Collective: assemble the global field ``(3, nx, ny, nz)`` on ``root`` (for tests and checks).

    Parameters
    ----------
    local : ndarray (3, ...) or tuple (u, v, w)
        This rank's block, axes in the order ``axes``, any memory order.

    Returns
    -------
    ndarray or None
        The global field (C order, the blocks' dtype) on the root; None elsewhere. The root holds
        the whole field: meant for tests and moderate sizes (one message per rank).

    Raises
    ------
    TransportError, GridError, DecompositionError
        Bad input on any rank, raised on every rank.
    """
    _check_comm(comm)
    err: BaseException | None = None
    try:
        views, dt = block_views(local, axes, grid.local_shape, what="local")
    except Exception as exc:  # noqa: BLE001 - re-raised on every rank by agree
        err = exc
    agree(comm, err)
    # prepare allocates (agreed) this rank's contiguous copy (3, sx, sy, sz): axes already checked
    plan = prepare(comm, grid, root=root, axes="xyz", dtype=dt, chunk_bytes=MAX_COUNT)
    rank, size = comm.Get_rank(), comm.Get_size()
    mine = plan.result
    for m, v in zip(mine, views):
        m[...] = v
    full, recv, err = None, None, None
    if rank == root:
        try:  # the root's buffers: agreed before anyone sends (a MemoryError must not hang the rest)
            full = _allocate(3 * math.prod(grid.shape), dt).reshape(3, *grid.shape)
            vols = np.prod(plan.blocks[:, :, 1] - plan.blocks[:, :, 0], axis=1)  # (size,) points per block
            vols[rank] = 0  # the root's own block is copied from mine
            recv = _allocate(3 * int(vols.max()), dt)  # one receive buffer, reused for every rank
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank by agree
            err = exc
    agree(comm, err)
    pcomm = comm.Dup()  # private context: the solver's own messages cannot match ours
    try:
        if rank != root:
            if mine.size:
                pcomm.Send(mine, dest=root, tag=_GATHER_TAG)
            return None
        for r in range(size):
            b = plan.blocks[r]
            ext = b[:, 1] - b[:, 0]
            if not ext.all():
                continue
            if r == rank:
                piece = mine
            else:
                piece = recv[:3 * int(np.prod(ext))].reshape(3, *ext)
                pcomm.Recv(piece, source=r, tag=_GATHER_TAG)
            full[(slice(None), *_slices(b[:, 0], ext))] = piece
        return full
    finally:
        pcomm.Free()
