"""Producing contract events: plain Avro keyed by patient_id, context before claims.

Every timeout here is a guard against a hung test, never a performance expectation.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer

from worker.codec.wire import PlainAvro
from worker.config import Topics

from .stream_setup import EXIT_PATIENCE_S, OUTPUT_PATIENCE_S, SCHEMA_OF, Bundle, Kind

# --- producing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Placed:
    """Where a produced record landed."""

    topic: str
    partition: int
    offset: int


class EventProducer:
    """Sends contract events as plain Avro, keyed by patient_id (the contract's key)."""

    def __init__(self, producer: KafkaProducer, topics: Topics) -> None:
        self.producer = producer
        self.topics = topics
        self.wire = PlainAvro()
        self._topic_of: dict[Kind, str] = {
            "claim": topics.claims,
            "prescription": topics.prescriptions,
            "lab": topics.lab_results,
        }

    def send(self, kind: Kind, record: Mapping[str, Any], *, partition: int | None = None) -> Any:
        """Send one event; returns the kafka-python future (its `.get()` is the record's metadata)."""
        topic = self._topic_of[kind]
        value = self.wire.encode(SCHEMA_OF[kind], record, topic)
        return self.producer.send(topic, key=str(record["patient_id"]).encode(), value=value, partition=partition)

    def send_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> Placed:
        """Send arbitrary bytes (poison) and wait for the acknowledgement."""
        future = self.producer.send(topic, key=key, value=value, headers=headers or [], partition=partition)
        return placed(future)

    def send_context(self, events: Iterable[tuple[Kind, Mapping[str, Any]]]) -> None:
        for kind, record in events:
            self.send(kind, record)
        self.flush()

    def send_claims(self, claims: Iterable[Mapping[str, Any]]) -> list[Placed]:
        futures = [self.send("claim", claim) for claim in claims]
        self.flush()
        return [placed(future) for future in futures]

    def send_bundles(self, bundles: Sequence[Bundle]) -> list[Placed]:
        """Every bundle's prescriptions and labs, flushed (acknowledged), then the claims, flushed."""
        self.send_context(
            [("prescription", record) for bundle in bundles for record in bundle["prescriptions"]]
            + [("lab", record) for bundle in bundles for record in bundle["labs"]]
        )
        return self.send_claims([bundle["claim"] for bundle in bundles])

    def flush(self) -> None:
        self.producer.flush(timeout=EXIT_PATIENCE_S)


def placed(future: Any) -> Placed:
    metadata = future.get(timeout=EXIT_PATIENCE_S)
    return Placed(metadata.topic, metadata.partition, metadata.offset)


def new_producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, allow_auto_create_topics=False)


class BackgroundProducer:
    """Produces claims on its own thread in small flushed batches: load that keeps arriving."""

    BATCH = 25

    def __init__(
        self, bootstrap: str, topics: Topics, claims: Sequence[Mapping[str, Any]], *, pause_s: float = 0.0
    ) -> None:
        # The pause spreads the claims over time, so a worker is still receiving them when a test
        # kills or stops it; it paces the load and is never asserted on.
        self._pause_s = pause_s
        self._claims = claims
        self._events = EventProducer(new_producer(bootstrap), topics)
        self._stop = threading.Event()
        self.sent = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="claims-producer", daemon=True)

    def __enter__(self) -> BackgroundProducer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            for start in range(0, len(self._claims), self.BATCH):
                if self._stop.is_set():
                    return
                batch = self._claims[start : start + self.BATCH]
                self._events.send_claims(batch)
                self.sent += len(batch)
                self._stop.wait(self._pause_s)
        except BaseException as error:
            self.error = error

    def wait(self, timeout: float = OUTPUT_PATIENCE_S) -> int:
        """Wait until every claim was produced; returns how many were."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the producer did not finish within {timeout:g}s ({self.sent} sent)")
        if self.error is not None:
            raise self.error
        return self.sent

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(EXIT_PATIENCE_S)
        self._events.producer.close(timeout=10)
        if self.error is not None:
            raise self.error
        return self.sent
