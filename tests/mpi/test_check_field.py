"""check_field on 1-4 ranks: the collective report equals the single-process report of the whole
field, on every rank, for several decompositions; bad input raises the same error on every rank."""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from cfdseed import DecompositionError, Grid, GridError
from cfdseed.constraints import check_field

from _tilings import KINDS, decompose

comm = MPI.COMM_WORLD
size, rank = comm.Get_size(), comm.Get_rank()
SHAPE, LENGTHS = (7, 9, 6), (2.0, 2.0, 1.0)


def global_field(shape, dtype=np.float64, seed=0):
    """The same field on every rank: Poiseuille + noise, one NaN (so every figure is non-trivial)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 2.0, shape[1])[None, :, None]
    f = 0.05 * rng.standard_normal((3, *shape))
    f[0] += y * (2.0 - y)
    f[1, shape[0] // 2, shape[1] // 2, 0] = np.nan
    return f.astype(dtype)


def same_report(a, b, rel=1e-12):
    da, db = a.to_dict(), b.to_dict()
    assert da.keys() == db.keys()
    for k, va in da.items():
        if isinstance(va, float) or k == "rms":
            assert va == pytest.approx(db[k], rel=rel), k
        else:
            assert va == db[k], k


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("spec", ["uniform", "tanh:2.0", "chebyshev-cc", "uniform-cc"])
@pytest.mark.parametrize("shape", [SHAPE, (2, 4, 3)])  # the small one leaves some blocks empty
def test_collective_report_equals_single_process(kind, spec, shape):
    grid = decompose(comm, kind, shape, LENGTHS, spec)
    dtype = np.float32 if spec.endswith("cc") else np.float64
    field = global_field(shape, dtype)
    # this rank's block as a Fortran-ordered (z, y, x) array: the solver's own layout
    local = np.asfortranarray(field[(slice(None), *grid.local)].transpose(0, 3, 2, 1))
    report = check_field(comm, grid, local, axes="zyx")
    same_report(report, check_field(MPI.COMM_SELF, grid.global_grid(), field))
    assert report.nonfinite == 1 and not report.passed


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("spec", ["chebyshev", "chebyshev-cc"])
def test_spectral_report_equals_single_process_and_tells_the_operator_sets_apart(kind, spec):
    """Spectral figures (gathered on rank 0) agree with one process; a field projected for the
    central operators fails the spectral divergence check and passes the central one."""
    from cfdseed.enforce import enforce

    shape = (8, 12, 6)
    grid = decompose(comm, kind, shape, LENGTHS, spec, operators="spectral")
    field = global_field(shape)
    field[1, shape[0] // 2, shape[1] // 2, 0] = 0.0  # no NaN: the enforced fields below need none
    central, _ = enforce(field, grid.global_grid().__class__(shape, LENGTHS, y=spec), bounds=False)
    spectral, _ = enforce(field, grid.global_grid(), bounds=False)
    for f in (field, central, spectral):
        local = np.asfortranarray(f[(slice(None), *grid.local)].transpose(0, 3, 2, 1))
        report = check_field(comm, grid, local, axes="zyx")
        same_report(report, check_field(MPI.COMM_SELF, grid.global_grid(), f), rel=1e-10)
        assert report.operators == "spectral"
    assert check_field(comm, grid, central[(slice(None), *grid.local)]).divergence_max > 1e-3
    assert check_field(comm, grid, spectral[(slice(None), *grid.local)]).divergence_max < 1e-10
    assert all(r == report for r in comm.allgather(report))  # bit-identical on every rank


def test_passing_field_passes_everywhere():
    grid = Grid.block(comm, (8, 9, 6), LENGTHS, y="chebyshev")
    y = grid.y[grid.local[1]][None, :, None]
    u = np.broadcast_to(y * (2.0 - y), grid.local_shape)  # Poiseuille, read-only broadcast view
    report = check_field(comm, grid, (u, 0 * u, 0 * u))
    assert report.passed, str(report)
    yy = grid.y
    prof = yy * (2.0 - yy)
    assert report.bulk_velocity == pytest.approx(np.sum(0.5 * (prof[1:] + prof[:-1]) * np.diff(yy)) / 2.0, rel=1e-12)


def test_bad_local_on_one_rank_raises_everywhere():
    grid = Grid.block(comm, SHAPE, LENGTHS)
    good = np.zeros((3, *grid.local_shape))
    bad = np.zeros((3, *grid.local_shape[:2], grid.local_shape[2] + 1))
    with pytest.raises(ValueError, match="shape"):
        check_field(comm, grid, bad if rank == size - 1 else good)
    with pytest.raises(ValueError, match="dtype"):
        check_field(comm, grid, good.astype(np.int32) if rank == 0 else good)


@pytest.mark.skipif(size == 1, reason="needs several ranks")
def test_inconsistent_ranks_raise_everywhere():
    grid = Grid.block(comm, SHAPE, LENGTHS)
    good = np.zeros((3, *grid.local_shape))
    with pytest.raises(ValueError, match="dtype"):
        check_field(comm, grid, good.astype(np.float32) if rank == 0 else good)
    other = Grid(SHAPE, (2.0, 2.0, 3.0) if rank == size - 1 else LENGTHS, local=grid.local)
    with pytest.raises(GridError, match="disagree on the grid"):
        check_field(comm, other, good)
    whole = grid.global_grid()  # every rank claims the whole domain: overlap
    with pytest.raises(DecompositionError, match="overlap"):
        check_field(comm, whole, np.zeros((3, *SHAPE)))
