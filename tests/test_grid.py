"""Grid description and block decomposition (no MPI)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _fakes import FakeComm
from cfdseed import DecompositionError, Grid, GridError
from cfdseed.grid import balanced_dims, block_split, check_tiling, grid_disagreement, wall_normal


@pytest.mark.parametrize("kind", ["uniform", "chebyshev", "tanh", "tanh:3.5"])
def test_wall_distributions_touch_walls_and_increase(kind):
    y = wall_normal(kind, 17, 2.0)
    assert y[0] == 0.0 and y[-1] == 2.0
    assert np.all(np.diff(y) > 0)
    np.testing.assert_allclose(y + y[::-1], 2.0, atol=1e-13)  # symmetric about the centre


def test_chebyshev_is_gauss_lobatto():
    y = wall_normal("chebyshev", 9, 2.0)
    np.testing.assert_allclose(y, 1 - np.cos(np.pi * np.arange(9) / 8), atol=1e-15)


def test_tanh_clusters_points_at_walls():
    y = wall_normal("tanh:2.5", 33, 2.0)
    d = np.diff(y)
    assert d[0] < d[16] / 3


@pytest.mark.parametrize("kind", ["uniform-cc", "chebyshev-cc", "tanh-cc:2"])
def test_cell_centred_has_no_wall_point(kind):
    g = Grid((4, 12, 4), (1, 2, 1), kind)
    assert g.cell_centred and not g.has_walls
    assert 0 < g.y[0] and g.y[-1] < 2


def test_uniform_cc_is_midpoints():
    np.testing.assert_allclose(wall_normal("uniform-cc", 4, 1.0), [0.125, 0.375, 0.625, 0.875])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(shape=(4, 1, 4)), "ny must be at least 2"),
        (dict(shape=(4, 0, 4)), "positive"),
        (dict(shape=(4, 4)), "three"),
        (dict(shape=(4, 4.5, 4)), "integers"),
        (dict(lengths=(1, -2, 1)), "positive"),
        (dict(lengths=(1, float("nan"), 1)), "positive"),
        (dict(y=[0, 1, 0.5, 2]), "strictly increasing"),
        (dict(y=[0, 1, 2]), "shape"),
        (dict(y=[0, 1, 1.5, 2.5]), "inside the walls"),
        (dict(y="cosine"), "must be one of"),
        (dict(y="tanh:abc"), "not a number"),
        (dict(shape=(4, 9, 4), y="tanh:40"), "repeated points in float64"),
        (dict(y=["a", "b", "c", "d"]), "array of numbers"),
    ],
)
def test_bad_grid_raises_clear_error(kwargs, match):
    args = dict(shape=(4, 4, 4), lengths=(1, 2, 1), y="uniform") | kwargs
    with pytest.raises(GridError, match=match):
        Grid(**args)


def test_bad_local_raises():
    with pytest.raises(DecompositionError, match="outside"):
        Grid((4, 4, 4), (1, 2, 1), local=(slice(0, 5), slice(None), slice(None)))
    with pytest.raises(DecompositionError, match="step"):
        Grid((4, 4, 4), (1, 2, 1), local=(slice(0, 4, 2), slice(None), slice(None)))
    for bad in (slice(0.5, 2), slice("a", 2), slice(0, True)):  # int() truncated 0.5 to 0
        with pytest.raises(DecompositionError, match="integer bounds"):
            Grid((4, 4, 4), (1, 2, 1), local=(bad, slice(None), slice(None)))
    Grid((4, 4, 4), (1, 2, 1), local=(slice(np.int64(1), np.int32(3)), slice(None), slice(None)))
    from cfdseed.grid import balanced_dims

    with pytest.raises(DecompositionError, match="dims must be 3 non-negative integers, got 'abc'"):
        balanced_dims(2, dims="abc")


def test_block_split_balanced():
    sizes = [block_split(10, 3, i) for i in range(3)]
    assert sizes == [slice(0, 4), slice(4, 7), slice(7, 10)]


@pytest.mark.parametrize("size, dims, expected", [
    (4, None, (2, 2, 1)), (8, None, (2, 2, 2)), (6, None, (3, 2, 1)), (4, (4, 1, 1), (4, 1, 1)),
    (6, (0, 1, 0), (3, 1, 2)), (12, (0, 1, 0), (4, 1, 3)), (7, None, (7, 1, 1)),
])
def test_balanced_dims_like_dims_create(size, dims, expected):
    assert balanced_dims(size, 3, dims) == expected


def test_balanced_dims_rejects_impossible():
    with pytest.raises(DecompositionError, match="Wrong number of processes"):
        balanced_dims(4, 3, (3, 1, 1))


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 9), st.integers(2, 9), st.integers(1, 9)),
    size=st.integers(1, 12),
    mode=st.sampled_from([None, (0, 1, 1), (0, 1, 0), (0, 0, 0)]),
)
def test_block_decomposition_tiles_exactly(shape, size, mode):
    grids = [Grid.block(FakeComm(r, size), shape, (1, 2, 1), dims=mode) for r in range(size)]
    check_tiling([[(s.start, s.stop) for s in g.local] for g in grids], shape)
    cover = np.zeros(shape, int)
    for g in grids:
        cover[g.local_slice()] += 1
    assert np.all(cover == 1)


def test_check_tiling_detects_gap_and_overlap():
    full = ((0, 4), (0, 4), (0, 4))
    with pytest.raises(DecompositionError, match="overlap"):
        check_tiling([full, ((0, 1), (0, 1), (0, 1))], (4, 4, 4))
    with pytest.raises(DecompositionError, match="gaps"):
        check_tiling([((0, 2), (0, 4), (0, 4))], (4, 4, 4))
    with pytest.raises(DecompositionError, match="outside"):
        check_tiling([((0, 5), (0, 4), (0, 4))], (4, 4, 4))


def test_gap_message_names_the_missing_index_ranges():
    with pytest.raises(DecompositionError, match=r"gaps; no rank holds x 4:5, y 0:9, z 0:4$"):
        check_tiling([((0, 4), (0, 9), (0, 4)), ((5, 6), (0, 9), (0, 4))], (6, 9, 4))
    with pytest.raises(DecompositionError, match=r"no rank holds x 0:2, y 0:2, z 2:4 and .* \(and 3 more boxes\)"):
        check_tiling([((0, 2), (0, 2), (0, 2))], (4, 4, 4))  # 7 of the 8 boxes cut by the block's faces


def test_grid_disagreement_names_the_attribute_and_the_ranks():
    base = Grid((4, 5, 4), (1, 2, 1), "chebyshev")
    assert grid_disagreement([base, base.with_local((slice(0, 1),) * 3)]) is None  # blocks may differ
    msg = grid_disagreement([base, Grid((4, 5, 4), (1, 2, 3), "chebyshev"), base, Grid((4, 5, 4), (1, 2, 3))])
    assert msg == ("ranks disagree on the grid (lengths): rank 0 has (1.0, 2.0, 1.0), rank 1 has (1.0, 2.0, 3.0); "
                   "rank 3 differs from rank 0 too")
    msg = grid_disagreement([base, base, Grid((4, 5, 4), (1, 2, 1), [0.0, 0.5, 1.0, 1.5, 2.0])])
    assert msg.startswith("ranks disagree on the grid (y): rank 0 has y[1] = 0.2928932188134524, rank 2 has "
                          "y[1] = 0.5 (y given as 'chebyshev' on rank 0, an array on rank 2)")
    assert "(shape)" in grid_disagreement([base, Grid((4, 6, 4), (1, 2, 1), "chebyshev")])


def test_collective_constructors_on_one_process():
    from mpi4py import MPI

    g = Grid.collective(MPI.COMM_SELF, (4, 5, 4), (1, 2, 1), "tanh:2")
    assert g == Grid((4, 5, 4), (1, 2, 1), "tanh:2")
    with pytest.raises(DecompositionError, match="outside"):
        Grid.collective(MPI.COMM_SELF, (4, 5, 4), (1, 2, 1), local=(slice(0, 5), slice(None), slice(None)))
    with pytest.raises(DecompositionError, match="no rank holds x 2:4, y 0:5, z 0:4"):
        Grid.collective(MPI.COMM_SELF, (4, 5, 4), (1, 2, 1), local=(slice(0, 2), slice(None), slice(None)))
    with pytest.raises(GridError, match="must be one of"):
        Grid.block(MPI.COMM_SELF, (4, 5, 4), (1, 2, 1), y="cosine")
