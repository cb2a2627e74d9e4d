"""Throughput benchmark (not a test): the worker against two Avro loops, same stream, same run.

On the embedded broker (or KAFKA_BOOTSTRAP_SERVERS), produce one synthetic EHR stream (claims,
prescriptions and labs), then:
1. claims-only: the worker's own kafka-python clients and settings (`worker.kafka_clients`), a group
   consumer of the claims topic only: decode each claim and re-encode it with fastavro, produce it,
   flush and commit per batch. The floor cost of moving a claim through Kafka with Avro; issue 10's
   baseline;
2. passthrough: a group consumer reads the three input topics, decodes every record with fastavro,
   re-encodes and produces each claim, flushes, commits: the ceiling for any Avro consumer of all
   three topics;
3. worker: the real StreamWorker (context rebuild and the time-ordered merge of the two context
   topics, rules, decisions, commits) on the same topics.
Each is timed from its first consumed records (after the group join) to its last acknowledged output,
in claims per second; the CPU time this process spent in each (group join and close included) is
printed per claim too, which other load on a shared machine moves far less. Prints all three and the
worker's ratio to each, in both measures.

    python bench/throughput.py [--patients 3000] [--partitions 6] [--skip-passthrough]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from dataclasses import replace

import fastavro
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import OffsetAndMetadata

from worker.app import build_app
from worker.codec.avro import load_schema
from worker.codec.wire import SCHEMA_NAMES, PlainAvro
from worker.config import Settings, Topics
from worker.devkit.embedded import EmbeddedBroker, create_topics
from worker.devkit.synthetic import generate
from worker.stream import kafka_clients
from worker.stream.interpreter import loop_settings

FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


def produce_stream(bootstrap: str, topics: Topics, patients: int) -> int:
    dataset = generate(patients, seed=11)
    wire = PlainAvro()
    where = {
        "claim": (topics.claims, "ClaimSubmitted"),
        "prescription": (topics.prescriptions, "PrescriptionRecorded"),
        "lab": (topics.lab_results, "LabResultRecorded"),
    }
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024)
    claims = 0
    for event in dataset.events:
        topic, schema = where[event.kind]
        producer.send(topic, key=event.key.encode(), value=wire.encode(schema, event.record, topic))
        claims += event.kind == "claim"
    producer.flush()
    producer.close()
    return claims


class Fastavro:
    """The baselines' codec, as issue 10 defines the claims-only loop: fastavro's schemaless reader
    and writer on the project's schemas, and nothing of the project's own codec. The worker's
    compiled readers and writer are what is being measured; in the baselines they would move the
    yardstick with every change to them."""

    def __init__(self) -> None:
        self._schemas = {name: load_schema(name) for name in SCHEMA_NAMES}

    def decode(self, schema_name: str, payload: bytes) -> object:
        return fastavro.schemaless_reader(io.BytesIO(payload), self._schemas[schema_name], None)

    def encode(self, schema_name: str, record: object) -> bytes:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, self._schemas[schema_name], record)
        return out.getvalue()


def passthrough(bootstrap: str, topics: Topics, claims: int, out_topic: str) -> float:
    """The same inputs as the worker, no rules: consume all three input topics, decode every record,
    re-encode and produce each claim, flush, commit per batch. Returns claims/s."""
    wire = Fastavro()
    schema_of = {
        topics.claims: "ClaimSubmitted",
        topics.prescriptions: "PrescriptionRecorded",
        topics.lab_results: "LabResultRecorded",
    }
    consumer = KafkaConsumer(
        *topics.inputs,
        bootstrap_servers=bootstrap,
        group_id=f"bench-passthrough-{os.getpid()}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
        **FAST_GROUP,
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    done, first, last = 0, 0.0, 0.0
    while done < claims:
        batch = consumer.poll(timeout_ms=500, max_records=500)
        first = first or (time.perf_counter() if batch else 0.0)
        offsets = {}
        for tp, records in batch.items():
            schema = schema_of[tp.topic]
            for record in records:
                decoded = wire.decode(schema, record.value)
                if tp.topic == topics.claims:
                    producer.send(out_topic, key=record.key, value=wire.encode(schema, decoded))
                    done += 1
            offsets[tp] = OffsetAndMetadata(records[-1].offset + 1, "", -1)
        if offsets:
            producer.flush()
            consumer.commit(offsets)
            last = time.perf_counter()
    consumer.close()
    producer.close()
    return claims / (last - first)


def bench_settings(bootstrap: str, topics: Topics, group: str) -> Settings:
    """The settings the worker runs with in this benchmark; the claims-only loop uses them too."""
    return Settings(
        bootstrap_servers=bootstrap,
        group_id=f"{group}-{os.getpid()}-{time.monotonic_ns()}",
        topics=topics,
        metrics_port=0,
        client_options=FAST_GROUP,
        log_level="WARNING",
    )


def claims_only(bootstrap: str, topics: Topics, claims: int, out_topic: str) -> float:
    """The worker's clients and settings, claims topic only: poll a batch, decode, re-encode and
    produce each claim, flush, commit. Returns claims/s."""
    settings = bench_settings(bootstrap, topics, "bench-claims-only")
    wire = Fastavro()
    consumer = kafka_clients.group_consumer(settings)
    producer = kafka_clients.producer(settings)
    consumer.subscribe([topics.claims])
    done, first, last = 0, 0.0, 0.0
    try:
        while done < claims:
            batch = consumer.poll(timeout_ms=500, max_records=settings.max_batch)
            first = first or (time.perf_counter() if batch else 0.0)
            offsets = {}
            for tp, records in batch.items():
                for record in records:
                    decoded = wire.decode("ClaimSubmitted", record.value)
                    producer.send(out_topic, key=record.key, value=wire.encode("ClaimSubmitted", decoded))
                    done += 1
                offsets[tp] = OffsetAndMetadata(records[-1].offset + 1, "", -1)
            if offsets:
                producer.flush()
                consumer.commit(offsets)
                last = time.perf_counter()
    finally:
        consumer.close(autocommit=False)
        producer.close()
    return claims / (last - first)


def worker_rate(bootstrap: str, topics: Topics, claims: int) -> tuple[float, int]:
    settings = bench_settings(bootstrap, topics, "bench-worker")
    acked: list[float] = []
    app = build_app(settings, on_decision=lambda _decision: acked.append(time.monotonic()), metrics_host="127.0.0.1")
    registry = app.metrics.registry

    def processed() -> float:
        # Decided, skipped or dead-lettered: a consumed claim may still wait for its context.
        decided = sum(
            registry.get_sample_value("j7507_claims_decided_total", {"outcome": outcome}) or 0.0
            for outcome in ("accept", "hold", "deny_risk", "skipped")
        )
        dead = sum(
            registry.get_sample_value("j7507_dead_letters_total", {"reason": reason}) or 0.0
            for reason in ("decode", "contract", "other")
        )
        return decided + dead

    # The registry is read at most every 250 ms: each read collects every metric seven times, which
    # cost 2.7% of the worker's loop at one read per 20 ms (py-spy). The rate is unaffected: it is
    # measured up to the last decision's acknowledgement, not up to this check.
    next_look = [0.0]

    def finished() -> bool:
        now = time.monotonic()
        if now < next_look[0]:
            return False
        next_look[0] = now + 0.25
        return processed() >= claims

    try:
        app.worker.run(until=finished)
    finally:
        app.close()
    # From the first assignment (context restore included, group join not) to the last decision.
    started = app.worker.consuming_since or acked[0]
    return len(acked) / (acked[-1] - started), len(acked)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=3000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--skip-passthrough", action="store_true", help="measure only claims-only and the worker")
    args = parser.parse_args()
    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = EmbeddedBroker().start()
        bootstrap = broker.bootstrap_servers
    try:
        suffix = f"bench-{os.getpid()}"
        topics = replace(
            Topics(), **{name: f"{getattr(Topics(), name)}.{suffix}" for name in Topics.__dataclass_fields__}
        )
        names = [getattr(topics, name) for name in Topics.__dataclass_fields__]
        create_topics(bootstrap, [*names, f"passthrough.{suffix}", f"claims-only.{suffix}"], partitions=args.partitions)
        claims = produce_stream(bootstrap, topics, args.patients)
        print(f"stream: {claims} claims for {args.patients} patients, {args.partitions} partitions", file=sys.stderr)
        # CPU time of this process per claim, beside the rates: on a shared machine the wall-clock
        # rates move with other load, CPU per claim much less (the broker's CPU is not counted).
        cpu = time.process_time()
        # The baselines run under the worker's interpreter settings (its loop sets them itself).
        with loop_settings():
            floor = claims_only(bootstrap, topics, claims, f"claims-only.{suffix}")
        floor_cpu, cpu = (time.process_time() - cpu) / claims * 1e6, time.process_time()
        with loop_settings():
            ceiling = None if args.skip_passthrough else passthrough(bootstrap, topics, claims, f"passthrough.{suffix}")
        ceiling_cpu, cpu = (time.process_time() - cpu) / claims * 1e6, time.process_time()
        rate, decided = worker_rate(bootstrap, topics, claims)
        worker_cpu = (time.process_time() - cpu) / claims * 1e6
        print(
            f"claims-only (claims: decode+encode+produce+commit): {floor:,.0f} claims/s, {floor_cpu:,.0f} µs CPU/claim"
        )
        if ceiling is not None:
            print(
                f"passthrough (3 topics: decode, claims re-encoded):  {ceiling:,.0f} claims/s, "
                f"{ceiling_cpu:,.0f} µs CPU/claim"
            )
        print(
            f"worker (context+rules+decisions+commit):            {rate:,.0f} claims/s, {worker_cpu:,.0f} µs CPU/claim "
            f"({decided} decisions)"
        )
        print(f"ratio worker/claims-only: {rate / floor:.2f} (CPU per claim: {floor_cpu / worker_cpu:.2f})")
        if ceiling is not None:
            print(f"ratio worker/passthrough: {rate / ceiling:.2f} (CPU per claim: {ceiling_cpu / worker_cpu:.2f})")
    finally:
        if broker is not None:
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
