"""Consecutive-plane pairs (cfdseed.pairs): pairing, the periodic wrap, refusals, time split, augmentation."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from cfdseed import DatasetError
from cfdseed.data import augment, compute_stats
from cfdseed.grid import wall_normal
from cfdseed.pairs import PairDataset, dataset_pairs, plane_pairs, split_pairs
from cfdseed.slices import DatasetWriter, open_dataset

ATTRS = dict(re_tau=180.0, nu=1.0 / 180.0, u_tau=1.0, ly=2.0, lz=np.pi / 2, source="synthetic")


def write_planes(path, *, times=6, nx=8, ny=9, nz=8, lx=np.pi, seed=0, dt=1.0, shuffle=True, lx_attr=True,
                 drop=None, skew=0.0):
    """Every x-plane of a random smooth box (periodic in x and z, channel-like mean) at ``times`` times.

    Planes are stored out of order (``shuffle``); ``lx_attr`` stores the period as attribute ``lx``;
    ``drop`` removes that plane index from every time; ``skew``: the fluctuations scaled by
    ``1 + skew (y - 1)`` (0: symmetric about the centre). Returns the boxes ``(times, nx, 3, ny, nz)``.
    """
    rng = np.random.default_rng(seed)
    y = wall_normal("chebyshev", ny, 2.0)
    prof = (1.0 - (y - 1.0) ** 2)[None, None, :, None]  # (1, 1, ny, 1)
    x = np.arange(nx) * lx / nx
    z = np.arange(nz) * ATTRS["lz"] / nz
    boxes = np.empty((times, nx, 3, ny, nz))
    for k in range(times):
        f = np.zeros((nx, 3, ny, nz))
        for m in (1, 2):
            for q in (0, 1, 2):
                amp, ph = rng.standard_normal((3, 1, 1)), rng.uniform(0, 2 * np.pi, (3, 1, 1))
                f += amp * np.cos(2 * np.pi * (m * x[:, None, None, None] / lx + q * z / ATTRS["lz"]) + ph)
        boxes[k] = 0.3 * prof * (1.0 + skew * (y - 1.0))[:, None] * f
        boxes[k, :, 0] += 5.0 * prof[:, 0]
    attrs = dict(ATTRS, lx=lx) if lx_attr else dict(ATTRS)
    with DatasetWriter(path, y, z, attrs=attrs) as w:
        for k in range(times):
            order = rng.permutation(nx) if shuffle else np.arange(nx)
            if drop is not None:
                order = order[order != drop]
            w.append(boxes[k, order].astype(np.float32), t=np.full(order.size, k * dt), x=x[order])
    return boxes


def test_pairs_follow_x_within_each_time_and_wrap(tmp_path):
    p = tmp_path / "d.h5"
    boxes = write_planes(p, times=3, nx=8)
    pp = dataset_pairs(p)
    assert len(pp) == 3 * 8 and pp.wrap and pp.snapshots == 3
    assert pp.dx == pytest.approx(np.pi / 8)
    with open_dataset(p) as ds:
        fields, t, x = ds.read(slice(None)), ds.t, ds.x
    for (i, j), tp in zip(pp.pairs, pp.t):
        assert t[i] == t[j] == tp
        assert (x[j] - x[i]) % np.pi == pytest.approx(np.pi / 8)  # next is one dx downstream (wrap included)
    # each pair is a real (prev, next) pair of the box
    k = int(t[pp.pairs[0, 0]])
    kx = int(round(x[pp.pairs[0, 0]] / (np.pi / 8)))
    np.testing.assert_allclose(fields[pp.pairs[0, 1]], boxes[k, (kx + 1) % 8], rtol=1e-6, atol=1e-6)
    # without the period (no attribute, no lx): no wrap pair
    write_planes(tmp_path / "n.h5", times=3, nx=8, lx_attr=False)
    pn = dataset_pairs(tmp_path / "n.h5")
    assert len(pn) == 3 * 7 and not pn.wrap
    assert len(dataset_pairs(tmp_path / "n.h5", lx=np.pi)) == 24  # the config's data.lx
    # planes covering part of the period: no wrap; more than the period: refused
    assert not plane_pairs(np.zeros(4), np.arange(4) * 0.1, lx=1.0).wrap
    with pytest.raises(DatasetError, match="more than the period"):
        plane_pairs(np.zeros(4), np.arange(4) * 0.1, lx=0.3)


def test_bad_datasets_are_refused(tmp_path):
    with DatasetWriter(tmp_path / "nox.h5", np.linspace(0, 2, 5), np.arange(4) / 4,
                       attrs=dict(ATTRS, lz=1.0)) as w:
        w.append(np.zeros((4, 3, 5, 4), np.float32), t=np.zeros(4))
    with pytest.raises(DatasetError, match="no /x"):
        dataset_pairs(tmp_path / "nox.h5")
    write_planes(tmp_path / "gap.h5", drop=3)  # plane 3 missing: the rest are not equispaced
    with pytest.raises(DatasetError, match="not equispaced"):
        dataset_pairs(tmp_path / "gap.h5")
    with pytest.raises(DatasetError, match="both at x"):
        plane_pairs(np.zeros(3), np.array([0.0, 0.1, 0.1]))
    with pytest.raises(DatasetError, match="differs from"):
        plane_pairs(np.array([0.0, 0.0, 1.0, 1.0]), np.array([0.0, 0.1, 0.0, 0.2]))
    with pytest.raises(DatasetError, match="no consecutive-plane pairs"):
        plane_pairs(np.arange(4.0), np.arange(4.0))  # one plane per time
    # no /t: one snapshot
    assert len(plane_pairs(None, np.array([0.2, 0.0, 0.1]))) == 2


def test_split_by_time_keeps_snapshots_whole_and_the_gap():
    t = np.repeat(np.arange(40.0), 4)  # 40 snapshots of 4 planes, 1 time unit apart
    x = np.tile(np.arange(4) * 0.25, 40)
    pp = plane_pairs(t, x, lx=1.0)
    for mode in ("blocks", "last"):
        tr, va = split_pairs(pp, val_fraction=0.2, seed=3, mode=mode, blocks=10, gap=5.0)
        assert set(tr).isdisjoint(va) and va.size == 8 * 4
        tv, tt = np.unique(pp.t[va]), np.unique(pp.t[tr])
        assert np.min(np.abs(tt[:, None] - tv[None, :])) >= 5.0
        for s in np.unique(pp.t[va]):  # whole snapshots
            assert np.sum(pp.t[va] == s) == 4
    tr, va = split_pairs(pp, val_fraction=0.2, seed=3, mode="last", blocks=10, gap=5.0)
    assert pp.t[va].min() == 32.0 and pp.t[tr].max() == 27.0  # one-sided loss
    tr0, _ = split_pairs(pp, val_fraction=0.2, seed=3, mode="last", blocks=10)
    assert tr0.size == 32 * 4
    with pytest.raises(DatasetError, match="needs the time"):
        from cfdseed.data import split_indices

        split_indices(10, val_fraction=0.2, seed=0, gap=1.0)


def test_pair_dataset_augments_both_planes_alike(tmp_path):
    p = tmp_path / "d.h5"
    write_planes(p, times=2, skew=0.5)  # not symmetric about the centre: a wall flip shows in every component
    pp = dataset_pairs(p)
    with open_dataset(p) as ds:
        st = compute_stats(ds)
        fields = ds.read(slice(None))
    data = PairDataset(p, st, pp.pairs, roll=True, spanwise=True, wall=True)
    assert len(data) == len(pp)
    i, j = pp.pairs[5]

    def transformed(plane, shift, flip_z, flip_y):
        """The symmetry written out: z -> z + shift (periodic), then z -> -z with w -> -w, then
        y -> ly - y with v -> -v; normalised as the dataset delivers it."""
        out = np.roll(plane, shift, axis=-1)
        if flip_z:
            out = out[..., (-np.arange(out.shape[-1])) % out.shape[-1]] * np.array([1.0, 1.0, -1.0])[:, None, None]
        if flip_y:
            out = out[:, ::-1] * np.array([1.0, -1.0, 1.0])[:, None, None]
        return st.normalise(out)

    combos = [(s, a, b) for s in range(8) for a in (False, True) for b in (False, True)]
    seen = set()
    for seed in range(16):
        got = data[(5, seed)].numpy()
        assert got.shape == (2, 3, 9, 8)
        # which symmetry each plane got, inferred from the output (exactly one fits: the box is generic)
        fits = [[c for c in combos if np.allclose(got[k], transformed(fields[idx], *c), rtol=1e-5, atol=1e-5)]
                for k, idx in enumerate((i, j))]
        assert len(fits[0]) == 1 and fits[0] == fits[1], (seed, fits)  # both planes alike
        seen.add(fits[0][0])
        ref = augment(fields[[i, j]], np.random.default_rng(seed), roll=True, spanwise=True, wall=True)
        np.testing.assert_allclose(got, st.normalise(ref), rtol=1e-5, atol=1e-5)  # augment's draw of aug_seed
    assert {c[1:] for c in seen} == {(a, b) for a in (False, True) for b in (False, True)}  # every flip pair
    assert len({c[0] for c in seen}) > 3  # and shifts
    np.testing.assert_allclose(data[5].numpy(), st.normalise(fields[[i, j]]), rtol=1e-5, atol=1e-5)
    keys = [(5, 1), 2, (0, 9)]
    for got, key in zip(data.__getitems__(keys), keys):
        np.testing.assert_array_equal(got.numpy(), data[key].numpy())
    q = tmp_path / "s.h5"
    write_planes(q, times=2)
    with h5py.File(q, "r+") as h:  # a stretched y: the wall reflection is refused
        h["y"][...] = h["y"][...] ** 1.2 * (2.0 / h["y"][-1] ** 1.2)
    with pytest.raises(DatasetError, match="symmetric"):
        PairDataset(q, st, pp.pairs, wall=True)
