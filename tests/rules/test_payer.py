"""Payer requirements (rules.md), switched on by the override files of tests/fixtures/payer-config."""

from __future__ import annotations

from typing import Any

from .conftest import (
    ASTAGRAF_1MG,
    CAPPED_PLAN,
    COMMERCIAL,
    DOS,
    FORMULARY_PLAN,
    GENERIC_05MG,
    MEDICAID,
    MEDICARE,
    PRIOR_AUTH_PLAN,
    PROGRAF_1MG,
    SPECIALTY_NPI,
    SPECIALTY_PLAN,
    claim_line,
    fires,
    prior_claim,
    prior_line,
    quiet,
)


def _auth(status: str, valid_from: str | None = None, valid_to: str | None = None) -> dict[str, Any]:
    return {
        "payer": PRIOR_AUTH_PLAN,
        "auth": {"number": "PA-778", "status": status, "valid_from": valid_from, "valid_to": valid_to},
    }


PRIOR_AUTH_MISSING = [
    fires("required, none on the claim", {"payer": PRIOR_AUTH_PLAN}, "DENY_RISK", authorization_number=""),
    fires("required, DENIED", _auth("DENIED"), "DENY_RISK", status="DENIED"),
    fires("required, APPROVED but expired the day before", _auth("APPROVED", "2025-06-01", "2025-11-30"), "DENY_RISK"),
    fires("required, APPROVED from the day after", _auth("APPROVED", "2025-12-02", "2026-06-01"), "DENY_RISK"),
    quiet("APPROVED, valid_to = DOS", _auth("APPROVED", "2025-06-01", DOS)),
    quiet("APPROVED, valid_from = DOS", _auth("APPROVED", DOS, "2026-06-01")),
    quiet("APPROVED, open start", _auth("APPROVED", None, "2026-06-01")),
    quiet("APPROVED, open end", _auth("APPROVED", "2025-06-01", None)),
    quiet("APPROVED, both ends open", _auth("APPROVED")),
    quiet("PENDING (prior-auth-pending's case)", _auth("PENDING")),
    quiet("not required (commercial-default)", {"payer": COMMERCIAL}),
    quiet("not required, DENIED on the claim", {**_auth("DENIED"), "payer": COMMERCIAL}),
]


PRIOR_AUTH_PENDING = [
    fires("required, PENDING", _auth("PENDING"), "HOLD", authorization_number="PA-778", status="PENDING"),
    quiet("required, APPROVED", _auth("APPROVED")),
    quiet("required, none (prior-auth-missing's case)", {"payer": PRIOR_AUTH_PLAN}),
    quiet("not required, PENDING", {**_auth("PENDING"), "payer": MEDICARE}),
]


SPECIALTY = [
    fires(
        "dispensing pharmacy not designated",
        {"payer": SPECIALTY_PLAN},
        "DENY_RISK",
        dispensing_pharmacy_npi="1003000142",
        specialty_pharmacy_npis="1234567893,1679576722",
    ),
    fires("no dispensing pharmacy", {"payer": SPECIALTY_PLAN, "claim.dispensing_pharmacy_npi": None}, "DENY_RISK"),
    fires("blank dispensing pharmacy", {"payer": SPECIALTY_PLAN, "claim.dispensing_pharmacy_npi": ""}, "DENY_RISK"),
    quiet("first designated pharmacy", {"payer": SPECIALTY_PLAN, "claim.dispensing_pharmacy_npi": SPECIALTY_NPI}),
    quiet("second designated pharmacy", {"payer": SPECIALTY_PLAN, "claim.dispensing_pharmacy_npi": "1234567893"}),
    quiet("empty list (built-in packs): no mandate", {"payer": COMMERCIAL, "claim.dispensing_pharmacy_npi": None}),
]


BRAND = {"line.ndc": PROGRAF_1MG}  # Prograf 1 mg: brand J7507, same strength and units as the baseline


def _brand(payer: dict[str, Any] = COMMERCIAL, /, **more: Any) -> dict[str, Any]:
    return {**BRAND, "payer": payer, **more}


def _fill(ndc: str, claim_id: str = "CLM-4000", version: int = 1) -> dict[str, Any]:
    return prior_claim(claim_id, prior_line("2025-11-01", ndc=ndc), version=version)


