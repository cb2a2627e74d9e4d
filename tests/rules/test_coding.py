"""Coding and units (rules.md): code, NDC, units, duplicates, days supply, modifiers."""

from __future__ import annotations

import re
from typing import Any

from .conftest import (
    ASTAGRAF_1MG,
    COMMERCIAL,
    DOS,
    DROP,
    ENVARSUS_4MG,
    GENERIC_05MG,
    GENERIC_1MG,
    MEDICAID,
    MEDICARE_30_DAY,
    PROGRAF_5MG,
    PROGRAF_INJECTION,
    UNKNOWN_NDC,
    claim_line,
    drug,
    findings_for,
    fires,
    prescription,
    prior_claim,
    prior_line,
    quiet,
)

WRONG_CODE = [
    fires("NDC is Astagraf XL (J7508)", {"line.ndc": ASTAGRAF_1MG}, "DENY_RISK", expected_code="J7508"),
    fires("NDC is Envarsus XR (J7503)", {"line.ndc": ENVARSUS_4MG}, "DENY_RISK", expected_code="J7503"),
    fires("NDC is tacrolimus injection (J7525)", {"line.ndc": PROGRAF_INJECTION}, "DENY_RISK", expected_code="J7525"),
    fires(
        "matched prescription is EXTENDED_RELEASE",
        {"rx.formulation": "EXTENDED_RELEASE"},
        "DENY_RISK",
        formulation="EXTENDED_RELEASE",
    ),
    fires(
        "matched prescription is an INJECTION, INTRAVENOUS",
        {"rx.formulation": "INJECTION", "rx.route": "INTRAVENOUS"},
        "DENY_RISK",
        route="INTRAVENOUS",
    ),
    fires("matched prescription is IR but SUBLINGUAL", {"rx.route": "SUBLINGUAL"}, "DENY_RISK", route="SUBLINGUAL"),
    fires("matched prescription is a SUSPENSION", {"rx.formulation": "SUSPENSION"}, "DENY_RISK"),
    fires(
        "named EXTENDED_RELEASE prescription counts whatever its status",
        {"rx.formulation": "EXTENDED_RELEASE", "rx.status": "STOPPED"},
        "DENY_RISK",
    ),
    quiet("clean baseline", {}),
    quiet("NDC not in the crosswalk (ndc-not-in-crosswalk's case)", {"line.ndc": UNKNOWN_NDC}),
    quiet("no NDC and the IR prescription", {"line.ndc": None}),
    quiet("line names an unknown prescription: no matched prescription, no fallback", {"line.prescription_id": "RX-X"}),
    quiet(
        "named prescription is extended-release cyclosporine, not tacrolimus",
        {"rx.ingredient": "cyclosporine", "rx.formulation": "EXTENDED_RELEASE"},
    ),
    quiet(
        "unnamed line: the matched prescription is the IR one even with an ER one active",
        {"line.prescription_id": None, "prescriptions+": [prescription("RX-ER", formulation="EXTENDED_RELEASE")]},
    ),
]


NDC_MISSING = [
    fires("Medicare (requires_ndc false): HOLD", {"line.ndc": None}, "HOLD", requires_ndc="false"),
    fires("commercial (requires_ndc true): DENY_RISK", {"line.ndc": None, "payer": COMMERCIAL}, "DENY_RISK"),
    fires("Medicaid (requires_ndc true): DENY_RISK", {"line.ndc": None, "payer": MEDICAID}, "DENY_RISK"),
    fires("NDC field absent", {"line.ndc": DROP}, "HOLD"),
    fires("NDC blank", {"line.ndc": "  "}, "HOLD"),
    fires(
        "override extending medicare-dme keeps requires_ndc false", {"line.ndc": None, "payer": MEDICARE_30_DAY}, "HOLD"
    ),
    quiet("NDC present", {}),
    quiet("NDC present but unknown", {"line.ndc": UNKNOWN_NDC}),
]


NDC_NOT_IN_CROSSWALK = [
    fires("unknown 11-digit NDC", {"line.ndc": UNKNOWN_NDC}, "HOLD", ndc=UNKNOWN_NDC),
    fires("10-digit NDC is not padded", {"line.ndc": "5511105261"}, "HOLD"),
    quiet("J7507 NDC", {}),
    quiet("NDC with dashes is the same NDC", {"line.ndc": "55111-0526-01"}),
    quiet("crosswalk NDC of another code (wrong-code-for-product's case)", {"line.ndc": ASTAGRAF_1MG}),
    quiet("no NDC (ndc-missing's case)", {"line.ndc": None}),
]


