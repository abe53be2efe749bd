"""init_field on one process (MPI.COMM_SELF): delivery, seeds, dtypes, source failures that leave
``out`` untouched, constraint failures with the report. Multi-rank: tests/mpi/test_init_field.py."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from mpi4py import MPI

import cfdseed
from cfdseed import ConfigError, ConstraintError, Grid, SourceError, TransportError
from cfdseed.constraints import ConstraintReport, Tolerances
from cfdseed.coupling import check_field, init_field
from cfdseed.sources import resolve

SELF = MPI.COMM_SELF
GRID = Grid((8, 17, 6), (4.0, 2.0, 2.0), "tanh:2")


def test_public_api_points_here():
    assert cfdseed.init_field is init_field
    assert cfdseed.check_field is check_field


def test_default_is_the_seeded_analytic_field():
    got = init_field(SELF, GRID, seed=4)
    assert got.shape == (3, 8, 17, 6) and got.dtype == np.float64
    assert np.array_equal(got, resolve("analytic")(GRID, np.random.default_rng(4)))
    assert not np.array_equal(got, init_field(SELF, GRID, seed=5))


def test_out_dtype_axes_and_options():
    out = tuple(np.asfortranarray(np.zeros((8, 6, 17), np.float32)) for _ in range(3))
    got = init_field(SELF, GRID, out=out, axes="xzy", seed=1, options={"bulk": 2.0})
    assert got is out
    ref = resolve("analytic", {"bulk": 2.0})(GRID, np.random.default_rng(1)).astype(np.float32)
    assert all(np.array_equal(c.transpose(0, 2, 1), r) for c, r in zip(out, ref))
    assert check_field(SELF, GRID, out, axes="xzy").bulk_velocity == pytest.approx(2.0, rel=1e-6)
    assert init_field(SELF, GRID, dtype=np.float32).dtype == np.float32


def test_callable_source_gets_the_global_grid_and_the_seeded_rng():
    seen = {}

    def source(grid, rng):
        seen["grid"], seen["draw"] = grid, rng.random()
        return np.zeros((3, *grid.shape))

    local = GRID.with_local((slice(0, 8), slice(0, 17), slice(0, 6)))
    init_field(SELF, local, source=source, seed=9, check=False)
    assert seen["grid"] == GRID.global_grid() and seen["draw"] == np.random.default_rng(9).random()


def raises(grid, rng):
    raise RuntimeError("generator exploded")


BAD_SOURCES = [
    (raises, "raised RuntimeError: generator exploded"),
    (lambda g, r: np.full((3, *g.shape), np.nan), "non-finite"),
    (lambda g, r: np.where(np.arange(g.size * 3).reshape(3, *g.shape) == 5, np.inf, 1.0), "1 non-finite"),
    (lambda g, r: np.zeros((3, 8, 17, 5)), "shape"),
    (lambda g, r: np.zeros((8, 17, 6, 3)), "shape"),
    (lambda g, r: np.zeros((3, *g.shape), np.int32), "dtype"),
    (lambda g, r: np.zeros((3, *g.shape), np.complex128), "dtype"),
    (lambda g, r: [[0.0]], "numpy array"),
    ("no-such-source", "unknown source"),
    (42, "registered name or a callable"),
]


@pytest.mark.parametrize("source, match", BAD_SOURCES)
def test_bad_source_is_a_source_error_and_nothing_is_written(source, match):
    out = np.full((3, 8, 17, 6), 7.0)
    with pytest.raises(SourceError, match=match):
        init_field(SELF, GRID, source=source, out=out)
    assert (out == 7.0).all()


def test_bad_options_are_source_errors():
    with pytest.raises(SourceError, match="unknown option"):
        init_field(SELF, GRID, options={"amplitud": 0.1})


def test_out_is_validated_before_the_source_runs():
    calls = []

    def source(grid, rng):
        calls.append(1)
        return np.zeros((3, *grid.shape))

    with pytest.raises(TransportError, match="shape"):
        init_field(SELF, GRID, source=source, out=np.zeros((3, 8, 6, 17)))
    with pytest.raises(ConfigError, match="Tolerances"):
        init_field(SELF, GRID, source=source, tolerances={"divergence_max": 1})
    assert not calls


def test_constraint_violation_raises_with_the_report():
    def diverging(grid, rng):
        f = resolve("analytic")(grid, rng)
        f[0] += 0.1 * np.sin(2 * np.pi * grid.x / grid.lengths[0])[:, None, None] * (grid.y * (2 - grid.y))[None, :, None]
        return f

    out = np.zeros((3, 8, 17, 6))
    with pytest.raises(ConstraintError, match="divergence max") as info:
        init_field(SELF, GRID, source=diverging, out=out, seed=0)
    report = info.value.report
    assert isinstance(report, ConstraintReport) and not report.passed
    assert report.divergence_max > report.tolerances.divergence_max
    assert np.abs(out).max() > 0  # delivered: the checks run on the solver's blocks
    init_field(SELF, GRID, source=diverging, check=False)  # unchecked: no error
    loose = Tolerances(divergence_max=10.0, divergence_rms=10.0)
    init_field(SELF, GRID, source=diverging, tolerances=loose)


def test_logs_carry_rank_and_size(caplog):
    with caplog.at_level(logging.INFO, logger="cfdseed.coupling"):
        init_field(SELF, GRID)
    msgs = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("[0/1] source analytic built 8x17x6 float64") for m in msgs), msgs
    assert any("constraint checks" in m and "passed" in m for m in msgs), msgs


def test_result_hands_back_the_report_of_the_checks_it_ran():
    out = np.zeros((3, 8, 17, 6))
    res = init_field(SELF, GRID, source="plug", seed=2, out=out, result=True)
    assert res.field is out and res.report == check_field(SELF, GRID, out)
    assert res.report.passed and res.source_info.enforcement.after["wall_max"] < 1e-12
    bare = init_field(SELF, GRID, seed=2, check=False, result=True)
    assert bare.report is None and bare.source_info.enforcement is None and bare.field.shape == (3, 8, 17, 6)
