"""Tests run on several ranks: a rank whose test fails aborts the job (tests/_mpi_abort.py)."""

from _mpi_abort import pytest_runtest_logreport  # noqa: F401 - the hook, registered by name
