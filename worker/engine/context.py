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

Records are held compactly (`RxFacts`, `LabFacts`, `PriorLine`: the fields the rules read, with
slots), not as the pydantic events they were read from.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Generic, TypeVar

from worker.engine.events import Claim, LabResult, Prescription
from worker.engine.exact import EXACT, whole_units
from worker.engine.reference import normalize_ndc

# One process-wide arrival counter: "later in the input" must compare across patients, stores and
# restores, and an integer increment is the cheapest total order there is.
_arrivals = count()

TACROLIMUS_LEVEL_GROUP = "tacrolimus_level"  # loinc_labs.csv rule_group of tacrolimus levels
# Claims reach the worker nearly, not exactly, in time order. A claim up to this much older (record
# time, filing date) than its patient's newest decided claim is still decided exactly as with an
# unbounded context; the horizon keeps that much more.
OUT_OF_ORDER_SLACK = timedelta(days=7)
_SLACK_MS = OUT_OF_ORDER_SLACK // timedelta(milliseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def time_ms(moment: datetime) -> int:
    """A timestamp as integer milliseconds since the epoch (how Kafka stamps records)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _event_ms(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    try:
        return time_ms(moment)
    except OverflowError:
        return None


# --- compact records ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RxFacts:
    """The fields of a PrescriptionRecorded version that the rules and the replace rule read."""

    prescription_id: str
    status: str
    ingredient: str
    ingredient_key: str
    formulation: str
    route: str
    strength_mg: float | None
    dose_mg: float | None
    doses_per_day: int | None
    days_supply: int | None
    start_date: date
    end_date: date | None
    dosing_weight_kg: float | None
    dispense_as_written: bool
    clinical_justification: str | None
    event_ms: int | None  # event_time, for the replace rule
    time: int | None  # record time (ms); None: visible at any time
    seq: int  # arrival order

    @classmethod
    def of(cls, event: Prescription, time: int | None) -> RxFacts:
        event_ms = _event_ms(event.event_time)
        return cls(
            event.prescription_id,
            event.status,
            event.ingredient,
            event.ingredient_key,
            event.formulation,
            event.route,
            event.strength_mg,
            event.dose_mg,
            event.doses_per_day,
            event.days_supply,
            event.start_date,
            event.end_date,
            event.dosing_weight_kg,
            event.dispense_as_written,
            event.clinical_justification,
            time if event_ms == time else event_ms,
            time,
            next(_arrivals),
        )

    def active_on(self, day: date) -> bool:
        """Active on DOS: ACTIVE or COMPLETED, started on or before it, not ended before it."""
        return (
            self.status in ("ACTIVE", "COMPLETED")
            and self.start_date <= day
            and (self.end_date is None or self.end_date >= day)
        )

    @property
    def justified(self) -> bool:
        return bool(self.clinical_justification and self.clinical_justification.strip())


@dataclass(frozen=True, slots=True)
class LabFacts:
    """The fields of a LabResultRecorded version that the rules and the replace rule read."""

    observation_id: str
    loinc_code: str  # interned: a handful of codes shared by every patient
    counted: bool  # FINAL, CORRECTED or AMENDED with a value
    value: float | None
    effective_ms: int  # effective_time, for ordering
    effective_date: date  # its UTC calendar date, for windows
    event_ms: int | None
    time: int | None
    seq: int

    @classmethod
    def of(cls, event: LabResult, time: int | None) -> LabFacts:
        event_ms = _event_ms(event.event_time)
        return cls(
            event.observation_id,
            sys.intern(event.loinc_code),
            event.counted,
            event.value,
            _event_ms(event.effective_time) or 0,
            _shared_date(event.effective_date),
            time if event_ms == time else event_ms,  # one int object where they agree (event-time stamps)
            time,
            next(_arrivals),
        )


@dataclass(frozen=True, slots=True)
class PriorLine:
    """A J7507 line of an earlier claim: the fields the rules read, its NDC in the crosswalk's form."""

    claim_id: str
    claim_version: int
    line_number: int
    units: float
    date_of_service: date
    days_supply: int | None
    ndc: str | None

    @property
    def line(self) -> PriorLine:
        """The line's own fields (`prior.line.units`), as rules read them of a claim line."""
        return self


PriorClaim = tuple[PriorLine, ...]  # the J7507 lines of one claim version (never empty)


def prior_claim(claim: Claim) -> PriorClaim:
    return tuple(
        PriorLine(
            claim.claim_id,
            claim.claim_version,
            line.line_number,
            line.units,
            _shared_date(line.date_of_service),
            line.days_supply,
            sys.intern(normalize_ndc(line.ndc)) if line.ndc and line.ndc.strip() else None,
        )
        for line in claim.lines
        if line.is_j7507
    )


