"""The stream's context store: versions as of a time, changelog semantics, the horizon, buckets by partition."""

from __future__ import annotations

from typing import Any

from worker.engine.context_store import ContextStore
from worker.engine.events import Claim, LabResult, Prescription
from worker.engine.horizon import Horizon


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


def claim(
    claim_id: str, version: int, patient: str = "P1", dos: str = "2025-03-01", filed: str | None = None, **line: Any
) -> Claim:
    return Claim.model_validate(
        {
            "claim_id": claim_id,
            "claim_version": version,
            "patient_id": patient,
            "event_time": filed,
            "payer": {"payer_id": "X", "payer_type": "MEDICARE"},
            "diagnosis_codes": ["Z94.0"],
            "lines": [
                {"line_number": 1, "hcpcs_code": "J7507", "units": 30, "date_of_service": dos, "ndc": None} | line
            ],
        }
    )


T = 1_000_000  # record times (ms) in the tests below: T, 2T, ... in arrival order unless said


def lab_at(observation_id: str, value: float, effective: str, loinc: str = "11253-2") -> LabResult:
    return LabResult.model_validate(
        {
            "observation_id": observation_id,
            "patient_id": "P1",
            "loinc_code": loinc,
            "value": value,
            "effective_time": effective,
            "status": "FINAL",
            "event_time": effective,
        }
    )


def test_a_later_event_replaces_an_earlier_one_and_an_older_one_does_not() -> None:
    store = ContextStore()
    store.add_prescription(0, rx("RX1", status="ACTIVE", when="2025-01-02T00:00:00Z"), None)
    store.add_prescription(0, rx("RX1", status="STOPPED", when="2025-01-03T00:00:00Z"), None)
    store.add_prescription(0, rx("RX1", status="ON_HOLD", when="2025-01-01T00:00:00Z"), None)  # older
    patient = store.as_of(0, "P1", None)
    assert [p.status for p in patient.prescriptions] == ["STOPPED"]
    assert store.sizes["prescriptions"] == 1


def test_equal_or_missing_event_times_let_the_later_arrival_win() -> None:
    store = ContextStore()
    store.add_lab(0, lab("O1", 9.0, "2025-02-01T09:00:00Z"), None)
    store.add_lab(0, lab("O1", 25.0, "2025-02-01T09:00:00Z", status="CORRECTED"), None)
    assert [item.value for item in store.as_of(0, "P1", None).counted_labs()] == [25.0]


def test_only_the_highest_claim_version_is_kept() -> None:
    store = ContextStore()
    store.add_claim(3, claim("C1", 2), None)
    store.add_claim(3, claim("C1", 1), None)
    assert [(p.claim_id, p.claim_version) for p in store.as_of(3, "P1", None).prior_lines("other")] == [("C1", 2)]
    assert store.sizes["prior_claims"] == 1


def test_partition_scope_drops_a_revoked_partition_whole() -> None:
    store = ContextStore()
    store.add_prescription(1, rx("RX1"), None)
    store.add_prescription(2, rx("RX2", patient="P2"), None)
    store.add_claim(1, claim("C1", 1), None)
    store.drop(1)
    assert store.as_of(1, "P1", None).prescriptions == []
    assert store.as_of(1, "P1", None).prior_lines("other") == []
    assert [p.prescription_id for p in store.as_of(2, "P2", None).prescriptions] == ["RX2"]
    assert dict(store.sizes) == {"patients": 1, "prescriptions": 1, "labs": 0, "prior_claims": 0}


def test_global_scope_finds_context_from_any_partition_and_keeps_it_on_revoke() -> None:
    store = ContextStore(global_scope=True)
    store.add_prescription(5, rx("RX1"), None)  # the patient's claims live in partition 1
    store.add_claim(1, claim("C1", 1), None)
    assert [p.prescription_id for p in store.as_of(1, "P1", None).prescriptions] == ["RX1"]
    store.drop(1)
    assert [p.prescription_id for p in store.as_of(1, "P1", None).prescriptions] == ["RX1"]
    assert store.as_of(1, "P1", None).prior_lines("other") == []


