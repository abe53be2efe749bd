"""Constraint kernels (cfdseed._core) against their numpy oracles, and check_field on one process.

The oracles below are the reference implementation of every kernel: plain vectorised numpy over
(x, y, z) arrays, computed in float64, skipping non-finite values exactly as the kernels do.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cfdseed import ConfigError, Grid, _core
from cfdseed.constraints import ConstraintReport, Tolerances, as_components, bulk_weights, check_field

MPI = pytest.importorskip("mpi4py.MPI")
SELF = MPI.COMM_SELF
GRIDS = ("uniform", "tanh:2.0", "chebyshev", "uniform-cc", "tanh-cc:1.5", "chebyshev-cc")


# -- oracles ---------------------------------------------------------------------------------
def _fmax(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(a.max()) if a.size else 0.0


def o_stats(f, wy):
    f = np.asarray(f, np.float64)
    fin = np.isfinite(f)
    g = np.where(fin, f, 0.0)
    wsum = float((g * np.asarray(wy)[None, :, None]).sum())
    return _fmax(np.abs(f)), float((g * g).sum()), wsum, int((~fin).sum())


def o_wall(a, b, t):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return _fmax(np.abs(a + t * (b - a)))


def o_increments(f, hi, axis, seam):
    d = np.abs(np.diff(np.concatenate([f, hi], axis=axis).astype(np.float64), axis=axis))
    at_seam = np.zeros(d.shape[axis], bool)
    if seam >= 0:
        at_seam[seam] = True
    return _fmax(np.compress(~at_seam, d, axis=axis)), _fmax(np.compress(at_seam, d, axis=axis))


def o_divergence(u, v, w, ulo, uhi, vlo, vhi, wlo, whi, yext, dx, dz, j0, j1):
    f64 = lambda *a: [np.asarray(x, np.float64) for x in a]  # noqa: E731
    U = np.concatenate(f64(ulo, u, uhi), axis=0)
    V = np.concatenate(f64(vlo, v, vhi), axis=1)
    W = np.concatenate(f64(wlo, w, whi), axis=2)
    ye = np.asarray(yext)
    j = np.arange(j0, j1)
    hm, hp = (ye[j + 1] - ye[j])[None, :, None], (ye[j + 2] - ye[j + 1])[None, :, None]
    dvdy = (hm**2 * V[:, j + 2] - hp**2 * V[:, j] + (hp**2 - hm**2) * V[:, j + 1]) / (hp * hm * (hp + hm))
    div = (U[2:, j] - U[:-2, j]) / (2 * dx) + dvdy + (W[:, j, 2:] - W[:, j, :-2]) / (2 * dz)
    fin = np.isfinite(div)
    return _fmax(np.abs(div)), float((div[fin] ** 2).sum()), int(fin.sum())


# -- strided test arrays ---------------------------------------------------------------------
@st.composite
def strided(draw, shape, dtype=None, nonfinite=True):
    """A (x, y, z) view of ``shape`` with random axis order, memory order, steps and values."""
    dtype = dtype or draw(st.sampled_from([np.float32, np.float64]))
    perm = draw(st.permutations([0, 1, 2]))
    steps = draw(st.tuples(*[st.sampled_from([1, 2, -1, -2])] * 3))
    order = draw(st.sampled_from("CF"))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    store = np.empty([max(1, shape[p] * abs(steps[p])) for p in perm], dtype, order=order)
    store[...] = rng.standard_normal(store.shape)
    view = store[tuple(slice(None, None, steps[p]) for p in perm)][tuple(slice(0, shape[p]) for p in perm)]
    out = view.transpose(np.argsort(perm))
    if nonfinite and out.size and draw(st.booleans()):
        flat = rng.integers(0, out.size, size=2)
        out[np.unravel_index(flat, shape)] = [np.nan, np.inf]
    assert out.shape == tuple(shape)
    return out


shapes = st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5))
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _plane(shape, axis):
    s = list(shape)
    s[axis] = 1
    return tuple(s)


# -- kernels vs oracles ----------------------------------------------------------------------
@FAST
@given(st.data(), shapes)
def test_stats_matches_oracle(data, shape):
    f = data.draw(strided(shape))
    wy = np.random.default_rng(0).random(shape[1])
    got, want = _core.stats(f, wy), o_stats(f, wy)
    assert got[0] == want[0] and got[3] == want[3]
    assert got[1:3] == pytest.approx(want[1:3], rel=1e-12, abs=1e-12)


@FAST
@given(st.data(), shapes, st.floats(-3, 3))
def test_wall_absmax_matches_oracle(data, shape, t):
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    plane = _plane(shape, 1)
    a, b = data.draw(strided(plane, dtype)), data.draw(strided(plane, dtype))
    assert _core.wall_absmax(a, b, t) == pytest.approx(o_wall(a, b, t), rel=1e-14)


@FAST
@given(st.data(), shapes, st.sampled_from([0, 1, 2]))
def test_increments_match_oracle(data, shape, axis):
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    f, hi = data.draw(strided(shape, dtype)), data.draw(strided(_plane(shape, axis), dtype))
    seam = data.draw(st.integers(-1, shape[axis] - 1))
    assert _core.increments(f, hi, axis, seam) == o_increments(f, hi, axis, seam)


@FAST
@given(st.data(), shapes, st.sampled_from(GRIDS))
def test_divergence_matches_oracle(data, shape, spec):
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    ny = max(2, shape[1] + data.draw(st.integers(0, 4)))
    grid = Grid((8, ny, 8), (2.0, 2.0, 1.0), y=spec)
    y0 = data.draw(st.integers(0, ny - shape[1]))
    y = grid.y
    yext = np.concatenate([[y[y0 - 1] if y0 else 0.0], y[y0 : y0 + shape[1]],
                           [y[y0 + shape[1]] if y0 + shape[1] < ny else 2.0]])
    # on grids with wall points the wall rows are excluded (yext would repeat the wall)
    j0 = 1 if (y0 == 0 and grid.has_walls) else 0
    j1 = shape[1] - (1 if (y0 + shape[1] == ny and grid.has_walls) else 0)
    j1 = max(j0, j1)
    arrays = [data.draw(strided(shape, dtype)) for _ in range(3)]
    planes = [data.draw(strided(_plane(shape, ax), dtype)) for ax in (0, 0, 1, 1, 2, 2)]
    args = (*arrays, *planes, yext, 0.3, 0.7, j0, j1)
    got, want = _core.divergence(*args), o_divergence(*args)
    assert got[2] == want[2]
    assert got[:2] == pytest.approx(want[:2], rel=1e-9, abs=1e-9)


def test_kernels_reject_bad_input():
    f = np.zeros((3, 4, 5))
    with pytest.raises(ValueError, match="float32 or float64"):
        _core.stats(f.astype(np.int32), np.ones(4))
    with pytest.raises(ValueError, match="3-D"):
        _core.stats(np.zeros((3, 4)), np.ones(4))
    with pytest.raises(ValueError, match="one weight per y"):
        _core.stats(f, np.ones(5))
    with pytest.raises(ValueError, match="same shape"):
        _core.wall_absmax(f[:, :1], f[:2, :1], 0.0)
    with pytest.raises(ValueError, match="dtype of a"):
        _core.wall_absmax(f[:, :1], f[:, :1].astype(np.float32), 0.0)
    with pytest.raises(ValueError, match="hi must have shape"):
        _core.increments(f, f[:, :1], 0, -1)
    with pytest.raises(ValueError, match="axis"):
        _core.increments(f, f[:1], 3, -1)
    with pytest.raises(ValueError, match="seam"):
        _core.increments(f, f[:1], 0, 3)
    planes = [f[:1], f[:1], f[:, :1], f[:, :1], f[:, :, :1], f[:, :, :1]]
    yext = np.linspace(0, 1, 6)
    with pytest.raises(ValueError, match="ulo must have shape"):
        _core.divergence(f, f, f, f[:, :1], *planes[1:], yext, 1.0, 1.0, 0, 4)
    with pytest.raises(ValueError, match="yext"):
        _core.divergence(f, f, f, *planes, yext[:5], 1.0, 1.0, 0, 4)
    with pytest.raises(ValueError, match="j0"):
        _core.divergence(f, f, f, *planes, yext, 1.0, 1.0, 2, 5)
    with pytest.raises(ValueError, match="strictly increasing"):
        _core.divergence(f, f, f, *planes, yext[::-1].copy(), 1.0, 1.0, 0, 4)
    with pytest.raises(ValueError, match="dtype of u"):
        _core.divergence(f, f.astype(np.float32), f, *planes, yext, 1.0, 1.0, 0, 4)


# -- check_field on one process: analytic fields with known answers --------------------------
def _mesh(grid):
    return np.meshgrid(grid.x, grid.y, grid.z, indexing="ij")  # each (nx, ny, nz)


def _channel_field(grid, amp=0.2):
    """Poiseuille + a mode that is divergence-free for the discrete operators of contract 1.

    v = 0, u = D_z psi, w = -D_x psi with the periodic central differences, so
    D_x u + D_z w = D_x D_z psi - D_z D_x psi = 0 to round-off; psi vanishes at the walls.
    """
    X, Y, Z = _mesh(grid)
    lx, ly, lz = grid.lengths
    psi = amp * np.sin(2 * np.pi * X / lx) * np.cos(4 * np.pi * Z / lz) * (Y * (ly - Y)) ** 2
    dx, dz = lx / grid.shape[0], lz / grid.shape[2]
    u = Y * (ly - Y) + (np.roll(psi, -1, 2) - np.roll(psi, 1, 2)) / (2 * dz)
    w = -(np.roll(psi, -1, 0) - np.roll(psi, 1, 0)) / (2 * dx)
    return np.stack([u, np.zeros_like(u), w])  # (3, nx, ny, nz)


@pytest.mark.parametrize("spec", GRIDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_divergence_free_channel_passes(spec, dtype):
    grid = Grid((24, 33, 16), (4.0, 2.0, 2.0), y=spec)
    report = check_field(SELF, grid, _channel_field(grid).astype(dtype))
    assert report.passed, str(report)
    assert report.divergence_max < 1e-5 and report.seam_x < 1.5 and report.seam_z < 1.5
    assert report.nonfinite == 0 and report.wall_extrapolated == grid.cell_centred
    if not grid.cell_centred:
        assert report.no_slip == 0.0


@pytest.mark.parametrize("spec", GRIDS)
def test_bulk_velocity_is_trapezoid_with_wall_values(spec):
    grid = Grid((4, 9, 3), (1.0, 2.0, 1.0), y=spec)
    X, Y, Z = _mesh(grid)
    u = Y * (2.0 - Y) * (1 + 0.1 * np.sin(2 * np.pi * Z))
    report = check_field(SELF, grid, (u, 0 * u, 0 * u))
    yy = np.concatenate([[0.0], grid.y, [2.0]]) if grid.cell_centred else grid.y
    prof = u.mean(axis=(0, 2))
    prof = np.concatenate([[0.0], prof, [0.0]]) if grid.cell_centred else prof
    want = float(np.sum(0.5 * (prof[1:] + prof[:-1]) * np.diff(yy))) / 2.0
    assert report.bulk_velocity == pytest.approx(want, rel=1e-13)
    assert report.u_ref == abs(report.bulk_velocity)
    lost = 0.0 if grid.has_walls else 0.5 * (grid.y[0] + 2.0 - grid.y[-1])  # wall halves of end segments
    assert bulk_weights(grid).sum() * 4 * 3 * 2.0 == pytest.approx(2.0 - lost, rel=1e-13)


@pytest.mark.parametrize("spec", GRIDS)
def test_divergence_known_answer(spec):
    """v = y (ly - y) is quadratic and zero at the walls: the 3-point formula is exact, div = ly - 2y."""
    grid = Grid((5, 12, 4), (1.0, 2.0, 1.0), y=spec)
    X, Y, Z = _mesh(grid)
    v = Y * (2.0 - Y)
    report = check_field(SELF, grid, (0 * v, v, 0 * v))
    inner = grid.y[1:-1] if grid.has_walls else grid.y
    u_ref = float(v.max())  # bulk of u is 0: U_ref falls back to max |u_i|
    assert report.u_ref == u_ref
    assert report.divergence_max == pytest.approx(np.abs(2.0 - 2 * inner).max() / u_ref, rel=1e-10)
    rms = math.sqrt(np.mean((2.0 - 2 * inner) ** 2))
    assert report.divergence_rms == pytest.approx(rms / u_ref, rel=1e-10)
    assert not report.passed


def test_divergence_of_sine_in_x():
    """u = sin(2 pi x / lx): the central difference gives cos(kx) sin(k dx) / dx exactly."""
    grid = Grid((16, 6, 4), (2.0, 2.0, 1.0))
    X, _, _ = _mesh(grid)
    k, dx = np.pi, 2.0 / 16
    u = np.sin(k * X)
    report = check_field(SELF, grid, (u, 0 * u, 0 * u))
    assert report.divergence_max == pytest.approx(math.sin(k * dx) / dx / report.u_ref, rel=1e-12)
    assert report.seam_x == pytest.approx(1.0)  # periodic: the seam increment is a typical one


@pytest.mark.parametrize("spec", ["uniform", "tanh-cc:2"])
def test_non_periodic_field_is_flagged_at_the_seam(spec):
    grid = Grid((16, 9, 12), (4.0, 2.0, 2.0), y=spec)
    field = _channel_field(grid, amp=0.0)
    X, _, Z = _mesh(grid)
    field[0] *= 1 + 0.1 * X / 4.0  # ramp in x: seam jump = (nx - 1) interior increments
    report = check_field(SELF, grid, field)
    assert report.seam_x == pytest.approx(15.0, rel=1e-9)
    assert report.seam_z == 0.0
    assert not report.passed and any(f.startswith("seam x") for f in report.failures)
    field[2] += 0.05 * Z  # non-periodic w in z as well
    assert check_field(SELF, grid, field).seam_z == pytest.approx(11.0, rel=1e-9)


@pytest.mark.parametrize("spec", GRIDS)
def test_wall_slip_fails_no_slip(spec):
    grid = Grid((8, 17, 6), (2.0, 2.0, 1.0), y=spec)
    field = _channel_field(grid, amp=0.0)
    field[0] += 0.1  # slip velocity 0.1 on both walls
    report = check_field(SELF, grid, field)
    assert not report.passed and any(f.startswith("no-slip") for f in report.failures)
    if not grid.cell_centred:
        assert report.no_slip == pytest.approx(0.1 / report.u_ref, rel=1e-12)


def test_cell_centred_wall_value_is_linear_extrapolation():
    grid = Grid((3, 6, 2), (1.0, 2.0, 1.0), y="tanh-cc:2")
    y = grid.y
    u = np.broadcast_to((3.0 + 5.0 * grid.y)[None, :, None], grid.shape).copy()  # linear: walls 3, 13
    report = check_field(SELF, grid, (u, 0 * u, 0 * u))
    assert report.no_slip * report.u_ref == pytest.approx(13.0, rel=1e-12)
    assert report.max_abs == pytest.approx(3.0 + 5.0 * y[-1])


def test_nonfinite_values_are_counted_and_skipped():
    grid = Grid((8, 9, 6), (2.0, 2.0, 1.0))
    field = _channel_field(grid)
    clean = check_field(SELF, grid, field)
    field[1, 3, 4, 2] = np.nan
    field[2, 0, 0, 0] = -np.inf
    report = check_field(SELF, grid, field)
    assert report.nonfinite == 2 and not report.passed
    assert report.failures == [f"non-finite values = 2 exceeds 0"]
    assert report.max_abs == clean.max_abs and math.isfinite(report.divergence_max)
    assert check_field(SELF, grid, field, tolerances=Tolerances(nonfinite=2)).passed


def assert_same_report(a: ConstraintReport, b: ConstraintReport, rel: float = 1e-12) -> None:
    """Figures equal up to the round-off of sums taken in another order."""
    da, db = a.to_dict(), b.to_dict()
    assert da.keys() == db.keys()
    for k, va in da.items():
        if isinstance(va, float):
            assert va == pytest.approx(db[k], rel=rel, abs=1e-300), k
        elif k == "rms":
            assert va == pytest.approx(db[k], rel=rel), k
        else:
            assert va == db[k], k


def test_axes_and_memory_order_do_not_change_the_report():
    grid = Grid((6, 7, 5), (2.0, 2.0, 1.0), y="chebyshev")
    field = _channel_field(grid) + 0.01 * np.random.default_rng(1).standard_normal((3, 6, 7, 5))
    ref = check_field(SELF, grid, field)
    zyx = np.asfortranarray(field.transpose(0, 3, 2, 1))  # (3, nz, ny, nx), Fortran order
    assert_same_report(check_field(SELF, grid, zyx, axes="zyx"), ref)
    tup = tuple(np.ascontiguousarray(c.transpose(0, 2, 1)) for c in field)
    assert_same_report(check_field(SELF, grid, tup, axes="xzy"), ref)


def test_report_str_dict_and_tolerances():
    grid = Grid((8, 9, 6), (2.0, 2.0, 1.0))
    report = check_field(SELF, grid, _channel_field(grid).astype(np.float32))
    text = str(report)
    assert "PASSED" in text and "divergence max" in text and "8x9x6 float32" in text
    d = report.to_dict()
    assert d["passed"] is True and d["failures"] == [] and d["shape"] == [8, 9, 6]
    assert d["tolerances"]["no_slip"] == pytest.approx(100 * np.finfo(np.float32).eps)
    assert isinstance(report, ConstraintReport) and report.tolerances.divergence_max == 1e-3
    strict = check_field(SELF, grid, _channel_field(grid), tolerances=Tolerances(velocity_ratio=1.0))
    assert not strict.passed and "FAIL" in str(strict) and "max |u_i| / U_ref" in strict.failures[0]
    with pytest.raises(ConfigError, match="seam"):
        Tolerances(seam=-1.0)
    with pytest.raises(ConfigError, match="divergence_max"):
        Tolerances(divergence_max=float("nan"))


def test_check_field_rejects_bad_input():
    grid = Grid((4, 5, 3), (1.0, 2.0, 1.0))
    good = np.zeros((3, 4, 5, 3))
    with pytest.raises(ValueError, match="shape"):
        check_field(SELF, grid, np.zeros((3, 4, 5, 4)))
    with pytest.raises(ValueError, match="dtype int64"):
        check_field(SELF, grid, good.astype(np.int64))
    with pytest.raises(ValueError, match="share one dtype"):
        check_field(SELF, grid, (good[0], good[1].astype(np.float32), good[2]))
    with pytest.raises(ValueError, match="permutation"):
        check_field(SELF, grid, good, axes="xyy")
    with pytest.raises(ValueError, match=r"\(3, \.\.\.\)"):
        check_field(SELF, grid, good[:2])
    with pytest.raises(ValueError, match="tuple"):
        check_field(SELF, grid, [good[0], good[1]])
    with pytest.raises(ConfigError, match="Tolerances"):
        check_field(SELF, grid, good, tolerances={"seam": 1.0})


def test_as_components_returns_views():
    field = np.zeros((3, 4, 5, 6), order="F")
    u, v, w = as_components(field, "xzy", (4, 6, 5))
    assert u.shape == (4, 6, 5) and np.shares_memory(u, field)


def test_grid_with_one_wall_point():
    """A point on the lower wall only: plane value below, extrapolation and a virtual point above."""
    y = np.array([0.0, 0.5, 1.0, 1.5, 1.8])
    grid = Grid((3, 5, 2), (1.0, 2.0, 1.0), y=y)
    lin = np.broadcast_to((3.0 + 5.0 * y)[None, :, None], grid.shape)
    quad = np.broadcast_to((y * (2.0 - y))[None, :, None], grid.shape)
    report = check_field(SELF, grid, (lin, quad, 0 * lin))
    assert report.wall_extrapolated
    assert report.no_slip * report.u_ref == pytest.approx(13.0, rel=1e-12)  # 3 at y=0, 13 extrapolated to y=2
    assert report.divergence_max * report.u_ref == pytest.approx(np.abs(2.0 - 2 * y[1:]).max(), rel=1e-12)
    w = bulk_weights(grid) * 3 * 2 * 2.0  # trapezoid weights on (y, 2) with the virtual top point dropped
    np.testing.assert_allclose(w, [0.25, 0.5, 0.5, 0.4, 0.25], rtol=1e-14)
