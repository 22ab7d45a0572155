"""Parameters declared once: what each accepts, checked by one function with one wording.

As scikit-learn's ``_parameter_constraints``: a mapping from a parameter's name to what it may be,
and :func:`validate` raising a ``ValueError`` that names the parameter, what it must be and what
it got. Constraints are plain values: a type (``int``, ``float``, ``str``, ``bool``, ``list``,
``dict``), ``None``, an :class:`Interval`, an :class:`Options` of allowed values, or a tuple of
these meaning "any of them".
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Interval:
    """A number (``kind``: int or float) in [low, high] (``closed`` says which ends are in)."""

    kind: type
    low: float | None = None
    high: float | None = None
    closed: str = "both"  # both | left | right | neither

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind is int and not isinstance(value, numbers.Integral):
            return False
        if not isinstance(value, numbers.Real) or not math.isfinite(value):
            return False
        low_ok = self.low is None or (
            value >= self.low if self.closed in ("both", "left") else value > self.low
        )
        high_ok = self.high is None or (
            value <= self.high if self.closed in ("both", "right") else value < self.high
        )
        return low_ok and high_ok

    def __str__(self) -> str:
        name = "an integer" if self.kind is int else "a number"
        parts = []
        if self.low is not None:
            parts.append(f"{'>=' if self.closed in ('both', 'left') else '>'} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<=' if self.closed in ('both', 'right') else '<'} {self.high:g}")
        return f"{name} {' and '.join(parts)}".strip()


@dataclass(frozen=True)
class Options:
    """One of the given values."""

    values: tuple

    def accepts(self, value: Any) -> bool:
        if not isinstance(value, (str, int, float, type(None))):
            return False  # arrays and the like are never one of a set of plain values
        return any(type(value) is type(v) and value == v for v in self.values)

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


_TYPE_WORDS = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    list: "a list",
    dict: "a mapping",
}


def _accepts(constraint: Any, value: Any) -> bool:
    if isinstance(constraint, tuple):
        return any(_accepts(c, value) for c in constraint)
    if constraint is None:
        return value is None
    if isinstance(constraint, (Interval, Options)):
        return constraint.accepts(value)
    if constraint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if constraint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if isinstance(constraint, type):
        return isinstance(value, constraint)
    raise TypeError(f"unknown constraint {constraint!r}")


def describe(constraint: Any) -> str:
    """The words for a constraint: "an integer >= 1 or None"."""
    if isinstance(constraint, tuple):
        return " or ".join(describe(c) for c in constraint)
    if constraint is None:
        return "None (null)"
    if isinstance(constraint, type):
        return _TYPE_WORDS.get(constraint, constraint.__name__)
    return str(constraint)


def validate(params: Mapping[str, Any], constraints: Mapping[str, Any], where: str = "") -> None:
    """Check every parameter that has a constraint; a ValueError names the first that fails."""
    for name, constraint in constraints.items():
        if name in params and not _accepts(constraint, params[name]):
            raise ValueError(f"{where}{name} must be {describe(constraint)}; got {params[name]!r}")
