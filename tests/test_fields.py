"""The 3-D field file format: writer validation, round trip, reader errors."""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest

from cfdseed import DatasetError
from cfdseed.fields import read_field, write_field
from cfdseed.grid import Grid


def test_writer_validation():
    g = Grid((4, 5, 3), (1.0, 2.0, 1.0))
    with pytest.raises(ValueError, match="shape"):
        write_field("unused.h5", np.zeros((3, 4, 5, 4)), g)


def test_round_trip_and_reader_errors(tmp_path):
    g = Grid((4, 5, 3), (1.0, 2.0, 1.5), y="chebyshev")
    f = np.random.default_rng(0).standard_normal((3, 4, 5, 3))
    xmf = write_field(tmp_path / "f.h5", f, g, {"source": "test", "options": {"a": 1}})
    assert xmf == tmp_path / "f.xmf" and xmf.is_file()
    field, y, lengths, attrs = read_field(tmp_path / "f.h5")
    np.testing.assert_array_equal(field, f)
    np.testing.assert_array_equal(y, g.y)
    assert lengths == (1.0, 2.0, 1.5) and attrs["source"] == "test" and attrs["options"] == '{"a": 1}'
    with h5py.File(tmp_path / "other.h5", "w") as h:
        h["fields"] = np.zeros((2, 3, 5, 3))
    with pytest.raises(DatasetError, match="not a cfdseed field file"):
        read_field(tmp_path / "other.h5")
    with pytest.raises(DatasetError, match="does not exist"):
        read_field(tmp_path / "missing.h5")
    with pytest.raises(DatasetError, match=f"^field file '{re.escape(str(tmp_path))}' is a folder; name the file in it$"):
        read_field(tmp_path)  # was "does not exist"
