"""The producer's partitioner puts every keyed record where kafka-python's default (the Java
client's murmur2) puts it (worker/stream/partitioner.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner import DefaultPartitioner
from kafka.partitioner.default import murmur2 as reference_murmur2

from worker.stream.partitioner import KeyHashPartitioner, murmur2


@given(st.binary(max_size=200))
def test_murmur2_is_kafkas(data: bytes) -> None:
    assert murmur2(data) == reference_murmur2(data)


def test_murmur2_known_values() -> None:
    # The Java client's values (kafka-python's test vectors), signed there: these are the same bits.
    vectors = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for data, java in vectors.items():
        assert murmur2(data) == java & 0xFFFFFFFF
    for length in range(9):  # every tail length, and a long key
        data = bytes(range(length)) + b"\xff" * length
        assert murmur2(data) == reference_murmur2(data)
    assert murmur2(b"\x80" * 10_001) == reference_murmur2(b"\x80" * 10_001)


class Cluster:
    def __init__(self, partitions: set[int], available: set[int]) -> None:
        self.partitions, self.available = partitions, available

    def topics(self) -> set[str]:
        return {"decisions"}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.partitions if topic == "decisions" else None

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self.available


@given(
    keys=st.lists(st.binary(max_size=40), min_size=1, max_size=20),
    partitions=st.sets(st.integers(0, 63), min_size=1, max_size=12),
    data=st.data(),
)
def test_keyed_records_go_where_the_default_partitioner_puts_them(
    keys: list[bytes], partitions: set[int], data: st.DataObject
) -> None:
    available = data.draw(st.sets(st.sampled_from(sorted(partitions))))
    cluster = Cluster(partitions, available)
    ours, default = KeyHashPartitioner(), DefaultPartitioner()
    for key in keys:
        expected = default.partition("decisions", key, key, b"v", b"v", cluster)
        assert ours.partition("decisions", key, key, b"v", b"v", cluster) == expected
        assert ours.partition("decisions", key, bytearray(key), b"v", b"v", cluster) == expected
    # Fewer partitions later (a new cluster view): the new count.
    smaller = Cluster({min(partitions)}, set())
    assert {ours.partition("decisions", key, key, b"v", b"v", smaller) for key in keys} == {min(partitions)}


def test_unkeyed_records_and_unknown_topics_behave_as_the_default() -> None:
    cluster = Cluster({0, 1, 2}, {1})
    assert KeyHashPartitioner().partition("decisions", None, None, b"v", b"v", cluster) == 1
    with pytest.raises(ValueError, match="elsewhere"):  # as the default partitioner fails
        KeyHashPartitioner().partition("elsewhere", b"k", b"k", b"v", b"v", cluster)
