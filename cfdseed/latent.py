"""The latent construction's streamwise structure (plane models, ``x_construction="latent"`` of
:func:`cfdseed.synthesis.synthesise`) and the streamwise correlation of fields and datasets it is
compared with.

**Streamwise coherence and periodicity.** Slice ``k`` at ``x_k = k lx / nx`` is generated from the
latent vector ``z(x_k)``, a random periodic path::

    z(x) = sum_m c_m [a_m cos(2 pi m x / lx) + b_m sin(2 pi m x / lx)],   a_m, b_m ~ N(0, I)

with ``sum_m c_m^2 = 1``, so every ``z(x)`` is standard normal (what the generator was trained on)
and the path closes on itself across the periodic boundary. The latent correlation between two
stations is ``rho(r) = sum_m c_m^2 cos(2 pi m r / lx)``. With ``corr_length=None`` only ``m = 1``
is used (the published construction: ``rho = cos(2 pi r / lx)``, correlated over ~``lx / 4``).
Otherwise ``c_m^2 ~ exp(-(2 pi m L / lx)^2 / 2)`` (``m >= 1``, up to the x-resolution): ``rho`` is
the periodic Gaussian ``G(r) = exp(-r^2 / 2 L^2)`` less its mean over a period,
``rho = (G - g) / (1 - g)`` with ``g ~ sqrt(2 pi) L / lx`` (a mean-zero path has zero mean
correlation), ``L = corr_length * h``, ``h = ly / 2``
(default :data:`DEFAULT_CORR_LENGTH` = 1.5 h: in a box much longer than ``L`` ``G`` falls to 0.1 at
~3 h, close to the outer-layer streamwise correlation of u in DNS; the mean removed, ``rho`` falls
faster in a box of a few ``L`` -- it crosses 0 near 2.3 h at ``lx = 4 pi h`` and is -0.9 at 3 h at
``lx = 2 pi h`` -- so compare :func:`latent_correlation` itself with :func:`streamwise_correlation`
of a DNS field or of stacked training slices). For ``L >~ lx / 2 pi`` it reduces to the published
construction.
"""

from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["DEFAULT_CORR_LENGTH", "STATIONS_PER_HARMONIC", "harmonic_weights", "latent_path", "auto_stations",
           "latent_correlation", "streamwise_correlation", "dataset_streamwise_correlation", "integral_length"]

#: Default streamwise latent correlation length, in half-heights h = ly / 2 of the target.
DEFAULT_CORR_LENGTH = 1.5
_WEIGHT_CUTOFF = 1e-10  # harmonics lighter than this (relative to the first) are dropped
#: Generated slices per latent harmonic when ``x_stations="auto"`` (see :func:`auto_stations`).
STATIONS_PER_HARMONIC = 8


