"""Argument checks, in Keras's message style, for every public constructor and function.

``ValueError("Argument `gamma` must be a positive float. Received: gamma=-1.0")``
"""
from __future__ import annotations

import numbers
from typing import Any, Optional

__all__ = ["check", "is_int", "is_real", "positive_int", "real", "seed", "steps"]


def check(cond: bool, name: str, value: Any, what: str) -> None:
    """Raise ``ValueError("Argument `name` must be what. Received: name=value")`` unless ``cond``."""
    if not cond:
        raise ValueError(f"Argument `{name}` must be {what}. Received: {name}={value!r}")


def is_int(value) -> bool:
    """An integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value) -> bool:
    """A real number, not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_int(name: str, value) -> int:
    """``value`` as an ``int`` if it is an integer >= 1, else a ``ValueError``."""
    check(is_int(value) and value >= 1, name, value, "an integer >= 1")
    return int(value)


def real(name: str, value, low: Optional[float] = None, high: Optional[float] = None,
         low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a ``float`` if it is a real number in the given range, else a ``ValueError``."""
    ok = is_real(value) and value == value
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if low is None and high is None:
        what = "a real number"
    else:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
        what = (f"a real number in {lo}, {hi}" if low is not None and high is not None
                else f"a real number {'>' if low_open else '>='} {low:g}" if low is not None
                else f"a real number {'<' if high_open else '<='} {high:g}")
    check(ok, name, value, what)
    return float(value)


def seed(value) -> Optional[int]:
    """A seed as ``keras.initializers`` take it: None or an integer."""
    check(value is None or is_int(value), "seed", value, "None or an integer")
    return value


def steps(value) -> int:
    """A method's number of steps as an ``int``: a real number >= 1 (``int`` truncates it)."""
    check(is_real(value) and value >= 1, "steps", value, "an integer >= 1")
    return int(value)
