"""init_field / scatter / gather on 1-4 ranks (run by tests/test_mpi.py under mpiexec).

Random grids and decompositions (hypothesis, derandomised so every rank draws the same examples,
and the drawn example is broadcast from rank 0 to be sure): every rank receives exactly its block,
bit for bit, in any out layout; gather gives back the root's field. Every bad input raises the same
error type on every rank and leaves ``out`` untouched; non-root ranks never hold the global field.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mpi4py import MPI

from cfdseed import (ConstraintError, DecompositionError, Grid, GridError, SourceError, TransportError,
                     init_field)
from cfdseed.sources import resolve
from cfdseed import transport
from cfdseed.transport import gather, scatter

from _tilings import KINDS, decompose

comm = MPI.COMM_WORLD
size, rank = comm.Get_size(), comm.Get_rank()
LENGTHS = (4.0, 2.0, 2.0)
SAME = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


def global_field(shape, seed, dtype=np.float64):
    """The same random field on every rank (used only to know the expected blocks)."""
    return np.random.default_rng(seed).standard_normal((3, *shape)).astype(dtype)


def make_out(kind, axes, shape, dtype):
    s = tuple(shape["xyz".index(a)] for a in axes)
    if kind == "C":
        return np.full((3, *s), 7.0, dtype)
    if kind == "F":
        return np.asfortranarray(np.full((3, *s), 7.0, dtype))
    return tuple(np.asfortranarray(np.full(s, 7.0, dtype)) if i else np.full(s, 7.0, dtype) for i in range(3))


def in_xyz(out, axes):
    return np.stack([np.transpose(c, [axes.index(a) for a in "xyz"]) for c in out])


def untouched(out):
    return all((np.asarray(c) == 7.0).all() for c in out)


def everywhere(ok):
    """True on every rank when ``ok`` holds on every rank (so a lone failing rank cannot hang the rest)."""
    return all(comm.allgather(bool(ok)))


def same_error_everywhere(excinfo):
    names = comm.allgather(type(excinfo.value).__name__)
    assert len(set(names)) == 1, names


@SAME
@given(
    nx=st.integers(1, 9), ny=st.integers(2, 9), nz=st.integers(1, 9), kind=st.sampled_from(KINDS),
    y=st.sampled_from(["uniform", "tanh:2", "chebyshev-cc"]), seed=st.integers(0, 1000),
    axes=st.sampled_from(["xyz", "xzy", "zyx", "yxz"]), layout=st.sampled_from(["C", "F", "tuple", None]),
    dtype=st.sampled_from([np.float64, np.float32]), chunk=st.sampled_from([1, 2, 10**6]),
    root=st.integers(0, 3), planes=st.booleans(),
)
def test_every_rank_gets_exactly_its_block(nx, ny, nz, kind, y, seed, axes, layout, dtype, chunk, root, planes):
    args = comm.bcast((nx, ny, nz, kind, y, seed, axes, layout, dtype, chunk, root % size, planes))
    assert args == (nx, ny, nz, kind, y, seed, axes, layout, dtype, chunk, root % size, planes)
    # planes: every plane of a piece spanning whole z-lines is its own message (as for big fields)
    old, transport._PLANE_MESSAGE_BYTES = transport._PLANE_MESSAGE_BYTES, 0 if planes else 2**20
    try:
        _scatter_gather(nx, ny, nz, kind, y, seed, axes, layout, dtype, chunk, root % size)
    finally:
        transport._PLANE_MESSAGE_BYTES = old


def _scatter_gather(nx, ny, nz, kind, y, seed, axes, layout, dtype, chunk, root):
    shape = (nx, ny, nz)
    grid = decompose(comm, kind, shape, LENGTHS, y)
    field = global_field(shape, seed)  # float64 on the root: cast on the fly when dtype is float32
    out = None if layout is None else make_out(layout, axes, grid.local_shape, dtype)
    # chunk 1: one row (3 nz values) per message; 2: two rows; else the whole field at once
    chunk_bytes = chunk * 3 * nz * np.dtype(dtype).itemsize
    got = scatter(comm, grid, field if rank == root else None, root=root, out=out, axes=axes, dtype=dtype,
                  chunk_bytes=chunk_bytes)
    if out is not None:
        assert got is out
    expect = field[(slice(None), *grid.local)].astype(dtype)
    assert everywhere(np.array_equal(in_xyz(got, axes), expect))
    full = gather(comm, grid, got, root=root, axes=axes)
    if rank == root:
        ok = full.dtype == dtype and np.array_equal(full, field.astype(dtype))
    else:
        ok = full is None
    assert everywhere(ok)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("y, planes", [("tanh:2", False), ("uniform-cc", False), ("chebyshev", True)])
def test_init_field_passes_checks_on_any_tiling(kind, y, planes, monkeypatch):
    monkeypatch.setattr(transport, "_PLANE_MESSAGE_BYTES", 0 if planes else 2**20)
    grid = decompose(comm, kind, (10, 17, 8), LENGTHS, y)
    out = make_out("C" if planes else "F", "xyz" if planes else "xzy", grid.local_shape, np.float32)
    init_field(comm, grid, seed=11, out=out, axes="xyz" if planes else "xzy", root=size - 1, dtype=np.float32)
    ref = resolve("analytic")(grid.global_grid(), np.random.default_rng(11)).astype(np.float32)
    assert everywhere(np.array_equal(in_xyz(out, "xyz" if planes else "xzy"), ref[(slice(None), *grid.local)]))


def test_non_root_ranks_never_hold_the_global_field():
    grid = Grid.block(comm, (40, 30, 20), LENGTHS, dims=(size, 1, 1))
    field = global_field(grid.shape, 0) if rank == 0 else None
    out = np.empty((3, *grid.local_shape))
    tracemalloc.start()
    scatter(comm, grid, field, out=out, chunk_bytes=8 * 3 * 30 * 20 * 4)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    nbytes = 8 * 3 * 40 * 30 * 20
    chunk = 8 * 3 * 30 * 20 * 4
    # root: one packed chunk; others: their piece of one chunk; never the global field
    peaks = comm.allgather(peak)  # assert on every rank alike: a lone failing rank would hang the rest
    assert max(peaks) < chunk + 64 * 1024, (peaks, chunk, nbytes)
    assert max(peaks) < nbytes / 4


def test_source_runs_on_root_only():
    calls = []

    def source(grid, rng):
        calls.append(rank)
        return resolve("analytic")(grid, rng)

    init_field(comm, Grid.block(comm, (6, 9, 4), LENGTHS), source=source, root=size - 1)
    assert comm.allgather(calls) == [[] for _ in range(size - 1)] + [[size - 1]]


# -- bad input: the same error type on every rank, out untouched, no hang ---------------------
def raises(grid, rng):
    raise RuntimeError("boom on the root")


@pytest.mark.parametrize(
    "source, match",
    [
        (raises, "boom on the root"),
        (lambda g, r: np.full((3, *g.shape), np.nan), "non-finite"),
        (lambda g, r: np.zeros((3, g.shape[0], g.shape[1], g.shape[2] + 1)), "shape"),
        (lambda g, r: np.zeros((3, *g.shape), np.int64), "dtype"),
        (lambda g, r: "field", "numpy array"),
        ("no-such-source", "unknown source"),
    ],
)
def test_bad_source_on_root_only(source, match):
    grid = Grid.block(comm, (6, 9, 4), LENGTHS)
    out = make_out("C", "xyz", grid.local_shape, np.float64)
    with pytest.raises(SourceError, match=match) as info:
        init_field(comm, grid, source=source, out=out, root=size // 2)
    same_error_everywhere(info)
    assert everywhere(untouched(out))


def _bad_out(grid, what):
    good = make_out("C", "xyz", grid.local_shape, np.float64)
    if rank != size - 1:  # only the last rank is wrong
        return good, {}
    s = grid.local_shape
    return {
        "shape": (np.full((3, s[0], s[1], s[2] + 1), 7.0), {}),
        "dtype": (np.full((3, *s), 7, np.int32), {}),
        "order": (np.full((3, s[2], s[1], s[0]), 7.0), {}),  # (z, y, x) storage, axes not given
        "mismatch": (good, {"dtype": np.float32}),
        "readonly": (np.broadcast_to(np.float64(7.0), (3, *s)), {}),
    }[what]


@pytest.mark.parametrize("what", ["shape", "dtype", "order", "mismatch", "readonly"])
def test_bad_out_on_one_rank(what):
    grid = Grid.block(comm, (6, 9, 4), LENGTHS)
    out, kw = _bad_out(grid, what)
    with pytest.raises(TransportError) as info:
        init_field(comm, grid, out=out, **kw)
    same_error_everywhere(info)
    assert everywhere(untouched(out))


@pytest.mark.parametrize("flaw", ["gap", "overlap", "foreign_size"])
def test_bad_tiling(flaw):
    if flaw == "overlap" and size == 1:
        pytest.skip("one rank has no neighbour to overlap")
    grid = Grid.block(comm, (6, 9, 4), LENGTHS, dims=(size, 1, 1))
    x = grid.local[0]
    if flaw == "foreign_size":  # decomposed for one rank more than the communicator has
        grid = decompose_for(size + 1)
    elif rank == size - 1:
        # overlap: reach one plane into the previous rank's slab; gap: leave the last plane out
        start = x.start - (flaw == "overlap")
        stop = x.stop - (flaw == "gap")
        grid = grid.with_local((slice(start, stop), grid.local[1], grid.local[2]))
    out = make_out("C", "xyz", grid.local_shape, np.float64)
    expected = {"gap": "the decomposition has gaps", "overlap": r"blocks of ranks \d+ and \d+ overlap",
                "foreign_size": r"decomposed for \d+ ranks"}[flaw]
    with pytest.raises(DecompositionError, match=expected) as info:
        init_field(comm, grid, out=out)
    same_error_everywhere(info)
    assert everywhere(untouched(out))


def decompose_for(n):
    class Fake:
        def Get_rank(self):
            return rank

        def Get_size(self):
            return n

        def allreduce(self, *args, **kwargs):  # Grid.block agrees on errors over the real ranks
            return comm.allreduce(*args, **kwargs)

    return Grid.block(Fake(), (6, 9, 4), LENGTHS, dims=(n, 1, 1))


@pytest.mark.parametrize("root", ["too_big", "negative", "disagree", "float"])
def test_bad_root(root):
    grid = Grid.block(comm, (6, 9, 4), LENGTHS)
    r = {"too_big": size, "negative": -1, "float": 0.0,
         "disagree": (1 if rank == 0 else 0) if size > 1 else size}[root]
    out = make_out("C", "xyz", grid.local_shape, np.float64)
    with pytest.raises(TransportError, match="root") as info:
        init_field(comm, grid, out=out, root=r)
    same_error_everywhere(info)
    assert everywhere(untouched(out))


@pytest.mark.skipif(size == 1, reason="needs several ranks")
def test_ranks_disagreeing_on_the_grid():
    base = Grid.block(comm, (6, 9, 4), LENGTHS)
    grid = Grid((6, 9, 4), (4.0, 2.0, 3.0) if rank == size - 1 else LENGTHS, local=base.local)
    out = make_out("C", "xyz", grid.local_shape, np.float64)
    with pytest.raises(GridError, match="disagree") as info:
        init_field(comm, grid, out=out)
    same_error_everywhere(info)
    assert everywhere(untouched(out))


def test_constraint_error_on_every_rank():
    def diverging(grid, rng):
        f = resolve("analytic")(grid, rng)
        f[0] *= 1.0 + 0.2 * np.cos(2 * np.pi * grid.x / grid.lengths[0])[:, None, None]
        return f

    grid = Grid.block(comm, (8, 9, 4), LENGTHS)
    with pytest.raises(ConstraintError, match="divergence") as info:
        init_field(comm, grid, source=diverging, seed=0)
    same_error_everywhere(info)
    reports = comm.allgather(info.value.report.to_dict())
    assert all(r == reports[0] for r in reports) and not reports[0]["passed"]
