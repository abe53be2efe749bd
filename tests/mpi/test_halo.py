"""exchange_faces on arbitrary tilings: every neighbour plane equals the global field's plane."""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from cfdseed.halo import exchange_faces

from _tilings import KINDS, decompose

comm = MPI.COMM_WORLD


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(5, 4, 6), (2, 3, 1), (1, 7, 3)])
def test_faces_match_global_planes(kind, shape):
    grid = decompose(comm, kind, shape, (1.0, 1.0, 1.0), "uniform")
    field = np.arange(3 * np.prod(shape), dtype=np.float32).reshape(3, *shape) + 1  # no zeros
    block = field[(slice(None), *grid.local)]
    comps = [np.asfortranarray(c) for c in block]
    halos = exchange_faces(comm, comm.allgather([(s.start, s.stop) for s in grid.local]), shape, comps)
    if grid.local_size == 0:  # an empty block takes no part: zero planes of its (empty) extent
        assert all(not p.any() for pair in halos for p in pair)
        return
    for axis, (lo, hi) in enumerate(halos):
        for side, got in ((0, lo), (1, hi)):
            s = grid.local[axis]
            g = s.start - 1 if side == 0 else s.stop
            sl = list(grid.local)
            if axis == 1 and not 0 <= g < shape[1]:
                want = np.zeros_like(got)  # beyond a wall
            else:
                sl[axis] = slice(g % shape[axis], g % shape[axis] + 1)
                want = field[(slice(None), *sl)]
            assert got.shape == want.shape and got.dtype == np.float32
            np.testing.assert_array_equal(got, want, err_msg=f"axis {axis} side {side}")


def _call(kind="xslab", shape=(5, 4, 6), dtype=np.float64, ncomp=3, periodic=(True, False, True), blocks=None):
    """exchange_faces on this rank's block of ones, with the given arguments."""
    grid = decompose(comm, kind, shape, (1.0, 1.0, 1.0), "uniform")
    if blocks is None:
        blocks = comm.allgather([(s.start, s.stop) for s in grid.local])
    comps = [np.ones(grid.local_shape, dtype) for _ in range(ncomp)]
    return exchange_faces(comm, blocks, shape, comps, periodic)


def _raised_alike(info, match):
    names = comm.allgather(type(info.value).__name__)
    msgs = comm.allgather(str(info.value))
    assert len(set(names)) == 1 and all(match in m for m in msgs), (names, msgs)


@pytest.mark.parametrize("flaw", ["one block short", "not blocks"])
def test_malformed_blocks_on_one_rank_raise_on_every_rank(flaw):
    """The blocks are read inside the agreed step: an IndexError there used to hang the others."""
    grid = decompose(comm, "xslab", (5, 4, 6), (1.0, 1.0, 1.0), "uniform")
    blocks = comm.allgather([(s.start, s.stop) for s in grid.local])
    if comm.rank == comm.size - 1:
        blocks = blocks[:-1] if flaw == "one block short" else "blocks"
    with pytest.raises(ValueError) as info:
        _call(blocks=blocks)
    _raised_alike(info, "block" if flaw == "not blocks" else f"blocks must hold one block per rank ({comm.size})")
    _call()  # the next exchange works: nothing left pending


# what the last rank passes differently -> the words of the error
DISAGREE = {"dtype": ({"dtype": np.float32}, "the dtype"), "ncomp": ({"ncomp": 2}, "the number of components"),
            "periodic": ({"periodic": (True, True, True)}, "periodic"), "shape": ({"shape": (5, 4, 7)}, "the shape")}


@pytest.mark.parametrize("what", DISAGREE)
def test_arguments_the_ranks_disagree_on_raise_on_every_rank(what):
    """Messages are posted from each rank's own arguments: another dtype or component count gave an
    MPI error on one rank and corrupted planes on the other, another shape or periodicity a hang."""
    if comm.size == 1:
        pytest.skip("one rank cannot disagree")
    change, words = DISAGREE[what]
    kwargs = dict(change) if comm.rank == comm.size - 1 else {}
    if what == "shape":  # the blocks of (5, 4, 6) on every rank, one rank saying the grid is (5, 4, 7)
        grid = decompose(comm, "xslab", (5, 4, 6), (1.0, 1.0, 1.0), "uniform")
        kwargs["blocks"] = comm.allgather([(s.start, s.stop) for s in grid.local])
    with pytest.raises(ValueError) as info:
        _call(**kwargs)
    _raised_alike(info, f"ranks disagree on {words} of exchange_faces")
    _call()