STEP_THERAPY = [
    fires("commercial, brand, no generic fill", _brand(), "DENY_RISK", ndc=PROGRAF_1MG),
    fires("Medicaid, brand, no generic fill", _brand(MEDICAID), "DENY_RISK"),
    quiet("Medicare: step_therapy_generic_first is false", _brand(MEDICARE)),
    quiet("commercial, generic", {"payer": COMMERCIAL}),
    quiet("a prior generic J7507 fill", _brand(prior_claims=[_fill(GENERIC_05MG)])),
    fires("a prior brand fill only", _brand(prior_claims=[_fill(PROGRAF_1MG)]), "DENY_RISK"),
    fires(
        "a generic fill in an earlier version of this claim never counts",
        _brand(**{"claim.claim_version": 2}, prior_claims=[_fill(GENERIC_05MG, claim_id="CLM-5001")]),
        "DENY_RISK",
    ),
    fires(
        "only the highest version of a prior claim counts (v2 is brand)",
        _brand(prior_claims=[_fill(GENERIC_05MG, version=1), _fill(PROGRAF_1MG, version=2)]),
        "DENY_RISK",
    ),
    quiet(
        "only the highest version of a prior claim counts (v2 is generic)",
        _brand(prior_claims=[_fill(GENERIC_05MG, version=2), _fill(PROGRAF_1MG, version=1)]),
    ),
    quiet(
        "dispense as written with a clinical justification",
        _brand(**{"rx.dispense_as_written": True, "rx.clinical_justification": "Unstable levels on generics."}),
    ),
    fires("dispense as written without a justification", _brand(**{"rx.dispense_as_written": True}), "DENY_RISK"),
    fires(
        "a justification without dispense as written",
        _brand(**{"rx.clinical_justification": "Unstable levels on generics."}),
        "DENY_RISK",
    ),
    quiet("brand of another code (Astagraf XL): not a J7507 product", {"line.ndc": ASTAGRAF_1MG, "payer": COMMERCIAL}),
    quiet("no NDC", {"line.ndc": None, "payer": COMMERCIAL}),
]


def _units(units: float, claim_id: str = "CLM-4000", version: int = 1, hcpcs_code: str = "J7507") -> dict[str, Any]:
    return prior_claim(claim_id, prior_line("2025-10-01", units=units, hcpcs_code=hcpcs_code), version=version)


# CAPPED-PLAN: lifetime_units_cap 1000; this line bills 240.
LIFETIME_CAP = [
    quiet("240 units, no history", {"payer": CAPPED_PLAN}),
    quiet(
        "760 prior + 240 = 1000 (at the cap)",
        {"payer": CAPPED_PLAN, "prior_claims": [_units(500), _units(260, "CLM-4100")]},
    ),
    fires(
        "761 prior + 240 = 1001",
        {"payer": CAPPED_PLAN, "prior_claims": [_units(500), _units(261, "CLM-4100")]},
        "DENY_RISK",
        total_units="1001",
        lifetime_units_cap="1000",
    ),
    quiet(
        "an earlier version of this claim never counts",
        {"payer": CAPPED_PLAN, "claim.claim_version": 2, "prior_claims": [_units(900, claim_id="CLM-5001")]},
    ),
    quiet(
        "only the highest version of a prior claim counts (v2 = 100)",
        {"payer": CAPPED_PLAN, "prior_claims": [_units(900, version=1), _units(100, version=2)]},
    ),
    fires(
        "only the highest version of a prior claim counts (v2 = 900, listed first)",
        {"payer": CAPPED_PLAN, "prior_claims": [_units(900, version=2), _units(100, version=1)]},
        "DENY_RISK",
        total_units="1140",
    ),
    quiet(
        "non-J7507 prior lines do not count", {"payer": CAPPED_PLAN, "prior_claims": [_units(900, hcpcs_code="J7517")]}
    ),
    quiet("no cap (built-in pack)", {"payer": COMMERCIAL, "prior_claims": [_units(1_000_000)]}),
    quiet(
        "line 1 of two: only lines up to this one count",
        {"payer": CAPPED_PLAN, "line.units": 600, "lines+": [claim_line(2, units=600, date_of_service="2025-12-02")]},
    ),
    fires(
        "line 2 of two: 600 + 600 = 1200",
        {"payer": CAPPED_PLAN, "line.units": 600, "lines+": [claim_line(2, units=600, date_of_service="2025-12-02")]},
        "DENY_RISK",
        line=2,
        total_units="1200",
    ),
    quiet(
        "a non-J7507 line of this claim does not count",
        {"payer": CAPPED_PLAN, "line.units": 600, "lines+": [claim_line(2, hcpcs_code="J7517", units=600)]},
    ),
]


NON_PREFERRED = [
    fires("Prograf 1 mg is non-preferred", {"payer": FORMULARY_PLAN, "line.ndc": PROGRAF_1MG}, "HOLD", ndc=PROGRAF_1MG),
    fires("the line's NDC with dashes", {"payer": FORMULARY_PLAN, "line.ndc": "00469-0617-73"}, "HOLD"),
    quiet("generic is preferred", {"payer": FORMULARY_PLAN}),
    quiet("empty list (built-in pack)", {"payer": COMMERCIAL, "line.ndc": PROGRAF_1MG}),
    quiet("no NDC", {"payer": FORMULARY_PLAN, "line.ndc": None}),
]


# The generic runner (tests/rules/test_cases.py) decides every case of every rule in this table.
CASES: dict[str, list[Any]] = {
    "prior-auth-missing": PRIOR_AUTH_MISSING,
    "prior-auth-pending": PRIOR_AUTH_PENDING,
    "specialty-pharmacy-required": SPECIALTY,
    "step-therapy-not-met": STEP_THERAPY,
    "lifetime-cap-exceeded": LIFETIME_CAP,
    "non-preferred-product": NON_PREFERRED,
}
