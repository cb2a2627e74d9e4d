"""Shared pieces of the stream worker's integration tests: topics, events, workers, outputs.

- `create_stream` makes the worker's five topics with fresh names and gives the settings (in
  process) or the environment (subprocess) that point a worker at them.
- `EventProducer` sends contract events as plain Avro keyed by patient_id; `send_bundles` sends a
  bundle's context first, flushed, then its claim, so the claim must see that context.
- `make_workload` generates many patients' context and claim versions, with each claim's offline
  bundle (its patient's context and earlier claims) to compare decisions against.
- `InProcessWorker` runs the worker loop on a background thread; `WorkerProcess` runs the
  `run` command as a subprocess (for signals, exit codes and several group members).
- `OutputCollector` reads decisions and dead letters with its own group-less consumer.

Every timeout here is a guard against a hung test, never a performance expectation: waits end as
soon as what they wait for has happened.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.partitioner.default import murmur2

from worker.app import App, build_app
from worker.codec.wire import PlainAvro
from worker.config import Settings, Topics, settings_from
from worker.engine.evaluate import Evaluator
from worker.engine.events import Decision
from worker.engine.reference import load_reference
from worker.engine.rules.packs import load_packs
from worker.offline.offline import evaluate_bundle_text

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLES_FILE = REPO_ROOT / "tests" / "fixtures" / "bundles.jsonl"

# Guards, not expectations. Outputs may wait on a group join (a few seconds with the 6 s session),
# a dead member's session expiry (6 s) and a context restore, on a loaded 2-core machine.
OUTPUT_PATIENCE_S = 120.0
# A worker asked to stop finishes its batch, flushes and commits: seconds. Generous on purpose.
EXIT_PATIENCE_S = 30.0
# Test-friendly group timings, as the deployment docs suggest for a fast-failing group: a lost
# member is noticed after 6 s instead of the default 45 s.
KAFKA_OPTIONS = "session_timeout_ms=6000,heartbeat_interval_ms=1000"

Kind = Literal["claim", "prescription", "lab"]
Bundle = dict[str, Any]  # the JSON shape of offline evaluation: claim, prescriptions, labs, prior_claims
SCHEMA_OF: dict[Kind, str] = {
    "claim": "ClaimSubmitted",
    "prescription": "PrescriptionRecorded",
    "lab": "LabResultRecorded",
}
HEPATIC_LOINC = "1742-6"  # ALT: without it a liver claim is a hepatic-function-missing HOLD
ROLES = ("claims", "prescriptions", "lab_results", "decisions", "dead_letter")
# Variables a subprocess worker must not inherit from the test runner's environment.
_WORKER_ENV_PREFIXES = ("KAFKA_", "TOPIC_", "SCHEMA_REGISTRY_")
_WORKER_ENV_NAMES = {"METRICS_PORT", "CONTEXT_SCOPE", "PAYER_CONFIG_DIR", "NDC_CROSSWALK_FILE", "LOG_LEVEL"}


# --- topics and settings ------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamSetup:
    """The five topics of one test, its consumer group, and how to point a worker at them."""

    bootstrap: str
    group_id: str
    topics: Topics
    partitions: Mapping[str, int]

    def env(self, **extra: str) -> dict[str, str]:
        """The worker's environment variables (contract names), plus `extra` (e.g. CONTEXT_SCOPE)."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_GROUP_ID": self.group_id,
            "TOPIC_CLAIMS": self.topics.claims,
            "TOPIC_PRESCRIPTIONS": self.topics.prescriptions,
            "TOPIC_LAB_RESULTS": self.topics.lab_results,
            "TOPIC_DECISIONS": self.topics.decisions,
            "TOPIC_DEAD_LETTER": self.topics.dead_letter,
            "METRICS_PORT": "0",
            "KAFKA_OPTIONS": KAFKA_OPTIONS,
            **extra,
        }

    def settings(self, **extra: str) -> Settings:
        """The same settings a subprocess gets, parsed by the worker's own code."""
        return settings_from(argparse.Namespace(), self.env(**extra))


def create_stream(
    bootstrap: str,
    topic_factory: Callable[..., str],
    group_id: str,
    *,
    partitions: int = 6,
    counts: Mapping[str, int] | None = None,
) -> StreamSetup:
    """Create the five topics (fresh names; `counts` overrides the partition count per role)."""
    wanted = dict.fromkeys(ROLES, partitions) | dict(counts or {})
    names = {role: topic_factory(partitions=wanted[role], prefix=role.replace("_", "-")) for role in ROLES}
    return StreamSetup(bootstrap=bootstrap, group_id=group_id, topics=Topics(**names), partitions=wanted)


