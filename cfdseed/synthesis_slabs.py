"""The distributed strategy's synthesis: :func:`synthesise_slabs`, :func:`cfdseed.synthesis.synthesise`
with no rank holding more than its x slab (and one copy).

A latent path (plane models) is drawn alike on every rank and each rank generates only its own x
stations; a rollout (conditional models) is sequential in x, so one ring runs on the root and is
scattered to every rank (:func:`_scatter_ring`). Each rank then joins its tiles with the tiles' mean
profiles over every station, puts its stations on the grid's y and z, resamples them in x on kz slabs
(:func:`_resample_x`) and enforces the constraints on x slabs (:func:`cfdseed.pencils.enforce`).
Planning, units, tiles and rollouts are :mod:`cfdseed.synthesis`'s (its module docstring describes
them and :func:`~cfdseed.synthesis.synthesise` every option); the result is the serial field's slab to
round-off. Also importable as ``cfdseed.synthesis.synthesise_slabs``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ._collective import agree, idle_until, run_agreed
from ._memory import trim
from ._threads import solo
from .enforce import DEFAULT_BLEND, DEFAULT_MAX_RATIO
from .grid import Grid, block_split
from .interp import resample_periodic
from .operators import trapezoid_weights
from .pencils import Slabs, _plane_mean
from .pencils import enforce as enforce_slabs
from .synthesis import (
    DEFAULT_REDRAWS,
    SynthesisInfo,
    _log_done,
    _on_grid,
    _plan,
    _Plan,
    _redrawn,
    _rollout,
    _sample,
    _targets,
    join_tiles,
    tile_mean,
)

__all__ = ["synthesise_slabs"]


def synthesise_slabs(comm: Any, model: Any, grid: Grid, rng: np.random.Generator, *,
                     corr_length: float | str | None = "auto", re_tau: float | None = None,
                     u_tau: float | None = None, nu: float | None = None, bulk: float | None = None,
                     batch: int = 64, device: str | None = None, y_method: str = "auto", no_slip: bool = True,
                     divergence_free: bool = True, blend: float = DEFAULT_BLEND, max_ratio: float = DEFAULT_MAX_RATIO,
                     x_stations: int | str = "auto", z_tiles: str = "independent", calibrate: Any = "model",
                     x_construction: str | None = None, anchor: float | str | None = "auto",
                     redraws: int = DEFAULT_REDRAWS) -> tuple[np.ndarray, SynthesisInfo]:
    """Collective: :func:`~cfdseed.synthesis.synthesise` with no rank holding more than its x slab (and one copy).

    Every rank draws the same latent paths (``rng`` in the same state on every rank), generates
    the x stations ``block_split(stations, P, rank)``, joins tiles with reduced means, puts them on
    the grid's y and z, resamples in x by zero-padding in the spectral layout
    (:class:`cfdseed.pencils.Slabs`) and enforces the constraints on x slabs
    (:func:`cfdseed.pencils.enforce`). A rollout (conditional models) is sequential in x: the root
    runs it and sends every rank its stations (:func:`_scatter_ring`). Returns this rank's slab
    ``(3, nx_local, ny, nz)`` of the field :func:`~cfdseed.synthesis.synthesise` makes with the same
    arguments (to round-off) and the same :class:`~cfdseed.synthesis.SynthesisInfo` on every rank.
    """

    load_s = 0.0

    def once(attempt: int) -> tuple[np.ndarray, SynthesisInfo]:
        nonlocal model, load_s
        plan = run_agreed(comm, lambda: _plan(
            model, grid, rng, quiet=attempt > 0, corr_length=corr_length, re_tau=re_tau, u_tau=u_tau, nu=nu, bulk=bulk, batch=batch,
            device=device, no_slip=no_slip, divergence_free=divergence_free, x_stations=x_stations, z_tiles=z_tiles,
            calibrate=calibrate, x_construction=x_construction, anchor=anchor))
        info, gen, ns = plan.info, plan.gen, plan.stations
        model = gen  # a redraw reuses the loaded generator; its info keeps the load's time
        load_s = info.timings["load"] = load_s + info.timings["load"]
        size, rank = comm.Get_size(), comm.Get_rank()
        nx = grid.shape[0]
        t = time.perf_counter()
        if plan.construction == "rollout":
            raw, mean, ns = _scatter_ring(comm, plan, grid, rng, batch)  # ns: the stations the slabs hold
        else:
            mine = block_split(ns, size, rank)

            def sample() -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
                raw = [_sample(gen, lat[mine], batch) for lat in plan.latents]
                # the tiles' mean profiles over every station and z (join_tiles' mean), reduced
                sums = np.stack([r.astype(np.float64).sum(axis=(0, 3)) for r in raw])  # (tiles, 3, ny_m)
                return raw, sums, np.empty_like(sums)
            raw, sums, total = run_agreed(comm, sample)
            comm.Allreduce(sums, total)
            mean = (total / (ns * gen.nz)).mean(axis=0)[None, :, :, None]
        trim()  # the inference's freed buffers out of the allocator's heap before the slab exists
        t_inf = comm.allreduce(time.perf_counter() - t, op=_max_op())
        t = time.perf_counter()
        # every local step between two collectives is agreed: a rank failing alone (memory) must
        # not leave the others in the next collective
        slices = run_agreed(comm, join_tiles, raw, mean=mean)
        del raw
        out = run_agreed(comm, _on_grid, plan, slices, grid, y_method, batch)  # (3, ns_local, ny, nz)
        del slices
        if ns == nx:
            slab = run_agreed(comm, np.ascontiguousarray, out)
        else:
            slab = _resample_x(comm, out, ns, grid)
        del out
        trim()  # the tiles' and joined slices' buffers (heap-carved below 32 MiB) back before the enforcement
        info.timings["inference"] = t_inf
        info.timings["interpolation"] = comm.allreduce(time.perf_counter() - t, op=_max_op())
        stresses, bulk_plus, units = _targets(plan, grid,
                                              lambda: float(_plane_mean(comm, slab[:1], grid)[0] @ trapezoid_weights(grid)))
        t = time.perf_counter()
        rep = enforce_slabs(comm, slab, grid, no_slip=no_slip, divergence_free=divergence_free, bulk=bulk_plus,
                            blend=blend, max_ratio=max_ratio, stresses=stresses)
        slab *= units.u_tau
        info.timings["enforcement"] = comm.allreduce(time.perf_counter() - t, op=_max_op())
        info.enforcement = rep
        if rank == 0:
            _log_done(plan, nx)
        return slab, info

    return _redrawn(once, redraws, comm)


def _scatter_ring(comm: Any, plan: _Plan, grid: Grid, rng: np.random.Generator,
                  batch: int) -> tuple[list[np.ndarray], np.ndarray, int]:
    """Collective: the root runs the rollout while the others sleep, and sends every rank its
    stations; returns them per tile ``(ns_local, 3, ny_m, nz_m)``, the tiles' mean profile
    ``(1, 3, ny_m, 1)`` (:func:`join_tiles`' own) and the station count ``ns``.

    One chain for every rank, not one per rank: a chain amplifies round-off step by step (a
    relative 1e-6 grows ~30-fold over 200 steps of the default model), so rings run on ranks whose
    arithmetic differs in the last bit (GPU kernels, thread counts) would not meet at slab edges.
    A ring longer than the grid's x is resampled to it here (linear in x, this commutes with the y
    and z interpolation). ``rng`` ends in the root's state on every rank.
    """
    from mpi4py.util.dtlib import from_numpy_dtype

    info, size, rank, nx = plan.info, comm.Get_size(), comm.Get_rank(), grid.shape[0]
    ring, head, err = None, None, None
    if rank == 0:
        try:
            with solo():  # the others sleep: the root borrows its node's CPUs
                ring, steps = _rollout(plan.gen, grid.lengths[0], plan.h, plan.re_tau, plan.tiles, rng, batch,
                                       info.anchor)
            stations = ring[0].shape[0]
            mean = tile_mean(ring)  # join_tiles' own, over the whole ring
            if stations > nx:
                ring = [resample_periodic(r, 0, nx) for r in ring]
            ring = [np.ascontiguousarray(r) for r in ring]
            head = (mean, ring[0].shape[0], steps, stations, [(r.shape[1:], r.dtype.str) for r in ring])
        except BaseException as exc:  # noqa: BLE001 - re-raised on every rank by agree (SystemExit unchanged here)
            err = exc
    idle_until(comm)  # the others sleep rather than spin on the cores the root's inference uses
    agree(comm, err)
    mean, ns, info.steps, info.stations, tiles = comm.bcast(head, root=0)
    # each rank's stations straight from the ring's buffers (no pickled copy of the ring on the root)
    blocks = [block_split(ns, size, k) for k in range(size)]
    raw = run_agreed(comm, lambda: [np.empty((blocks[rank].stop - blocks[rank].start, *shape), dtype)
                                    for shape, dtype in tiles])
    for t, (shape, dtype) in enumerate(tiles):
        row = math.prod(shape)
        counts = np.array([(b.stop - b.start) * row for b in blocks], dtype=np.int64)
        send = None if ring is None else [ring[t], counts, np.array([b.start * row for b in blocks], dtype=np.int64),
                                          from_numpy_dtype(np.dtype(dtype))]
        comm.Scatterv(send, [raw[t], from_numpy_dtype(np.dtype(dtype))], root=0)
    del ring
    rng.bit_generator.state = comm.bcast(rng.bit_generator.state, root=0)  # the draws, taken everywhere
    return raw, mean, ns


def _max_op() -> Any:
    """``MPI.MAX`` (mpi4py imported on first use: importing this module initialises no MPI)."""
    from mpi4py import MPI

    return MPI.MAX


def _resample_x(comm: Any, stations: np.ndarray, ns: int, grid: Grid) -> np.ndarray:
    """Station slabs ``(3, ns_local, ny, nz)`` -> x slabs of ``grid``: :func:`resample_periodic` along x
    (ns < nx) done on kz slabs by zero-padding the x spectrum, one component at a time. Consumes
    ``stations`` (each component's pages are discarded once transformed)."""
    nx, ny, nz = grid.shape
    if ns > nx:
        raise ValueError(f"x stations ({ns}) must not outnumber the grid's x points ({nx})")
    src = Slabs(comm, Grid((ns, ny, nz), grid.lengths, y=grid.y))
    dst = Slabs(comm, grid)
    k = np.fft.fftfreq(ns, 1.0 / ns).astype(int)
    scale = nx / ns

    def padded(spec: np.ndarray) -> np.ndarray:
        """The x spectrum ``spec`` (1, ns, ny, nkz_local) zero-padded to nx modes."""
        out = np.zeros((1, nx, ny, spec.shape[3]), dtype=np.complex128)
        for i, kk in enumerate(k):
            if ns % 2 == 0 and abs(kk) == ns // 2:  # the source Nyquist cosine: half to +N, half to -N
                out[:, ns // 2] += 0.5 * scale * spec[:, i]
                out[:, -(ns // 2)] += 0.5 * scale * spec[:, i]
            else:
                out[:, kk] = scale * spec[:, i]
        return out

    # the local steps between the transposes' collectives are agreed (a rank failing alone, e.g.
    # out of memory, must not leave the others waiting)
    slab = run_agreed(comm, np.empty, dst.slab_shape())
    for c in range(3):
        spec = src.forward(stations[c:c + 1], nyquist=True, consume=True)  # (1, ns, ny, nkz_local)
        out = run_agreed(comm, padded, spec)
        del spec
        dst.backward(out, out=slab[c:c + 1], consume=True)
    return slab
