"""Every numeric limit of rules.md, exactly at the limit and one step past it.

rules.md: "Arithmetic is exact: numbers compare as the decimals they are written as". Hypothesis
generates decimals that are exactly at a rule's limit as a decimal product (creatinine baseline ×
1.5; dose × doses ÷ weight = 0.4; expected quantity × (1 ± 10%); units summing to the cap) and
writes them into the bundle as JSON numbers, the way a billing system would. Binary floating point
gets many of these wrong (1.5 × 0.8 is 1.2000000000000002), so each property asserts the rule's
side of the limit from the catalogue's wording: `>`/`<` are strict (at the limit: no finding),
`≥`/`≤` include it, and one step past the limit is always on the other side.

Integer limits (days supply, refill window) and plain comparisons (trough targets, eGFR floor) have
their at-the-limit rows too. Decimals are written into the bundle with `float(str(d))`: JSON
numbers are doubles, and a double's shortest repr is the decimal written.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.rules.conftest import (
    CAPPED_PLAN,
    CREATININE,
    DOS,
    EGFR,
    GENERIC_05MG,
    GENERIC_1MG,
    PROGRAF_5MG,
    TACROLIMUS_LEVEL,
    findings_for,
    lab,
    prior_claim,
    prior_line,
)
from worker.engine.events import Finding
from worker.engine.exact import text, whole_units

LIMIT_SETTINGS = settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TOLERANCE = Decimal("0.10")  # quantity_tolerance of every built-in pack
MAX_MG_PER_KG_DAY = Decimal("0.4")  # max_mg_per_kg_day of every built-in pack
LIFETIME_CAP = Decimal(1000)  # tests/fixtures/payer-config/capped.yaml


def number(value: Decimal) -> float | int:
    """How a decimal is written in JSON: an integer as an integer, else its digits as a double."""
    return int(value) if value == value.to_integral_value() else float(str(value))


def decimals(low: str, high: str, places: int) -> st.SearchStrategy[Decimal]:
    """Decimals in [low, high] with at most `places` decimal places (as billing systems write them)."""
    scale = 10**places
    return st.integers(int(Decimal(low) * scale), int(Decimal(high) * scale)).map(
        lambda n: Decimal(n) / scale  # exact: a power of ten divides a decimal exactly
    )


def rule_finding(rule_id: str, changes: dict[str, Any], *, line: int = 1) -> Finding | None:
    return findings_for(changes, line=line).get(rule_id)


# --- renal-function-declining: newest creatinine ≥ 1.5 × the lowest in the window -------------


def _creatinine(lowest: Decimal, newest: Decimal) -> dict[str, Any]:
    return {
        "labs.1.value": number(lowest),
        "labs+": [lab("OBS-CREA-2", CREATININE, number(newest), "2025-11-28")],
    }


@given(lowest=decimals("0.2", "9.99", 2))
@example(lowest=Decimal("0.8"))  # rules.md's cases: 0.8 → 1.2, 1.6 → 2.4, 2.2 → 3.3
@example(lowest=Decimal("1.6"))
@example(lowest=Decimal("2.2"))
@LIMIT_SETTINGS
def test_creatinine_exactly_one_and_a_half_times_the_lowest_is_declining(lowest: Decimal) -> None:
    limit = lowest * Decimal("1.5")
    found = rule_finding("renal-function-declining", _creatinine(lowest, limit))
    assert found is not None, f"{limit} is ≥ 1.5 × {lowest}"
    # Evidence as written, not as the binary double prints at full precision.
    assert Decimal(found.evidence["creatinine"]) == limit
    assert Decimal(found.evidence["lowest_creatinine"]) == lowest


@given(lowest=decimals("0.2", "9.99", 2))
@example(lowest=Decimal("0.8"))
@LIMIT_SETTINGS
def test_creatinine_one_step_below_the_limit_is_not_declining(lowest: Decimal) -> None:
    below = lowest * Decimal("1.5") - Decimal("0.001")
    assert rule_finding("renal-function-declining", _creatinine(lowest, below)) is None


def test_the_rules_md_example_shows_the_values_as_written() -> None:
    found = rule_finding("renal-function-declining", _creatinine(Decimal("0.8"), Decimal("1.2")))
    assert found is not None
    assert found.evidence["creatinine"] == "1.2"
    assert found.evidence["lowest_creatinine"] == "0.8"
    assert "1.2000000000000002" not in found.message


@pytest.mark.parametrize(
    ("egfr", "fires"),
    [(30, False), (30.0, False), (29.99, True), (30.01, False)],
    ids=["30 (not < 30)", "30.0", "29.99", "30.01"],
)
def test_egfr_below_30_is_strict(egfr: float, fires: bool) -> None:
    changes = {"labs+": [lab("OBS-EGFR-2", EGFR, egfr, "2025-11-28")]}
    assert (rule_finding("renal-function-declining", changes) is not None) is fires


# --- dose-above-weight-norm: dose × doses ÷ weight > 0.4 -------------------------------------


def _dose(dose: Decimal, doses: int, weight: Decimal) -> dict[str, Any]:
    return {"rx.dose_mg": number(dose), "rx.doses_per_day": doses, "rx.dosing_weight_kg": number(weight)}


@given(dose=decimals("0.5", "20", 1), doses=st.integers(1, 4))
@example(dose=Decimal("5.4"), doses=3)  # rules.md's case: 5.4 mg × 3 ÷ 40.5 kg is exactly 0.4
@LIMIT_SETTINGS
def test_a_dose_of_exactly_the_norm_per_kg_is_not_above_it(dose: Decimal, doses: int) -> None:
    weight = dose * doses / MAX_MG_PER_KG_DAY  # exact: dividing by 0.4 is multiplying by 2.5
    assert weight * MAX_MG_PER_KG_DAY == dose * doses
    assert rule_finding("dose-above-weight-norm", _dose(dose, doses, weight)) is None


@given(dose=decimals("0.5", "20", 1), doses=st.integers(1, 4))
@example(dose=Decimal("5.4"), doses=3)
@LIMIT_SETTINGS
def test_one_gram_less_weight_puts_the_dose_above_the_norm(dose: Decimal, doses: int) -> None:
    weight = dose * doses / MAX_MG_PER_KG_DAY - Decimal("0.001")
    found = rule_finding("dose-above-weight-norm", _dose(dose, doses, weight))
    assert found is not None, f"{dose} × {doses} ÷ {weight} is above {MAX_MG_PER_KG_DAY}"
    assert Decimal(found.evidence["daily_dose_mg"]) == dose * doses
    assert Decimal(found.evidence["dosing_weight_kg"]) == weight


# --- quantity-exceeds / quantity-below-prescription: units vs expected × (1 ± 10%) ------------


def _quantity(dose: Decimal, doses: int, days: int, units: Decimal) -> dict[str, Any]:
    return {
        "rx.dose_mg": number(dose),
        "rx.doses_per_day": doses,
        "line.days_supply": days,
        "line.units": number(units),
        "line.ndc_quantity": None,
    }


QUANTITY = {"dose": decimals("0.1", "10", 1), "doses": st.integers(1, 4), "days": st.integers(1, 90)}
STEP = Decimal("0.01")  # the limit has at most two decimal places: one step past it is 0.01


@given(**QUANTITY)
@example(dose=Decimal("1.2"), doses=3, days=50)  # a case at the limit: 180 mg expected, 198 units billed
@LIMIT_SETTINGS
def test_units_exactly_at_the_upper_tolerance_do_not_exceed(dose: Decimal, doses: int, days: int) -> None:
    limit = dose * doses * days * (1 + TOLERANCE)
    assert rule_finding("quantity-exceeds-prescription", _quantity(dose, doses, days, limit)) is None
    found = rule_finding("quantity-exceeds-prescription", _quantity(dose, doses, days, limit + STEP))
    assert found is not None, f"{limit + STEP} > {limit}"
    assert Decimal(found.evidence["expected_units"]) == dose * doses * days


@given(**QUANTITY)
@example(dose=Decimal("1.2"), doses=3, days=50)
@LIMIT_SETTINGS
def test_units_exactly_at_the_lower_tolerance_are_not_below(dose: Decimal, doses: int, days: int) -> None:
    limit = dose * doses * days * (1 - TOLERANCE)
    assert rule_finding("quantity-below-prescription", _quantity(dose, doses, days, limit)) is None
    found = rule_finding("quantity-below-prescription", _quantity(dose, doses, days, limit - STEP))
    assert found is not None, f"{limit - STEP} < {limit}"


def test_the_quantity_tolerance_is_inclusive_both_ways() -> None:
    # 1.2 mg × 3 × 50 days = 180 mg; 198 is exactly +10%, 162 exactly −10%: neither fires.
    for units in (Decimal(198), Decimal(162)):
        changes = _quantity(Decimal("1.2"), 3, 50, units)
        assert rule_finding("quantity-exceeds-prescription", changes) is None
        assert rule_finding("quantity-below-prescription", changes) is None
    found = rule_finding("quantity-exceeds-prescription", _quantity(Decimal("1.2"), 3, 50, Decimal(199)))
    assert found is not None and found.evidence["expected_units"] == "180"


# --- units-not-whole and units-mismatch-ndc ------------------------------------------------------


@given(whole=st.integers(1, 100_000))
@LIMIT_SETTINGS
def test_units_within_a_millionth_of_a_whole_number_count_as_it(whole: int) -> None:
    near = {"line.units": number(whole + Decimal("0.0000009")), "line.ndc_quantity": None}
    assert rule_finding("units-not-whole", near) is None
    # Exactly 1e-6 away is not "within" it (as a double, 1000.000001 − 1000 is 9.99999997e-07).
    for off in (whole + Decimal("0.000001"), whole - Decimal("0.000001")):
        assert rule_finding("units-not-whole", {"line.units": number(off), "line.ndc_quantity": None}) is not None


@pytest.mark.parametrize("units", [0, 0.0000001, -1, 0.5])
def test_units_that_are_not_a_positive_whole_number(units: float) -> None:
    assert rule_finding("units-not-whole", {"line.units": units, "line.ndc_quantity": None}) is not None


@given(
    quantity=decimals("0.001", "2", 3),
    unit=st.sampled_from(["GR", "ME"]),
)
@LIMIT_SETTINGS
def test_units_equal_to_the_ndc_quantity_in_mg_match(quantity: Decimal, unit: str) -> None:
    expected = quantity * 1000 if unit == "GR" else quantity
    changes = {"line.ndc_quantity": number(quantity), "line.ndc_unit": unit, "line.units": number(expected)}
    assert rule_finding("units-mismatch-ndc", changes) is None
    changes["line.units"] = number(expected + Decimal("0.001"))
    found = rule_finding("units-mismatch-ndc", changes)
    assert found is not None
    assert Decimal(found.evidence["expected_units"]) == expected


@given(capsules=st.integers(1, 500), ndc=st.sampled_from([GENERIC_05MG, GENERIC_1MG, PROGRAF_5MG]))
@LIMIT_SETTINGS
def test_units_equal_to_capsules_times_strength_match(capsules: int, ndc: str) -> None:
    strength = {GENERIC_05MG: Decimal("0.5"), GENERIC_1MG: Decimal(1), PROGRAF_5MG: Decimal(5)}[ndc]
    changes = {"line.ndc": ndc, "line.ndc_quantity": capsules, "line.ndc_unit": "UN"}
    assert rule_finding("units-mismatch-ndc", {**changes, "line.units": number(capsules * strength)}) is None
    assert rule_finding("units-mismatch-ndc", {**changes, "line.units": number(capsules * strength + 1)}) is not None


# --- lifetime-cap-exceeded: prior units + this claim's units > cap --------------------------


@given(prior=st.lists(decimals("0.1", "300", 1), min_size=1, max_size=3))
@example(prior=[Decimal("0.1"), Decimal("0.2")])  # 0.1 + 0.2 is 0.30000000000000004 as doubles
@example(prior=[Decimal("140.9"), Decimal("236.7"), Decimal("144.8")])  # + 477.6 is over 1000 as doubles
@LIMIT_SETTINGS
def test_units_summing_exactly_to_the_cap_do_not_exceed_it(prior: list[Decimal]) -> None:
    priors = [
        prior_claim(f"CLM-P{index}", prior_line(f"2024-0{index + 1}-01", units=number(units), ndc=None))
        for index, units in enumerate(prior)
    ]
    rest = LIFETIME_CAP - sum(prior, Decimal(0))
    base = {"payer": CAPPED_PLAN, "prior_claims": priors, "line.ndc_quantity": None}
    assert rule_finding("lifetime-cap-exceeded", {**base, "line.units": number(rest)}) is None
    found = rule_finding("lifetime-cap-exceeded", {**base, "line.units": number(rest + Decimal("0.1"))})
    assert found is not None
    assert Decimal(found.evidence["total_units"]) == LIFETIME_CAP + Decimal("0.1")


# --- integer and plain limits ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fires"),
    [(4, False), (15, False), (3.99, True), (15.01, True), (4.0, False), (14.999, False)],
    ids=["low bound 4", "high bound 15", "3.99", "15.01", "4.0", "14.999"],
)
def test_trough_targets_are_inclusive(value: float, fires: bool) -> None:
    # Kidney, later period (transplant 2024-06-15): 4–15 ng/mL.
    changes = {"labs+": [lab("OBS-TAC-2", TACROLIMUS_LEVEL, value, "2025-11-28")]}
    found = rule_finding("trough-out-of-range", changes)
    assert (found is not None) is fires
    if found is not None:
        assert found.evidence["value"] == str(value)


@pytest.mark.parametrize(("days", "fires"), [(90, False), (91, True)])
def test_days_supply_at_the_limit_is_allowed(days: int, fires: bool) -> None:
    changes = {"line.days_supply": days, "line.units": days * 8, "line.ndc_quantity": days * 8}
    assert (rule_finding("days-supply-exceeds-limit", changes) is not None) is fires


@pytest.mark.parametrize(("prior_dos", "fires"), [("2025-11-11", False), ("2025-11-12", True)])
def test_refill_with_exactly_the_window_remaining_is_not_early(prior_dos: str, fires: bool) -> None:
    # 30 days from 2025-11-11 leaves 10 days on 2025-12-01: the window (10) is not exceeded.
    assert DOS == "2025-12-01"
    changes = {"prior_claims": [prior_claim("CLM-PRIOR", prior_line(prior_dos, days_supply=30))]}
    assert (rule_finding("early-refill", changes) is not None) is fires


# --- how numbers are shown -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1.2, "1.2"),
        (240.0, "240"),
        (1234567.5, "1234567.5"),  # %g would print 1.23457e+06
        (1e-7, "0.0000001"),
        (1e20, "100000000000000000000"),
        (-0.0, "0"),
        (Decimal("1.5") * Decimal("0.8"), "1.2"),
        (Decimal("0.4000"), "0.4"),
        (7, "7"),
    ],
)
def test_numbers_are_shown_as_written(value: float | Decimal, shown: str) -> None:
    assert text(value) == shown


def test_units_within_a_millionth_snap_to_the_whole_number() -> None:
    assert whole_units(29.9999995) == 30
    assert whole_units(30.000001) == Decimal("30.000001")
    assert whole_units(float("nan")) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"rx.dose_mg": 1e308, "rx.doses_per_day": 2**31 - 1, "rx.dosing_weight_kg": 5e-324},
        {"rx.dose_mg": 5e-324, "rx.dosing_weight_kg": 1e308},
        {"line.units": 1e308, "line.ndc_quantity": 1e308, "line.ndc_unit": "GR", "line.days_supply": 2**31 - 1},
        {"line.units": 5e-324, "line.ndc_quantity": 5e-324, "line.ndc_unit": "ME"},
        {"labs.1.value": 5e-324, "labs+": [lab("OBS-CREA-2", CREATININE, 1.7976931348623157e308, "2025-11-28")]},
        {"payer": CAPPED_PLAN, "prior_claims": [prior_claim("CLM-P", prior_line("2024-01-01", units=1e308))]},
    ],
    ids=["huge dose per tiny weight", "tiny dose", "huge grams", "tiny mg", "creatinine extremes", "huge prior units"],
)
def test_extreme_magnitudes_are_decided_exactly_without_error(changes: dict[str, Any]) -> None:
    # Doubles overflow to infinity here (1e308 × 2); exact decimals do not, and no rule may raise.
    findings = findings_for(changes)
    for finding in findings.values():
        assert "inf" not in "".join(finding.evidence.values()).lower()
