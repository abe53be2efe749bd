"""cfdseed: generative turbulent initial conditions delivered into running MPI channel solvers.

Public API (imports are lazy: ``import cfdseed`` loads neither torch nor MPI)::

    Grid                  global channel grid + this rank's block      (cfdseed.grid)
    init_field(comm, grid, ...)   collective: build on root, scatter, check  (cfdseed.coupling)
    check_field(comm, grid, local) collective constraint report              (cfdseed.coupling)
    ConstraintReport      result of the checks                            (cfdseed.constraints)
    Tolerances            limits of the checks                            (cfdseed.constraints)
    load_generator(path)  trained generator from a checkpoint             (cfdseed.model)
    default_model()       path of the packaged default generator          (cfdseed.checkpoint)
    abort_on_error(comm)  context manager: an exception on any rank ends the MPI job
    Units, resolve_units(ly, ...)  the unit contract of every source      (cfdseed.units)

Submodules load on first use too (``cfdseed.sources.register(...)`` after a plain ``import cfdseed``).
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import (
    CalibrationError,
    CaseError,
    CfdseedError,
    CheckpointError,
    ConfigError,
    ConstraintError,
    DatasetError,
    DecompositionError,
    GridError,
    SourceError,
    TrainingError,
    TransportError,
)
from .grid import Grid

__version__ = "0.1.0"

_LAZY = {
    "init_field": "cfdseed.coupling",
    "check_field": "cfdseed.coupling",
    "ConstraintReport": "cfdseed.constraints",
    "Tolerances": "cfdseed.constraints",
    "load_generator": "cfdseed.model",
    "default_model": "cfdseed.checkpoint",
    "abort_on_error": "cfdseed._collective",
    "Units": "cfdseed.units",
    "resolve_units": "cfdseed.units",
}

__all__ = [
    "Grid",
    *_LAZY,
    "CalibrationError",
    "CaseError",
    "CfdseedError",
    "CheckpointError",
    "ConfigError",
    "ConstraintError",
    "DatasetError",
    "DecompositionError",
    "GridError",
    "SourceError",
    "TrainingError",
    "TransportError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if not name.startswith("_"):  # a submodule, loaded on first use: cfdseed.sources.register(...)
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module 'cfdseed' has no attribute {name!r}")
