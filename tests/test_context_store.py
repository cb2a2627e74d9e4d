"""The stream's context store: changelog semantics, buckets by partition, sizes for the metrics."""

from __future__ import annotations

from typing import Any

from worker.context import ContextStore
from worker.events import Claim, LabResult, Prescription


def rx(
    prescription_id: str, patient: str = "P1", when: str | None = "2025-01-01T00:00:00Z", **fields: Any
) -> Prescription:
    record = {
        "prescription_id": prescription_id,
        "patient_id": patient,
        "status": "ACTIVE",
        "ingredient": "tacrolimus",
        "formulation": "IMMEDIATE_RELEASE",
        "route": "ORAL",
        "start_date": "2025-01-01",
        "event_time": when,
    }
    return Prescription.model_validate(record | fields)


def lab(observation_id: str, value: float, when: str, patient: str = "P1", status: str = "FINAL") -> LabResult:
    return LabResult.model_validate(
        {
            "observation_id": observation_id,
            "patient_id": patient,
            "loinc_code": "11253-2",
            "value": value,
            "effective_time": "2025-02-01T08:00:00Z",
            "status": status,
            "event_time": when,
        }
    )


def claim(claim_id: str, version: int, patient: str = "P1") -> Claim:
    return Claim.model_validate(
        {
            "claim_id": claim_id,
            "claim_version": version,
            "patient_id": patient,
            "payer": {"payer_id": "X", "payer_type": "MEDICARE"},
            "diagnosis_codes": ["Z94.0"],
            "lines": [{"line_number": 1, "hcpcs_code": "J7507", "units": 30, "date_of_service": "2025-03-01"}],
        }
    )


def test_a_later_event_replaces_an_earlier_one_and_an_older_one_does_not() -> None:
    store = ContextStore()
    store.add_prescription(0, rx("RX1", status="ACTIVE", when="2025-01-02T00:00:00Z"))
    store.add_prescription(0, rx("RX1", status="STOPPED", when="2025-01-03T00:00:00Z"))
    store.add_prescription(0, rx("RX1", status="ON_HOLD", when="2025-01-01T00:00:00Z"))  # arrives late, older
    patient = store.patient(0, "P1")
    assert [p.status for p in patient.prescriptions] == ["STOPPED"]
    assert store.sizes["prescriptions"] == 1


def test_equal_or_missing_event_times_let_the_later_arrival_win() -> None:
    store = ContextStore()
    store.add_lab(0, lab("O1", 9.0, "2025-02-01T09:00:00Z"))
    store.add_lab(0, lab("O1", 25.0, "2025-02-01T09:00:00Z", status="CORRECTED"))
    assert [item.value for item in store.patient(0, "P1").counted_labs()] == [25.0]


def test_only_the_highest_claim_version_is_kept() -> None:
    store = ContextStore()
    store.add_claim(3, claim("C1", 2))
    store.add_claim(3, claim("C1", 1))
    assert [(c.claim_id, c.claim_version) for c in store.patient(3, "P1").prior_claims] == [("C1", 2)]
    assert store.sizes["prior_claims"] == 1


def test_partition_scope_drops_a_revoked_partition_whole() -> None:
    store = ContextStore()
    store.add_prescription(1, rx("RX1"))
    store.add_prescription(2, rx("RX2", patient="P2"))
    store.add_claim(1, claim("C1", 1))
    store.drop(1)
    assert store.patient(1, "P1").prescriptions == []
    assert store.patient(1, "P1").prior_claims == []
    assert [p.prescription_id for p in store.patient(2, "P2").prescriptions] == ["RX2"]
    assert dict(store.sizes) == {"patients": 1, "prescriptions": 1, "labs": 0, "prior_claims": 0}


def test_global_scope_finds_context_from_any_partition_and_keeps_it_on_revoke() -> None:
    store = ContextStore(global_scope=True)
    store.add_prescription(5, rx("RX1"))  # the patient's claims live in partition 1
    store.add_claim(1, claim("C1", 1))
    assert [p.prescription_id for p in store.patient(1, "P1").prescriptions] == ["RX1"]
    store.drop(1)
    assert [p.prescription_id for p in store.patient(1, "P1").prescriptions] == ["RX1"]
    assert store.patient(1, "P1").prior_claims == []


def test_unknown_patients_get_an_empty_context_without_growing_the_store() -> None:
    store = ContextStore()
    context = store.patient(0, "nobody")
    assert context.prescriptions == [] and context.counted_labs() == [] and context.prior_claims == []
    assert sum(store.sizes.values()) == 0