def harmonic_weights(nx: int, lx: float, corr_length: float | None) -> np.ndarray:
    """Weights ``c_m`` (m = 1..M) of the latent path, ``sum c_m^2 = 1``.

    ``corr_length`` is the Gaussian correlation length in the units of ``lx`` (None: first harmonic
    only). At most ``max(1, nx // 2)`` harmonics (what the x stations resolve).
    """
    if corr_length is None:
        return np.ones(1)
    if not (math.isfinite(corr_length) and corr_length > 0):
        raise ValueError(f"corr_length must be a positive number or None, got {corr_length!r}")
    m = np.arange(1, max(1, nx // 2) + 1)
    w2 = np.exp(-0.5 * (2.0 * np.pi * m * corr_length / lx) ** 2)
    w2 = w2[w2 >= _WEIGHT_CUTOFF * w2[0]] if w2[0] > 0 else np.ones(1)
    return np.sqrt(w2 / w2.sum())


def latent_path(nx: int, latent_dim: int, rng: np.random.Generator, *, lx: float,
                corr_length: float | None, stations: int | None = None) -> np.ndarray:
    """Latent vectors ``(stations, latent_dim)`` along one random periodic path.

    The path (its harmonics) is the one for ``nx`` points; it is evaluated at ``stations``
    (default ``nx``) equispaced points ``k lx / stations``. The same ``rng`` state gives the same
    path whatever ``stations`` is.
    """
    c = harmonic_weights(nx, lx, corr_length)  # (M,)
    ab = rng.standard_normal((2, c.size, latent_dim))  # (2, M, D)
    n = nx if stations is None else int(stations)
    phase = 2.0 * np.pi * np.outer(np.arange(n) / n, np.arange(1, c.size + 1))  # (n, M)
    return (np.cos(phase) * c) @ ab[0] + (np.sin(phase) * c) @ ab[1]


def auto_stations(nx: int, lx: float, corr_length: float | None) -> int:
    """Default number of generated slices: :data:`STATIONS_PER_HARMONIC` per latent harmonic
    (at least 32), at most ``nx``; the field is Fourier-interpolated in x in between."""
    m = harmonic_weights(nx, lx, corr_length).size
    return int(min(nx, max(32, STATIONS_PER_HARMONIC * m)))


def latent_correlation(r: np.ndarray, nx: int, lx: float, corr_length: float | None) -> np.ndarray:
    """Correlation ``rho(r)`` of one latent component between stations ``r`` apart."""
    c = harmonic_weights(nx, lx, corr_length)
    m = np.arange(1, c.size + 1)
    return np.cos(2.0 * np.pi * np.multiply.outer(np.asarray(r, dtype=np.float64), m) / lx) @ (c * c)


def streamwise_correlation(field: np.ndarray, lx: float) -> tuple[np.ndarray, np.ndarray]:
    """Streamwise two-point correlation of the fluctuations of a field ``(3, nx, ny, nz)``.

    ``R_ii(r, y) = <u_i'(x, y, z) u_i'(x + r, y, z)> / <u_i'^2>`` averaged over x and z, with
    ``u' = u - <u>_{x,z}``; computed with FFTs along x.

    Returns
    -------
    r : ndarray (nx // 2 + 1,)
        Separations ``0 .. lx / 2``.
    corr : ndarray (3, ny, nx // 2 + 1)
        ``R_ii(r, y)``; rows with no fluctuation are 0.
    """
    f = np.asarray(field, dtype=np.float64)
    if f.ndim != 4 or f.shape[0] != 3:
        raise ValueError(f"field must have shape (3, nx, ny, nz), got {f.shape}")
    nx = f.shape[1]
    fl = f - f.mean(axis=(1, 3), keepdims=True)
    spec = np.fft.rfft(fl, axis=1)
    cov = np.fft.irfft(np.abs(spec) ** 2, n=nx, axis=1).mean(axis=3) / nx  # (3, nx, ny)
    var = cov[:, :1]
    corr = np.divide(cov, var, out=np.zeros_like(cov), where=var > 0)
    half = nx // 2 + 1
    return np.arange(half) * (lx / nx), np.moveaxis(corr[:, :half], 1, 2)


def dataset_streamwise_correlation(path: str | os.PathLike, lx: float | None = None,
                                   t: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Streamwise correlation (:func:`streamwise_correlation`) of the slices of a training dataset.

    Uses the slices of one time (``t``, default the first in the file; all slices when the file has
    no ``/t``), which must sit at equispaced ``/x`` stations over one period ``lx`` (default:
    number of stations times their spacing), e.g. every x-plane of a DNS snapshot.

    Raises
    ------
    DatasetError
        No ``/x``, or stations that are not equispaced.
    """
    from .slices import open_dataset
    from .errors import DatasetError

    with open_dataset(path, check_finite=False) as ds:
        if ds.x is None:
            raise DatasetError(f"{path}: no /x stations; the streamwise correlation needs slices at known x")
        idx = np.arange(ds.n)
        if ds.t is not None:
            t0 = ds.t[0] if t is None else float(t)
            idx = idx[np.isclose(ds.t, t0, rtol=0, atol=1e-12 * max(1.0, abs(t0)))]
        idx = idx[np.argsort(ds.x[idx])]
        xs = ds.x[idx]
        dx = np.diff(xs)
        if idx.size < 2 or not np.allclose(dx, dx.mean(), rtol=1e-6, atol=0):
            raise DatasetError(f"{path}: {idx.size} slices at x = {xs[:4]}...: need >= 2 equispaced x stations")
        period = float(idx.size * dx.mean()) if lx is None else float(lx)
        fields = ds.read(idx)  # (n, 3, ny, nz)
    return streamwise_correlation(np.moveaxis(fields, 0, 1), period)


def integral_length(r: np.ndarray, corr: np.ndarray) -> np.ndarray:
    """Integral length ``int_0^{r0} R dr`` up to the first zero crossing (trapezoid), per curve."""
    corr = np.asarray(corr, dtype=np.float64)
    neg = corr <= 0
    first = np.where(neg.any(axis=-1), neg.argmax(axis=-1), corr.shape[-1])
    keep = np.arange(corr.shape[-1]) < first[..., None]
    c = np.where(keep, corr, 0.0)
    return np.trapezoid(c, r, axis=-1) if hasattr(np, "trapezoid") else np.trapz(c, r, axis=-1)
