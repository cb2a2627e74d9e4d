"""Patient context: what the rules know about a patient besides the claim itself.

The same structure serves the stream (one `PatientContext` per patient, fed event by event from the
context topics and from decided claims) and offline evaluation (built from a bundle's lists).
Changelog semantics follow contract.md: a later event with the same prescription_id or
observation_id replaces the earlier one, where later means a later `event_time`, or, where times
are equal or absent, later in arrival order. Of several versions of one prior claim only the
highest `claim_version` is kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from itertools import count
from typing import Generic, TypeVar

from worker.events import Claim, LabResult, Prescription

T = TypeVar("T", Prescription, LabResult)

# One process-wide arrival counter: "later in the input" must compare across patients' stores
# and across restores, and an integer increment is the cheapest total order there is.
_arrivals = count()


def _replaces(new_time: datetime | None, old_time: datetime | None) -> bool:
    """Does an event at `new_time`, arriving after one at `old_time`, replace it?"""
    return new_time is None or old_time is None or new_time >= old_time


class _Changelog(Generic[T]):
    """Newest event per id, each with its arrival number (used to break effective-time ties)."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: dict[str, tuple[int, T]] = {}

    def add(self, key: str, event: T) -> bool:
        current = self.entries.get(key)
        if current is not None and not _replaces(event.event_time, current[1].event_time):
            return False
        self.entries[key] = (next(_arrivals), event)
        return True

    def __len__(self) -> int:
        return len(self.entries)


class PatientContext:
    """One patient's prescriptions, lab results and earlier claims."""

    __slots__ = ("_claims", "_labs", "_prescriptions")

    def __init__(self) -> None:
        self._prescriptions: _Changelog[Prescription] = _Changelog()
        self._labs: _Changelog[LabResult] = _Changelog()
        self._claims: dict[str, Claim] = {}

    @classmethod
    def from_lists(
        cls, prescriptions: Iterable[Prescription], labs: Iterable[LabResult], prior_claims: Iterable[Claim]
    ) -> PatientContext:
        context = cls()
        for prescription in prescriptions:
            context.add_prescription(prescription)
        for lab in labs:
            context.add_lab(lab)
        for claim in prior_claims:
            context.add_claim(claim)
        return context

    def add_prescription(self, prescription: Prescription) -> bool:
        return self._prescriptions.add(prescription.prescription_id, prescription)

    def add_lab(self, lab: LabResult) -> bool:
        return self._labs.add(lab.observation_id, lab)

    def add_claim(self, claim: Claim) -> bool:
        """Keep the highest version of each claim (a resubmission replaces the original)."""
        current = self._claims.get(claim.claim_id)
        if current is not None and current.claim_version > claim.claim_version:
            return False
        self._claims[claim.claim_id] = claim
        return True

    @property
    def prescriptions(self) -> list[Prescription]:
        return [prescription for _, prescription in self._prescriptions.entries.values()]

    def prescription(self, prescription_id: str) -> Prescription | None:
        entry = self._prescriptions.entries.get(prescription_id)
        return None if entry is None else entry[1]

    def counted_labs(self) -> list[LabResult]:
        """Counted labs (final, corrected, amended, with a value), oldest first.

        Order: effective time, then arrival, so the last of two labs at the same time is the newer.
        """
        counted = [entry for entry in self._labs.entries.values() if entry[1].counted]
        counted.sort(key=lambda entry: (entry[1].effective_time, entry[0]))
        return [lab for _, lab in counted]

    @property
    def prior_claims(self) -> list[Claim]:
        return list(self._claims.values())

    @property
    def sizes(self) -> tuple[int, int, int]:
        """(prescriptions, labs, prior claims) held, for the context-size metrics."""
        return len(self._prescriptions), len(self._labs), len(self._claims)
