"""Impact-analysis benchmark (not a test): replaying the topics under two configurations vs the worker.

On the embedded broker (or KAFKA_BOOTSTRAP_SERVERS), produce a year of monthly history for N
generated patients (`worker.history`: prescriptions, three labs and a claim a month, with noise),
then, on the same topics:
1. worker: the real StreamWorker deciding every claim under one configuration (the baseline), from
   its first assignment to its last acknowledged decision;
2. impact: `TopicsImpact` (what `python -m worker impact` runs without a file) deciding every claim
   under the baseline and a candidate, from the start of the read to the report.
Both take a record's time from `event_time` (the history spans a year; production takes seconds).
The candidate changes a setting of every payer of the history, so no claim takes the same-pack
shortcut: the worst case. `--one-payer` changes one payer only (the usual change). Prints both
rates in claims/s and their ratio (the target is >= 0.8).

    python bench/impact_replay.py [--patients 10000] [--partitions 6] [--one-payer]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from kafka import KafkaProducer

from worker.app import build_app
from worker.codec.wire import PlainAvro
from worker.config import Settings, Topics
from worker.devkit.embedded import EmbeddedBroker, create_topics
from worker.devkit.history import HistoryOptions, generate_history
from worker.engine.evaluate import Evaluator
from worker.engine.reference import load_reference
from worker.engine.rules.packs import load_packs
from worker.offline.impact import DualEvaluator, ImpactAnalysis
from worker.offline.impact_topics import TopicsImpact

FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}
CANDIDATE = {
    "acme.yaml": "payer_id: ACME-COMMERCIAL\nextends: commercial-default\nsettings:\n  requires_prior_auth: true\n",
    "medicare.yaml": "payer_id: MEDICARE-DME-JC\nextends: medicare-dme\nsettings:\n  refill_window_days: 5\n",
    "medicaid.yaml": "payer_id: STATE-MEDICAID\nextends: medicaid-default\nsettings:\n  max_days_supply: 28\n",
}


def produce_history(bootstrap: str, topics: Topics, patients: int) -> tuple[int, int]:
    events = generate_history(HistoryOptions(patients=patients, years=1, noise=0.3, seed=11))
    wire = PlainAvro()
    where = {
        "claim": (topics.claims, "ClaimSubmitted"),
        "prescription": (topics.prescriptions, "PrescriptionRecorded"),
        "lab": (topics.lab_results, "LabResultRecorded"),
    }
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024)
    claims = 0
    for event in events:
        topic, schema = where[event.kind]
        producer.send(topic, key=event.key.encode(), value=wire.encode(schema, event.record, topic))
        claims += event.kind == "claim"
    producer.flush()
    producer.close()
    return claims, len(events)


def _settings(bootstrap: str, topics: Topics, payer_dir: Path | None) -> Settings:
    return Settings(
        bootstrap_servers=bootstrap,
        group_id=f"bench-impact-worker-{os.getpid()}-{time.monotonic_ns()}",
        topics=topics,
        metrics_port=0,
        client_options=FAST_GROUP,
        log_level="WARNING",
        timestamp_source="event_time",
        payer_config_dir=payer_dir,
        # A guard for a shared 2-core machine catching up on a year's backlog (not a measured need).
        context_sync_timeout_s=900.0,
    )


def worker_rate(settings: Settings, claims: int) -> tuple[float, int]:
    acked: list[float] = []
    app = build_app(settings, on_decision=lambda _decision: acked.append(time.monotonic()), metrics_host="127.0.0.1")
    registry = app.metrics.registry

    def consumed() -> float:
        return registry.get_sample_value("j7507_records_consumed_total", {"topic": settings.topics.claims}) or 0.0

    try:
        app.worker.run(until=lambda: consumed() >= claims)
    finally:
        app.close()
    started = app.worker.consuming_since or acked[0]
    return len(acked) / (acked[-1] - started), len(acked)


def impact_rate(settings: Settings, candidate_dir: Path) -> tuple[float, int, int]:
    reference = load_reference(None)
    dual = DualEvaluator(Evaluator(load_packs(None), reference), Evaluator(load_packs(candidate_dir), reference))
    analysis = ImpactAnalysis()
    started = time.monotonic()
    reader = TopicsImpact(settings, dual, analysis, PlainAvro())
    reader.run()
    report = analysis.report()
    elapsed = time.monotonic() - started
    return report.claims / elapsed, report.claims, len(report.changed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--one-payer", action="store_true", help="the candidate changes one payer only")
    args = parser.parse_args()
    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = EmbeddedBroker().start()
        bootstrap = broker.bootstrap_servers
    try:
        suffix = f"bench-impact-{os.getpid()}"
        topics = replace(
            Topics(), **{name: f"{getattr(Topics(), name)}.{suffix}" for name in Topics.__dataclass_fields__}
        )
        create_topics(bootstrap, [getattr(topics, name) for name in Topics.__dataclass_fields__], args.partitions)
        started = time.monotonic()
        claims, records = produce_history(bootstrap, topics, args.patients)
        print(
            f"history: {args.patients} patients, 1 year, {records} records ({claims} claims), "
            f"{args.partitions} partitions, produced in {time.monotonic() - started:.0f}s",
            file=sys.stderr,
        )
        with tempfile.TemporaryDirectory() as candidate:
            files = dict(list(CANDIDATE.items())[:1]) if args.one_payer else CANDIDATE
            for name, text in files.items():
                (Path(candidate) / name).write_text(text, encoding="utf-8")
            settings = _settings(bootstrap, topics, None)
            gc.collect()
            rate, decided = worker_rate(settings, claims)
            print(f"worker, one configuration:  {rate:,.0f} claims/s ({decided} decisions)", flush=True)
            gc.collect()
            replay, compared, changed = impact_rate(settings, Path(candidate))
            print(f"impact, two configurations: {replay:,.0f} claims/s ({compared} claims, {changed} changed)")
            print(f"ratio impact/worker: {replay / rate:.2f} (target >= 0.8)")
    finally:
        if broker is not None:
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
