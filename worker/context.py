"""Patient context: what the rules know about a patient besides the claim itself.

The same structures serve the stream (fed event by event from the context topics and from decided
claims) and offline evaluation (built from a bundle's lists). Changelog semantics follow
contract.md: a later event with the same prescription_id or observation_id replaces the earlier one,
where later means a later `event_time`, or, where times are equal or absent, later in arrival order.
Of several versions of one prior claim only the highest `claim_version` is kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import count
from typing import Generic, TypeVar

from worker.events import Claim, ClaimLine, LabResult, Prescription
from worker.reference import normalize_ndc

T = TypeVar("T", Prescription, LabResult)

# One process-wide arrival counter: "later in the input" must compare across stores and restores,
# and an integer increment is the cheapest total order there is.
_arrivals = count()


def _replaces(new_time: datetime | None, old_time: datetime | None) -> bool:
    """Does an event at `new_time`, arriving after one at `old_time`, replace it?"""
    return new_time is None or old_time is None or new_time >= old_time


class _Changelog(Generic[T]):
    """Newest event per id, each with its arrival number (used to break effective-time ties)."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: dict[str, tuple[int, T]] = {}

    def add(self, key: str, event: T) -> int:
        """Returns 1 when the id is new, else 0 (replaced, or older than what is held)."""
        current = self.entries.get(key)
        if current is not None and not _replaces(event.event_time, current[1].event_time):
            return 0
        self.entries[key] = (next(_arrivals), event)
        return 0 if current is not None else 1


class ClinicalRecord:
    """One patient's prescriptions and lab results (from the two context topics).

    The ordered views the rules read are cached until the next change: in the stream a patient's
    record changes far less often than it is read (every claim of the patient reads it).
    """

    __slots__ = ("_counted_labs", "_labs_by_group", "_prescriptions_in_order", "labs", "prescriptions")

    def __init__(self) -> None:
        self.prescriptions: _Changelog[Prescription] = _Changelog()
        self.labs: _Changelog[LabResult] = _Changelog()
        self._counted_labs: list[LabResult] | None = None
        self._labs_by_group: tuple[Mapping[str, str], dict[str, list[LabResult]]] | None = None
        self._prescriptions_in_order: list[Prescription] | None = None

    def add_prescription(self, prescription: Prescription) -> int:
        self._prescriptions_in_order = None
        return self.prescriptions.add(prescription.prescription_id, prescription)

    def add_lab(self, lab: LabResult) -> int:
        self._counted_labs = None
        self._labs_by_group = None
        return self.labs.add(lab.observation_id, lab)

    def prescriptions_in_order(self) -> list[Prescription]:
        """Newest event per prescription, in the order they were recorded (last recorded last)."""
        if self._prescriptions_in_order is None:
            entries = sorted(self.prescriptions.entries.values(), key=lambda entry: entry[0])
            self._prescriptions_in_order = [prescription for _, prescription in entries]
        return self._prescriptions_in_order

    def counted_labs(self) -> list[LabResult]:
        """Counted labs (final, corrected, amended, with a value), oldest first.

        Order: effective time, then arrival, so the last of two labs at the same time is the newer.
        """
        if self._counted_labs is None:
            counted = [entry for entry in self.labs.entries.values() if entry[1].counted]
            counted.sort(key=lambda entry: (entry[1].effective_time, entry[0]))
            self._counted_labs = [lab for _, lab in counted]
        return self._counted_labs

    def counted_labs_by_group(self, group_of: Mapping[str, str]) -> dict[str, list[LabResult]]:
        """Counted labs per LOINC rule group (`group_of`: LOINC code -> group), oldest first."""
        cached = self._labs_by_group
        if cached is not None and cached[0] is group_of:
            return cached[1]
        grouped: dict[str, list[LabResult]] = {}
        for lab in self.counted_labs():
            group = group_of.get(lab.loinc_code)
            if group is not None:
                grouped.setdefault(group, []).append(lab)
        self._labs_by_group = (group_of, grouped)
        return grouped


@dataclass(frozen=True, slots=True)
class PriorLine:
    """A J7507 line of an earlier claim, with its NDC in the crosswalk's form."""

    claim_id: str
    claim_version: int
    line: ClaimLine
    ndc: str | None


class ClaimHistory:
    """One patient's earlier claims, highest version of each (from the claims topic)."""

    __slots__ = ("_j7507_lines", "claims")

    def __init__(self) -> None:
        self.claims: dict[str, Claim] = {}
        self._j7507_lines: list[PriorLine] | None = None

    def add(self, claim: Claim) -> int:
        """Keep the highest version of each claim; returns 1 when the claim id is new."""
        current = self.claims.get(claim.claim_id)
        if current is not None and current.claim_version > claim.claim_version:
            return 0
        self.claims[claim.claim_id] = claim
        self._j7507_lines = None
        return 0 if current is not None else 1

    def j7507_lines(self) -> list[PriorLine]:
        """The J7507 lines of every claim held (cached until the next claim arrives)."""
        if self._j7507_lines is None:
            self._j7507_lines = [
                PriorLine(claim.claim_id, claim.claim_version, line, normalize_ndc(line.ndc) if line.ndc else None)
                for claim in self.claims.values()
                for line in claim.lines
                if line.is_j7507
            ]
        return self._j7507_lines


