"""The partitions the worker reads: their counts, checked at start, and opening and releasing them,
the loop's side of a rebalance (`worker.stream.rebalance` plans it).

A new claims partition is read from the beginning, with the context partitions it needs, its claims
below the committed offset replayed as history; a released one is dropped from the store, the merge,
the ledger and the exported series. `StreamWorker` inherits these methods; the attributes below are
the ones it sets up in `__init__`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable

import structlog
from kafka import KafkaConsumer, TopicPartition

from worker.config import Settings, Topics
from worker.engine.context_store import ContextStore
from worker.errors import ConfigError
from worker.observability import Metrics
from worker.stream.ledger import OffsetLedger
from worker.stream.merge import TimeOrderedMerge
from worker.stream.rebalance import RebalanceQueue, plan_rebalance

log = structlog.get_logger("worker.stream")


class PartitionLifecycle:
    """Rebalance events applied on the loop's thread: open new partitions, release lost ones."""

    topics: Topics
    metrics: Metrics
    store: ContextStore
    merge: TimeOrderedMerge
    ledger: OffsetLedger
    group: KafkaConsumer | None
    context: KafkaConsumer | None
    consuming_since: float | None
    _listener: RebalanceQueue
    _joined: bool
    _rebuilding: dict[int, float]
    _context_tps: set[TopicPartition]
    _paused_context: set[TopicPartition]
    _series_tps: set[TopicPartition]
    _claims_count: int
    _context_counts: dict[str, int]
    settings: Settings

    def _check_topics(self) -> None:
        assert self.group is not None
        counts: dict[str, int] = {}
        shadow = getattr(self, "shadow", None)
        shadow_topics = [shadow.topic] if shadow is not None and shadow.topic else []
        for topic in (*self.topics.inputs, self.topics.decisions, self.topics.dead_letter, *shadow_topics):
            partitions = self.group.partitions_for_topic(topic)
            if not partitions:
                raise ConfigError(f"topic {topic!r} does not exist (the worker never creates topics)")
            counts[topic] = len(partitions)
        inputs = {topic: counts[topic] for topic in self.topics.inputs}
        if self.settings.context_scope == "partition" and len(set(inputs.values())) != 1:
            described = ", ".join(f"{topic}={count}" for topic, count in inputs.items())
            raise ConfigError(
                f"input topics are not co-partitioned (partition counts {described}); fix the topics or run "
                "with --context-scope global"
            )
        self._claims_count = counts[self.topics.claims]
        self._context_counts = {topic: counts[topic] for topic in self.topics.context}

    # --- rebalance ----------------------------------------------------------------------------------

    def _apply_rebalance(self) -> None:
        assert self.group is not None
        events = self._listener.drain()
        if not events:
            return
        for event, numbers, _ in events:
            self.metrics.rebalances.labels(event=event).inc()
            log.info("rebalance", event_type=event, partitions=sorted(numbers))
        plan = plan_rebalance(((event, numbers) for event, numbers, _ in events), self.merge.tasks)
        self._joined = self._joined or plan.joined
        self._release(set(plan.release))
        for partition in plan.handed_back:
            self.merge.reset_queue(partition)
        if plan.new:
            self._open(set(plan.new))
        assigned = {tp for event, _, tps in events if event == "assigned" for tp in tps}
        if assigned:
            self.group.resume(*assigned)

    def _context_tps_for(self, partitions: Iterable[int]) -> set[TopicPartition]:
        if self.store.global_scope:
            return {
                TopicPartition(topic, number)
                for topic, count in self._context_counts.items()
                for number in range(count)
            }
        return {TopicPartition(topic, number) for topic in self.topics.context for number in partitions}

    def _open(self, partitions: set[int]) -> None:
        """Rebuild new partitions: read claims and context from the beginning, in time order."""
        assert self.group is not None and self.context is not None
        started = time.monotonic()
        if self.consuming_since is None:
            self.consuming_since = started
        new_context = self._context_tps_for(partitions) - self._context_tps
        for tp in new_context:
            self.ledger.know_committed(tp, self._committed(tp))
        if new_context:
            self._context_tps |= new_context
            self.context.assign(sorted(self._context_tps))
            self.context.seek_to_beginning(*new_context)
        for number in partitions:
            claims_tp = TopicPartition(self.topics.claims, number)
            committed = self._committed(claims_tp)
            self.ledger.know_committed(claims_tp, committed)
            self.group.seek_to_beginning(claims_tp)
            self.merge.open(number, self._context_tps_for([number]), replay_until=committed)
            if committed > 0:
                self._rebuilding[number] = started
        log.info("partitions_opened", partitions=sorted(partitions), rebuilding=sorted(self._rebuilding))

    def _committed(self, tp: TopicPartition) -> int:
        assert self.group is not None
        return self.group.committed(tp) or 0

    def _release(self, partitions: set[int]) -> None:
        if not partitions:
            return
        assert self.context is not None
        for number in partitions:
            self.store.drop(number)
            orphaned = self.merge.close(number)
            self._rebuilding.pop(number, None)
            self.ledger.forget([TopicPartition(self.topics.claims, number)])
            if not self.store.global_scope:
                gone = {TopicPartition(*tp) for tp in orphaned}
                self._context_tps -= gone
                self._paused_context -= gone
                self.ledger.forget(gone)
        self.context.assign(sorted(self._context_tps))
        # Series for partitions another worker now owns would show stale lag on the dashboards.
        for tp in list(self._series_tps):
            if tp.partition in partitions and (tp.topic == self.topics.claims or not self.store.global_scope):
                self._series_tps.discard(tp)
                for gauge in (self.metrics.consumer_lag, self.metrics.last_commit):
                    with contextlib.suppress(KeyError):
                        gauge.remove(tp.topic, str(tp.partition))
