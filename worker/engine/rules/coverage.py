"""Transplant and coverage: is the transplant documented, and is the patient covered for the drug?

The rules marked MEDICARE in rules.md run only where the pack sets `medicare_rules`.
"""

from __future__ import annotations

import calendar
from datetime import date
from functools import lru_cache

from worker.engine.rules.facts import LineFacts
from worker.engine.rules.registry import Hit, rule

ESRD_COVERAGE_MONTHS = 36


@rule("transplant-not-documented", family="coverage", outcomes=("HOLD",), policy_ref="A52474")
def transplant_not_documented(facts: LineFacts) -> Hit | None:
    """The claim has no transplant record, or the record has no `transplant_date`."""
    transplant = facts.claim.transplant
    if transplant is not None and transplant.transplant_date is not None:
        return None
    return Hit(
        message="The claim has no transplant date." if transplant else "The claim has no transplant record.",
        evidence={"organ": transplant.organ if transplant else None, "transplant_date": None},
        fix="Obtain the transplant date (and facility and discharge date) from the ordering physician and add it.",
    )


@rule(
    "transplant-after-service",
    family="coverage",
    outcomes=("DENY_RISK",),
    policy_ref="A52474",
    expected_carc="CO-50",
)
def transplant_after_service(facts: LineFacts) -> Hit | None:
    """The transplant date is on or after the date of service (the drug is covered only after it)."""
    transplant_date = facts.claim_facts.transplant_date
    if transplant_date is None or transplant_date < facts.dos:
        return None
    return Hit(
        message=f"The transplant date {transplant_date} is not before the date of service {facts.dos}.",
        evidence={"transplant_date": transplant_date, "date_of_service": facts.dos},
        fix="Check both dates; immunosuppressive coverage starts after the transplant.",
    )


@rule(
    "service-before-discharge",
    family="coverage",
    outcomes=("DENY_RISK",),
    policy_ref="A52474",
    expected_carc="CO-16",
)
def service_before_discharge(facts: LineFacts) -> Hit | None:
    """The date of service is before the known discharge date.

    Drugs delivered before discharge must carry the discharge date as their date of service.
    """
    discharge_date = facts.claim_facts.discharge_date
    if discharge_date is None or facts.dos >= discharge_date:
        return None
    return Hit(
        message=f"The date of service {facts.dos} is before the discharge date {discharge_date}.",
        evidence={"date_of_service": facts.dos, "discharge_date": discharge_date},
        fix="Use the discharge date as the date of service for a delivery made before discharge.",
    )


@rule(
    "diagnosis-not-covered",
    family="coverage",
    outcomes=("DENY_RISK",),
    settings=("covered_diagnosis_prefixes",),
    policy_ref="A52474",
    expected_carc="CO-167",
)
def diagnosis_not_covered(facts: LineFacts) -> Hit | None:
    """No diagnosis code of the claim starts with one of `covered_diagnosis_prefixes`.

    Codes compare upper-case without the dot. Z94.5 (skin), Z94.6 (bone) and Z94.7 (cornea) are
    transplant statuses that are not covered. A claim with no diagnosis code at all fires too.
    """
    codes = facts.claim_facts.diagnosis_codes
    if _any_covered(codes, facts.settings.covered_diagnosis_prefixes):
        return None
    return Hit(
        message=(
            f"None of the diagnosis codes ({', '.join(codes)}) is a covered transplant diagnosis."
            if codes
            else "The claim has no diagnosis code."
        ),
        evidence={"diagnosis_codes": list(codes)},
        fix="Add the transplant status or complication code documented in the record (e.g. Z94.0 kidney).",
    )


@lru_cache(maxsize=4096)  # a claim's diagnosis codes are one of a few hundred combinations
def _any_covered(codes: tuple[str, ...], prefixes: tuple[str, ...]) -> bool:
    return any(code.startswith(prefixes) for code in codes)


def _has_kx(facts: LineFacts) -> bool:
    return "KX" in facts.modifiers


@rule(
    "kx-modifier-missing",
    family="coverage",
    outcomes=("DENY_RISK",),
    policy_ref="L33824",
    expected_carc="CO-4",
    medicare_only=True,
)
def kx_modifier_missing(facts: LineFacts) -> Hit | None:
    """MEDICARE: the transplant precedes the date of service but KX is absent."""
    transplant_date = facts.claim_facts.transplant_date
    if transplant_date is None or transplant_date >= facts.dos or _has_kx(facts):
        return None
    return Hit(
        message="The transplant precedes the date of service but the line has no KX modifier.",
        evidence={"modifiers": list(facts.modifiers), "transplant_date": transplant_date, "date_of_service": facts.dos},
        fix="Add KX once the transplant date from the ordering physician is on file.",
    )


