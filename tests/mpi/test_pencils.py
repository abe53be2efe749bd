"""x slabs <-> kz slabs (cfdseed.pencils) and the distributed projection, against the serial code."""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from cfdseed.enforce import _project, _spectrum, enforce
from cfdseed.grid import Grid
from cfdseed.operators import field_figures
from cfdseed.pencils import Slabs, project

comm = MPI.COMM_WORLD

GRIDS = {
    "chebyshev": lambda: Grid((12, 17, 10), (2 * np.pi, 2.0, np.pi), y="chebyshev"),
    "odd-tanh": lambda: Grid((9, 13, 7), (3.0, 2.0, 1.5), y="tanh:2.0"),
    "cell-centred": lambda: Grid((8, 12, 6), (4.0, 2.0, 2.0), y="uniform-cc"),
    "spectral": lambda: Grid((8, 16, 8), (np.pi, 2.0, np.pi / 2), y="chebyshev-cc", operators="spectral"),
    "thin": lambda: Grid((2, 9, 2), (1.0, 2.0, 1.0), y="uniform"),  # fewer x points and kz modes than ranks
}


@pytest.fixture(autouse=True, params=["buffers", "row-by-row"])
def _exchange_size(request, monkeypatch):
    """Every test twice: the default transpose buffers (one round on these grids) and one y row, one
    component and one x block per message round (many rounds, as on a large grid), with every dead
    buffer's pages given back however small (so that a value read after its discard shows)."""
    if request.param == "row-by-row":
        import cfdseed._memory
        import cfdseed.pencils
        import cfdseed.transport

        monkeypatch.setattr(cfdseed._memory, "MIN_BYTES", 0)
        monkeypatch.setattr(cfdseed.pencils, "EXCHANGE_BYTES", 1)
        monkeypatch.setattr(cfdseed.transport, "SLAB_ROUND_BYTES", 1)


def _maxabs(a: np.ndarray) -> float:
    return float(np.abs(a).max(initial=0.0))  # empty slabs: 0


