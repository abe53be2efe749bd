"""The ``"sem"`` source (cfdseed.sources.sem) and its kernel (cfdseed._core.eddies).

The oracle :func:`o_eddies` is the kernel's sum written out in plain numpy: every eddy over
enough periodic images in x and z to cover its support, at every grid point.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from mpi4py import MPI

from cfdseed import Grid, SourceError, _core
from cfdseed.targets import resolve_target
from cfdseed.constraints import check_field
from cfdseed.operators import bulk_velocity, trapezoid_weights
from cfdseed.reference import KAPPA
from cfdseed.sources import OPTIONS, available, build, resolve
from cfdseed.sources.sem import (
    SEM_DEFAULTS,
    SIGMA_MIN_CELLS,
    eddy_field,
    eddy_intensities,
    sample_eddies,
    wall_damping,
)
from cfdseed.units import reichardt_bulk

SELF = MPI.COMM_SELF
#: the test field of the issue: 48 x 49 x 32 Chebyshev, 2 pi x 2 x pi, Re_tau 180
BOX = ((48, 49, 32), (2 * math.pi, 2.0, math.pi))
LM180_TKE = 1.78  # volume-averaged turbulent kinetic energy of Lee & Moser 180, wall units


# -- oracle ----------------------------------------------------------------------------------
def o_eddies(x, y, z, lx, lz, damp, ddamp, centre, sigma, alpha):
    """(3, nx, ny, nz): sum over eddies and periodic images of D f (r x a) + D' psi (a_z, 0, -a_x)."""
    px, py, pz = np.meshgrid(x, y, z, indexing="ij")
    d, dd = damp[None, :, None], ddamp[None, :, None]
    out = np.zeros((3, *px.shape))
    for c, s, a in zip(centre, sigma, alpha):
        mx = math.ceil((s + lx) / lx) + 1
        mz = math.ceil((s + lz) / lz) + 1
        for i in range(-mx, mx + 1):
            for k in range(-mz, mz + 1):
                r = np.stack([px - c[0] - i * lx, py - c[1], pz - c[2] - k * lz])
                q = np.clip(1.0 - (r * r).sum(axis=0) / s**2, 0.0, None)
                f, psi = q**3, -0.125 * s * s * q**4
                out += d * f * np.cross(r, a, axis=0)
                out[0] += dd * psi * a[2]
                out[2] -= dd * psi * a[0]
    return out


def _case(rng, nx, ny, nz, ne, wide=False):
    lx, lz, ly = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), 2.0
    x = np.arange(nx) * lx / nx
    z = np.arange(nz) * lz / nz
    y = np.sort(rng.uniform(0.0, ly, ny))
    y[0], y[-1] = 0.0, ly
    # centres also beyond the walls and the periodic box (the kernel wraps and clips)
    centre = np.stack([rng.uniform(-lx, 2 * lx, ne), rng.uniform(-0.3, ly + 0.3, ne), rng.uniform(-lz, 2 * lz, ne)], 1)
    sigma = rng.uniform(0.05, 1.5 * max(lx, lz) if wide else 0.6, ne)  # wide: supports beyond one period
    alpha = rng.standard_normal((ne, 3))
    damp, ddamp = rng.uniform(0.0, 1.0, ny), rng.standard_normal(ny)
    return x, y, z, lx, lz, damp, ddamp, centre, sigma, alpha


# -- kernel ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_matches_the_oracle(seed, dtype):
    rng = np.random.default_rng(seed)
    nx, ny, nz = rng.integers(2, 9, size=3)
    args = _case(rng, nx, ny, nz, ne=int(rng.integers(1, 12)), wide=seed % 2 == 1)
    want = o_eddies(*args)
    # strided, transposed output views, accumulated onto what is there
    store = np.zeros((nz, 3, ny + 1, 2 * nx), dtype=dtype)
    out = store[:, :, :ny, ::2].transpose(1, 3, 2, 0)  # (3, nx, ny, nz) view with odd strides
    out[...] = 1.0
    _core.eddies(out[0], out[1], out[2], *args)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out - 1.0, want, atol=tol * max(1.0, np.abs(want).max()), rtol=0)
    assert (store[:, :, ny] == 0).all() and (store[..., 1::2] == 0).all()  # nothing outside the view


