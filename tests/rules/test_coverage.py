"""Transplant and coverage (rules.md), including the MEDICARE-only rules and where they run."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import (
    COMMERCIAL,
    DOS,
    DROP,
    MEDICAID,
    MEDICARE,
    MEDICARE_30_DAY,
    OTHER_PAYER,
    findings_for,
    fires,
    quiet,
)

TRANSPLANT_NOT_DOCUMENTED = [
    quiet("transplant record with a date", {}),
    fires("no transplant record", {"transplant": None}, "HOLD"),
    fires("transplant record absent from the claim", {"transplant": DROP}, "HOLD"),
    fires("transplant record without a date", {"transplant.transplant_date": None}, "HOLD", transplant_date=""),
    quiet("no discharge date is not this rule's concern", {"transplant.discharge_date": None}),
]


TRANSPLANT_AFTER_SERVICE = [
    quiet("transplant 2024-06-15 before DOS", {}),
    quiet(
        "transplant the day before DOS", {"transplant.transplant_date": "2025-11-30", "transplant.discharge_date": None}
    ),
    fires(
        "transplant on the DOS (≥)",
        {"transplant.transplant_date": DOS, "transplant.discharge_date": None},
        "DENY_RISK",
        transplant_date=DOS,
        date_of_service=DOS,
    ),
    fires(
        "transplant after the DOS",
        {"transplant.transplant_date": "2026-01-10", "transplant.discharge_date": None},
        "DENY_RISK",
    ),
    quiet("no transplant date: transplant-not-documented's case", {"transplant.transplant_date": None}),
    fires(
        "placeholder transplant date 9999-12-31",
        {"transplant.transplant_date": "9999-12-31", "transplant.discharge_date": None},
        "DENY_RISK",
    ),
]


SERVICE_BEFORE_DISCHARGE = [
    quiet("discharged long before", {}),
    quiet("DOS = discharge date", {"transplant.discharge_date": DOS}),
    fires(
        "DOS one day before discharge",
        {"transplant.discharge_date": "2025-12-02"},
        "DENY_RISK",
        discharge_date="2025-12-02",
        date_of_service=DOS,
    ),
    quiet("discharge date unknown", {"transplant.discharge_date": None}),
    quiet("no transplant record", {"transplant": None}),
]


DIAGNOSIS_NOT_COVERED = [
    *(
        quiet(f"{code} is covered", {"diagnosis_codes": [code]})
        for code in (
            "Z94.0",
            "Z940",
            "z94.1",
            "Z94.2",
            "Z94.3",
            "Z94.4",
            "Z94.81",
            "Z94.84",
            "Z94.89",
            "T86.10",
            "T86.11",
            "T86.5",
            "T86.810",
            "T86.850",
            "T86.891",
            "Z48.22",
            "D89.810",
        )
    ),
    quiet("one covered code among others is enough", {"diagnosis_codes": ["I10", "E11.9", "Z94.0"]}),
    fires("Z94.5 skin is not covered", {"diagnosis_codes": ["Z94.5"]}, "DENY_RISK", diagnosis_codes="Z945"),
    fires("Z94.6 bone is not covered", {"diagnosis_codes": ["Z94.6"]}, "DENY_RISK"),
    fires("Z94.7 cornea is not covered", {"diagnosis_codes": ["Z94.7"]}, "DENY_RISK"),
    fires("T86.82 skin graft complication is not covered", {"diagnosis_codes": ["T86.82"]}, "DENY_RISK"),
    fires("T86.9 unspecified organ is not covered", {"diagnosis_codes": ["T86.9"]}, "DENY_RISK"),
    fires("unrelated codes only", {"diagnosis_codes": ["I10", "E11.9"]}, "DENY_RISK", diagnosis_codes="I10,E119"),
    fires("no diagnosis code at all", {"diagnosis_codes": []}, "DENY_RISK"),
]


KX_MISSING = [
    quiet("KX billed after a dated transplant", {}),
    fires("no KX, transplant before DOS", {"line.modifiers": []}, "DENY_RISK", transplant_date="2024-06-15"),
    fires("other modifiers but no KX", {"line.modifiers": ["GY"]}, "DENY_RISK"),
    quiet("no KX, transplant date unknown", {"line.modifiers": [], "transplant.transplant_date": None}),
    quiet(
        "no KX, transplant on the DOS (not before)",
        {"line.modifiers": [], "transplant.transplant_date": DOS, "transplant.discharge_date": None},
    ),
    quiet("commercial pack: not a Medicare rule there", {"line.modifiers": [], "payer": COMMERCIAL}),
]


KX_UNSUPPORTED = [
    quiet("KX with a transplant date before DOS", {}),
    fires("KX, transplant date missing", {"transplant.transplant_date": None}, "DENY_RISK"),
    fires("KX, no transplant record", {"transplant": None}, "DENY_RISK"),
    fires(
        "KX, transplant on the DOS",
        {"transplant.transplant_date": DOS, "transplant.discharge_date": None},
        "DENY_RISK",
        transplant_date=DOS,
    ),
    fires(
        "KX, transplant after the DOS",
        {"transplant.transplant_date": "2026-02-01", "transplant.discharge_date": None},
        "DENY_RISK",
    ),
    quiet("no KX, no transplant date", {"line.modifiers": [], "transplant.transplant_date": None}),
    quiet("Medicaid pack: not a Medicare rule there", {"transplant": None, "payer": MEDICAID}),
]


PART_A = [
    quiet("Part A at transplant", {}),
    fires(
        "no Part A at transplant", {"coverage.part_a_at_transplant": False}, "DENY_RISK", part_a_at_transplant="false"
    ),
    quiet("unknown Part A (null)", {"coverage.part_a_at_transplant": None}),
    quiet("no coverage record", {"coverage": None}),
    quiet("commercial pack", {"coverage.part_a_at_transplant": False, "payer": COMMERCIAL}),
]


PART_B = [
    quiet("Part B active", {}),
    fires("Part B inactive, not in Part B-ID", {"coverage.part_b_active": False}, "DENY_RISK", part_b_active="false"),
    fires(
        "Part B inactive, Part B-ID unknown",
        {"coverage.part_b_active": False, "coverage.part_b_id_enrolled": None},
        "DENY_RISK",
    ),
    quiet(
        "Part B inactive but enrolled in Part B-ID",
        {"coverage.part_b_active": False, "coverage.part_b_id_enrolled": True},
    ),
    quiet("Part B unknown", {"coverage.part_b_active": None}),
    quiet("no coverage record", {"coverage": None}),
    quiet("Medicaid pack", {"coverage.part_b_active": False, "payer": MEDICAID}),
]


def _esrd(transplant_date: str, date_of_service: str, **more: Any) -> dict[str, Any]:
    return {
        "coverage.entitlement": "ESRD_ONLY",
        "transplant.transplant_date": transplant_date,
        "transplant.discharge_date": None,
        "line.date_of_service": date_of_service,
        **more,
    }


ESRD = [
    quiet("transplant 2022-05-10: covered through 2025-05-31", _esrd("2022-05-10", "2025-05-31")),
    fires(
        "transplant 2022-05-10: ended for DOS 2025-06-01",
        _esrd("2022-05-10", "2025-06-01"),
        "DENY_RISK",
        covered_through="2025-05-31",
        transplant_date="2022-05-10",
    ),
    quiet("transplant 2022-12-15: covered through 2025-12-31", _esrd("2022-12-15", "2025-12-31")),
    fires(
        "transplant 2022-12-15: ended for DOS 2026-01-01",
        _esrd("2022-12-15", "2026-01-01"),
        "DENY_RISK",
        covered_through="2025-12-31",
    ),
    quiet("transplant 2023-01-31: covered through 2026-01-31", _esrd("2023-01-31", "2026-01-31")),
    fires(
        "transplant 2021-02-28: ended after 2024-02-29",
        _esrd("2021-02-28", "2024-03-01"),
        "DENY_RISK",
        covered_through="2024-02-29",
    ),
    quiet("enrolled in Part B-ID", _esrd("2022-05-10", "2025-06-01", **{"coverage.part_b_id_enrolled": True})),
    fires("Part B-ID unknown", _esrd("2022-05-10", "2025-06-01", **{"coverage.part_b_id_enrolled": None}), "DENY_RISK"),
    quiet("entitlement AGE", _esrd("2022-05-10", "2025-06-01", **{"coverage.entitlement": "AGE"})),
    quiet("entitlement DISABILITY", _esrd("2022-05-10", "2025-06-01", **{"coverage.entitlement": "DISABILITY"})),
    quiet("liver, not kidney", _esrd("2022-05-10", "2025-06-01", **{"transplant.organ": "LIVER"})),
    quiet("commercial pack", _esrd("2022-05-10", "2025-06-01", payer=COMMERCIAL)),
    quiet("transplant date unknown", {"coverage.entitlement": "ESRD_ONLY", "transplant.transplant_date": None}),
    quiet(
        "transplant date far in the future (9998-01-01): coverage has not ended",
        _esrd("9998-01-01", DOS),
    ),
]


ABN = [
    quiet("KX only", {}),
    fires("GA without an ABN on file", {"line.modifiers": ["KX", "GA"]}, "DENY_RISK", abn_on_file="false"),
    quiet("GA with an ABN on file", {"line.modifiers": ["KX", "GA"], "claim.abn_on_file": True}),
    fires("GA with GZ, ABN on file", {"line.modifiers": ["KX", "GA", "GZ"], "claim.abn_on_file": True}, "DENY_RISK"),
    fires("GA with GZ, no ABN", {"line.modifiers": ["GA", "GZ"]}, "DENY_RISK"),
    quiet("GZ alone", {"line.modifiers": ["KX", "GZ"]}),
    quiet("commercial pack", {"line.modifiers": ["GA", "GZ"], "payer": COMMERCIAL}),
]


# --- MEDICARE-only rules run only where the pack sets medicare_rules ---------------------------

MEDICARE_RULES = {
    "kx-modifier-missing",
    "kx-modifier-unsupported",
    "part-a-not-at-transplant",
    "part-b-not-active",
    "esrd-coverage-ended",
    "abn-modifier-conflict",
}

# Every MEDICARE rule but kx-modifier-unsupported (it excludes kx-modifier-missing).
_MEDICARE_TRIPS = {
    **_esrd("2022-05-10", "2025-06-01"),
    "line.modifiers": ["GA"],
    "coverage.part_a_at_transplant": False,
    "coverage.part_b_active": False,
}
_KX_UNSUPPORTED_TRIP = {"transplant.transplant_date": None}


@pytest.mark.parametrize(
    ("payer", "runs"),
    [
        pytest.param(MEDICARE, True, id="medicare-dme"),
        pytest.param(MEDICARE_30_DAY, True, id="override extending medicare-dme"),
        pytest.param(
            {"payer_id": "NO-EXTENDS", "payer_type": "MEDICARE"}, True, id="override without extends, MEDICARE"
        ),
        pytest.param(COMMERCIAL, False, id="commercial-default"),
        pytest.param(MEDICAID, False, id="medicaid-default"),
        pytest.param(OTHER_PAYER, False, id="OTHER payer_type: commercial-default"),
        pytest.param(
            {"payer_id": "NO-EXTENDS", "payer_type": "MEDICAID"}, False, id="override without extends, MEDICAID"
        ),
        pytest.param({"payer_id": "ACME-HEALTH", "payer_type": "MEDICARE"}, False, id="override extending commercial"),
    ],
)
def test_medicare_rules_run_only_under_medicare_packs(payer: dict[str, str], runs: bool) -> None:
    fired = set(findings_for({**_MEDICARE_TRIPS, "payer": payer})) | set(
        findings_for({**_KX_UNSUPPORTED_TRIP, "payer": payer})
    )
    assert (fired & MEDICARE_RULES) == (MEDICARE_RULES if runs else set())


# The generic runner (tests/rules/test_cases.py) decides every case of every rule in this table.
CASES: dict[str, list[Any]] = {
    "transplant-not-documented": TRANSPLANT_NOT_DOCUMENTED,
    "transplant-after-service": TRANSPLANT_AFTER_SERVICE,
    "service-before-discharge": SERVICE_BEFORE_DISCHARGE,
    "diagnosis-not-covered": DIAGNOSIS_NOT_COVERED,
    "kx-modifier-missing": KX_MISSING,
    "kx-modifier-unsupported": KX_UNSUPPORTED,
    "part-a-not-at-transplant": PART_A,
    "part-b-not-active": PART_B,
    "esrd-coverage-ended": ESRD,
    "abn-modifier-conflict": ABN,
}
