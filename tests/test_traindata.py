"""The training data as the loop sees it (cfdseed.traindata): the losses' data targets (the loop
itself: test_train.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cfdseed.config import Config, apply_overrides
from cfdseed.traindata import (innovation_target, lag_target, memory_init, mirrored, norm_stats, open_data,
                               spectrum_target)

torch.set_num_threads(1)


def write_noisy_planes(d):
    """``d/planes.h5``: consecutive planes (test_pairs.write_planes) plus noise that grows from the
    lower wall to the upper one: statistics, and the one-step correlation, that differ between the
    two halves and from row to row."""
    from test_pairs import ATTRS, write_planes

    from cfdseed.grid import wall_normal
    from cfdseed.slices import DatasetWriter

    boxes = write_planes(d / "smooth.h5", times=6, nx=8)  # (times, nx, 3, ny, nz)
    y = wall_normal("chebyshev", boxes.shape[3], 2.0)
    noise = np.random.default_rng(1).standard_normal(boxes.shape) * (0.02 + 0.3 * (y / 2.0) ** 2)[:, None]
    x = np.arange(8) * np.pi / 8
    p = d / "planes.h5"
    with DatasetWriter(p, y, np.arange(boxes.shape[4]) * ATTRS["lz"] / boxes.shape[4], attrs=dict(ATTRS, lx=np.pi)) as w:
        for k, box in enumerate(boxes + noise):
            w.append(box.astype(np.float32), t=np.full(8, float(k)), x=x)
    return p


@pytest.fixture(scope="module")
def planes(tmp_path_factory):
    """:func:`write_noisy_planes`."""
    return write_noisy_planes(tmp_path_factory.mktemp("d"))


def _targets(planes, wall):
    cfg = apply_overrides(Config(), [f"data.path={planes}", "model.kind=conditional", "train.batch_size=8",
                                     f"data.augment_wall={str(wall).lower()}"])
    split = open_data(cfg, None)
    stats = norm_stats(cfg, split.planes(split.train))
    return {"memory": (memory_init(cfg, split, split.train, stats), 1),
            "spectrum": (spectrum_target(cfg, split.planes(split.train), stats), 1),
            "innovation": (innovation_target(cfg, split, split.train, stats), 1),
            "lag": (lag_target(cfg, split, split.train, stats, 2), 2)}


def test_targets_are_mirrored_about_the_centre_under_the_wall_flip(planes):
    """With data.augment_wall the generator sees every plane also upside down (v negated): each
    target is its data's value averaged with its mirror; without the flip, the data's own."""
    flipped, plain = _targets(planes, True), _targets(planes, False)
    for name, (t, axis) in flipped.items():
        own, _ = plain[name]
        assert torch.allclose(t, t.flip(axis), atol=1e-6), name
        assert not torch.allclose(own, own.flip(axis), atol=1e-3), name  # the data alone are not symmetric
    cfg = apply_overrides(Config(), ["data.augment_wall=true"])
    x = torch.arange(6.0).reshape(1, 6, 1)
    assert torch.equal(mirrored(cfg, x, 1), torch.full((1, 6, 1), 2.5))


@pytest.mark.parametrize("wall", [False, True])
def test_memory_init_is_the_training_pairs_step_correlation(planes, wall, monkeypatch):
    """memory_init: per component and row, the one-step correlation (losses.step_correlation) of the
    training pairs' normalised planes, clamped to [0, 1], mirrored about the centre under the wall
    flip; MEMORY_PAIRS evenly spread training pairs when there are more."""
    from cfdseed import traindata
    from cfdseed.losses import step_correlation
    from cfdseed.slices import open_dataset

    cfg = apply_overrides(Config(), [f"data.path={planes}", "model.kind=conditional", "train.batch_size=8",
                                     f"data.augment_wall={str(wall).lower()}"])
    split = open_data(cfg, None)
    stats = norm_stats(cfg, split.planes(split.train))
    with open_dataset(planes) as ds:
        x = ds.read(np.arange(ds.n))

    def expected(pair_idx):
        pairs = split.pairs.pairs[pair_idx]
        prev, nxt = (torch.from_numpy(stats.normalise(x[pairs[:, k]])).double() for k in (0, 1))
        r = step_correlation(prev, nxt).clamp(0.0, 1.0)
        return 0.5 * (r + r.flip(1)) if wall else r

    assert split.train.size == 40 and split.val.size == 8 and split.train.size < traindata.MEMORY_PAIRS
    want = expected(split.train)
    got = memory_init(cfg, split, split.train, stats)
    assert got.shape == (3, 9, 1) and got.dtype == torch.float32
    # the fixture's correlation varies along y (noise grows towards the upper wall): a constant cannot pass
    assert (want.amax(dim=1) - want.amin(dim=1) > 0.25).all()
    torch.testing.assert_close(got[..., 0].double(), want, atol=1e-6, rtol=0)
    # the training split only: all 48 pairs give other factors
    assert (expected(np.arange(len(split.pairs.pairs))) - want).abs().max() > 0.01
    # more training pairs than MEMORY_PAIRS: that many, evenly spread (positions 0, 9.75, 19.5, 29.25, 39 -> floor)
    monkeypatch.setattr(traindata, "MEMORY_PAIRS", 5)
    sub = split.train[[0, 9, 19, 29, 39]]
    torch.testing.assert_close(memory_init(cfg, split, split.train, stats)[..., 0].double(), expected(sub),
                               atol=1e-6, rtol=0)
    assert (expected(sub) - want).abs().max() > 0.01