def test_kernel_wraps_periodically_and_clips_at_the_walls():
    """An eddy centred on the seam equals the same eddy shifted by a period; y is not wrapped."""
    rng = np.random.default_rng(3)
    x, y, z, lx, lz, _, _, _, _, alpha = _case(rng, 8, 9, 6, ne=1)
    one = np.ones(y.size), np.zeros(y.size)
    centre = np.array([[0.02 * lx, 0.1, lz - 0.01]])
    sigma = np.array([0.45 * min(lx, lz)])

    def field(c):
        f = np.zeros((3, x.size, y.size, z.size))
        _core.eddies(f[0], f[1], f[2], x, y, z, lx, lz, *one, c, sigma, alpha)
        return f

    base = field(centre)
    for shift in ([lx, 0.0, 0.0], [-3 * lx, 0.0, 2 * lz]):
        np.testing.assert_allclose(field(centre + shift), base, atol=1e-13)
    assert np.abs(base).max() > 0
    # an eddy below the lower wall reaches into the channel only as far as its support
    below = field(np.array([[0.5 * lx, -0.2, 0.5 * lz]]))
    reach = y < sigma[0] - 0.2
    assert np.abs(below[:, :, ~reach]).max() == 0 and np.abs(below[:, :, reach]).max() > 0


def test_kernel_rejects_bad_input():
    f = np.zeros((3, 4, 5, 6))
    x, y, z = np.arange(4) / 4, np.linspace(0, 2, 5), np.arange(6) / 6
    d, dd = np.ones(5), np.zeros(5)
    c, s, a = np.zeros((1, 3)), np.ones(1), np.ones((1, 3))
    ok = (x, y, z, 1.0, 1.0, d, dd, c, s, a)
    _core.eddies(f[0], f[1], f[2], *ok)
    with pytest.raises(ValueError, match="same shape"):
        _core.eddies(f[0], f[1, :2], f[2], *ok)
    with pytest.raises(ValueError, match="dtype of u"):
        _core.eddies(f[0], f[1].astype(np.float32), f[2], *ok)
    with pytest.raises(ValueError, match="x must have one coordinate per grid index"):
        _core.eddies(f[0], f[1], f[2], x[:3], *ok[1:])
    with pytest.raises(ValueError, match="y must be finite and strictly increasing"):
        _core.eddies(f[0], f[1], f[2], x, y[::-1].copy(), *ok[2:])
    with pytest.raises(ValueError, match="periods lx and lz"):
        _core.eddies(f[0], f[1], f[2], x, y, z, 0.0, 1.0, *ok[5:])
    with pytest.raises(ValueError, match="damp and ddamp must have the same length"):
        _core.eddies(f[0], f[1], f[2], *ok[:5], d, dd[:4], c, s, a)
    with pytest.raises(ValueError, match="one value per y index"):
        _core.eddies(f[0], f[1], f[2], *ok[:5], d[:4], dd[:4], c, s, a)
    with pytest.raises(ValueError, match="one row per eddy"):
        _core.eddies(f[0], f[1], f[2], *ok[:7], c, np.ones(2), a)
    with pytest.raises(ValueError, match=r"centre must have shape \(n, 3\)"):
        _core.eddies(f[0], f[1], f[2], *ok[:7], np.zeros((1, 2)), s, a)
    with pytest.raises(ValueError, match="sigma must be positive"):
        _core.eddies(f[0], f[1], f[2], *ok[:8], -s, a)
    with pytest.raises(ValueError, match="writeable"):
        ro = f.copy()
        ro.flags.writeable = False
        _core.eddies(ro[0], ro[1], ro[2], *ok)
    with pytest.raises(ValueError, match=r"u must be a 3-D \(x, y, z\) array, got 2 dimensions"):
        _core.eddies(f[0, :, :, 0], f[1, :, :, 0], f[2, :, :, 0], *ok)
    odd = np.ndarray((4, 5, 6), dtype=np.float64, buffer=bytearray(8 * 200), strides=(244, 48, 8))
    with pytest.raises(ValueError, match="u has a stride that is not a multiple of its item size"):
        _core.eddies(odd, f[1], f[2], *ok)


