"""Flow control and health: pause what is ahead, fail a claim that waits too long, export gauges,
report liveness and readiness. `StreamWorker` inherits these methods; the attributes below are the
ones it sets up in `__init__`.
"""

from __future__ import annotations

import time

import structlog
from kafka import KafkaConsumer, TopicPartition

from worker.config import Settings, Topics
from worker.engine.context_store import CONTEXT_KINDS, ContextStore
from worker.observability import Health, Metrics
from worker.stream.ledger import DeliveryError, OffsetLedger
from worker.stream.merge import TimeOrderedMerge
from worker.stream.rebalance import RebalanceQueue

log = structlog.get_logger("worker.stream")


def _repause(consumer: KafkaConsumer, paused: set[TopicPartition], wanted: set[TopicPartition]) -> set[TopicPartition]:
    """Pause and resume so that exactly `wanted` is paused; returns it."""
    if wanted - paused:
        consumer.pause(*(wanted - paused))
    if paused - wanted:
        consumer.resume(*(paused - wanted))
    return wanted


class FlowControl:
    """The end of each iteration: pauses and resumes, the wait limit, gauges, /livez and /readyz."""

    settings: Settings
    topics: Topics
    metrics: Metrics
    health: Health
    store: ContextStore
    merge: TimeOrderedMerge
    ledger: OffsetLedger
    group: KafkaConsumer | None
    context: KafkaConsumer | None
    _listener: RebalanceQueue
    _joined: bool
    _rebuilding: dict[int, float]
    _context_tps: set[TopicPartition]
    _paused_context: set[TopicPartition]
    _paused_claims: set[TopicPartition]
    _series_tps: set[TopicPartition]

    # --- flow control and health ------------------------------------------------------------------

    def _flow_control(self) -> None:
        """Pause what is ahead (`TimeOrderedMerge.pause_plan`), resume the rest."""
        assert self.group is not None and self.context is not None
        group = self.group

        def caught_up(partition: int) -> bool:
            task = self.merge.tasks[partition]
            highwater = group.highwater(TopicPartition(self.topics.claims, partition))
            fetched = task.queue[-1].offset + 1 if task.queue else task.next_offset
            return highwater is not None and fetched >= highwater

        context, claims = self.merge.pause_plan(caught_up)
        self._paused_context = _repause(self.context, self._paused_context, {TopicPartition(*tp) for tp in context})
        self._paused_claims = _repause(
            group, self._paused_claims, {TopicPartition(self.topics.claims, number) for number in claims}
        )

    def _check_waiting(self) -> None:
        waiting = self.merge.waiting_longest()
        if waiting is None:
            return
        partition, since = waiting
        if time.monotonic() - since > self.settings.context_sync_timeout_s:
            raise DeliveryError(
                f"claims of partition {partition} waited more than {self.settings.context_sync_timeout_s:g}s for "
                "their context partitions to catch up"
            )

    def _update_gauges(self) -> None:
        assert self.group is not None and self.context is not None
        self.metrics.assigned_partitions.set(len(self.merge.tasks))
        for kind in CONTEXT_KINDS:
            self.metrics.context_entries.labels(kind=kind).set(self.store.sizes[kind])
        claims_tps = [TopicPartition(self.topics.claims, number) for number in sorted(self.merge.tasks)]
        for consumer, tps in ((self.group, claims_tps), (self.context, sorted(self._context_tps))):
            for tp in tps:
                highwater = consumer.highwater(tp)
                position = self.ledger.consumed.get(tp)
                if highwater is None or position is None:
                    continue
                self._series_tps.add(tp)
                self.metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                    max(0, highwater - position)
                )

    def _beat(self) -> None:
        """The loop is alive (also during long rebuilds): /livez and the heartbeat metric agree."""
        self.health.beat()
        self.metrics.loop_heartbeat.set(time.time())

    def _update_readiness(self) -> None:
        """/readyz: ready once the worker joined its group and rebuilt the context of its assignment."""
        if self._listener.events:
            reason: str | None = "rebalance in progress"
        elif not self._joined:
            reason = "joining the consumer group"
        elif self._rebuilding:
            reason = f"rebuilding the context of partitions {sorted(self._rebuilding)}"
        else:
            reason = None
        if reason is None and not self.health.ready()[0]:
            log.info("worker_ready", partitions=sorted(self.merge.tasks), **dict(self.store.sizes))
        self.health.set_ready(reason)
