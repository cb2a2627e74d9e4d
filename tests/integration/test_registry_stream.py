"""The worker end to end in the Confluent wire format, against the registry stand-in.

No Schema Registry server installs here, so `tests/registry_standin.py` plays it (the REST subset
the worker and Confluent's serializers use). Producers frame events with the registry's ids; the
worker decodes them by the writer's id, decides, and frames its decisions with the id it
registered under `{decisions topic}-value`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer
from registry_standin import RegistryStandIn

from worker.app import build_app
from worker.codec.registry import RegistryWire
from worker.config import Settings, Topics

EXAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "bundles.jsonl"


@pytest.fixture
def registry() -> Iterator[RegistryStandIn]:
    with RegistryStandIn() as standin:
        yield standin


def test_framed_events_are_decided_and_decisions_are_framed(
    kafka_bootstrap: str, topic_factory: Any, new_group_id: Any, registry: RegistryStandIn
) -> None:
    topics = Topics(*(topic_factory(prefix=f"sr-{name}") for name in ("claims", "rx", "labs", "decisions", "dlq")))
    example = json.loads(EXAMPLES.read_text().splitlines()[0])  # the clean liver claim: ACCEPT
    bundle = example["bundle"]
    patient = bundle["claim"]["patient_id"]
    stamp = {"event_time": "2025-11-25T10:00:00Z"}
    producer_wire = RegistryWire(registry.url)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for prescription in bundle["prescriptions"]:
        record = {**prescription, **stamp, "event_id": f"rx-{prescription['prescription_id']}"}
        value = producer_wire.encode("PrescriptionRecorded", record, topics.prescriptions)
        producer.send(topics.prescriptions, key=patient.encode(), value=value)
    for lab in bundle["labs"]:
        record = {**lab, **stamp, "event_id": f"lab-{lab['observation_id']}"}
        producer.send(
            topics.lab_results,
            key=patient.encode(),
            value=producer_wire.encode("LabResultRecorded", record, topics.lab_results),
        )
    producer.flush()
    claim = {**bundle["claim"], "event_id": "claim-1", "event_time": "2025-12-01T09:00:00Z"}
    producer.send(
        topics.claims, key=patient.encode(), value=producer_wire.encode("ClaimSubmitted", claim, topics.claims)
    )
    producer.flush()
    producer.close()

    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        group_id=new_group_id("sr"),
        topics=topics,
        metrics_port=0,
        metrics_host="127.0.0.1",
        schema_registry_url=registry.url,
        client_options={"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000},
        log_level="WARNING",
    )
    decided: list[Any] = []
    app = build_app(settings, on_decision=decided.append, configure_logs=False)
    deadline = time.monotonic() + 60
    worker = threading.Thread(
        target=app.worker.run, kwargs={"until": lambda: bool(decided) or time.monotonic() > deadline}, daemon=True
    )
    worker.start()
    worker.join(timeout=90)
    app.close()
    assert [decision.outcome for decision in decided] == ["ACCEPT"]

    consumer = KafkaConsumer(
        topics.decisions, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=10_000
    )
    raw = next(iter(consumer)).value
    consumer.close()
    assert raw[0] == 0  # the Confluent magic byte
    decision_ids = registry.subjects().get(f"{topics.decisions}-value")
    assert decision_ids and int.from_bytes(raw[1:5], "big") == decision_ids[-1]
    decision = RegistryWire(registry.url).decode("ClaimDecision", raw)
    assert decision["claim_id"] == claim["claim_id"]
    assert decision["outcome"] == "ACCEPT"
    assert decision["decision_id"] == decided[0].decision_id