def _global(grid: Grid, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((3, *grid.shape))


@pytest.mark.parametrize("name", GRIDS)
def test_forward_is_the_serial_spectrum_and_backward_inverts_it(name):
    grid = GRIDS[name]()
    f = _global(grid)
    slabs = Slabs(comm, grid)
    spec = slabs.forward(f[:, slabs.x])
    want = _spectrum(f, grid)[..., slabs.kz]
    assert spec.shape == want.shape == slabs.spectrum_shape()
    assert _maxabs(spec - want) <= 1e-12 * max(_maxabs(want), 1.0)
    back = slabs.backward(spec)
    ref = np.fft.irfft(np.fft.ifft(_spectrum(f, grid), axis=1), n=grid.shape[2], axis=3)[:, slabs.x]
    assert back.shape == slabs.slab_shape() and _maxabs(back - ref) <= 1e-12


@pytest.mark.parametrize("name", GRIDS)
def test_distributed_projection_is_the_serial_projection(name):
    grid = GRIDS[name]()
    f = _global(grid, seed=7)
    walled, _ = enforce(f, grid, no_slip=True, divergence_free=False, bulk=False, bounds=False, cross_flow=False)
    serial = walled.copy()
    _project(serial, grid)
    slabs = Slabs(comm, grid)
    mine = np.ascontiguousarray(walled[:, slabs.x])
    out = project(comm, mine, grid)
    assert out is mine
    scale = np.abs(serial).max()
    assert _maxabs(mine - serial[:, slabs.x]) <= 1e-11 * scale
    whole = np.concatenate(comm.allgather(mine), axis=1)
    assert field_figures(whole, grid)["div_max"] <= 1e-10 * scale


def test_a_wrong_slab_raises_on_every_rank():
    grid = GRIDS["chebyshev"]()
    slabs = Slabs(comm, grid)
    bad = np.zeros(slabs.slab_shape()) if comm.rank else np.zeros((3, 1, 1, 1))
    with pytest.raises(ValueError, match="x slab must have shape"):
        slabs.forward(bad)


@pytest.mark.parametrize("name", ["chebyshev", "odd-tanh", "cell-centred", "spectral", "thin-calibration"])
def test_distributed_calibration_is_the_serial_calibration(name):
    """A reachable target: the field's own statistics, rescaled by 0.9-1.15."""
    from cfdseed.calibrate import moments
    from cfdseed.targets import Stresses
    from cfdseed.enforce import _calibrate
    from cfdseed.pencils import calibrate

    grid = Grid((6, 17, 4), (2.0, 2.0, 1.0), y="chebyshev") if name == "thin-calibration" else GRIDS[name]()
    f = _global(grid, seed=11)
    base, _ = enforce(f, grid, bulk=False, bounds=False)  # no-slip, solenoidal, no mean cross-flow
    base[0] += np.sin(np.pi * grid.y / grid.lengths[1])[None, :, None]  # a mean profile
    m = moments(_spectrum(base, grid), grid.shape[0], grid.shape[2])
    target = Stresses(U=1.1 * m["U"], uu=1.15 * m["uu"], vv=0.9 * m["vv"], ww=1.1 * m["ww"], uv=m["uv"] - 0.02)
    serial = base.copy()
    want = _calibrate(serial, grid, target, 1e-3)
    slabs = Slabs(comm, grid)
    mine = np.ascontiguousarray(base[:, slabs.x])
    info = calibrate(comm, mine, grid, target, 1e-3)
    assert info.iterations == want.iterations and info.converged == want.converged
    for k, v in want.after.items():
        assert info.after[k] == pytest.approx(v, rel=1e-6, abs=1e-12)
    assert _maxabs(mine - serial[:, slabs.x]) <= 1e-10 * np.abs(serial).max()
    assert max(want.before.values()) > 0.05 and max(want.resolved.values()) < 0.2  # it did calibrate


def test_an_unreachable_calibration_raises_the_same_error_on_every_rank():
    from cfdseed.targets import stress_target
    from cfdseed.errors import SourceError
    from cfdseed.pencils import calibrate

    grid = GRIDS["chebyshev"]()
    base, _ = enforce(_global(grid), grid, bulk=False, bounds=False)
    slabs = Slabs(comm, grid)
    with pytest.raises(SourceError, match="stress calibration failed"):
        calibrate(comm, np.ascontiguousarray(base[:, slabs.x]), grid,
                  stress_target("lee-moser-180").on_grid(grid.y, grid.lengths[1]))


@pytest.mark.parametrize("name", GRIDS)
def test_distributed_figures_are_the_serial_figures(name):
    from cfdseed.pencils import figures

    grid = GRIDS[name]()
    f = _global(grid, seed=5)
    f[0] += 3.0
    want = field_figures(f, grid)
    slabs = Slabs(comm, grid)
    got = figures(comm, np.ascontiguousarray(f[:, slabs.x]), grid)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-10, abs=1e-12), k
    bad = f.copy()
    bad[1, 0, 2, 1] = np.nan
    got = figures(comm, np.ascontiguousarray(bad[:, slabs.x]), grid)
    assert got == {"nonfinite": 1.0}


@pytest.mark.parametrize("name", ["chebyshev", "odd-tanh", "cell-centred", "spectral"])
def test_distributed_enforcement_is_the_serial_enforcement(name):
    from cfdseed.calibrate import moments
    from cfdseed.targets import Stresses
    from cfdseed.pencils import enforce as enforce_slabs

    grid = GRIDS[name]()
    f = _global(grid, seed=13)
    f[0] += np.sin(np.pi * grid.y / grid.lengths[1])[None, :, None] * 5.0
    pre, _ = enforce(f, grid, bulk=False, bounds=False)
    m = moments(_spectrum(pre, grid), grid.shape[0], grid.shape[2])
    target = Stresses(U=1.1 * m["U"], uu=1.15 * m["uu"], vv=0.9 * m["vv"], ww=1.1 * m["ww"], uv=m["uv"] - 0.02)
    want, wrep = enforce(f, grid, bulk=4.0, stresses=target, calibration_tol=1e-3)
    slabs = Slabs(comm, grid)
    mine = np.ascontiguousarray(f[:, slabs.x])
    rep = enforce_slabs(comm, mine, grid, bulk=4.0, stresses=target, calibration_tol=1e-3)
    assert rep.steps == wrep.steps
    assert _maxabs(mine - want[:, slabs.x]) <= 1e-10 * np.abs(want).max()
    for k in ("bulk", "max_abs", "wall_max"):
        assert rep.after[k] == pytest.approx(wrep.after[k], rel=1e-9, abs=1e-12)
    assert rep.after["div_max"] < 1e-10 and rep.after["bulk"] == pytest.approx(4.0, rel=1e-12)


