"""Checks of numeric option values, shared by the sources and the synthesis units.

One wording for every rejected value: ``"<name> must be a positive number, got -1.0"``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .errors import SourceError

__all__ = ["number", "is_integer", "is_real", "json_plain"]


def number(name: str, value: Any, *, minimum: float | None = None, strict: bool = False,
           error: type[Exception] = SourceError) -> float:
    """``value`` as a finite float, else raise ``error`` naming ``name`` and the allowed range.

    Parameters
    ----------
    name : str
        What the value is, for the message (e.g. ``"trig: amplitude"``).
    value : real number
        Anything ``float()`` converts except strings and bools.
    minimum : float, optional
        Smallest allowed value (``strict``: the value must exceed it).

    Raises
    ------
    error
        A string, a bool, anything else that is not a real number, NaN/Inf, or out of range.
    """
    what = ("a positive number" if minimum == 0 and strict else "a non-negative number" if minimum == 0
            else f"a number {'>' if strict else '>='} {minimum:g}" if minimum is not None else "a finite number")
    try:
        if isinstance(value, (str, bytes, bool)):
            raise TypeError
        f = float(value)
    except (TypeError, ValueError):
        raise error(f"{name} must be {what}, got {value!r}") from None
    if not math.isfinite(f) or (minimum is not None and (f <= minimum if strict else f < minimum)):
        raise error(f"{name} must be {what}, got {value!r}")
    return f


def is_integer(v: Any) -> bool:
    """A Python or numpy integer (not a bool, not an integer-valued float)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def is_real(v: Any) -> bool:
    """A Python or numpy real number, or a 0-d numeric array; not a bool or a string."""
    if isinstance(v, (bool, np.bool_)):
        return False
    return isinstance(v, numbers.Real) or (isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "iuf")


def json_plain(v: Any) -> Any:
    """``default=`` of :func:`json.dumps`: numpy scalars and arrays as JSON numbers and lists."""
    if isinstance(v, (np.generic, np.ndarray)):
        return v.tolist()
    raise TypeError(f"Object of type {type(v).__name__} is not JSON serializable")
