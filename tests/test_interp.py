"""Tests of cfdseed.interp: exactness on polynomials / trigonometric fields, tiling, seams."""

from __future__ import annotations

import numpy as np
import pytest

from cfdseed.errors import GridError
from cfdseed.grid import Grid, wall_normal
from cfdseed.interp import (
    field_to_grid,
    interp_y,
    resample_periodic,
    slices_to_grid,
    tile_factor,
    y_matrix,
)

SRC_KINDS = ["uniform", "tanh:2.0", "chebyshev", "uniform-cc", "tanh-cc:1.5", "chebyshev-cc"]
DST_KINDS = ["uniform", "tanh:2.5", "chebyshev", "uniform-cc", "chebyshev-cc", "tanh-cc:2"]


def _cubic_vanishing(eta: np.ndarray) -> np.ndarray:
    return eta * (1 - eta) * (0.3 + 2 * eta)  # cubic, zero at both walls


@pytest.mark.parametrize("dst", DST_KINDS)
@pytest.mark.parametrize("src", SRC_KINDS)
def test_y_exact_on_cubics_vanishing_at_walls(src, dst):
    ys, yt = wall_normal(src, 17, 2.0), wall_normal(dst, 29, 1.0)
    m = y_matrix(ys, 2.0, yt, 1.0)
    np.testing.assert_allclose(m @ _cubic_vanishing(ys / 2.0), _cubic_vanishing(yt), atol=1e-13)


def test_barycentric_exact_on_high_degree_polynomials():
    ys = wall_normal("chebyshev", 13, 2.0)
    yt = wall_normal("tanh-cc:2", 40, 2.0)
    p = np.polynomial.Polynomial(np.random.default_rng(0).standard_normal(13))  # degree 12
    m = y_matrix(ys, 2.0, yt, 2.0)  # auto picks barycentric on Gauss-Lobatto points
    np.testing.assert_allclose(m @ p(ys), p(yt), rtol=1e-10, atol=1e-10)
    # the cubic spline is not exact on degree 12: auto really chose barycentric
    mc = y_matrix(ys, 2.0, yt, 2.0, method="cubic")
    assert np.abs(mc @ p(ys) - p(yt)).max() > 1e-6


def test_identity_when_grids_agree():
    ys = wall_normal("tanh:2", 11, 2.0)
    np.testing.assert_allclose(y_matrix(ys, 2.0, ys, 2.0), np.eye(11), atol=1e-14)
    a = np.random.default_rng(0).standard_normal((3, 11, 4))
    np.testing.assert_allclose(interp_y(a, 1, ys, 2.0, ys, 2.0), a, atol=1e-14)


@pytest.mark.parametrize("n_in,n_out", [(8, 20), (9, 16), (16, 9), (12, 12), (10, 11)])
def test_periodic_resampling_exact_on_resolved_trig(n_in, n_out):
    kmax = min(n_in, n_out) // 2 - (1 if min(n_in, n_out) % 2 == 0 else 0)
    kmax = max(kmax, 1)
    rng = np.random.default_rng(n_in * 100 + n_out)
    a, b = rng.standard_normal(kmax + 1), rng.standard_normal(kmax + 1)

    def f(x):
        return sum(a[k] * np.cos(k * x) + b[k] * np.sin(k * x) for k in range(kmax + 1))

    xs, xt = np.arange(n_in) * 2 * np.pi / n_in, np.arange(n_out) * 2 * np.pi / n_out
    np.testing.assert_allclose(resample_periodic(f(xs), 0, n_out), f(xt), atol=1e-12)


def test_tiling_integer_multiple_is_exact_and_seam_free():
    xs = np.arange(8) * 2 * np.pi / 8
    f = np.cos(xs) + 0.5 * np.sin(2 * xs)
    out = resample_periodic(f, 0, 24, l_in=2 * np.pi, l_out=6 * np.pi)
    xt = np.arange(24) * 6 * np.pi / 24
    np.testing.assert_allclose(out, np.cos(xt) + 0.5 * np.sin(2 * xt), atol=1e-12)
    assert tile_factor(2.0, 6.0) == (3, 1.0)