def test_distributed_enforcement_refuses_what_the_serial_one_refuses():
    from cfdseed.errors import SourceError
    from cfdseed.pencils import enforce as enforce_slabs

    grid = GRIDS["chebyshev"]()
    f = _global(grid)
    slabs = Slabs(comm, grid)
    mine = np.ascontiguousarray(f[:, slabs.x])
    if comm.rank == comm.size - 1 and mine.size:
        mine[0, 0, 3, 0] = np.inf
    with pytest.raises(SourceError, match="non-finite"):
        enforce_slabs(comm, mine, grid)
    wrong = np.zeros((3, 1, 1, 1)) if comm.rank == 0 else np.zeros(slabs.slab_shape())
    with pytest.raises(SourceError, match="slab must have shape"):
        enforce_slabs(comm, wrong, grid)


@pytest.mark.parametrize("kind", ["block", "yslab", "zslab", "pencil", "bisect0", "bisect2"])
@pytest.mark.parametrize("axes, dtype", [("xyz", np.float64), ("xzy", np.float32)])
def test_slabs_are_delivered_into_any_tiling(kind, axes, dtype):
    from cfdseed.transport import prepare

    from _tilings import decompose

    shape = (7, 9, 5)
    grid = decompose(comm, kind, shape, (2.0, 2.0, 1.0), "chebyshev")
    f = _global(Grid(shape, (2.0, 2.0, 1.0), y="chebyshev"))
    slabs = Slabs(comm, grid)
    plan = prepare(comm, grid, axes=axes, dtype=dtype)
    got = plan.from_slabs(np.ascontiguousarray(f[:, slabs.x]), slabs.x_ranges)
    want = f[(slice(None), *grid.local)].astype(dtype)
    if axes == "xzy":
        want = np.moveaxis(want, 2, 3)
    assert got.dtype == dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def _calibration_case():
    """A solenoidal spectral field with a mean flow and stress targets it can reach: the grid, the
    slabs, the global field and the targets."""
    from cfdseed.calibrate import moments
    from cfdseed.targets import Stresses

    grid = GRIDS["spectral"]()
    base, _ = enforce(_global(grid), grid, bulk=False, bounds=False)
    base[0] += np.sin(np.pi * grid.y / grid.lengths[1])[None, :, None]
    m = moments(_spectrum(base, grid), grid.shape[0], grid.shape[2])
    target = Stresses(U=1.1 * m["U"], uu=1.15 * m["uu"], vv=0.9 * m["vv"], ww=1.1 * m["ww"], uv=m["uv"] - 0.02)
    return grid, Slabs(comm, grid), base, target


def test_a_projection_failing_on_one_rank_fails_every_rank(monkeypatch):
    """The kz slabs' banded solves run only on the ranks that hold modes (none on a rank beyond
    nz // 2 + 1), and a solve may fail on some: agreed, every rank raises the same error, in the
    projection and in the calibration's restore step alike."""
    import cfdseed.enforce
    from cfdseed.pencils import calibrate

    def boom(*args, **kwargs):
        raise OSError(f"injected on rank {comm.rank}")

    grid, slabs, base, target = _calibration_case()
    if comm.rank == 0:
        monkeypatch.setattr(cfdseed.enforce, "_project_spectrum", boom)
    with pytest.raises(OSError, match="injected on rank 0"):
        project(comm, np.ascontiguousarray(base[:, slabs.x]), grid)
    with pytest.raises(OSError, match="injected on rank 0"):
        calibrate(comm, np.ascontiguousarray(base[:, slabs.x]), grid, target)


