"""Patient context: what the rules know about a patient besides the claim itself, as of a time.

The same structures serve the stream (fed record by record from the context topics and from
decided claims) and offline evaluation (built from a bundle's lists). docs/contract.md, "Time: what
a claim sees", is the specification:

- Every prescription and lab version is kept with its record time (None offline: always visible).
  A claim sees the versions whose time is ≤ its own; among the visible versions of one
  `prescription_id` or `observation_id` the replace rule picks the newest: a later `event_time`, or,
  where times are equal or absent, the later arrival. This is a versioned table in Kafka Streams'
  sense (`VersionedKeyValueStore.get(key, asOfTimestamp)`), so context read ahead of a claim never
  leaks into it.
- Prior claims are the patient's earlier claims in the partition (arrival order), highest version of
  each; they are not filtered by time.
- The context is bounded by the **horizon** (`Horizon`): a claim within its payer's timely-filing
  limit has a date of service no earlier than its filing date minus the widest `timely_filing_days`,
  so as a patient's claims advance, what no such claim can reach is dropped (`PatientRecord.prune`).
  What is kept, and why, is written on `prune`.

Records are held compactly, not as the pydantic events they were read from: the fields the rules
read (`RxFacts`, `LabFacts`, `PriorLine`, named tuples), stored per patient as a lab table in
columns (`worker.engine.lab_table`) and prescription and prior-claim tables of rows
(`worker.engine.rx_table`, `worker.engine.claim_table`), their identifiers in one byte string each
(`worker.engine.id_column`); a view rebuilds the named tuples.

This module is the view the rules read (`PatientContext`); the compact records and their versions
are in `worker.engine.records`, one patient's record and the horizon in `worker.engine.horizon`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from worker.engine.events import Claim, LabResult, Prescription
from worker.engine.records import NO_EXPIRED_CLAIMS, ExpiredClaims, LabFacts, PriorLine, RxFacts, prior_claim

# --- the view the rules read --------------------------------------------------------------------


class PatientContext:
    """A patient's context as of one time: what `Evaluator.decide` reads."""

    __slots__ = ("_by_group", "_by_id", "_labs", "expired", "lines", "prescriptions")

    def __init__(
        self,
        prescriptions: list[RxFacts],
        counted_labs: list[LabFacts],
        lines: list[PriorLine],
        expired: ExpiredClaims = NO_EXPIRED_CLAIMS,
    ) -> None:
        self.prescriptions = prescriptions  # newest version of each, in the order recorded
        self._labs = counted_labs  # counted labs, oldest first (effective time, then arrival)
        self.lines = lines  # J7507 lines of the prior claims held
        self.expired = expired
        self._by_id: dict[str, RxFacts] | None = None
        self._by_group: tuple[Mapping[str, str], dict[str, list[LabFacts]]] | None = None

    @classmethod
    def from_lists(
        cls,
        prescriptions: Iterable[Prescription],
        labs: Iterable[LabResult],
        prior_claims: Iterable[Claim],
    ) -> PatientContext:
        """Offline: a bundle's lists, every event visible (the bundle is the context)."""
        # The record builds views (PatientRecord.as_of), so it imports this module: import it here.
        from worker.engine.horizon import PatientRecord

        record = PatientRecord()
        for prescription in prescriptions:
            record.add_prescription(RxFacts.of(prescription, None))
        for lab in labs:
            record.add_lab(LabFacts.of(lab, None))
        for claim in prior_claims:
            if claim.j7507_lines:
                record.add_claim(prior_claim(claim))
        return record.as_of(None)

    def prescription(self, prescription_id: str) -> RxFacts | None:
        if self._by_id is None:
            self._by_id = {rx.prescription_id: rx for rx in self.prescriptions}
        return self._by_id.get(prescription_id)

    def counted_labs(self) -> list[LabFacts]:
        return self._labs

    def counted_labs_by_group(self, group_of: Mapping[str, str]) -> dict[str, list[LabFacts]]:
        """Counted labs per LOINC rule group, oldest first; `group_of` maps LOINC code to group."""
        cached = self._by_group
        if cached is not None and cached[0] is group_of:
            return cached[1]
        grouped: dict[str, list[LabFacts]] = {}
        for lab in self._labs:
            group = group_of.get(lab.loinc_code)
            if group is not None:
                grouped.setdefault(group, []).append(lab)
        self._by_group = (group_of, grouped)
        return grouped

    def prior_lines(self, excluding_claim_id: str) -> list[PriorLine]:
        """J7507 lines of the patient's other claims (highest version of each)."""
        lines: list[PriorLine] = []
        for prior in self.lines:  # a loop: a comprehension is a call of its own (rules/facts.py)
            if prior.claim_id != excluding_claim_id:
                lines.append(prior)
        return lines