# -- construction ----------------------------------------------------------------------------
@pytest.mark.parametrize("damped", [False, True])
def test_each_eddy_is_divergence_free(damped):
    """One eddy's field (plain, or the curl of the wall-damped potential) differentiated by
    central differences of step 1e-5 sigma, evaluated by the kernel itself at shifted points."""
    rng = np.random.default_rng(7)
    g = Grid((16, 33, 12), (2.0, 2.0, 1.5), "chebyshev")
    centre, sigma, alpha = np.array([[1.1, 0.3, 0.7]]), np.array([0.45]), rng.standard_normal((1, 3))
    x, y, z = g.x + 0.013, g.y[1:-1], g.z + 0.007  # off the grid lines, inside the channel

    def damp_at(yy):  # wall_damping's D and D' at any y (width 0.3)
        if not damped:
            return np.ones(yy.size), np.zeros(yy.size)
        width = 0.3
        lo, hi = np.exp(-((yy / width) ** 2)), np.exp(-(((2.0 - yy) / width) ** 2))
        return (1 - lo) * (1 - hi), 2 / width**2 * (yy * lo * (1 - hi) - (2.0 - yy) * hi * (1 - lo))

    def u(xx, yy, zz):
        f = np.zeros((3, xx.size, yy.size, zz.size))
        _core.eddies(f[0], f[1], f[2], xx, yy, zz, 2.0, 1.5, *damp_at(yy), centre, sigma, alpha)
        return f

    h = 1e-5 * sigma[0]
    div = ((u(x + h, y, z)[0] - u(x - h, y, z)[0]) + (u(x, y + h, z)[1] - u(x, y - h, z)[1])
           + (u(x, y, z + h)[2] - u(x, y, z - h)[2])) / (2 * h)
    scale = np.abs(u(x, y, z)).max() / sigma[0]  # velocity gradient scale
    assert scale > 0
    assert np.abs(div).max() < 1e-6 * scale


