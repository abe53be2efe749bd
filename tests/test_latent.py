"""Tests of cfdseed.latent: the latent path's weights, periodicity and correlation, and the streamwise
correlation of fields and datasets."""

from __future__ import annotations

import numpy as np
import pytest

from cfdseed.latent import (dataset_streamwise_correlation, harmonic_weights, integral_length, latent_correlation,
                            latent_path, streamwise_correlation)


@pytest.mark.parametrize("corr", [None, 0.3, 1.0, 5.0])
def test_weights_normalised_so_every_latent_is_standard_normal(corr):
    c = harmonic_weights(32, 4 * np.pi, corr)
    assert np.sum(c * c) == pytest.approx(1.0, abs=1e-14)
    z = latent_path(32, 4000, np.random.default_rng(0), lx=4 * np.pi, corr_length=corr)  # (nx, D)
    assert np.var(z, axis=1) == pytest.approx(np.ones(32), abs=0.12)


def test_first_harmonic_only_is_the_published_construction():
    assert harmonic_weights(16, 1.0, None).tolist() == [1.0]
    rng = np.random.default_rng(1)
    z = latent_path(16, 5, rng, lx=1.0, corr_length=None)
    a, b = np.random.default_rng(1).standard_normal((2, 1, 5))
    x = np.arange(16) / 16
    np.testing.assert_allclose(z, np.cos(2 * np.pi * x)[:, None] * a + np.sin(2 * np.pi * x)[:, None] * b)


@pytest.mark.parametrize("corr", [None, 0.5])
def test_latent_path_is_periodic(corr):
    nx = 48
    z = latent_path(nx, 64, np.random.default_rng(2), lx=2.0, corr_length=corr)
    inc = np.linalg.norm(np.diff(z, axis=0), axis=1)
    seam = np.linalg.norm(z[0] - z[-1])
    assert seam <= 1.5 * inc.max() and seam >= 0.5 * inc.min()
    # an aperiodic path (x from 0 to lx inclusive shifted) would jump: compare with half a period
    assert np.linalg.norm(z[0] - z[nx // 2]) > 3 * seam


def test_shorter_correlation_length_decorrelates_faster():
    r = np.linspace(0, 1, 11)
    long_, short = latent_correlation(r, 64, 4.0, 1.0), latent_correlation(r, 64, 4.0, 0.2)
    assert long_[0] == pytest.approx(1.0) and short[0] == pytest.approx(1.0)
    assert short[5] < long_[5]
    # a Gaussian less its periodic mean (a mean-zero path has zero mean correlation over a period)
    gbar = np.sqrt(2 * np.pi) * 0.2 / 4.0
    np.testing.assert_allclose(short, (np.exp(-(r**2) / (2 * 0.2**2)) - gbar) / (1 - gbar), atol=1e-6)
    # empirical correlation of the path matches
    z = latent_path(64, 20000, np.random.default_rng(3), lx=4.0, corr_length=0.2)
    emp = np.mean(z[0] * z[4])
    assert emp == pytest.approx(latent_correlation(np.array([0.25]), 64, 4.0, 0.2)[0], abs=0.03)


def test_streamwise_correlation_of_a_wave():
    nx, lx = 32, 2.0
    x = np.arange(nx) * lx / nx
    f = np.zeros((3, nx, 3, 4))
    f[0] = np.cos(2 * np.pi * x / lx)[:, None, None] + 5.0
    r, corr = streamwise_correlation(f, lx)
    assert r.shape == (17,) and corr.shape == (3, 3, 17)
    np.testing.assert_allclose(corr[0, 1], np.cos(2 * np.pi * r / lx), atol=1e-12)
    assert np.all(corr[1] == 0)
    length = integral_length(r, corr[0, 1])
    assert length == pytest.approx(lx / (2 * np.pi), rel=0.05)


def test_dataset_streamwise_correlation(tmp_path):
    """Slices of a known 3-D field stored as a dataset give the field's own correlation."""
    from cfdseed.slices import DatasetWriter
    from cfdseed.errors import DatasetError

    nx, ny, nz, lx = 16, 5, 4, 3.0
    x = np.arange(nx) * lx / nx
    y = np.linspace(0, 2, ny)
    f = np.random.default_rng(0).standard_normal((3, nx, ny, nz)) * 0.1
    f[0] += np.cos(2 * np.pi * x / lx)[:, None, None] * np.sin(np.pi * y / 2)[None, :, None]
    attrs = dict(re_tau=180.0, nu=1 / 180, u_tau=1.0, ly=2.0, lz=1.0, source="test")
    order = np.random.default_rng(1).permutation(nx)  # stored out of order, at two times
    with DatasetWriter(tmp_path / "d.h5", y, np.arange(nz) / nz, attrs=attrs) as w:
        w.append(np.moveaxis(f, 1, 0)[order].astype(np.float32), t=np.zeros(nx), x=x[order])
        w.append(np.zeros((nx, 3, ny, nz), np.float32), t=np.ones(nx), x=x)
    r, corr = dataset_streamwise_correlation(tmp_path / "d.h5")
    r0, corr0 = streamwise_correlation(f.astype(np.float32), lx)
    np.testing.assert_allclose(r, r0)
    np.testing.assert_allclose(corr, corr0, atol=1e-6)
    with DatasetWriter(tmp_path / "nox.h5", y, np.arange(nz) / nz, attrs=attrs) as w:
        w.append(np.zeros((2, 3, ny, nz), np.float32))
    with pytest.raises(DatasetError, match="no /x"):
        dataset_streamwise_correlation(tmp_path / "nox.h5")
