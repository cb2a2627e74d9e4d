"""poll_safely (worker/stream/polling.py) with a fake consumer in the state kafka-python 3.x leaves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka import TopicPartition
from kafka import errors as kafka_errors
from structlog.testing import capture_logs

from worker.stream.polling import Unreadable, UnreadablePositionUnknown, poll_safely

TP = TopicPartition("ehr.claims.v1", 2)
RAW = "b'\\xffsecret-header'"  # what kafka-python's message quotes


@dataclass
class FakeRecords:
    topic_partition: TopicPartition
    next_fetch_offset: int
    drained: bool = False

    def drain(self) -> None:
        self.drained = True


@dataclass
class FakeFetcher:
    _next_partition_records: FakeRecords | None = None


@dataclass
class FakeConsumer:
    failures: list[BaseException] = field(default_factory=list)
    _fetcher: FakeFetcher = field(default_factory=FakeFetcher)
    seeks: list[tuple[TopicPartition, int]] = field(default_factory=list)

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Any]]:
        if self.failures:
            raise self.failures.pop(0)
        return {TP: ["record"]}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


def test_records_poll_through_untouched() -> None:
    consumer = FakeConsumer()

    assert poll_safely(consumer, timeout_ms=10, max_records=5) == ({TP: ["record"]}, [])


@pytest.mark.parametrize(
    "error",
    [
        kafka_errors.CorruptRecordError(f"Found invalid record structure: UnicodeDecodeError({RAW})"),
        kafka_errors.CorruptRecordError("Record batch for partition x at offset 17 failed crc check"),
    ],
)
def test_an_unparseable_record_is_skipped_and_returned_as_a_marker_logging_only_its_position(
    error: BaseException,
) -> None:
    records = FakeRecords(TP, 17)
    consumer = FakeConsumer(failures=[error], _fetcher=FakeFetcher(records))
    with capture_logs() as logs:
        batch, unreadable = poll_safely(consumer, timeout_ms=10)

    assert batch == {}
    assert unreadable == [Unreadable(TP.topic, TP.partition, 17, "CorruptRecordError")]
    assert consumer.seeks == [(TP, 18)]  # past the record
    assert records.drained and consumer._fetcher._next_partition_records is None
    # The next poll goes on from there.
    assert poll_safely(consumer, timeout_ms=10) == ({TP: ["record"]}, [])
    assert [(entry["event"], entry["offset"]) for entry in logs] == [("record_unreadable", 17)]
    assert "secret" not in repr(logs)


def test_an_unparseable_record_at_an_unknown_position_raises_without_the_clients_text() -> None:
    consumer = FakeConsumer(failures=[kafka_errors.CorruptRecordError(f"structure: {RAW}")])

    with pytest.raises(UnreadablePositionUnknown) as caught:
        poll_safely(consumer, timeout_ms=10)

    assert "secret" not in str(caught.value) and caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_other_errors_are_not_taken_for_unparseable_records() -> None:
    consumer = FakeConsumer(failures=[kafka_errors.KafkaTimeoutError("broker down")])

    with pytest.raises(kafka_errors.KafkaTimeoutError):
        poll_safely(consumer, timeout_ms=10)


def test_an_empty_in_line_slot_no_longer_keeps_parked_records_from_being_restored() -> None:
    from types import SimpleNamespace

    from worker.stream.polling import release_parked_fetches

    class Drained:
        def __bool__(self) -> bool:
            return False

    parked = {"labs-0": object()}
    fetcher = SimpleNamespace(_next_partition_records=Drained(), _paused_partition_records=parked)
    release_parked_fetches(SimpleNamespace(_fetcher=fetcher))
    assert fetcher._next_partition_records is None  # kafka-python restores `parked` on its next poll

    live = object()  # truthy: a record set with records still to hand out
    busy = SimpleNamespace(_next_partition_records=live, _paused_partition_records=parked)
    release_parked_fetches(SimpleNamespace(_fetcher=busy))
    assert busy._next_partition_records is live
    release_parked_fetches(SimpleNamespace())  # another client: nothing to do
