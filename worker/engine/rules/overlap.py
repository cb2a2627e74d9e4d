"""Overlapping therapy and interactions: other drugs active on the date of service."""

from __future__ import annotations

from worker.engine.records import RxFacts
from worker.engine.rules.facts import TACROLIMUS, LineFacts
from worker.engine.rules.registry import Hit, rule

CYP3A4_CLASSES = ("strong_cyp3a4_inhibitor", "strong_cyp3a4_inducer")


def _overlap_hit(facts: LineFacts, overlapping: list[RxFacts], what: str, fix: str) -> Hit:
    """DENY_RISK unless every overlapping prescription is justified (it or the matched one has a
    clinical justification); then INFO, recorded for the analyst but changing nothing."""
    matched = facts.matched_prescription
    matched_justified = matched is not None and matched.justified
    unjustified = [rx.prescription_id for rx in overlapping if not (rx.justified or matched_justified)]
    ids = [rx.prescription_id for rx in overlapping]
    if unjustified:
        return Hit(
            message=f"{what} is active on {facts.dos} with no clinical justification on file.",
            evidence={"prescription_ids": ids, "unjustified": unjustified, "date_of_service": facts.dos},
            fix=fix,
            outcome="DENY_RISK",
        )
    return Hit(
        message=f"{what} is active on {facts.dos}; a clinical justification is on file.",
        evidence={"prescription_ids": ids, "unjustified": [], "date_of_service": facts.dos},
        fix="None needed; keep the justification with the claim documentation.",
        outcome="INFO",
    )


@rule(
    "concurrent-cyclosporine",
    family="overlap",
    outcomes=("DENY_RISK", "INFO"),
    policy_ref="label",
    expected_carc="CO-50",
)
def concurrent_cyclosporine(facts: LineFacts) -> Hit | None:
    """A cyclosporine prescription is active on DOS: DENY_RISK, INFO if justified.

    Tacrolimus must never be given with cyclosporine (start it ≥ 24 h after the last cyclosporine
    dose). Justified means every overlapping cyclosporine prescription, or the matched tacrolimus
    prescription, carries a clinical justification; one unjustified overlap makes it DENY_RISK.
    """
    overlapping = facts.active_with_ingredient("cyclosporine")
    if not overlapping:
        return None
    return _overlap_hit(
        facts,
        overlapping,
        "Cyclosporine",
        "Have the prescriber stop (end-date) the cyclosporine order, or document why both are needed.",
    )


@rule(
    "concurrent-extended-release-tacrolimus",
    family="overlap",
    outcomes=("DENY_RISK", "INFO"),
    policy_ref="label",
    expected_carc="CO-50",
)
def concurrent_extended_release_tacrolimus(facts: LineFacts) -> Hit | None:
    """A tacrolimus EXTENDED_RELEASE prescription other than the matched one is active on DOS.

    Immediate- and extended-release tacrolimus are not interchangeable; both at once is duplicate
    therapy. DENY_RISK, INFO if justified (as for concurrent-cyclosporine).
    """
    matched = facts.matched_prescription
    overlapping = []  # a loop, as the facts' filters (rules/facts.py)
    for rx in facts.active_with_ingredient(TACROLIMUS):
        if rx.formulation == "EXTENDED_RELEASE" and (matched is None or rx.prescription_id != matched.prescription_id):
            overlapping.append(rx)
    if not overlapping:
        return None
    return _overlap_hit(
        facts,
        overlapping,
        "Extended-release tacrolimus",
        "Confirm which tacrolimus product the patient takes and end-date the other order.",
    )


@rule(
    "interacting-drug-without-level",
    family="overlap",
    outcomes=("HOLD",),
    policy_ref="label",
)
def interacting_drug_without_level(facts: LineFacts) -> Hit | None:
    """A strong CYP3A4 inhibitor or inducer is active on DOS with no tacrolimus level since it started.

    The drugs are those of rules.md (the `strong_cyp3a4_*` rows of interacting_drugs.csv); names
    compare by letters only ("St John's wort" = "st johns wort"). A counted tacrolimus level dated
    from the drug's start_date through DOS (inclusive) satisfies it; evidence lists every drug
    without one.
    """
    interacting = facts.reference.drugs_of(CYP3A4_CLASSES)
    missing_level = []  # a loop, as the facts' filters (rules/facts.py)
    for rx in facts.active_prescriptions:
        if rx.ingredient_key in interacting and not facts.labs_between("tacrolimus_level", rx.start_date, facts.dos):
            missing_level.append(rx)
    if not missing_level:
        return None
    names = sorted({rx.ingredient for rx in missing_level})
    return Hit(
        message=f"{', '.join(names)} changes tacrolimus levels and no tacrolimus level was drawn since it started.",
        evidence={
            "drugs": names,
            "prescription_ids": [rx.prescription_id for rx in missing_level],
            "started": sorted({rx.start_date.isoformat() for rx in missing_level}),
        },
        fix="Obtain a tacrolimus trough drawn after the interacting drug started, then release the claim.",
    )


@rule(
    "sirolimus-with-liver-or-heart",
    family="overlap",
    outcomes=("HOLD",),
    policy_ref="label",
)
def sirolimus_with_liver_or_heart(facts: LineFacts) -> Hit | None:
    """Sirolimus is active on DOS and the organ is LIVER, HEART or HEART_LUNG (not recommended)."""
    organ = facts.claim_facts.organ
    if organ not in ("LIVER", "HEART", "HEART_LUNG"):
        return None
    sirolimus = facts.active_with_ingredient("sirolimus")
    if not sirolimus:
        return None
    return Hit(
        message=(
            f"Sirolimus is active with tacrolimus in a {organ.lower().replace('_', '-')} recipient, "
            "which the label advises against."
        ),
        evidence={"organ": organ, "prescription_ids": [rx.prescription_id for rx in sirolimus]},
        fix="Have a clinician confirm the combination is intended and document it.",
    )
