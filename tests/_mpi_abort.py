"""A pytest hook for test modules run on several MPI ranks (tests/mpi/, tests/dedalus/).

A test that fails on one rank only would leave the others waiting in their next collective until
the runner's timeout, with the failure never printed: the failing rank prints its report and aborts
the MPI job instead, so the run ends at once with the reason shown. A library that hangs without
any test failing is still caught by the runner's timeout.
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
