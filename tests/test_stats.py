"""Turbulence statistics on analytic fields with known answers: spectra, correlations, profiles in
wall units, PDFs, heights, 3-D fields, the balance figures."""

from __future__ import annotations

import numpy as np
import pytest

from cfdseed.grid import wall_normal
from cfdseed.metrics import compare, slice_metrics
from cfdseed.stats import rfft_weights, statistics

NY, NZ, LY, LZ = 33, 32, 2.0, np.pi
NU, U_TAU = 0.5 / 180.0, 0.5  # Re_tau = 180 with u_tau != 1 to exercise the units
Y = wall_normal("chebyshev", NY, LY)
Z = np.arange(NZ) * LZ / NZ


def single_mode(n=16, amp=0.7, k0=3, comp=1, seed=0):
    """One spanwise Fourier mode with a random phase per sample, on a uniform-in-y amplitude."""
    rng = np.random.default_rng(seed)
    f = np.zeros((n, 3, NY, NZ))
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    f[:, comp] = amp * np.cos(2 * np.pi * k0 * Z / LZ + phase)
    return f


@pytest.mark.parametrize("n", [1, 2, 7, 8, 33])
def test_rfft_weights_make_parseval_sums_of_real_signals(n):
    x = np.random.default_rng(n).standard_normal((4, n))
    coeffs = np.fft.rfft(x, axis=-1) / n
    assert rfft_weights(n).shape == (n // 2 + 1,)
    np.testing.assert_allclose((np.abs(coeffs) ** 2 * rfft_weights(n)).sum(-1), np.mean(x * x, axis=-1), rtol=1e-12)


def test_single_fourier_mode_gives_one_peak_of_known_energy():
    amp, k0 = 0.7, 3
    s = statistics(single_mode(amp=amp, k0=k0), Y, LZ, nu=NU, u_tau=U_TAU)
    dk = s.kz[1] - s.kz[0]  # in wall units
    for h in range(len(s.heights)):
        e = s.spectra_z[1, h]  # E_vv+
        assert int(np.argmax(e)) == k0
        # energy of the peak = variance of the mode = amp^2 / 2, in wall units
        assert e[k0] * dk == pytest.approx(amp**2 / 2 / U_TAU**2, rel=1e-12)
        assert np.sum(np.delete(e, k0)) * dk < 1e-20
        assert np.sum(e) * dk == pytest.approx(s.profiles["v'+"][s.heights[h].row] ** 2, rel=1e-12)
        # two-point correlation of a single mode: cos(k dz)
        np.testing.assert_allclose(s.correlation[1, h], np.cos(2 * np.pi * k0 * np.arange(NZ // 2 + 1) / NZ),
                                   atol=1e-12)
    assert s.kz[k0] == pytest.approx(2 * np.pi * k0 / LZ * NU / U_TAU)
    np.testing.assert_allclose(s.spectra_z[[0, 2]], 0.0, atol=1e-30)


def test_gaussian_field_pdf_moments():
    rng = np.random.default_rng(1)
    sigma = 0.3
    f = sigma * rng.standard_normal((200, 3, NY, NZ))
    s = statistics(f, Y, LZ, nu=NU, u_tau=U_TAU)
    mom = s.moments()
    n = s.samples.shape[-1]
    assert n == 2 * 200 * NZ  # both halves of the channel (wall reflection)
    for comp in "uvw":
        for h in s.heights:
            m = mom[comp][h.label]
            assert m["mean"] == pytest.approx(0.0, abs=5 / np.sqrt(n))
            assert m["std"] == pytest.approx(sigma / U_TAU, rel=0.03)
            assert m["skewness"] == pytest.approx(0.0, abs=0.1)
            assert m["flatness"] == pytest.approx(3.0, abs=0.2)
    hist = s.to_dict()["pdf_histograms"]["u"]["centre"]
    widths = np.diff(hist["edges"])
    assert np.sum(np.array(hist["density"]) * widths) == pytest.approx(1.0)


def known_profile_field(n=4):
    """u = U(y) + a(y) xi, v = b(y) (rho xi + sqrt(1 - rho^2) eta), w = c(y) eta with +-1 patterns
    xi, eta of zero mean, unit variance and zero correlation: profiles known exactly."""
    yw = np.minimum(Y, LY - Y)
    mean = 10.0 * np.tanh(yw * 3)
    a, b, c, rho = 0.5 * yw, 0.2 * yw, 0.3 * yw**2, -0.4
    xi = np.where(np.arange(NZ) % 2 == 0, 1.0, -1.0)
    eta = np.where(np.arange(NZ) % 4 < 2, 1.0, -1.0)
    sign = np.where(Y > LY / 2, -1.0, 1.0)  # uv changes sign across the centre (mirror symmetry)
    f = np.zeros((n, 3, NY, NZ))
    f[:, 0] = mean[:, None] + a[:, None] * xi
    f[:, 1] = sign[:, None] * b[:, None] * (rho * xi + np.sqrt(1 - rho**2) * eta)
    f[:, 2] = c[:, None] * eta
    return f, dict(U=mean, u=a, v=b, w=c, uv=rho * a * b)


def test_known_profiles_in_wall_units_with_wall_reflection():
    f, p = known_profile_field()
    s = statistics(f, Y, LZ, nu=NU, u_tau=U_TAU)
    nh = (NY + 1) // 2
    assert s.folded and s.yplus.shape == (nh,)
    np.testing.assert_allclose(s.yplus, Y[:nh] * U_TAU / NU)
    assert s.re_tau == pytest.approx(180.0)
    assert s.y_delta[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(s.profiles["U+"], p["U"][:nh] / U_TAU, atol=1e-12)
    np.testing.assert_allclose(s.profiles["u'+"], p["u"][:nh] / U_TAU, atol=1e-12)
    np.testing.assert_allclose(s.profiles["v'+"], p["v"][:nh] / U_TAU, atol=1e-12)
    np.testing.assert_allclose(s.profiles["w'+"], p["w"][:nh] / U_TAU, atol=1e-12)
    # without the v -> -v flip of the mirrored half the two halves would cancel
    np.testing.assert_allclose(s.profiles["uv+"][:-1], p["uv"][: nh - 1] / U_TAU**2, atol=1e-12)
    assert s.profiles["uv+"][-1] == pytest.approx(0.0, abs=1e-12)  # the centre row is its own mirror


def test_asymmetric_grid_uses_lower_half():
    y = np.sort(np.concatenate([[0.0, 2.0], np.random.default_rng(2).uniform(0.01, 1.99, 15)]))
    f = np.ones((2, 3, y.size, 8))
    s = statistics(f, y, 1.0, nu=NU, u_tau=U_TAU)
    assert not s.folded
    assert s.yplus.size == int(np.sum(y <= 1.0))


def test_heights_pick_nearest_rows_and_skip_duplicates():
    s = statistics(single_mode(), Y, LZ, nu=NU, u_tau=U_TAU, heights=(5.0, 5.1, 15.0, 1e4, "centre"))
    labels = [h.label for h in s.heights]
    assert labels == ["y+=5", "y+=15", "centre"]
    off = np.flatnonzero(s.yplus > 0)  # the rows off the wall
    for h, want in zip(s.heights, (5.0, 15.0)):  # the nearest off-wall row to each target
        assert h.row == off[np.argmin(np.abs(s.yplus[off] - want))] and h.yplus == s.yplus[h.row]
        assert abs(h.yplus - want) < np.diff(s.yplus).max()
    assert s.heights[-1].yplus == pytest.approx(180.0)
    with pytest.raises(ValueError, match="centre"):
        statistics(single_mode(), Y, LZ, nu=NU, u_tau=U_TAU, heights=("middle",))


def test_three_d_fields_streamwise_spectrum_and_divergence():
    nx, lx = 16, 4.0
    x = np.arange(nx) * lx / nx
    y = wall_normal("chebyshev", 17, LY)
    g = (y * (LY - y))[None, :, None]
    f = np.zeros((2, 3, nx, 17, 12))
    f[:, 0] = g * 0.0 + (np.cos(2 * np.pi * 2 * x / lx)[:, None, None] * g)  # u varies in x: div != 0
    s = statistics(f, y, 2.0, nu=NU, u_tau=U_TAU, lx=lx)
    assert s.kind == "fields" and s.n_fields == 2
    assert s.kx[1] == pytest.approx(2 * np.pi / lx * NU / U_TAU)
    for h in range(len(s.heights)):
        assert int(np.argmax(s.spectra_x[0, h])) == 2
    assert s.divergence["div_max"] > 1.0
    # u independent of x: the contract-1 divergence vanishes
    f2 = np.zeros_like(f)
    f2[:, 0] = g * np.sin(2 * np.pi * np.arange(12) / 12)[None, None, :]
    s2 = statistics(f2, y, 2.0, nu=NU, u_tau=U_TAU, lx=lx)
    assert s2.divergence["div_max"] < 1e-12
    with pytest.raises(ValueError, match="lx"):
        statistics(f, y, 2.0, nu=NU, u_tau=U_TAU)


def test_bad_input():
    f = single_mode()
    with pytest.raises(ValueError, match="shape"):
        statistics(f[0], Y, LZ, nu=NU, u_tau=U_TAU)
    with pytest.raises(ValueError, match="y must have shape"):
        statistics(f, Y[:-1], LZ, nu=NU, u_tau=U_TAU)
    with pytest.raises(ValueError, match="nu"):
        statistics(f, Y, LZ, nu=-1.0, u_tau=U_TAU)
    g = f.copy()
    g[0, 0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        statistics(g, Y, LZ, nu=NU, u_tau=U_TAU)
    with pytest.raises(ValueError, match="one grid"):
        slice_metrics(f, f[:, :, :-1], Y, LZ, nu=NU, u_tau=U_TAU)


def test_balance_figures_of_a_field_with_known_stresses():
    """Per-wall TKE and shear stress, the momentum-balance residual and V_b, W_b on a synthetic
    field whose mean profile and uv are chosen so that the balance holds exactly."""
    from cfdseed.stats import balance_figures

    nu, u_tau, ly = 1 / 180, 1.0, 2.0
    y = np.linspace(0.0, ly, 81)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 16, 1, 12))  # (N, nx, 1, nz): one random pattern for every y
    a = (a - a.mean(axis=(0, 1, 3), keepdims=True)) / a.std(axis=(0, 1, 3), keepdims=True)
    s = 1 - y / (ly / 2)  # u' = a, v' = -s a: -uv = s = 1 - y/h, the whole balance (U uniform)
    f = np.zeros((4, 3, 16, y.size, 12))
    f[:, 0] = 10.0 + a
    f[:, 1] = -s[None, None, :, None] * a
    f[:, 2] = 0.25
    b = balance_figures(f, y, ly, nu, u_tau)
    assert b["balance_residual_max"] < 1e-12
    assert b["shear_stress_lower"] == pytest.approx(0.5, rel=1e-3)  # integral of (1 - y) over [0, 1]
    assert b["shear_stress_upper"] == pytest.approx(0.5, rel=1e-3)
    assert b["tke_lower"] == pytest.approx(b["tke_upper"], rel=1e-12)
    assert b["tke_lower"] == pytest.approx(0.5 * (1 + 1 / 3), rel=1e-3)  # u'^2 = 1, v'^2 = s^2, w' = 0
    assert b["bulk_v"] == pytest.approx(0.0, abs=1e-14) and b["bulk_w"] == pytest.approx(0.25, rel=1e-12)
    f[:, 1] *= 0.5  # half the stress: the balance is off by up to 0.5
    assert balance_figures(f, y, ly, nu, u_tau)["balance_residual_max"] == pytest.approx(0.5, rel=1e-6)


def test_streamwise_correlation_of_a_single_mode():
    nx, lx = 16, 4.0
    x = np.arange(nx) * lx / nx
    y = wall_normal("chebyshev", 17, LY)
    f = np.zeros((2, 3, nx, 17, 12))
    f[:, 0] = np.cos(2 * np.pi * 3 * x / lx)[:, None, None] * (y * (LY - y))[None, :, None]
    s = statistics(f, y, 2.0, nu=NU, u_tau=U_TAU, lx=lx)
    assert s.dx[1] == pytest.approx(lx / nx * U_TAU / NU) and s.dx.size == nx // 2 + 1
    for h in range(len(s.heights)):
        np.testing.assert_allclose(s.correlation_x[0, h], np.cos(2 * np.pi * 3 * np.arange(nx // 2 + 1) / nx),
                                   atol=1e-12)
    assert all(v == 0.0 for d in compare(s, s)["streamwise_correlation"].values() for v in d.values())
    assert statistics(single_mode(), Y, LZ, nu=NU, u_tau=U_TAU).correlation_x is None  # slices