@rule(
    "kx-modifier-unsupported",
    family="coverage",
    outcomes=("DENY_RISK",),
    policy_ref="L33824",
    expected_carc="CO-4",
    medicare_only=True,
)
def kx_modifier_unsupported(facts: LineFacts) -> Hit | None:
    """MEDICARE: KX is present but the transplant date is missing or not before the date of service.

    KX attests that the policy requirements are met; without that support it is a known audit finding.
    """
    transplant_date = facts.claim_facts.transplant_date
    if not _has_kx(facts) or (transplant_date is not None and transplant_date < facts.dos):
        return None
    return Hit(
        message=(
            "KX is billed but no transplant date supports it."
            if transplant_date is None
            else f"KX is billed but the transplant date {transplant_date} is not before the service."
        ),
        evidence={"modifiers": list(facts.modifiers), "transplant_date": transplant_date, "date_of_service": facts.dos},
        fix="Remove KX, or document the transplant date obtained from the ordering physician.",
    )


@rule(
    "part-a-not-at-transplant",
    family="coverage",
    outcomes=("DENY_RISK",),
    policy_ref="A52474",
    expected_carc="CO-109",
    medicare_only=True,
)
def part_a_not_at_transplant(facts: LineFacts) -> Hit | None:
    """MEDICARE: `coverage.part_a_at_transplant` is false (unknown is not a finding).

    Part B covers the drug only when Medicare Part A covered the transplant; otherwise the claim
    belongs with another payer (e.g. Part D).
    """
    coverage = facts.claim.coverage
    if coverage is None or coverage.part_a_at_transplant is not False:
        return None
    return Hit(
        message="Medicare Part A did not cover the transplant, so Part B does not cover the drug.",
        evidence={"part_a_at_transplant": False},
        fix="Bill the patient's Part D plan or other coverage instead.",
    )


@rule(
    "part-b-not-active",
    family="coverage",
    outcomes=("DENY_RISK",),
    policy_ref="A52474",
    expected_carc="CO-27",
    medicare_only=True,
)
def part_b_not_active(facts: LineFacts) -> Hit | None:
    """MEDICARE: `coverage.part_b_active` is false and the patient is not in the Part B-ID benefit."""
    coverage = facts.claim.coverage
    if coverage is None or coverage.part_b_active is not False or coverage.part_b_id_enrolled is True:
        return None
    return Hit(
        message="Part B is not active and the patient is not enrolled in the Part B immunosuppressive drug benefit.",
        evidence={"part_b_active": False, "part_b_id_enrolled": coverage.part_b_id_enrolled},
        fix="Verify eligibility; enroll the patient in Part B-ID if entitlement ended, or bill other coverage.",
    )


def esrd_coverage_end(transplant_date: date) -> date:
    """The last day of the 36th month after the transplant month (2022-05-10 -> 2025-05-31)."""
    month_index = transplant_date.year * 12 + (transplant_date.month - 1) + ESRD_COVERAGE_MONTHS
    year, month = divmod(month_index, 12)
    if year > date.max.year:  # coverage that ends after the calendar does, never ends
        return date.max
    return date(year, month + 1, calendar.monthrange(year, month + 1)[1])


@rule(
    "esrd-coverage-ended",
    family="coverage",
    outcomes=("DENY_RISK",),
    policy_ref="A52474",
    expected_carc="CO-27",
    medicare_only=True,
)
def esrd_coverage_ended(facts: LineFacts) -> Hit | None:
    """MEDICARE: ESRD-only kidney entitlement ended 36 months after the transplant month.

    Fires for entitlement ESRD_ONLY, organ KIDNEY, a known transplant date, DOS after the last day
    of the 36th month after the transplant month, and `part_b_id_enrolled` not true.
    """
    coverage = facts.claim.coverage
    transplant_date = facts.claim_facts.transplant_date
    if (
        coverage is None
        or coverage.entitlement != "ESRD_ONLY"
        or facts.claim_facts.organ != "KIDNEY"
        or transplant_date is None
        or coverage.part_b_id_enrolled is True
    ):
        return None
    covered_through = esrd_coverage_end(transplant_date)
    if facts.dos <= covered_through:
        return None
    return Hit(
        message=f"ESRD-only entitlement ended on {covered_through}, before the date of service {facts.dos}.",
        evidence={
            "entitlement": "ESRD_ONLY",
            "transplant_date": transplant_date,
            "covered_through": covered_through,
            "date_of_service": facts.dos,
            "part_b_id_enrolled": coverage.part_b_id_enrolled,
        },
        fix="Enroll the patient in the Part B-ID benefit, or bill other coverage.",
    )


@rule(
    "abn-modifier-conflict",
    family="coverage",
    outcomes=("DENY_RISK",),
    policy_ref="A52474",
    expected_carc="CO-4",
    medicare_only=True,
)
def abn_modifier_conflict(facts: LineFacts) -> Hit | None:
    """MEDICARE: GA without an ABN on file, or GA together with GZ (they exclude each other)."""
    modifiers = facts.modifiers
    if "GA" not in modifiers:
        return None
    problems = []
    if "GZ" in modifiers:
        problems.append("GA and GZ exclude each other")
    if not facts.claim.abn_on_file:
        problems.append("GA is billed without an ABN on file")
    if not problems:
        return None
    return Hit(
        message="; ".join(problems).capitalize() + ".",
        evidence={"modifiers": list(modifiers), "abn_on_file": facts.claim.abn_on_file},
        fix="Use GA only with a signed ABN on file, GZ when there is none; never both.",
    )
