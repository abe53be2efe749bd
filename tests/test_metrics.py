"""Comparisons and metrics: the error measures, compare, compare_reference, slice_metrics and
pair_metrics on fields with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from cfdseed.grid import wall_normal
from cfdseed.metrics import (compare, compare_reference, log_spectral_error, pair_metrics, relative_l2, slice_metrics,
                             wasserstein1)
from cfdseed.reference import load_reference
from cfdseed.stats import PROFILES, one_half, statistics

from test_stats import LY, LZ, NU, NY, NZ, U_TAU, Y, known_profile_field


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


def _noisy_field(n=8, seed=4):
    f, _ = known_profile_field(n)
    noise = 0.05 * np.random.default_rng(seed).standard_normal(f.shape) * (Y * (LY - Y))[None, None, :, None]
    return f + noise - noise.mean(axis=(0, 3), keepdims=True)


@pytest.mark.parametrize("ny", [NY, NY + 1])
def test_one_half_makes_the_folded_statistics_that_half_s(ny):
    """Each half mirrored onto the other (v -> -v): the folded statistics are those of that half's
    rows alone (the lower rows as they are, the upper ones read from the upper wall); for odd ny
    the shared centre row's uv folds to 0 as in any fold."""
    y = wall_normal("chebyshev", ny, LY)
    f = np.random.default_rng(ny).standard_normal((6, 3, ny, NZ)) + np.linspace(0, 1, ny)[None, None, :, None]
    nh = (ny + 1) // 2
    rows = slice(0, nh - 1 if ny % 2 else nh)  # the centre row of odd ny aside
    flipped = np.flip(f, axis=2).copy()
    flipped[:, 1] *= -1
    for which, src in (("lower", f), ("upper", flipped)):
        half = statistics(one_half(f, y, which), y, LZ, nu=NU, u_tau=U_TAU, ly=LY)
        alone = statistics(src[:, :, :nh], y[:nh], LZ, nu=NU, u_tau=U_TAU, ly=LY)  # lower rows: no fold
        for k in PROFILES:
            np.testing.assert_allclose(half.profiles[k][rows], alone.profiles[k][rows], rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="symmetric"):
        one_half(f, np.sort(np.random.default_rng(0).uniform(0, LY, ny)), "lower", LY)
    with pytest.raises(ValueError, match="lower"):
        one_half(f, y, "middle")


def test_slice_metrics_with_halves_count_each_profile_s_worse_half():
    """A generator right in the lower half and 20 % too strong in u in the upper one: folded, the
    u' error is about halved; halves apart, the upper's is the one combined counts."""
    f = _noisy_field()
    mean = f.mean(axis=(0, 3), keepdims=True)
    g = f.copy()
    upper = Y > 0.5 * LY
    g[:, 0, upper] = (mean + 1.2 * (f - mean))[:, 0, upper]
    plain = slice_metrics(f, g, Y, LZ, nu=NU, u_tau=U_TAU)
    m = slice_metrics(f, g, Y, LZ, nu=NU, u_tau=U_TAU, halves=True)
    assert set(m) == set(plain) | {f"{k} {h}" for k in PROFILES for h in ("lower", "upper")} | {"combined_folded"}
    assert m["combined_folded"] == plain["combined"] and m["u'+"] == plain["u'+"]
    # the upper half's rows 20 % off, but for the centre row they share (odd ny)
    assert m["u'+ lower"] == pytest.approx(0.0, abs=1e-12) and 0.15 < m["u'+ upper"] <= 0.2
    assert 0.3 * m["u'+ upper"] < plain["u'+"] < 0.7 * m["u'+ upper"]  # the fold hides about half of it
    assert m["combined"] > plain["combined"]
    worse = {k: max(m[f"{k} lower"], m[f"{k} upper"]) for k in PROFILES}
    spectra = np.mean([m["E_uu"], m["E_vv"], m["E_ww"]])
    assert m["combined"] == pytest.approx(0.5 * np.mean(list(worse.values())) + 0.5 * spectra, rel=1e-12)
    same = slice_metrics(f, f, Y, LZ, nu=NU, u_tau=U_TAU, halves=True)
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in same.values())
    pm = pair_metrics(f, f, g, Y, LZ, nu=NU, u_tau=U_TAU, halves=True)
    assert pm["combined_slices"] == m["combined"] and pm["combined_slices_folded"] == plain["combined"]


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


def test_pair_metrics_add_the_one_step_correlation_error():
    from cfdseed.metrics import pair_metrics, step_correlation

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
