"""Distributed spectra of channel fields: x slabs <-> kz slabs by MPI all-to-all, and the
divergence-free projection on them (the first piece of the distributed strategy: no rank holds
more than its own slab and one transposed copy).

Layouts over the P ranks of a communicator (:class:`Slabs`):

- **x slab** (real): rank r holds the x points ``block_split(nx, P, r)``, every y, every z;
- **kz slab** (complex): rank r holds every kx, every y and the z-rfft modes
  ``block_split(nz // 2 + 1, P, r)``.

:meth:`Slabs.forward` is the z-rfft (local), the transpose and the x-FFT (local): on every rank
exactly the part of :func:`cfdseed.enforce._spectrum` of the global field that it holds;
:meth:`Slabs.backward` its inverse. A spectral layout holds whole (kx, kz) columns in y, so the
projection (one small solve per mode) is local: :func:`project` gives every rank its slab of
:func:`cfdseed.enforce.enforce`'s projection of the global field, to round-off; the stress
calibration (:func:`calibrate`) needs per-row sums over the modes, reduced over the ranks. Ranks
may hold empty slabs (nx or nz // 2 + 1 smaller than P).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._collective import run_agreed
from .grid import Grid, block_split

__all__ = ["Slabs", "project", "calibrate"]


class Slabs:
    """The x-slab and kz-slab layouts of ``grid`` over ``comm`` (collective constructor: none)."""

    def __init__(self, comm: Any, grid: Grid) -> None:
        self.comm, self.grid = comm, grid
        size, rank = comm.Get_size(), comm.Get_rank()
        nx, ny, nz = grid.shape
        self.nkz = nz // 2 + 1
        #: x range of every rank's x slab, and kz range of every rank's kz slab.
        self.x_ranges = [block_split(nx, size, q) for q in range(size)]
        self.kz_ranges = [block_split(self.nkz, size, q) for q in range(size)]
        self.x, self.kz = self.x_ranges[rank], self.kz_ranges[rank]

    def slab_shape(self, ncomp: int = 3) -> tuple[int, int, int, int]:
        """Shape of this rank's x slab: ``(ncomp, nx_local, ny, nz)``."""
        nx, ny, nz = self.grid.shape
        return (ncomp, self.x.stop - self.x.start, ny, nz)

    def spectrum_shape(self, ncomp: int = 3) -> tuple[int, int, int, int]:
        """Shape of this rank's kz slab: ``(ncomp, nx, ny, nkz_local)``."""
        nx, ny, _ = self.grid.shape
        return (ncomp, nx, ny, self.kz.stop - self.kz.start)

    def _check(self, a: np.ndarray, want: tuple[int, ...], what: str) -> None:
        def check() -> None:
            if a.shape != want:
                raise ValueError(f"{what} must have shape {want} on rank {self.comm.Get_rank()}, got {a.shape}")
        run_agreed(self.comm, check)

    def _exchange(self, parts: list[np.ndarray], shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
        """All-to-all of complex arrays: ``parts[q]`` to rank q; returns the arrays of ``shapes`` received."""
        from mpi4py import MPI

        send = np.concatenate([p.reshape(-1) for p in parts]) if parts else np.zeros(0, np.complex128)
        scounts = np.array([p.size for p in parts], dtype=np.int64)
        rcounts = np.array([int(np.prod(s)) for s in shapes], dtype=np.int64)
        recv = np.empty(int(rcounts.sum()), dtype=np.complex128)
        sdis = np.concatenate([[0], np.cumsum(scounts)[:-1]]).astype(np.int64)
        rdis = np.concatenate([[0], np.cumsum(rcounts)[:-1]]).astype(np.int64)
        self.comm.Alltoallv([send, scounts, sdis, MPI.C_DOUBLE_COMPLEX], [recv, rcounts, rdis, MPI.C_DOUBLE_COMPLEX])
        return [recv[rdis[q]:rdis[q] + rcounts[q]].reshape(shapes[q]) for q in range(len(shapes))]

    def forward(self, slab: np.ndarray) -> np.ndarray:
        """Collective: this rank's kz slab ``(ncomp, nx, ny, nkz_local)`` of the spectrum of the x slabs."""
        from scipy import fft as sfft

        slab = np.asarray(slab, dtype=np.float64)
        ncomp = slab.shape[0] if slab.ndim == 4 else -1
        self._check(slab, self.slab_shape(max(ncomp, 0)), "the x slab")
        nx, ny, nz = self.grid.shape
        a = sfft.rfft(slab, axis=3, workers=-1) if slab.size else np.zeros(slab.shape[:3] + (self.nkz,), np.complex128)
        parts = [np.ascontiguousarray(a[..., k]) for k in self.kz_ranges]
        nkzl = self.kz.stop - self.kz.start
        shapes = [(ncomp, x.stop - x.start, ny, nkzl) for x in self.x_ranges]
        spec = np.empty((ncomp, nx, ny, nkzl), dtype=np.complex128)
        for x, got in zip(self.x_ranges, self._exchange(parts, shapes)):
            spec[:, x] = got
        if spec.size:
            spec = sfft.fft(spec, axis=1, workers=-1, overwrite_x=True)
        if self.grid.operators == "spectral":  # as cfdseed.enforce._spectrum: no Nyquist modes
            if nx % 2 == 0:
                spec[:, nx // 2] = 0.0
            if nz % 2 == 0 and self.kz.start <= nz // 2 < self.kz.stop:
                spec[..., nz // 2 - self.kz.start] = 0.0
        return spec

    def backward(self, spec: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Collective: inverse of :meth:`forward` into this rank's x slab (``out`` when given)."""
        from scipy import fft as sfft

        spec = np.asarray(spec, dtype=np.complex128)
        ncomp = spec.shape[0] if spec.ndim == 4 else -1
        self._check(spec, self.spectrum_shape(max(ncomp, 0)), "the kz slab")
        nx, ny, nz = self.grid.shape
        b = sfft.ifft(spec, axis=1, workers=-1) if spec.size else spec
        parts = [np.ascontiguousarray(b[:, x]) for x in self.x_ranges]
        nxl = self.x.stop - self.x.start
        shapes = [(ncomp, nxl, ny, k.stop - k.start) for k in self.kz_ranges]
        full = np.empty((ncomp, nxl, ny, self.nkz), dtype=np.complex128)
        for k, got in zip(self.kz_ranges, self._exchange(parts, shapes)):
            full[..., k] = got
        res = sfft.irfft(full, n=nz, axis=3, workers=-1) if full.size else np.zeros((ncomp, nxl, ny, nz))
        if out is None:
            return res
        out[...] = res
        return out


def project(comm: Any, slab: np.ndarray, grid: Grid) -> np.ndarray:
    """Collective: the divergence-free projection of the x slabs, in place (returns ``slab``).

    Every rank gets its slab of what :func:`cfdseed.enforce.enforce` (``divergence_free`` alone)
    makes of the global field, to round-off; peak memory per rank: its slab and two spectral copies.
    """
    from .enforce import _project_spectrum, _Projector

    slabs = Slabs(comm, grid)
    spec = slabs.forward(slab)
    if spec.shape[3]:
        _project_spectrum(spec, grid, _Projector(grid), kz_range=slabs.kz)
    return slabs.backward(spec, out=slab)


def calibrate(comm: Any, slab: np.ndarray, grid: Grid, stresses: Any, tol: float | None = None) -> Any:
    """Collective: the stress calibration of the x slabs of a no-slip solenoidal field, in place.

    The distributed form of what :func:`cfdseed.enforce.enforce` does with ``stresses``
    (:func:`cfdseed.calibrate.calibrate_spectrum` on kz slabs, per-row sums reduced, the
    projection after each pass where the operator set needs it); returns its
    :class:`~cfdseed.calibrate.CalibrationInfo`, identical on every rank.
    """
    from .calibrate import DEFAULT_TOL, calibrate_spectrum
    from .enforce import _project_spectrum, _Projector, _wavenumbers
    from .operators import column

    slabs = Slabs(comm, grid)
    spec = slabs.forward(slab)
    kx, kz = _wavenumbers(grid)
    exact = grid.operators == "central" and grid.has_walls  # the v-eta rebuild is solenoidal as it is
    proj = None if exact else _Projector(grid)
    walls = column(grid).walls
    tie = -np.linalg.solve(walls[:, [0, -1]], walls[:, 1:-1])  # (2, ny - 2): end rows from the others

    def restore(s: np.ndarray) -> None:  # as cfdseed.enforce._calibrate's: no-slip rows, projection
        ends = np.tensordot(tie, s[:, :, 1:-1], axes=(1, 2))
        s[:, :, 0], s[:, :, -1] = ends[0], ends[1]
        if s.shape[3]:
            _project_spectrum(s, grid, proj, kz_range=slabs.kz)

    # collective inside (identical reduced sums on every rank): its errors are raised everywhere alike
    info = calibrate_spectrum(spec, grid, stresses, kx, kz, None if proj is None else restore,
                              tol=DEFAULT_TOL if tol is None else tol, comm=comm, kz_range=slabs.kz)
    slabs.backward(spec, out=slab)
    return info
