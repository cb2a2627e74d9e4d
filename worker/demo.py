"""`python -m worker demo`: the whole product on one machine, in about a minute.

Starts the embedded Kafka-protocol broker (unless --bootstrap-servers names a cluster), creates the
topics, produces a synthetic EHR stream, runs the worker until every claim is decided, shows
progress while it runs and prints a summary. `--keep-running` leaves broker and worker up.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from kafka import KafkaProducer

from worker.app import build_app, make_wire
from worker.config import Settings, settings_from
from worker.events import Decision, Finding
from worker.synthetic import SyntheticDataset, generate

# The demo's payer overrides switch on the payer rules for its synthetic commercial payers.
DEMO_PAYER_CONFIG = Path(__file__).parent / "demo_payers"
# A finished demo waits this long for a straggler before reporting claims as undecided.
DEMO_TIMEOUT_S = 600.0
PROGRESS_EVERY_S = 1.0
# Claims per production wave: small enough that context recorded after a claim is rarely produced
# before it is decided, large enough that the worker still works in full batches.
WAVE_CLAIMS = 250


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
    from worker.embedded import EmbeddedBroker

    out.write("Starting the embedded Kafka-protocol broker (Tansu, in-memory)...\n")
    with EmbeddedBroker() as broker:
        out.write(f"  broker at {broker.bootstrap_servers}\n")
        yield broker.bootstrap_servers


def produce(
    dataset: SyntheticDataset,
    settings: Settings,
    claims_consumed: Callable[[], int] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Produce the synthetic events in order (context before the claims that rely on it).

    With `claims_consumed`, the stream is produced in waves of WAVE_CLAIMS claims, each after the
    worker has consumed the previous wave: like EHR events arriving over time. Produced all at
    once, a claim would be decided with context recorded after it (a prescription stopped months
    later), which is what a worker catching up on a backlog sees, not what a live worker sees.
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
    sent_claims = 0
    try:
        for event in dataset.events:
            if event.kind == "claim" and claims_consumed is not None and sent_claims and sent_claims % WAVE_CLAIMS == 0:
                producer.flush()
                while claims_consumed() < sent_claims:
                    if stop is not None and stop.wait(0.02):
                        return sent_claims
            topic, schema = topics[event.kind]
            producer.send(topic, key=event.key.encode(), value=wire.encode(schema, event.record, topic))
            sent_claims += event.kind == "claim"
        producer.flush()
    finally:
        producer.close()
    return sent_claims


def _progress(tally: Tally, total: int, stop: threading.Event, out: TextIO) -> None:
    previous, previous_at = 0, time.monotonic()
    while not stop.wait(PROGRESS_EVERY_S):
        done, now = len(tally), time.monotonic()
        rate = (done - previous) / max(now - previous_at, 1e-9)
        previous, previous_at = done, now
        out.write(f"\r  decided {done:>6}/{total} claim versions  ({rate:,.0f}/s)   ")
        out.flush()


def summarize(decisions: list[Decision], skipped: int, dead_letters: int, seconds: float, metrics_url: str) -> str:
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
    claims_total = sum(1 for event in dataset.events if event.kind == "claim")
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
        from worker.embedded import create_topics

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
            f"Producing {len(dataset.events)} EHR events for {args.patients} patients "
            f"({claims_total} claim versions) in waves of {WAVE_CLAIMS} claims, as the worker decides them...\n"
        )
        stop_producing = threading.Event()
        producer = threading.Thread(
            target=produce,
            args=(dataset, settings, lambda: sample("j7507_records_consumed_total", topic=settings.topics.claims)),
            kwargs={"stop": stop_producing},
            name="demo-producer",
            daemon=True,
        )
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
            out.write(summarize(tally.decisions, skipped, dead, seconds, app.metrics_url))
            if args.keep_running:
                out.write("Broker and worker keep running; Ctrl-C stops them.\n")
            out.flush()

        def all_decided() -> bool:
            # Processed, not consumed: with the as-of feed a consumed claim may still wait for its context.
            if not finished_at and len(tally) + sum(processed()) >= claims_total:
                finished_at.append(time.monotonic())
                if args.keep_running:
                    report()
            if finished_at:
                return not args.keep_running
            return time.monotonic() - started > DEMO_TIMEOUT_S

        try:
            app.worker.run(until=all_decided)
        finally:
            stop_producing.set()
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