@pytest.mark.parametrize("step,fn", [("forward", "rfft"), ("forward", "fft"), ("backward", "ifft"), ("backward", "irfft")])
def test_a_transpose_failing_between_its_exchanges_on_one_rank_fails_every_rank(step, fn, monkeypatch):
    """A local FFT of one block of rows (before its exchange, or after it: the landing agreed with
    the next block's packing, or after the loop) fails on the last rank only, on its first block
    or on its last (one block per component, or many: the fixture)."""
    from scipy import fft as sfft

    grid = Grid((8, 9, 6), (1.0, 2.0, 1.0), y="chebyshev")
    slabs = Slabs(comm, grid)
    slab = np.ones(slabs.slab_shape())
    spec = slabs.forward(slab)
    calls = 3 * len(slabs.y_chunks())
    for nth in (1, calls):
        count, real = [0], getattr(sfft, fn)

        def boom(*args, **kwargs):
            count[0] += 1
            if count[0] == nth:
                raise OSError(f"injected on rank {comm.rank}")
            return real(*args, **kwargs)

        if comm.rank == comm.size - 1:
            monkeypatch.setattr(sfft, fn, boom)
        with pytest.raises(OSError) as info:
            slabs.forward(slab) if step == "forward" else slabs.backward(spec)
        monkeypatch.setattr(sfft, fn, real)
        msgs = comm.allgather(str(info.value))
        assert all(f"injected on rank {comm.size - 1}" in m for m in msgs), msgs
    # the next transpose runs as usual (nothing left pending from the failed one)
    np.testing.assert_allclose(slabs.backward(slabs.forward(slab)), slab, atol=1e-12)


@pytest.mark.parametrize("nth", [2, 4])
def test_a_calibration_failing_in_its_own_work_on_one_rank_fails_every_rank(nth, monkeypatch):
    """The calibration's local work between its reductions (d/dy of v over this rank's modes: its
    first pass, and the pass after v's rescaling) fails on the last rank only: every rank raises."""
    import cfdseed.calibrate
    from cfdseed.pencils import calibrate

    grid, slabs, base, target = _calibration_case()
    calls = [0]

    class Numpy:  # numpy as the calibration module sees it, its nth np.ix_ failing (the 1st: the mode selection)
        def __getattr__(self, name):
            return getattr(np, name)

        @staticmethod
        def ix_(*args):
            calls[0] += 1
            if calls[0] == nth:
                raise MemoryError(f"injected on rank {comm.rank}")
            return np.ix_(*args)

    assert slabs.kz.stop > slabs.kz.start  # every rank holds modes on this grid (up to 5 ranks)
    if comm.rank == comm.size - 1:
        monkeypatch.setattr(cfdseed.calibrate, "np", Numpy())
    with pytest.raises(MemoryError) as info:
        calibrate(comm, np.ascontiguousarray(base[:, slabs.x]), grid, target)
    msgs = comm.allgather(str(info.value))
    assert all(f"injected on rank {comm.size - 1}" in m for m in msgs), msgs


@pytest.mark.parametrize("where", ["figures", "no-slip"])
def test_an_enforcement_step_failing_on_one_rank_fails_every_rank(where, monkeypatch):
    """The enforcement's own work on this rank's columns (the figures' scan of the slab, the no-slip
    blends) fails on the last rank only: every rank raises, none waits in the next reduction."""
    import cfdseed.enforce
    import cfdseed.operators
    from cfdseed.pencils import enforce as enforce_slabs

    def boom(*args, **kwargs):
        raise MemoryError(f"injected on rank {comm.rank}")

    grid = GRIDS["spectral"]()
    slabs = Slabs(comm, grid)
    mine = np.ascontiguousarray(_global(grid, seed=3)[:, slabs.x])
    if comm.rank == comm.size - 1:
        monkeypatch.setattr(*((cfdseed.operators, "wall_values", boom) if where == "figures"
                              else (cfdseed.enforce, "_no_slip", boom)))
    with pytest.raises(MemoryError) as info:
        enforce_slabs(comm, mine, grid, bulk=4.0)
    msgs = comm.allgather(str(info.value))
    assert all(f"injected on rank {comm.size - 1}" in m for m in msgs), msgs


def _raised_alike(info, match: str) -> None:
    """The same exception type on every rank, each message containing ``match``."""
    names = comm.allgather(type(info.value).__name__)
    msgs = comm.allgather(str(info.value))
    assert len(set(names)) == 1 and all(match in m for m in msgs), (names, msgs)


