"""Small input checks shared by every module: one wording for one mistake.

Each returns the value in its plain Python type or raises one ``ValueError`` that names the parameter,
what it must be and what it got; ``hint`` adds what the number means (``"10% of the box size"``).
Checks of a noun (an image, a mask, a box) live with the noun: :mod:`utils.images`, :mod:`utils.prompts`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["finite_number", "one_of", "whole_number"]


def _with(hint: str) -> str:
    return f" ({hint})" if hint else ""


def whole_number(value: Any, name: str, minimum: int = 0, hint: str = "") -> int:
    """``value`` as an ``int`` >= ``minimum``; ``True``/``False`` and floats such as ``2.0`` are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}{_with(hint)}; got {value!r}.")
    return int(value)


def finite_number(value: Any, name: str, minimum: float | None = None, hint: str = "") -> float:
    """``value`` as a finite ``float`` (>= ``minimum`` when given); NaN, inf, bools and strings are refused."""
    number = float("nan")
    if not isinstance(value, (bool, str, bytes)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            pass  # reported below
    if not math.isfinite(number) or (minimum is not None and number < minimum):
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise ValueError(f"{name} must be a finite number{bound}{_with(hint)}; got {value!r}.")
    return number


def one_of(value: Any, options: Sequence[Any], name: str) -> Any:
    """``value`` if it is one of ``options``; else an error that lists them."""
    if isinstance(value, (list, dict, set)) or value not in options:
        raise ValueError(f"Unknown {name} {value!r}; choose one of: {', '.join(map(str, options))}.")
    return value
