"""Transport on one process (MPI.COMM_SELF): chunk arithmetic beyond 2**31 elements, out layouts,
validation before any write. The multi-rank behaviour is in tests/mpi/test_init_field.py."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from mpi4py import MPI
from hypothesis import given, settings
from hypothesis import strategies as st

from _fakes import FakeComm
from cfdseed import DecompositionError, Grid, GridError, TransportError
from cfdseed import transport
from cfdseed.grid import block_split
from cfdseed.transport import MAX_COUNT, _intersect, _messages, block_views, gather, plan_chunks, prepare, scatter

SELF = MPI.COMM_SELF
SHAPE, LENGTHS = (6, 5, 4), (2.0, 2.0, 1.0)


def covered(chunks, shape):
    """Count of how often each grid point is covered by the chunks."""
    hits = np.zeros(shape, np.int64)
    for (x0, x1), (y0, y1), (z0, z1) in chunks:
        hits[x0:x1, y0:y1, z0:z1] += 1
    return hits


# -- chunk arithmetic ------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(nx=st.integers(1, 9), ny=st.integers(2, 9), nz=st.integers(1, 9), extra=st.integers(0, 800))
def test_chunks_tile_the_grid_once_within_the_limit(nx, ny, nz, extra):
    limit = 3 * nz + extra
    chunks = plan_chunks((nx, ny, nz), limit)
    assert (covered(chunks, (nx, ny, nz)) == 1).all()
    sizes = [3 * (x1 - x0) * (y1 - y0) * (z1 - z0) for (x0, x1), (y0, y1), (z0, z1) in chunks]
    assert max(sizes) <= limit
    starts = [(c[0][0], c[1][0]) for c in chunks]
    assert starts == sorted(starts)  # streamwise order (memory order of the root's field)
    if 3 * ny * nz <= limit:  # whole planes grouped: no more chunks than needed
        assert len(chunks) == -(-nx // (limit // (3 * ny * nz)))


@pytest.mark.parametrize(
    "shape",
    [
        (4096, 1024, 2048),  # 8.6e9 points, 2.6e10 values: 13 x the int limit
        (3, 40000, 40000),  # one x-plane (4.8e9 values) exceeds the limit: split along y
        (2**31 + 5, 2, 1),  # more planes than a C int counts
    ],
)
def test_chunks_beyond_int_limit(shape):
    chunks = plan_chunks(shape, MAX_COUNT)
    nx, ny, nz = shape
    sizes = np.array([3 * (x1 - x0) * (y1 - y0) * (z1 - z0) for (x0, x1), (y0, y1), (z0, z1) in chunks],
                     dtype=object)
    assert max(sizes) <= MAX_COUNT
    assert sum(sizes) == 3 * nx * ny * nz  # exact cover by volume (overlap-free by construction)
    # chunks follow each other without gaps in C order
    for a, b in zip(chunks[:5], chunks[1:6]):
        assert (b[0][0], b[1][0]) == ((a[0][0], a[1][1]) if a[1][1] < ny else (a[0][1], 0))
    # the ranks' blocks of a 3 x 2 x 1 process grid on the whole shape (as Grid.block splits it; built
    # here where x is too long for a Grid's coordinates), cutting across chunk boundaries
    dims = (3, 2, 1)
    blocks = np.array([[(b.start, b.stop) for b in (block_split(n, p, c) for n, p, c in
                                                    zip(shape, dims, np.unravel_index(r, dims)))]
                       for r in range(6)], dtype=np.int64)
    if nx <= 10**6:
        grids = [Grid.block(FakeComm(r, 6), shape, (1, 1, 1), dims=dims) for r in range(6)]
        assert blocks.tolist() == [[[s.start, s.stop] for s in g.local] for g in grids]
    assert any(c[0][0] < b[0][1] < c[0][1] or c[1][0] < b[1][1] < c[1][1]
               for c in chunks for b in blocks)  # some chunk straddles a block boundary
    for box in chunks:  # every chunk: the per-rank pieces tile it exactly, each within the count limit
        lo, ext = _intersect(blocks, box)
        vol = [int(np.prod(e, dtype=object)) for e in ext]
        assert sum(vol) == int(np.prod([b - a for a, b in box], dtype=object))
        live = [r for r in range(6) if vol[r]]
        for r in live:  # inside the chunk and inside the rank's block
            for a in range(3):
                assert max(box[a][0], blocks[r, a, 0]) <= lo[r, a] and \
                    lo[r, a] + ext[r, a] <= min(box[a][1], blocks[r, a, 1])
        for r in live:  # no two overlap
            for q in live:
                if q > r:
                    assert any(lo[r, a] + ext[r, a] <= lo[q, a] or lo[q, a] + ext[q, a] <= lo[r, a] for a in range(3))
        assert all(3 * v <= MAX_COUNT for v in vol)


def test_chunk_smaller_than_a_row_is_an_error():
    with pytest.raises(TransportError, match="chunk_bytes"):
        plan_chunks((4, 4, 100), 299)


def test_intersect_marks_disjoint_blocks_empty():
    blocks = np.array([[[0, 2], [0, 3], [0, 4]], [[2, 6], [0, 3], [0, 4]]])
    lo, ext = _intersect(blocks, ((2, 4), (0, 3), (0, 4)))
    assert ext[0].tolist() == [0, 0, 0] and ext[1].tolist() == [2, 3, 4] and lo[1].tolist() == [2, 0, 0]


@settings(max_examples=200, deadline=None)
@given(shape=st.tuples(st.integers(1, 6), st.integers(2, 6), st.integers(1, 6)), threshold=st.sampled_from([0, 64]),
       data=st.data())
def test_messages_tile_the_piece_and_planes_are_contiguous(shape, threshold, data):
    lo = np.array([data.draw(st.integers(0, n - 1)) for n in shape])
    ext = np.array([data.draw(st.integers(1, n - a)) for n, a in zip(shape, lo)])
    old, transport._PLANE_MESSAGE_BYTES = transport._PLANE_MESSAGE_BYTES, threshold
    try:
        msgs = _messages(lo, ext, shape, 4)
    finally:
        transport._PLANE_MESSAGE_BYTES = old
    hits = np.zeros(shape, np.int64)
    comp = np.zeros(shape)  # one C-ordered component of the root's field
    for mlo, mext in msgs:
        hits[tuple(slice(a, a + e) for a, e in zip(mlo, mext))] += 1
        if len(msgs) > 1:  # split plane by plane: every message lies contiguously in the field
            assert comp[tuple(slice(a, a + e) for a, e in zip(mlo, mext))].flags.c_contiguous
    box = tuple(slice(a, a + e) for a, e in zip(lo, ext))
    assert (hits[box] == 1).all() and hits.sum() == np.prod(ext)
    split = ext[2] == shape[2] and ext[1] < shape[1] and ext[0] > 1 and 4 * ext[1] * ext[2] >= threshold
    assert len(msgs) == (ext[0] if split else 1)


# -- out layouts -----------------------------------------------------------------------------
def field(shape=SHAPE, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal((3, *shape)).astype(dtype)


def alloc(kind, axes, shape, dtype, fill=7.0):
    """out as the solver would have it: 'C' / 'F' array (3, ...), a tuple, or a non-contiguous view."""
    s = tuple(shape["xyz".index(a)] for a in axes)
    if kind == "C":
        return np.full((3, *s), fill, dtype)
    if kind == "F":
        return np.asfortranarray(np.full((3, *s), fill, dtype))
    if kind == "tuple":
        return tuple(np.asfortranarray(np.full(s, fill, dtype)) if i == 1 else np.full(s, fill, dtype) for i in range(3))
    big = np.full((*s, 5), fill, dtype)  # interleaved (..., 5) storage: components are strided views
    return tuple(big[..., i] for i in (0, 2, 4))


def xyz(out, axes):
    return np.stack([np.transpose(c, [axes.index(a) for a in "xyz"]) for c in out])


@pytest.mark.parametrize("kind", ["C", "F", "tuple", "view"])
@pytest.mark.parametrize("axes", ["xyz", "xzy", "zyx", "yzx"])
@pytest.mark.parametrize("chunk_bytes", [8 * 12, 8 * 60, 2**20])
def test_scatter_fills_any_layout_bit_for_bit(kind, axes, chunk_bytes):
    grid = Grid(SHAPE, LENGTHS)
    f = field()
    out = alloc(kind, axes, SHAPE, np.float64)
    got = scatter(SELF, grid, f, out=out, axes=axes, chunk_bytes=chunk_bytes)
    assert got is out
    assert np.array_equal(xyz(out, axes), f)
    assert np.array_equal(gather(SELF, grid, out, axes=axes), f)


def test_scatter_allocates_in_axes_order_and_casts():
    grid = Grid(SHAPE, LENGTHS)
    f = field()
    got = scatter(SELF, grid, f, axes="zxy", dtype=np.float32)
    assert got.shape == (3, 4, 6, 5) and got.dtype == np.float32 and got.flags.c_contiguous
    assert np.array_equal(xyz(got, "zxy"), f.astype(np.float32))
    f32 = scatter(SELF, grid, field(dtype=np.float32), out=np.empty((3, *SHAPE), np.float64))
    assert f32.dtype == np.float64


def test_block_views_are_views():
    a = np.zeros((3, 4, 5, 6))
    views, dt = block_views(a, "zyx", (6, 5, 4))
    assert dt == np.float64 and views[0].shape == (6, 5, 4) and np.shares_memory(views[2], a)


# -- validation before any write --------------------------------------------------------------
@pytest.mark.parametrize(
    "make_out, kwargs, error, match",
    [
        (lambda: np.full((3, 6, 5, 5), 7.0), {}, TransportError, "shape"),
        (lambda: np.full((3, 6, 4, 5), 7.0), {}, TransportError, "shape"),  # axes forgotten
        (lambda: np.full((3, 6, 5, 4), 7, np.int32), {}, TransportError, "dtype"),
        (lambda: np.full((3, 6, 5, 4), 7.0), {"dtype": np.float32}, TransportError, "dtype"),
        (lambda: np.full((3, 6, 5, 4), 7.0), {"dtype": "complex128"}, TransportError, "float32 or float64"),
        (lambda: np.full((3, 6, 5, 4), 7.0), {"axes": "xyy"}, TransportError, "permutation"),
        (lambda: np.full((3, 6, 5, 4), 7.0), {"root": 1}, TransportError, "root"),
        (lambda: np.full((3, 6, 5, 4), 7.0), {"root": -1}, TransportError, "root"),
        (lambda: np.full((3, 6, 5, 4), 7.0), {"chunk_bytes": 0}, TransportError, "chunk_bytes"),
        (lambda: np.full((3, 6, 5, 4), 7.0), {"chunk_bytes": 8 * 11}, TransportError, "chunk_bytes"),
        (lambda: (np.full((6, 5, 4), 7.0),) * 3, {}, TransportError, "share memory"),
        (lambda: tuple(np.full((6, 5, 4), 7.0, dt) for dt in ("f8", "f4", "f8")), {}, TransportError, "one dtype"),
        (lambda: [np.full((6, 5, 4), 7.0)] * 2, {}, TransportError, "tuple"),
        (lambda: (np.full((6, 5, 4), 7.0), np.full((6, 5, 4), 7.0), [7.0]), {}, TransportError, "numpy array"),
    ],
)
def test_bad_out_raises_and_leaves_out_untouched(make_out, kwargs, error, match):
    out = make_out()
    before = [np.array(c, copy=True) for c in out]
    with pytest.raises(error, match=match):
        scatter(SELF, Grid(SHAPE, LENGTHS), field(), out=out, **kwargs)
    assert all(np.array_equal(np.asarray(c), b) for c, b in zip(out, before))


def test_read_only_out_is_rejected():
    out = np.full((3, *SHAPE), 7.0)
    out.flags.writeable = False
    with pytest.raises(TransportError, match="read-only"):
        scatter(SELF, Grid(SHAPE, LENGTHS), field(), out=out)


@pytest.mark.parametrize(
    "bad, match",
    [(np.zeros((3, 6, 5, 3)), "shape"), (np.zeros((3, *SHAPE), np.int64), "dtype"), ([[0.0]], "numpy array")],
)
def test_bad_root_field_raises_before_writing(bad, match):
    out = np.full((3, *SHAPE), 7.0)
    with pytest.raises(TransportError, match=match):
        scatter(SELF, Grid(SHAPE, LENGTHS), bad, out=out)
    assert (out == 7.0).all()


def test_gap_and_foreign_decomposition_are_decomposition_errors():
    out = np.full((3, 6, 5, 2), 7.0)
    with pytest.raises(DecompositionError, match="gaps"):
        scatter(SELF, Grid(SHAPE, LENGTHS, local=(slice(None), slice(None), slice(0, 2))), field(), out=out)
    assert (out == 7.0).all()
    grid = Grid.block(FakeComm(0, 2), SHAPE, LENGTHS, dims=(2, 1, 1))  # built for 2 ranks
    with pytest.raises(DecompositionError, match="2 ranks"):
        scatter(SELF, grid, field())


def test_not_a_grid_or_comm():
    with pytest.raises(GridError, match="cfdseed.Grid"):
        scatter(SELF, (6, 5, 4), field())
    with pytest.raises(TransportError, match="intracommunicator"):
        scatter(FakeComm(0, 1), Grid(SHAPE, LENGTHS), field())


def test_prepare_writes_nothing_and_send_is_memory_bounded():
    grid = Grid((40, 30, 20), LENGTHS)
    f = field((40, 30, 20))
    out = np.full((3, 40, 30, 20), 7.0)
    plan = prepare(SELF, grid, out=out, chunk_bytes=8 * 3 * 30 * 20)
    assert len(plan.chunks) == 40 and (out == 7.0).all()
    tracemalloc.start()
    plan.send(f)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < f.nbytes / 10  # the root's own block is copied in place, no field-sized temporary
    assert np.array_equal(out, f)
