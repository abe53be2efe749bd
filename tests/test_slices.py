"""The HDF5 slice dataset format: writer, validated reader, round trip."""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest

from cfdseed import DatasetError
from cfdseed.data import compute_stats
from cfdseed.grid import wall_normal
from cfdseed.slices import DatasetWriter, open_dataset, read_slices

ATTRS = dict(re_tau=180.0, nu=1.0 / 180.0, u_tau=1.0, ly=2.0, lz=np.pi, source="test")


def random_fields(n, ny=9, nz=8, seed=0):
    """Random periodic slices with a mean profile (u) and row-dependent fluctuations."""
    rng = np.random.default_rng(seed)
    y = wall_normal("chebyshev", ny, 2.0)
    prof = (1.0 - (y - 1.0) ** 2)[None, :, None]
    f = rng.standard_normal((n, 3, ny, nz)) * (0.1 + prof)
    f[:, 0] += 5.0 * prof
    return f.astype(np.float32), y, np.arange(nz) * np.pi / nz


def make_dataset(path, n=20, ny=9, nz=8, seed=0, t=True):
    f, y, z = random_fields(n, ny, nz, seed)
    with DatasetWriter(path, y, z, attrs=ATTRS) as w:
        for s in range(0, n, 7):  # several appends
            w.append(f[s : s + 7], t=np.arange(s, min(s + 7, n)) * 0.5 if t else None)
    return f, y, z


def test_roundtrip_and_layout(tmp_path):
    p = tmp_path / "d.h5"
    f, y, z = make_dataset(p)
    with h5py.File(p) as h:
        assert h["fields"].chunks == (1, 3, 9, 8) and h["fields"].dtype == np.float32
        assert h.attrs["format"] == "cfdseed-slices"
    with open_dataset(p) as ds:
        assert (ds.n, ds.ny, ds.nz) == (20, 9, 8)
        np.testing.assert_array_equal(ds.y, y)
        np.testing.assert_array_equal(ds.t, np.arange(20) * 0.5)
        assert ds.x is None and ds.source == "test" and ds.re_tau == 180.0
        np.testing.assert_array_equal(ds.read([5, 2, 5]), f[[5, 2, 5]])
        np.testing.assert_array_equal(ds.read(3), f[3])
    np.testing.assert_array_equal(read_slices(p), f)


def test_identity_follows_content_not_location(tmp_path):
    """A copy elsewhere has the same digest; another sample, attribute or time axis changes it."""
    make_dataset(tmp_path / "a.h5")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.h5").write_bytes((tmp_path / "a.h5").read_bytes())
    make_dataset(tmp_path / "no_t.h5", t=False)

    def ident(name):
        with open_dataset(tmp_path / name) as ds:
            return ds.identity()

    base = ident("a.h5")
    assert ident("sub/a.h5") == base and ident("no_t.h5") != base
    for change in ("last", "attr"):
        p = tmp_path / f"{change}.h5"
        p.write_bytes((tmp_path / "a.h5").read_bytes())
        with h5py.File(p, "r+") as h:
            if change == "last":
                h["fields"][-1, 2, 4, 3] += 1e-3
            else:
                h.attrs["u_tau"] = 1.01
        assert ident(p.name) != base, change


def test_writer_rejects_bad_input(tmp_path):
    f, y, z = random_fields(4)
    with pytest.raises(DatasetError, match="missing attribute.*u_tau"):
        DatasetWriter(tmp_path / "a.h5", y, z, attrs={k: v for k, v in ATTRS.items() if k != "u_tau"})
    with pytest.raises(DatasetError, match="positive finite"):
        DatasetWriter(tmp_path / "a.h5", y, z, attrs={**ATTRS, "nu": -1.0})
    with pytest.raises(DatasetError, match="strictly increasing"):
        DatasetWriter(tmp_path / "a.h5", y[::-1], z, attrs=ATTRS)
    with DatasetWriter(tmp_path / "a.h5", y, z, attrs=ATTRS) as w:
        with pytest.raises(DatasetError, match="shape"):
            w.append(f[:, :2])
        bad = f.copy()
        bad[2, 1, 3, 3] = np.nan
        with pytest.raises(DatasetError, match=r"NaN/Inf.*\[2\]"):
            w.append(bad)
        w.append(f[:2], t=[0.0, 1.0])
        with pytest.raises(DatasetError, match="every append"):
            w.append(f[:2])


def _write_raw(path, fields, y, z, attrs):
    with h5py.File(path, "w") as h:
        h["fields"], h["y"], h["z"] = fields, y, z
        for k, v in attrs.items():
            h.attrs[k] = v


def test_reader_validation(tmp_path):
    f, y, z = random_fields(5)
    p = tmp_path / "r.h5"
    _write_raw(p, f[:, :2], y, z, ATTRS)
    with pytest.raises(DatasetError, match=r"\(N, 3, ny, nz\)"):
        open_dataset(p)
    _write_raw(p, f[0], y, z, ATTRS)
    with pytest.raises(DatasetError, match="shape"):
        open_dataset(p)
    _write_raw(p, f, y, z, {k: v for k, v in ATTRS.items() if k != "source"})
    with pytest.raises(DatasetError, match="missing attribute.*source"):
        open_dataset(p)
    _write_raw(p, f, y[:-1], z, ATTRS)
    with pytest.raises(DatasetError, match="must match"):
        open_dataset(p)
    bad = f.copy()
    bad[3, 0, 0, 0] = np.inf
    _write_raw(p, bad, y, z, ATTRS)
    with pytest.raises(DatasetError, match=r"sample\(s\) \[3\]"):
        open_dataset(p)
    with open_dataset(p, check_finite=False) as ds, pytest.raises(DatasetError, match=r"\[3\]"):
        compute_stats(ds)
    _write_raw(p, f, y, z, ATTRS)
    with pytest.raises(DatasetError, match="5 sample.*64"):
        open_dataset(p, min_samples=64)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(DatasetError, match="not a readable HDF5"):
        open_dataset(tmp_path / "junk.h5")
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(tmp_path / "nope.h5")
    with pytest.raises(DatasetError, match=f"^dataset file '{re.escape(str(tmp_path))}' is a folder; name the file in it$"):
        open_dataset(tmp_path)  # was "does not exist"
