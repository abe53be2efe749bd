"""The channel's discrete operators, numpy (cfdseed.operators) and C++ (cfdseed._core), against one
set of oracles.

The oracles are the reference implementation: ``o_*`` are the kernels' algorithms in plain
vectorised numpy over (x, y, z) blocks, computed in float64, skipping non-finite values exactly as
the kernels do; :func:`divergence_oracle`, :func:`bulk_oracle` and :func:`wall_oracle` write
contract 1 out point by point on a global grid. Other test modules import them from here.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cfdseed import Grid, _core
from cfdseed.interp import y_matrix
from cfdseed.operators import (
    WALL_TOL,
    bulk_velocity,
    bulk_weights,
    checked_rows,
    divergence,
    field_figures,
    trapezoid_weights,
    wall_values,
    y_ext,
)

GRIDS = ("uniform", "tanh:2.0", "chebyshev", "uniform-cc", "tanh-cc:1.5", "chebyshev-cc")
#: custom y (7 points, ly = 2) with a point on one wall only
ONE_WALL = (
    pytest.param(np.array([0.0, 0.3, 0.7, 1.0, 1.3, 1.6, 1.8]), id="lower-wall-only"),
    pytest.param(np.array([0.2, 0.5, 0.8, 1.1, 1.5, 1.8, 2.0]), id="upper-wall-only"),
)
LENGTHS = (2 * np.pi, 2.0, np.pi)


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


# the oracles below see non-finite inputs on purpose (inf - inf is skipped, as the kernels skip it)
@np.errstate(invalid="ignore", over="ignore")
def o_wall(a, b, t):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return _fmax(np.abs(a + t * (b - a)))


@np.errstate(invalid="ignore", over="ignore")
def o_increments(f, hi, axis, seam):
    d = np.abs(np.diff(np.concatenate([f, hi], axis=axis).astype(np.float64), axis=axis))
    at_seam = np.zeros(d.shape[axis], bool)
    if seam >= 0:
        at_seam[seam] = True
    return _fmax(np.compress(~at_seam, d, axis=axis)), _fmax(np.compress(at_seam, d, axis=axis))


@np.errstate(invalid="ignore", over="ignore")
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


def divergence_oracle(f, grid):
    """Contract 1, written out point by point in y: div at the evaluated points, (nx, nj, nz)."""
    (nx, ny, nz), (lx, ly, lz) = grid.shape, grid.lengths
    u, v, w = (np.asarray(c, np.float64) for c in f)
    dudx = (np.roll(u, -1, 0) - np.roll(u, 1, 0)) / (2 * lx / nx)
    dwdz = (np.roll(w, -1, 2) - np.roll(w, 1, 2)) / (2 * lz / nz)
    y = list(grid.y)
    vv = [v[:, j] for j in range(ny)]
    if grid.y[0] > 0:
        y, vv = [0.0] + y, [np.zeros_like(vv[0])] + vv
        off = 1
    else:
        off = 0
    if grid.y[-1] < ly:
        y, vv = y + [ly], vv + [np.zeros_like(vv[0])]
    out = []
    for k in range(1, len(y) - 1):
        hm, hp = y[k] - y[k - 1], y[k + 1] - y[k]
        dv = (hm**2 * vv[k + 1] - hp**2 * vv[k - 1] + (hp**2 - hm**2) * vv[k]) / (hp * hm * (hp + hm))
        j = k - off
        out.append(dudx[:, j] + dv + dwdz[:, j])
    return np.stack(out, axis=1)


def bulk_oracle(u, grid):
    y, prof = grid.y, u.mean(axis=(0, 2))
    ly = grid.lengths[1]
    if y[0] > 0:
        y, prof = np.r_[0.0, y], np.r_[0.0, prof]
    if y[-1] < ly:
        y, prof = np.r_[y, ly], np.r_[prof, 0.0]
    return np.trapezoid(prof, y) / ly


def wall_oracle(f, grid):
    """Wall values (3, nx, nz) low and high: the wall plane, else the line through the two nearest."""
    y, ly = grid.y, grid.lengths[1]
    slope_lo = (f[:, :, 1] - f[:, :, 0]) / (y[1] - y[0])
    slope_hi = (f[:, :, -1] - f[:, :, -2]) / (y[-1] - y[-2])
    lo = f[:, :, 0] if y[0] == 0 else f[:, :, 0] + (0.0 - y[0]) * slope_lo
    hi = f[:, :, -1] if y[-1] == ly else f[:, :, -1] + (ly - y[-1]) * slope_hi
    return lo, hi


# -- strided test arrays (kernel inputs) ----------------------------------------------------
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


def _random_field(grid, rng):
    """White noise (3, nx, ny, nz) around a uniform mean flow u = 1."""
    f = rng.standard_normal((3, *grid.shape))
    f[0] += 1.0
    return f


def _plane(shape, axis):
    s = list(shape)
    s[axis] = 1
    return tuple(s)


# -- walls: one tolerance -------------------------------------------------------------------
@pytest.mark.parametrize("y0, on", [(0.0, True), (0.5 * WALL_TOL * 2.0, True), (10 * WALL_TOL * 2.0, False)])
def test_one_tolerance_decides_the_walls(y0, on):
    y = np.array([y0, 0.5, 1.0, 1.5, 2.0])
    g = Grid((4, 5, 4), (1.0, 2.0, 1.0), y=y)
    assert g.walls == (on, True) and g.has_walls == on and not g.cell_centred
    assert checked_rows(g) == slice(1 if on else 0, 4) and y_ext(g).size == (5 if on else 6)
    mirror = Grid((4, 5, 4), (1.0, 2.0, 1.0), y=2.0 - y[::-1])
    assert mirror.walls == (True, on) and checked_rows(mirror) == slice(1, 4 if on else 5)
    # the interpolation decides the same: a point on the wall keeps its value there, a point
    # off it gets a zero wall value added
    m = y_matrix(y, 2.0, np.array([0.0, 0.5]), 1.0, method="cubic")
    assert (m @ np.ones(5))[0] == pytest.approx(1.0 if on else 0.0, abs=1e-9)


# -- numpy operators vs oracles --------------------------------------------------------------
@pytest.mark.parametrize("y", GRIDS + ONE_WALL)
def test_divergence_matches_pointwise_oracle(y):
    rng = np.random.default_rng(1)
    g = Grid((6, 7, 5), LENGTHS, y=y)
    f = _random_field(g, rng)
    np.testing.assert_allclose(divergence(f, g), divergence_oracle(f, g), rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("y", GRIDS + ONE_WALL)
def test_bulk_and_wall_values_match_oracles(y):
    rng = np.random.default_rng(2)
    g = Grid((6, 7, 5), LENGTHS, y=y)
    f = _random_field(g, rng)
    assert bulk_velocity(f, g) == pytest.approx(bulk_oracle(f[0], g), rel=1e-13)
    ny = g.shape[1]  # the oracle is linear in the profile: its weights are its values on unit profiles
    want = np.array([bulk_oracle(np.eye(ny)[j][None, :, None], g) for j in range(ny)])
    np.testing.assert_allclose(trapezoid_weights(g), want, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(bulk_weights(g) * 6 * 5, want, rtol=1e-13, atol=1e-15)
    for got, want in zip(wall_values(f, g), wall_oracle(f, g)):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


# -- C++ kernels vs oracles ------------------------------------------------------------------
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
    odd = np.ndarray((3, 4, 5), dtype=np.float64, buffer=bytearray(8 * 200), strides=(164, 40, 8))
    with pytest.raises(ValueError, match="f has a stride that is not a multiple of its item size"):
        _core.stats(odd, np.ones(4))
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


@pytest.mark.parametrize("y", GRIDS + ONE_WALL)
def test_check_field_kernels_agree_with_numpy_operators(y):
    """check_field (C++ kernels, one process) and field_figures (numpy) measure the same figures."""
    from mpi4py import MPI
    from cfdseed.constraints import check_field

    rng = np.random.default_rng(3)
    g = Grid((6, 7, 5), LENGTHS, y=y)
    f = _random_field(g, rng)
    rep, figs = check_field(MPI.COMM_SELF, g, f), field_figures(f, g)
    assert rep.bulk_velocity == pytest.approx(figs["bulk"], rel=1e-13)
    assert rep.max_abs == figs["max_abs"]
    assert rep.divergence_max == pytest.approx(figs["div_max"], rel=1e-12)
    assert rep.divergence_rms == pytest.approx(figs["div_rms"], rel=1e-12)
    assert rep.no_slip * rep.u_ref == pytest.approx(figs["wall_max"], rel=1e-12)
    assert rep.wall_extrapolated == (not g.has_walls)


# -- the spectral operator set ----------------------------------------------------------------
def _gauss(n, ly=2.0):
    return 0.5 * ly * (1.0 - np.cos(np.pi * (np.arange(n) + 0.5) / n))


@pytest.mark.parametrize("nodes", [pytest.param(_gauss(24), id="gauss"),
                                   pytest.param(1.0 - np.cos(np.pi * np.arange(25) / 24), id="lobatto")])
def test_spectral_matrices_are_exact_for_polynomials(nodes):
    from cfdseed.operators import _interpolatory_quadrature, differentiation_matrix, interpolation_matrix

    n = nodes.size
    for deg in (0, 1, 5, n - 1):
        p = np.polynomial.Polynomial(np.random.default_rng(deg).standard_normal(deg + 1), domain=[0, 2], window=[-1, 1])
        np.testing.assert_allclose(differentiation_matrix(nodes) @ p(nodes), p.deriv()(nodes),
                                   atol=1e-9 * max(1.0, np.abs(p.deriv()(nodes)).max()))
        np.testing.assert_allclose(interpolation_matrix(nodes, [0.0, 0.7, 2.0]) @ p(nodes), p([0.0, 0.7, 2.0]),
                                   atol=1e-11 * max(1.0, np.abs(p(nodes)).max()))
        q = _interpolatory_quadrature(nodes, 0.0, 2.0) @ p(nodes)
        assert q == pytest.approx(p.integ()(2.0) - p.integ()(0.0), abs=1e-11 * max(1.0, abs(q)))


def test_central_column_is_the_contract_one_stencil_and_trapezoid():
    """Column("central") restates dy_stencil, the trapezoid and the wall extrapolation as matrices."""
    from cfdseed.operators import column, wall_extrapolation

    rng = np.random.default_rng(4)
    for spec in GRIDS:
        g = Grid((5, 11, 4), LENGTHS, y=spec)
        col = column(g)
        f = rng.standard_normal((3, *g.shape))
        rows = checked_rows(g)
        dv = np.einsum("ij,xjz->xiz", col.dy, f[1])[:, rows]
        np.testing.assert_allclose(dv, divergence_oracle(np.stack([0 * f[0], f[1], 0 * f[2]]), g), atol=1e-12)
        assert bulk_velocity(f, g) == pytest.approx(bulk_oracle(f[0], g), rel=1e-13)
        lo, hi = wall_oracle(f, g)
        np.testing.assert_allclose(np.tensordot(f, col.walls[0], axes=([2], [0])), lo, atol=1e-13)
        np.testing.assert_allclose(np.tensordot(f, col.walls[1], axes=([2], [0])), hi, atol=1e-13)
        tl, th = wall_extrapolation(g)  # the C++ kernels' parameters, as the column's wall rows
        want = np.zeros((2, g.shape[1]))
        want[0, :2], want[1, -2:] = (1.0 - tl, tl), (th, 1.0 - th)
        np.testing.assert_allclose(col.walls, want, atol=1e-15)


def test_wavenumbers():
    from cfdseed.operators import wavenumbers

    n, length = 8, 2.0
    k = wavenumbers(n, length, "spectral")
    np.testing.assert_allclose(k, 2 * np.pi * np.array([0, 1, 2, 3, 0, -3, -2, -1]) / length)
    kc = wavenumbers(n, length, "central")
    np.testing.assert_allclose(kc, np.sin(2 * np.pi * np.fft.fftfreq(n, 1 / n) / n) * n / length, atol=1e-12)
    assert kc[4] == 0.0 and wavenumbers(7, 1.0, "spectral", rfft=True).size == 4


@pytest.mark.parametrize("spec", ["chebyshev", "chebyshev-cc"])
def test_spectral_divergence_of_a_solenoidal_polynomial_field_is_round_off(spec):
    """u = f'(y) sin(x) cos(2z), v = -f(y) cos(x) cos(2z), f a polynomial vanishing at the walls:
    divergence 0 under the spectral operators (the central ones see O(dx^2) of it)."""
    g = Grid((12, 20, 8), LENGTHS, y=spec, operators="spectral")
    x, y, z = g.x[:, None, None], g.y[None, :, None], g.z[None, None, :]
    fy, dfy = (y * (2 - y)) ** 2, 2 * y * (2 - y) * (2 - 2 * y)
    f = np.zeros((3, *g.shape))
    f[0] = dfy * np.sin(x) * np.cos(2 * z)
    f[1] = -fy * np.cos(x) * np.cos(2 * z)
    assert np.abs(divergence(f, g)).max() < 1e-11
    central = Grid(g.shape, g.lengths, y=spec)
    assert np.abs(divergence(f, central)).max() > 1e-2
    lo, hi = wall_values(f, g)
    assert max(np.abs(lo).max(), np.abs(hi).max()) < 1e-12


def test_grid_operators_are_validated():
    from cfdseed import GridError

    with pytest.raises(GridError, match="operators must be one of central, spectral"):
        Grid((4, 9, 4), LENGTHS, operators="fourier")
    with pytest.raises(GridError, match="polynomial interpolation"):
        Grid((4, 65, 4), LENGTHS, y="uniform", operators="spectral")
    g = Grid((4, 9, 4), LENGTHS, y="chebyshev", operators="spectral")
    assert g != Grid((4, 9, 4), LENGTHS, y="chebyshev") and "spectral" in repr(g)
    assert g.with_local((slice(0, 2), slice(None), slice(None))).operators == "spectral"
