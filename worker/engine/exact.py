"""Exact decimal arithmetic for the rules' limits (rules.md: "Arithmetic is exact").

A number in a bundle or an Avro record arrives as a binary double, which cannot hold most decimals
(0.8 is 0.8000000000000000444...), so `1.5 * 0.8` is 1.2000000000000002 and a creatinine rise of
exactly 1.5x would be missed. The catalogue says numbers compare as the decimals they are written
as. A double's shortest repr (`repr(0.8) == "0.8"`) is that decimal whenever the writer used at
most 15 significant digits, so every value is converted with `Decimal(repr(x))` and the products
are computed in a context wide enough that nothing is ever rounded.

Comparisons without arithmetic (a lab value against a target, an eGFR against 30, two strengths)
need no conversion: rounding to the nearest double is monotonic, so two doubles compare exactly as
their shortest decimals do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Context, Decimal

# 17 significant digits per double, at most four factors, plus 10-digit ints: 120 digits is room to
# spare, so products and sums here are exact (division is only used for display).
EXACT = Context(prec=120)

WHOLE_TOLERANCE = Decimal("0.000001")  # rules.md: units within 1e-6 of a whole number count as it


# Decimals of the doubles seen so far: a patient's doses, weights and lab values recur on every
# claim, and repr + Decimal() is most of what a limit costs. Decimals are immutable, so sharing is
# safe. Zeros are not cached (0.0 == -0.0 as keys, but their decimals differ in sign); NaN never
# hits (NaN != NaN). Cleared when full rather than evicted one by one: cheap and bounded.
_DECIMALS: dict[float, Decimal] = {}
_DECIMALS_MAX = 65_536


def dec(value: float | int) -> Decimal:
    """The decimal a number was written as: the shortest repr of a double, an int as it is.

    Callers check finiteness first (`Decimal("nan")` would raise on comparison); validated events
    never carry NaN or infinities.
    """
    if isinstance(value, int):
        return Decimal(int(value))  # int(): a bool would otherwise be Decimal("True")
    cached = _DECIMALS.get(value)
    if cached is not None:
        return cached
    exact = Decimal(repr(value))
    if value:
        if len(_DECIMALS) >= _DECIMALS_MAX:
            _DECIMALS.clear()
        _DECIMALS[value] = exact
    return exact


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


_WHOLE: dict[float, Decimal] = {}  # as _DECIMALS: billed units are a few hundred distinct values


def whole_units(units: float) -> Decimal | None:
    """The units as exact decimal, snapped to the whole number within 1e-6 of it; None if not finite."""
    cached = _WHOLE.get(units)
    if cached is not None:
        return cached
    if not math.isfinite(units):
        return None
    exact = dec(units)
    whole = exact.to_integral_value()
    result = whole if abs(EXACT.subtract(exact, whole)) < WHOLE_TOLERANCE else exact
    if units:  # zeros are not cached (see _DECIMALS)
        if len(_WHOLE) >= _DECIMALS_MAX:
            _WHOLE.clear()
        _WHOLE[units] = result
    return result


def positive_whole(units: Decimal | None) -> bool:
    """`units` (as `whole_units` gives them) are a positive whole number: what `units-not-whole` asks."""
    return units is not None and units > 0 and is_whole(units)


def sum_units(values: Iterable[float]) -> Decimal:
    """Exact decimal sum of units, each as the whole number within 1e-6 of it; a non-finite value
    (never in validated events) counts as nothing."""
    total = Decimal(0)
    for value in values:
        units = whole_units(value)
        if units is not None:
            total = EXACT.add(total, units)
    return total


def is_whole(value: Decimal) -> bool:
    return value == value.to_integral_value()


def text(value: float | int | Decimal) -> str:
    """A number as written, in plain notation: 1.2 (never 1.2000000000000002), 240 (not 240.0)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)
        value = dec(value)
    elif isinstance(value, int):
        return str(value)
    if not value.is_finite():
        return str(value)
    if is_whole(value):
        return str(int(value))
    return format(value.normalize(EXACT), "f")