def test_unknown_patients_get_an_empty_context_without_growing_the_store() -> None:
    store = ContextStore()
    context = store.as_of(0, "nobody", None)
    assert context.prescriptions == [] and context.counted_labs() == [] and context.prior_lines("other") == []
    assert sum(store.sizes.values()) == 0


# --- as of a time ------------------------------------------------------------------------------------


def test_a_claim_sees_the_versions_recorded_up_to_its_time_and_equal_times_are_visible() -> None:
    store = ContextStore()
    store.add_prescription(0, rx("RX1", status="ACTIVE", when="2025-01-02T00:00:00Z"), 1 * T)
    store.add_prescription(0, rx("RX1", status="ENTERED_IN_ERROR", when="2025-01-03T00:00:00Z"), 3 * T)
    store.add_lab(0, lab("O1", 9.0, "2025-01-02T00:00:00Z"), 2 * T)

    assert store.as_of(0, "P1", T - 1).prescriptions == []
    assert [p.status for p in store.as_of(0, "P1", T).prescriptions] == ["ACTIVE"]
    assert [lab.value for lab in store.as_of(0, "P1", 2 * T).counted_labs()] == [9.0]
    assert [p.status for p in store.as_of(0, "P1", 3 * T - 1).prescriptions] == ["ACTIVE"]
    assert [p.status for p in store.as_of(0, "P1", 3 * T).prescriptions] == ["ENTERED_IN_ERROR"]
    assert [p.status for p in store.as_of(0, "P1", None).prescriptions] == ["ENTERED_IN_ERROR"]


def test_among_visible_versions_the_replace_rule_still_decides() -> None:
    store = ContextStore()
    # Recorded (record time) in this order, but the second carries an older event_time: it never wins.
    store.add_prescription(0, rx("RX1", status="ACTIVE", when="2025-01-05T00:00:00Z"), 1 * T)
    store.add_prescription(0, rx("RX1", status="STOPPED", when="2025-01-04T00:00:00Z"), 2 * T)
    assert [p.status for p in store.as_of(0, "P1", 2 * T).prescriptions] == ["ACTIVE"]


def test_context_no_later_than_a_decided_claim_is_late() -> None:
    store = ContextStore()
    store.add_claim(0, claim("C1", 1, filed="2025-03-01T10:00:00Z"), 5 * T)
    assert store.add_lab(0, lab("O1", 9.0, "2025-02-01T09:00:00Z"), 5 * T) is True  # equal: late
    assert store.add_lab(0, lab("O2", 9.0, "2025-02-01T09:00:00Z"), 4 * T) is True
    assert store.add_lab(0, lab("O3", 9.0, "2025-02-01T09:00:00Z"), 6 * T) is False
    assert store.add_prescription(0, rx("RX1", patient="P2"), 1 * T) is False  # another patient


# --- the horizon ---------------------------------------------------------------------------------------

HORIZON = Horizon(timely_filing_days=365, lab_lookback_days=90)
GROUPS = {"11253-2": "tacrolimus_level", "2160-0": "creatinine"}


def bounded() -> ContextStore:
    return ContextStore(horizon=HORIZON, lab_groups=GROUPS)


def test_labs_older_than_every_window_a_claim_in_time_can_have_are_dropped_but_the_newest_level_stays() -> None:
    store = bounded()
    # Filed 2026-06-01: the earliest DOS in time is 2025-05-25 (365 days and the 7-day out-of-order
    # slack), its lab window starts 2025-02-24.
    store.add_lab(0, lab_at("OLD-LEVEL", 7.0, "2025-01-10T08:00:00Z"), T)
    store.add_lab(0, lab_at("OLDER-LEVEL", 6.0, "2024-12-10T08:00:00Z"), T)
    store.add_lab(0, lab_at("OLD-CREATININE", 1.1, "2025-01-10T08:00:00Z", loinc="2160-0"), T)
    store.add_lab(0, lab_at("EDGE", 1.2, "2025-02-24T08:00:00Z", loinc="2160-0"), T)
    store.add_claim(0, claim("C1", 1, dos="2026-06-01", filed="2026-06-01T10:00:00Z"), 2 * T)

    kept = {lab.observation_id for lab in store.as_of(0, "P1", None).counted_labs()}
    assert kept == {"OLD-LEVEL", "EDGE"}
    assert store.sizes["labs"] == 2