@pytest.mark.parametrize("step", ["forward", "backward"])
def test_ranks_passing_different_component_counts_raise_on_every_rank(step):
    """Each rank's input fits its own component count, but the transposes loop over the components:
    a rank with fewer would leave the others in their exchanges."""
    if comm.size == 1:
        pytest.skip("one rank cannot disagree")
    slabs = Slabs(comm, GRIDS["chebyshev"]())
    ncomp = 1 if comm.rank == comm.size - 1 else 3
    a = np.zeros(slabs.slab_shape(ncomp)) if step == "forward" else np.zeros(slabs.spectrum_shape(ncomp), complex)
    with pytest.raises(ValueError) as info:
        getattr(slabs, step)(a)
    _raised_alike(info, f"rank 0 has 3, rank {comm.size - 1} has 1")
    np.testing.assert_allclose(slabs.backward(slabs.forward(np.ones(slabs.slab_shape()))), 1.0)  # nothing pending


@pytest.mark.parametrize("step", ["forward", "backward"])
@pytest.mark.parametrize("bad", ["not an array", {"u": 1.0}])
def test_a_non_array_on_one_rank_raises_on_every_rank(step, bad):
    """The conversion to an array is part of the agreed check (it used to run before it, and its
    ValueError or TypeError was raised on that rank alone)."""
    slabs = Slabs(comm, GRIDS["chebyshev"]())
    good = np.zeros(slabs.slab_shape()) if step == "forward" else np.zeros(slabs.spectrum_shape(), complex)
    with pytest.raises(ValueError) as info:
        getattr(slabs, step)(bad if comm.rank == comm.size - 1 else good)
    _raised_alike(info, "slab must be an array of")


def test_figures_of_a_slab_of_the_wrong_shape_raise_on_every_rank():
    """figures read the slab as it came: a short slab on one rank gave that rank's figures of the
    wrong planes, or an IndexError there alone."""
    from cfdseed.pencils import figures

    g = GRIDS["chebyshev"]()
    slabs = Slabs(comm, g)
    shape = slabs.slab_shape(3)
    slab = np.zeros(shape if comm.rank != comm.size - 1 else (3, shape[1], shape[2] - 1, shape[3]))
    with pytest.raises(ValueError) as info:
        figures(comm, slab, g)
    _raised_alike(info, "the x slab must have shape")


# the last rank's grid differs from GRIDS["chebyshev"] in one attribute of the global grid
OTHER_GRIDS = {
    "shape": lambda: Grid((12, 17, 14), (2 * np.pi, 2.0, np.pi), y="chebyshev"),
    "lengths": lambda: Grid((12, 17, 10), (2 * np.pi, 2.0, 2.0), y="chebyshev"),
    "y": lambda: Grid((12, 17, 10), (2 * np.pi, 2.0, np.pi), y="tanh:2.0"),
    "operators": lambda: Grid((12, 17, 10), (2 * np.pi, 2.0, np.pi), y="chebyshev", operators="spectral"),
}


@pytest.mark.parametrize("entry", ["Slabs", "project", "calibrate", "figures", "enforce"])
@pytest.mark.parametrize("attr", OTHER_GRIDS)
def test_ranks_passing_different_grids_raise_on_every_rank(entry, attr):
    """Every entry point agrees the global grid first (Slabs): a rank with another grid would
    transpose with other counts (an MPI error there, a hang elsewhere) or compute other figures."""
    from cfdseed.errors import GridError
    from cfdseed.grid import block_split
    from cfdseed.pencils import calibrate, enforce as enforce_slabs, figures

    if comm.size == 1:
        pytest.skip("one rank cannot disagree")
    grid = OTHER_GRIDS[attr]() if comm.rank == comm.size - 1 else GRIDS["chebyshev"]()
    nx, ny, nz = grid.shape
    xs = block_split(nx, comm.size, comm.rank)
    slab = np.ascontiguousarray(_global(grid)[:, xs])
    call = {"Slabs": lambda: Slabs(comm, grid), "project": lambda: project(comm, slab, grid),
            "calibrate": lambda: calibrate(comm, slab, grid, None), "figures": lambda: figures(comm, slab, grid),
            "enforce": lambda: enforce_slabs(comm, slab, grid)}[entry]
    with pytest.raises(GridError) as info:
        call()
    _raised_alike(info, f"ranks disagree on the grid ({attr})")
    assert comm.allreduce(1) == comm.size  # nobody left behind in a collective
