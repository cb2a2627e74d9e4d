"""The producer's partitioner: Kafka's default placement of keyed records, with a faster murmur2.

Decisions are keyed by patient and must land where the Java client's default partitioner puts them
(murmur2 of the key, over all of the topic's partitions, in order), so that consumers co-partitioned
by patient find them. kafka-python's `murmur2` is pure Python byte by byte (about 5 µs a key), and its
`DefaultPartitioner` builds the set of all known topics and the list of available partitions for
every record: together about 2% of the worker's loop (py-spy). Here the key is read four bytes at a
time by `struct`, with the same arithmetic, and only the topic's partitions are looked up.

Nothing is remembered between records: a cache of key hashes was tried and cost 0.3 KiB per patient
of resident memory (`bench/context_memory.py` is at its bound).
"""

from __future__ import annotations

import struct
from typing import Any

from kafka.partitioner import DefaultPartitioner

_SEED = 0x9747B28C
_M = 0x5BD1E995  # the mixing constant; r = 24
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), as an unsigned 32-bit int:
    equal to kafka-python's `kafka.partitioner.default.murmur2` for every input (tested)."""
    length = len(data)
    h = _SEED ^ length
    words = length >> 2
    if words:
        for k in struct.unpack_from(f"<{words}I", data):
            k = (k * _M) & _MASK
            k ^= k >> 24
            h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    extra = length & 3
    if extra:
        tail = length - extra
        if extra == 3:
            h ^= data[tail + 2] << 16
        if extra >= 2:
            h ^= data[tail + 1] << 8
        h = ((h ^ data[tail]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


class KeyHashPartitioner(DefaultPartitioner):  # type: ignore[misc]
    def partition(
        self, topic: str, key: Any, serialized_key: Any, value: Any, serialized_value: Any, cluster: Any
    ) -> int:
        if serialized_key is None:  # no key: kafka-python's choice (a random available partition)
            return int(super().partition(topic, key, serialized_key, value, serialized_value, cluster))
        partitions = cluster.partitions_for_topic(topic)
        if not partitions:
            raise ValueError(f"Topic {topic} not found in ClusterMetadata")
        ordered = sorted(partitions)
        return int(ordered[(murmur2(bytes(serialized_key)) & 0x7FFFFFFF) % len(ordered)])
