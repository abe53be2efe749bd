"""Agreeing on errors (cfdseed._collective): what the ranks that did not fail raise (the MPI paths
themselves: tests/mpi/test_faults.py)."""

from __future__ import annotations

import pytest

from cfdseed import errors
from cfdseed._collective import _rebuild


@pytest.mark.parametrize("cls", [ValueError, OSError, MemoryError, FloatingPointError, ZeroDivisionError,
                                 OverflowError, errors.SourceError, errors.ConstraintError])
def test_the_other_ranks_raise_the_failing_rank_s_type(cls):
    """A failure on one rank is raised on the others with its own type (the campaign worker tells a
    blow-up, FloatingPointError, from any other error by it)."""
    got = _rebuild(cls.__name__, "on rank 3: boom")
    assert type(got) is cls and "boom" in str(got)


def test_an_unknown_type_becomes_a_runtime_error_naming_it():
    got = _rebuild("WeirdError", "boom")
    assert type(got) is RuntimeError and str(got) == "WeirdError: boom"


@pytest.mark.parametrize("comm", [None, 0, "COMM_WORLD"])
def test_abort_on_error_refuses_a_non_communicator_at_entry(comm):
    """Checked when the block is entered: later, the block's own error would be replaced by an
    AttributeError and nothing would abort."""
    import cfdseed

    with pytest.raises(TypeError, match="needs an MPI communicator"):
        with cfdseed.abort_on_error(comm):
            raise AssertionError("the block must not run")