def key_partition(key: str, partitions: int) -> int:
    """Where the Java client's (and kafka-python's) default partitioner puts `key`."""
    digest: int = murmur2(key.encode())
    return (digest & 0x7FFFFFFF) % partitions


# --- bundles and workloads ----------------------------------------------------------------------


def load_example_bundles() -> list[tuple[str, Bundle]]:
    """(name, bundle) of each example in tests/fixtures/bundles.jsonl."""
    examples = []
    for line in BUNDLES_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            examples.append((item["name"], item["bundle"]))
    return examples


def iso_millis(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class EventClock:
    """Strictly increasing event times, so "later event_time" and "later in the list" agree."""

    def __init__(self, start: datetime | None = None) -> None:
        self._next = start or datetime(2026, 1, 5, 8, 0, tzinfo=UTC)

    def tick(self) -> str:
        moment, self._next = self._next, self._next + timedelta(milliseconds=1)
        return iso_millis(moment)


def as_event(record: Mapping[str, Any], clock: EventClock) -> dict[str, Any]:
    """A copy with the envelope fields the Avro schemas require (bundles may omit them)."""
    event = copy.deepcopy(dict(record))
    if not event.get("event_id"):
        event["event_id"] = str(uuid.uuid4())
    if not event.get("event_time"):
        event["event_time"] = clock.tick()
    return event


def personalise(bundle: Bundle, patient_id: str, clock: EventClock, *, claim_id: str | None = None) -> Bundle:
    """The bundle for another patient (and claim id), every record with an event id and time.

    Event times follow the production order (prescriptions, labs, then the claim), so the
    changelog order offline (list order) and on the stream (event_time) are the same.
    """
    if bundle.get("prior_claims"):
        raise ValueError("prior claims are history the worker learns from the claims topic; produce them as claims")
    out: Bundle = {"prescriptions": [], "labs": [], "prior_claims": []}
    for kind in ("prescriptions", "labs"):
        for record in bundle.get(kind, []):
            out[kind].append(as_event({**record, "patient_id": patient_id}, clock))
    claim = {**bundle["claim"], "patient_id": patient_id}
    if claim_id is not None:
        claim["claim_id"] = claim_id
    out["claim"] = as_event(claim, clock)
    return out


@dataclass
class Workload:
    """Many patients' events in production order, and the offline bundle of every claim version."""

    context: list[tuple[Kind, dict[str, Any]]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    bundles: dict[tuple[str, int], Bundle] = field(default_factory=dict)
    _patients: dict[str, Bundle] = field(default_factory=dict, repr=False)

    def _patient(self, patient_id: str) -> Bundle:
        return self._patients.setdefault(patient_id, {"prescriptions": [], "labs": [], "prior_claims": []})

    def add_context(self, kind: Kind, record: dict[str, Any]) -> None:
        self.context.append((kind, record))
        self._patient(record["patient_id"])["prescriptions" if kind == "prescription" else "labs"].append(record)

    def add_claim(self, claim: dict[str, Any]) -> None:
        """Queue a claim; its bundle holds its patient's context and every earlier claim of theirs."""
        patient = self._patient(claim["patient_id"])
        self.bundles[(claim["claim_id"], claim["claim_version"])] = {
            "claim": claim,
            "prescriptions": list(patient["prescriptions"]),
            "labs": list(patient["labs"]),
            "prior_claims": list(patient["prior_claims"]),
        }
        patient["prior_claims"].append(claim)
        self.claims.append(claim)


# Claim versions per patient: (claim suffix, version, date of service). A resubmission, a second
# claim on the same date of service (a duplicate-line only the patient's history reveals) and its
# correction to a later date (no finding).
CLAIM_PLAN = (("A", 1, "2025-12-01"), ("A", 2, "2025-12-01"), ("B", 1, "2025-12-01"), ("B", 2, "2025-12-29"))


def make_workload(tag: str, patients: int, claims: Sequence[tuple[str, int, str]] = CLAIM_PLAN) -> Workload:
    """Context for `patients` patients, then their claims, from the first example (a clean claim).

    The claims go round-robin over the patients, plan entry by plan entry, so a patient's later
    claims find the earlier ones as history, and the offline bundle (with its prior claims) must
    reproduce what that history changes. Every third patient lacks the hepatic lab (HOLD).
    Claim and prescription ids do not contain the patient id: the worker may log them.
    """
    template = load_example_bundles()[0][1]
    clock = EventClock()
    workload = Workload()
    for number in range(patients):
        patient_id = f"{tag}-P{number:05d}"
        for prescription in template["prescriptions"]:
            rx = {**prescription, "patient_id": patient_id, "prescription_id": f"{tag}-RX{number:05d}"}
            workload.add_context("prescription", as_event(rx, clock))
        for lab in template["labs"]:
            if number % 3 == 0 and lab["loinc_code"] == HEPATIC_LOINC:
                continue
            observation = {**lab, "patient_id": patient_id, "observation_id": f"{tag}-{lab['observation_id']}-{number}"}
            workload.add_context("lab", as_event(observation, clock))
    base = template["claim"]
    for suffix, version, date_of_service in claims:
        for number in range(patients):
            lines = [
                {**line, "date_of_service": date_of_service, "prescription_id": f"{tag}-RX{number:05d}"}
                for line in base["lines"]
            ]
            claim = {
                **base,
                "claim_id": f"{tag}-C{number:05d}-{suffix}",
                "claim_version": version,
                "patient_id": f"{tag}-P{number:05d}",
                "lines": lines,
            }
            workload.add_claim(as_event(claim, clock))
    return workload


class OfflineJudge:
    """What `python -m worker evaluate` decides for a bundle (default packs, shipped crosswalk)."""

    def __init__(self) -> None:
        self.evaluator = Evaluator(load_packs(None), load_reference(None))

    def decide(self, bundle: Bundle) -> Decision:
        return evaluate_bundle_text(self.evaluator, json.dumps(bundle))

    def expected(self, bundle: Bundle) -> dict[str, Any]:
        return comparable(self.decide(bundle).to_dict())


def comparable(decision: Mapping[str, Any]) -> dict[str, Any]:
    """A decision without what legitimately differs between the stream and offline evaluation: when it
    was made, where the claim was read, and the time its context was taken as of (the stream's record
    time, offline the claim's event_time)."""
    return {name: value for name, value in decision.items() if name not in ("decided_at", "source", "context_as_of")}


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


# --- outputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionOut:
    key: bytes | None
    value: dict[str, Any]
    headers: dict[str, bytes]
    partition: int
    offset: int

    @property
    def version(self) -> tuple[str, int]:
        return (self.value["claim_id"], self.value["claim_version"])

    @property
    def source(self) -> Placed:
        source = self.value["source"]
        return Placed(source["topic"], source["partition"], source["offset"])


@dataclass(frozen=True)
class DeadLetterOut:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    partition: int
    offset: int

    def header(self, name: str) -> str | None:
        """The last header of that name (ours come after the producer's own), decoded."""
        values = [value for header, value in self.headers if header == name]
        return values[-1].decode() if values else None

    @property
    def source(self) -> Placed:
        return Placed(
            self.header("source_topic") or "",
            int(self.header("source_partition") or -1),
            int(self.header("source_offset") or -1),
        )


class OutputCollector:
    """Reads the decisions and dead-letter topics from the beginning with its own consumer."""

    def __init__(self, setup: StreamSetup) -> None:
        self.topics = setup.topics
        self._bootstrap = setup.bootstrap
        self.wire = PlainAvro()
        self.decisions: list[DecisionOut] = []
        self.dead_letters: list[DeadLetterOut] = []
        self._consumer = KafkaConsumer(
            bootstrap_servers=setup.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            allow_auto_create_topics=False,
            fetch_max_wait_ms=100,
        )
        self._tps = [
            TopicPartition(topic, number)
            for topic in (setup.topics.decisions, setup.topics.dead_letter)
            for number in range(setup.partitions["decisions" if topic == setup.topics.decisions else "dead_letter"])
        ]
        self._consumer.assign(self._tps)
        self._consumer.seek_to_beginning(*self._tps)

    def __enter__(self) -> OutputCollector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._consumer.close(autocommit=False)

    def poll(self, timeout_ms: int = 200) -> None:
        for tp, records in self._consumer.poll(timeout_ms=timeout_ms).items():
            for record in records:
                headers = list(record.headers or [])
                if tp.topic == self.topics.decisions:
                    self.decisions.append(
                        DecisionOut(
                            key=record.key,
                            value=self.wire.decode("ClaimDecision", record.value),
                            headers=dict(headers),
                            partition=record.partition,
                            offset=record.offset,
                        )
                    )
                else:
                    self.dead_letters.append(
                        DeadLetterOut(record.key, record.value, headers, record.partition, record.offset)
                    )

    def wait_until(self, condition: Callable[[OutputCollector], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:g}s waiting for {what}: have {len(self.decisions)} decisions "
                    f"and {len(self.dead_letters)} dead letters"
                )
            self.poll()

    def wait_for(
        self, *, decisions: int = 0, dead_letters: int = 0, timeout: float = OUTPUT_PATIENCE_S
    ) -> OutputCollector:
        """Read until at least this many decisions and dead letters have arrived."""
        self.wait_until(
            lambda c: len(c.decisions) >= decisions and len(c.dead_letters) >= dead_letters,
            f"{decisions} decisions and {dead_letters} dead letters",
            timeout,
        )
        return self

    def wait_for_versions(self, versions: Iterable[tuple[str, int]], timeout: float = OUTPUT_PATIENCE_S) -> None:
        """Read until every (claim_id, claim_version) has at least one decision."""
        missing = set(versions)

        def done(collector: OutputCollector) -> bool:
            missing.difference_update(decision.version for decision in collector.decisions)
            return not missing

        self.wait_until(done, "a decision for every claim version", timeout)

    def catch_up(self, timeout: float = OUTPUT_PATIENCE_S) -> OutputCollector:
        """Read everything the output topics hold right now."""
        ends = log_end_offsets(self._bootstrap, self._tps, timeout)
        self.wait_until(
            lambda c: all(c._consumer.position(tp) >= end for tp, end in ends.items()),
            "the end of the output topics",
            timeout,
        )
        return self

    def by_version(self) -> dict[tuple[str, int], list[DecisionOut]]:
        grouped: dict[tuple[str, int], list[DecisionOut]] = {}
        for decision in self.decisions:
            grouped.setdefault(decision.version, []).append(decision)
        return grouped


# --- the broker's view ----------------------------------------------------------------------------


def committed_offsets(bootstrap: str, group_id: str) -> dict[TopicPartition, int]:
    """The group's committed offsets, as an operator would read them (admin API)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        # kafka-python 3 renamed list_consumer_group_offsets to list_group_offsets.
        offsets = admin.list_group_offsets(group_id)[group_id]
    finally:
        admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


def log_end_offsets(
    bootstrap: str, tps: Sequence[TopicPartition], timeout: float = OUTPUT_PATIENCE_S
) -> dict[TopicPartition, int]:
    """The end of each partition, by reading it with a fresh consumer up to the fetch high watermark.

    Not ListOffsets: the embedded broker (Tansu) answers it with the base offset of the newest batch
    plus one, short of the end when that batch holds several records (worker/stream/loop.py works around
    the same). A fresh consumer's fetches all happen after the call, so their high watermarks are
    current.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    try:
        consumer.assign(list(tps))
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while True:
            consumer.poll(timeout_ms=100, max_records=10_000)
            marks = {tp: consumer.highwater(tp) for tp in tps}
            if all(mark is not None and consumer.position(tp) >= mark for tp, mark in marks.items()):
                return {tp: int(mark or 0) for tp, mark in marks.items()}
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read to the end of {sorted(tps)} within {timeout:g}s")
    finally:
        consumer.close(autocommit=False)


def topic_end_offsets(setup: StreamSetup, role: str) -> dict[int, int]:
    """{partition: end offset} of one of the stream's topics ("claims", "prescriptions", ...)."""
    topic = getattr(setup.topics, role)
    ends = log_end_offsets(setup.bootstrap, [TopicPartition(topic, n) for n in range(setup.partitions[role])])
    return {tp.partition: offset for tp, offset in ends.items()}


# --- workers ------------------------------------------------------------------------------------


class InProcessWorker:
    """The worker loop on a background thread; every Kafka client lives on that thread only."""

    def __init__(self, settings: Settings) -> None:
        self.app: App = build_app(settings, metrics_host="127.0.0.1", configure_logs=False)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stream-worker", daemon=True)

    def _run(self) -> None:
        try:
            self.app.worker.run()
        except BaseException as error:
            self.error = error

    def __enter__(self) -> InProcessWorker:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop(raise_error=exc_info[0] is None)

    def stop(self, *, raise_error: bool = True) -> None:
        """Ask the loop to stop (as SIGTERM does), wait for it, and re-raise what it failed with."""
        self.app.worker.request_stop()
        self._thread.join(EXIT_PATIENCE_S)
        self.app.close()
        if raise_error and self._thread.is_alive():
            raise AssertionError(f"the worker did not stop within {EXIT_PATIENCE_S:g}s")
        if raise_error and self.error is not None:
            raise self.error


# write(2) on x86-64 and arm64 Linux; other platforms skip the test that needs it.
WRITE_SYSCALL = {"x86_64": 1, "aarch64": 64}.get(os.uname().machine, -1)


class WorkerProcess:
    """The worker's `run` command as a child process, its JSON log lines captured to a file.

    With `gated_logs`, stdout is a pipe that a thread copies to the file only while the gate is
    open: closing it lets the pipe fill up, so the worker blocks in the middle of writing a log line
    (the way a slow log shipper blocks a container's stdout).
    """

    def __init__(
        self, setup: StreamSetup, log_dir: Path, name: str, *args: str, gated_logs: bool = False, **env: str
    ) -> None:
        self.name = name
        self.args = args
        self.gate: threading.Event | None = threading.Event() if gated_logs else None
        self._pump: threading.Thread | None = None
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(_WORKER_ENV_PREFIXES) and key not in _WORKER_ENV_NAMES
        }
        # Unbuffered: the log is read while the worker runs, and survives a SIGKILL.
        self.env = {
            **inherited,
            **setup.env(**env),
            "PYTHONUNBUFFERED": "1",
            "PYTHONFAULTHANDLER": "1",
            "LOG_LEVEL": "INFO",
            "METRICS_HOST": "127.0.0.1",  # tests serve on loopback only
        }
        self.stdout_path = log_dir / f"{name}.stdout.log"
        self.stderr_path = log_dir / f"{name}.stderr.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with self.stdout_path.open("ab") as stdout, self.stderr_path.open("ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "worker", "run", *self.args],
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=stdout if self.gate is None else subprocess.PIPE,
                stderr=stderr,
            )
        if self.gate is not None:
            self.gate.set()
            self._pump = threading.Thread(target=self._copy_logs, name=f"{self.name}-logs", daemon=True)
            self._pump.start()
        return self

    def _copy_logs(self) -> None:
        assert self.process is not None and self.process.stdout is not None and self.gate is not None
        source = self.process.stdout.fileno()
        with self.stdout_path.open("ab") as sink:
            while True:
                self.gate.wait()
                chunk = os.read(source, 65536)
                if not chunk:
                    return
                sink.write(chunk)
                sink.flush()

    def hold_logs(self) -> None:
        """Stop reading the worker's stdout (the pump finishes the read it is in)."""
        assert self.gate is not None
        self.gate.clear()

    def release_logs(self) -> None:
        assert self.gate is not None
        self.gate.set()

    def blocked_writing_logs(self) -> bool:
        """Is the worker's main thread inside a write(2) to stdout? (Linux: /proc/PID/syscall.)"""
        fields = Path(f"/proc/{self.pid}/syscall").read_text().split()
        return fields[:2] == [str(WRITE_SYSCALL), "0x1"]

    def __enter__(self) -> WorkerProcess:
        return self.start() if self.process is None else self

    def __exit__(self, *exc_info: object) -> None:
        if self.gate is not None:
            self.gate.set()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self._pump is not None:
            self._pump.join(EXIT_PATIENCE_S)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def send_signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = EXIT_PATIENCE_S) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            # SIGABRT makes faulthandler print every thread's stack: why it hangs, in the failure.
            self.process.send_signal(signal.SIGABRT)
            self.process.wait(EXIT_PATIENCE_S)
            raise AssertionError(f"worker {self.name} did not exit within {timeout:g}s\n{self.tail()}") from None

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 10) -> str:
        """The last log lines and stderr, for failure messages (claim and event ids only)."""
        text = self.stdout_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        return "\n".join([*text, self.stderr()[-6000:]])

    def events(self) -> Iterator[dict[str, Any]]:
        """The JSON log events written so far (a line cut short by a kill is skipped)."""
        for line in self.stdout_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                yield event

    def wait_for_event(self, condition: Callable[[dict[str, Any]], bool], what: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events():
                if condition(event):
                    return event
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"worker {self.name} exited ({self.process.returncode}) before {what}\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {self.name}: no {what} within {timeout:g}s\n{self.tail()}")
            time.sleep(0.1)

    def owned_partitions(self) -> set[int]:
        """Claims partitions held after the last rebalance, from the worker's rebalance log lines."""
        owned: set[int] = set()
        for event in self.events():
            if event.get("event") != "rebalance":
                continue
            if event.get("event_type") == "assigned":
                owned = set(event.get("partitions", []))
            else:
                owned -= set(event.get("partitions", []))
        return owned

    def decided_partitions(self) -> set[int]:
        return {event["partition"] for event in self.events() if event.get("event") == "claim_decided"}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = OUTPUT_PATIENCE_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)
