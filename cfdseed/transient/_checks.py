"""Argument checks shared by the steady-state rules.

Each check raises ``ValueError`` naming the argument, the value it got and what is allowed (house
style: never ``assert``). The checks only look: they return nothing and never convert, so a valid
argument reaches the arithmetic exactly as the caller passed it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._values import is_integer, is_real


def positive(name: str, value: Any) -> None:
    """``value`` must be a finite real number > 0."""
    if not is_real(value) or not (math.isfinite(float(value)) and float(value) > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def non_negative(name: str, value: Any) -> None:
    """``value`` must be a finite real number >= 0."""
    if not is_real(value) or not (math.isfinite(float(value)) and float(value) >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def finite(name: str, value: Any) -> None:
    """``value`` must be a finite real number."""
    if not is_real(value) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def count(name: str, value: Any, low: int) -> None:
    """``value`` must be an integer >= ``low``."""
    if not is_integer(value) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def generator(name: str, value: Any, *, optional: bool) -> None:
    """``value`` must be a ``numpy.random.Generator`` (or None where ``optional``)."""
    if (value is None and optional) or isinstance(value, np.random.Generator):
        return
    allowed = "a numpy.random.Generator (np.random.default_rng(seed))" + (" or None" if optional else "")
    raise ValueError(f"{name} must be {allowed}, got {value!r}")
