"""Distributed spectra of channel fields: x slabs <-> kz slabs by MPI all-to-all, and the
divergence-free projection, calibration and enforcement on them (the distributed strategy: no rank
holds more than its own slab or its spectrum, plus message buffers of a fixed size).

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

Memory: the transposes move one component and one block of y rows per all-to-all round
(:data:`EXCHANGE_BYTES`), and the in-place steps transform with ``consume``: the slab's pages are
given back while its spectrum lives and the reverse (:func:`cfdseed._memory.discard`), so a rank's
peak is about one slab plus buffers (measured: ``benchmarks/distributed.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._collective import run_agreed
from ._memory import discard
from ._threads import fft_workers
from .grid import Grid, agree_global_grid, block_split

__all__ = ["Slabs", "project", "calibrate", "figures", "enforce", "EXCHANGE_BYTES"]

#: Bytes of one component's rows a transpose moves per message round and rank (the size of its
#: buffers; Slabs.y_chunks): small against a slab, large enough that the rounds' latency is noise.
EXCHANGE_BYTES = 4 << 20

class Slabs:
    """The x-slab and kz-slab layouts of ``grid`` over ``comm``.

    Collective constructor: every rank must pass the same global grid (its block is ignored);
    otherwise a :class:`~cfdseed.errors.GridError` is raised on every rank.
    """

    def __init__(self, comm: Any, grid: Grid) -> None:
        agree_global_grid(comm, grid)  # the layouts and every exchange size derive from it
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

    def _checked(self, a: Any, dtype: type, shape: Callable[[int], tuple[int, ...]],
                 what: str) -> tuple[np.ndarray, int]:
        """Collective: ``a`` as a ``dtype`` array of shape ``shape(ncomp)`` and its ``ncomp``, the
        same on every rank; a ValueError on every rank otherwise (one rank's own, or the counts')."""
        def check() -> tuple[np.ndarray, int]:
            try:
                arr = np.asarray(a, dtype=dtype)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{what} must be an array of {np.dtype(dtype)} values on rank "
                                 f"{self.comm.Get_rank()}, got {type(a).__name__} ({exc})") from None
            ncomp = arr.shape[0] if arr.ndim == 4 else 0
            want = shape(ncomp)
            if arr.shape != want:
                raise ValueError(f"{what} must have shape {want} on rank {self.comm.Get_rank()}, got {arr.shape}")
            return arr, ncomp
        arr, ncomp = run_agreed(self.comm, check)
        counts = self.comm.allgather(ncomp)  # every rank loops over the components' exchanges
        bad = [r for r, n in enumerate(counts) if n != counts[0]]
        if bad:  # the same list on every rank: raised everywhere alike
            raise ValueError(f"{what} must have the same number of components on every rank: rank 0 has "
                             f"{counts[0]}, rank {bad[0]} has {counts[bad[0]]}")
        return arr, ncomp

    def y_chunks(self) -> list[slice]:
        """Blocks of y rows the transposes move one at a time (one component each): about
        :data:`EXCHANGE_BYTES` per rank and message round, the same blocks on every rank."""
        nx, ny, nz = self.grid.shape
        size = self.comm.Get_size()
        per_row = 16 * max(-(-nx // size) * self.nkz, nx * -(-self.nkz // size))  # largest piece of one row
        n = min(ny, max(1, -(-per_row * ny // EXCHANGE_BYTES)))
        return [block_split(ny, n, i) for i in range(n)]

    def _exchange(self, pieces: list[np.ndarray], shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
        """All-to-all of complex arrays: ``pieces[q]`` (any views) to rank q; views of what arrived, of ``shapes``."""
        from .transport import alltoallv

        got = alltoallv(self.comm, pieces, [int(np.prod(s)) for s in shapes], np.complex128)
        return [g.reshape(s) for g, s in zip(got, shapes)]

    def forward(self, slab: np.ndarray, *, nyquist: bool = False, consume: bool = False) -> np.ndarray:
        """Collective: this rank's kz slab ``(ncomp, nx, ny, nkz_local)`` of the spectrum of the x slabs.

        Spectral operators drop the Nyquist modes, as :func:`cfdseed.enforce._spectrum` does,
        unless ``nyquist`` (the exact transform, e.g. for figures of a field that has them).
        One component and one block of y rows (:meth:`y_chunks`) at a time: besides the input and
        the result, buffers of about :data:`EXCHANGE_BYTES`. ``consume``: the input is dead after
        the call and each component's pages are given back once transformed
        (:func:`cfdseed._memory.discard`), so the peak holds little more than one of the two."""
        from scipy import fft as sfft

        slab, ncomp = self._checked(slab, np.float64, self.slab_shape, "the x slab")
        nx, ny, nz = self.grid.shape
        nkzl = self.kz.stop - self.kz.start

        def rfft(rows: np.ndarray) -> np.ndarray:
            return (sfft.rfft(rows, axis=2, workers=fft_workers()) if rows.size
                    else np.zeros(rows.shape[:2] + (self.nkz,), np.complex128))

        def fft_x(c: int, ys: slice, got: list[np.ndarray]) -> None:
            for x, piece in zip(self.x_ranges, got):
                spec[c, x, ys] = piece
            if spec[c, :, ys].size:
                spec[c, :, ys] = sfft.fft(spec[c, :, ys], axis=0, workers=fft_workers())

        # every local step between two exchanges is agreed: a rank failing alone (memory) must not
        # leave the others waiting in the next exchange
        spec = run_agreed(self.comm, np.empty, (ncomp, nx, ny, nkzl), dtype=np.complex128)
        for c in range(ncomp):
            for ys in self.y_chunks():
                a = run_agreed(self.comm, rfft, slab[c, :, ys])
                shapes = [(x.stop - x.start, ys.stop - ys.start, nkzl) for x in self.x_ranges]
                got = self._exchange([a[..., k] for k in self.kz_ranges], shapes)
                del a
                run_agreed(self.comm, fft_x, c, ys, got)
                del got
            if consume:
                discard(slab[c])
        if self.grid.operators == "spectral" and not nyquist:  # as cfdseed.enforce._spectrum
            if nx % 2 == 0:
                spec[:, nx // 2] = 0.0
            if nz % 2 == 0 and self.kz.start <= nz // 2 < self.kz.stop:
                spec[..., nz // 2 - self.kz.start] = 0.0
        return spec

    def backward(self, spec: np.ndarray, out: np.ndarray | None = None, *, consume: bool = False) -> np.ndarray:
        """Collective: inverse of :meth:`forward` into this rank's x slab (``out`` when given);
        one component and one block of y rows at a time. ``spec`` is left as it was, or with
        ``consume`` dead (each component's pages given back once transformed)."""
        from scipy import fft as sfft

        spec, ncomp = self._checked(spec, np.complex128, self.spectrum_shape, "the kz slab")
        nx, ny, nz = self.grid.shape
        nxl = self.x.stop - self.x.start

        def ifft(cols: np.ndarray) -> np.ndarray:
            return sfft.ifft(cols, axis=0, workers=fft_workers()) if cols.size else cols

        def irfft(c: int, ys: slice, got: list[np.ndarray]) -> None:
            full = np.empty((nxl, ys.stop - ys.start, self.nkz), dtype=np.complex128)
            for k, piece in zip(self.kz_ranges, got):
                full[..., k] = piece
            res[c, :, ys] = sfft.irfft(full, n=nz, axis=2, workers=fft_workers()) if full.size else 0.0

        # every local step between two exchanges is agreed (as in forward)
        res = run_agreed(self.comm, np.empty, (ncomp, nxl, ny, nz)) if out is None else out
        for c in range(ncomp):
            for ys in self.y_chunks():
                b = run_agreed(self.comm, ifft, spec[c, :, ys])
                shapes = [(nxl, ys.stop - ys.start, k.stop - k.start) for k in self.kz_ranges]
                got = self._exchange([b[x] for x in self.x_ranges], shapes)
                del b
                run_agreed(self.comm, irfft, c, ys, got)
                del got
            if consume:
                discard(spec[c])
        return res


def project(comm: Any, slab: np.ndarray, grid: Grid) -> np.ndarray:
    """Collective: the divergence-free projection of the x slabs, in place (returns ``slab``).

    Every rank gets its slab of what :func:`cfdseed.enforce.enforce` (``divergence_free`` alone)
    makes of the global field, to round-off; peak memory per rank: one spectral copy of its slab
    (the slab's pages are discarded meanwhile, :func:`cfdseed._memory.discard`) and small buffers.
    """
    from .enforce import _project_spectrum, _Projector

    slabs = Slabs(comm, grid)
    spec = slabs.forward(slab, consume=True)  # refilled by backward: the peak holds the spectrum or the slab

    def solve() -> None:  # only the ranks holding kz modes solve: their errors agreed with the rest
        if spec.shape[3]:
            _project_spectrum(spec, grid, _Projector(grid), kz_range=slabs.kz)

    run_agreed(comm, solve)
    return slabs.backward(spec, out=slab, consume=True)


def calibrate(comm: Any, slab: np.ndarray, grid: Grid, stresses: Any, tol: float | None = None) -> Any:
    """Collective: the stress calibration of the x slabs of a no-slip solenoidal field, in place.

    The distributed form of what :func:`cfdseed.enforce.enforce` does with ``stresses``
    (:func:`cfdseed.calibrate.calibrate_spectrum` on kz slabs, per-row sums reduced, the
    projection after each pass where the operator set needs it); returns its
    :class:`~cfdseed.calibrate.CalibrationInfo`, identical on every rank.
    """
    from .calibrate import DEFAULT_TOL, calibrate_spectrum
    from .enforce import _restorer, _wavenumbers

    slabs = Slabs(comm, grid)
    spec = slabs.forward(slab, consume=True)  # refilled by backward
    kx, kz = _wavenumbers(grid)
    # collective inside (identical reduced sums on every rank): its errors are raised everywhere alike
    info = calibrate_spectrum(spec, grid, stresses, kx, kz, _restorer(grid, slabs.kz, comm),
                              tol=DEFAULT_TOL if tol is None else tol, comm=comm, kz_range=slabs.kz)
    slabs.backward(spec, out=slab, consume=True)
    return info


def _plane_mean(comm: Any, slab: np.ndarray, grid: Grid) -> np.ndarray:
    """Plane averages ``(ncomp, ny)`` of the x slabs (collective)."""
    local = slab.sum(axis=(1, 3), dtype=np.float64) if slab.size else np.zeros(slab.shape[:1] + slab.shape[2:3])
    total = np.empty_like(local)
    comm.Allreduce(np.ascontiguousarray(local), total)
    return total / (grid.shape[0] * grid.shape[2])


def figures(comm: Any, slab: np.ndarray, grid: Grid) -> dict[str, float]:
    """Collective: :func:`cfdseed.operators.field_figures` of the field whose x slabs the ranks hold."""
    from mpi4py import MPI

    from .enforce import _wavenumbers
    from .operators import column, wall_values

    slabs = Slabs(comm, grid)  # first: the grid agreed before any reduction over it

    def scan() -> tuple[float, float, float]:
        """This rank's non-finite count, max |u| and max |wall value|, x plane by x plane (agreed:
        no slab-sized temporaries, and a failure on one rank is raised on all)."""
        if np.shape(slab) != slabs.slab_shape(3):
            raise ValueError(f"the x slab must have shape {slabs.slab_shape(3)} on rank {comm.Get_rank()}, "
                             f"got {np.shape(slab)}")
        bad = umax = wall = 0.0
        for i in range(slab.shape[1]):
            plane = slab[:, i:i + 1]
            bad += plane.size - np.count_nonzero(np.isfinite(plane))
            if not bad:
                umax = max(umax, float(plane.max(initial=0.0)), -float(plane.min(initial=0.0)))
                lo, hi = wall_values(plane, grid)
                wall = max(wall, float(np.abs(lo).max(initial=0.0)), float(np.abs(hi).max(initial=0.0)))
        return bad, umax, wall

    bad, umax, wall = run_agreed(comm, scan)
    bad = comm.allreduce(bad)
    if bad:
        return {"nonfinite": bad}
    col = column(grid)
    ub = float(_plane_mean(comm, slab[:1], grid)[0] @ col.bulk)
    umax = comm.allreduce(umax, op=MPI.MAX)
    wall = comm.allreduce(wall, op=MPI.MAX)
    uref = abs(ub) or umax or 1.0
    # the divergence per mode (the operator set's wavenumbers and d/dy), one component's spectrum at
    # a time, back on the x slabs
    kx, kz = _wavenumbers(grid)
    kz = kz[slabs.kz]
    div = run_agreed(comm, np.zeros, slabs.spectrum_shape(1), dtype=np.complex128)
    nx = grid.shape[0]
    cx = max(1, EXCHANGE_BYTES // max(1, 16 * div[0, 0].size))  # kx planes per d/dy product

    def add(c: int, spec: np.ndarray, div: np.ndarray) -> None:  # agreed: between two transposes' collectives
        if c == 1:
            for x0 in range(0, nx, cx):  # d/dy by blocks of kx: no second spectrum-sized array
                div[0, x0:x0 + cx] += col.dy @ spec[0, x0:x0 + cx]
        else:
            spec *= 1j * (kx[None, :, None, None] if c == 0 else kz[None, None, None, :])
            div[...] += spec
    for c in range(3):
        spec = slabs.forward(slab[c:c + 1], nyquist=True)  # d/dy sees v's Nyquist modes; d/dx, d/dz do not
        run_agreed(comm, add, c, spec, div)
        del spec
    d = slabs.backward(div, consume=True)[0][:, col.rows]
    del div

    def sums() -> tuple[float, float]:  # plane by plane: no slab-sized temporaries (agreed)
        dmax, dss = 0.0, 0.0
        for plane in d:
            dmax, dss = max(dmax, float(np.abs(plane).max(initial=0.0))), dss + float(np.vdot(plane, plane))
        return dmax, dss
    dmax, dss = run_agreed(comm, sums)
    dmax = comm.allreduce(dmax, op=MPI.MAX)
    dss, count = comm.allreduce(dss), comm.allreduce(d.size)
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
                calibrate=lambda a, st, tol: calibrate(comm, a, grid, st, tol),
                local=lambda fn, *args: run_agreed(comm, fn, *args))
    # every figure the steps decide on is reduced: the same decisions and errors on every rank
    return run_steps(slab, grid, ops, no_slip=no_slip, divergence_free=divergence_free, bulk=bulk, bounds=bounds,
                     cross_flow=cross_flow, stresses=stresses,
                     calibration_tol=DEFAULT_TOL if calibration_tol is None else calibration_tol, blend=blend,
                     max_ratio=max_ratio)
