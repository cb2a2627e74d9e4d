"""Guarded outputs: every decision and dead letter is produced per record, and none can stop the loop.

A record the producer or the broker refuses for what it is (too large for the producer's request
limit or the topic's `max.message.bytes`, or otherwise invalid) is replaced by a smaller one that
can be produced, in stages:

- a decision that cannot be produced becomes a dead letter of its claim, reason `other`, with a
  message naming the limit;
- a dead letter is first sent as is (original key, value and headers; null header values as empty,
  and a record with neither key nor value as an empty value with `original_empty: true`);
- if that does not fit or is refused, the original is cut to fit the output limit, with
  `original_size`/`original_sha256` (and `original_key_*`) saying what the whole original was;
- if even that is refused, a marker with the source position and reason and no original bytes.

Only failures that say nothing about the record (broker down, timeouts, authorisation) raise
`DeliveryError`: the batch's offsets are then not committed and the loop stops, as before.

Outputs are acknowledged in `complete()`; it returns the tickets of the decisions the broker took,
in sending order, so the caller can record them and commit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import structlog
from kafka import errors as kafka_errors

from worker.errors import DeliveryError
from worker.observability import Metrics
from worker.stream.dlq import (
    HEADER_ORIGINAL_HEADERS_DROPPED,
    HEADER_ORIGINAL_KEY_SHA256,
    HEADER_ORIGINAL_KEY_SIZE,
    HEADER_ORIGINAL_SHA256,
    HEADER_ORIGINAL_SIZE,
    OWN_HEADERS,
    DeadLetter,
    dead_letter,
)
from worker.stream.intake import Rejected

log = structlog.get_logger("worker.outputs")

Headers = list[tuple[str, bytes]]
T = TypeVar("T")

# Room for the record batch and produce request framing around one record (kafka-python checks the
# estimated record size, with its batch header, against max_request_size).
FRAMING_BYTES = 1024
DEFAULT_MAX_REQUEST_SIZE = 1_048_576  # kafka-python's default max_request_size
# Errors that are about the record itself: produce a smaller one instead. (Anything else, e.g. a
# timeout or an authorisation failure, is about the broker and stops the loop.)
RECORD_REFUSED: tuple[type[BaseException], ...] = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.InvalidRecordError,
    kafka_errors.CorruptRecordError,
    ValueError,  # kafka-python: "Need at least one: key or value"
    TypeError,  # kafka-python: header or value of the wrong type
)
# Dead-letter stages: as is, cut to the output limit, marker without original bytes.
AS_IS, TRUNCATED, MARKER = 0, 1, 2


class OutputTooLarge(ValueError):
    """A decision or dead letter is over the output limit."""


class Future(Protocol):
    @property
    def is_done(self) -> bool: ...

    @property
    def exception(self) -> BaseException | None: ...

    def failed(self) -> bool: ...


class Producer(Protocol):
    config: dict[str, Any]

    def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, headers: Headers | None = None
    ) -> Any: ...

    def flush(self, timeout: float | None = None) -> None: ...


class Origin(NamedTuple):
    """The input record an output answers: where it came from and its bytes (for the dead letter).

    A named tuple: one is made per decision, and a frozen dataclass's `__init__` cost 2 µs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()

    @classmethod
    def of(cls, record: Any) -> Origin:
        """From a kafka-python ConsumerRecord (or anything with the same attributes)."""
        return cls(record.topic, record.partition, record.offset, record.key, record.value, tuple(record.headers or ()))


@dataclass
class _Sent(Generic[T]):
    future: Future
    origin: Origin
    ticket: T | None  # set for decisions: returned by complete() once acknowledged
    rejected: Rejected | None  # set for dead letters: why, for the next, smaller stage
    stage: int = AS_IS
    size: int = 0


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """Bytes of a record's key, value and headers (the framing is in FRAMING_BYTES)."""
    return (
        len(key or b"")
        + len(value or b"")
        + sum(len(name.encode("utf-8", "replace")) + len(data) for name, data in headers)
    )


