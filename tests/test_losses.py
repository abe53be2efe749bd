"""The training losses (cfdseed.losses) against analytic values, numpy and the cases each is for."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cfdseed.losses import (SPECTRUM_FLOOR, batch_statistics, gradient_penalty, innovation_loss, innovation_variance,
                            lag_loss, pair_physics_loss, physics_loss, plane_chains, spectrum_loss, step_correlation,
                            uv_loss)

torch.set_num_threads(1)


def test_gradient_penalty_linear_critic_analytic():
    torch.manual_seed(0)
    w = torch.randn(3, 5, 4)

    def linear(x):  # gradient w everywhere: penalty (||w|| - 1)^2 for any eps
        return (x * w).flatten(1).sum(1)

    real, fake, eps = torch.randn(6, 3, 5, 4), torch.randn(6, 3, 5, 4), torch.rand(6)
    gp = gradient_penalty(linear, real, fake, eps)
    torch.testing.assert_close(gp, (w.norm() - 1) ** 2)

    def quadratic(x):  # gradient x_hat: per-sample norms, checks one eps per sample
        return 0.5 * x.pow(2).flatten(1).sum(1)

    gp = gradient_penalty(quadratic, real, fake, eps)
    x_hat = eps.view(-1, 1, 1, 1) * real + (1 - eps.view(-1, 1, 1, 1)) * fake
    torch.testing.assert_close(gp, ((x_hat.flatten(1).norm(dim=1) - 1) ** 2).mean())
    # differentiable in the critic's parameters: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    wp = w.clone().requires_grad_(True)
    gradient_penalty(lambda x: (x * wp).flatten(1).sum(1), real, fake, eps).backward()
    torch.testing.assert_close(wp.grad, 2 * (w.norm() - 1) * w / w.norm())


def test_batch_statistics_match_numpy_and_physics_loss():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3, 6, 8))
    s = batch_statistics(torch.from_numpy(x)).numpy()
    mean = x.mean(axis=(0, 3))
    f = x - mean[None, :, :, None]
    spec = (np.abs(np.fft.rfft(f, axis=-1)) ** 2).mean(axis=(0, 2)) / 64
    ref = np.concatenate([mean.ravel(), (f**2).mean(axis=(0, 3)).ravel(),
                          (f[:, 0] * f[:, 1]).mean(axis=(0, 2)), spec.ravel()])
    np.testing.assert_allclose(s, ref, rtol=1e-10)
    xt = torch.from_numpy(x)
    assert physics_loss(xt, torch.roll(xt, 3, dims=-1)).item() < 1e-20  # shift-invariant stats
    assert physics_loss(xt, 2 * xt).item() > 0.1


def test_spectrum_loss_sees_small_scale_excess():
    """Log spectra: zero for a shifted copy, the same for x2 energy at any wavenumber (so a tiny
    excess in the last bin counts like a large one in the first), and a floor for empty bins."""
    rng = np.random.default_rng(2)
    nz = 16
    smooth = np.fft.irfft(np.fft.rfft(rng.standard_normal((64, 3, 5, nz)), axis=-1)
                          * np.exp(-np.arange(nz // 2 + 1) / 3.0), n=nz, axis=-1)  # a red spectrum
    x = torch.from_numpy(smooth)
    assert spectrum_loss(x, torch.roll(x, 5, dims=-1)).item() < 1e-20
    coef = np.fft.rfft(smooth, axis=-1)

    def boosted(k):
        c = coef.copy()
        c[..., k] *= np.sqrt(2.0)
        return torch.from_numpy(np.fft.irfft(c, n=nz, axis=-1))

    lo, hi = spectrum_loss(x, boosted(1)).item(), spectrum_loss(x, boosted(nz // 2 - 1)).item()
    assert lo > 0 and hi == pytest.approx(lo, rel=0.1)  # the linear spectra weigh them by the spectrum (e^-4 apart)
    assert physics_loss(x, boosted(nz // 2 - 1)).item() < 1e-3 * physics_loss(x, boosted(1)).item()
    # an empty real bin: bounded by the floor, not log(0)
    flat = torch.from_numpy(np.fft.irfft(coef * (np.arange(nz // 2 + 1) < 4), n=nz, axis=-1))
    assert np.isfinite(spectrum_loss(flat, x).item()) and SPECTRUM_FLOOR > 0


def test_innovation_variance_of_linear_and_deterministic_steps():
    """next = 0.6 prev + 0.8 white noise: the innovation is 0.64 everywhere; next = prev shifted in
    z and mixed across rows (deterministic, linear): none; the loss is zero at the target."""
    rng = np.random.default_rng(0)
    prev = rng.standard_normal((3000, 3, 4, 8))
    nxt = 0.6 * prev + 0.8 * rng.standard_normal(prev.shape)
    np.testing.assert_allclose(innovation_variance(prev, nxt), 0.64, rtol=0.08)
    mixed = np.roll(prev, 2, axis=-1) + 0.5 * np.roll(prev, 1, axis=2)[:, ::-1]
    assert innovation_variance(prev, mixed).max() < 0.02
    target = torch.full((3, 4, 1), 0.64)
    a = torch.from_numpy(rng.standard_normal((4000, 3, 4, 8)) * 0.8)
    b = torch.from_numpy(rng.standard_normal((4000, 3, 4, 8)) * 0.8)
    assert innovation_loss(a, b, target).item() < 1e-3
    assert innovation_loss(a, a, target).item() > 10.0  # a deterministic generator


def test_plane_chains_follow_the_pairs_and_drop_short_records():
    # a periodic ring 0 -> 1 -> 2 -> 0 and an open record 3 -> 4 -> 5
    pairs = np.array([[0, 1], [1, 2], [2, 0], [3, 4], [4, 5]])
    np.testing.assert_array_equal(plane_chains(pairs, np.array([0, 2, 3]), 2), [[0, 1, 2], [2, 0, 1], [3, 4, 5]])
    np.testing.assert_array_equal(plane_chains(pairs, np.array([1, 4]), 3), [[1, 2, 0, 1]])


def test_lag_loss_is_zero_at_the_data_rate_and_sees_frozen_chains():
    """An AR(1) chain x_j = r x_(j-1) + sqrt(1 - r^2) e has correlation r^j with its start: zero
    loss against that target; a frozen chain (x_j = x_0) is penalised by (1 - r^j)^2 on average."""
    rng = np.random.default_rng(3)
    r, k = 0.6, 3
    prev = torch.from_numpy(rng.standard_normal((4000, 3, 4, 8)))
    chain, x = [], prev
    for _ in range(k):
        x = r * x + np.sqrt(1 - r * r) * torch.from_numpy(rng.standard_normal(prev.shape))
        chain.append(x)
    target = torch.stack([torch.full((3, 4), r**j) for j in range(1, k + 2)]).double()  # one lag spare
    assert lag_loss(prev, torch.stack(chain), target).item() < 1e-3
    frozen = lag_loss(prev, torch.stack([prev] * k), target).item()
    assert frozen == pytest.approx(np.mean([(1 - r**j) ** 2 for j in range(1, k + 1)]), rel=1e-3)


def test_uv_loss_sees_u_and_v_drifting_apart():
    """uv_loss: 0 for the same correlation; ~(0.8)^2 when u and v lose a -0.8 correlation (same
    energies: what the covariance term of the physics loss weighs as one number among ~11 per row)."""
    g = torch.Generator().manual_seed(0)
    u = torch.randn(64, 1, 5, 16, generator=g)
    noise = torch.randn(64, 1, 5, 16, generator=g)
    w = torch.randn(64, 1, 5, 16, generator=g)
    tied = torch.cat([u, -0.8 * u + 0.6 * noise, w], dim=1)  # corr(u, v) = -0.8, unit energies
    apart = torch.cat([u, noise, w], dim=1)
    assert uv_loss(tied, tied).item() == 0.0
    assert 0.5 < uv_loss(tied, apart).item() < 0.8


def test_pair_physics_loss_sees_each_components_decorrelation():
    rng = np.random.default_rng(0)
    prev = torch.from_numpy(rng.standard_normal((64, 3, 5, 8)))
    noise = torch.from_numpy(rng.standard_normal((64, 3, 5, 8)))
    rho = torch.tensor([0.9, 0.5, 0.2], dtype=torch.float64).view(1, 3, 1, 1)
    real = rho * prev + torch.sqrt(1 - rho**2) * noise  # each component its own one-step correlation
    r = step_correlation(prev, real)
    assert r.shape == (3, 5)
    np.testing.assert_allclose(r.mean(dim=1).numpy(), [0.9, 0.5, 0.2], atol=0.06)
    same = 0.9 * prev + np.sqrt(1 - 0.81) * noise  # one rate for all: the v1 failure mode
    assert pair_physics_loss(prev, real, same).item() > 0.02
    assert pair_physics_loss(prev, real, real).item() == 0.0
