"""Transplant and coverage (rules/coverage.py): transplant dates, diagnoses, Medicare's modifiers and benefits."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from worker.devkit.synthetic.model import Breaking, Record, Slot
from worker.devkit.synthetic.reference import UNCOVERED_DIAGNOSES
from worker.devkit.synthetic.scenario import Scenario

if TYPE_CHECKING:
    from worker.devkit.synthetic.patient import PatientSimulation


def _medicare(patient: PatientSimulation, slot: Slot) -> bool:
    return patient.payer.medicare


def _kx_unsupported(patient: PatientSimulation, claim: Record) -> frozenset[str]:
    """A broken transplant date with KX kept: the modifier claims documentation the claim lacks."""
    kx_kept = any("KX" in line["modifiers"] for line in claim["lines"] if line["hcpcs_code"] == "J7507")
    return frozenset({"kx-modifier-unsupported"}) if kx_kept and patient.payer.medicare else frozenset()


def _drop_transplant_date(patient: PatientSimulation, b: Breaking) -> None:
    if b.plan.variant < 2:
        b.claim["transplant"] = None
    else:
        b.claim["transplant"]["transplant_date"] = None
    if b.plan.variant == 9:  # a few billers drop KX with the date, most keep it
        for each in b.j7507:
            each["modifiers"] = [modifier for modifier in each["modifiers"] if modifier != "KX"]


def _transplant_date_typo(patient: PatientSimulation, b: Breaking) -> None:
    """The refill date keyed as the transplant date."""
    b.claim["transplant"]["transplant_date"] = b.plan.date_of_service.isoformat()


def _discharge_date_typo(patient: PatientSimulation, b: Breaking) -> None:
    """A readmission's discharge date instead of the transplant stay's."""
    readmission = b.plan.date_of_service + timedelta(days=patient.rng.randint(1, 20))
    b.claim["transplant"]["discharge_date"] = readmission.isoformat()


def _uncovered_diagnosis(patient: PatientSimulation, b: Breaking) -> None:
    b.claim["diagnosis_codes"] = [patient.rng.choice(UNCOVERED_DIAGNOSES)]


def _drop_kx(patient: PatientSimulation, b: Breaking) -> None:
    for each in b.j7507:
        each["modifiers"].remove("KX")


def _esrd_lapsed(patient: PatientSimulation, slot: Slot) -> bool:
    """The ESRD-only benefit has ended and Part B-ID is in force: the claim must say so."""
    return (
        patient.payer.medicare
        and patient.esrd_end is not None
        and slot.day > patient.esrd_end
        and patient.part_b_id_from is not None
        and patient.part_b_id_from <= slot.day
    )


def _ga_without_abn(patient: PatientSimulation, b: Breaking) -> None:
    b.line["modifiers"] += ["GA", "GZ"] if b.plan.variant < 3 else ["GA"]
    b.claim["abn_on_file"] = b.plan.variant < 3


SCENARIOS = (
    Scenario(
        "transplant-date-missing",
        "coverage",
        "transplant-not-documented",
        fixable=True,
        breaks=_drop_transplant_date,
        also_planted=_kx_unsupported,
    ),
    Scenario(
        "transplant-date-typo",
        "coverage",
        "transplant-after-service",
        fixable=True,
        breaks=_transplant_date_typo,
        also_planted=_kx_unsupported,
    ),
    Scenario("discharge-date-typo", "coverage", "service-before-discharge", fixable=True, breaks=_discharge_date_typo),
    # a fresh transplant's first fill, delivered before discharge: chosen for that claim only, never drawn
    Scenario(
        "early-delivery",
        "coverage",
        "service-before-discharge",
        applies=lambda patient, slot: False,
        reschedule=lambda patient, previous: patient.discharge_date - timedelta(days=patient.rng.randint(1, 2)),
    ),
    Scenario("uncovered-diagnosis", "coverage", "diagnosis-not-covered", fixable=True, breaks=_uncovered_diagnosis),
    Scenario(
        "kx-missing", "coverage", "kx-modifier-missing", weight=2.5, fixable=True, applies=_medicare, breaks=_drop_kx
    ),
    Scenario(
        "part-a-missing",
        "coverage",
        "part-a-not-at-transplant",
        weight=2.5,
        fixable=True,
        applies=_medicare,
        breaks=lambda patient, b: b.claim["coverage"].update(part_a_at_transplant=False),
    ),
    Scenario(
        "part-b-inactive",
        "coverage",
        "part-b-not-active",
        weight=2.5,
        fixable=True,
        applies=_medicare,
        breaks=lambda patient, b: b.claim["coverage"].update(part_b_active=False, part_b_id_enrolled=False),
    ),
    Scenario(
        "esrd-flag-missing",
        "coverage",
        "esrd-coverage-ended",
        weight=4.0,
        fixable=True,
        applies=_esrd_lapsed,
        breaks=lambda patient, b: b.claim["coverage"].update(part_b_id_enrolled=False),
    ),
    Scenario(
        "ga-without-abn",
        "coverage",
        "abn-modifier-conflict",
        weight=3.0,
        fixable=True,
        applies=_medicare,
        breaks=_ga_without_abn,
    ),
)
