"""cfdseed.solvers.runner post-processing that needs no solver: steady-state detection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cfdseed.solvers.runner import steady_start


def _series(t, bulk, tau):
    return dict(t=t, bulk=bulk, tau_lower=tau, tau_upper=tau)


def test_steady_start_after_relaxation():
    t = np.linspace(0.0, 30.0, 3001)
    rng = np.random.default_rng(0)
    tau = 1 + 0.5 * np.exp(-t / 2) + 0.02 * rng.standard_normal(t.size)
    bulk = 15.7 * (1 + 0.2 * np.exp(-t / 2)) + 0.05 * rng.standard_normal(t.size)
    ts = steady_start(_series(t, bulk, tau))
    # bulk excess 0.2 exp(-t/2) < 1 % from t = 6; tau excess 0.5 exp(-t/2) < 5 % from t = 4.6
    assert 4.0 <= ts <= 7.5


def test_steady_start_none_while_drifting():
    t = np.linspace(0.0, 10.0, 1001)
    assert math.isinf(steady_start(_series(t, 15 + 0.5 * t, np.ones_like(t))))
    assert math.isinf(steady_start(_series(t, np.full_like(t, 15.0), np.full_like(t, 1.3))))


def test_steady_start_too_short():
    assert math.isinf(steady_start(_series(np.array([0.0]), np.array([1.0]), np.array([1.0]))))


@pytest.mark.parametrize("window", [1.0, 4.0])
def test_steady_start_on_window_grid(window):
    t = np.linspace(0.0, 20.0, 2001)
    ts = steady_start(_series(t, np.full_like(t, 15.0), np.ones_like(t)), window=window)
    assert ts == 0.0