@dataclass(frozen=True, slots=True)
class ExpiredClaims:
    """Running totals of prior claims dropped past the horizon: what lifetime caps and step therapy
    still need of them (`lifetime-cap-exceeded`, `step-therapy-not-met`)."""

    units: Decimal = Decimal(0)
    ndcs: frozenset[str] = frozenset()

    def plus(self, claim: PriorClaim) -> ExpiredClaims:
        # Summed as `lifetime-cap-exceeded` sums prior lines: exactly, each as its whole number of units.
        units = self.units
        for prior in claim:
            whole = whole_units(prior.units)
            if whole is not None:
                units = EXACT.add(units, whole)
        return ExpiredClaims(units, self.ndcs | {prior.ndc for prior in claim if prior.ndc})


NO_EXPIRED_CLAIMS = ExpiredClaims()

# Many patients' labs and lines share dates: one date object per day instead of one per record.
_dates: dict[int, date] = {}


def _shared_date(day: date) -> date:
    return _dates.setdefault(day.toordinal(), day)


# --- versions -----------------------------------------------------------------------------------

V = TypeVar("V", RxFacts, LabFacts)


def _replaces(new: RxFacts | LabFacts, old: RxFacts | LabFacts) -> bool:
    """Does `new`, arriving after `old`, replace it? A later or equal event_time does; so does a
    missing one on either side (then arrival order decides)."""
    return new.event_ms is None or old.event_ms is None or new.event_ms >= old.event_ms


def _visible(version: RxFacts | LabFacts, as_of: int | None) -> bool:
    return as_of is None or version.time is None or version.time <= as_of


class Versions(Generic[V]):
    """The versions of one prescription_id or observation_id: one (the usual case) or a list in
    arrival order. `newest(as_of)` is the version the replace rule picks among those visible."""

    @staticmethod
    def newest(held: V | list[V], as_of: int | None) -> V | None:
        if not isinstance(held, list):
            return held if _visible(held, as_of) else None
        winner: V | None = None
        for version in held:
            if _visible(version, as_of) and (winner is None or _replaces(version, winner)):
                winner = version
        return winner

    @staticmethod
    def add(held: V | list[V] | None, version: V) -> V | list[V]:
        if held is None:
            return version
        if isinstance(held, list):
            held.append(version)
            return held
        return [held, version]

    @staticmethod
    def settle(held: V | list[V], settled: int | None) -> V | list[V]:
        """Fold the versions every later claim sees (time ≤ `settled`) into the one they pick.

        Only a prefix in arrival order may be folded: the replace rule is applied in arrival order,
        and a version still invisible to some claim must keep its place after the earlier ones.
        """
        if not isinstance(held, list) or settled is None:
            return held
        cut = 0
        while cut < len(held) and held[cut].time is not None and held[cut].time <= settled:  # type: ignore[operator]
            cut += 1
        if cut < 2:
            return held
        winner = Versions.newest(held[:cut], None)
        assert winner is not None
        if cut == len(held):
            return winner
        kept: list[V] = [winner]
        kept.extend(held[cut:])
        return kept


# --- the horizon --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Horizon:
    """How far back a claim within its filing limit can reach, over every pack the worker uses."""

    timely_filing_days: int
    lab_lookback_days: int


# --- one patient --------------------------------------------------------------------------------


