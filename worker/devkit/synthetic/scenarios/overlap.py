"""Overlapping therapy and interactions (rules/overlap.py): orders recorded just before the claim, closed after it."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from worker.devkit.synthetic.model import ClaimPlan, Draw, Slot
from worker.devkit.synthetic.reference import INTERACTING_COURSES
from worker.devkit.synthetic.scenario import Scenario, Suppressed, started_days_before

if TYPE_CHECKING:
    from worker.devkit.synthetic.patient import PatientSimulation


def _spaced(patient: PatientSimulation, slot: Slot) -> bool:
    return slot.gap >= 8


def _cyclosporine(patient: PatientSimulation, plan: ClaimPlan, previous_day: date | None, minute: int) -> None:
    recorded = patient.context_day(plan, previous_day)
    if plan.variant < 3:  # eye drops: cyclosporine, but justified (INFO only)
        since = plan.date_of_service - timedelta(days=patient.rng.randint(30, 400))
        patient.new_prescription(
            recorded,
            minute,
            "cyclosporine",
            since,
            None,
            None,
            2,
            formulation="OTHER",
            route="OTHER",
            clinical_justification="Ophthalmic emulsion 0.05% for dry eye; negligible systemic exposure.",
        )
    else:  # the order from before the switch to tacrolimus was never closed
        patient.new_prescription(recorded, minute, "cyclosporine", patient.discharge_date, 100.0, 150.0, 2)


def _close_cyclosporine(patient: PatientSimulation, plan: ClaimPlan, minute: int, cleanup_day: date) -> None:
    if plan.variant >= 3:
        patient.stop_latest("cyclosporine", plan.date_of_service, minute, cleanup_day)


def _extended_release(patient: PatientSimulation, plan: ClaimPlan, previous_day: date | None, minute: int) -> None:
    assert plan.anchor is not None
    justification = "IR-to-Envarsus XR conversion under transplant team supervision." if plan.variant < 2 else None
    ndc = patient.catalog.lookalikes.get(1.0, (None,))[0]
    once_daily = float(max(1, round(plan.regimen.daily_dose_mg * 0.7)))  # ER conversion factor
    patient.new_prescription(
        plan.anchor - timedelta(days=1),
        minute,
        "tacrolimus",
        plan.anchor,
        1.0,
        once_daily,
        1,
        formulation="EXTENDED_RELEASE",
        clinical_justification=justification,
        ndc=ndc,
    )


def _sirolimus(patient: PatientSimulation, plan: ClaimPlan, previous_day: date | None, minute: int) -> None:
    assert plan.anchor is not None
    patient.new_prescription(plan.anchor - timedelta(days=1), minute, "sirolimus", plan.anchor, 1.0, 2.0, 1)


def _interacting_drug(patient: PatientSimulation, plan: ClaimPlan, previous_day: date | None, minute: int) -> None:
    """A course of a strong CYP3A4 inhibitor or inducer, started at the anchor."""
    assert plan.anchor is not None
    ingredient, course = patient.rng.choice(INTERACTING_COURSES)
    ends = plan.anchor + timedelta(days=course)
    patient.new_prescription(
        plan.anchor - timedelta(days=1),
        minute,
        ingredient,
        plan.anchor,
        None,
        None,
        2,
        days_supply=min(course, 30),
        end_date=ends,
    )


def _no_level(
    patient: PatientSimulation, plan: ClaimPlan, recheck: date, suppressed: Suppressed, draws: list[Draw]
) -> None:
    assert plan.anchor is not None
    suppressed.append(("trough", plan.anchor, plan.date_of_service))
    draws.append(Draw(recheck, ("trough",), baseline=False))


def _follow_up_level(
    patient: PatientSimulation, plan: ClaimPlan, recheck: date, suppressed: Suppressed, draws: list[Draw]
) -> None:
    assert plan.anchor is not None
    level_day = plan.anchor + timedelta(days=patient.rng.randint(2, 5))
    suppressed.append(("trough", plan.anchor, plan.date_of_service))  # the follow-up level is the one in between
    draws.append(Draw(min(level_day, plan.date_of_service - timedelta(days=1)), ("trough",), baseline=False))


SCENARIOS = (
    Scenario(
        "cyclosporine-active",
        "overlap",
        "concurrent-cyclosporine",
        weight=0.7,
        applies=_spaced,
        context_before=_cyclosporine,
        context_after=_close_cyclosporine,
    ),
    Scenario(
        "er-tacrolimus-active",
        "overlap",
        "concurrent-extended-release-tacrolimus",
        weight=0.6,
        applies=_spaced,
        anchor=started_days_before(2, 7),
        context_before=_extended_release,
        context_after=lambda patient, plan, minute, cleanup_day: patient.stop_latest(
            "tacrolimus", plan.date_of_service, minute, cleanup_day, formulation="EXTENDED_RELEASE"
        ),
    ),
    Scenario(
        "inhibitor-without-level",
        "overlap",
        "interacting-drug-without-level",
        lab_group="trough",
        applies=lambda patient, slot: slot.lab_history >= 7,
        anchor=started_days_before(3, 8),
        context_before=_interacting_drug,
        reshape_labs=_no_level,
    ),
    Scenario(
        "sirolimus-liver-heart",
        "overlap",
        "sirolimus-with-liver-or-heart",
        weight=3.0,
        applies=lambda patient, slot: slot.gap >= 8 and patient.organ in ("LIVER", "HEART", "HEART_LUNG"),
        anchor=started_days_before(5, 30),
        context_before=_sirolimus,
        context_after=lambda patient, plan, minute, cleanup_day: patient.stop_latest(
            "sirolimus", plan.date_of_service, minute, cleanup_day
        ),
    ),
)

# Not a problem: a strong inhibitor with a follow-up trough in between. Planned for a few clean claims (the
# patient simulation's CLEAN_INTERACTION_SHARE), never drawn as a problem.
CLEAN_INTERACTION = Scenario(
    "inhibitor-with-level",
    "overlap",
    None,
    lab_group="trough",
    anchor=started_days_before(10, 20),
    context_before=_interacting_drug,
    reshape_labs=_follow_up_level,
)
