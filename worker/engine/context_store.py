"""All patients' context held by one worker, in buckets that follow partition ownership.

Patients are bucketed by partition number in the default co-partitioned scope, so a revoked
partition's patients are dropped whole, or held in one bucket in the global scope, where every
worker follows every context partition and a patient's events may sit in any of them (there, a
revoked claims partition takes only its patients' claim history with it).

Every write says whether it was late context (docs/contract.md): no later than a claim of the same
patient that was already decided. Every claim added advances its patient's horizon and prunes what no
later claim within its filing limit can need (`PatientRecord.prune`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC

from worker.engine.context import PatientContext
from worker.engine.events import Claim, LabResult, Prescription
from worker.engine.horizon import Horizon, PatientRecord
from worker.engine.records import LabFacts, RxFacts, prior_claim

CONTEXT_KINDS = ("patients", "prescriptions", "labs", "prior_claims")


class ContextStore:
    GLOBAL_BUCKET = -1

    def __init__(
        self,
        *,
        global_scope: bool = False,
        horizon: Horizon | None = None,
        lab_groups: Mapping[str, str] | None = None,
    ) -> None:
        """`horizon` None keeps everything (the reference the pruned store is tested against);
        `lab_groups` (LOINC code -> rule group): labs of other codes are not kept, no rule reads them."""
        self.global_scope = global_scope
        self.horizon = horizon
        self.lab_groups = lab_groups
        self._buckets: dict[int, dict[str, PatientRecord]] = {}
        self._claims_partition: dict[str, int] = {}  # global scope: where each patient's claims are
        self.sizes: Counter[str] = Counter(dict.fromkeys(CONTEXT_KINDS, 0))

    def _bucket(self, partition: int) -> dict[str, PatientRecord]:
        key = self.GLOBAL_BUCKET if self.global_scope else partition
        return self._buckets.setdefault(key, {})

    def _record(self, partition: int, patient_id: str) -> PatientRecord:
        bucket = self._bucket(partition)
        record = bucket.get(patient_id)
        if record is None:
            record = bucket[patient_id] = PatientRecord()
            self.sizes["patients"] += 1
        return record

    # --- writes -----------------------------------------------------------------------------------

    def add_prescription(self, partition: int, prescription: Prescription, time: int | None) -> bool:
        """Apply one prescription version with its record time; returns True when it is late."""
        return self.apply_prescription(partition, prescription.patient_id, RxFacts.of(prescription, time))

    def apply_prescription(self, partition: int, patient_id: str, version: RxFacts) -> bool:
        """`add_prescription` of a version already in its compact form (`RxFacts.of` or `.read`)."""
        record = self._record(partition, patient_id)
        self.sizes["prescriptions"] += record.add_prescription(version)
        return record.is_late(version.time)

    def add_lab(self, partition: int, lab: LabResult, time: int | None) -> bool:
        """Apply one lab version with its record time; returns True when it is late."""
        return self.apply_lab(partition, lab.patient_id, LabFacts.of(lab, time))

    def apply_lab(self, partition: int, patient_id: str, version: LabFacts) -> bool:
        """`add_lab` of a version already in its compact form (`LabFacts.of` or `.read`)."""
        if self.lab_groups is not None and version.loinc_code not in self.lab_groups:
            record = self._bucket(partition).get(patient_id)
            return record is not None and record.is_late(version.time)
        record = self._record(partition, patient_id)
        self.sizes["labs"] += record.add_lab(version)
        return record.is_late(version.time)

    def add_claim(self, partition: int, claim: Claim, time: int | None) -> None:
        """A claim decided (or replayed as history): it becomes a prior claim of the patient's later
        claims, and moves the patient's horizon."""
        record = self._record(partition, claim.patient_id)
        if self.global_scope:
            self._claims_partition[claim.patient_id] = partition
        if claim.j7507_lines:
            self.sizes["prior_claims"] += record.add_claim(prior_claim(claim))
        if time is not None and (record.decided_ms is None or time > record.decided_ms):
            record.decided_ms = time
        if claim.event_time is not None:
            try:
                filed = claim.event_time.astimezone(UTC).date()
            except OverflowError:
                filed = None
            if filed is not None and (record.filed_on is None or filed > record.filed_on):
                record.filed_on = filed
        if self.horizon is not None:
            sizes = self.sizes
            for kind, count in record.prune(self.horizon, record.decided_ms, self.lab_groups or {}).items():
                sizes[kind] -= count

    # --- reads ------------------------------------------------------------------------------------

    def as_of(self, partition: int, patient_id: str, time: int | None) -> PatientContext:
        """The context a claim of `partition` with record time `time` is decided with."""
        record = self._bucket(partition).get(patient_id)
        if record is None:
            return _EMPTY.as_of(None)
        return record.as_of(time)

    def record(self, partition: int, patient_id: str) -> PatientRecord | None:
        return self._bucket(partition).get(patient_id)

    def patients(self) -> int:
        return self.sizes["patients"]

    # --- ownership --------------------------------------------------------------------------------

    def drop(self, claims_partition: int) -> None:
        """Forget what belongs to a revoked or lost claims partition."""
        if not self.global_scope:
            for record in self._buckets.pop(claims_partition, {}).values():
                self._forget(record, clinical=True)
            return
        bucket = self._bucket(claims_partition)
        for patient_id, partition in list(self._claims_partition.items()):
            if partition == claims_partition:
                del self._claims_partition[patient_id]
                held = bucket.get(patient_id)
                if held is not None:
                    self._forget(held, clinical=False)

    def _forget(self, record: PatientRecord, *, clinical: bool) -> None:
        self.sizes["prior_claims"] -= len(record.claims)
        record.forget_claims()
        if clinical:
            self.sizes["patients"] -= 1
            self.sizes["prescriptions"] -= len(record.prescriptions)
            self.sizes["labs"] -= len(record.labs)


_EMPTY = PatientRecord()