class PatientRecord:
    """One patient's versioned prescriptions and labs, prior claims and horizon bookkeeping."""

    __slots__ = ("_view", "claims", "decided_ms", "expired", "filed_on", "labs", "newest_ms", "prescriptions")

    def __init__(self) -> None:
        self.prescriptions: dict[str, RxFacts | list[RxFacts]] = {}
        self.labs: dict[str, LabFacts | list[LabFacts]] = {}
        self.claims: dict[str, PriorClaim] = {}
        self.expired = NO_EXPIRED_CLAIMS
        self.newest_ms: int | None = None  # newest record time of any context version held
        self.decided_ms: int | None = None  # newest record time of a claim decided (late context)
        self.filed_on: date | None = None  # newest filing date of a claim (the horizon's reference)
        self._view: PatientContext | None = None  # the context as of "now", until the next change

    # --- writes ---

    def _touch(self, time: int | None) -> None:
        self._view = None
        if time is not None and (self.newest_ms is None or time > self.newest_ms):
            self.newest_ms = time

    def add_prescription(self, version: RxFacts) -> int:
        """Returns 1 when the prescription id is new."""
        self._touch(version.time)
        held = self.prescriptions.get(version.prescription_id)
        self.prescriptions[version.prescription_id] = Versions.add(held, version)
        return int(held is None)

    def add_lab(self, version: LabFacts) -> int:
        self._touch(version.time)
        held = self.labs.get(version.observation_id)
        self.labs[version.observation_id] = Versions.add(held, version)
        return int(held is None)

    def add_claim(self, claim: PriorClaim) -> int:
        """Keep the highest version of each claim; returns 1 when the claim id is new."""
        claim_id, version = claim[0].claim_id, claim[0].claim_version
        current = self.claims.get(claim_id)
        if current is not None and current[0].claim_version > version:
            return 0
        self._view = None
        self.claims[claim_id] = claim
        return int(current is None)

    def forget_claims(self) -> None:
        """Drop the claim history and what was derived from it (a revoked claims partition)."""
        self._view = None
        self.claims.clear()
        self.expired = NO_EXPIRED_CLAIMS
        self.decided_ms = None
        self.filed_on = None

    def is_late(self, time: int | None) -> bool:
        """Late context: no later than a claim of this patient that was already decided."""
        return time is not None and self.decided_ms is not None and time <= self.decided_ms

    # --- reads ---

    def as_of(self, as_of: int | None) -> PatientContext:
        """The context a claim with record time `as_of` sees (None: everything held)."""
        if as_of is None or self.newest_ms is None or as_of >= self.newest_ms:
            if self._view is None:
                self._view = self._build(None)
            return self._view
        return self._build(as_of)

    def _build(self, as_of: int | None) -> PatientContext:
        prescriptions = [rx for held in self.prescriptions.values() if (rx := Versions.newest(held, as_of))]
        prescriptions.sort(key=lambda rx: rx.seq)
        labs = [lab for held in self.labs.values() if (lab := Versions.newest(held, as_of)) and lab.counted]
        labs.sort(key=lambda lab: (lab.effective_ms, lab.seq))
        lines = [prior for claim in self.claims.values() for prior in claim]
        return PatientContext(prescriptions, labs, lines, self.expired)

    # --- the horizon ---

    def prune(self, horizon: Horizon, settled: int | None, group_of: Mapping[str, str]) -> Counter[str]:
        """Drop what no claim within its filing limit, filed on or after `self.filed_on`, can need.

        `group_of` maps LOINC codes to rule groups. `settled`: the newest decided claim's record time;
        later claims are at or after it (less `OUT_OF_ORDER_SLACK`), so versions up to that are folded.
        With D0 = filed_on − the slack − the widest timely_filing_days (the earliest date of service
        such a claim can have), this keeps:

        - labs with an effective date on or after D0 − the widest lab_lookback_days (every lab
          window), and the newest counted tacrolimus level before that (`interacting-drug-without-
          level` looks back to a drug's start date);
        - prescriptions that can be active on D0 or later, or were recorded on or after D0 (a line
          may name one whatever its status);
        - prior claims with a line on or after D0 or whose supply runs past D0 (`duplicate-line`,
          `early-refill`); the others go into running totals (`ExpiredClaims`);
        - every version not yet settled, so context read ahead of a claim stays invisible to it.

        Returns how many entries of each kind were dropped.
        """
        dropped: Counter[str] = Counter()
        if self.filed_on is None:
            return dropped
        settled = None if settled is None else settled - _SLACK_MS
        try:
            earliest_service = self.filed_on - OUT_OF_ORDER_SLACK - timedelta(days=horizon.timely_filing_days)
            earliest_lab = earliest_service - timedelta(days=horizon.lab_lookback_days)
        except OverflowError:
            return dropped
        self._view = None
        for key, rx_held in list(self.prescriptions.items()):
            rx_held = self.prescriptions[key] = Versions.settle(rx_held, settled)
            if isinstance(rx_held, RxFacts) and _rx_expired(rx_held, earliest_service):
                del self.prescriptions[key]
                dropped["prescriptions"] += 1
        newest_old_level: tuple[int, int, str] | None = None
        old: list[str] = []
        for key, lab_held in list(self.labs.items()):
            lab_held = self.labs[key] = Versions.settle(lab_held, settled)
            if isinstance(lab_held, LabFacts) and lab_held.effective_date < earliest_lab:
                old.append(key)
                if lab_held.counted and group_of.get(lab_held.loinc_code) == TACROLIMUS_LEVEL_GROUP:
                    candidate = (lab_held.effective_ms, lab_held.seq, key)
                    if newest_old_level is None or candidate > newest_old_level:
                        newest_old_level = candidate
        for key in old:
            if newest_old_level is None or key != newest_old_level[2]:
                del self.labs[key]
                dropped["labs"] += 1
        for claim_id, claim in list(self.claims.items()):
            if all(_line_expired(prior, earliest_service) for prior in claim):
                del self.claims[claim_id]
                self.expired = self.expired.plus(claim)
                dropped["prior_claims"] += 1
        return dropped


def _rx_expired(rx: RxFacts, earliest_service: date) -> bool:
    if rx.end_date is not None and rx.end_date < earliest_service:
        can_be_active = False
    else:
        can_be_active = rx.status in ("ACTIVE", "COMPLETED")
    if can_be_active:
        return False
    recorded = rx.event_ms if rx.event_ms is not None else rx.time
    return recorded is not None and _EPOCH + timedelta(milliseconds=recorded) < datetime.combine(
        earliest_service, datetime.min.time(), UTC
    )


def _line_expired(line: PriorLine, earliest_service: date) -> bool:
    if line.date_of_service >= earliest_service:
        return False
    try:
        supply_end = line.date_of_service + timedelta(days=max(line.days_supply or 0, 0))
    except OverflowError:
        return False
    return supply_end <= earliest_service


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
        return [prior for prior in self.lines if prior.claim_id != excluding_claim_id]
