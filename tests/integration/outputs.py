"""Reading decisions and dead letters with a group-less consumer.

Every timeout here is a guard against a hung test, never a performance expectation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from worker.codec.wire import PlainAvro

from .producing import Placed
from .stream_setup import OUTPUT_PATIENCE_S, StreamSetup, log_end_offsets

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
