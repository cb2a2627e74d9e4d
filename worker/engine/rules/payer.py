"""Payer requirements: prior authorization, specialty pharmacy, step therapy, caps, formulary.

All of these are off in the built-in packs except step therapy for commercial and Medicaid; payer
override files switch them on (contract.md).
"""

from __future__ import annotations

from worker.engine.events import J7507
from worker.engine.exact import EXACT, dec, text
from worker.engine.rules.facts import LineFacts
from worker.engine.rules.registry import Hit, rule


@rule(
    "prior-auth-missing",
    family="payer",
    outcomes=("DENY_RISK",),
    settings=("requires_prior_auth",),
    policy_ref="payer",
    expected_carc="CO-197",
    applies=lambda settings: settings.requires_prior_auth,
)
def prior_auth_missing(facts: LineFacts) -> Hit | None:
    """The payer requires prior authorization and none is APPROVED and valid on the date of service.

    Valid means `valid_from` ≤ DOS ≤ `valid_to`, either end open. A PENDING authorization is
    `prior-auth-pending`'s case; a DENIED or expired one, or none, fires here.
    """
    if not facts.settings.requires_prior_auth:
        return None
    auth = facts.claim.prior_authorization
    if auth is not None and auth.status == "PENDING":
        return None
    if (
        auth is not None
        and auth.status == "APPROVED"
        and (auth.valid_from is None or auth.valid_from <= facts.dos)
        and (auth.valid_to is None or facts.dos <= auth.valid_to)
    ):
        return None
    if auth is None:
        message = "The payer requires prior authorization and the claim carries none."
    elif auth.status == "APPROVED":
        message = (
            f"Authorization {auth.number} is not valid on {facts.dos} "
            f"({auth.valid_from or 'open'} to {auth.valid_to or 'open'})."
        )
    else:
        message = f"Authorization {auth.number} is {auth.status}."
    return Hit(
        message=message,
        evidence={
            "authorization_number": auth.number if auth else None,
            "status": auth.status if auth else None,
            "valid_from": auth.valid_from if auth else None,
            "valid_to": auth.valid_to if auth else None,
            "date_of_service": facts.dos,
        },
        fix="Obtain (or renew) the prior authorization covering the date of service and add its number.",
    )


@rule(
    "prior-auth-pending",
    family="payer",
    outcomes=("HOLD",),
    settings=("requires_prior_auth",),
    policy_ref="payer",
    applies=lambda settings: settings.requires_prior_auth,
)
def prior_auth_pending(facts: LineFacts) -> Hit | None:
    """The payer requires prior authorization and it is still PENDING."""
    auth = facts.claim.prior_authorization
    if not facts.settings.requires_prior_auth or auth is None or auth.status != "PENDING":
        return None
    return Hit(
        message=f"Prior authorization {auth.number} is pending.",
        evidence={"authorization_number": auth.number, "status": "PENDING"},
        fix="Hold the claim until the payer decides the authorization.",
    )


@rule(
    "specialty-pharmacy-required",
    family="payer",
    outcomes=("DENY_RISK",),
    settings=("specialty_pharmacy_npis",),
    policy_ref="payer",
    expected_carc="CO-242",
    applies=lambda settings: bool(settings.specialty_pharmacy_npis),
)
def specialty_pharmacy_required(facts: LineFacts) -> Hit | None:
    """The payer mandates specialty pharmacies and the dispensing pharmacy is missing or not one of them."""
    allowed = facts.settings.specialty_pharmacy_npis
    npi = facts.claim.dispensing_pharmacy_npi
    if not allowed or (npi is not None and npi.strip() in allowed):
        return None
    return Hit(
        message=(
            "The claim names no dispensing pharmacy; this payer requires a designated specialty pharmacy."
            if not npi
            else f"Pharmacy NPI {npi} is not one of the payer's designated specialty pharmacies."
        ),
        evidence={"dispensing_pharmacy_npi": npi, "specialty_pharmacy_npis": sorted(allowed)},
        fix="Transfer the prescription to a designated specialty pharmacy, or add the dispensing pharmacy NPI.",
    )


