"""Coding and units: is the line billed with the right code, NDC, units, modifiers and supply?"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from worker.engine.events import J7507
from worker.engine.exact import EXACT, dec, finite, text
from worker.engine.reference import ndc_candidates
from worker.engine.rules.facts import TACROLIMUS, LineFacts
from worker.engine.rules.registry import EVIDENCE_LIST_CAP, Hit, capped, capped_text, rule

# The HCPCS code each non-IR tacrolimus product bills under (J7507.md "The code").
_TACROLIMUS_CODES = {
    ("EXTENDED_RELEASE", "ORAL"): "J7503 (Envarsus XR) or J7508 (Astagraf XL)",
    ("INJECTION", "INTRAVENOUS"): "J7525",
    ("SUSPENSION", "ORAL"): "J7521",
}

_GRAMS = Decimal(1000)


@rule(
    "wrong-code-for-product",
    family="coding",
    outcomes=("DENY_RISK",),
    policy_ref="A52474",
    expected_carc="CO-16",
)
def wrong_code_for_product(facts: LineFacts) -> Hit | None:
    """The NDC or the matched prescription is a tacrolimus product billed under another code.

    Fires when the line's NDC is in the crosswalk under a HCPCS code other than J7507 (evidence
    `expected_code`), or when the matched prescription is tacrolimus but not IMMEDIATE_RELEASE
    ORAL (Envarsus XR J7503, Astagraf XL J7508, injection J7525). The NDC check comes first: it is
    the stronger evidence, being what was dispensed. The NDC is looked up in the form of rules.md
    (a dashed 10-digit NDC such as `0469-0677-73` finds its 11-digit row); evidence shows that form.
    """
    product = facts.product
    if product is not None and product.hcpcs != J7507:
        return Hit(
            message=f"NDC {product.ndc11} is {product.product or 'a product'} billed under {product.hcpcs}, not J7507.",
            evidence={
                "ndc": product.ndc11,
                "billed_code": J7507,
                "expected_code": product.hcpcs,
                "product": product.product,
            },
            fix=f"Bill this NDC under {product.hcpcs} with its own units, or correct the NDC if J7507 was dispensed.",
        )
    rx = facts.matched_prescription
    if (
        rx is not None
        and rx.ingredient_key == TACROLIMUS
        and (rx.formulation != "IMMEDIATE_RELEASE" or rx.route != "ORAL")
    ):
        expected = _TACROLIMUS_CODES.get((rx.formulation, rx.route), "a code other than J7507")
        return Hit(
            message=(
                f"The prescription is tacrolimus {rx.formulation.lower().replace('_', ' ')} "
                f"({rx.route.lower()}), which is not billed as J7507."
            ),
            evidence={
                "prescription_id": rx.prescription_id,
                "formulation": rx.formulation,
                "route": rx.route,
                "billed_code": J7507,
                "expected_code": expected,
            },
            fix=f"Bill the dispensed product under {expected}, or link the line to the immediate-release prescription.",
        )
    return None


@rule(
    "ndc-missing",
    family="coding",
    outcomes=("DENY_RISK", "HOLD"),
    settings=("requires_ndc",),
    policy_ref="payer",
    expected_carc="CO-16",
)
def ndc_missing(facts: LineFacts) -> Hit | None:
    """The line has no NDC: DENY_RISK where the payer requires one (`requires_ndc`), else HOLD.

    A blank NDC (empty or spaces) is no NDC. Without an NDC none of the product checks can run, so
    even payers that do not require it get a HOLD for a person to add it.
    """
    if facts.ndc is not None:
        return None
    return Hit(
        message="The line has no NDC."
        + (" This payer requires one on drug lines." if facts.settings.requires_ndc else ""),
        evidence={"ndc": None, "requires_ndc": facts.settings.requires_ndc},
        fix="Add the dispensed 11-digit NDC with its quantity and unit (837P loop 2410 LIN/CTP).",
        outcome="DENY_RISK" if facts.settings.requires_ndc else "HOLD",
    )


@rule("ndc-not-in-crosswalk", family="coding", outcomes=("HOLD",), policy_ref="A52474")
def ndc_not_in_crosswalk(facts: LineFacts) -> Hit | None:
    """The NDC is not in the crosswalk at all.

    The NDC is compared in the form of rules.md: spaces and dashes removed, a dashed 10-digit NDC
    (4-4-2, 5-3-2, 5-4-1) padded to 11 digits on its short segment. An undashed 10-digit NDC is
    ambiguous: it stays unmatched, and the message and evidence (`ambiguous`, `candidates`) give
    the three 11-digit forms it could be. Any other form (letters, wrong length) is not found. A
    person confirms the product and either corrects the NDC or adds it to the crosswalk.
    """
    if facts.ndc is None or facts.product is not None:
        return None
    candidates = ndc_candidates(facts.ndc)
    well_formed = len(facts.ndc) == 11 and facts.ndc.isdigit()
    if candidates:
        detail = (
            "; an undashed 10-digit NDC is ambiguous: it could be "
            + ", ".join(candidates)
            + " (4-4-2, 5-3-2 or 5-4-1 padded to 5-4-2)."
        )
    else:
        detail = "." if well_formed else "; it is not an 11-digit 5-4-2 NDC."
    evidence: dict[str, object] = {"ndc": facts.ndc, "crosswalk": facts.reference.crosswalk_source}
    if candidates:
        evidence |= {"ambiguous": True, "candidates": list(candidates)}
    return Hit(
        message=f"NDC {facts.ndc} is not in the NDC crosswalk{detail}",
        evidence=evidence,
        fix=(
            "Bill the 11-digit NDC printed on the package (with its dashes, or as 5-4-2)."
            if candidates
            else "Check the NDC on the dispensed package; if it is a valid tacrolimus IR NDC, add it to the crosswalk."
        ),
    )


@rule("units-not-whole", family="coding", outcomes=("DENY_RISK",), policy_ref="A52474", expected_carc="CO-16")
def units_not_whole(facts: LineFacts) -> Hit | None:
    """`units` is not a positive whole number (1 unit = 1 mg; fractional or zero units are rejected).

    Exact: units within 1e-6 of a whole number (as the decimal written) count as that whole number,
    so 30.0000001 is 30 and 0.0000001 is 0 (not positive); anything else fractional fires.
    """
    if facts.units_whole:  # `positive_whole(facts.units)`, computed once per billed value
        return None
    written = facts.line.units
    return Hit(
        message=f"Billed units {text(written)} are not a positive whole number of milligrams.",
        evidence={"units": written},
        fix="Bill whole milligrams: units = total mg dispensed (e.g. 60 × 0.5 mg = 30 units).",
    )


def _ndc_units(ndc_quantity: float, unit: str | None, strength_mg: float | None) -> Decimal:
    """The units an NDC quantity implies, exactly: × the strength for UN or no unit (`strength_mg`
    given), as is for ME (milligrams), × 1000 for GR.

    A patient's fills repeat their quantity and product, so the product is kept per set; not with
    a zero factor, as `dec` keeps the sign of zero (0.0 and -0.0 are one key)."""
    if ndc_quantity and strength_mg != 0:
        return _kept_ndc_units(ndc_quantity, unit, strength_mg)
    return _exact_ndc_units(ndc_quantity, unit, strength_mg)


def _exact_ndc_units(ndc_quantity: float, unit: str | None, strength_mg: float | None) -> Decimal:
    quantity = dec(ndc_quantity)
    if strength_mg is not None:
        return EXACT.multiply(quantity, dec(strength_mg))
    return EXACT.multiply(quantity, _GRAMS) if unit == "GR" else quantity


_kept_ndc_units = lru_cache(maxsize=4096)(_exact_ndc_units)


@rule(
    "units-mismatch-ndc",
    family="coding",
    outcomes=("DENY_RISK",),
    policy_ref="A52474",
    expected_carc="CO-16",
)
def units_mismatch_ndc(facts: LineFacts) -> Hit | None:
    """Billed units differ from what the NDC quantity implies.

    Expected units: `ndc_quantity` × NDC strength for unit UN or no unit (only when the NDC is a
    J7507 crosswalk row; otherwise the strength is unknown or the code is wrong, which other rules
    report), `ndc_quantity` for ME (milligrams), `ndc_quantity` × 1000 for GR; ML is not checked.
    Exact: expected is the decimal product of the values as written (60 × 0.5 mg is exactly 30),
    and units (counted as the whole number within 1e-6 of them) must equal it exactly.
    """
    line = facts.line
    units = facts.units
    ndc_quantity = line.ndc_quantity
    if ndc_quantity is None or units is None or not finite(ndc_quantity):
        return None
    unit = line.ndc_unit
    if unit in (None, "UN"):
        if facts.product is None or facts.product.hcpcs != J7507:
            return None
        strength = facts.product.strength_mg
    elif unit == "ME" or unit == "GR":
        strength = None
    else:
        return None
    expected = _ndc_units(ndc_quantity, unit, strength)
    if units == expected:
        return None
    quantity = dec(ndc_quantity)
    # Words only for a finding: formatting numbers costs more than the check itself.
    if unit in (None, "UN"):
        assert facts.product is not None
        basis = f"{text(quantity)} × {text(facts.product.strength_mg)} mg"
    else:
        basis = f"{text(quantity)} {'mg' if unit == 'ME' else 'g'}"
    capsules = unit in (None, "UN") and units == quantity
    return Hit(
        message=(
            f"Billed {text(units)} units but the NDC quantity ({basis}) is {text(expected)} mg"
            + (": the units look like a capsule count." if capsules else ".")
        ),
        evidence={
            "units": line.units,
            "expected_units": expected,
            "ndc_quantity": line.ndc_quantity,
            "ndc_unit": unit or "",
            "strength_mg": facts.ndc_strength,
        },
        fix=f"Bill {text(expected)} units (1 unit = 1 mg), or correct the NDC quantity.",
    )


@rule(
    "duplicate-line",
    family="coding",
    outcomes=("DENY_RISK",),
    policy_ref="A52474",
    expected_carc="CO-18",
)
def duplicate_line(facts: LineFacts) -> Hit | None:
    """Same NDC and date of service as an earlier J7507 line of this claim or a prior claim's line.

    Only lines with an NDC are compared, in the normalized form of rules.md (so `0469-0617-73` and
    `00469061773` are the same NDC). Within the claim, the line with the lower line_number is
    the original and only the later one is flagged. Prior claims count in their highest version, and
    earlier versions of this claim never do (a resubmission is not a duplicate of itself).
    """
    if facts.ndc is None:
        return None
    # Both from indexes built once per claim: linear in the claim's lines and the history.
    same_claim, same_claim_count = facts.earlier_same_ndc_dos()
    prior_claims = facts.prior_same_ndc_dos()
    if not same_claim_count and not prior_claims:
        return None
    where = [f"line {number} of this claim" for number in same_claim]
    where += [f"claim {prior.claim_id} (version {prior.claim_version})" for prior in prior_claims[:EVIDENCE_LIST_CAP]]
    return Hit(
        message=(
            f"NDC {facts.ndc} on {facts.dos} is already billed on "
            f"{capped_text(where, same_claim_count + len(prior_claims))}."
        ),
        evidence={
            "ndc": facts.ndc,
            "date_of_service": facts.dos,
            "duplicate_of_lines": capped(same_claim, same_claim_count),
            "duplicate_of_claims": capped(prior.claim_id for prior in prior_claims),
            "duplicate_of_claim_versions": capped(prior.claim_version for prior in prior_claims),
        },
        fix=(
            "Remove the duplicate line, or combine the quantities on one line."
            if same_claim_count
            else "If this replaces the earlier claim, resubmit it as a new version of that claim; else drop it."
        ),
    )


@rule(
    "days-supply-exceeds-limit",
    family="coding",
    outcomes=("DENY_RISK",),
    settings=("max_days_supply",),
    policy_ref="A52474",
    expected_carc="CO-119",
)
def days_supply_exceeds_limit(facts: LineFacts) -> Hit | None:
    """The line's `days_supply` is over the pack's limit for its date of service.

    Only the line's own days supply is compared (it is what the payer sees); a line without one is
    not checked here. Both are integers, so the comparison is exact; a supply equal to the limit
    is not a finding.
    """
    days = facts.line.days_supply
    limit = facts.settings.max_days_supply_on(facts.dos)
    if days is None or days <= limit:
        return None
    return Hit(
        message=f"Days supply {days} is over the {limit}-day limit for a service on {facts.dos}.",
        evidence={"days_supply": days, "max_days_supply": limit, "date_of_service": facts.dos},
        fix=f"Dispense and bill at most {limit} days; split a longer supply into later refills.",
    )


@rule(
    "modifier-not-allowed",
    family="coding",
    outcomes=("DENY_RISK",),
    settings=("allowed_modifiers",),
    policy_ref="A52474",
    expected_carc="CO-4",
)
def modifier_not_allowed(facts: LineFacts) -> Hit | None:
    """A modifier is not in `allowed_modifiers`; evidence lists every disallowed one.

    Modifier 25 is the classic error: it is an E/M modifier with no place on a drug line.
    """
    allowed = facts.settings.allowed_modifiers
    modifiers = facts.modifiers
    if allowed.issuperset(modifiers):  # the usual answer, without a list
        return None
    disallowed = [modifier for modifier in modifiers if modifier not in allowed]
    note = " (25 is an E/M modifier, not a drug-line modifier)" if "25" in disallowed else ""
    return Hit(
        message=f"Modifier(s) {', '.join(disallowed)} are not allowed on a J7507 line{note}.",
        evidence={"modifiers": disallowed, "allowed_modifiers": sorted(allowed)},
        fix=f"Remove {', '.join(disallowed)}; allowed here: {', '.join(sorted(allowed))}.",
    )


@rule(
    "timely-filing-expired",
    family="coding",
    outcomes=("DENY_RISK",),
    settings=("timely_filing_days",),
    policy_ref="42 CFR 424.44",
    expected_carc="CO-29",
)
def timely_filing_expired(facts: LineFacts) -> Hit | None:
    """The claim was filed more than `timely_filing_days` days after the line's date of service.

    Filed = the UTC calendar date of the claim's `event_time`; a claim without one (an offline bundle
    may omit it) is not checked. Exactly `timely_filing_days` days after DOS is still in time. Medicare
    allows one calendar year (42 CFR 424.44); the limit is also how far back the stream's context
    reaches, so a claim past it may have been decided without context older than the limit.
    """
    filed = facts.claim_facts.filed_on
    limit = facts.settings.timely_filing_days
    if filed is None or (filed - facts.dos).days <= limit:
        return None
    return Hit(
        message=(
            f"Filed on {filed}, {(filed - facts.dos).days} days after the service on {facts.dos}; "
            f"the payer's filing limit is {limit} days."
        ),
        evidence={"filed_on": filed, "date_of_service": facts.dos, "timely_filing_days": limit},
        fix=("Look for proof of timely filing (an earlier submission, a payer delay); else the claim cannot be paid."),
    )
