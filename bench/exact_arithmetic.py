"""Micro-benchmark: the two exact ways to decide the rules' limits (not a test; run by hand).

    .venv/bin/python bench/exact_arithmetic.py [--iterations N]

rules.md says numbers compare as the decimals they are written as. Both candidates start from a
double's shortest repr; they differ in what they compute with:

- decimal: `Decimal(repr(x))`, products in a wide decimal context (worker/engine/exact.py)
- scaled int: parse repr into (integer mantissa, power of ten), cross-multiply integers
- float: today's inexact comparison, for the baseline

Each evaluates the three arithmetic limits of one typical line (creatinine >= 1.5 x lowest;
dose x doses / weight > max; units > expected x (1 + tolerance)) from fresh doubles, i.e. including
the conversions, which is what a claim pays.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from decimal import Decimal

from worker.engine.exact import EXACT, dec

CREATININE, LOWEST = 1.2, 0.8
DOSE, DOSES, WEIGHT, MAX_PER_KG = 5.4, 3, 40.5, 0.4
UNITS, DAYS, TOLERANCE = 198.0, 50, 0.1
RISE = Decimal("1.5")


def with_float() -> tuple[bool, bool, bool]:
    return (
        CREATININE >= 1.5 * LOWEST,
        DOSE * DOSES / WEIGHT > MAX_PER_KG,
        UNITS > 1.2 * DOSES * DAYS * (1 + TOLERANCE),
    )


def with_decimal() -> tuple[bool, bool, bool]:
    mul = EXACT.multiply
    return (
        dec(CREATININE) >= mul(RISE, dec(LOWEST)),
        mul(dec(DOSE), DOSES) > mul(dec(MAX_PER_KG), dec(WEIGHT)),
        dec(UNITS) > mul(mul(mul(dec(1.2), DOSES), DAYS), EXACT.add(1, dec(TOLERANCE))),
    )


def scaled(value: float) -> tuple[int, int]:
    """(m, e) with value == m * 10**e as written (shortest repr)."""
    written = repr(value)
    mantissa, _, exponent = written.partition("e")
    whole, _, fraction = mantissa.partition(".")
    return int(whole + fraction), (int(exponent) if exponent else 0) - len(fraction)


def _cmp(left: tuple[int, int], right: tuple[int, int]) -> int:
    (a, ea), (b, eb) = left, right
    shift = min(ea, eb)
    a, b = a * 10 ** (ea - shift), b * 10 ** (eb - shift)
    return (a > b) - (a < b)


def with_scaled_int() -> tuple[bool, bool, bool]:
    creatinine, lowest = scaled(CREATININE), scaled(LOWEST)
    dose, weight, limit = scaled(DOSE), scaled(WEIGHT), scaled(MAX_PER_KG)
    units, rx_dose, tolerance = scaled(UNITS), scaled(1.2), scaled(TOLERANCE)
    one_plus = (10 ** -tolerance[1] + tolerance[0], tolerance[1])
    return (
        _cmp(creatinine, (lowest[0] * 15, lowest[1] - 1)) >= 0,
        _cmp((dose[0] * DOSES, dose[1]), (limit[0] * weight[0], limit[1] + weight[1])) > 0,
        _cmp(units, (rx_dose[0] * DOSES * DAYS * one_plus[0], rx_dose[1] + one_plus[1])) > 0,
    )


def best_nanoseconds(action: Callable[[], object], iterations: int, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(iterations):
            action()
        best = min(best, time.process_time() - start)
    return best / iterations * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=100_000)
    args = parser.parse_args()
    assert with_decimal() == with_scaled_int() == (True, False, False), (with_decimal(), with_scaled_int())
    print(f"float (inexact) answers {with_float()}; exact answers {with_decimal()}")
    print("CPU time for the three limits of one line (best of 5, time.process_time):")
    for name, action in (("float", with_float), ("decimal", with_decimal), ("scaled int", with_scaled_int)):
        print(f"  {name:<11} {best_nanoseconds(action, args.iterations):8.0f} ns")


if __name__ == "__main__":
    main()
