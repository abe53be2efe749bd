"""A distributed build: the ranks on one node split its CPUs between their FFT workers and torch
threads and BLAS threads (every rank used to start os.cpu_count() FFT threads and one torch and one
BLAS thread per CPU)."""

from __future__ import annotations

import numpy as np
import torch
from mpi4py import MPI
from threadpoolctl import threadpool_info, threadpool_limits

from cfdseed import _threads
from cfdseed.grid import Grid
from cfdseed.sources.base import Source, SourceInfo

comm = MPI.COMM_WORLD


def test_a_distributed_build_uses_each_rank_s_share_of_the_node_and_restores_torch():
    seen: dict[str, int] = {}

    def make_slabs(comm_, grid, rng):
        seen.update(fft=_threads.fft_workers(), torch=torch.get_num_threads(),
                    blas=max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"), default=0))
        return np.zeros(1), SourceInfo()

    def make(grid, rng):
        raise AssertionError("the global path is not used here")

    before = torch.get_num_threads()
    many = 4 * _threads.cpus()
    torch.set_num_threads(many)
    try:
        with threadpool_limits(limits=many, user_api="blas"):
            Source("probe", make, make_slabs).build_slabs(comm, Grid((8, 5, 4), (1.0, 2.0, 1.0)),
                                                          np.random.default_rng(0))
            assert torch.get_num_threads() == many  # restored
            assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} <= {many}
    finally:
        torch.set_num_threads(before)
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    cpus = set().union(*node.allgather(set(_threads._mask() or range(_threads.cpus()))))
    total, ranks = node.allreduce(seen["fft"]), node.Get_size()
    node.Free()
    assert seen["torch"] == seen["fft"] >= 1  # torch capped to the share
    assert seen["blas"] in (0, seen["fft"])  # and BLAS (0: none loaded)
    assert total <= max(len(cpus), ranks)  # no more threads than the node's CPUs (one each when oversubscribed)
    assert _threads.fft_workers() == _threads.cpus()  # outside the build again


def test_the_root_path_borrows_its_node_s_cpus_while_the_others_sleep():
    """Ranks bound to one CPU each (as srun --cpu-bind=cores binds them): init_field's root built
    on its own core alone; now it runs on the node's CPUs, and its mask and threads come back."""
    import os
    import threading

    from cfdseed.coupling import init_field

    original = {tid: os.sched_getaffinity(tid) for tid in _threads._tasks()}
    cpus = sorted(os.sched_getaffinity(0))
    mine = {cpus[comm.Get_rank() % len(cpus)]}
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    union = set().union(*node.allgather(mine))
    node.Free()
    seen: dict[str, object] = {}

    def source(grid, rng):
        seen.update(mask=os.sched_getaffinity(0), workers=_threads.fft_workers(), torch=torch.get_num_threads())
        return np.zeros((3, *grid.shape))

    def pin(mask, masks=None):  # every thread of this process (ones that ended meanwhile skipped)
        for tid in _threads._tasks():
            try:
                os.sched_setaffinity(tid, (masks or {}).get(tid, mask))
            except ProcessLookupError:
                continue

    before = torch.get_num_threads()
    try:
        pin(mine)
        torch.set_num_threads(1)
        grid = Grid.block(comm, (8, 9, 6), (1.0, 2.0, 1.0))
        init_field(comm, grid, source=source, seed=0, check=False, strategy="root")
        if comm.Get_rank() == 0 and comm.Get_size() > 1:
            assert seen["mask"] == union and seen["workers"] == seen["torch"] == len(union), seen
        elif comm.Get_rank() == 0:  # alone: its own mask and setting
            assert seen["mask"] == mine and seen["torch"] == 1, seen
        else:
            assert not seen  # the root alone builds
        assert os.sched_getaffinity(0) == mine and torch.get_num_threads() == 1  # back
    finally:
        torch.set_num_threads(before)
        pin(original[threading.get_native_id()], original)  # threads started since: the main thread's mask
