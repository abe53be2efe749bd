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


@pytest.fixture(scope="module")
def planes(tmp_path_factory):
    """Consecutive planes (test_pairs.write_planes) plus noise that grows from the lower wall to the
    upper one: statistics that differ between the two halves."""
    from test_pairs import ATTRS, write_planes

    from cfdseed.grid import wall_normal
    from cfdseed.slices import DatasetWriter

    d = tmp_path_factory.mktemp("d")
    boxes = write_planes(d / "smooth.h5", times=6, nx=8)  # (times, nx, 3, ny, nz)
    y = wall_normal("chebyshev", boxes.shape[3], 2.0)
    noise = np.random.default_rng(1).standard_normal(boxes.shape) * (0.02 + 0.3 * (y / 2.0) ** 2)[:, None]
    x = np.arange(8) * np.pi / 8
    p = d / "planes.h5"
    with DatasetWriter(p, y, np.arange(boxes.shape[4]) * ATTRS["lz"] / boxes.shape[4], attrs=dict(ATTRS, lx=np.pi)) as w:
        for k, box in enumerate(boxes + noise):
            w.append(box.astype(np.float32), t=np.full(8, float(k)), x=x)
    return p


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