@rule(
    "step-therapy-not-met",
    family="payer",
    outcomes=("DENY_RISK",),
    settings=("step_therapy_generic_first",),
    policy_ref="payer",
    expected_carc="CO-197",
    applies=lambda settings: settings.step_therapy_generic_first,
)
def step_therapy_not_met(facts: LineFacts) -> Hit | None:
    """Brand J7507 product without a generic trial or a dispense-as-written justification.

    Fires when `step_therapy_generic_first`, the NDC is a brand J7507 crosswalk row, no prior line
    used a non-brand J7507 NDC, and the matched prescription is not both `dispense_as_written` and
    justified. Payers take step-therapy exceptions through prior authorization, hence CO-197. NDCs,
    this line's and the prior lines', are looked up in their normalized form (rules.md "NDC form").
    """
    product = facts.product
    if not facts.settings.step_therapy_generic_first or product is None or product.hcpcs != J7507 or not product.brand:
        return None
    # Prior lines held, and the NDCs of prior claims the stream's context has moved past its horizon.
    prior_ndcs = [prior.line.ndc for prior in facts.claim_facts.prior_lines]
    for ndc in (*prior_ndcs, *facts.claim_facts.context.expired.ndcs):
        prior_product = facts.reference.product(ndc)
        if prior_product is not None and prior_product.hcpcs == J7507 and not prior_product.brand:
            return None
    rx = facts.matched_prescription
    if rx is not None and rx.dispense_as_written and rx.justified:
        return None
    return Hit(
        message=(
            f"Brand product {product.product} (NDC {product.ndc11}) with no prior generic fill and no "
            "dispense-as-written justification."
        ),
        evidence={
            "ndc": product.ndc11,
            "brand": True,
            "dispense_as_written": rx.dispense_as_written if rx else None,
            "clinical_justification_on_file": rx.justified if rx else None,
        },
        fix="Dispense generic tacrolimus IR, or get a DAW order with the clinical reason and a step-therapy exception.",
    )


@rule(
    "lifetime-cap-exceeded",
    family="payer",
    outcomes=("DENY_RISK",),
    settings=("lifetime_units_cap",),
    policy_ref="payer",
    expected_carc="CO-119",
    applies=lambda settings: settings.lifetime_units_cap is not None,
)
def lifetime_cap_exceeded(facts: LineFacts) -> Hit | None:
    """Units of all prior lines plus this claim's J7507 lines up to this one exceed `lifetime_units_cap`.

    Exact: the units (each counted as the whole number within 1e-6 of it) are summed in decimal as
    written, so a total exactly at the cap is not a finding and any amount over it is.
    """
    cap = facts.settings.lifetime_units_cap
    if cap is None:
        return None
    # Both summed once per claim (facts), exactly, so the rule stays linear in the claim's lines.
    prior_units = facts.claim_facts.prior_units
    claim_units = facts.claim_facts.units_through_line[facts.line.line_number]
    total = EXACT.add(prior_units, claim_units)
    if total <= dec(cap):
        return None
    return Hit(
        message=f"Lifetime units would reach {text(total)}, over the plan's cap of {text(cap)}.",
        evidence={
            "prior_units": prior_units,
            "claim_units_through_line": claim_units,
            "total_units": total,
            "lifetime_units_cap": cap,
        },
        fix="Ask the payer for a cap exception, or bill secondary coverage.",
    )


@rule(
    "non-preferred-product",
    family="payer",
    outcomes=("HOLD",),
    settings=("non_preferred_ndcs",),
    policy_ref="payer",
    applies=lambda settings: bool(settings.non_preferred_ndcs),
)
def non_preferred_product(facts: LineFacts) -> Hit | None:
    """The NDC is on the payer's `non_preferred_ndcs` list.

    Both sides are in the NDC form of rules.md, so a dashed 10-digit NDC on the claim or in the
    list (`0469-0617-73`) matches its 11-digit form (`00469061773`).
    """
    if facts.ndc is None or facts.ndc not in facts.settings.non_preferred_ndcs:
        return None
    return Hit(
        message=f"NDC {facts.ndc} is non-preferred on this payer's formulary.",
        evidence={"ndc": facts.ndc},
        fix="Dispense a preferred product, or request a formulary exception.",
    )
