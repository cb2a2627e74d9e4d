"""Interoperability with librdkafka clients (confluent-kafka): producers upstream, consumers downstream."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from worker.codec.wire import PlainAvro

from .producing import Placed
from .stream_setup import OUTPUT_PATIENCE_S, SCHEMA_OF, Kind, create_stream, key_partition
from .workers import InProcessWorker
from .workloads import EventClock, OfflineJudge, comparable, load_example_bundles, personalise

confluent_kafka = pytest.importorskip("confluent_kafka")

TopicFactory = Callable[..., str]
GroupIdFactory = Callable[..., str]


class ConfluentEvents:
    """An upstream producer on librdkafka, configured as the contract asks of non-Java clients."""

    def __init__(self, bootstrap: str, topics: dict[Kind, str]) -> None:
        # murmur2_random: the Java client's partitioner, so patient keys meet in the same partition
        # number as kafka-python's producers put them (librdkafka's default is crc32-based).
        self.producer = confluent_kafka.Producer(
            {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "acks": "all", "linger.ms": 5}
        )
        self.topics = topics
        self.wire = PlainAvro()
        self.placed: list[tuple[str, Placed]] = []  # (key, where it landed)
        self.errors: list[Any] = []

    def send(self, kind: Kind, record: dict[str, Any]) -> None:
        key = str(record["patient_id"])

        def delivered(error: Any, message: Any) -> None:
            if error is not None:
                self.errors.append(error)
            else:
                self.placed.append((key, Placed(message.topic(), message.partition(), message.offset())))

        topic = self.topics[kind]
        self.producer.produce(
            topic, key=key.encode(), value=self.wire.encode(SCHEMA_OF[kind], record, topic), on_delivery=delivered
        )

    def flush(self) -> None:
        remaining = self.producer.flush(OUTPUT_PATIENCE_S)
        assert remaining == 0 and not self.errors, (remaining, self.errors)


def test_librdkafka_producers_and_consumers_interoperate(
    kafka_bootstrap: str, topic_factory: TopicFactory, new_group_id: GroupIdFactory
) -> None:
    stream = create_stream(kafka_bootstrap, topic_factory, new_group_id())
    clock = EventClock()
    examples = [bundle for _, bundle in load_example_bundles()]
    bundles = [personalise(examples[n % len(examples)], f"P-RDKAFKA-{n}", clock) for n in range(24)]
    upstream = ConfluentEvents(
        stream.bootstrap,
        {"claim": stream.topics.claims, "prescription": stream.topics.prescriptions, "lab": stream.topics.lab_results},
    )
    for bundle in bundles:
        for prescription in bundle["prescriptions"]:
            upstream.send("prescription", prescription)
        for lab in bundle["labs"]:
            upstream.send("lab", lab)
    upstream.flush()
    for bundle in bundles:
        upstream.send("claim", bundle["claim"])
    upstream.flush()

    # Keys landed where the Java client and kafka-python would put them: co-partitioning holds.
    for key, where in upstream.placed:
        assert where.partition == key_partition(key, stream.partitions["claims"]), where
    claims_at = {key: where for key, where in upstream.placed if where.topic == stream.topics.claims}
    assert len(claims_at) == len(bundles)
    assert len({where.partition for where in claims_at.values()}) > 1  # the keys spread over partitions

    downstream = confluent_kafka.Consumer(
        {
            "bootstrap.servers": stream.bootstrap,
            "group.id": new_group_id("rdkafka-reader"),
            "enable.auto.commit": False,
        }
    )
    downstream.assign(
        [
            confluent_kafka.TopicPartition(stream.topics.decisions, number, confluent_kafka.OFFSET_BEGINNING)
            for number in range(stream.partitions["decisions"])
        ]
    )
    received: list[Any] = []
    try:
        with InProcessWorker(stream.settings()):
            deadline = time.monotonic() + OUTPUT_PATIENCE_S
            while len(received) < len(bundles) and time.monotonic() < deadline:
                message = downstream.poll(0.2)
                if message is None:
                    continue
                assert message.error() is None, message.error()
                received.append(message)
    finally:
        downstream.close()

    assert len(received) == len(bundles)
    judge = OfflineJudge()
    wire = PlainAvro()
    by_patient = {bundle["claim"]["patient_id"]: bundle for bundle in bundles}
    seen = set()
    for message in received:
        decision = wire.decode("ClaimDecision", message.value())
        patient_id = decision["patient_id"]
        seen.add(patient_id)
        expected = judge.decide(by_patient[patient_id])
        assert comparable(decision) == comparable(expected.to_dict())
        assert message.key() == patient_id.encode()
        source = decision["source"]
        assert Placed(source["topic"], source["partition"], source["offset"]) == claims_at[patient_id]
        assert dict(message.headers() or []) == {
            "outcome": expected.outcome.encode(),
            "decision_id": expected.decision_id.encode(),
            "rule_pack": str(expected.rule_pack).encode(),
        }
    assert seen == set(by_patient)