UNITS_NOT_WHOLE = [
    fires("units=240.5", {"line.units": 240.5}, "DENY_RISK", units="240.5"),
    fires("units=0.5", {"line.units": 0.5}, "DENY_RISK"),
    fires("units=0", {"line.units": 0}, "DENY_RISK", units="0"),
    fires("units=-240", {"line.units": -240}, "DENY_RISK", units="-240"),
    quiet("units=240", {}),
    quiet("units=240.0", {"line.units": 240.0}),
    quiet("units=1", {"line.units": 1}),
]


UNITS_MISMATCH = [
    fires(
        "units=60, ndc_quantity=60 UN of Prograf 5 mg (capsule count)",
        {"line.ndc": PROGRAF_5MG, "line.units": 60, "line.ndc_quantity": 60},
        "DENY_RISK",
        units="60",
        expected_units="300",
    ),
    quiet(
        "units=300, ndc_quantity=60 UN of Prograf 5 mg",
        {"line.ndc": PROGRAF_5MG, "line.units": 300, "line.ndc_quantity": 60},
    ),
    fires(
        "units=60, ndc_quantity=60 UN of 0.5 mg",
        {"line.ndc": GENERIC_05MG, "line.units": 60, "line.ndc_quantity": 60},
        "DENY_RISK",
        expected_units="30",
    ),
    quiet(
        "units=30, ndc_quantity=60 UN of 0.5 mg", {"line.ndc": GENERIC_05MG, "line.units": 30, "line.ndc_quantity": 60}
    ),
    fires(
        "no unit counts as UN: units=240, ndc_quantity=120 of 1 mg",
        {"line.ndc_unit": None, "line.ndc_quantity": 120},
        "DENY_RISK",
        expected_units="120",
    ),
    quiet("no unit counts as UN: units=240, ndc_quantity=240 of 1 mg", {"line.ndc_unit": DROP}),
    quiet("ME: units=240, ndc_quantity=240 mg", {"line.ndc_unit": "ME"}),
    fires(
        "ME: units=240, ndc_quantity=200 mg",
        {"line.ndc_unit": "ME", "line.ndc_quantity": 200},
        "DENY_RISK",
        expected_units="200",
    ),
    fires(
        "ME is checked whatever the NDC: unknown NDC, ndc_quantity=100 mg",
        {"line.ndc_unit": "ME", "line.ndc_quantity": 100, "line.ndc": UNKNOWN_NDC},
        "DENY_RISK",
        expected_units="100",
    ),
    quiet("GR: units=240, ndc_quantity=0.24 g", {"line.ndc_unit": "GR", "line.ndc_quantity": 0.24}),
    fires(
        "GR: units=240, ndc_quantity=0.3 g",
        {"line.ndc_unit": "GR", "line.ndc_quantity": 0.3},
        "DENY_RISK",
        expected_units="300",
    ),
    quiet("ML is never checked", {"line.ndc_unit": "ML", "line.ndc_quantity": 5}),
    quiet("ndc_quantity unknown", {"line.ndc_quantity": None, "line.units": 999}),
    quiet("UN with an NDC not in the crosswalk: strength unknown", {"line.ndc": UNKNOWN_NDC, "line.ndc_quantity": 1}),
    quiet("UN with a non-J7507 crosswalk row", {"line.ndc": ASTAGRAF_1MG, "line.ndc_quantity": 1}),
]


def _other_claim(*lines: dict[str, Any], claim_id: str = "CLM-4000", version: int = 1) -> dict[str, Any]:
    return prior_claim(claim_id, *lines, version=version)


