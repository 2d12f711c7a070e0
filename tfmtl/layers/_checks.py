"""Argument checks for layer and model constructors: a ValueError that names the owner, the argument and the value."""

from __future__ import annotations

import numbers
from collections.abc import Sequence


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_count(owner: str, name: str, value, minimum: int = 1) -> int:
    """``value`` as an int, refused unless it is an integer ``>= minimum``."""
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_units(owner: str, name: str, units, allow_empty: bool = False) -> list[int]:
    """``units`` as a list of widths, refused unless every width is an integer >= 1 (and, unless allowed, some)."""
    if isinstance(units, (str, bytes)) or not isinstance(units, Sequence) or _is_int(units):
        raise ValueError(f"{owner}: {name} must be a list of layer widths, got {units!r}")
    if not units and not allow_empty:
        raise ValueError(f"{owner}: {name} must hold at least one layer width, got {list(units)!r}")
    bad = [u for u in units if not _is_int(u) or u < 1]
    if bad:
        raise ValueError(f"{owner}: {name} must hold integers >= 1, got {list(units)!r}")
    return [int(u) for u in units]


def check_rate(owner: str, name: str, value) -> float:
    """``value`` as a float, refused unless it is in ``[0, 1)`` (a dropout rate)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}: {name} must be a number in [0, 1), got {value!r}")
    return float(value)



def check_arguments(owner: str, *, counts: dict | None = None, units: dict | None = None,
                    optional_units: dict | None = None, rates: dict | None = None) -> None:
    """Runs the checks above: ``counts`` (integers >= 1), ``units`` (non-empty width lists),
    ``optional_units`` (width lists, possibly empty) and ``rates`` (in ``[0, 1)``), each ``{name: value}``."""
    for name, value in (counts or {}).items():
        check_count(owner, name, value)
    for name, value in (units or {}).items():
        check_units(owner, name, value)
    for name, value in (optional_units or {}).items():
        check_units(owner, name, value, allow_empty=True)
    for name, value in (rates or {}).items():
        check_rate(owner, name, value)


__all__ = ["check_arguments", "check_count", "check_rate", "check_units"]
