"""The training pipeline over slice datasets: stats, augmentation, split, sampler, torch dataset."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from cfdseed import DatasetError
from cfdseed.data import (
    EpochBatchSampler,
    NormStats,
    SliceDataset,
    augment,
    compute_stats,
    split_indices,
)
from cfdseed.grid import wall_normal
from cfdseed.slices import open_dataset
from cfdseed.stats import y_is_symmetric

from test_slices import make_dataset


def test_stats_streaming_matches_in_memory(tmp_path):
    p = tmp_path / "d.h5"
    f, y, z = make_dataset(p, n=23)
    with open_dataset(p) as ds:
        st = compute_stats(ds, chunk=4)
        sub = compute_stats(ds, np.array([1, 4, 9]), chunk=2)
    np.testing.assert_allclose(st.mean, f.astype(np.float64).mean(axis=(0, 3)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(st.std, f.astype(np.float64).std(axis=(0, 3)), rtol=1e-8)
    np.testing.assert_allclose(sub.mean, f[[1, 4, 9]].astype(np.float64).mean(axis=(0, 3)), rtol=1e-10)
    x = f[:3]
    np.testing.assert_allclose(st.denormalise(st.normalise(x)), x, rtol=1e-5, atol=1e-5)
    rt = NormStats.from_dict(st.to_dict())
    np.testing.assert_array_equal(rt.mean, st.mean)
    np.testing.assert_array_equal(rt.std, st.std)


def test_zero_variance_row_floor():
    mean = np.ones((3, 4))
    std = np.array([[0.0, 1.0, 2.0, 0.0]] * 3)
    st = NormStats(mean, std).symmetrised()
    assert np.all(st.std > 0)
    x = np.ones((3, 4, 5), np.float32)
    np.testing.assert_allclose(st.denormalise(st.normalise(x)), x, atol=1e-6)


def _row_stats(x):
    # per channel/row mean, variance and spanwise energy spectrum (independent of shift/reflection)
    spec = np.abs(np.fft.rfft(x, axis=-1)) ** 2
    return x.mean(-1), x.var(-1), spec


@pytest.mark.parametrize("opts", [dict(roll=True, spanwise=False), dict(roll=False, spanwise=True),
                                  dict(roll=False, spanwise=False, wall=True), dict(wall=True)])
def test_augmentations_preserve_statistics(opts):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 9, 8)).astype(np.float32)
    m0, v0, s0 = _row_stats(x)
    changed = False
    for seed in range(8):
        a = augment(x, np.random.default_rng(seed), **opts)
        m, v, s = _row_stats(a)
        changed |= not np.array_equal(a, x)
        if opts.get("wall"):  # rows mirrored: compare against mirrored rows when flipped
            if not np.allclose(v, v0, atol=1e-5):
                m, v, s = m[:, ::-1], v[:, ::-1], s[:, ::-1]
                m[1] *= -1
        np.testing.assert_allclose(v, v0, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(s, s0, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.abs(m), np.abs(m0), atol=1e-5)
        np.testing.assert_allclose(m[0], m0[0], atol=1e-5)
    assert changed


def test_spanwise_reflection_is_z_to_minus_z():
    nz = 8
    x = np.zeros((3, 3, nz), np.float32)
    x[:, :, 1] = 1.0  # a spike at z_1
    seeds = [s for s in range(20) if np.random.default_rng(s).integers(2, size=2)[1]]  # flip drawn
    a = augment(x, np.random.default_rng(seeds[0]), roll=False, spanwise=True)
    assert a[0, 0, nz - 1] == 1.0 and a[2, 0, nz - 1] == -1.0  # z_1 -> z_{-1}, w -> -w


def test_symmetrised_stats_match_augmented_distribution():
    rng = np.random.default_rng(0)
    y = wall_normal("chebyshev", 7, 2.0)
    assert y_is_symmetric(y, 2.0) and not y_is_symmetric(y**1.1, 2.0 ** 1.1)
    x = rng.standard_normal((400, 3, 7, 4)) + np.linspace(0, 1, 7)[None, None, :, None]
    flips = np.concatenate([x, x[:, :, ::-1] * np.array([1, -1, 1])[None, :, None, None]])
    flips = np.concatenate([flips, flips * np.array([1, 1, -1])[None, :, None, None]])
    base = NormStats(x.mean(axis=(0, 3)), x.std(axis=(0, 3)))
    sym = base.symmetrised(spanwise=True, wall=True)
    np.testing.assert_allclose(sym.mean, flips.mean(axis=(0, 3)), atol=1e-12)
    np.testing.assert_allclose(sym.std, flips.std(axis=(0, 3)), rtol=1e-10)


def test_split_reproducible_and_block_contiguous():
    tr, va = split_indices(100, val_fraction=0.2, seed=1, blocks=10)
    tr2, va2 = split_indices(100, val_fraction=0.2, seed=1, blocks=10)
    np.testing.assert_array_equal(va, va2)
    assert len(va) == 20 and set(tr).isdisjoint(va) and len(tr) + len(va) == 100
    assert np.sum(np.diff(va) != 1) <= 1  # two contiguous blocks of time
    t = np.arange(100)[::-1].astype(float)  # time order reversed relative to file order
    _, vt = split_indices(100, val_fraction=0.1, seed=0, blocks=10, t=t)
    assert np.all(np.diff(vt) == 1)
    _, vr = split_indices(100, val_fraction=0.1, seed=0, mode="random")
    assert len(vr) == 10
    with pytest.raises(DatasetError, match="blocks, random"):
        split_indices(10, val_fraction=0.1, seed=0, mode="time")


def test_sampler_shards_union_and_resume():
    idx = np.arange(3, 40)
    one = EpochBatchSampler(idx, 8, seed=5)
    two = [EpochBatchSampler(idx, 8, seed=5, rank=r, world=2) for r in range(2)]
    for step in range(10):  # crosses epochs (4 batches per epoch)
        assert one.batch(step) == two[0].batch(step) + two[1].batch(step)
    it = iter(EpochBatchSampler(idx, 8, seed=5, start=6))
    assert next(it) == one.batch(6)
    epoch0 = [k for s in range(4) for k, _ in one.batch(s)]
    assert len(set(epoch0)) == 32 and set(epoch0) <= set(idx)
    with pytest.raises(DatasetError, match="fewer than one batch"):
        EpochBatchSampler(np.arange(5), 8, 0)
    with pytest.raises(DatasetError, match="divisible"):
        EpochBatchSampler(idx, 9, 0, world=2)


def test_slice_dataset_normalised_and_deterministic(tmp_path):
    import pickle

    p = tmp_path / "d.h5"
    f, y, z = make_dataset(p)
    with open_dataset(p) as ds:
        st = compute_stats(ds)
    sd = SliceDataset(p, st, roll=True, spanwise=True)
    a, b = sd[(4, 123)], pickle.loads(pickle.dumps(sd))[(4, 123)]
    assert a.shape == (3, 9, 8) and str(a.dtype) == "torch.float32"
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(sd[4].numpy(), st.normalise(f[4]), rtol=1e-5, atol=1e-5)
    keys = [(4, 123), 2, (4, 7), (0, 5)]
    for got, key in zip(sd.__getitems__(keys), keys):  # batched path == one-by-one path
        np.testing.assert_array_equal(got.numpy(), sd[key].numpy())
    with pytest.raises(DatasetError, match="symmetric"):
        make_dataset(tmp_path / "s.h5")
        with h5py.File(tmp_path / "s.h5", "r+") as h:
            yy = h["y"][...]
            h["y"][...] = yy**1.2 * (2.0 / yy[-1] ** 1.2)
        SliceDataset(tmp_path / "s.h5", st, wall=True)


def test_split_last_blocks_and_gap():
    t = np.arange(100, dtype=float)[::-1]  # file order reversed relative to time
    tr, va = split_indices(100, val_fraction=0.2, seed=0, mode="last", blocks=10, t=t)
    assert sorted(t[va]) == list(range(80, 100))  # the last times validate
    tr, va = split_indices(100, val_fraction=0.2, seed=0, mode="last", blocks=10, t=t, gap=15.0)
    assert t[tr].max() == 65.0 and len(tr) == 66
    tr, va = split_indices(100, val_fraction=0.2, seed=1, mode="blocks", blocks=10, t=t, gap=3.0)
    assert np.min(np.abs(t[tr][:, None] - t[va][None, :])) >= 3.0
    with pytest.raises(DatasetError, match="gap"):
        split_indices(10, val_fraction=0.2, seed=0, gap=-1.0)
