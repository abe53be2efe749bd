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
calibration (:func:`calibrate`) needs per-row sums over the modes, reduced over the ranks;
:func:`enforce` is :func:`cfdseed.enforce.enforce` on x slabs (every step, the figures reduced over
the ranks). Ranks may hold empty slabs (nx or nz // 2 + 1 smaller than P).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._collective import run_agreed
from .grid import Grid, block_split

__all__ = ["Slabs", "project", "calibrate", "figures", "enforce", "bytes_sent"]

_SENT = [0]  # bytes this process has sent to other ranks in transposes (bytes_sent)


def bytes_sent(reset: bool = False) -> int:
    """Bytes this rank has sent to other ranks in :class:`Slabs` transposes (the benchmarks' traffic
    figure); ``reset`` starts the count again."""
    n = _SENT[0]
    if reset:
        _SENT[0] = 0
    return n


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

    def _exchange(self, pieces: list[np.ndarray], shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
        """All-to-all of complex arrays: ``pieces[q]`` (any views) to rank q, packed straight into one
        send buffer; returns views of the receive buffer with ``shapes``."""
        from mpi4py import MPI

        scounts = np.array([p.size for p in pieces], dtype=np.int64)
        rcounts = np.array([int(np.prod(s)) for s in shapes], dtype=np.int64)
        sdis = np.concatenate([[0], np.cumsum(scounts)[:-1]]).astype(np.int64)
        rdis = np.concatenate([[0], np.cumsum(rcounts)[:-1]]).astype(np.int64)
        send = np.empty(int(scounts.sum()), dtype=np.complex128)
        for p, d in zip(pieces, sdis):
            send[d:d + p.size].reshape(p.shape)[...] = p
        _SENT[0] += 16 * int(scounts.sum() - scounts[self.comm.Get_rank()])
        recv = np.empty(int(rcounts.sum()), dtype=np.complex128)
        self.comm.Alltoallv([send, scounts, sdis, MPI.C_DOUBLE_COMPLEX], [recv, rcounts, rdis, MPI.C_DOUBLE_COMPLEX])
        del send
        return [recv[rdis[q]:rdis[q] + rcounts[q]].reshape(shapes[q]) for q in range(len(shapes))]

    def forward(self, slab: np.ndarray, *, nyquist: bool = False) -> np.ndarray:
        """Collective: this rank's kz slab ``(ncomp, nx, ny, nkz_local)`` of the spectrum of the x slabs.

        Spectral operators drop the Nyquist modes, as :func:`cfdseed.enforce._spectrum` does,
        unless ``nyquist`` (the exact transform, e.g. for figures of a field that has them).
        One component at a time: besides the input and the result, the buffers of one component."""
        from scipy import fft as sfft

        slab = np.asarray(slab, dtype=np.float64)
        ncomp = slab.shape[0] if slab.ndim == 4 else -1
        self._check(slab, self.slab_shape(max(ncomp, 0)), "the x slab")
        nx, ny, nz = self.grid.shape
        nkzl = self.kz.stop - self.kz.start
        spec = np.empty((ncomp, nx, ny, nkzl), dtype=np.complex128)
        shapes = [(x.stop - x.start, ny, nkzl) for x in self.x_ranges]
        for c in range(ncomp):
            a = sfft.rfft(slab[c], axis=2, workers=-1) if slab[c].size else np.zeros(slab.shape[1:3] + (self.nkz,),
                                                                                     np.complex128)
            got = self._exchange([a[..., k] for k in self.kz_ranges], shapes)
            del a
            for x, piece in zip(self.x_ranges, got):
                spec[c, x] = piece
            del got
            if spec[c].size:
                spec[c] = sfft.fft(spec[c], axis=0, workers=-1, overwrite_x=True)
        if self.grid.operators == "spectral" and not nyquist:  # as cfdseed.enforce._spectrum
            if nx % 2 == 0:
                spec[:, nx // 2] = 0.0
            if nz % 2 == 0 and self.kz.start <= nz // 2 < self.kz.stop:
                spec[..., nz // 2 - self.kz.start] = 0.0
        return spec

    def backward(self, spec: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Collective: inverse of :meth:`forward` into this rank's x slab (``out`` when given);
        one component at a time (``spec`` is left as it was)."""
        from scipy import fft as sfft

        spec = np.asarray(spec, dtype=np.complex128)
        ncomp = spec.shape[0] if spec.ndim == 4 else -1
        self._check(spec, self.spectrum_shape(max(ncomp, 0)), "the kz slab")
        nx, ny, nz = self.grid.shape
        nxl = self.x.stop - self.x.start
        res = np.empty((ncomp, nxl, ny, nz)) if out is None else out
        shapes = [(nxl, ny, k.stop - k.start) for k in self.kz_ranges]
        for c in range(ncomp):
            b = sfft.ifft(spec[c], axis=0, workers=-1) if spec[c].size else spec[c]
            got = self._exchange([b[x] for x in self.x_ranges], shapes)
            del b
            full = np.empty((nxl, ny, self.nkz), dtype=np.complex128)
            for k, piece in zip(self.kz_ranges, got):
                full[..., k] = piece
            del got
            res[c] = sfft.irfft(full, n=nz, axis=2, workers=-1) if full.size else 0.0
        return res


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


def _plane_mean(comm: Any, slab: np.ndarray, grid: Grid) -> np.ndarray:
    """Plane averages ``(ncomp, ny)`` of the x slabs (collective)."""
    local = slab.sum(axis=(1, 3)) if slab.size else np.zeros(slab.shape[:1] + slab.shape[2:3])
    total = np.empty_like(local)
    comm.Allreduce(np.ascontiguousarray(local), total)
    return total / (grid.shape[0] * grid.shape[2])


def figures(comm: Any, slab: np.ndarray, grid: Grid) -> dict[str, float]:
    """Collective: :func:`cfdseed.operators.field_figures` of the field whose x slabs the ranks hold."""
    from mpi4py import MPI

    from .enforce import _wavenumbers
    from .operators import column, wall_values

    bad = float(slab.size - np.count_nonzero(np.isfinite(slab)))
    bad = comm.allreduce(bad)
    if bad:
        return {"nonfinite": bad}
    col = column(grid)
    ub = float(_plane_mean(comm, slab[:1], grid)[0] @ col.bulk)
    umax = comm.allreduce(float(np.abs(slab).max(initial=0.0)), op=MPI.MAX)
    uref = abs(ub) or umax or 1.0
    lo, hi = wall_values(slab, grid)
    wall = comm.allreduce(float(max(np.abs(lo).max(initial=0.0), np.abs(hi).max(initial=0.0))), op=MPI.MAX)
    # the divergence per mode (the operator set's wavenumbers and d/dy), back on the x slabs
    slabs = Slabs(comm, grid)
    spec = slabs.forward(slab, nyquist=True)  # d/dy sees v's Nyquist modes; d/dx, d/dz do not
    kx, kz = _wavenumbers(grid)
    kz = kz[slabs.kz]
    div = 1j * kx[None, :, None, None] * spec[:1] + 1j * kz[None, None, None, :] * spec[2:3]
    div[0] += np.moveaxis(np.tensordot(col.dy, spec[1], axes=(1, 1)), 0, 1)
    d = slabs.backward(div)[0][:, col.rows]
    dmax = comm.allreduce(float(np.abs(d).max(initial=0.0)), op=MPI.MAX)
    dss, count = comm.allreduce(float(np.dot(d.ravel(), d.ravel()))), comm.allreduce(d.size)
    scale = 0.5 * grid.lengths[1] / uref
    return {"div_max": dmax * scale, "div_rms": float(np.sqrt(dss / count)) * scale if count else 0.0,
            "wall_max": wall, "bulk": ub, "max_abs": umax, "nonfinite": 0.0}


def enforce(comm: Any, slab: np.ndarray, grid: Grid, *, no_slip: bool = True, divergence_free: bool = True,
            bulk: float | None | bool = True, bounds: bool = True, cross_flow: bool = True,
            stresses: Any = None, calibration_tol: float | None = None, blend: float | None = None,
            max_ratio: float | None = None) -> Any:
    """Collective: :func:`cfdseed.enforce.enforce` on the x slabs, in place; returns the
    :class:`~cfdseed.enforce.EnforceReport` (identical on every rank).

    ``slab`` is this rank's x slab ``(3, nx_local, ny, nz)``, C-contiguous float64. Every step is
    the serial one (no-slip and bounds per column, plane means and sums reduced, projection and
    calibration on kz slabs), so the field is the serial field to round-off.

    Raises
    ------
    SourceError, ValueError
        As :func:`cfdseed.enforce.enforce`, on every rank alike.
    """
    from .enforce import DEFAULT_BLEND, DEFAULT_MAX_RATIO, DEFAULT_TOL, Steps, check_options, require_grid, run_steps
    from .errors import SourceError

    blend = DEFAULT_BLEND if blend is None else blend
    max_ratio = DEFAULT_MAX_RATIO if max_ratio is None else max_ratio
    slabs = Slabs(comm, grid)

    def check() -> None:
        require_grid(grid)
        if not (isinstance(slab, np.ndarray) and slab.dtype == np.float64 and slab.flags.c_contiguous):
            raise ValueError("slab must be a C-contiguous float64 array (it is enforced in place)")
        if slab.shape != slabs.slab_shape():
            raise SourceError(f"slab must have shape {slabs.slab_shape()} on rank {comm.Get_rank()}, got {slab.shape}")
        check_options(grid, blend, stresses, no_slip, divergence_free)
    run_agreed(comm, check)
    ops = Steps(figures=lambda a: figures(comm, a, grid), project=lambda a: project(comm, a, grid),
                plane_mean=lambda a: _plane_mean(comm, a, grid),
                calibrate=lambda a, st, tol: calibrate(comm, a, grid, st, tol))
    # every figure the steps decide on is reduced: the same decisions and errors on every rank
    return run_steps(slab, grid, ops, no_slip=no_slip, divergence_free=divergence_free, bulk=bulk, bounds=bounds,
                     cross_flow=cross_flow, stresses=stresses,
                     calibration_tol=DEFAULT_TOL if calibration_tol is None else calibration_tol, blend=blend,
                     max_ratio=max_ratio)
