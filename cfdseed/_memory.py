"""Giving back the physical memory of arrays whose contents are dead but whose buffers stay in use.

The distributed path transforms a slab into a spectrum and back into the same slab: between the
two the slab's values are dead, but it must stay allocated (callers own it, and it is refilled in
full). :func:`discard` hands its pages back to the operating system (Linux ``madvise
MADV_DONTNEED``: resident memory drops at once, the pages come back zero-filled when written), so
a rank's peak holds the spectrum or the slab, not both. Elsewhere it does nothing: the same result,
only a higher peak.
"""

from __future__ import annotations

import ctypes
import mmap
import sys

import numpy as np

__all__ = ["discard", "trim"]

#: Arrays smaller than this are left alone (a few pages save nothing and cost a system call).
MIN_BYTES = 1 << 20
_DONTNEED = 4  # MADV_DONTNEED on Linux
_libc = None


def _madvise() -> object | None:
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            _libc.madvise.restype = ctypes.c_int
        except (OSError, AttributeError):
            _libc = False
    return _libc or None


def discard(a: np.ndarray) -> int:
    """Release the resident pages wholly inside ``a``'s buffer; its values become undefined (zeros
    on Linux) and the caller must overwrite every element before reading one. Returns the bytes
    released (0: not supported here, too small, or not one contiguous buffer)."""
    if not sys.platform.startswith("linux") or a.nbytes < MIN_BYTES or not a.flags.c_contiguous:
        return 0
    libc = _madvise()
    if libc is None:
        return 0
    page = mmap.PAGESIZE
    start = a.ctypes.data
    first = -(-start // page) * page  # whole pages only: the allocator's headers around it stay
    last = (start + a.nbytes) // page * page
    if last <= first:
        return 0
    if libc.madvise(first, last - first, _DONTNEED) != 0:  # type: ignore[attr-defined]
        return 0
    trim()
    return last - first


def trim() -> None:
    """Return the allocator's free memory to the operating system (glibc ``malloc_trim``): buffers
    freed by the transposes would otherwise stay resident in its heap (arrays below its mmap
    threshold, up to 32 MiB, are carved from the heap, and freeing them does not shrink it)."""
    libc = _madvise()
    trim_ = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim_ is not None:
        trim_(0)