_EMPTY_CLINICAL = ClinicalRecord()
_EMPTY_HISTORY = ClaimHistory()


class PatientContext:
    """The view the rules read: a patient's clinical record and claim history."""

    __slots__ = ("clinical", "history")

    def __init__(self, clinical: ClinicalRecord | None = None, history: ClaimHistory | None = None) -> None:
        self.clinical = clinical or ClinicalRecord()
        self.history = history or ClaimHistory()

    @classmethod
    def from_lists(
        cls, prescriptions: Iterable[Prescription], labs: Iterable[LabResult], prior_claims: Iterable[Claim]
    ) -> PatientContext:
        context = cls()
        for prescription in prescriptions:
            context.clinical.add_prescription(prescription)
        for lab in labs:
            context.clinical.add_lab(lab)
        for claim in prior_claims:
            context.history.add(claim)
        return context

    @property
    def prescriptions(self) -> list[Prescription]:
        return self.clinical.prescriptions_in_order()

    def prescription(self, prescription_id: str) -> Prescription | None:
        entry = self.clinical.prescriptions.entries.get(prescription_id)
        return None if entry is None else entry[1]

    def counted_labs(self) -> list[LabResult]:
        return self.clinical.counted_labs()

    @property
    def prior_claims(self) -> list[Claim]:
        return list(self.history.claims.values())

    def prior_lines(self, excluding_claim_id: str) -> list[PriorLine]:
        """J7507 lines of the patient's other claims (highest version of each)."""
        return [prior for prior in self.history.j7507_lines() if prior.claim_id != excluding_claim_id]


class ContextStore:
    """All patients' context held by one worker, in buckets that follow partition ownership.

    Claim history is bucketed by claims partition. Clinical records are bucketed by context
    partition number in the default co-partitioned scope (so a revoked partition's patients are
    dropped whole), or held in one bucket in the global scope, where every worker follows every
    context partition and a patient's events may sit in any of them.
    """

    GLOBAL_BUCKET = -1

    def __init__(self, global_scope: bool = False) -> None:
        self.global_scope = global_scope
        self._clinical: dict[int, dict[str, ClinicalRecord]] = {}
        self._history: dict[int, dict[str, ClaimHistory]] = {}
        self.sizes: Counter[str] = Counter()

    def _clinical_bucket(self, partition: int) -> dict[str, ClinicalRecord]:
        key = self.GLOBAL_BUCKET if self.global_scope else partition
        return self._clinical.setdefault(key, {})

    def _clinical_record(self, partition: int, patient_id: str) -> ClinicalRecord:
        bucket = self._clinical_bucket(partition)
        record = bucket.get(patient_id)
        if record is None:
            record = bucket[patient_id] = ClinicalRecord()
            self.sizes["patients"] += 1
        return record

    def add_prescription(self, partition: int, prescription: Prescription) -> None:
        record = self._clinical_record(partition, prescription.patient_id)
        self.sizes["prescriptions"] += record.add_prescription(prescription)

    def add_lab(self, partition: int, lab: LabResult) -> None:
        record = self._clinical_record(partition, lab.patient_id)
        self.sizes["labs"] += record.add_lab(lab)

    def add_claim(self, partition: int, claim: Claim) -> None:
        bucket = self._history.setdefault(partition, {})
        history = bucket.get(claim.patient_id)
        if history is None:
            history = bucket[claim.patient_id] = ClaimHistory()
        self.sizes["prior_claims"] += history.add(claim)

    def patient(self, claims_partition: int, patient_id: str) -> PatientContext:
        """The context a claim read from `claims_partition` is decided with (empty if unknown)."""
        key = self.GLOBAL_BUCKET if self.global_scope else claims_partition
        clinical = self._clinical.get(key, {}).get(patient_id, _EMPTY_CLINICAL)
        history = self._history.get(claims_partition, {}).get(patient_id, _EMPTY_HISTORY)
        return PatientContext(clinical, history)

    def drop(self, claims_partition: int) -> None:
        """Forget what belongs to a revoked or lost partition."""
        for history in self._history.pop(claims_partition, {}).values():
            self.sizes["prior_claims"] -= len(history.claims)
        if self.global_scope:
            return
        for record in self._clinical.pop(claims_partition, {}).values():
            self.sizes["patients"] -= 1
            self.sizes["prescriptions"] -= len(record.prescriptions.entries)
            self.sizes["labs"] -= len(record.labs.entries)
