"""Order and quantity: is there a valid order, and does the quantity match it?"""

from __future__ import annotations

from decimal import Context, Decimal
from functools import lru_cache

from worker.engine.exact import EXACT, dec, finite, text
from worker.engine.rules.facts import LineFacts, PriorLine, is_tacrolimus_ir_oral
from worker.engine.rules.registry import Hit, rule

# The mg/kg/day quotient is shown to 10 significant digits (display only: the rule never divides).
# Significant digits, not decimal places: quantizing 1e308 mg over 5e-324 kg would overflow.
_PER_KG_DISPLAY = Context(prec=10)


@rule(
    "no-active-prescription",
    family="order",
    outcomes=("DENY_RISK",),
    policy_ref="A52474",
    expected_carc="CO-16",
)
def no_active_prescription(facts: LineFacts) -> Hit | None:
    """No prescription supports the line on its date of service.

    Fires when the line names a prescription that is unknown or not active on DOS (ACTIVE or
    COMPLETED, started on or before DOS, not ended before it), or names none and no tacrolimus
    IMMEDIATE_RELEASE ORAL prescription is active on DOS. A named, active prescription of the wrong
    product is `wrong-code-for-product`'s case, not this one.
    """
    named_id = facts.line.prescription_id
    if named_id:
        rx = facts.named_prescription
        if rx is None:
            return Hit(
                message=f"The line names prescription {named_id}, which is not on file.",
                evidence={"prescription_id": named_id, "date_of_service": facts.dos},
                fix="Link the line to the prescription it was filled from, or obtain the order.",
            )
        if rx.active_on(facts.dos):
            return None
        return Hit(
            message=(
                f"Prescription {named_id} is not active on {facts.dos} "
                f"(status {rx.status}, {rx.start_date} to {rx.end_date or 'open'})."
            ),
            evidence={
                "prescription_id": named_id,
                "status": rx.status,
                "start_date": rx.start_date,
                "end_date": rx.end_date,
                "date_of_service": facts.dos,
            },
            fix="Obtain a current order (new or renewed prescription) covering the date of service.",
        )
    if any(is_tacrolimus_ir_oral(rx) for rx in facts.active_prescriptions):
        return None
    return Hit(
        message=f"No tacrolimus immediate-release oral prescription is active on {facts.dos}.",
        evidence={"prescription_id": None, "date_of_service": facts.dos},
        fix="Obtain the order and link the line to it (prescription_id).",
    )


@rule("prescription-strength-mismatch", family="order", outcomes=("HOLD",), policy_ref="A52474")
def prescription_strength_mismatch(facts: LineFacts) -> Hit | None:
    """The NDC's strength differs from the matched prescription's `strength_mg`.

    Not checked when either strength is unknown. Strengths compare exactly (they are label values):
    two doubles are equal exactly when the decimals they were written as are, so no conversion is
    needed.
    """
    rx = facts.matched_prescription
    strength = facts.ndc_strength
    if rx is None or rx.strength_mg is None or strength is None or strength == rx.strength_mg:
        return None
    return Hit(
        message=f"The NDC is a {text(strength)} mg product but the prescription is for {text(rx.strength_mg)} mg.",
        evidence={
            "ndc": facts.ndc,
            "ndc_strength_mg": strength,
            "prescription_id": rx.prescription_id,
            "prescription_strength_mg": rx.strength_mg,
        },
        fix="Confirm the strength dispensed; correct the NDC or get the prescription updated.",
    )


def _quantity_evidence(facts: LineFacts, expected: Decimal) -> dict[str, object]:
    rx = facts.matched_prescription
    assert rx is not None  # expected_units is only known with a matched prescription
    return {
        "units": facts.line.units,
        "expected_units": expected,
        "dose_mg": rx.dose_mg,
        "doses_per_day": rx.doses_per_day,
        "days_supply": facts.days_supply,
        "quantity_tolerance": facts.settings.quantity_tolerance,
        "prescription_id": rx.prescription_id,
    }


@rule(
    "quantity-exceeds-prescription",
    family="order",
    outcomes=("DENY_RISK",),
    settings=("quantity_tolerance",),
    policy_ref="A52474",
    expected_carc="CO-151",
)
def quantity_exceeds_prescription(facts: LineFacts) -> Hit | None:
    """Units are above what the prescription supports, beyond the tolerance.

    Expected = matched dose_mg × doses_per_day × days supply (the line's days_supply, else the
    prescription's); fires when units > expected × (1 + quantity_tolerance). No check when any of
    these is missing. Exact: the product is computed in decimal from the values as written and
    units count as the whole number within 1e-6 of them, so units exactly at the limit (198 for
    1.2 mg × 3 × 50 days at 10%) are not a finding and the next unit above it is.
    """
    expected, bounds, units = facts.expected_units, facts.quantity_bounds, facts.units
    if expected is None or bounds is None or units is None or not units > bounds[1]:
        return None
    return Hit(
        message=f"Billed {text(units)} mg but the prescription supports {text(expected)} mg for the supply.",
        evidence=_quantity_evidence(facts, expected),
        fix="Bill the prescribed quantity, or obtain an order for the higher dose.",
    )


