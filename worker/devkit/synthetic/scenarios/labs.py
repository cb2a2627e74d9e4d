"""Laboratory context (rules/labs.py): a lab series gets a gap or an out-of-range value, rechecked after the claim."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from worker.devkit.synthetic.model import ClaimPlan, Draw, Slot
from worker.devkit.synthetic.scenario import Scenario, Suppressed, started_days_before

if TYPE_CHECKING:
    from worker.devkit.synthetic.patient import PatientSimulation


def _before_gap(patient: PatientSimulation, plan: ClaimPlan, after_previous: date) -> date:
    """The last draw before a gap of just over 90 days."""
    return plan.date_of_service - timedelta(days=91 + patient.rng.randint(0, 4))


def _gap(patient: PatientSimulation, plan: ClaimPlan, recheck: date, suppressed: Suppressed, draws: list[Draw]) -> None:
    assert plan.anchor is not None and plan.scenario is not None
    group = plan.scenario.lab_group or ""
    suppressed.append((group, plan.anchor + timedelta(days=1), plan.date_of_service))
    draws += [Draw(plan.anchor, (group,), baseline=False), Draw(recheck, (group,), baseline=False)]


def _trough_outside(
    patient: PatientSimulation, plan: ClaimPlan, recheck: date, suppressed: Suppressed, draws: list[Draw]
) -> None:
    anchor = plan.anchor
    assert anchor is not None
    suppressed.append(("trough", anchor, plan.date_of_service))
    draws += [
        Draw(anchor, ("trough",), False, trough=patient.trough_outside(anchor)),
        Draw(recheck, ("trough",), False),
    ]


def _creatinine_up(
    patient: PatientSimulation, plan: ClaimPlan, recheck: date, suppressed: Suppressed, draws: list[Draw]
) -> None:
    anchor = plan.anchor
    assert anchor is not None
    suppressed.append(("renal", anchor, plan.date_of_service))
    factor = patient.rng.uniform(1.75, 2.3)
    draws += [Draw(anchor, ("renal",), False, creatinine_factor=factor), Draw(recheck, ("renal",), False)]


def _long_history(patient: PatientSimulation, slot: Slot) -> bool:
    return slot.lab_history >= 97


def _some_history(patient: PatientSimulation, slot: Slot) -> bool:
    return slot.lab_history >= 7


SCENARIOS = (
    Scenario(
        "trough-gap",
        "labs",
        "trough-missing",
        weight=2.0,
        lab_group="trough",
        applies=_long_history,
        anchor=_before_gap,
        reshape_labs=_gap,
    ),
    Scenario(
        "trough-out-of-range",
        "labs",
        "trough-out-of-range",
        lab_group="trough",
        applies=_some_history,
        anchor=started_days_before(2, 5),
        reshape_labs=_trough_outside,
    ),
    Scenario(
        "renal-gap",
        "labs",
        "renal-function-missing",
        weight=2.0,
        lab_group="renal",
        applies=_long_history,
        anchor=_before_gap,
        reshape_labs=_gap,
    ),
    Scenario(
        "renal-decline",
        "labs",
        "renal-function-declining",
        weight=0.7,
        lab_group="renal",
        applies=_some_history,
        anchor=started_days_before(2, 5),
        reshape_labs=_creatinine_up,
    ),
    Scenario(
        "hepatic-gap",
        "labs",
        "hepatic-function-missing",
        weight=6.0,
        lab_group="hepatic",
        applies=lambda patient, slot: slot.lab_history >= 97 and patient.organ == "LIVER",
        anchor=_before_gap,
        reshape_labs=_gap,
    ),
)
