"""The as-of context feed: input records in, claims out with the context of their own time.

Kafka-free: it takes the records a consumer returned (anything with topic, partition, offset,
timestamp, key, value and headers) and leaves fetching, producing and committing to its caller. The
stream loop (`worker.stream.loop`) and the impact analysis over topics (`python -m worker impact`) both read
through it, so a claim is decided with the same context however it is read.

- Context records are decoded and applied to the versioned store with their time at once; one that
  cannot be decoded comes back as a `Rejected` for the caller to dead-letter.
- Claim records are decoded and queued in the time-ordered merge (`worker.stream.merge`); `ready()` yields
  each claim once its context is complete, in offset order per partition, with that context.
- Claims below a partition's replay point are history: the feed adds them to the claim history
  itself and yields nothing for them, so the context is rebuilt as of the first undecided claim.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

from pydantic import ValidationError

from worker.codec.avro import load_schema
from worker.codec.avro_fields import FieldReader, compile_fields, compile_record
from worker.codec.wire import WireFormat
from worker.config import TimestampSource, Topics
from worker.engine.context import PatientContext
from worker.engine.context_store import ContextStore
from worker.engine.events import Claim, LabResult, Prescription
from worker.engine.records import LAB_FIELDS, RX_FIELDS, LabFacts, RxFacts
from worker.stream.bounds import DEFAULT_MAX_CLAIM_LINES
from worker.stream.intake import SCHEMA_OF, Rejected, check_claim_bounds, read_event
from worker.stream.merge import QueuedClaim, TimeOrderedMerge, Tp

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InputRecord(Protocol):
    """The fields of kafka-python's ConsumerRecord the feed reads."""

    topic: str
    partition: int
    offset: int
    timestamp: int | None
    key: bytes | None
    value: bytes | None
    headers: Any


class ReadyClaim(NamedTuple):
    """A claim whose context is complete: decide it (or skip it: no J7507 line), then `decided()`.

    A named tuple: one is made per claim, and a frozen dataclass's `__init__` cost 1.5 µs."""

    partition: int
    record: InputRecord
    claim: Claim
    time: int  # record time, ms: the time the context is as of
    context: PatientContext

    @property
    def as_of(self) -> datetime:
        return _EPOCH + timedelta(milliseconds=self.time)


@dataclass(frozen=True, slots=True)
class UnreadableRecord:
    """Where a record the client could not parse was: its position, and no bytes."""

    topic: str
    partition: int
    offset: int
    timestamp: int | None = None
    key: bytes | None = None
    value: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """An input record that cannot be decoded or breaks the contract: dead-letter it."""

    partition: int
    record: InputRecord | UnreadableRecord
    rejected: Rejected


def record_time(record: InputRecord, event_time: datetime | None, source: TimestampSource) -> int:
    """A record's time (docs/contract.md): its Kafka timestamp, or with `event_time` the event's own.

    Falls back to the other one where the chosen one is missing, and to 0 where both are."""
    event_ms: int | None = None
    if event_time is not None:
        with contextlib.suppress(OverflowError):
            event_ms = (event_time - _EPOCH) // timedelta(milliseconds=1)
    return record_time_ms(record, event_ms, source)


def record_time_ms(record: InputRecord, event_ms: int | None, source: TimestampSource) -> int:
    """`record_time` with the event time already in epoch milliseconds."""
    kafka_time = record.timestamp if record.timestamp is not None and record.timestamp >= 0 else None
    first, second = (event_ms, kafka_time) if source == "event_time" else (kafka_time, event_ms)
    if first is not None:
        return int(first)
    return int(second) if second is not None else 0


# A context topic's fast path: its schema name, compiled reader, facts builder and store method.
_PlainRead = tuple[str, FieldReader, Callable[[tuple[Any, ...], int], Any], Callable[[int, str, Any], bool]]


