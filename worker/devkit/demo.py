"""`python -m worker demo`: the whole product on one machine, in about a minute.

Starts the embedded Kafka-protocol broker (unless --bootstrap-servers names a cluster), creates the
topics, produces a synthetic EHR stream in one go, in time order (each record stamped with its event
time), runs the worker until every claim is decided, then sends a few outside lab results recorded
before claims already decided (late context), shows progress while it runs and prints a summary.
`--keep-running` leaves broker and worker up.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TextIO

from kafka import KafkaProducer

from worker.app import build_app, make_wire
from worker.config import Settings, settings_from
from worker.devkit.synthetic import SyntheticEvent, generate
from worker.engine.events import Decision, Finding
from worker.engine.records import time_ms

# The demo's payer overrides switch on the payer rules for its synthetic commercial payers.
DEMO_PAYER_CONFIG = Path(__file__).parent / "demo_payers"
# A finished demo waits this long for a straggler before reporting claims as undecided.
DEMO_TIMEOUT_S = 600.0
PROGRESS_EVERY_S = 1.0
# Share of patients with an outside lab result that reaches the EHR only after the stream: late context.
LATE_OUTSIDE_LAB_SHARE = 0.05


@dataclass
class Tally:
    decisions: list[Decision] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, decision: Decision) -> None:
        with self.lock:
            self.decisions.append(decision)

    def __len__(self) -> int:
        return len(self.decisions)


@contextlib.contextmanager
def _broker(args: argparse.Namespace, out: TextIO) -> Iterator[str]:
    bootstrap = args.bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        out.write(f"Using Kafka at {bootstrap}\n")
        yield bootstrap
        return
    from worker.devkit.embedded import EmbeddedBroker

    out.write("Starting the embedded Kafka-protocol broker (Tansu, in-memory)...\n")
    with EmbeddedBroker() as broker:
        out.write(f"  broker at {broker.bootstrap_servers}\n")
        yield broker.bootstrap_servers


def late_outside_labs(events: list[SyntheticEvent], share: float = LATE_OUTSIDE_LAB_SHARE) -> list[SyntheticEvent]:
    """For some patients, a copy of their first lab result as an outside lab's, with its original time.

    The demo sends them after the stream was decided: they arrive after claims later than them were
    decided, which is late context (docs/contract.md)."""
    late: list[SyntheticEvent] = []
    seen: set[str] = set()
    for event in events:
        if event.kind != "lab" or event.key in seen:
            continue
        seen.add(event.key)
        if int(hashlib.sha256(event.key.encode()).hexdigest(), 16) % 1000 < share * 1000:
            record = {**event.record, "observation_id": f"{event.record['observation_id']}-OUTSIDE"}
            late.append(SyntheticEvent("lab", event.key, record))
    return late


def produce(events: list[SyntheticEvent], settings: Settings) -> int:
    """Produce the events in one go, in order, each stamped with its own event time.

    The record time is what a claim is decided as of (docs/contract.md), so however fast the worker
    reads, a claim sees exactly the context recorded before it, and context recorded after it never
    changes its decision. Returns the number of claims produced.
    """
    wire = make_wire(settings)
    topics = {
        "claim": (settings.topics.claims, "ClaimSubmitted"),
        "prescription": (settings.topics.prescriptions, "PrescriptionRecorded"),
        "lab": (settings.topics.lab_results, "LabResultRecorded"),
    }
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        acks="all",
        linger_ms=5,
        **settings.security.client_options(),
    )
    claims = 0
    try:
        for event in events:
            topic, schema = topics[event.kind]
            stamp = datetime.fromisoformat(event.record["event_time"].replace("Z", "+00:00"))
            producer.send(
                topic,
                key=event.key.encode(),
                value=wire.encode(schema, event.record, topic),
                timestamp_ms=time_ms(stamp),
            )
            claims += event.kind == "claim"
        producer.flush()
    finally:
        producer.close()
    return claims


def _progress(tally: Tally, total: int, stop: threading.Event, out: TextIO) -> None:
    previous, previous_at = 0, time.monotonic()
    while not stop.wait(PROGRESS_EVERY_S):
        done, now = len(tally), time.monotonic()
        rate = (done - previous) / max(now - previous_at, 1e-9)
        previous, previous_at = done, now
        out.write(f"\r  decided {done:>6}/{total} claim versions  ({rate:,.0f}/s)   ")
        out.flush()


def summarize(
    decisions: list[Decision], skipped: int, dead_letters: int, seconds: float, metrics_url: str, late_context: int = 0
) -> str:
    outcomes = Counter(decision.outcome for decision in decisions)
    findings: Counter[str] = Counter()
    example: dict[str, Finding] = {}
    for decision in decisions:
        for line in decision.lines:
            for finding in line.findings:
                findings[finding.rule_id] += 1
                example.setdefault(finding.rule_id, finding)
    total = len(decisions)
    lines = [
        "",
        f"Decided {total} claim versions in {seconds:.1f}s ({total / max(seconds, 1e-9):,.0f} claims/s); "
        f"{skipped} without a J7507 line skipped; {dead_letters} dead letters.",
        f"Late context: {late_context} records arrived after a later claim of their patient was decided "
        "(applied for the patient's later claims; published decisions unchanged).",
        "",
        "Outcomes:",
    ]
    for outcome in ("ACCEPT", "HOLD", "DENY_RISK"):
        count = outcomes.get(outcome, 0)
        lines.append(f"  {outcome:<10} {count:>6}  {100 * count / max(total, 1):5.1f}%")
    lines += ["", "Top rules (findings, example message):"]
    for rule_id, count in findings.most_common(12):
        lines.append(f"  {count:>5}  {rule_id:<40} {example[rule_id].message}")
    lines += ["", f"Metrics: {metrics_url}", ""]
    return "\n".join(lines)


def run_demo(args: argparse.Namespace, out: TextIO = sys.stderr) -> int:
    dataset = generate(args.patients, seed=args.seed)
    events, late_labs = dataset.events, late_outside_labs(dataset.events)
    claims_total = sum(1 for event in events if event.kind == "claim")
    labs_total = sum(1 for event in events if event.kind == "lab") + len(late_labs)
    with _broker(args, out) as bootstrap:
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
        if not (args.payer_config or env.get("PAYER_CONFIG_DIR")):
            env["PAYER_CONFIG_DIR"] = str(DEMO_PAYER_CONFIG)
        env.setdefault("LOG_LEVEL", "WARNING")  # progress and summary instead of a line per claim
        env.setdefault("METRICS_HOST", "127.0.0.1")  # a demo serves this machine only
        env.setdefault("KAFKA_GROUP_ID", f"j7507-demo-{os.getpid()}")
        settings = settings_from(args, env)
        # Fast group joins for a single local worker (the broker's default session is slow to settle).
        settings = replace(
            settings,
            client_options={"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, **settings.client_options},
        )
        from worker.devkit.embedded import create_topics

        topic_names = [*settings.topics.inputs, settings.topics.decisions, settings.topics.dead_letter]
        create_topics(bootstrap, topic_names, partitions=args.partitions)
        tally = Tally()
        try:
            app = build_app(settings, on_decision=tally.add)
        except OSError:
            # The metrics port is taken (another worker?): any free port will do for a demo.
            app = build_app(replace(settings, metrics_port=0), on_decision=tally.add)
        app.worker.install_signal_handlers()
        out.write(f"Worker running; metrics at {app.metrics_url}\n")
        registry = app.metrics.registry

        def sample(name: str, **labels: str) -> int:
            return int(registry.get_sample_value(name, labels) or 0)

        def processed() -> tuple[int, int]:
            skipped = sample("j7507_claims_decided_total", outcome="skipped")
            dead = sum(sample("j7507_dead_letters_total", reason=r) for r in ("decode", "contract", "other"))
            return skipped, dead

        out.write(
            f"Producing {len(events)} EHR events for {args.patients} patients ({claims_total} claim versions) "
            "in time order, each stamped with its event time; the worker decides each claim as of its time...\n"
        )
        decided_all = threading.Event()

        def produce_stream_then_late_labs() -> None:
            produce(events, settings)
            if decided_all.wait(DEMO_TIMEOUT_S):
                produce(late_labs, settings)

        producer = threading.Thread(target=produce_stream_then_late_labs, name="demo-producer", daemon=True)
        producer.start()
        started = time.monotonic()
        stop_progress = threading.Event()
        progress = threading.Thread(target=_progress, args=(tally, claims_total, stop_progress, out), daemon=True)
        progress.start()
        finished_at: list[float] = []

        def report() -> None:
            stop_progress.set()
            # From the first assignment: the group join is start-up, the context restore is work.
            first = app.worker.consuming_since or started
            seconds = (finished_at[0] if finished_at else time.monotonic()) - first
            skipped, dead = processed()
            out.write("\r" + " " * 60 + "\r")
            late = sum(sample("j7507_late_context_records_total", topic=t) for t in settings.topics.context)
            out.write(summarize(tally.decisions, skipped, dead, seconds, app.metrics_url, late))
            if args.keep_running:
                out.write("Broker and worker keep running; Ctrl-C stops them.\n")
            out.flush()

        def all_decided() -> bool:
            skipped, dead = processed()
            if len(tally) + skipped + dead >= claims_total:
                decided_all.set()
            labs = sample("j7507_records_consumed_total", topic=settings.topics.lab_results)
            if not finished_at and decided_all.is_set() and labs >= labs_total:
                finished_at.append(time.monotonic())
                if args.keep_running:
                    report()
            if finished_at:
                return not args.keep_running
            return time.monotonic() - started > DEMO_TIMEOUT_S

        try:
            app.worker.run(until=all_decided)
        finally:
            stop_progress.set()
            progress.join()
            producer.join(timeout=10)
            app.close()
        if not args.keep_running or not finished_at:
            report()
        skipped, dead = processed()
        if len(tally) + skipped + dead < claims_total:
            out.write(f"Only {len(tally) + skipped + dead} of {claims_total} claims were processed in time.\n")
            return 1
    return 0
