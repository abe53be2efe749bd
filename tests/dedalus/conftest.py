"""Shared hooks of the Dedalus tests (run on 2 ranks by tests/test_dedalus.py).

A test that fails on one rank only would leave the other rank waiting in its next collective
until the outer test's timeout, with the failure never printed: a failing rank prints its report
and aborts the MPI job instead, so the run ends at once with the reason shown.
"""

from __future__ import annotations

import sys

import pytest
from mpi4py import MPI


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    comm = MPI.COMM_WORLD
    if report.failed and comm.size > 1:
        sys.stdout.write(f"\n[rank {comm.rank}] {report.nodeid} failed ({report.when}); aborting the job:\n"
                         f"{report.longreprtext}\n")
        sys.stdout.flush()
        comm.Abort(1)
