"""Coding and units (rules/coding.py): NDCs, units, modifiers, duplicates, days' supply, timely filing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from worker.devkit.synthetic.model import Breaking, ClaimPlan
from worker.devkit.synthetic.scenario import Scenario

if TYPE_CHECKING:
    from worker.devkit.synthetic.patient import PatientSimulation


def _units_as_capsules(patient: PatientSimulation, b: Breaking) -> None:
    line = next(line for line in b.j7507 if b.strength[line["ndc"]] != 1.0)
    line["units"] = line["ndc_quantity"]


def _lookalike(patient: PatientSimulation, b: Breaking) -> None:
    lookalikes = patient.catalog.lookalikes
    line = patient.rng.choice([line for line in b.j7507 if b.strength[line["ndc"]] in lookalikes])
    line["ndc"] = patient.rng.choice(lookalikes[b.strength[line["ndc"]]])


def _ndc_typo(patient: PatientSimulation, b: Breaking) -> None:
    b.line["ndc"] = patient.catalog.typo_of(b.line["ndc"])


def _fractional_units(patient: PatientSimulation, b: Breaking) -> None:
    line = next(line for line in b.j7507 if b.strength[line["ndc"]] == 0.5)
    line["ndc_quantity"] += 1
    line["units"] = line["ndc_quantity"] * 0.5


def _duplicate_line(patient: PatientSimulation, b: Breaking) -> None:
    first, lines = b.j7507[0], b.claim["lines"]
    lines.append({**first, "modifiers": list(first["modifiers"]), "line_number": len(lines) + 1})


def _bill_twice(patient: PatientSimulation, plan: ClaimPlan, claim_id: str, claim_time: int) -> None:
    """Billed again under a new claim id: the copy is the problem (the original is clean)."""
    original = patient.emit_claim(plan, claim_id, 1, claim_time, None)
    duplicate_time = claim_time + patient.rng.randint(60, 300)
    patient.emit_claim(plan, patient.ids.next("CLM"), 1, duplicate_time, None, copy_of=original)


def _filed_late(patient: PatientSimulation) -> int:
    """The pharmacy billed it after the payer's limit had passed."""
    return (patient.payer.timely_filing_days + patient.rng.randint(3, 60)) * 1440


SCENARIOS = (
    Scenario(
        "units-as-capsules",
        "coding",
        "units-mismatch-ndc",
        weight=3.0,
        fixable=True,
        applies=lambda patient, slot: bool(slot.strengths - {1.0}),
        breaks=_units_as_capsules,
    ),
    Scenario(
        "lookalike-ndc",
        "coding",
        "wrong-code-for-product",
        fixable=True,
        applies=lambda patient, slot: any(strength in patient.catalog.lookalikes for strength in slot.strengths),
        breaks=_lookalike,
    ),
    Scenario(
        "ndc-missing",
        "coding",
        "ndc-missing",
        fixable=True,
        breaks=lambda patient, b: b.line.update(ndc=None, ndc_quantity=None, ndc_unit=None),
    ),
    Scenario("ndc-typo", "coding", "ndc-not-in-crosswalk", fixable=True, breaks=_ndc_typo),
    Scenario(
        "fractional-units",
        "coding",
        "units-not-whole",
        weight=3.0,
        applies=lambda patient, slot: 0.5 in slot.strengths,
        breaks=_fractional_units,
    ),
    Scenario(
        "modifier-25",
        "coding",
        "modifier-not-allowed",
        fixable=True,
        breaks=lambda patient, b: b.line["modifiers"].append("25"),
    ),
    Scenario("duplicate-line", "coding", "duplicate-line", fixable=True, breaks=_duplicate_line),
    Scenario("duplicate-claim", "coding", "duplicate-line", weight=0.5, bill=_bill_twice),
    Scenario(
        "days-supply-over-limit",
        "coding",
        "days-supply-exceeds-limit",
        weight=4.5,
        applies=lambda patient, slot: patient.payer.days_supply_limit(slot.day) < 60,
        days_supply=lambda patient: patient.rng.choice((60, 90)),
    ),
    Scenario("filed-late", "coding", "timely-filing-expired", weight=0.6, delay=_filed_late),
)
