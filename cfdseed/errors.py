"""Exception types of cfdseed.

Every domain error derives from :class:`CfdseedError` and from the builtin it refines
(``ValueError`` or ``RuntimeError``), so callers may catch either. Collective functions raise
the same type with the same message on every rank.
"""

from __future__ import annotations

__all__ = [
    "CfdseedError",
    "GridError",
    "DecompositionError",
    "ConstraintError",
    "SourceError",
    "CalibrationError",
    "TransportError",
    "DatasetError",
    "ConfigError",
    "CheckpointError",
    "MPIMismatchError",
    "CaseError",
    "TrainingError",
]


class CfdseedError(Exception):
    """Base class of every cfdseed error."""


class GridError(CfdseedError, ValueError):
    """Invalid global grid description (shape, lengths, wall-normal coordinates)."""


class DecompositionError(CfdseedError, ValueError):
    """The ranks' blocks do not tile the global grid exactly once."""


class ConstraintError(CfdseedError, RuntimeError):
    """A delivered field violates a channel constraint; ``report`` holds the figures."""

    def __init__(self, message: str, report: object | None = None) -> None:
        super().__init__(message)
        self.report = report


class SourceError(CfdseedError, ValueError):
    """An initial-condition source is unknown, failed, or returned a bad field."""


class CalibrationError(SourceError):
    """The stress calibration cannot bring this field to its target (the target is out of its reach)."""


class TransportError(CfdseedError, ValueError):
    """Bad arguments to a collective transfer (``out`` shape/dtype/axes, root, communicator)."""


class DatasetError(CfdseedError, ValueError):
    """A turbulence dataset file is malformed or incompatible."""


class ConfigError(CfdseedError, ValueError):
    """A configuration has an unknown key, a wrong type or an invalid value."""


class CheckpointError(CfdseedError, ValueError):
    """A model checkpoint is missing, truncated, foreign or of another format version."""


class MPIMismatchError(CfdseedError, RuntimeError):
    """A compiled solver's MPI library is not the one mpi4py uses (C/Fortran API, :mod:`cfdseed.capi`)."""


class CaseError(CfdseedError, ValueError):
    """A solver case (OpenFOAM) is missing files, is not a periodic channel, or cannot be written."""


class TrainingError(CfdseedError, RuntimeError):
    """Training diverged (non-finite losses or weights); the last finite checkpoint is kept."""