@rule(
    "quantity-below-prescription",
    family="order",
    outcomes=("HOLD",),
    settings=("quantity_tolerance",),
    policy_ref="A52474",
)
def quantity_below_prescription(facts: LineFacts) -> Hit | None:
    """Units are below what the prescription supports, beyond the tolerance.

    Fires when units < expected × (1 − quantity_tolerance) (expected as for
    quantity-exceeds-prescription, exact in decimal: units exactly at the limit are not a finding).
    Often units billed as capsules instead of milligrams, or a partial fill that needs its days
    supply corrected.
    """
    expected, bounds, units = facts.expected_units, facts.quantity_bounds, facts.units
    if expected is None or bounds is None or units is None or not units < bounds[0]:
        return None
    return Hit(
        message=f"Billed {text(units)} mg but the prescription calls for {text(expected)} mg for the supply.",
        evidence=_quantity_evidence(facts, expected),
        fix="Check units are milligrams (not capsules) and the days supply matches the fill.",
    )


@rule(
    "early-refill",
    family="order",
    outcomes=("HOLD",),
    settings=("refill_window_days",),
    policy_ref="L33824",
)
def early_refill(facts: LineFacts) -> Hit | None:
    """Delivered while an earlier supply still had more than `refill_window_days` days to run.

    For each prior line with a days_supply and a DOS before this DOS: days remaining = prior DOS +
    prior days_supply − DOS; fires when that is > refill_window_days. Same-day prior lines are
    `duplicate-line`'s case. Days are integers, so the comparison is exact (exactly
    `refill_window_days` remaining is not a finding). The message and the `prior_*` evidence
    describe the prior line with the most days remaining; `prior_claim_ids` lists every offending
    one.
    """
    early: list[tuple[int, PriorLine]] = []
    dos, window = facts.dos, facts.settings.refill_window_days
    # The fields directly, and days as ordinals (no timedelta per prior line): this runs for every line.
    dos_day = dos.toordinal()
    for prior in facts.claim_facts.prior_lines:
        supply, day = prior.days_supply, prior.date_of_service
        if supply is None or day >= dos:
            continue
        remaining = day.toordinal() - dos_day + supply
        if remaining > window:
            early.append((remaining, prior))
    if not early:
        return None
    early.sort(key=lambda item: -item[0])
    remaining, prior = early[0]
    return Hit(
        message=(
            f"Refill on {facts.dos} is {remaining} days before the supply from claim {prior.claim_id} "
            f"({prior.line.date_of_service}, {prior.line.days_supply} days) runs out; the window is "
            f"{facts.settings.refill_window_days} days."
            + (f" {len(early) - 1} other earlier supply(ies) also still run." if len(early) > 1 else "")
        ),
        evidence={
            "prior_claim_id": prior.claim_id,
            "prior_date_of_service": prior.line.date_of_service,
            "prior_days_supply": prior.line.days_supply,
            "days_remaining": remaining,
            "prior_claim_ids": [item.claim_id for _, item in early],
            "refill_window_days": facts.settings.refill_window_days,
        },
        fix="Deliver no sooner than the refill window allows, or document why the earlier supply was lost or changed.",
    )


@lru_cache(maxsize=4096)
def _dose_above_limit(
    dose_mg: float, doses_per_day: int, weight_kg: float, limit: float
) -> tuple[Decimal, Decimal] | None:
    """(daily dose, mg/kg/day to 10 digits) when dose × doses > limit × weight, exactly; else None."""
    daily = EXACT.multiply(dec(dose_mg), doses_per_day)
    weight = dec(weight_kg)
    if not daily > EXACT.multiply(dec(limit), weight):
        return None
    return daily, _PER_KG_DISPLAY.divide(daily, weight)


@rule(
    "dose-above-weight-norm",
    family="order",
    outcomes=("HOLD",),
    settings=("max_mg_per_kg_day",),
    policy_ref="label",
)
def dose_above_weight_norm(facts: LineFacts) -> Hit | None:
    """The matched daily dose per kg of dosing weight is above `max_mg_per_kg_day`.

    Daily dose = dose_mg × doses_per_day; not checked when any of dose, frequency or a positive
    dosing weight is missing. Exact: the comparison is dose × doses > max × weight on the decimals
    as written (no division), so 5.4 mg × 3 ÷ 40.5 kg, exactly 0.4, is not above 0.4 mg/kg/day.
    Evidence `mg_per_kg_day` is the quotient to 10 significant digits. Label starting doses are 0.075–0.2
    mg/kg/day for adults (up to 0.3 in children), so a higher dose is most often a data error worth
    a clinical look.
    """
    rx = facts.matched_prescription
    if (
        rx is None
        or not finite(rx.dose_mg)
        or rx.doses_per_day is None
        or not finite(rx.dosing_weight_kg)
        or not rx.dosing_weight_kg
        or rx.dosing_weight_kg <= 0
    ):
        return None
    assert rx.dose_mg is not None and rx.dosing_weight_kg is not None  # finite() checked them
    limit = facts.settings.max_mg_per_kg_day
    # A prescription's numbers recur on every fill: compared once per distinct set (a zero dose is
    # not cached, as `dec` keeps the sign of zero).
    compare = _dose_above_limit if rx.dose_mg else _dose_above_limit.__wrapped__
    above = compare(rx.dose_mg, rx.doses_per_day, rx.dosing_weight_kg, limit)
    if above is None:
        return None
    daily, per_kg = above
    return Hit(
        message=(f"The prescribed {text(daily)} mg/day is {text(per_kg)} mg/kg/day, above {text(limit)} mg/kg/day."),
        evidence={
            "prescription_id": rx.prescription_id,
            "daily_dose_mg": daily,
            "dosing_weight_kg": rx.dosing_weight_kg,
            "mg_per_kg_day": per_kg,
            "max_mg_per_kg_day": limit,
        },
        fix="Have a pharmacist confirm the dose and dosing weight with the prescriber.",
    )
