"""cfdseed._threads: each rank's share of its node's CPUs, the FFT workers and torch's cap."""

from __future__ import annotations

import os

import pytest
import torch
from mpi4py import MPI

from cfdseed import _threads

needs_masks = pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity masks here")


@pytest.mark.parametrize("mine, masks, want", [
    ([0, 1, 2, 3, 4, 5, 6, 7], [list(range(8))] * 4, 2),  # 4 unbound ranks on 8 CPUs split them
    ([2, 3], [[0, 1], [2, 3], [4, 5], [6, 7]], 2),  # bound ranks keep their own cores
    ([0], [[0]] * 3, 1),  # oversubscribed: still one thread
    ([0, 1, 2, 3], [[0, 1, 2, 3], [0, 1], None], 3),  # CPUs 0, 1 shared by two (0.5 each), 2, 3 its own
    ([0, 1], [[0, 1]], 2),  # alone on the node: every CPU of its mask
])
def test_share_of_counts_each_cpu_once_across_the_node(mine, masks, want):
    assert _threads.share_of(mine, masks) == want


@needs_masks
def test_outside_a_build_the_transforms_use_the_cpus_this_thread_may_run_on():
    """scipy's workers=-1 meant os.cpu_count(): on a rank bound to one core, a thread per CPU of the node."""
    own = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(own)})
        assert _threads.fft_workers() == _threads.cpus() == 1
    finally:
        os.sched_setaffinity(0, own)
    assert _threads.fft_workers() == len(own)


def test_node_share_caps_torch_and_restores_it():
    before = torch.get_num_threads()
    try:
        alone = _threads.cpus()
        torch.set_num_threads(alone + 3)
        with _threads.node_share(MPI.COMM_SELF) as share:
            assert share == alone  # a one-rank communicator: the whole mask
            assert _threads.fft_workers() == share and torch.get_num_threads() == share
        assert torch.get_num_threads() == alone + 3 and _threads.fft_workers() == alone
        torch.set_num_threads(1)  # only ever lowered: a user's single thread stays
        with pytest.raises(RuntimeError, match="inside"):
            with _threads.node_share(MPI.COMM_SELF):
                assert torch.get_num_threads() == 1
                raise RuntimeError("inside")
        assert torch.get_num_threads() == 1 and _threads._share is None
    finally:
        torch.set_num_threads(before)


def _crowded(monkeypatch, ranks: int) -> None:
    """node_share and root_build on COMM_SELF see ``ranks`` ranks on the node, all with this
    process's mask (unbound ranks)."""
    own = sorted(os.sched_getaffinity(0))
    monkeypatch.setattr(_threads, "_node_masks", lambda comm: (own, [own] * ranks))


@needs_masks
def test_solo_borrows_the_node_for_a_lone_worker_and_gives_it_back(monkeypatch):
    """Within a build, a rollout the root runs while the others sleep: FFT workers and torch on all
    the node's CPUs (above the share and the user's setting), the share again afterwards."""
    cpus = _threads.cpus()
    if cpus < 2:
        pytest.skip("needs two CPUs")
    _crowded(monkeypatch, cpus)  # one unbound rank per CPU: a share of 1 each
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(cpus + 3)
        with _threads.node_share(MPI.COMM_SELF) as share:
            assert share == 1 and _threads.fft_workers() == 1 and torch.get_num_threads() == 1
            with _threads.solo():
                assert _threads.fft_workers() == cpus == torch.get_num_threads()
            assert _threads.fft_workers() == 1 and torch.get_num_threads() == 1
        assert torch.get_num_threads() == cpus + 3
        with _threads.solo():  # outside a build: nothing changes
            assert _threads.fft_workers() == cpus and torch.get_num_threads() == cpus + 3
    finally:
        torch.set_num_threads(before)


@needs_masks
def test_node_share_caps_blas_and_restores_it(monkeypatch):
    """numpy's and scipy's OpenBLAS: one thread per CPU in every rank unless capped."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    if not blas():
        pytest.skip("no BLAS library with a thread pool loaded")
    _crowded(monkeypatch, 4 * _threads.cpus())  # a share of 1
    with threadpool_limits(limits=4, user_api="blas"):
        with _threads.node_share(MPI.COMM_SELF):
            assert set(blas()) == {1}
        assert set(blas()) == {4}


def test_a_failing_blas_cap_is_skipped_not_raised(monkeypatch, caplog):
    """Raising on one rank inside a build would leave the others waiting: the cap is skipped."""
    import threadpoolctl

    def broken():
        raise OSError("no /proc here")

    monkeypatch.setattr(threadpoolctl, "threadpool_info", broken)
    with caplog.at_level("WARNING", logger="cfdseed._threads"):
        with _threads.node_share(MPI.COMM_SELF) as share:
            assert share >= 1
    assert "BLAS threads not set (OSError: no /proc here)" in caplog.text


@needs_masks
def test_root_build_sets_torch_and_blas_to_the_root_s_cpus_and_restores_them(monkeypatch):
    """The root builds while the others sleep: torch and BLAS on every CPU it may use, even above
    the solver's OMP_NUM_THREADS=1; the settings come back afterwards."""
    from threadpoolctl import threadpool_info, threadpool_limits

    with _threads.root_build(MPI.COMM_SELF, 0) as alone:
        assert alone is None  # alone on its node: its own setting
    _crowded(monkeypatch, 2)  # a second, sleeping rank on the node
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with threadpool_limits(limits=1, user_api="blas"):
            with _threads.root_build(MPI.COMM_SELF, 0) as n:
                assert n == _threads.cpus() == _threads.fft_workers()
                assert torch.get_num_threads() == n
                assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} <= {n}
            assert torch.get_num_threads() == 1
            assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} <= {1}
        assert _threads._share is None and not _threads._raise
    finally:
        torch.set_num_threads(before)


@needs_masks
def test_widen_lends_the_union_of_masks_to_every_thread_and_restore_takes_it_back():
    import threading

    own = sorted(os.sched_getaffinity(0))
    if len(own) < 2:
        pytest.skip("needs two CPUs")
    first, second = own[0], own[1]
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        os.sched_setaffinity(0, {first})
        os.sched_setaffinity(worker.native_id, {first})
        assert _threads._widen([[first]]) is None  # nothing to borrow
        saved = _threads._widen([[first], [second]])
        assert saved is not None
        assert os.sched_getaffinity(0) == {first, second} == os.sched_getaffinity(worker.native_id)
        _threads._restore(saved)
        assert os.sched_getaffinity(0) == {first} == os.sched_getaffinity(worker.native_id)
    finally:
        stop.set()
        worker.join()
        os.sched_setaffinity(0, own)


@needs_masks
def test_a_failing_step_of_a_setting_is_skipped_and_the_rest_restored(monkeypatch, caplog):
    """Raising on the root inside root_build would leave the other ranks waiting: a step that
    fails (here torch's) is a warning, and the other settings still come back."""
    _crowded(monkeypatch, 2)
    before = torch.get_num_threads()

    def refuse(n):
        raise RuntimeError("refused")

    try:
        torch.set_num_threads(1)
        monkeypatch.setattr(torch, "set_num_threads", refuse)
        with caplog.at_level("WARNING", logger="cfdseed._threads"):
            with _threads.root_build(MPI.COMM_SELF, 0) as n:
                assert n == _threads.cpus() and _threads.fft_workers() == n
        assert "torch threads not set (RuntimeError: refused)" in caplog.text
        assert _threads._share is None and not _threads._raise and _threads.fft_workers() == _threads.cpus()
    finally:
        monkeypatch.undo()
        torch.set_num_threads(before)