class ContextFeed:
    def __init__(
        self,
        wire: WireFormat,
        topics: Topics,
        store: ContextStore,
        merge: TimeOrderedMerge,
        *,
        timestamp_source: TimestampSource = "kafka",
        max_claim_lines: int = DEFAULT_MAX_CLAIM_LINES,
        on_late: Callable[[str], None] = lambda topic: None,
    ) -> None:
        self.wire = wire
        self.topics = topics
        self.store = store
        self.merge = merge
        self.timestamp_source = timestamp_source
        self.max_claim_lines = max_claim_lines  # more is a contract dead letter (worker/stream/bounds.py)
        self.on_late = on_late  # called with the topic of each late context record
        self.history_replayed = 0  # claims added to the history while rebuilding
        # Plain records go straight to their compact facts; the rest take the checked read.
        self._plain: dict[str, _PlainRead] = {}
        for topic, schema_name, names, facts_of, apply in (
            (topics.prescriptions, SCHEMA_OF["prescription"], RX_FIELDS, RxFacts.read, store.apply_prescription),
            (topics.lab_results, SCHEMA_OF["lab"], LAB_FIELDS, LabFacts.read, store.apply_lab),
        ):
            reader = compile_fields(load_schema(schema_name), names)
            if reader is not None:
                self._plain[topic] = (schema_name, reader, facts_of, apply)
        self._claim_reader = compile_record(load_schema(SCHEMA_OF["claim"]))

    # --- context ----------------------------------------------------------------------------------

    def add_context(self, tp: Tp, records: Iterable[InputRecord]) -> list[RejectedRecord]:
        """Apply context records in offset order; returns those that must be dead-lettered."""
        rejected: list[RejectedRecord] = []
        plain = self._plain.get(tp[0])
        kafka_stamps = self.timestamp_source == "kafka"
        context_read = self.merge.context_read
        for record in records:
            time = self._apply_plain(tp, record, plain, kafka_stamps) if plain is not None else None
            if time is None:
                try:
                    time = self._apply(tp, record)
                except Rejected as error:
                    rejected.append(RejectedRecord(tp[1], record, error))
                    time = record_time(record, None, self.timestamp_source)
            context_read(tp, record.offset, time)
        return rejected

    def _apply(self, tp: Tp, record: InputRecord) -> int:
        """The checked read: decode, validate, apply; raises `Rejected` naming the problem."""
        if tp[0] == self.topics.prescriptions:
            prescription = read_event(self.wire, "prescription", record.key, record.value, Prescription)
            time = record_time(record, prescription.event_time, self.timestamp_source)
            late = self.store.add_prescription(tp[1], prescription, time)
        else:
            lab = read_event(self.wire, "lab", record.key, record.value, LabResult)
            time = record_time(record, lab.event_time, self.timestamp_source)
            late = self.store.add_lab(tp[1], lab, time)
        if late:
            self.on_late(tp[0])
        return time

    def _apply_plain(self, tp: Tp, record: InputRecord, plain: _PlainRead, kafka_stamps: bool) -> int | None:
        """The fast path: a record written with our schema, valid and keyed by its patient, read by
        the compiled reader straight into its facts (as the checked read would make them, tested).
        None for anything else, with nothing applied: the checked read decides, and names the problem."""
        schema_name, reader, facts_of, apply = plain
        value, key = record.value, record.key
        if value is None or key is None:
            return None
        body = self.wire.plain_body(schema_name, value)
        fields = reader(body) if body is not None else None
        if fields is None or key != fields[0].encode():
            return None
        stamp = record.timestamp
        if kafka_stamps and stamp is not None and stamp >= 0:
            time = stamp
        else:
            time = record_time_ms(record, fields[1], self.timestamp_source)
        if apply(tp[1], fields[0], facts_of(fields, time)):
            self.on_late(tp[0])
        return time

    # --- claims -----------------------------------------------------------------------------------

    def add_claims(self, partition: int, records: Iterable[InputRecord], epoch: int) -> None:
        """Queue claim records fetched by the claims poll numbered `epoch`.

        With Kafka timestamps a claim's time is on the record, so it waits in its queue as the
        record (its bytes, a fraction of a decoded claim's memory) and is decoded when its context
        is complete; with event times it must be decoded first to know its time."""
        for record in records:
            if self.timestamp_source == "kafka" and record.timestamp is not None and record.timestamp >= 0:
                self.merge.offer(partition, QueuedClaim(record.offset, int(record.timestamp), epoch, (record, None)))
                continue
            decoded = self._decode_claim(record)
            claim = decoded[0]
            time = record_time(record, claim.event_time if claim else None, self.timestamp_source)
            needs_context = claim is not None and bool(claim.j7507_lines)
            queued = QueuedClaim(record.offset, time, epoch, (record, decoded), needs_context=needs_context)
            self.merge.offer(partition, queued)

    def _decode_claim(self, record: InputRecord | UnreadableRecord) -> tuple[Claim | None, Rejected | None]:
        try:
            claim = self._read_plain_claim(record)
            if claim is None:
                claim = read_event(self.wire, "claim", record.key, record.value, Claim)
            check_claim_bounds(claim, self.max_claim_lines)
        except Rejected as error:
            return None, error
        return claim, None

    def _read_plain_claim(self, record: InputRecord | UnreadableRecord) -> Claim | None:
        """The fast path: a claim written with our schema, read by the compiled reader into the dict
        fastavro would give (tested equal) and validated by the same model, keyed by its patient.
        None for anything else: the checked read decides, and names the problem."""
        value, key, reader = record.value, record.key, self._claim_reader
        if value is None or key is None or reader is None:
            return None
        body = self.wire.plain_body(SCHEMA_OF["claim"], value)
        fields = reader(body) if body is not None else None
        if fields is None:
            return None
        try:
            claim = Claim.model_validate(fields)
        except ValidationError:
            return None
        # Exactly the patient's bytes, as on the context fast path; anything else: the checked read
        # applies the contract's key rule (intake.read_event) and names the problem.
        return claim if key == claim.patient_id.encode() else None

    def add_unreadable_claim(self, partition: int, record: UnreadableRecord, rejected: Rejected, epoch: int) -> None:
        """A claims record the client could not parse, queued in its place to be dead-lettered."""
        queued = QueuedClaim(record.offset, 0, epoch, (record, (None, rejected)), needs_context=False)
        self.merge.offer(partition, queued)

    def ready(self) -> Iterator[ReadyClaim | RejectedRecord]:
        """Claims whose context is complete, with it; history claims are absorbed here."""
        for partition, queued in self.merge.ready():
            record, decoded = queued.payload
            claim, rejected = decoded if decoded is not None else self._decode_claim(record)
            if queued.history:
                if claim is not None:  # a rejected one was dead-lettered when first read
                    self.store.add_claim(partition, claim, queued.time)
                    self.history_replayed += 1
                continue
            if rejected is not None:
                yield RejectedRecord(partition, record, rejected)
                continue
            assert claim is not None
            context = self.store.as_of(partition, claim.patient_id, queued.time) if claim.j7507_lines else _NONE
            yield ReadyClaim(partition, record, claim, queued.time, context)

    def decided(self, ready: ReadyClaim) -> None:
        """The claim was decided (or skipped): it is a prior claim of the patient's later claims."""
        self.store.add_claim(ready.partition, ready.claim, ready.time)


_NONE = PatientContext([], [], [])
