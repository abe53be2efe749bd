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
