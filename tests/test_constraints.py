"""check_field on one process: analytic fields with known answers, reports, bad input.

The kernels of cfdseed._core are tested against their numpy oracles in test_operators.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from mpi4py import MPI

from cfdseed import ConfigError, Grid
from cfdseed.constraints import ConstraintReport, Tolerances, bulk_weights, check_field
from cfdseed.transport import block_views
from test_operators import GRIDS

SELF = MPI.COMM_SELF


# -- check_field on one process: analytic fields with known answers --------------------------
def _mesh(grid):
    return np.meshgrid(grid.x, grid.y, grid.z, indexing="ij")  # each (nx, ny, nz)


def _channel_field(grid, amp=0.2):
    """Poiseuille + a mode that is divergence-free for the discrete operators of contract 1.

    v = 0, u = D_z psi, w = -D_x psi with the periodic central differences, so
    D_x u + D_z w = D_x D_z psi - D_z D_x psi = 0 to round-off; psi vanishes at the walls.
    """
    X, Y, Z = _mesh(grid)
    lx, ly, lz = grid.lengths
    psi = amp * np.sin(2 * np.pi * X / lx) * np.cos(4 * np.pi * Z / lz) * (Y * (ly - Y)) ** 2
    dx, dz = lx / grid.shape[0], lz / grid.shape[2]
    u = Y * (ly - Y) + (np.roll(psi, -1, 2) - np.roll(psi, 1, 2)) / (2 * dz)
    w = -(np.roll(psi, -1, 0) - np.roll(psi, 1, 0)) / (2 * dx)
    return np.stack([u, np.zeros_like(u), w])  # (3, nx, ny, nz)


@pytest.mark.parametrize("spec", GRIDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_divergence_free_channel_passes(spec, dtype):
    grid = Grid((24, 33, 16), (4.0, 2.0, 2.0), y=spec)
    report = check_field(SELF, grid, _channel_field(grid).astype(dtype))
    assert report.passed, str(report)
    assert report.divergence_max < (1e-12 if dtype == np.float64 else 1e-5) and report.seam_x < 1.5 and report.seam_z < 1.5
    assert report.nonfinite == 0 and report.wall_extrapolated == grid.cell_centred
    if not grid.cell_centred:
        assert report.no_slip == 0.0


@pytest.mark.parametrize("spec", GRIDS)
def test_bulk_velocity_is_trapezoid_with_wall_values(spec):
    grid = Grid((4, 9, 3), (1.0, 2.0, 1.0), y=spec)
    X, Y, Z = _mesh(grid)
    u = Y * (2.0 - Y) * (1 + 0.1 * np.sin(2 * np.pi * Z))
    report = check_field(SELF, grid, (u, 0 * u, 0 * u))
    yy = np.concatenate([[0.0], grid.y, [2.0]]) if grid.cell_centred else grid.y
    prof = u.mean(axis=(0, 2))
    prof = np.concatenate([[0.0], prof, [0.0]]) if grid.cell_centred else prof
    want = float(np.sum(0.5 * (prof[1:] + prof[:-1]) * np.diff(yy))) / 2.0
    assert report.bulk_velocity == pytest.approx(want, rel=1e-13)
    assert report.u_ref == abs(report.bulk_velocity)
    lost = 0.0 if grid.has_walls else 0.5 * (grid.y[0] + 2.0 - grid.y[-1])  # wall halves of end segments
    assert bulk_weights(grid).sum() * 4 * 3 * 2.0 == pytest.approx(2.0 - lost, rel=1e-13)


@pytest.mark.parametrize("spec", GRIDS)
def test_divergence_known_answer(spec):
    """v = y (ly - y) is quadratic and zero at the walls: the 3-point formula is exact, div = ly - 2y."""
    grid = Grid((5, 12, 4), (1.0, 2.0, 1.0), y=spec)
    X, Y, Z = _mesh(grid)
    v = Y * (2.0 - Y)
    report = check_field(SELF, grid, (0 * v, v, 0 * v))
    inner = grid.y[1:-1] if grid.has_walls else grid.y
    u_ref = float(v.max())  # bulk of u is 0: U_ref falls back to max |u_i|
    assert report.u_ref == u_ref
    assert report.divergence_max == pytest.approx(np.abs(2.0 - 2 * inner).max() / u_ref, rel=1e-10)
    rms = math.sqrt(np.mean((2.0 - 2 * inner) ** 2))
    assert report.divergence_rms == pytest.approx(rms / u_ref, rel=1e-10)
    assert not report.passed


def test_divergence_of_sine_in_x():
    """u = sin(2 pi x / lx): the central difference gives cos(kx) sin(k dx) / dx exactly."""
    grid = Grid((16, 6, 4), (2.0, 2.0, 1.0))
    X, _, _ = _mesh(grid)
    k, dx = np.pi, 2.0 / 16
    u = np.sin(k * X)
    report = check_field(SELF, grid, (u, 0 * u, 0 * u))
    assert report.divergence_max == pytest.approx(math.sin(k * dx) / dx / report.u_ref, rel=1e-12)
    assert report.seam_x == pytest.approx(1.0)  # periodic: the seam increment is a typical one


@pytest.mark.parametrize("spec", ["uniform", "tanh-cc:2"])
def test_non_periodic_field_is_flagged_at_the_seam(spec):
    grid = Grid((16, 9, 12), (4.0, 2.0, 2.0), y=spec)
    field = _channel_field(grid, amp=0.0)
    X, _, Z = _mesh(grid)
    field[0] *= 1 + 0.1 * X / 4.0  # ramp in x: seam jump = (nx - 1) interior increments
    report = check_field(SELF, grid, field)
    assert report.seam_x == pytest.approx(15.0, rel=1e-9)
    assert report.seam_z == 0.0
    assert not report.passed and any(f.startswith("seam x") for f in report.failures)
    field[2] += 0.05 * Z  # non-periodic w in z as well
    assert check_field(SELF, grid, field).seam_z == pytest.approx(11.0, rel=1e-9)


@pytest.mark.parametrize("spec", GRIDS)
def test_wall_slip_fails_no_slip(spec):
    grid = Grid((8, 17, 6), (2.0, 2.0, 1.0), y=spec)
    field = _channel_field(grid, amp=0.0)
    field[0] += 0.1  # slip velocity 0.1 on both walls
    report = check_field(SELF, grid, field)
    assert not report.passed and any(f.startswith("no-slip") for f in report.failures)
    if not grid.cell_centred:
        assert report.no_slip == pytest.approx(0.1 / report.u_ref, rel=1e-12)


def test_cell_centred_wall_value_is_linear_extrapolation():
    grid = Grid((3, 6, 2), (1.0, 2.0, 1.0), y="tanh-cc:2")
    y = grid.y
    u = np.broadcast_to((3.0 + 5.0 * grid.y)[None, :, None], grid.shape).copy()  # linear: walls 3, 13
    report = check_field(SELF, grid, (u, 0 * u, 0 * u))
    assert report.no_slip * report.u_ref == pytest.approx(13.0, rel=1e-12)
    assert report.max_abs == pytest.approx(3.0 + 5.0 * y[-1])


def test_nonfinite_values_are_counted_and_skipped():
    grid = Grid((8, 9, 6), (2.0, 2.0, 1.0))
    field = _channel_field(grid)
    clean = check_field(SELF, grid, field)
    field[1, 3, 4, 2] = np.nan
    field[2, 0, 0, 0] = -np.inf
    report = check_field(SELF, grid, field)
    assert report.nonfinite == 2 and not report.passed
    assert report.failures == ["non-finite values = 2 exceeds 0"]
    assert report.max_abs == clean.max_abs and math.isfinite(report.divergence_max)
    assert check_field(SELF, grid, field, tolerances=Tolerances(nonfinite=2)).passed
    with pytest.raises(ConfigError, match="nonfinite is a count"):
        Tolerances(nonfinite=0.5)


def assert_same_report(a: ConstraintReport, b: ConstraintReport, rel: float = 1e-12) -> None:
    """Figures equal up to the round-off of sums taken in another order."""
    da, db = a.to_dict(), b.to_dict()
    assert da.keys() == db.keys()
    for k, va in da.items():
        if isinstance(va, float):
            assert va == pytest.approx(db[k], rel=rel, abs=1e-300), k
        elif k == "rms":
            assert va == pytest.approx(db[k], rel=rel), k
        else:
            assert va == db[k], k


def test_axes_and_memory_order_do_not_change_the_report():
    grid = Grid((6, 7, 5), (2.0, 2.0, 1.0), y="chebyshev")
    field = _channel_field(grid) + 0.01 * np.random.default_rng(1).standard_normal((3, 6, 7, 5))
    ref = check_field(SELF, grid, field)
    zyx = np.asfortranarray(field.transpose(0, 3, 2, 1))  # (3, nz, ny, nx), Fortran order
    assert_same_report(check_field(SELF, grid, zyx, axes="zyx"), ref)
    tup = tuple(np.ascontiguousarray(c.transpose(0, 2, 1)) for c in field)
    assert_same_report(check_field(SELF, grid, tup, axes="xzy"), ref)


def test_report_str_dict_and_tolerances():
    grid = Grid((8, 9, 6), (2.0, 2.0, 1.0))
    report = check_field(SELF, grid, _channel_field(grid).astype(np.float32))
    text = str(report)
    assert "PASSED" in text and "divergence max" in text and "8x9x6 float32" in text
    d = report.to_dict()
    assert d["passed"] is True and d["failures"] == [] and d["shape"] == [8, 9, 6]
    assert d["tolerances"]["no_slip"] == pytest.approx(100 * np.finfo(np.float32).eps)
    assert isinstance(report, ConstraintReport) and report.tolerances.divergence_max == 1e-3
    strict = check_field(SELF, grid, _channel_field(grid), tolerances=Tolerances(velocity_ratio=1.0))
    assert not strict.passed and "FAIL" in str(strict) and "max |u_i| / U_ref" in strict.failures[0]
    with pytest.raises(ConfigError, match="seam"):
        Tolerances(seam=-1.0)
    with pytest.raises(ConfigError, match="divergence_max"):
        Tolerances(divergence_max=float("nan"))


def test_check_field_rejects_bad_input():
    grid = Grid((4, 5, 3), (1.0, 2.0, 1.0))
    good = np.zeros((3, 4, 5, 3))
    with pytest.raises(ValueError, match="shape"):
        check_field(SELF, grid, np.zeros((3, 4, 5, 4)))
    with pytest.raises(ValueError, match="dtype int64"):
        check_field(SELF, grid, good.astype(np.int64))
    with pytest.raises(ValueError, match="share one dtype"):
        check_field(SELF, grid, (good[0], good[1].astype(np.float32), good[2]))
    with pytest.raises(ValueError, match="permutation"):
        check_field(SELF, grid, good, axes="xyy")
    with pytest.raises(ValueError, match=r"\(3, \.\.\.\)"):
        check_field(SELF, grid, good[:2])
    with pytest.raises(ValueError, match="tuple"):
        check_field(SELF, grid, [good[0], good[1]])
    with pytest.raises(ConfigError, match="Tolerances"):
        check_field(SELF, grid, good, tolerances={"seam": 1.0})


def test_block_views_of_a_checked_block_are_views():
    field = np.zeros((3, 4, 5, 6), order="F")
    (u, v, w), _ = block_views(field, "xzy", (4, 6, 5))
    assert u.shape == (4, 6, 5) and np.shares_memory(u, field)


def test_grid_with_one_wall_point():
    """A point on the lower wall only: plane value below, extrapolation and a virtual point above."""
    y = np.array([0.0, 0.5, 1.0, 1.5, 1.8])
    grid = Grid((3, 5, 2), (1.0, 2.0, 1.0), y=y)
    lin = np.broadcast_to((3.0 + 5.0 * y)[None, :, None], grid.shape)
    quad = np.broadcast_to((y * (2.0 - y))[None, :, None], grid.shape)
    report = check_field(SELF, grid, (lin, quad, 0 * lin))
    assert report.wall_extrapolated
    assert report.no_slip * report.u_ref == pytest.approx(13.0, rel=1e-12)  # 3 at y=0, 13 extrapolated to y=2
    assert report.divergence_max * report.u_ref == pytest.approx(np.abs(2.0 - 2 * y[1:]).max(), rel=1e-12)
    w = bulk_weights(grid) * 3 * 2 * 2.0  # trapezoid weights on (y, 2) with the virtual top point dropped
    np.testing.assert_allclose(w, [0.25, 0.5, 0.5, 0.4, 0.25], rtol=1e-14)
