"""Order and quantity (rules.md): prescription, strength, quantity, refills, dose per kg."""

from __future__ import annotations

import re
from typing import Any

from .conftest import (
    DOS,
    DROP,
    GENERIC_05MG,
    PROGRAF_5MG,
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

# The baseline's matched prescription: 4 mg twice a day, 30 days → expected 240 units (1 unit = 1 mg).

NO_ACTIVE_PRESCRIPTION = [
    quiet("named prescription ACTIVE", {}),
    quiet("named prescription COMPLETED", {"rx.status": "COMPLETED"}),
    fires("named prescription unknown", {"line.prescription_id": "RX-NOPE"}, "DENY_RISK", prescription_id="RX-NOPE"),
    fires("named prescription STOPPED", {"rx.status": "STOPPED"}, "DENY_RISK", status="STOPPED"),
    fires("named prescription ON_HOLD", {"rx.status": "ON_HOLD"}, "DENY_RISK"),
    fires("named prescription ENTERED_IN_ERROR", {"rx.status": "ENTERED_IN_ERROR"}, "DENY_RISK"),
    quiet("start_date = DOS", {"rx.start_date": DOS}),
    fires("start_date = DOS + 1", {"rx.start_date": "2025-12-02"}, "DENY_RISK"),
    quiet("end_date = DOS", {"rx.end_date": DOS}),
    fires("end_date = DOS - 1", {"rx.end_date": "2025-11-30"}, "DENY_RISK", end_date="2025-11-30"),
    quiet(
        "named active prescription of the wrong product (wrong-code-for-product's case)",
        {"rx.formulation": "EXTENDED_RELEASE"},
    ),
    quiet("unnamed line, IR oral tacrolimus active", {"line.prescription_id": None}),
    fires(
        "unnamed line, only extended-release tacrolimus active",
        {"line.prescription_id": None, "rx.formulation": "EXTENDED_RELEASE"},
        "DENY_RISK",
    ),
    fires(
        "unnamed line, IR tacrolimus only sublingual",
        {"line.prescription_id": None, "rx.route": "SUBLINGUAL"},
        "DENY_RISK",
    ),
    fires("unnamed line, IR tacrolimus stopped", {"line.prescription_id": DROP, "rx.status": "STOPPED"}, "DENY_RISK"),
    fires(
        "unnamed line, only cyclosporine active",
        {"line.prescription_id": None, "prescriptions": [drug("RX-CSA", "cyclosporine")]},
        "DENY_RISK",
    ),
    # Superseded events: the newest event per prescription_id wins (contract.md).
    fires(
        "a later event (in the list) stops the prescription",
        {"prescriptions+": [prescription("RX-TAC-1", status="STOPPED", end_date="2025-11-15")]},
        "DENY_RISK",
    ),
    quiet(
        "a later event (in the list) reactivates the prescription",
        {"rx.status": "STOPPED", "prescriptions+": [prescription("RX-TAC-1")]},
    ),
    quiet(
        "a later event_time wins over a later position",
        {
            "rx.event_time": "2025-11-02T08:00:00Z",
            "prescriptions+": [prescription("RX-TAC-1", status="STOPPED", event_time="2025-11-01T08:00:00Z")],
        },
    ),
    fires(
        "equal event_time: the later in the list wins",
        {
            "rx.event_time": "2025-11-01T08:00:00Z",
            "prescriptions+": [prescription("RX-TAC-1", status="STOPPED", event_time="2025-11-01T08:00:00Z")],
        },
        "DENY_RISK",
    ),
    fires(
        "absent event_time on the later event: the later in the list wins",
        {
            "rx.event_time": "2025-11-01T08:00:00Z",
            "prescriptions+": [prescription("RX-TAC-1", status="STOPPED")],
        },
        "DENY_RISK",
    ),
    quiet(
        "absent event_time on the earlier event: the later in the list wins",
        {
            "rx.status": "STOPPED",
            "prescriptions+": [prescription("RX-TAC-1", event_time="2025-10-01T08:00:00Z")],
        },
    ),
]


STRENGTH_MISMATCH = [
    quiet("1 mg NDC, 1 mg prescription", {}),
    fires(
        "5 mg NDC, 1 mg prescription",
        {"line.ndc": PROGRAF_5MG, "line.ndc_quantity": 48},
        "HOLD",
        ndc_strength_mg="5",
        prescription_strength_mg="1",
    ),
    fires("0.5 mg NDC, 1 mg prescription", {"line.ndc": GENERIC_05MG, "line.ndc_quantity": 480}, "HOLD"),
    quiet("prescription strength unknown", {"rx.strength_mg": None, "line.ndc": PROGRAF_5MG}),
    quiet("NDC not in the crosswalk: strength unknown", {"line.ndc": UNKNOWN_NDC}),
    quiet("no NDC", {"line.ndc": None}),
    fires(
        "unnamed line: matched is the active IR prescription with the latest start_date",
        {
            "line.prescription_id": None,
            "prescriptions+": [prescription("RX-TAC-NEW", start_date="2025-10-01", strength_mg=0.5)],
        },
        "HOLD",
        prescription_id="RX-TAC-NEW",
    ),
    quiet(
        "unnamed line: a later-starting prescription that is stopped is not matched",
        {
            "line.prescription_id": None,
            "prescriptions+": [prescription("RX-TAC-NEW", start_date="2025-10-01", strength_mg=0.5, status="STOPPED")],
        },
    ),
    fires(
        "unnamed line, equal latest start dates: the one recorded last is matched (docstring)",
        {
            "line.prescription_id": None,
            "prescriptions+": [
                prescription("RX-A", start_date="2025-10-01", strength_mg=1.0),
                prescription("RX-B", start_date="2025-10-01", strength_mg=0.5),
            ],
        },
        "HOLD",
        prescription_id="RX-B",
    ),
    fires(
        "unnamed line, equal latest start dates: an update makes a prescription the one recorded last (docstring)",
        {
            "line.prescription_id": None,
            "prescriptions+": [
                prescription("RX-B", start_date="2025-10-01", strength_mg=0.5),
                prescription("RX-A", start_date="2025-10-01", strength_mg=1.0),
                prescription("RX-B", start_date="2025-10-01", strength_mg=0.5, dose_mg=4.0),
            ],
        },
        "HOLD",
        prescription_id="RX-B",
    ),
    quiet(
        "named but unknown: no fallback to another active prescription",
        {"line.prescription_id": "RX-NOPE", "rx.strength_mg": 5.0},
    ),
    fires(
        "named prescription whatever its status",
        {"rx.status": "STOPPED", "rx.strength_mg": 5.0},
        "HOLD",
        prescription_strength_mg="5",
    ),
]


QUANTITY_EXCEEDS = [
    quiet("units=240 = expected", {}),
    quiet("units=264 = expected × 1.1 (at the limit)", {"line.units": 264, "line.ndc_quantity": 264}),
    fires(
        "units=265 > 264",
        {"line.units": 265, "line.ndc_quantity": 265},
        "DENY_RISK",
        units="265",
        expected_units="240",
    ),
    fires(
        "the line's days_supply (15) is used: expected 120",
        {"line.days_supply": 15},
        "DENY_RISK",
        expected_units="120",
        days_supply="15",
    ),
    quiet("the prescription's days_supply when the line has none", {"line.days_supply": None, "rx.days_supply": 30}),
    quiet("no dose_mg: no check", {"rx.dose_mg": None, "line.units": 9999}),
    quiet("no doses_per_day: no check", {"rx.doses_per_day": None, "line.units": 9999}),
    quiet("no days supply anywhere: no check", {"line.days_supply": None, "rx.days_supply": None, "line.units": 9999}),
    quiet("no matched prescription: no check", {"line.prescription_id": "RX-NOPE", "line.units": 9999}),
    fires(
        "units=300: evidence carries the tolerance",
        {"line.units": 300, "line.ndc_quantity": 300},
        "DENY_RISK",
        quantity_tolerance="0.1",
    ),
]


QUANTITY_BELOW = [
    quiet("units=240 = expected", {}),
    quiet("units=216 = expected × 0.9 (at the limit)", {"line.units": 216, "line.ndc_quantity": 216}),
    fires("units=215 < 216", {"line.units": 215, "line.ndc_quantity": 215}, "HOLD", units="215", expected_units="240"),
    fires(
        "units billed as capsules: 60 × 5 mg billed as 60 (expected 300 for 5 mg twice a day)",
        {"rx.dose_mg": 5.0, "rx.strength_mg": 5.0, "line.ndc": PROGRAF_5MG, "line.units": 60, "line.ndc_quantity": 60},
        "HOLD",
        expected_units="300",
    ),
    fires(
        "the prescription's days_supply (60) when the line has none: expected 480",
        {"line.days_supply": None, "rx.days_supply": 60},
        "HOLD",
        expected_units="480",
    ),
    quiet("no dose_mg: no check", {"rx.dose_mg": None, "line.units": 1}),
    quiet("no matched prescription: no check", {"line.prescription_id": "RX-NOPE", "line.units": 1}),
]


def _prior(
    date_of_service: str, days_supply: int | None = 30, *, claim_id: str = "CLM-4000", version: int = 1
) -> dict[str, Any]:
    return prior_claim(claim_id, prior_line(date_of_service, days_supply=days_supply), version=version)


# DOS 2025-12-01, window 10 days: a 30-day supply from D runs out at D + 30.
EARLY_REFILL = [
    quiet("no prior claims", {}),
    quiet("prior 2025-11-01 × 30: 0 days left", {"prior_claims": [_prior("2025-11-01")]}),
    quiet("prior 2025-11-11 × 30: 10 days left (at the window)", {"prior_claims": [_prior("2025-11-11")]}),
    fires(
        "prior 2025-11-12 × 30: 11 days left",
        {"prior_claims": [_prior("2025-11-12")]},
        "HOLD",
        days_remaining="11",
        prior_claim_id="CLM-4000",
        refill_window_days="10",
    ),
    fires("prior 2025-11-20 × 30: 19 days left", {"prior_claims": [_prior("2025-11-20")]}, "HOLD", days_remaining="19"),
    quiet("prior on the same DOS (duplicate-line's case)", {"prior_claims": [_prior(DOS)]}),
    quiet("prior after the DOS", {"prior_claims": [_prior("2025-12-05")]}),
    quiet("prior line without days_supply", {"prior_claims": [_prior("2025-11-20", None)]}),
    quiet(
        "an earlier version of this claim never counts",
        {"claim.claim_version": 2, "prior_claims": [_prior("2025-11-20", claim_id="CLM-5001")]},
    ),
    quiet(
        "only the highest version of a prior claim counts (v2 moved the DOS back)",
        {"prior_claims": [_prior("2025-11-20", version=1), _prior("2025-11-01", version=2)]},
    ),
    fires(
        "only the highest version of a prior claim counts (v2, listed first, is early)",
        {"prior_claims": [_prior("2025-11-20", version=2), _prior("2025-11-01", version=1)]},
        "HOLD",
        days_remaining="19",
    ),
    quiet(
        "a non-J7507 prior line does not count",
        {"prior_claims": [prior_claim("CLM-4000", prior_line("2025-11-20", hcpcs_code="J7517"))]},
    ),
    quiet(
        "lines of the claim being evaluated are never prior lines",
        {"lines+": [claim_line(2, date_of_service="2025-11-20")]},
    ),
    fires(
        "an override's refill_window_days (3): prior 2025-11-05 × 30 leaves 4 days",
        {"payer": {"payer_id": "NO-EXTENDS", "payer_type": "MEDICARE"}, "prior_claims": [_prior("2025-11-05")]},
        "HOLD",
        days_remaining="4",
        refill_window_days="3",
    ),
    quiet("the built-in window (10) for the same prior", {"prior_claims": [_prior("2025-11-05")]}),
]


def test_early_refill_evidence_lists_every_early_prior_line() -> None:
    found = findings_for(
        {"prior_claims": [_prior("2025-11-20", claim_id="CLM-4000"), _prior("2025-11-15", claim_id="CLM-4100")]}
    )["early-refill"]
    tokens = {token for value in found.evidence.values() for token in re.split(r"[,;\s]+", value)}
    assert {"CLM-4000", "CLM-4100"} <= tokens


# 4 mg × 2 / 80 kg = 0.1 mg/kg/day in the baseline; the limit is 0.4.
DOSE_PER_KG = [
    quiet("0.1 mg/kg/day", {}),
    quiet("8 mg/day at 20 kg = 0.4 (at the limit)", {"rx.dosing_weight_kg": 20}),
    fires(
        "8 mg/day at 19.9 kg = 0.402",
        {"rx.dosing_weight_kg": 19.9},
        "HOLD",
        daily_dose_mg="8",
        dosing_weight_kg="19.9",
        max_mg_per_kg_day="0.4",
    ),
    quiet("16 mg × 2 at 80 kg = 0.4", {"rx.dose_mg": 16}),
    fires("16.5 mg × 2 at 80 kg = 0.4125", {"rx.dose_mg": 16.5}, "HOLD", mg_per_kg_day="0.4125"),
    quiet("no dosing weight: no check", {"rx.dosing_weight_kg": None, "rx.dose_mg": 100}),
    quiet("zero dosing weight: no check", {"rx.dosing_weight_kg": 0, "rx.dose_mg": 100}),
    quiet("no doses_per_day: no check", {"rx.doses_per_day": None, "rx.dose_mg": 100}),
    quiet("no matched prescription: no check", {"line.prescription_id": "RX-NOPE", "rx.dose_mg": 100}),
]


# The generic runner (tests/rules/test_cases.py) decides every case of every rule in this table.
CASES: dict[str, list[Any]] = {
    "no-active-prescription": NO_ACTIVE_PRESCRIPTION,
    "prescription-strength-mismatch": STRENGTH_MISMATCH,
    "quantity-exceeds-prescription": QUANTITY_EXCEEDS,
    "quantity-below-prescription": QUANTITY_BELOW,
    "early-refill": EARLY_REFILL,
    "dose-above-weight-norm": DOSE_PER_KG,
}
