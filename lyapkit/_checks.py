"""The argument validators of the core and the trainers: each returns the value converted (a Python
``int`` or ``float``, a float64 array) or raises an error that names the argument, says what was
expected and shows what it got. ``bool`` is never a number here."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def integer(
    value: Any,
    name: str,
    minimum: int | None = None,
    maximum: int | None = None,
    *,
    maximum_is: str | None = None,
    error: type[Exception] = ValueError,
) -> int:
    """``value`` as an ``int``: a Python or numpy integer with ``minimum ≤ value ≤ maximum``.

    ``maximum_is`` names the upper bound in the message (``"dim=2"``); ``error`` is the exception
    type raised (a ``ValueError`` by default).
    """
    low_ok = minimum is None or (_is_integer(value) and value >= minimum)
    high_ok = maximum is None or (_is_integer(value) and value <= maximum)
    if _is_integer(value) and low_ok and high_ok:
        return int(value)
    if maximum is not None:
        what = f"an integer between {minimum} and {maximum_is or maximum}"
    elif minimum is None:
        what = "an integer"
    else:
        what = {0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
    raise error(f"{name} must be {what}, got {value!r}")


def number(
    value: Any,
    name: str,
    *,
    positive: bool = False,
    non_negative: bool = False,
    below: float | None = None,
    error: type[Exception] = ValueError,
) -> float:
    """``value`` as a finite ``float`` (a real number, or a 0-d numpy array or torch tensor; not
    ``bool``): ``> 0`` with ``positive``, ``≥ 0`` with ``non_negative``, and ``< below`` when
    ``below`` is given."""
    if isinstance(value, (bool, np.bool_)) or not (
        isinstance(value, numbers.Real) or getattr(value, "ndim", None) == 0
    ):
        x = math.nan
    else:
        try:
            x = float(value)
        except (TypeError, ValueError, OverflowError):
            x = math.nan
    in_range = (
        (not positive or x > 0) and (not non_negative or x >= 0) and (below is None or x < below)
    )
    if math.isfinite(x) and in_range:
        return x
    if below is not None:
        low = "(0" if positive else "[0" if non_negative else "(-inf"
        what = f"a number in {low}, {below:g})"
    elif positive:
        what = "a positive number"
    elif non_negative:
        what = "a non-negative number"
    else:
        what = "a finite number"
    raise error(f"{name} must be {what}, got {value!r}")


def real_array(values: Any, name: str, ndim: int) -> np.ndarray:
    """``values`` as a non-empty finite float64 array of ``ndim`` dimensions (real, not complex)."""
    array = np.asarray(values)
    if np.iscomplexobj(array) or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} must be real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if array.ndim != ndim or array.size == 0:
        raise ValueError(
            f"{name} must be a non-empty finite {ndim}-d array, got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} must be finite, got {bad} NaN or infinite value(s)")
    return array


def interval(bounds: Any, name: str) -> tuple[float, float]:
    """``bounds`` as ``(low, high)`` floats with ``low ≤ high``."""
    try:
        low, high = (float(v) for v in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an interval (low, high), got {bounds!r}") from None
    if not low <= high:
        raise ValueError(f"{name} must be an interval (low, high) with low ≤ high, got {bounds!r}")
    return low, high
