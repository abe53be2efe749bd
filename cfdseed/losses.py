"""The training losses of :mod:`cfdseed.train`: the WGAN-GP gradient penalty and the statistics
losses that keep generated slices physical, with the pure helpers their targets are built from.

Slices and planes are ``(B, 3, ny, nz)`` tensors (u, v, w on the y rows and the spanwise points) in
normalised units. :func:`physics_loss` compares :func:`batch_statistics` (mean and second-moment
profiles and the spanwise spectra); :func:`spectrum_loss` / :func:`spectrum_error` compare log
spanwise spectra, so the smallest scales count; :func:`uv_loss` compares the u-v correlation per
row. The conditional mode adds the one-step correlation prev -> next (:func:`pair_physics_loss`,
:func:`step_correlation`), the spread of next given prev against the data's innovation variance
(:func:`innovation_loss`, :func:`innovation_variance`) and the correlation with the start over
several steps downstream (:func:`lag_loss`, along chains of :func:`plane_chains`). Every loss is
differentiable in ``fake``; the targets' helpers run on numpy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .stats import rfft_weights

__all__ = ["gradient_penalty", "batch_statistics", "physics_loss", "SPECTRUM_FLOOR", "spectrum_loss", "spectrum_error",
           "pooled_power", "step_correlation", "uv_loss", "pair_physics_loss", "innovation_variance", "innovation_loss",
           "plane_chains", "lag_loss"]


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """WGAN-GP penalty ``mean_b (||grad_x critic(x_hat_b)||_2 - 1)^2``.

    ``x_hat = eps real + (1 - eps) fake`` with one coefficient ``eps`` ``(B,)`` per sample; the norm
    runs over all non-batch dimensions. Built with ``create_graph=True`` so it can be minimised.
    """
    e = eps.view(-1, *([1] * (real.dim() - 1)))  # (B, 1, 1, 1)
    x_hat = (e * real + (1.0 - e) * fake.detach()).requires_grad_(True)  # (B, 3, ny, nz)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def batch_statistics(x: torch.Tensor) -> torch.Tensor:
    """Batch statistics S(x) of slices ``(B, 3, ny, nz)`` as one vector (differentiable).

    Concatenates wall-normal profiles (averaged over batch and z) of the mean of u, v, w
    ``(3, ny)``, of the second moments uu, vv, ww ``(3, ny)`` and uv ``(ny,)`` of the fluctuations
    about that mean, and the spanwise energy spectra of u, v, w averaged over batch and y
    ``(3, nz // 2 + 1)``.
    """
    nz = x.shape[-1]
    mean = x.mean(dim=(0, 3))  # (3, ny)
    f = x - mean[None, :, :, None]  # (B, 3, ny, nz) fluctuations
    second = (f * f).mean(dim=(0, 3))  # (3, ny): uu, vv, ww
    uv = (f[:, 0] * f[:, 1]).mean(dim=(0, 2))  # (ny,)
    spec = _spanwise_power(f).mean(dim=1) / nz**2  # (3, nz // 2 + 1)
    return torch.cat([mean.flatten(), second.flatten(), uv, spec.flatten()])


def _spanwise_power(f: torch.Tensor) -> torch.Tensor:
    """``|rfft_z f|^2`` of fluctuations ``f`` ``(B, 3, ny, nz)`` averaged over the batch: ``(3, ny, nz // 2 + 1)``."""
    return torch.fft.rfft(f, dim=-1).abs().pow(2).mean(dim=0)


def physics_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """``||S(real) - S(fake)||^2 / dim(S)`` (mean squared difference of :func:`batch_statistics`)."""
    return (batch_statistics(real) - batch_statistics(fake)).pow(2).mean()


#: Floor of :func:`spectrum_loss`, relative to each component's mean spectral level in the real batch.
SPECTRUM_FLOOR = 1e-3


def spectrum_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the log spanwise spectra of ``(B, 3, ny, nz)`` slices, per
    component, row and wavenumber (fluctuations about the batch-and-z mean, power averaged over
    the batch), each spectrum floored at :data:`SPECTRUM_FLOOR` of the component's mean level in
    ``real``. Relative errors count alike at every wavenumber: the linear spectra of
    :func:`batch_statistics` do not see excess energy in the smallest scales, which hold ~1e-4 of
    the peak."""
    return spectrum_error(pooled_power([real]), pooled_power([fake]))


def spectrum_error(s_real: torch.Tensor, s_fake: torch.Tensor) -> torch.Tensor:
    """The log-spectrum difference of :func:`spectrum_loss` between spanwise power spectra
    ``(3, ny, nk)`` (``s_real``: e.g. the training data's, ``train.spectrum_target = "data"``)."""
    floor = SPECTRUM_FLOOR * s_real.mean(dim=(1, 2), keepdim=True) + 1e-12
    return (torch.log(s_fake + floor) - torch.log(s_real + floor)).pow(2).mean()


def pooled_power(planes: list[torch.Tensor]) -> torch.Tensor:
    """Spanwise power ``(3, ny, nk)`` of ``planes`` (each ``(B, 3, ny, nz)``) pooled: fluctuations
    about the mean over all of them and z."""
    x = torch.cat(planes)
    return _spanwise_power(x - x.mean(dim=(0, 3), keepdim=True))


def step_correlation(prev: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
    """One-step correlation ``(3, ny)`` between planes ``prev`` and ``nxt`` ``(B, 3, ny, nz)``.

    Per component and row: ``<p' n'> / sqrt(<p'^2> <n'^2> + 1e-8)`` over batch and z, with the
    fluctuations about the batch-and-z mean of each (differentiable; rows without variance give 0).
    """
    p = prev - prev.mean(dim=(0, 3), keepdim=True)  # (B, 3, ny, nz)
    n = nxt - nxt.mean(dim=(0, 3), keepdim=True)
    cov = (p * n).mean(dim=(0, 3))  # (3, ny)
    return cov / torch.sqrt(p.pow(2).mean(dim=(0, 3)) * n.pow(2).mean(dim=(0, 3)) + 1e-8)


def uv_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the u-v correlation coefficient per row (over batch and z;
    :func:`step_correlation` of u with v) between ``real`` and ``fake`` ``(B, 3, ny, nz)``. In
    :func:`batch_statistics` the covariance uv is one of ~11 numbers per row, and a chain can keep
    the energies while u and v drift apart (what -uv needs)."""
    return (step_correlation(real[:, :1], real[:, 1:2]) - step_correlation(fake[:, :1], fake[:, 1:2])).pow(2).mean()


def pair_physics_loss(prev: torch.Tensor, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Physics loss of the conditional mode: mean squared difference of ``[S(next), R1(prev, next)]``
    between real and generated ``next`` for the same ``prev`` (:func:`batch_statistics` and
    :func:`step_correlation`): each component decorrelates at its own rate, row by row."""
    s_real = torch.cat([batch_statistics(real), step_correlation(prev, real).flatten()])
    s_fake = torch.cat([batch_statistics(fake), step_correlation(prev, fake).flatten()])
    return (s_real - s_fake).pow(2).mean()


def innovation_variance(prev: np.ndarray, nxt: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """``(3, ny)``: variance of ``next`` left unexplained by the best linear prediction from the whole
    ``prev`` plane (pairs ``(n, 3, ny, nz)``, normalised), per component and row.

    Per spanwise wavenumber, ``next_k`` is regressed on all components and rows of ``prev_k``
    (covariances over the pairs, a ridge of ``ridge`` times the mean variance); the residual
    covariance's diagonal summed over wavenumbers (real-space normalisation) is the innovation a
    conditional generator must draw from its noise: a deterministic ``G(prev)`` has none."""
    n, c, ny, nz = prev.shape
    p = np.fft.rfft(np.asarray(prev, np.float64), axis=-1).reshape(n, c * ny, -1)
    q = np.fft.rfft(np.asarray(nxt, np.float64), axis=-1).reshape(n, c * ny, -1)
    weight = rfft_weights(nz)  # Parseval: the mean and Nyquist coefficients once, the others twice
    out = np.zeros(c * ny)
    for k in range(p.shape[-1]):
        a, b = p[:, :, k], q[:, :, k]
        cpp, cqp, cqq = a.T @ a.conj() / n, b.T @ a.conj() / n, b.T @ b.conj() / n  # E[p p^H], E[q p^H], E[q q^H]
        reg = ridge * np.real(np.trace(cpp)) / cpp.shape[0] + 1e-300
        gain = np.linalg.solve(cpp + reg * np.eye(cpp.shape[0]), cqp.conj().T).conj().T  # cqp cpp^-1
        resid = np.real(np.diag(cqq - gain @ cqp.conj().T))
        out += weight[k] * np.clip(resid, 0.0, None)
    return (out / nz**2).reshape(c, ny)


def innovation_loss(fake: torch.Tensor, twin: torch.Tensor, target: torch.Tensor, floor: float = 1e-3) -> torch.Tensor:
    """Mean squared log ratio of the generated spread of ``next`` given ``prev`` -- half the mean
    square of two draws' difference for the same ``prev``, per component and row -- to the data's
    innovation variance ``target`` ``(3, ny, 1)`` (:func:`innovation_variance`), floored at ``floor``."""
    spread = 0.5 * (fake - twin).pow(2).mean(dim=(0, 3))[..., None]  # (3, ny, 1)
    return (torch.log(spread + floor) - torch.log(target + floor)).pow(2).mean()


def plane_chains(pairs: np.ndarray, starts: np.ndarray, lags: int) -> np.ndarray:
    """``(starts', lags + 1)`` sample indices: each start plane followed ``lags`` steps downstream
    along the consecutive-plane ``pairs`` ``(n, 2)`` (prev, next); starts whose chain ends early
    (a non-periodic record) are dropped."""
    follow = np.full(int(pairs.max()) + 1, -1, dtype=np.int64)
    follow[pairs[:, 0]] = pairs[:, 1]
    chains = [np.asarray(starts, np.int64)]
    for _ in range(lags):
        prev = chains[-1]
        chains.append(np.where(prev >= 0, follow[np.maximum(prev, 0)], -1))
    out = np.stack(chains, axis=1)
    return out[(out >= 0).all(axis=1)]


def lag_loss(prev: torch.Tensor, chain: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between the correlation of each rollout plane ``chain[j]`` with its
    start ``prev`` (lag ``j + 1``; :func:`step_correlation`) and the data's ``target``
    ``(>= k, 3, ny)`` (the training data's, over chains of :func:`plane_chains`): each component forgets its start at the data's rate,
    not only one step ahead."""
    got = torch.stack([step_correlation(prev, x) for x in chain])  # (k, 3, ny)
    return (got - target[: got.shape[0]]).pow(2).mean()
