"""Adapters that put cfdseed initial conditions into third-party MPI solvers.

Each adapter lives in its own module and imports its solver lazily, so ``import cfdseed.solvers``
works without any solver installed:

- :mod:`cfdseed.solvers.dedalus`: Dedalus 3 plane channel flow (needs the ``.venv-dedalus``
  environment, see ``.ci/setup-dedalus.sh``).
- :mod:`cfdseed.solvers.runner`: the driving loop and on-disk outputs of resumable runs (time series, profiles, slice
  segments, restart bookkeeping) and the merge of slice segments into a cfdseed dataset.
"""
