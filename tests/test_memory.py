"""cfdseed._memory.discard: resident pages given back, the array still usable."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from cfdseed._memory import MIN_BYTES, discard


def _resident_kib() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise(MADV_DONTNEED) is Linux's")
def test_discard_gives_back_the_pages_and_the_array_can_be_refilled():
    a = np.ones((4, 64 << 10))  # 2 MiB, every page touched
    before = _resident_kib()
    released = discard(a[1:3])
    assert released >= a[1:3].nbytes - 2 * 4096
    assert before - _resident_kib() >= 0.8 * released / 1024  # resident memory dropped at once
    assert (a[0] == 1).all() and (a[3] == 1).all()  # neighbours untouched (whole pages inside only)
    assert (a[1:3] == 0).sum() >= released // 8 - 1  # the discarded pages read back as zeros
    a[1:3] = 2.0  # refilled: an ordinary array again
    assert (a[1:3] == 2).all()


def test_discard_leaves_small_and_strided_arrays_alone():
    small = np.ones(MIN_BYTES // 8 - 1)
    assert discard(small) == 0 and (small == 1).all()
    big = np.ones((2, MIN_BYTES // 8 + 512))
    assert discard(big[:, ::2]) == 0 and (big == 1).all()
