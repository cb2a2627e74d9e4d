"""The producer's partitioner: Kafka's default for keyed records, with each key's hash remembered.

Decisions are keyed by patient and land where the Java client's default partitioner puts them
(murmur2 of the key, over all of the topic's partitions), so consumers co-partitioned by patient
find them. kafka-python computes murmur2 in pure Python: 5 µs a key, and with the partition lists
it builds per record about 1% of the worker's CPU. A patient's decisions come back claim after
claim, so the hash of each key is kept in a bounded cache; the partition is still taken from the
topic's partitions as they are now.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from kafka.partitioner import DefaultPartitioner
from kafka.partitioner.default import murmur2

KEYS_REMEMBERED = 4096  # about 1 MB at most (a key's bytes, its hash and the cache's entry)


class KeyHashPartitioner(DefaultPartitioner):  # type: ignore[misc]
    def __init__(self) -> None:
        self._hash = lru_cache(maxsize=KEYS_REMEMBERED)(murmur2)

    def partition(
        self, topic: str, key: Any, serialized_key: Any, value: Any, serialized_value: Any, cluster: Any
    ) -> int:
        if serialized_key is None:  # no key: kafka-python's choice (a random available partition)
            return int(super().partition(topic, key, serialized_key, value, serialized_value, cluster))
        partitions = cluster.partitions_for_topic(topic)
        if not partitions:
            raise ValueError(f"Topic {topic} not found in ClusterMetadata")
        ordered = sorted(partitions)
        return int(ordered[(self._hash(bytes(serialized_key)) & 0x7FFFFFFF) % len(ordered)])
