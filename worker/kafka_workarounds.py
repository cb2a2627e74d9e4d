"""A workaround for a kafka-python 3.0.x fetcher bug that leaves a paused-then-resumed partition unread.

`Fetcher.fetched_records` parks a partition's parsed records when the partition is paused while they
sit in its in-line slot, and restores them after `resume()` only when that slot `is None`. But a
drained `PartitionRecords` is falsy, not None: after a poll that stops exactly at `max_records`,
the slot keeps the drained object, the parked records are never restored, and `_fetchable_partitions`
skips the parked partition for good: it is never fetched again and its position stays put (seen
here: positions stuck at multiples of max_poll_records while the high watermark was far ahead, on
a year of history for 10,000 patients with flow control pausing and resuming partitions).

Calling `release_drained_slot(consumer)` after every poll empties a drained slot, so the next poll
restores the parked records as the library intends. It touches private attributes on purpose and
does nothing if they are missing (another kafka-python version).
"""

from __future__ import annotations

from typing import Any


def release_drained_slot(consumer: Any) -> None:
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is None:
        return
    current = getattr(fetcher, "_next_partition_records", None)
    if current is not None and not current and getattr(fetcher, "_paused_partition_records", None):
        fetcher._next_partition_records = None
