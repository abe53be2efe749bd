"""Adapters that put cfdseed initial conditions into third-party MPI solvers.

Each adapter lives in its own module and imports its solver lazily, so ``import cfdseed.solvers``
works without any solver installed:

- :mod:`cfdseed.solvers.dedalus`: Dedalus 3 plane channel flow (needs the ``.venv-dedalus``
  environment, see ``.ci/setup-dedalus.sh``); :mod:`cfdseed.solvers.dedalus_case` holds its case
  as plain data (spec, Gauss quadrature, diagnostics record), readable without Dedalus.
- :mod:`cfdseed.solvers.openfoam`: an OpenFOAM channel case's ``U`` (reconstructed and/or
  decomposed), written from a cfdseed field; :mod:`cfdseed.solvers.openfoam_case` reads the case
  (layouts, mesh through OpenFOAM's ``postProcess``, the channel's walls, periods, ``Ubar``, ``nu``).
- :mod:`cfdseed.solvers.runner`: the driving loop and on-disk outputs of resumable runs (time series, profiles, slice
  segments, restart bookkeeping) and the merge of slice segments into a cfdseed dataset.
"""