def test_labs_of_codes_no_rule_reads_are_not_kept() -> None:
    store = bounded()
    store.add_lab(0, lab_at("HB", 13.0, "2026-01-10T08:00:00Z", loinc="718-7"), T)
    assert store.as_of(0, "P1", None).counted_labs() == []
    assert store.sizes["labs"] == 0


def test_prescriptions_that_cannot_be_active_in_time_are_dropped() -> None:
    store = bounded()
    store.add_prescription(0, rx("ENDED", start_date="2024-01-01", end_date="2025-05-24"), T)
    store.add_prescription(0, rx("ENDS-ON-EDGE", start_date="2024-01-01", end_date="2025-05-25"), T)
    store.add_prescription(0, rx("OPEN", start_date="2024-01-01"), T)
    store.add_prescription(0, rx("STOPPED-LONG-AGO", status="STOPPED", when="2025-01-01T00:00:00Z"), T)
    store.add_prescription(0, rx("STOPPED-RECENTLY", status="STOPPED", when="2026-01-01T00:00:00Z"), T)
    store.add_claim(0, claim("C1", 1, dos="2026-06-01", filed="2026-06-01T10:00:00Z"), 2 * T)

    kept = {p.prescription_id for p in store.as_of(0, "P1", None).prescriptions}
    assert kept == {"ENDS-ON-EDGE", "OPEN", "STOPPED-RECENTLY"}


def test_prior_claims_past_the_horizon_become_running_totals() -> None:
    store = bounded()
    store.add_claim(
        0, claim("OLD", 1, dos="2025-04-01", filed="2025-04-01T10:00:00Z", days_supply=30, ndc="00781210201"), T
    )
    store.add_claim(0, claim("RUNS-PAST", 1, dos="2025-05-15", filed="2025-05-15T10:00:00Z", days_supply=30), T)
    store.add_claim(0, claim("NEW", 1, dos="2026-06-01", filed="2026-06-01T10:00:00Z"), 2 * T)

    context = store.as_of(0, "P1", None)
    assert {prior.claim_id for prior in context.prior_lines("other")} == {"RUNS-PAST", "NEW"}
    assert context.expired.units == 30
    assert context.expired.ndcs == {"00781210201"}
    assert store.sizes["prior_claims"] == 2


def test_versions_every_later_claim_sees_are_folded_and_later_ones_kept() -> None:
    store = bounded()
    day = 86_400_000
    store.add_prescription(0, rx("RX1", status="ACTIVE", when="2026-01-01T00:00:00Z"), 1 * day)
    store.add_prescription(0, rx("RX1", status="ON_HOLD", when="2026-01-02T00:00:00Z"), 2 * day)
    store.add_prescription(0, rx("RX1", status="STOPPED", when="2026-01-03T00:00:00Z"), 25 * day)  # in the slack
    store.add_prescription(0, rx("RX1", status="ACTIVE", when="2026-01-04T00:00:00Z"), 40 * day)  # read ahead
    store.add_claim(0, claim("C1", 1, dos="2026-01-05", filed="2026-01-05T10:00:00Z"), 30 * day)

    record = store.record(0, "P1")
    assert record is not None
    held = dict(record.prescriptions.entries())["RX1"]
    # The two versions older than the claim less the 7-day slack are folded into the one they pick.
    assert isinstance(held, list) and [v.status for v in held] == ["ON_HOLD", "STOPPED", "ACTIVE"]
    assert [p.status for p in store.as_of(0, "P1", 24 * day).prescriptions] == ["ON_HOLD"]
    assert [p.status for p in store.as_of(0, "P1", 30 * day).prescriptions] == ["STOPPED"]
    assert [p.status for p in store.as_of(0, "P1", 40 * day).prescriptions] == ["ACTIVE"]
