"""Evaluation statistics on analytic fields with known answers, comparisons, slice_metrics, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cfdseed.cli import main as cli_main
from cfdseed.evaluate import (
    PROFILES,
    compare,
    compare_reference,
    log_spectral_error,
    relative_l2,
    slice_metrics,
    statistics,
    wasserstein1,
)
from cfdseed.grid import wall_normal
from cfdseed.reference import load_reference
from cfdseed.slices import DatasetWriter

torch.set_num_threads(1)
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
    for h in s.heights:
        assert h.yplus == s.yplus[h.row]
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


def test_error_measures():
    rng = np.random.default_rng(3)
    a = rng.standard_normal(5000)
    assert wasserstein1(a, a + 0.25) == pytest.approx(0.25)
    assert wasserstein1(np.zeros(3), np.ones(7)) == pytest.approx(1.0)
    assert wasserstein1([0.0, 1.0], [0.0, 0.0, 1.0, 1.0]) == pytest.approx(0.0)
    assert relative_l2([2.0, 4.0], [1.0, 2.0]) == pytest.approx(1.0)
    e = np.array([0.0, 1.0, 2.0, 3.0])
    assert log_spectral_error(4 * e, e) == pytest.approx(np.log(4))
    assert log_spectral_error(e, e) == 0.0


def test_slice_metrics_contract():
    f, _ = known_profile_field(8)
    noise = 0.05 * np.random.default_rng(4).standard_normal(f.shape) * (Y * (LY - Y))[None, None, :, None]
    f = f + noise - noise.mean(axis=(0, 3), keepdims=True)  # row means stay mirror-symmetric
    m = slice_metrics(f, f, Y, LZ, nu=NU, u_tau=U_TAU)
    assert set(m) == {*PROFILES, "E_uu", "E_vv", "E_ww", "combined"}
    assert all(isinstance(v, float) and v == 0.0 for v in m.values())
    # doubling every fluctuation: rms profiles off by 100 %, uv by 300 %, spectra by ln 4 everywhere
    mean = f.mean(axis=(0, 3), keepdims=True)
    g = mean + 2 * (f - mean)
    m2 = slice_metrics(f, g, Y, LZ, nu=NU, u_tau=U_TAU)
    assert m2["U+"] == pytest.approx(0.0, abs=1e-12)
    for k in ("u'+", "v'+", "w'+"):
        assert m2[k] == pytest.approx(1.0)
    assert m2["uv+"] == pytest.approx(3.0)
    for k in ("E_uu", "E_vv", "E_ww"):
        assert m2[k] == pytest.approx(np.log(4.0))
    assert m2["combined"] == pytest.approx(0.5 * (0 + 1 + 1 + 1 + 3) / 5 + 0.5 * np.log(4.0))
    # float32 batches of different sizes (the trainer's validation batch) are fine
    m3 = slice_metrics(f.astype(np.float32), g[:3].astype(np.float32), Y, LZ, nu=NU, u_tau=U_TAU)
    assert np.isfinite(m3["combined"]) and m3["combined"] > 0


def test_compare_interpolates_between_grids_and_pairs_heights():
    f, _ = known_profile_field(8)
    s = statistics(f, Y, LZ, nu=NU, u_tau=U_TAU)
    c = compare(s, s)
    assert c["combined"] == 0.0
    assert set(c["spectra"]["uu"]) == {h.label for h in s.heights}
    assert all(v == 0.0 for d in c["pdf_w1"].values() for v in d.values())
    y2 = wall_normal("chebyshev", 49, LY)
    yw2 = np.minimum(y2, LY - y2)
    g = np.zeros((4, 3, 49, NZ))
    g[:, 0] = (10.0 * np.tanh(yw2 * 3))[:, None]
    c2 = compare(statistics(g, y2, LZ, nu=NU, u_tau=U_TAU), s)
    assert c2["profiles"]["U+"] < 0.02  # same mean profile sampled on another grid


def test_compare_reference_on_published_profile():
    """Fields built to carry the Lee & Moser profiles (in physical units, u_tau != 1) match them."""
    ref = load_reference("lee-moser-180")
    u_tau = 0.8
    nu = u_tau / ref.re_tau  # half-height 1
    yw = np.minimum(Y, LY - Y)
    at = {k: np.interp(yw * u_tau / nu, ref.yplus, v) for k, v in ref.profiles.items()}
    xi = np.where(np.arange(NZ) % 2 == 0, 1.0, -1.0)
    eta = np.where(np.arange(NZ) % 4 < 2, 1.0, -1.0)
    zeta = np.where(np.arange(NZ) % 8 < 4, 1.0, -1.0)  # xi, eta, zeta: orthonormal +-1 patterns
    rho = np.divide(at["uv+"], at["u'+"] * at["v'+"], out=np.zeros(NY), where=at["u'+"] * at["v'+"] > 0)
    sign = np.where(Y > LY / 2, -1.0, 1.0)[:, None]
    f = np.zeros((2, 3, NY, NZ))
    f[:, 0] = (at["U+"][:, None] + at["u'+"][:, None] * xi) * u_tau
    f[:, 1] = sign * at["v'+"][:, None] * (rho[:, None] * xi + np.sqrt(1 - rho**2)[:, None] * eta) * u_tau
    f[:, 2] = at["w'+"][:, None] * zeta * u_tau
    s = statistics(f, Y, LZ, nu=nu, u_tau=u_tau)
    c = compare_reference(s, ref)
    assert c["name"] == "lee-moser-180" and c["rows_compared"] == (NY + 1) // 2
    for k in PROFILES:
        assert c["profiles"][k] < 1e-9, k
    g = f.copy()
    g[:, 0] *= 1.1
    assert compare_reference(statistics(g, Y, LZ, nu=nu, u_tau=u_tau), ref)["profiles"]["U+"] == pytest.approx(0.1)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
ATTRS = dict(re_tau=180.0, nu=1.0 / 180.0, u_tau=1.0, ly=LY, lz=LZ, source="synthetic test data")
EXPECTED = {"metrics.json", "report.md", "profiles.png", "spectra.png", "pdfs.png", "correlations.png", "slices.png"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    p = tmp_path_factory.mktemp("eval") / "data.h5"
    rng = np.random.default_rng(5)
    wall = (Y * (LY - Y))[None, None, :, None]
    f = wall * (0.3 * np.sin(2 * np.pi * Z / LZ + rng.uniform(0, 6.3, (48, 3, 1, 1)))
                + 0.1 * rng.standard_normal((48, 3, NY, NZ)))
    f[:, 0] += 15 * wall[:, 0]
    with DatasetWriter(p, Y, Z, attrs=ATTRS) as w:
        w.append(f)
    return p


def _check_outputs(out, extra=()):
    files = {p.name for p in out.iterdir()}
    assert EXPECTED | set(extra) <= files
    m = json.loads((out / "metrics.json").read_text())
    report = (out / "report.md").read_text()
    for name in m["figures"].values():
        assert (out / name).stat().st_size > 10_000
        assert f"]({name})" in report
    return m


@pytest.mark.slow
def test_cli_fields_against_dataset(dataset, tmp_path, capsys):
    out = tmp_path / "ev"
    assert cli_main(["evaluate", "--fields", str(dataset), "--against", str(dataset), "--against-samples", "20",
                     "--reference", "mkm-180", "--out", str(out)]) == 0
    m = _check_outputs(out)
    assert m["vs_reference"]["name"] == "mkm-180"
    assert m["against"]["statistics"]["n_fields"] == 20
    st = m["evaluated"]["statistics"]
    assert [h["label"] for h in st["heights"]] == ["y+=5", "y+=15", "y+=30", "y+=100", "centre"]
    assert set(st["profiles"]) == set(PROFILES) and len(st["y+"]) == (NY + 1) // 2
    assert st["units"]["k+"] == "k nu / u_tau"
    assert set(m["vs_dataset"]["spectra"]) == {"uu", "vv", "ww"}
    assert 0 < m["vs_dataset"]["combined"] < 1
    assert "combined metric" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_tiny_model(dataset, tmp_path):
    from cfdseed.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
    from cfdseed.model import Generator, arch_config

    arch = arch_config("cpu-tiny", NY, NZ, latent_dim=8)
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, {
        "format": CHECKPOINT_FORMAT, "format_version": 1, "arch": arch, "generator": Generator(arch).state_dict(),
        "norm": {"mean": torch.zeros(3, NY, dtype=torch.float64), "std": torch.ones(3, NY, dtype=torch.float64)},
        "grid": {"ny": NY, "nz": NZ, "y": torch.as_tensor(Y), "ly": LY, "lz": LZ, "re_tau": 180.0, "u_tau": 1.0,
                 "nu": 1 / 180},
        "metadata": {"source": "untrained test generator"}})
    out = tmp_path / "ev"
    assert cli_main(["evaluate", "--model", str(ckpt), "--samples", "8", "--device", "cpu", "--against",
                     str(dataset), "--out", str(out)]) == 0
    m = _check_outputs(out)
    assert m["evaluated"]["statistics"]["n_fields"] == 8
    assert m["vs_reference"]["name"] == "lee-moser-180"  # auto: nearest Re_tau


@pytest.mark.slow
def test_cli_three_d_field_written_by_generate(tmp_path, capsys):
    """cfdseed generate -> cfdseed evaluate --fields, end to end."""
    ic = tmp_path / "ic.h5"
    assert cli_main(["generate", "--source", "streaks", "--shape", "16", "17", "12", "--lengths", "4", str(LY),
                     "2", "--y", "chebyshev", "--option", "re_tau=180", "--option", "bulk=15.7",
                     "--seed", "3", "--no-png", "--out", str(ic)]) == 0
    out = tmp_path / "ev"
    assert cli_main(["evaluate", "--fields", str(ic), "--reference", "none", "--heights", "10", "--nu",
                     str(1 / 180), "--u-tau", "1", "--out", str(out)]) == 0
    m = _check_outputs(out, extra={"spectra_x.png"})
    assert m["vs_reference"] is None and m["vs_dataset"] is None
    div = m["evaluated"]["statistics"]["divergence"]
    assert div["div_max"] < 1e-8  # generate enforced the discrete divergence, evaluate measures it


def test_cli_field_without_units_needs_nu_and_u_tau(tmp_path, capsys):
    from cfdseed.fields import write_field
    from cfdseed.grid import Grid
    from cfdseed.sources import resolve

    # every built-in source records its units now; a field written without them (another tool's)
    ic = tmp_path / "plug.h5"
    g = Grid((8, 9, 8), (4.0, LY, 2.0))
    write_field(ic, resolve("plug", {})(g, np.random.default_rng(0)), g)
    assert cli_main(["evaluate", "--fields", str(ic), "--reference", "none", "--out", str(tmp_path / "a")]) == 2
    assert "--nu and --u-tau" in capsys.readouterr().err
    assert cli_main(["evaluate", "--fields", str(ic), "--reference", "none", "--nu", "0.01", "--u-tau", "0.05",
                     "--heights", "10", "--out", str(tmp_path / "b")]) == 0


def test_cli_bad_input(dataset, tmp_path, capsys):
    assert cli_main(["evaluate", "--fields", str(dataset), "--reference", "kim-1987", "--out", str(tmp_path)]) == 2
    assert "mkm-180" in capsys.readouterr().err
    assert cli_main(["evaluate", "--fields", str(tmp_path / "missing.h5"), "--out", str(tmp_path)]) == 2
    with pytest.raises(SystemExit):
        cli_main(["evaluate", "--fields", str(dataset), "--model", "m.pt", "--out", str(tmp_path)])


def test_balance_figures_of_a_field_with_known_stresses():
    """Per-wall TKE and shear stress, the momentum-balance residual and V_b, W_b on a synthetic
    field whose mean profile and uv are chosen so that the balance holds exactly."""
    from cfdseed.evaluate import balance_figures

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
    assert b["bulk_v"] == pytest.approx(0.0, abs=1e-14) and b["bulk_w"] == pytest.approx(0.25, rel=1e-12)
    f[:, 1] *= 0.5  # half the stress: the balance is off by up to 0.5
    assert balance_figures(f, y, ly, nu, u_tau)["balance_residual_max"] == pytest.approx(0.5, rel=1e-6)


def test_pair_metrics_add_the_one_step_correlation_error():
    from cfdseed.evaluate import pair_metrics, step_correlation

    rng = np.random.default_rng(0)
    ny, nz = 9, 16
    y = np.linspace(0.0, 2.0, ny)
    prof = (y * (2.0 - y))[None, None, :, None]  # zero on the walls
    prev = prof * rng.standard_normal((200, 3, ny, nz))
    fresh = prof * rng.standard_normal((200, 3, ny, nz))
    rho = np.array([0.9, 0.6, 0.3])[None, :, None, None]
    real = rho * prev + np.sqrt(1 - rho**2) * fresh
    r = step_correlation(prev, real)
    assert np.all(np.isnan(r[:, [0, -1]]))  # wall rows: no variance
    np.testing.assert_allclose(np.nanmean(r, axis=1), [0.9, 0.6, 0.3], atol=0.03)
    same = pair_metrics(prev, real, real, y, 3.0, nu=1 / 180, u_tau=1.0)
    assert same["combined"] == same["combined_slices"] == 0.0 and same["R1_v"] == 0.0
    one_rate = 0.9 * prev + np.sqrt(1 - 0.81) * fresh  # v and w keep u's correlation
    m = pair_metrics(prev, real, one_rate, y, 3.0, nu=1 / 180, u_tau=1.0)
    assert m["R1_u"] < 0.05 and m["R1_v"] == pytest.approx(0.3, abs=0.05) and m["R1_w"] == pytest.approx(0.6, abs=0.05)
    assert m["combined"] == pytest.approx(m["combined_slices"] + (m["R1_u"] + m["R1_v"] + m["R1_w"]) / 3)
    with pytest.raises(ValueError, match="one shape"):
        pair_metrics(prev[:5], real, real, y, 3.0, nu=1 / 180, u_tau=1.0)
    # rollout drift: a chain's end planes with the real TKE pass, twice the amplitude (4x TKE) costs 3
    kw = dict(nu=1 / 180, u_tau=1.0)
    held = pair_metrics(prev, real, real, y, 3.0, rolled=fresh, **kw)
    assert held["rollout_tke"] == pytest.approx(0.0, abs=0.05)
    drifted = pair_metrics(prev, real, real, y, 3.0, rolled=2.0 * fresh, **kw)
    assert drifted["rollout_tke"] == pytest.approx(3.0, rel=0.05)
    assert drifted["rollout_uv"] < 0.05  # u, v uncorrelated in both
    assert drifted["combined"] == pytest.approx(same["combined"] + drifted["rollout_tke"] + drifted["rollout_uv"])
    # rollout u-v correlation: chain ends whose u and v are correlated at -0.6 where the data's are not
    coupled = fresh.copy()
    coupled[:, 1] = -0.6 * fresh[:, 0] + 0.8 * fresh[:, 1]
    assert pair_metrics(prev, real, real, y, 3.0, rolled=coupled, **kw)["rollout_uv"] == pytest.approx(0.6, abs=0.05)
    blown = pair_metrics(prev, real, real, y, 3.0, rolled=np.full_like(fresh, np.nan), **kw)
    assert blown["rollout_tke"] == np.inf and blown["combined"] == np.inf and blown["rollout_uv"] == 1.0
    with pytest.raises(ValueError, match="rolled must be planes"):
        pair_metrics(prev, real, real, y, 3.0, rolled=fresh[:, :2], **kw)
    # the chain's own last step: decorrelating at the data's rates scores ~0, a frozen chain high
    live = pair_metrics(prev, real, real, y, 3.0, rolled=real, rolled_prev=prev, **kw)
    assert live["rollout_R1"] < 0.03
    frozen = pair_metrics(prev, real, real, y, 3.0, rolled=prev, rolled_prev=prev, **kw)
    assert frozen["rollout_R1"] == pytest.approx(np.mean([0.1, 0.4, 0.7]), abs=0.03)
    assert frozen["combined"] == pytest.approx(same["combined"] + frozen["rollout_tke"] + frozen["rollout_uv"]
                                               + frozen["rollout_R1"])
    with pytest.raises(ValueError, match="rolled_prev must have"):
        pair_metrics(prev, real, real, y, 3.0, rolled=fresh, rolled_prev=fresh[:3], **kw)


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


# --------------------------------------------------------------------------------------------
# several inputs side by side
# --------------------------------------------------------------------------------------------
SIDE = {"profiles.png", "spectra.png", "spectra_x.png", "correlations.png", "correlations_x.png", "pdfs.png",
        "slices.png"}


def field_file(path, shape, seed, amp=1.0, units=True):
    """A small 3-D field file (Re_tau = 180 in u_tau = 1, half-height 1): a parabolic mean flow and
    white noise vanishing at the walls."""
    from cfdseed.fields import write_field
    from cfdseed.grid import Grid

    g = Grid(shape, (4.0, LY, 2.0), y="chebyshev")
    rng = np.random.default_rng(seed)
    wall = (g.y * (LY - g.y))[None, None, :, None]
    f = amp * wall * rng.standard_normal((3, *shape))
    f[0] += 15 * wall[0]
    write_field(path, f, g, attrs={"nu": 1 / 180, "u_tau": 1.0} if units else None)
    return path


@pytest.fixture(scope="module")
def fields3(tmp_path_factory):
    d = tmp_path_factory.mktemp("side")
    return {"sem": field_file(d / "sem.h5", (8, 17, 8), 0), "pr": field_file(d / "pr.h5", (12, 13, 12), 1, amp=2.0),
            "dns": field_file(d / "dns.h5", (16, 21, 16), 2)}


@pytest.mark.slow
def test_side_by_side_metrics_table_and_overlays(fields3, tmp_path):
    """Inputs on three grids against a 3-D DNS field: per-label numbers, the table, the overlays.
    The DNS given as an input as well ("copy") scores 0 on every comparison."""
    from cfdseed.evaluate import evaluate
    from cfdseed.report import _fmt

    out = tmp_path / "cmp"
    m = evaluate(out, fields={"sem": fields3["sem"], "phase-randomised": fields3["pr"], "copy": fields3["dns"]},
                 against=fields3["dns"], reference="lee-moser-180", heights=(10.0, "centre"))
    labels = ["sem", "phase-randomised", "copy"]
    assert m["labels"] == labels and list(m["inputs"]) == labels
    assert json.loads((out / "metrics.json").read_text())["labels"] == labels
    assert SIDE | {"metrics.json", "report.md"} == {p.name for p in out.iterdir()}
    report = (out / "report.md").read_text()
    for name in m["figures"].values():
        assert (out / name).stat().st_size > 10_000 and f"]({name})" in report
    assert [e["grid"]["shape"] for e in m["inputs"].values()] == [[3, 8, 17, 8], [3, 12, 13, 12], [3, 16, 21, 16]]
    assert m["reference"]["name"] == "lee-moser-180" and m["against"]["statistics"]["kind"] == "fields"
    for label in labels:
        e = m["inputs"][label]
        assert set(e) == {"source", "grid", "statistics", "vs_dataset", "vs_reference", "summary"}
        assert [h["label"] for h in e["statistics"]["heights"]] == ["y+=10", "centre"]
        assert set(e["statistics"]["streamwise_correlation"]) == {"dx+", "uu", "vv", "ww"}
        vd, col = e["vs_dataset"], e["summary"]
        assert col["vs_dataset"]["combined"] == vd["combined"]
        assert col["vs_dataset"]["E_vv_x"] == pytest.approx(np.mean(list(vd["streamwise_spectra"]["vv"].values())))
        assert col["vs_dataset"]["R_uu_x"] == pytest.approx(np.mean(list(vd["streamwise_correlation"]["uu"].values())))
        assert col["vs_dataset"]["W1_w"] == pytest.approx(np.mean(list(vd["pdf_w1"]["w"].values())))
        assert col["vs_reference"] == e["vs_reference"]["profiles"]
        assert col["balance"]["bulk_w"] == e["statistics"]["balance"]["bulk_w"]
        assert col["balance"]["div_max"] == e["statistics"]["divergence"]["div_max"]
    assert all(v == 0.0 for v in m["inputs"]["copy"]["summary"]["vs_dataset"].values())
    assert m["inputs"]["phase-randomised"]["summary"]["vs_dataset"]["u'+"] > 0.5  # twice the DNS's noise
    assert m["against"]["summary"]["vs_dataset"] is None
    assert m["against"]["summary"]["vs_reference"] == m["inputs"]["copy"]["summary"]["vs_reference"]
    # the table: one column per input plus the DNS, the numbers of metrics.json
    assert "| | sem | phase-randomised | copy | DNS |" in report
    cols = [m["inputs"][k]["summary"] for k in labels] + [m["against"]["summary"]]
    for group, key, row in [("vs_dataset", "combined", "**combined metric**"), ("vs_dataset", "uv+", "rel. L2 uv+"),
                            ("vs_dataset", "E_ww", "log-spectral E_ww (z)"), ("vs_dataset", "R_vv_x", "correlation R_vv(dx)"),
                            ("vs_dataset", "W1_u", "PDF W1 u'"), ("vs_reference", "U+", "rel. L2 U+"),
                            ("balance", "tke_lower", "TKE, lower wall"), ("balance", "shear_stress_upper", "-uv, upper wall"),
                            ("balance", "balance_residual_max", "balance residual, max"), ("balance", "bulk_w", "W_b")]:
        line = f"| {row} | " + " | ".join(_fmt((c[group] or {}).get(key)) for c in cols) + " |"
        assert line in report, line
    assert "| **combined metric** | " in report and report.count("| – |") >= 1  # the DNS vs itself: no number


@pytest.mark.slow
def test_cli_side_by_side_against_a_slice_dataset(fields3, dataset, tmp_path, capsys):
    """LABEL=FILE and a bare FILE (labelled by its name), a 3-D field and a slice dataset as inputs."""
    out = tmp_path / "cmp"
    assert cli_main(["evaluate", "--fields", f"sem={fields3['sem']}", "--fields", str(dataset), "--against",
                     str(dataset), "--against-samples", "20", "--reference", "none", "--heights", "10",
                     "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 inputs side by side" in text and "  sem: field" in text and "  data: dataset" in text
    m = json.loads((out / "metrics.json").read_text())
    assert m["labels"] == ["sem", "data"] and m["reference"] is None
    assert set(m["figures"].values()) == SIDE  # the 3-D input brings the streamwise figures
    assert m["against"]["statistics"]["n_fields"] == 20 and m["inputs"]["data"]["statistics"]["n_fields"] == 48
    sem = m["inputs"]["sem"]
    assert "streamwise_spectra" not in sem["vs_dataset"] and "E_uu_x" not in sem["summary"]["vs_dataset"]
    assert sem["vs_reference"] is None and sem["summary"]["vs_reference"] is None
    report = (out / "report.md").read_text()
    assert "| | sem | data | DNS |" in report and "vs published DNS" not in report and "(x)" not in report


def test_one_labelled_input_keeps_the_single_input_report(fields3, tmp_path):
    from cfdseed.evaluate import evaluate

    kw = {"reference": "none", "heights": ("centre",)}
    bare = evaluate(tmp_path / "a", fields=fields3["sem"], **kw)
    labelled = evaluate(tmp_path / "b", fields=[("sem", fields3["sem"])], **kw)
    assert labelled == bare and "labels" not in bare and "evaluated" in bare
    assert (tmp_path / "a" / "metrics.json").read_text() == (tmp_path / "b" / "metrics.json").read_text()


def test_side_by_side_bad_inputs(fields3, tmp_path, capsys):
    from cfdseed.errors import ConfigError, DatasetError
    from cfdseed.evaluate import evaluate

    sem, pr = str(fields3["sem"]), str(fields3["pr"])
    out = tmp_path / "o"
    assert cli_main(["evaluate", "--fields", f"a={sem}", "--fields", f"a={pr}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "label 'a' given twice" in err and err.count("\n") == 1
    (tmp_path / "x").mkdir()
    twin = field_file(tmp_path / "x" / "sem.h5", (8, 9, 8), 3)  # bare files labelled by their names: both 'sem'
    assert cli_main(["evaluate", "--fields", sem, "--fields", str(twin), "--out", str(out)]) == 2
    assert "label 'sem' given twice" in capsys.readouterr().err
    assert cli_main(["evaluate", "--fields", f"a={sem}", "--fields", f"b={tmp_path / 'missing.h5'}", "--out",
                     str(out)]) == 2
    assert "input 'b'" in (err := capsys.readouterr().err) and "missing.h5: no such file" in err
    assert cli_main(["evaluate", "--fields", f"a={sem}", "--fields", f"b={pr}", "--against", str(tmp_path / "dns.h5"),
                     "--out", str(out)]) == 2
    assert "--against" in (err := capsys.readouterr().err) and "dns.h5: no such file" in err
    bare = field_file(tmp_path / "nounits.h5", (8, 9, 8), 4, units=False)
    assert cli_main(["evaluate", "--fields", f"a={sem}", "--fields", f"b={bare}", "--out", str(out)]) == 2
    assert "input 'b'" in (err := capsys.readouterr().err) and "--nu and --u-tau" in err
    assert cli_main(["evaluate", "--fields", f"a|b={sem}", "--fields", f"c={pr}", "--out", str(out)]) == 2
    assert "label 'a|b' is not allowed" in capsys.readouterr().err
    assert cli_main(["evaluate", "--fields", "a=", "--fields", f"c={pr}", "--out", str(out)]) == 2
    assert "no file given" in capsys.readouterr().err
    assert not out.exists()  # nothing written before the inputs are known to be good
    with pytest.raises(ConfigError, match="given twice"):
        evaluate(out, fields=[("sem", sem), ("sem", pr)])
    with pytest.raises(ConfigError, match="no input"):
        evaluate(out, fields={})
    with pytest.raises(ConfigError, match="neither a file nor"):
        evaluate(out, fields=[("sem", sem, "extra")])
    with pytest.raises(DatasetError, match="input 'pr'"):
        evaluate(out, fields={"sem": sem, "pr": tmp_path / "gone.h5"})


@pytest.mark.slow
def test_single_input_against_a_field_file(fields3, tmp_path):
    """--against takes a 3-D field file too (its own units): streamwise comparisons appear."""
    from cfdseed.evaluate import evaluate

    m = evaluate(tmp_path / "o", fields=fields3["sem"], against=fields3["dns"], nu=1 / 180, u_tau=1.0,
                 reference="none", heights=("centre",))
    assert m["against"]["statistics"]["kind"] == "fields" and m["against"]["grid"]["shape"] == [3, 16, 21, 16]
    assert set(m["vs_dataset"]["streamwise_spectra"]) == set(m["vs_dataset"]["streamwise_correlation"]) == {"uu", "vv", "ww"}
    assert "spectra_x" in m["figures"] and 0 < m["vs_dataset"]["combined"] < 5