def truncated(letter: DeadLetter, limit: int) -> DeadLetter:
    """The dead letter cut to fit `limit` bytes: a prefix of the value (and of the key if it alone is
    too large), the original's size and SHA-256 in headers, producer headers dropped if they do not fit."""
    key, value = letter.key, letter.value
    extra: Headers = []
    if key is not None and len(key) > limit // 4:
        extra += [
            (HEADER_ORIGINAL_KEY_SIZE, str(len(key)).encode()),
            (HEADER_ORIGINAL_KEY_SHA256, hashlib.sha256(key).hexdigest().encode()),
        ]
        key = key[: limit // 4]
    ours = [(name, data) for name, data in letter.headers if name in OWN_HEADERS]
    theirs = [(name, data) for name, data in letter.headers if name not in OWN_HEADERS]
    if record_size(key, None, theirs + ours) > limit // 2:
        extra.append((HEADER_ORIGINAL_HEADERS_DROPPED, str(len(theirs)).encode()))
        theirs = []
    if value is not None:
        extra += [
            (HEADER_ORIGINAL_SIZE, str(len(value)).encode()),
            (HEADER_ORIGINAL_SHA256, hashlib.sha256(value).hexdigest().encode()),
        ]
        headers = theirs + ours + extra
        room = max(0, limit - record_size(key, None, headers) - 64)
        value = value[:room]
    headers = theirs + ours + extra
    return replace(letter, key=key, value=value, headers=headers)


def marker(letter: DeadLetter) -> DeadLetter:
    """The last resort: no original bytes at all, only our headers (source position and reason)."""
    ours = [(name, data) for name, data in letter.headers if name in OWN_HEADERS]
    return replace(letter, key=None, value=b"", headers=ours)


class Outputs(Generic[T]):
    """Sends decisions and dead letters through one producer; see the module docstring."""

    def __init__(
        self,
        producer: Producer,
        *,
        decisions_topic: str,
        dead_letter_topic: str,
        worker_version: str,
        metrics: Metrics,
    ) -> None:
        self.producer = producer
        self.decisions_topic = decisions_topic
        self.dead_letter_topic = dead_letter_topic
        self.worker_version = worker_version
        self.metrics = metrics
        self.max_request_size = int(producer.config.get("max_request_size", DEFAULT_MAX_REQUEST_SIZE))
        self.limit = self.max_request_size - FRAMING_BYTES
        self._sent: list[_Sent[T]] = []

    def __len__(self) -> int:
        return len(self._sent)

    # --- sending ----------------------------------------------------------------------------------

    def decision(self, origin: Origin, value: bytes, headers: Headers, ticket: T) -> None:
        size = record_size(origin.key, value, headers)
        if size > self.limit:
            self._refused_decision(origin, OutputTooLarge(self._too_large(size)))
            return
        try:
            future = self.producer.send(self.decisions_topic, key=origin.key, value=value, headers=headers)
        except RECORD_REFUSED as error:
            self._refused_decision(origin, error)
            return
        self._sent.append(_Sent(future, origin, ticket, None, size=size))

    def dead_letter(self, origin: Origin, rejected: Rejected) -> None:
        """Dead-letter an input record (counted and logged once, by position only)."""
        self.metrics.dead_letters.labels(reason=rejected.reason).inc()
        log.warning(
            "dead_letter",
            topic=origin.topic,
            partition=origin.partition,
            offset=origin.offset,
            reason=rejected.reason,
            error_class=type(rejected.error).__name__,
            error=rejected.message,
        )
        self._send_dead_letter(origin, rejected, AS_IS)

    def _refused_decision(self, origin: Origin, error: BaseException) -> None:
        message = str(error) if isinstance(error, OutputTooLarge) else f"decision refused: {type(error).__name__}"
        self.dead_letter(origin, Rejected("other", error, f"cannot produce the decision: {message}"))

    def _too_large(self, size: int) -> str:
        return (
            f"{size} bytes is over the output limit of {self.limit} bytes "
            f"(producer max_request_size {self.max_request_size} minus {FRAMING_BYTES} for framing)"
        )

    def _letter(self, origin: Origin, rejected: Rejected, stage: int) -> tuple[DeadLetter, int]:
        """The dead letter at `stage` or, if it is over the output limit, the first smaller one that fits."""
        letter = dead_letter(
            topic=origin.topic,
            partition=origin.partition,
            offset=origin.offset,
            key=origin.key,
            value=origin.value,
            headers=list(origin.headers),
            reason=rejected.reason,
            error=rejected.error,
            message=rejected.message,
            worker_version=self.worker_version,
        )
        if stage == AS_IS and record_size(letter.key, letter.value, letter.headers) > self.limit:
            stage = TRUNCATED
        if stage == TRUNCATED:
            return truncated(letter, self.limit), stage
        if stage == MARKER:
            return marker(letter), stage
        return letter, stage

    def _send_dead_letter(self, origin: Origin, rejected: Rejected, stage: int) -> None:
        while True:
            letter, stage = self._letter(origin, rejected, stage)
            try:
                future = self.producer.send(
                    self.dead_letter_topic, key=letter.key, value=letter.value, headers=letter.headers
                )
            except RECORD_REFUSED as error:
                if stage >= MARKER:
                    raise DeliveryError(
                        f"dead letter for {origin.topic}-{origin.partition} offset {origin.offset} refused even "
                        f"without its original bytes: {type(error).__name__}"
                    ) from None
                stage += 1
                continue
            if stage != AS_IS:
                log.warning(
                    "dead_letter_reduced",
                    topic=origin.topic,
                    partition=origin.partition,
                    offset=origin.offset,
                    form="truncated" if stage == TRUNCATED else "marker",
                )
            self._sent.append(_Sent(future, origin, None, rejected, stage=stage))
            return

    # --- acknowledging ----------------------------------------------------------------------------

    def complete(self, timeout: float) -> list[T]:
        """Flush, replace every refused output by its smaller form, and return the acknowledged
        decisions' tickets; raises DeliveryError when the broker did not answer or refused for
        another reason than the record (the caller must not commit)."""
        acked: list[T] = []
        while self._sent:
            self.producer.flush(timeout=timeout)
            sent, self._sent = self._sent, []
            for item in sent:
                if not item.future.is_done:
                    raise DeliveryError(
                        f"output for {item.origin.topic}-{item.origin.partition} offset {item.origin.offset} "
                        f"was not acknowledged within {timeout:g}s"
                    )
                if not item.future.failed():
                    if item.ticket is not None:
                        acked.append(item.ticket)
                    continue
                error = item.future.exception
                if not isinstance(error, RECORD_REFUSED):
                    raise DeliveryError(
                        f"output for {item.origin.topic}-{item.origin.partition} offset {item.origin.offset} "
                        f"was not acknowledged: {error!r}"
                    )
                assert error is not None
                if item.rejected is None:  # a decision the broker refused: its claim is dead-lettered
                    self._refused_decision(item.origin, error)
                elif item.stage >= MARKER:
                    raise DeliveryError(
                        f"dead letter for {item.origin.topic}-{item.origin.partition} offset {item.origin.offset} "
                        f"refused even without its original bytes: {error!r}"
                    )
                else:
                    self._send_dead_letter(item.origin, item.rejected, item.stage + 1)
        return acked