def test_wall_damping_vanishes_on_the_walls_with_its_derivative():
    for spec in ("chebyshev", "tanh:2.0", "chebyshev-cc"):
        g = Grid((4, 41, 4), (1.0, 2.0, 1.0), spec)
        d, dd = wall_damping(g, 0.1)
        assert d.min() >= 0 and d.max() <= 1 and d[g.shape[1] // 2] == pytest.approx(1.0)
        if g.has_walls:
            assert d[0] == d[-1] == dd[0] == dd[-1] == 0.0
        width = max(0.1, 3 * min(g.y[1] - g.y[0], g.y[-1] - g.y[-2]))

        def damp(t, width=width):
            return (1 - np.exp(-((t / width) ** 2))) * (1 - np.exp(-(((2.0 - t) / width) ** 2)))

        h, yy = 1e-6, g.y[1:-1]
        np.testing.assert_allclose(d[1:-1], damp(yy), atol=1e-15)
        np.testing.assert_allclose(dd[1:-1], (damp(yy + h) - damp(yy - h)) / (2 * h), atol=1e-6)


def test_eddies_fill_the_channel_with_the_documented_sizes_and_density():
    g = Grid(*BOX, y="chebyshev")
    lx, ly, lz = g.lengths
    rng = np.random.default_rng(0)
    for length, density in ((1.0, 2.0), (0.5, 1.0), (3.0, 4.0)):
        c, s = sample_eddies(g, rng, length, density)
        smin = SIGMA_MIN_CELLS * max(lx / 48, lz / 32)
        d = np.minimum(c[:, 1], ly - c[:, 1])
        np.testing.assert_allclose(s, np.maximum(length * KAPPA * d, smin))
        assert s.max() <= max(length * KAPPA, smin) + 1e-12
        assert (c[:, 0] >= 0).all() and (c[:, 0] < lx).all() and (c[:, 2] >= 0).all() and (c[:, 2] < lz).all()
        assert (d >= 0).all() and (d <= 1.0 + 1e-12).all()
        # eddies per sigma^3: the sum of sigma^3 / volume over all eddies is the density
        assert (s**3).sum() / (lx * ly * lz) == pytest.approx(density, rel=0.1)
        lower = c[:, 1] < 1.0
        assert abs(lower.mean() - 0.5) < 0.05


def test_intensities_give_uniform_eddies_the_target_stresses():
    """DFSEM's inversion: eddies of one size with these intensities have the stresses R (a
    realizable R), and beyond its reach (uu > vv + ww) the documented diag(vv, ww - vv, 0)."""
    from cfdseed.targets import Stresses

    g = Grid((40, 81, 40), (4.0, 6.0, 4.0), "uniform")
    rng = np.random.default_rng(1)
    n, sigma, density = 1792, 0.5, 2.0  # density x volume / sigma^3 eddies (4 x 7 x 4: beyond the walls too)
    centre = np.stack([rng.uniform(0, 4, n), rng.uniform(-0.5, 6.5, n), rng.uniform(0, 4, n)], 1)
    r = {"uu": 1.0, "vv": 0.8, "ww": 0.9, "uv": -0.3}
    st = Stresses(U=np.zeros(n), resolved=None, **{k: np.full(n, v) for k, v in r.items()})
    alpha = eddy_intensities(st, np.full(n, sigma), rng, density)
    f = eddy_field(g, centre, np.full(n, sigma), alpha)[:, :, 20:61]  # the middle, 1.5 sigma off the box
    got = {"uu": (f[0] ** 2).mean(), "vv": (f[1] ** 2).mean(), "ww": (f[2] ** 2).mean(), "uv": (f[0] * f[1]).mean()}
    for k, v in r.items():
        assert got[k] == pytest.approx(v, rel=0.15), (k, got)
    # beyond DFSEM's reach: streamwise vortices and swirls about y, no alpha_z
    far = Stresses(U=np.zeros(n), uu=np.full(n, 7.0), vv=np.full(n, 0.2), ww=np.full(n, 0.9), uv=np.full(n, -0.5))
    alpha = eddy_intensities(far, np.full(n, sigma), rng, density)
    assert np.abs(alpha[:, 2]).max() < 1e-12 * np.abs(alpha).max()
    cov = np.cov(alpha[:, :2].T)
    assert cov[1, 1] / cov[0, 0] == pytest.approx((0.9 - 0.2) / 0.2, rel=0.15)
    # DFSEM's own remedy (uncalibrated sem): the positive part, alpha_z included
    clipped = eddy_intensities(far, np.full(n, sigma), rng, density, beyond="clip")
    assert np.abs(clipped[:, 2]).max() > 0
    with pytest.raises(ValueError, match="beyond must be 'vortices' or 'clip'"):
        eddy_intensities(far, np.full(n, sigma), rng, density, beyond="bend")


# -- the delivered field ---------------------------------------------------------------------
def _tke(f, g):
    fl = f - f.mean(axis=(1, 3), keepdims=True)
    return float(trapezoid_weights(g) @ (0.5 * (fl**2).mean(axis=(1, 3)).sum(axis=0)))


@pytest.mark.parametrize("y, operators", [("chebyshev", "central"), ("chebyshev-cc", "central"),
                                          ("chebyshev", "spectral"), ("chebyshev-cc", "spectral")])
def test_delivered_field_is_checked_calibrated_and_has_the_tke(y, operators):
    g = Grid(*BOX, y=y, operators=operators)
    built = build(resolve("sem"), g, np.random.default_rng(0))
    rep = check_field(SELF, g, built.field)
    assert rep.passed, str(rep)
    assert rep.divergence_max < 1e-10 and rep.no_slip < 1e-12 and rep.cross_flow < 1e-12
    enf = built.info.enforcement
    assert enf.steps[:2] == ["no-slip", "projection"] and "stress calibration" in enf.steps
    cal = enf.calibration
    assert cal.after["uu"] < 0.03 and cal.after["uv"] < 0.03, cal.after
    assert cal.after["vv"] < 0.1 and cal.after["ww"] < 0.1, cal.after
    assert _tke(built.field, g) == pytest.approx(LM180_TKE, rel=0.05)


def test_calibrates_to_a_csv_target_without_a_re_tau_option(tmp_path):
    """A CSV target gives no Re_tau and neither does the user: it is the field's (it was refused)."""
    lm = resolve_target("lee-moser-180", 180.0)
    path = tmp_path / "target.csv"
    np.savetxt(path, np.stack([lm.y_delta, lm.U, lm.uu, lm.vv, lm.ww, lm.uv], 1), delimiter=",",
               header="y/h,U+,uu+,vv+,ww+,uv+", comments="")
    g = Grid(*BOX, y="chebyshev")
    built = build(resolve("sem", {"calibrate": str(path)}), g, np.random.default_rng(0))
    cal = built.info.enforcement.calibration
    assert cal is not None and cal.after["uu"] < 0.03 and cal.after["uv"] < 0.03, cal.after
    with pytest.raises(SourceError, match="need y/h"):  # a bad file is still refused at once
        bad = tmp_path / "bad.csv"
        bad.write_text("y,U\n0,0\n1,1\n")
        resolve("sem", {"calibrate": str(bad)})


def test_uncalibrated_is_plain_dfsem_with_about_the_target_tke():
    g = Grid(*BOX, y="chebyshev")
    built = build(resolve("sem", {"calibrate": None}), g, np.random.default_rng(0))
    assert built.info.enforcement.calibration is None and "stress calibration" not in built.info.enforcement.steps
    assert check_field(SELF, g, built.field).passed
    assert _tke(built.field, g) == pytest.approx(LM180_TKE, rel=0.05)


def test_reproducible_by_seed_and_the_seed_option():
    g = Grid((16, 21, 12), (2.0, 2.0, 1.0), "tanh:2.0")
    src = resolve("sem", {"calibrate": None})
    a, b = src(g, np.random.default_rng(4)), src(g, np.random.default_rng(4))
    assert np.array_equal(a, b)
    assert not np.allclose(a, src(g, np.random.default_rng(5)))
    own = resolve("sem", {"calibrate": None, "seed": 4})
    assert np.array_equal(own(g, np.random.default_rng(0)), own(g, np.random.default_rng(1)))
    assert np.array_equal(own(g, np.random.default_rng(0)), a)


def test_units():
    g = Grid(*BOX, y="chebyshev")
    wall = build(resolve("sem"), g, np.random.default_rng(1))
    u = wall.info.units
    lm = resolve_target("reference", 180.0)
    target_bulk = float(trapezoid_weights(g) @ lm.on_grid(g.y, 2.0).U)
    assert (u.re_tau, u.u_tau) == (180.0, 1.0) and u.bulk == pytest.approx(target_bulk)
    assert bulk_velocity(wall.field, g) == pytest.approx(target_bulk, rel=1e-12)
    assert 15.6 < target_bulk < 15.8
    given = build(resolve("sem", {"bulk": 2.5}), g, np.random.default_rng(1))
    assert given.info.units.bulk == 2.5 and bulk_velocity(given.field, g) == pytest.approx(2.5, rel=1e-12)
    # the same field in other units: velocities scale with u_tau (to the calibration's own
    # round-off, which its damped fits amplify a little)
    scaled = wall.field * given.info.units.u_tau
    np.testing.assert_allclose(given.field, scaled, atol=0.01 * np.abs(scaled).max())
    plain = build(resolve("sem", {"calibrate": None}), g, np.random.default_rng(1))
    assert plain.info.units.bulk == pytest.approx(reichardt_bulk(180.0)) and plain.info.enforcement.calibration is None
    assert bulk_velocity(plain.field, g) == pytest.approx(reichardt_bulk(180.0), rel=1e-12)


def test_registered_with_its_options():
    assert "sem" in available()
    assert set(SEM_DEFAULTS) <= set(OPTIONS)
    assert {"length", "eddy_density", "calibrate", "seed", "re_tau", "u_tau", "nu", "bulk"} <= set(SEM_DEFAULTS)


@pytest.mark.parametrize("options, message", [
    ({"length": 0}, "sem: length must be a positive number, got 0"),
    ({"length": -1.0}, "sem: length must be a positive number, got -1.0"),
    ({"length": "long"}, "sem: length must be a positive number, got 'long'"),
    ({"eddy_density": 0.0}, "sem: eddy_density must be a positive number, got 0.0"),
    ({"eddy_density": math.inf}, "sem: eddy_density must be a positive number, got inf"),
    ({"blend": -0.1}, "sem: blend must be a positive number, got -0.1"),
    ({"density": 2.0}, "unknown option.* density for source 'sem'; allowed: .*eddy_density"),
    ({"re_tau": -5}, "sem: re_tau must be a positive number"),
    ({"calibrate": "model"}, "sem: calibrate='model' names a generator's training statistics"),
    ({"calibrate": "lee-moser-9999"}, "sem: calibrate: .*neither a packaged reference"),
    ({"calibrate": {"re_tau": 180, "y_delta": [0.0, 1.0], "U": [0, 18], "uu": [0, 1], "vv": [0, 1],
                    "ww": [0, 1], "uv": [0, -2]}}, "sem: calibrate: .*not positive semi-definite"),
    ({"calibrate": {"re_tau": 180, "y_delta": [0.0, 0.5], "U": [0, 18], "uu": [0, 1], "vv": [0, 1],
                    "ww": [0, 1], "uv": [0, 0]}}, r"sem: calibrate: .*y/h spans \[0, 0.5\]; it must cover the half channel"),
])
def test_bad_options_raise_clear_errors(options, message):
    with pytest.raises(SourceError, match=message):
        resolve("sem", options)


def test_errors_when_the_source_runs():
    g = Grid((8, 11, 6), (2.0, 2.0, 1.0), "uniform")
    with pytest.raises(SourceError, match="contradicts"):
        resolve("sem", {"re_tau": 395, "u_tau": 1.0, "nu": 0.1})(g, np.random.default_rng(0))
    with pytest.raises(SourceError, match=r"sem: eddy_density=1e\+09 .* eddies on this grid"):
        resolve("sem", {"eddy_density": 1e9})(g, np.random.default_rng(0))
    with pytest.raises(SourceError, match="sem: the eddy intensities .* need Lee & Moser at re_tau: .*Re_tau = 5 is outside"):
        resolve("sem", {"re_tau": 5.0, "calibrate": None})(g, np.random.default_rng(0))
    # a grid that resolves no turbulence: the calibration refuses, as for gan
    with pytest.raises(SourceError, match="out of this field's reach"):
        resolve("sem")(Grid((6, 9, 6), (2.0, 2.0, 1.0), "uniform"), np.random.default_rng(2))
