"""Order and quantity (rules/order.py): the prescription behind the claim, its strength, quantity and timing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from typing import TYPE_CHECKING

from worker.devkit.synthetic.model import Breaking, ClaimPlan, Regimen, Slot
from worker.devkit.synthetic.scenario import Scenario

if TYPE_CHECKING:
    from worker.devkit.synthetic.patient import PatientSimulation


def _lapse_date(patient: PatientSimulation, plan: ClaimPlan, after_previous: date) -> date:
    """The end of the orders in use, recorded after they were."""
    ended = plan.date_of_service - timedelta(days=patient.rng.randint(2, 10))
    return max(after_previous, plan.regimen.announced + timedelta(days=1), ended)


def _lapse(patient: PatientSimulation, plan: ClaimPlan, previous_day: date | None, minute: int) -> None:
    assert plan.anchor is not None
    for component in plan.regimen.components:
        ended = plan.anchor.isoformat()
        patient.publish(component.prescription_id, plan.anchor, minute, status="COMPLETED", end_date=ended)


def _renew(patient: PatientSimulation, plan: ClaimPlan, regimen: Regimen) -> Regimen:
    """The lapsed orders are renewed only after the claim."""
    renewed = plan.date_of_service + timedelta(days=patient.rng.randint(2, 4))
    return replace(
        regimen,
        components=tuple(replace(c, prescription_id=patient.ids.next("RX")) for c in regimen.components),
        start_date=renewed,
        announced=renewed,
    )


def _has_other_strength(patient: PatientSimulation, slot: Slot) -> bool:
    components = slot.regimen.components
    others = patient.other_strengths(components[0].strength_mg)
    return len(components) == 1 and any(other in patient.products for other in others)


def _other_strength(patient: PatientSimulation, b: Breaking) -> None:
    line = b.line
    other = next(s for s in patient.other_strengths(b.strength[line["ndc"]]) if s in patient.products)
    line.update(ndc=patient.products[other], ndc_quantity=line["units"] / other)


def _scaled_quantity(factor: float) -> Callable[[PatientSimulation, Breaking], None]:
    """A quantity off the prescription's by `factor`, units kept whole and consistent with it."""

    def scale(patient: PatientSimulation, b: Breaking) -> None:
        line = b.line
        step = 2 if b.strength[line["ndc"]] == 0.5 else 1  # keep units whole
        quantity = round(line["ndc_quantity"] * factor / step) * step
        line.update(ndc_quantity=float(quantity), units=quantity * b.strength[line["ndc"]])
        line["charge_amount"] = f"{line['units'] * 1.9:.2f}"

    return scale


def _refill_early(patient: PatientSimulation, previous: ClaimPlan | None) -> date:
    assert previous is not None
    window = patient.payer.refill_window_days
    left = patient.rng.randint(window + 2, window + 8)
    return previous.date_of_service + timedelta(days=previous.days_supply - left)


def _weight_heavy(patient: PatientSimulation, slot: Slot) -> bool:
    # the rule divides each prescription's own daily dose by the weight
    heaviest = max(component.dose_mg for component in slot.regimen.components) * 2
    return not slot.regimen_changed and heaviest / (slot.regimen.weight_kg / 10) > 0.45


def _slip_weight(patient: PatientSimulation, plan: ClaimPlan, previous_day: date | None, minute: int) -> None:
    """82 kg keyed as 8.2 kg on a re-signed order."""
    slipped = round(plan.regimen.weight_kg / 10, 1)
    recorded = patient.context_day(plan, previous_day)
    for component in plan.regimen.components:
        patient.publish(component.prescription_id, recorded, minute, dosing_weight_kg=slipped)


def _restore_weight(patient: PatientSimulation, plan: ClaimPlan, minute: int, cleanup_day: date) -> None:
    for component in plan.regimen.components:
        weight = plan.regimen.weight_kg
        patient.publish(component.prescription_id, plan.date_of_service, minute, dosing_weight_kg=weight)


SCENARIOS = (
    Scenario(
        "lapsed-prescription",
        "order",
        "no-active-prescription",
        applies=lambda patient, slot: not slot.regimen_changed,  # it re-publishes the orders in use
        anchor=_lapse_date,
        context_before=_lapse,
        after_plan=_renew,
    ),
    Scenario(
        "strength-mismatch",
        "order",
        "prescription-strength-mismatch",
        applies=_has_other_strength,
        breaks=_other_strength,
    ),
    Scenario("quantity-over", "order", "quantity-exceeds-prescription", breaks=_scaled_quantity(1.5)),
    Scenario("quantity-under", "order", "quantity-below-prescription", breaks=_scaled_quantity(0.5)),
    Scenario(
        "early-refill",
        "order",
        "early-refill",
        applies=lambda patient, slot: slot.previous is not None and slot.previous.days_supply >= 30,
        reschedule=_refill_early,
    ),
    Scenario(
        "weight-slip",
        "order",
        "dose-above-weight-norm",
        weight=1.5,
        applies=_weight_heavy,
        context_before=_slip_weight,
        context_after=_restore_weight,
    ),
)
