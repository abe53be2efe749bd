"""Shared pytest set-up.

tests/mpi/ and tests/dedalus/ are not collected directly: tests/test_mpi.py runs each MPI module
under the venv's mpiexec on 1-4 ranks, tests/test_dedalus.py runs tests/dedalus/ under the
Dedalus environment's mpiexec. Naming a file there explicitly still runs it (that is how the
runners call them).

With ``CI`` set, hypothesis runs a fixed example sequence (reproducible CI); local runs keep
exploring new examples.
"""

import os

from hypothesis import settings

collect_ignore = ["mpi", "dedalus"]

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
