"""benchmarks/v2_drift.py's plane-to-plane correlations, on synthetic slice files."""

from __future__ import annotations

import h5py
import numpy as np
from _bench import load


def _file(path, fields, nx):
    n = fields.shape[0] // nx
    with h5py.File(path, "w") as f:
        f["fields"] = fields.astype(np.float32)
        f["t"] = np.repeat(np.arange(n, dtype=float), nx)
        f["x"] = np.tile(np.arange(nx) * np.pi / nx, n)
        f["y"] = np.linspace(0, 2, fields.shape[2])
    return str(path)


def test_data_lag_correlations_of_known_processes(tmp_path):
    vd = load("v2_drift")
    rng = np.random.default_rng(0)
    nx, snaps = 8, 20
    frozen = np.repeat(rng.standard_normal((snaps, 1, 3, 5, 6)), nx, axis=1).reshape(-1, 3, 5, 6)
    noise = rng.standard_normal((snaps * nx, 3, 5, 6))
    # a structure shared by a snapshot's planes plus as much independent noise per plane: 0.5 at every lag
    half = (np.repeat(rng.standard_normal((snaps, 1, 3, 5, 6)), nx, axis=1).reshape(-1, 3, 5, 6)
            + rng.standard_normal((snaps * nx, 3, 5, 6)))
    c_frozen = vd.data_lag_correlations(_file(tmp_path / "a.h5", frozen, nx), [1, 4])
    c_noise = vd.data_lag_correlations(_file(tmp_path / "b.h5", noise, nx), [1, 4])
    c_half = vd.data_lag_correlations(_file(tmp_path / "c.h5", half, nx), [1, 3])
    assert np.allclose(c_frozen["1"], 1.0) and np.allclose(c_frozen["4"], 1.0)
    assert np.all(np.abs(c_noise["1"]) < 0.3) and len(c_noise["4"]) == 3
    assert np.allclose(c_half["1"], 0.5, atol=0.1) and np.allclose(c_half["3"], 0.5, atol=0.1)


def test_uv_profile_reads_both_walls_with_the_upper_sign_turned():
    """-uv has one sign per wall: a field with corr(u, v) = -0.6 on the lower half and +0.6 on the
    upper half reads -0.6 at every reported wall distance; the rows nearest each y+ are used."""
    vd = load("v2_drift")
    rng = np.random.default_rng(1)
    ny, n = 33, 400
    y = -np.cos(np.pi * np.arange(ny) / (ny - 1))  # Chebyshev rows, walls at -1, 1
    u, e = rng.standard_normal((n, ny, 8)), rng.standard_normal((n, ny, 8))
    sign = np.where(y < 0, -1.0, 1.0)[None, :, None]
    planes = np.stack([u, sign * 0.6 * u + 0.8 * e, rng.standard_normal((n, ny, 8))], axis=1)
    prof = vd.uv_profile(planes, y, re_tau=180.0)
    assert len(prof) == len(vd.UV_YPLUS) and np.allclose(prof[:4], -0.6, atol=0.05)
    lopsided = planes.copy()
    lopsided[:, 1, y > 0] = e[:, y > 0]  # the upper wall loses its correlation: the average halves
    assert np.allclose(vd.uv_profile(lopsided, y, re_tau=180.0)[:4], -0.3, atol=0.05)
