"""Compact context records (`RxFacts`, `LabFacts`, `PriorLine`: the fields the rules read, as named
tuples, which are built faster than frozen dataclasses, or with slots) and `Versions`, the
versioned table of one prescription or lab with its replace rule.

The specification is docs/contract.md, "Time: what a claim sees"; worker/engine/context.py sums it up.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import count
from typing import Any, Generic, NamedTuple, TypeVar, overload

from worker.engine.events import COUNTED_LAB_STATUSES, Claim, LabResult, Prescription, ingredient_key
from worker.engine.exact import EXACT, whole_units
from worker.engine.reference import normalize_ndc

# One process-wide arrival counter: "later in the input" must compare across patients, stores and
# restores, and an integer increment is the cheapest total order there is.
_arrivals = count()

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_DAY_MS = 86_400_000

# The fields the compiled Avro readers (worker/codec/avro_fields.py) return for `RxFacts.read` and
# `LabFacts.read`: the patient first (where the facts go), then what the facts are built from.
RX_FIELDS = (
    "patient_id",
    "event_time",
    "prescription_id",
    "status",
    "ingredient",
    "formulation",
    "route",
    "strength_mg",
    "dose_mg",
    "doses_per_day",
    "days_supply",
    "start_date",
    "end_date",
    "dosing_weight_kg",
    "dispense_as_written",
    "clinical_justification",
)
LAB_FIELDS = ("patient_id", "event_time", "observation_id", "loinc_code", "value", "effective_time", "status")


def time_ms(moment: datetime) -> int:
    """A timestamp as integer milliseconds since the epoch (how Kafka stamps records).

    `(moment - _EPOCH) // timedelta(milliseconds=1)`, from the difference's fields: a timedelta
    keeps seconds and microseconds non-negative, so this floors exactly as the division does, at
    a third of its cost (three of these per lab result read)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _utc_date(moment: datetime) -> date:
    """The UTC calendar date of a time, as LabResult.effective_date (naive times are UTC)."""
    try:
        return moment.astimezone(UTC).date()
    except OverflowError:  # e.g. 0001-01-01T00:00+14:00 has no UTC date: keep its local date
        return moment.date()


def _event_ms(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    try:
        return time_ms(moment)
    except OverflowError:
        return None


# --- compact records ---------------------------------------------------------------------------


class RxFacts(NamedTuple):
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
            sys.intern(event.ingredient),  # a small vocabulary, repeated for every patient
            sys.intern(event.ingredient_key),
            event.formulation,
            event.route,
            _shared_value(event.strength_mg),
            _shared_value(event.dose_mg),
            event.doses_per_day,
            event.days_supply,
            _shared_date(event.start_date),
            None if event.end_date is None else _shared_date(event.end_date),
            _shared_value(event.dosing_weight_kg),
            event.dispense_as_written,
            event.clinical_justification,
            time if event_ms == time else event_ms,
            time,
            next(_arrivals),
        )

    @classmethod
    def read(cls, fields: tuple[Any, ...], time: int | None) -> RxFacts:
        """From the values of `RX_FIELDS`, as the compiled Avro reader returns them: equal to
        `RxFacts.of` of the validated event, without building it."""
        (
            _patient_id,
            event_ms,
            prescription_id,
            status,
            ingredient,
            formulation,
            route,
            strength_mg,
            dose_mg,
            doses_per_day,
            days_supply,
            start_date,
            end_date,
            dosing_weight_kg,
            dispense_as_written,
            clinical_justification,
        ) = fields
        return cls(
            prescription_id,
            status,
            sys.intern(ingredient),
            sys.intern(ingredient_key(ingredient)),
            formulation,
            route,
            _shared_value(strength_mg),
            _shared_value(dose_mg),
            doses_per_day,
            days_supply,
            _shared_date(start_date),
            None if end_date is None else _shared_date(end_date),
            _shared_value(dosing_weight_kg),
            dispense_as_written,
            clinical_justification,
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


class LabFacts(NamedTuple):
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
            _shared_value(event.value),
            _event_ms(event.effective_time) or 0,
            _shared_date(_utc_date(event.effective_time)),  # LabResult.effective_date, without its lock
            time if event_ms == time else event_ms,  # one int object where they agree (event-time stamps)
            time,
            next(_arrivals),
        )

    @classmethod
    def read(cls, fields: tuple[Any, ...], time: int | None) -> LabFacts:
        """From the values of `LAB_FIELDS`, as the compiled Avro reader returns them: equal to
        `LabFacts.of` of the validated event, without building it."""
        _patient_id, event_ms, observation_id, loinc_code, value, effective_ms, status = fields
        return cls(
            observation_id,
            sys.intern(loinc_code),
            status in COUNTED_LAB_STATUSES and value is not None,
            _shared_value(value),
            effective_ms,
            _shared_date_of(_EPOCH_ORDINAL + effective_ms // _DAY_MS),
            time if event_ms == time else event_ms,
            time,
            next(_arrivals),
        )


class PriorLine(NamedTuple):
    """A J7507 line of an earlier claim: the fields the rules read, its NDC in the crosswalk's form.

    A named tuple, as `LabFacts`: a claim's view builds its patient's prior lines from the columns
    of a `ClaimTable` (worker/engine/claim_table.py) at C speed."""

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
    claim_id, claim_version = claim.claim_id, claim.claim_version
    lines = []
    for line in claim.j7507_lines:  # a loop, not a generator: this runs for every decided claim
        ndc = line.ndc
        lines.append(
            PriorLine(
                claim_id,
                claim_version,
                line.line_number,
                _shared_value(line.units),
                _shared_date(line.date_of_service),
                line.days_supply,
                sys.intern(normalize_ndc(ndc)) if ndc and ndc.strip() else None,
            )
        )
    return tuple(lines)


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

# Many patients' labs, prescriptions and lines share dates and numbers (a level of 7.5 ng/mL, a dose of
# 2 mg, 60 units): one object per day and per value instead of one per record, up to a bound each
# (65,536 days is 179 years: a real stream never reaches it), so that unusual input cannot grow the
# tables without end.
_dates: dict[int, date] = {}
_values: dict[float, float] = {}
_MAX_SHARED = 1 << 16

K = TypeVar("K")
S = TypeVar("S")


def _shared(table: dict[K, S], key: K, value: S) -> S:
    shared = table.get(key)
    if shared is not None:
        return shared
    if len(table) < _MAX_SHARED:
        table[key] = value
    return value


@overload
def _shared_value(value: float) -> float: ...
@overload
def _shared_value(value: None) -> None: ...
@overload
def _shared_value(value: float | None) -> float | None: ...
def _shared_value(value: float | None) -> float | None:
    # Zero is left alone: 0.0 and -0.0 are equal keys, and a lab's sign must be kept as written.
    if not value:
        return value
    return _shared(_values, value, value)


def _shared_date(day: date) -> date:
    return _shared(_dates, day.toordinal(), day)


def _shared_date_of(ordinal: int) -> date:
    """The shared date object of a proleptic Gregorian ordinal (without building one to look it up)."""
    shared = _dates.get(ordinal)
    return shared if shared is not None else _shared(_dates, ordinal, date.fromordinal(ordinal))


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
