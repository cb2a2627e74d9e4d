"""Polling that survives records the client cannot parse.

kafka-python raises from `poll()` when it cannot parse a record: a header name that is not UTF-8, a
batch that fails its CRC, a codec it does not have. Nothing is returned for that partition, its
position stays on the record, and every later poll (and every restart) raises again: the
partition is stopped for good. The error's text may also carry the record's raw bytes.

`poll_safely` catches these, finds the partition and offset the client was reading, seeks one past
it and returns an `Unreadable` marker for that position, so the caller can dead-letter it (reason
`decode`) and commit past it. Only the position is logged. Finding the position reads the
consumer's fetcher state (kafka-python 3.x); if that is not available the error is raised again,
without its text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from kafka import TopicPartition
from kafka import errors as kafka_errors

log = structlog.get_logger("worker.polling")

# What the client raises for a record it cannot parse (as opposed to a broker or network problem).
UNPARSEABLE: tuple[type[BaseException], ...] = (
    kafka_errors.CorruptRecordError,
    kafka_errors.UnsupportedCodecError,
    UnicodeDecodeError,
)
UNREADABLE_MESSAGE = "the Kafka client cannot parse the record (corrupt batch, non-UTF-8 header name or unknown codec)"


class UnreadablePositionUnknown(RuntimeError):
    """The client could not parse a record and the worker could not tell which one."""


@dataclass(frozen=True)
class Unreadable:
    """A record the client could not parse; the consumer is already positioned past it."""

    topic: str
    partition: int
    offset: int
    error_class: str

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


def poll_safely(
    consumer: Any, *, timeout_ms: int, max_records: int | None = None
) -> tuple[dict[TopicPartition, list[Any]], list[Unreadable]]:
    """`consumer.poll(...)`, and the records skipped because the client could not parse them."""
    release_parked_fetches(consumer)
    try:
        if max_records is None:
            return consumer.poll(timeout_ms=timeout_ms), []
        return consumer.poll(timeout_ms=timeout_ms, max_records=max_records), []
    except UNPARSEABLE as error:
        error_class = type(error).__name__
        position = _failing_position(consumer)
        if position is None:
            # `from None`: the client's message may quote the record's bytes.
            raise UnreadablePositionUnknown(f"{UNREADABLE_MESSAGE}; position unknown ({error_class})") from None
    tp, offset = position
    consumer.seek(tp, offset + 1)
    log.warning("record_unreadable", topic=tp.topic, partition=tp.partition, offset=offset, error_class=error_class)
    return {}, [Unreadable(tp.topic, tp.partition, offset, error_class)]


def release_parked_fetches(consumer: Any) -> None:
    """Work around kafka-python 3.0.12 losing a resumed partition for good.

    Records fetched for a partition that is then paused are parked (KAFKA-7548), and a parked
    partition is not fetched again until its records are restored to the fetcher's in-line slot. That
    restore only happens when the slot is None, but a drained slot keeps an empty (falsy) record set
    object there, so after the first pause a resumed partition can wait forever (seen here: every
    lab partition of a backlog stopped at the offset where it was first paused). Emptying the slot
    when it holds nothing lets the fetcher restore the parked records on the next poll. Reads the
    fetcher's state; does nothing if it is not there (another client version).
    """
    fetcher: Any = getattr(consumer, "_fetcher", None)
    if fetcher is None or not hasattr(fetcher, "_paused_partition_records"):
        return
    slot = getattr(fetcher, "_next_partition_records", None)
    if slot is not None and not slot and fetcher._paused_partition_records:
        fetcher._next_partition_records = None


def _failing_position(consumer: Any) -> tuple[TopicPartition, int] | None:
    """The partition and offset kafka-python was reading when it failed, and drop its broken records.

    The fetcher keeps the records it is handing out in `_next_partition_records`; when parsing
    fails, that holds the failing partition, and its `next_fetch_offset` is one past the last record
    handed out, i.e. the offset of the record that failed (or below it, if compaction left a gap)."""
    fetcher: Any = getattr(consumer, "_fetcher", None)
    records: Any = getattr(fetcher, "_next_partition_records", None)
    tp = getattr(records, "topic_partition", None)
    offset = getattr(records, "next_fetch_offset", None)
    if not isinstance(tp, TopicPartition) or not isinstance(offset, int):
        return None
    records.drain()
    fetcher._next_partition_records = None
    return tp, offset
