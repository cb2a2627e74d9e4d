"""The producer's partitioner puts every keyed record where kafka-python's default (the Java
client's murmur2) puts it (worker/stream/partitioner.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner import DefaultPartitioner

from worker.stream.partitioner import KeyHashPartitioner


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
    for key in keys + keys:  # the second time from the cache
        expected = default.partition("decisions", key, key, b"v", b"v", cluster)
        assert ours.partition("decisions", key, key, b"v", b"v", cluster) == expected
    # Fewer partitions later (a new cluster view): the remembered hash, the new count.
    smaller = Cluster({min(partitions)}, set())
    assert {ours.partition("decisions", key, key, b"v", b"v", smaller) for key in keys} == {min(partitions)}


def test_unkeyed_records_and_unknown_topics_behave_as_the_default() -> None:
    cluster = Cluster({0, 1, 2}, {1})
    assert KeyHashPartitioner().partition("decisions", None, None, b"v", b"v", cluster) == 1
    with pytest.raises(ValueError, match="elsewhere"):  # as the default partitioner fails
        KeyHashPartitioner().partition("elsewhere", b"k", b"k", b"v", b"v", cluster)