def test_non_integer_box_is_resampled_periodically():
    m, stretch = tile_factor(1.0, 2.6)
    assert m == 3 and stretch == pytest.approx(2.6 / 3)
    xs = np.arange(16) / 16
    f = np.sin(2 * np.pi * xs) + 0.2 * np.cos(6 * np.pi * xs)
    out = resample_periodic(f[None, :], 1, 40, l_in=1.0, l_out=2.6)[0]
    xt = np.arange(40) * 2.6 / 40
    g = lambda x: np.sin(2 * np.pi * x / stretch) + 0.2 * np.cos(6 * np.pi * x / stretch)  # noqa: E731
    np.testing.assert_allclose(out, g(xt), atol=1e-12)
    # seam-free: the jump across the periodic boundary is like the interior increments
    inc = np.abs(np.diff(np.concatenate([out, out[:1]])))
    assert inc[-1] <= 1.5 * inc[:-1].max()


def test_float32_kept_and_nyquist_cosine():
    xs = np.arange(8)
    f = np.cos(np.pi * xs).astype(np.float32)  # Nyquist cosine
    out = resample_periodic(f, 0, 8, 1.0, 2.0)  # tiled twice: Nyquist folds beyond 8 points: dropped
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, 0.0)  # the folded Nyquist mode is dropped, not aliased
    up = resample_periodic(f.astype(np.float64), 0, 16)
    np.testing.assert_allclose(up, np.cos(np.pi * np.arange(16) / 2), atol=1e-12)


def test_slices_and_field_onto_grid():
    g = Grid((6, 15, 12), (3.0, 2.0, 2 * np.pi), y="tanh-cc:2")
    ys, zs = wall_normal("chebyshev", 9, 2.0), np.arange(8) * 2 * np.pi / 8
    sl = np.empty((6, 3, 9, 8))
    for c in range(3):
        sl[:, c] = (c + 1) * _cubic_vanishing(ys / 2)[None, :, None] * np.cos(zs)[None, None, :]
    out = slices_to_grid(sl, ys, 2.0, 2 * np.pi, g)
    assert out.shape == (3, 6, 15, 12)
    want = _cubic_vanishing(g.y / 2)[:, None] * np.cos(g.z)[None, :]
    for c in range(3):
        np.testing.assert_allclose(out[c], (c + 1) * np.broadcast_to(want, (6, 15, 12)), atol=1e-12)
    # full field: x resampled too
    xs = np.arange(5) * 3.0 / 5
    fld = np.cos(2 * np.pi * xs / 3.0)[None, :, None, None] * sl[:1].transpose(1, 0, 2, 3)[:, :1].repeat(5, 1)
    out = field_to_grid(fld, ys, (3.0, 2.0, 2 * np.pi), g)
    np.testing.assert_allclose(out[0], np.cos(2 * np.pi * g.x / 3.0)[:, None, None] * want[None], atol=1e-12)


def test_bad_input():
    ys = wall_normal("uniform", 5, 1.0)
    with pytest.raises(GridError, match="unknown y interpolation"):
        y_matrix(ys, 1.0, ys, 1.0, method="linear")  # type: ignore[arg-type]
    with pytest.raises(GridError, match="strictly increasing"):
        y_matrix(ys[::-1], 1.0, ys, 1.0)
    with pytest.raises(GridError, match="lie in"):
        y_matrix(ys, 1.0, ys * 2, 1.0)
    with pytest.raises(GridError, match="source y has"):
        interp_y(np.zeros((3, 4)), 1, ys, 1.0, ys, 1.0)
    with pytest.raises(GridError, match="slices"):
        slices_to_grid(np.zeros((2, 2, 5, 4)), ys, 1.0, 1.0, Grid((2, 5, 4), (1, 1, 1)))
