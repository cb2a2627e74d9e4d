"""A decision is a fact about the event log: the same stream gives the same decisions however it is run.

One synthetic stream (patients with planted problems, and context recorded after some claims: a
prescription stopped, a lab rechecked, a stray order closed) is produced with record times equal to
the events' times, and decided four ways on the real broker: live (produced while the worker runs),
from a backlog, with a kill -9 midway, and with a second worker joining halfway. Every way, every
claim version gets the decision offline evaluation gives it with exactly the context that precedes
it: events recorded after a claim never change its decision.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from worker.codec.wire import PlainAvro
from worker.devkit.synthetic import SyntheticDataset, generate
from worker.engine.records import time_ms

from .outputs import OutputCollector
from .producing import new_producer
from .stream_setup import StreamSetup
from .workers import WorkerProcess
from .workloads import OfflineJudge, comparable

pytestmark = pytest.mark.slow

SCHEMAS = {"claim": "ClaimSubmitted", "prescription": "PrescriptionRecorded", "lab": "LabResultRecorded"}
DATASET = generate(36, seed=23)
CLAIM_VERSIONS = sum(1 for event in DATASET.events if event.kind == "claim")


def _expected(dataset: SyntheticDataset) -> dict[tuple[str, int], dict[str, Any]]:
    judge = OfflineJudge()
    return {
        (record["claim"]["claim_id"], record["claim"]["claim_version"]): judge.expected(record)
        for record in dataset.bundles()
    }


EXPECTED = _expected(DATASET)
CLAIM_TIMES = {
    (event.record["claim_id"], event.record["claim_version"]): datetime.fromisoformat(
        event.record["event_time"].replace("Z", "+00:00")
    )
    for event in DATASET.events
    if event.kind == "claim"
}


def _produce(producer: KafkaProducer, setup: StreamSetup, events: Iterator[Any], flush_every: int = 0) -> None:
    """Each event with its own time as the record's Kafka timestamp, in time order."""
    topics = {"claim": setup.topics.claims, "prescription": setup.topics.prescriptions, "lab": setup.topics.lab_results}
    wire = PlainAvro()
    for count, event in enumerate(events, start=1):
        topic = topics[event.kind]
        stamp = time_ms(datetime.fromisoformat(event.record["event_time"].replace("Z", "+00:00")))
        value = wire.encode(SCHEMAS[event.kind], event.record, topic)
        producer.send(topic, key=event.key.encode(), value=value, timestamp_ms=stamp)
        if flush_every and count % flush_every == 0:
            producer.flush()
    producer.flush()


def _assert_as_offline(outputs: OutputCollector) -> int:
    """Every claim version decided exactly as offline (replays identical); returns the replays."""
    grouped = outputs.by_version()
    assert set(grouped) == {version for version, decision in EXPECTED.items() if decision["outcome"] != "SKIPPED"}
    replays = 0
    for version, decisions in grouped.items():
        replays += len(decisions) - 1
        assert {d.value["decision_id"] for d in decisions} == {EXPECTED[version]["decision_id"]}, version
        for decision in decisions:
            assert comparable(decision.value) == EXPECTED[version], version
            assert decision.value["context_as_of"] == CLAIM_TIMES[version], version  # its record time
    assert not outputs.dead_letters
    return replays


def test_the_stream_carries_context_recorded_after_its_claims() -> None:
    """Without as-of semantics these claims would be decided differently: the test has teeth."""
    judge = OfflineJudge()
    changed = 0
    for record in DATASET.bundles():
        patient = record["claim"]["patient_id"]
        everything = {  # the patient's whole context, including what was recorded after the claim
            **record,
            "prescriptions": [e.record for e in DATASET.events if e.key == patient and e.kind == "prescription"],
            "labs": [e.record for e in DATASET.events if e.key == patient and e.kind == "lab"],
        }
        version = (record["claim"]["claim_id"], record["claim"]["claim_version"])
        changed += judge.expected(everything) != EXPECTED[version]
    assert changed > 0


def test_live(stream: StreamSetup, tmp_path: Path) -> None:
    producer = new_producer(stream.bootstrap)
    with OutputCollector(stream) as outputs, WorkerProcess(stream, tmp_path, "live") as worker:
        worker.wait_for_event(lambda e: e.get("event") == "worker_ready", "readiness", 60)
        _produce(producer, stream, iter(DATASET.events), flush_every=25)
        outputs.wait_for_versions(v for v, d in EXPECTED.items() if d["outcome"] != "SKIPPED")
        outputs.catch_up()
    producer.close()
    _assert_as_offline(outputs)


def test_backlog(stream: StreamSetup, tmp_path: Path) -> None:
    producer = new_producer(stream.bootstrap)
    _produce(producer, stream, iter(DATASET.events))
    producer.close()
    with OutputCollector(stream) as outputs, WorkerProcess(stream, tmp_path, "backlog"):
        outputs.wait_for_versions(v for v, d in EXPECTED.items() if d["outcome"] != "SKIPPED")
        outputs.catch_up()
    _assert_as_offline(outputs)


def test_kill_9_midway(stream: StreamSetup, tmp_path: Path) -> None:
    producer = new_producer(stream.bootstrap)
    _produce(producer, stream, iter(DATASET.events))
    producer.close()
    with OutputCollector(stream) as outputs:
        with WorkerProcess(stream, tmp_path, "first") as first:
            outputs.wait_for(decisions=CLAIM_VERSIONS // 3)
            first.send_signal(signal.SIGKILL)
            assert first.wait() == -signal.SIGKILL
        with WorkerProcess(stream, tmp_path, "second"):
            outputs.wait_for_versions(v for v, d in EXPECTED.items() if d["outcome"] != "SKIPPED")
            outputs.catch_up()
    replays = _assert_as_offline(outputs)
    print(f"kill -9 after a third of {CLAIM_VERSIONS} claim versions; {replays} decided again, identically")


def test_a_second_worker_joins_halfway(stream: StreamSetup, tmp_path: Path) -> None:
    producer = new_producer(stream.bootstrap)
    _produce(producer, stream, iter(DATASET.events))
    producer.close()
    with OutputCollector(stream) as outputs, WorkerProcess(stream, tmp_path, "one") as one:
        outputs.wait_for(decisions=CLAIM_VERSIONS // 2)
        with WorkerProcess(stream, tmp_path, "two") as two:
            outputs.wait_for_versions(v for v, d in EXPECTED.items() if d["outcome"] != "SKIPPED")
            outputs.catch_up()
            assert two.owned_partitions() or one.owned_partitions()
    _assert_as_offline(outputs)