DUPLICATE_LINE = [
    fires(
        "line 2 repeats line 1's NDC and DOS",
        {"lines+": [claim_line(2)]},
        "DENY_RISK",
        line=2,
        duplicate_of_lines="1",
        ndc=GENERIC_1MG,
    ),
    quiet("line 1 (the lower line_number) is the original", {"lines+": [claim_line(2)]}, line=1),
    fires("the NDC compares without dashes", {"lines+": [claim_line(2, ndc="55111-0526-01")]}, "DENY_RISK", line=2),
    quiet("same NDC, another DOS", {"lines+": [claim_line(2, date_of_service="2025-12-02")]}, line=2),
    quiet("two strengths on the same day", {"lines+": [claim_line(2, ndc=GENERIC_05MG, units=120)]}, line=2),
    quiet("line without an NDC is never a duplicate", {"lines+": [claim_line(2, ndc=None)]}, line=2),
    quiet("a non-J7507 line is not compared", {"line.hcpcs_code": "J7517", "lines+": [claim_line(2)]}, line=2),
    fires(
        "a prior claim billed the NDC on the DOS",
        {"prior_claims": [_other_claim(prior_line(DOS))]},
        "DENY_RISK",
        duplicate_of_claims="CLM-4000",
    ),
    quiet("a prior claim billed the NDC on another DOS", {"prior_claims": [_other_claim(prior_line("2025-11-01"))]}),
    quiet("the prior claim's line is not J7507", {"prior_claims": [_other_claim(prior_line(DOS, hcpcs_code="J7503"))]}),
    quiet(
        "an earlier version of this claim is never a prior line",
        {"claim.claim_version": 2, "prior_claims": [_other_claim(prior_line(DOS), claim_id="CLM-5001")]},
    ),
    quiet(
        "only the highest version of a prior claim counts (v2 moved the DOS)",
        {
            "prior_claims": [
                _other_claim(prior_line(DOS), version=1),
                _other_claim(prior_line("2025-11-01"), version=2),
            ]
        },
    ),
    fires(
        "only the highest version of a prior claim counts (v2 listed first, on the DOS)",
        {
            "prior_claims": [
                _other_claim(prior_line(DOS), version=2),
                _other_claim(prior_line("2025-11-01"), version=1),
            ]
        },
        "DENY_RISK",
        duplicate_of_claim_versions="2",
    ),
]


def _tokens(values: dict[str, str]) -> set[str]:
    return {token for value in values.values() for token in re.split(r"[,;\s]+", value) if token}


def test_duplicate_line_evidence_lists_every_duplicate() -> None:
    found = findings_for(
        {
            "lines+": [claim_line(2), claim_line(3)],
            "prior_claims": [_other_claim(prior_line(DOS))],
        },
        line=3,
    )["duplicate-line"]
    assert {"1", "2", "CLM-4000"} <= _tokens(found.evidence)


def test_duplicate_line_evidence_and_message_are_capped_at_ten_values_and_a_count() -> None:
    lines = [claim_line(number) for number in range(1, 51)]  # 50 identical lines (the 837P maximum)
    priors = [_other_claim(prior_line(DOS), claim_id=f"CLM-{number}") for number in range(200)]

    found = findings_for({"claim.lines": lines, "prior_claims": priors}, line=50)["duplicate-line"]

    assert found.evidence["duplicate_of_lines"] == "1,2,3,4,5,6,7,8,9,10 (+39 more)"
    assert found.evidence["duplicate_of_claims"].endswith(" (+190 more)")
    assert found.evidence["duplicate_of_claims"].count(",") == 9
    assert found.message.endswith("and 239 more.")
    assert len(found.message) < 400


def test_duplicate_line_counts_only_earlier_lines_of_the_same_ndc_and_date() -> None:
    lines = [claim_line(1), claim_line(2, date_of_service="2025-03-02"), claim_line(3), claim_line(4)]

    decision_lines = {number: findings_for({"claim.lines": lines}, line=number) for number in (1, 2, 3, 4)}

    assert "duplicate-line" not in decision_lines[1] and "duplicate-line" not in decision_lines[2]
    assert decision_lines[3]["duplicate-line"].evidence["duplicate_of_lines"] == "1"
    assert decision_lines[4]["duplicate-line"].evidence["duplicate_of_lines"] == "1,3"


