"""Topics, settings, the broker's view and waiting: what every stream test starts from.

Every timeout here is a guard against a hung test, never a performance expectation.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from worker.config import Settings, Topics, settings_from

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


def wait_for(condition: Callable[[], bool], what: str, timeout: float = OUTPUT_PATIENCE_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)
