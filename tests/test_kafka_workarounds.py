"""The kafka-python fetcher workaround: a drained in-line slot is emptied only when records are parked."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from kafka.consumer.fetcher import Fetcher

from worker.kafka_workarounds import release_drained_slot


class Records:
    def __init__(self, left: int) -> None:
        self.left = left

    def __bool__(self) -> bool:
        return self.left > 0


def _consumer(slot: Any, parked: dict[str, Any]) -> Any:
    return SimpleNamespace(_fetcher=SimpleNamespace(_next_partition_records=slot, _paused_partition_records=parked))


def test_a_drained_slot_is_released_when_a_partition_is_parked() -> None:
    consumer = _consumer(Records(0), {"tp": Records(5)})
    release_drained_slot(consumer)
    assert consumer._fetcher._next_partition_records is None


def test_a_slot_with_records_or_nothing_parked_is_left_alone() -> None:
    full = Records(3)
    consumer = _consumer(full, {"tp": Records(5)})
    release_drained_slot(consumer)
    assert consumer._fetcher._next_partition_records is full
    drained = Records(0)
    consumer = _consumer(drained, {})
    release_drained_slot(consumer)
    assert consumer._fetcher._next_partition_records is drained
    release_drained_slot(SimpleNamespace())  # another client version: nothing to do


def test_the_library_still_has_the_attributes_the_workaround_reads() -> None:
    # If kafka-python renames them, the workaround silently stops working: fail here instead.
    source = Fetcher.__init__.__code__.co_names + Fetcher.fetched_records.__code__.co_names
    assert {"_next_partition_records", "_paused_partition_records"} <= set(source)
    assert hasattr(Fetcher.PartitionRecords, "__bool__")