DAYS_SUPPLY = [
    fires(
        "Medicare, DOS 2024-12-31: days_supply=31 > 30",
        {"line.date_of_service": "2024-12-31", "line.days_supply": 31},
        "DENY_RISK",
        max_days_supply="30",
        days_supply="31",
    ),
    quiet("Medicare, DOS 2024-12-31: days_supply=30", {"line.date_of_service": "2024-12-31", "line.days_supply": 30}),
    quiet("Medicare, DOS 2025-01-01: days_supply=31", {"line.date_of_service": "2025-01-01", "line.days_supply": 31}),
    quiet("Medicare, DOS 2025-01-01: days_supply=90", {"line.date_of_service": "2025-01-01", "line.days_supply": 90}),
    fires(
        "Medicare, DOS 2025-01-01: days_supply=91 > 90",
        {"line.date_of_service": "2025-01-01", "line.days_supply": 91},
        "DENY_RISK",
        max_days_supply="90",
    ),
    quiet("commercial: days_supply=90", {"payer": COMMERCIAL, "line.days_supply": 90}),
    fires(
        "commercial: days_supply=91 > 90",
        {"payer": COMMERCIAL, "line.days_supply": 91},
        "DENY_RISK",
        max_days_supply="90",
    ),
    quiet("Medicaid: days_supply=30", {"payer": MEDICAID}),
    fires(
        "Medicaid: days_supply=31 > 30", {"payer": MEDICAID, "line.days_supply": 31}, "DENY_RISK", max_days_supply="30"
    ),
    fires(
        "override max_days_supply=30 replaces Medicare's dated 90 (DOS 2025-12-01)",
        {"payer": MEDICARE_30_DAY, "line.days_supply": 31},
        "DENY_RISK",
        max_days_supply="30",
    ),
    quiet("line without days_supply", {"line.days_supply": None, "rx.days_supply": 120}),
]


MODIFIERS = [
    fires("KX 25: 25 is an E/M modifier", {"line.modifiers": ["KX", "25"]}, "DENY_RISK", modifiers="25"),
    fires(
        "every disallowed modifier is in evidence",
        {"line.modifiers": ["25", "KX", "59"]},
        "DENY_RISK",
        modifiers="25,59",
    ),
    quiet("KX EY GY 99", {"line.modifiers": ["KX", "EY", "GY", "99"]}),
    quiet("GA GZ (abn-modifier-conflict's case)", {"line.modifiers": ["GA", "GZ"]}),
    quiet("no modifier", {"line.modifiers": []}),
    fires(
        "an override's allowed_modifiers replaces the list (NO-EXTENDS allows only KX)",
        {"payer": {"payer_id": "NO-EXTENDS", "payer_type": "COMMERCIAL"}, "line.modifiers": ["KX", "GY"]},
        "DENY_RISK",
        modifiers="GY",
    ),
]


def test_wrong_product_is_one_finding_even_with_two_reasons() -> None:
    """NDC of J7508 and an ER prescription: one wrong-code finding on the line, never two."""
    found = findings_for({"line.ndc": ASTAGRAF_1MG, "rx.formulation": "EXTENDED_RELEASE"})
    assert found["wrong-code-for-product"].evidence["expected_code"] == "J7508"


def test_cyclosporine_named_on_the_line_is_not_a_coding_error() -> None:
    """Only tacrolimus products are another code's case; the overlap rule reports cyclosporine."""
    found = findings_for({"prescriptions+": [drug("RX-CSA", "cyclosporine")], "line.prescription_id": "RX-CSA"})
    assert "wrong-code-for-product" not in found


TIMELY_FILING = [
    fires(
        "Medicare: filed 366 days after the DOS",
        {"claim.event_time": "2026-12-02T10:00:00Z"},
        "DENY_RISK",
        filed_on="2026-12-02",
        timely_filing_days="365",
    ),
    fires(
        "commercial: filed 181 days after the DOS",
        {"claim.event_time": "2026-05-31T10:00:00Z", "payer": COMMERCIAL},
        "DENY_RISK",
        timely_filing_days="180",
    ),
    fires(
        "filed is the UTC date: 19:30 at -05:00 on day 365 is day 366",
        {"claim.event_time": "2026-12-01T19:30:00-05:00"},
        "DENY_RISK",
        filed_on="2026-12-02",
    ),
    quiet("exactly 365 days after the DOS is still in time", {"claim.event_time": "2026-12-01T10:00:00Z"}),
    quiet("commercial: exactly 180 days", {"claim.event_time": "2026-05-30T10:00:00Z", "payer": COMMERCIAL}),
    quiet("no event_time (an offline bundle): not checked", {}),
]

# The generic runner (tests/rules/test_cases.py) decides every case of every rule in this table.
CASES: dict[str, list[Any]] = {
    "timely-filing-expired": TIMELY_FILING,
    "wrong-code-for-product": WRONG_CODE,
    "ndc-missing": NDC_MISSING,
    "ndc-not-in-crosswalk": NDC_NOT_IN_CROSSWALK,
    "units-not-whole": UNITS_NOT_WHOLE,
    "units-mismatch-ndc": UNITS_MISMATCH,
    "duplicate-line": DUPLICATE_LINE,
    "days-supply-exceeds-limit": DAYS_SUPPLY,
    "modifier-not-allowed": MODIFIERS,
}
