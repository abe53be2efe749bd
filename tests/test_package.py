"""The public API: every name in __all__ resolves, and importing cfdseed stays light."""

from __future__ import annotations

import subprocess
import sys

import cfdseed


def test_all_names_resolve():
    for name in cfdseed.__all__:
        assert getattr(cfdseed, name) is not None, name


def test_unknown_attribute_is_attribute_error():
    try:
        cfdseed.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_import_loads_neither_torch_nor_mpi():
    code = "import sys, cfdseed; print('torch' in sys.modules, 'mpi4py.MPI' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
