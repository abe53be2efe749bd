"""Collective grid construction on 1-4 ranks (run by tests/test_mpi.py under mpiexec, with a timeout
that turns a hang into a failure): a mistake on one rank in the README's own example — a ``local``
slice out of range, another ``y``, a gap — raises the same error on every rank, named, and nobody
is left waiting in ``init_field``."""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from cfdseed import DecompositionError, Grid, GridError, init_field

comm = MPI.COMM_WORLD
size, rank = comm.Get_size(), comm.Get_rank()
last = size - 1
SHAPE, LENGTHS = (8, 9, 6), (4.0, 2.0, 2.0)


def pencil(shape=SHAPE):
    """The README's own decomposition: x-z pencils from MPI.Compute_dims."""
    px, pz = MPI.Compute_dims(size, 2)
    cx, cz = divmod(rank, pz)

    def split(n, p, i):
        return slice(i * n // p, (i + 1) * n // p)

    return split(shape[0], px, cx), slice(None), split(shape[2], pz, cz)


def raised_everywhere(excinfo, match):
    """The same error type on every rank, with the message of the failing rank."""
    names = comm.allgather(type(excinfo.value).__name__)
    assert len(set(names)) == 1, names
    assert all(comm.allgather(match in str(excinfo.value))), str(excinfo.value)


def test_readme_example_builds_and_seeds():
    grid = Grid.collective(comm, SHAPE, LENGTHS, y="chebyshev", local=pencil())
    nx, ny, nz = grid.local_shape
    u, v, w = (np.zeros((nx, nz, ny), order="F") for _ in range(3))
    seeded = init_field(comm, grid, source="streaks", options={"re_tau": 180}, seed=1, out=(u, v, w),
                        axes="xzy", result=True)
    assert seeded.field[0] is u and seeded.report.passed
    assert all(r == seeded.report for r in comm.allgather(seeded.report))


def test_local_out_of_range_on_one_rank():
    local = pencil()
    if rank == last:
        local = (slice(local[0].start, SHAPE[0] + 1), local[1], local[2])
    with pytest.raises(DecompositionError) as info:
        Grid.collective(comm, SHAPE, LENGTHS, y="chebyshev", local=local)
    raised_everywhere(info, f"lies outside 0:{SHAPE[0]}")


def test_bad_y_on_one_rank():
    y = np.linspace(0.0, 2.0, 8) if rank == last else "chebyshev"  # 8 points for ny = 9
    with pytest.raises(GridError) as info:
        Grid.collective(comm, SHAPE, LENGTHS, y=y, local=pencil())
    raised_everywhere(info, "y must have shape (9,)")
    with pytest.raises(GridError) as info:
        Grid.block(comm, SHAPE, LENGTHS, y=y)
    raised_everywhere(info, "y must have shape (9,)")


@pytest.mark.skipif(size == 1, reason="needs several ranks")
def test_another_y_on_one_rank_names_it():
    y = "uniform" if rank == last else "chebyshev"
    with pytest.raises(GridError) as info:
        Grid.collective(comm, SHAPE, LENGTHS, y=y, local=pencil())
    raised_everywhere(info, "ranks disagree on the grid (y): rank 0 has y[1] = ")
    raised_everywhere(info, f"(y given as 'chebyshev' on rank 0, 'uniform' on rank {last})")
    # built per rank, the same mistake still fails on every rank inside init_field, named alike
    grid = Grid(SHAPE, LENGTHS, y=y, local=pencil())
    with pytest.raises(GridError) as info:
        init_field(comm, grid, source="plug")
    raised_everywhere(info, f"'uniform' on rank {last}")


def test_gap_names_the_missing_range():
    local = pencil()
    if rank == last:  # one plane short
        local = (slice(local[0].start, local[0].stop - 1), local[1], local[2])
    stop = pencil()[0].stop if rank == last else 0
    stop = comm.allreduce(stop, op=MPI.MAX)
    z = comm.bcast(pencil()[2] if rank == last else None, root=last)
    with pytest.raises(DecompositionError) as info:
        Grid.collective(comm, SHAPE, LENGTHS, y="chebyshev", local=local)
    raised_everywhere(info, f"no rank holds x {stop - 1}:{stop}, y 0:9, z {z.start}:{z.stop}")


@pytest.mark.parametrize("via", ["agree_grid", "prepare"])
def test_an_extra_that_does_not_pickle_on_one_rank_fails_every_rank(via):
    """The extras are pickled inside the agreement: a value that does not pickle on one rank used
    to fail there in the allgather and leave the others in it."""
    import threading

    from cfdseed import TransportError
    from cfdseed.grid import agree_grid
    from cfdseed.transport import prepare

    grid = Grid.collective(comm, SHAPE, LENGTHS, y="chebyshev", local=pencil())
    extras = {"the lock": threading.Lock() if rank == last else None}
    with pytest.raises(TransportError) as info:
        agree_grid(comm, grid, extras) if via == "agree_grid" else prepare(comm, grid, extras=extras)
    raised_everywhere(info, "the lock must be a picklable value to be compared between ranks, got lock")
    assert agree_grid(comm, grid, {"the lock": None}).shape == (size, 3, 2)  # nothing left pending
