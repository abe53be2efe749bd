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
