"""Contract-shaped sample records (docs/contract.md), one of each type, shared by the tests.

Records are in the decoded shape (dates and datetimes as Python values), every optional field set
so that a default would differ from the value. Tests copy before changing them (`copy.deepcopy`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

PATIENT_ID = "P-EX1"

# Records in the decoded shape, every optional field set (so a default differs from the value).
# Taken from the first example bundle (tests/fixtures/bundles.jsonl), with the empty optionals filled in.
J7507_LINE: dict[str, Any] = {
    "line_number": 1,
    "hcpcs_code": "J7507",
    "modifiers": ["KX"],
    "units": 300.0,
    "charge_amount": "410.00",
    "date_of_service": date(2025, 12, 1),
    "ndc": "00469065773",
    "ndc_quantity": 60.0,
    "ndc_unit": "UN",
    "days_supply": 30,
    "prescription_id": "RX-EX1",
}
CLAIM: dict[str, Any] = {
    "event_id": "9b2f6c1e-4a57-4d0e-9a51-2f0c8e7d1a01",
    "event_time": datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
    "claim_id": "EX-1001",
    "claim_version": 2,
    "patient_id": PATIENT_ID,
    "payer": {"payer_id": "MEDICARE-DME-JC", "payer_type": "MEDICARE", "plan_id": "DME-JC-B"},
    "coverage": {
        "part_a_at_transplant": True,
        "part_b_active": True,
        "entitlement": "DISABILITY",
        "part_b_id_enrolled": False,
    },
    "transplant": {
        "organ": "LIVER",
        "transplant_date": date(2025, 8, 20),
        "discharge_date": date(2025, 9, 1),
        "facility": "University Hospital",
        "date_source": "ORDERING_PHYSICIAN",
    },
    "diagnosis_codes": ["Z94.4"],
    "prior_authorization": {
        "number": "PA-2025-0042",
        "status": "APPROVED",
        "valid_from": date(2025, 9, 1),
        "valid_to": date(2026, 8, 31),
    },
    "abn_on_file": True,
    "billing_provider_npi": "1003000134",
    "ordering_provider_npi": "1003000126",
    "dispensing_pharmacy_npi": "1003000142",
    "lines": [
        J7507_LINE,
        {
            "line_number": 2,
            "hcpcs_code": "J7517",
            "modifiers": [],
            "units": 8.0,
            "charge_amount": None,
            "date_of_service": date(2025, 12, 1),
            "ndc": None,
            "ndc_quantity": None,
            "ndc_unit": None,
            "days_supply": None,
            "prescription_id": None,
        },
    ],
}
PRESCRIPTION: dict[str, Any] = {
    "event_id": "5d1e0f7a-22c4-4a8b-8f6e-6a3c9b0d4e12",
    "event_time": datetime(2025, 9, 1, 14, 5, 30, tzinfo=UTC),
    "prescription_id": "RX-EX1",
    "patient_id": PATIENT_ID,
    "status": "ACTIVE",
    "ingredient": "tacrolimus",
    "formulation": "IMMEDIATE_RELEASE",
    "route": "ORAL",
    "strength_mg": 5.0,
    "dose_mg": 5.0,
    "doses_per_day": 2,
    "days_supply": 30,
    "start_date": date(2025, 9, 1),
    "end_date": date(2026, 3, 1),
    "dosing_weight_kg": 92.0,
    "prescriber_npi": "1003000126",
    "dispense_as_written": True,
    "clinical_justification": "Brand required: unstable levels on generic.",
    "rxnorm_code": "42316",
    "ndc": "00469065773",
}
LAB: dict[str, Any] = {
    "event_id": "c0a8e3f4-0b1d-4c55-9e3a-7d2f1b6a8c90",
    "event_time": datetime(2025, 11, 20, 15, 0, tzinfo=UTC),
    "observation_id": "O-1",
    "patient_id": PATIENT_ID,
    "loinc_code": "11253-2",
    "display": "Tacrolimus [Mass/volume] in Blood",
    "value": 9.1,
    "unit": "ng/mL",
    "effective_time": datetime(2025, 11, 20, 9, 30, tzinfo=UTC),
    "status": "FINAL",
}
FINDING: dict[str, Any] = {
    "rule_id": "kx-modifier-missing",
    "family": "coverage",
    "outcome": "DENY_RISK",
    "message": "The transplant date precedes the date of service but the KX modifier is absent.",
    "evidence": {"transplant_date": "2025-08-20", "date_of_service": "2025-12-01", "modifiers": ""},
    "fix": "Add KX once the ordering physician's transplant date is on file.",
    "expected_carc": "CO-4",
    "policy_ref": "A52474",
}
DECISION: dict[str, Any] = {
    "decision_id": "3f6b0c52d1e9a8b7",
    "claim_id": "EX-1001",
    "claim_version": 2,
    "claim_event_id": "9b2f6c1e-4a57-4d0e-9a51-2f0c8e7d1a01",
    "patient_id": PATIENT_ID,
    "decided_at": datetime(2026, 3, 2, 10, 0, 1, 250_000, tzinfo=UTC),
    "context_as_of": datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC),
    "outcome": "DENY_RISK",
    "rule_pack": {"name": "medicare-dme", "version": "2026.03.1"},
    "worker_version": "0.1.0",
    "source": {"topic": "ehr.claims.v1", "partition": 3, "offset": 1_234_567_890_123},
    "findings": [{**FINDING, "rule_id": "claim-note", "outcome": "INFO", "evidence": {}}],
    "lines": [
        {
            "line_number": 1,
            "hcpcs_code": "J7507",
            "outcome": "DENY_RISK",
            "findings": [FINDING, {**FINDING, "rule_id": "trough-missing", "family": "labs", "outcome": "HOLD"}],
        }
    ],
}
RECORDS = {
    "ClaimSubmitted": CLAIM,
    "PrescriptionRecorded": PRESCRIPTION,
    "LabResultRecorded": LAB,
    "ClaimDecision": DECISION,
}
