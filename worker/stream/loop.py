"""The stream loop: read claims and context in time order, decide as of each claim's time, commit.

One iteration (every step on the main thread; the kafka-python consumer is not thread-safe):

1. poll claims from the group consumer (the claims topic only) and queue them per partition;
2. apply queued rebalance events (`worker.stream.rebalance` plans, `worker.stream.partitions` applies):
   a new partition is read from the beginning, its claims below the committed offset replayed as
   history, so its context is rebuilt as of its first undecided claim (Kafka Streams restores a
   source-topic table to the committed offset too);
3. read the context topics and apply each record, with its time, to the versioned store;
4. ask for context end offsets where a queued claim needs them (`worker.stream.merge`: the freshness rule);
5. decide every claim whose context is complete, as of its time; dead-letter bad input;
6. checkpoint (`worker.stream.ledger`): flush, check every acknowledgement, then commit;
7. pause what is ahead (context ahead of its claims, long claim queues), resume the rest; gauges and
   health (`worker.stream.flow`).

Co-partitioning: only the claims topic is subscribed by the group; the worker follows the same
partition numbers of the two context topics by manual assignment (the start-up check refuses
differing partition counts). With `--context-scope global` it follows every context partition.
Context positions are committed under the group id too: they mark what was dead-lettered already, so
a poison context record read again during a rebuild is not dead-lettered twice.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import structlog
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from worker.codec.registry import RegistryError
from worker.codec.wire import WireFormat
from worker.config import Settings
from worker.engine.context_store import ContextStore
from worker.engine.evaluate import Evaluator
from worker.engine.events import Decision, Source
from worker.engine.horizon import widest
from worker.observability import Health, Metrics
from worker.stream import kafka_clients
from worker.stream.feed import ContextFeed, ReadyClaim, RejectedRecord, UnreadableRecord
from worker.stream.flow import FlowControl
from worker.stream.intake import Rejected
from worker.stream.interpreter import loop_settings
from worker.stream.ledger import DeliveryError, OffsetLedger, OnAck
from worker.stream.merge import TimeOrderedMerge, Tp
from worker.stream.outputs import Origin, Outputs
from worker.stream.partitions import PartitionLifecycle
from worker.stream.polling import UNREADABLE_MESSAGE, Unreadable, poll_safely
from worker.stream.rebalance import RebalanceQueue
from worker.stream.shadow import Shadow

__all__ = ["DeliveryError", "StreamWorker"]

log = structlog.get_logger("worker.stream")

POLL_TIMEOUT_MS = 500  # bounds how long SIGTERM waits for the loop to notice (well under 10 s)
# While a claim waits for its context, the claims poll does not block and the context poll waits at
# most this long: a context fetch answers within the consumer's fetch_max_wait_ms (20 ms) anyway.
CONTEXT_WAIT_MS = 100
FLUSH_TIMEOUT_S = 30.0


def _position(marker: Unreadable) -> UnreadableRecord:
    return UnreadableRecord(marker.topic, marker.partition, marker.offset)


def _unreadable(marker: Unreadable) -> Rejected:
    return Rejected("decode", RuntimeError(marker.error_class), UNREADABLE_MESSAGE)


class StreamWorker(PartitionLifecycle, FlowControl):
    def __init__(
        self,
        settings: Settings,
        evaluator: Evaluator,
        wire: WireFormat,
        metrics: Metrics,
        health: Health,
        *,
        worker_version: str,
        on_decision: Callable[[Decision], None] | None = None,
        shadow: Shadow | None = None,
    ) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.evaluator = evaluator
        self.wire = wire
        self.metrics = metrics
        self.health = health
        self.worker_version = worker_version
        self.on_decision = on_decision
        self._log_decisions = True  # at the configured level (set when the loop starts)
        self.shadow = shadow  # live shadow evaluation (worker.stream.shadow); never changes what is published
        self.store = ContextStore(
            global_scope=settings.context_scope == "global",
            horizon=evaluator.horizon if shadow is None else widest(evaluator.horizon, shadow.evaluator.horizon),
            lab_groups=evaluator.reference.group_of_loinc,
        )
        self.merge = TimeOrderedMerge(grace_ms=settings.context_grace_ms)
        self.feed = ContextFeed(
            wire,
            settings.topics,
            self.store,
            self.merge,
            timestamp_source=settings.timestamp_source,
            max_claim_lines=settings.max_claim_lines,
            on_late=lambda topic: self.metrics.late_context.labels(topic=topic).inc(),
        )
        self.ledger = OffsetLedger(time.monotonic)
        self._listener = RebalanceQueue()
        self._joined = False
        self._rebuilding: dict[int, float] = {}  # claims partition -> when its rebuild started
        self._context_tps: set[TopicPartition] = set()
        self._paused_context: set[TopicPartition] = set()
        self._paused_claims: set[TopicPartition] = set()
        self._series_tps: set[TopicPartition] = set()  # partitions with lag/commit series exported
        self._claims_count = 1
        self._context_counts: dict[str, int] = {}
        self._stop = False
        self._stop_signal: int | None = None
        # Monotonic time the first partition was assigned: consumption (rebuild included) starts
        # here, after the group join. Throughput reports (demo, benchmark) measure from it.
        self.consuming_since: float | None = None
        self.group: KafkaConsumer | None = None
        self.context: KafkaConsumer | None = None
        self.producer: KafkaProducer | None = None
        self.outputs: Outputs[OnAck] | None = None  # every send guarded per record (worker.stream.outputs)

    # --- lifecycle --------------------------------------------------------------------------------

    def request_stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """SIGTERM/SIGINT: stop polling; the current batch finishes, flushes and commits.

        A signal handler runs between any two bytecodes of the main thread, possibly inside a log
        call holding the logger's lock: it only sets a flag, and the loop logs the stop."""
        self._stop = True
        self._stop_signal = signum

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Process until stopped (or until `until()` is true); always flushes, commits and closes."""
        with loop_settings():
            self._run(until)

    def _run(self, until: Callable[[], bool] | None) -> None:
        self.producer = kafka_clients.producer(self.settings)
        self.outputs = Outputs(
            self.producer,
            decisions_topic=self.topics.decisions,
            dead_letter_topic=self.topics.dead_letter,
            worker_version=self.worker_version,
            metrics=self.metrics,
        )
        self._log_decisions = log.is_enabled_for(logging.INFO)
        self.group = kafka_clients.group_consumer(self.settings)
        self.context = kafka_clients.assigned_consumer(self.settings, "context")
        try:
            self._check_topics()
            self._listener.consumer = self.group
            self.group.subscribe(topics=[self.topics.claims], listener=self._listener)
            self.health.set_ready("joining the consumer group")
            log.info(
                "worker_started",
                group_id=self.settings.group_id,
                context_scope=self.settings.context_scope,
                timestamp_source=self.settings.timestamp_source,
                context_grace_ms=self.settings.context_grace_ms,
            )
            while not self._stop and not (until is not None and until()):
                self._iterate()
            log.info("stopping", signal=self._stop_signal)
            self._checkpoint()
        finally:
            self._close()

    def _close(self) -> None:
        self.health.set_ready("stopped")
        for client in (self.group, self.context):
            if client is not None:
                try:
                    client.close(autocommit=False)
                except Exception:
                    log.warning("consumer_close_failed", exc_info=True)
        if self.producer is not None:
            self.producer.close(timeout=5)
        log.info("worker_stopped")

    # --- one iteration ----------------------------------------------------------------------------

    def _iterate(self) -> None:
        assert self.group is not None
        waiting = self.merge.waiting_longest() is not None
        claims_wait = 0 if waiting else self._idle_wait_ms()
        batch, unreadable = poll_safely(self.group, timeout_ms=claims_wait, max_records=self.settings.max_batch)
        self._apply_rebalance()
        if batch or unreadable:
            epoch = self.merge.next_epoch()
            for tp, records in batch.items():
                self.metrics.count_consumed(tp.topic, len(records))
                self.feed.add_claims(tp.partition, records, epoch)
            for marker in unreadable:  # in offset order with the claims around it
                self.feed.add_unreadable_claim(marker.partition, _position(marker), _unreadable(marker), epoch)
        self._read_context(timeout_ms=CONTEXT_WAIT_MS if waiting else 0)
        self._ask_end_offsets()
        self._decide_ready()
        self._checkpoint()
        self._flow_control()
        self._check_waiting()
        self._update_gauges()
        self._beat()
        self._update_readiness()

    def _idle_wait_ms(self) -> int:
        grace = self.merge.grace_wait_ms()
        return POLL_TIMEOUT_MS if grace is None else max(1, min(POLL_TIMEOUT_MS, grace))

    # --- input ------------------------------------------------------------------------------------

    def _read_context(self, timeout_ms: int) -> None:
        assert self.context is not None
        if not self._context_tps:
            return
        batch, unreadable = poll_safely(self.context, timeout_ms=timeout_ms)
        for marker in unreadable:
            self.merge.context_position(marker.tp, marker.offset + 1)
            self._context_rejected(marker.tp, _position(marker), _unreadable(marker))
            self.ledger.consume(marker.tp, marker.offset + 1)
        for tp, records in batch.items():
            self.metrics.count_consumed(tp.topic, len(records))
            for bad in self.feed.add_context(tp, records):
                self._context_rejected(tp, bad.record, bad.rejected)
            self.ledger.consume(tp, records[-1].offset + 1)

    def _context_rejected(self, tp: TopicPartition, record: Any, rejected: Rejected) -> None:
        # Poison seen before (below the committed offset) was dead-lettered then.
        if record.offset >= self.ledger.committed.get(tp, 0) and self._has_dlq_duty(tp):
            self._dead_letter(tp, record, rejected)

    def _has_dlq_duty(self, tp: Tp) -> bool:
        if not self.store.global_scope:
            return True  # only owned partitions are followed
        return tp[1] % self._claims_count in self.merge.tasks

    def _ask_end_offsets(self) -> None:
        """End offsets, asked after the claims waiting for them were fetched (the freshness rule)."""
        assert self.context is not None
        wanted = self.merge.wanted_targets()
        if not wanted:
            return
        tps = [TopicPartition(*tp) for tp in wanted]
        ends = self.context.end_offsets(tps)
        for tp in tps:
            highwater = self.context.highwater(tp)
            if highwater is None and (ends.get(tp) or 0) > 0:
                continue  # nothing fetched yet; some brokers answer ListOffsets short: wait for a fetch
            self.merge.set_target(tp, max(ends.get(tp) or 0, highwater or 0), self.merge.epoch)
            self.merge.context_position(tp, self.context.position(tp))

    # --- claims -----------------------------------------------------------------------------------

    def _decide_ready(self) -> None:
        for ready in self.feed.ready():
            partition = ready.partition
            tp = TopicPartition(self.topics.claims, partition)
            self.ledger.consume(tp, ready.record.offset + 1)
            if isinstance(ready, RejectedRecord):
                self._dead_letter(tp, ready.record, ready.rejected)
            else:
                self._decide(tp, ready)
        for partition in list(self._rebuilding):
            if self.merge.tasks[partition].replayed:
                self._rebuilt(partition)

    def _decide(self, tp: TopicPartition, ready: ReadyClaim) -> None:
        claim, record = ready.claim, ready.record
        if not claim.j7507_lines:
            self.feed.decided(ready)
            self.metrics.count_decision("skipped", ())
            log.debug("claim_skipped", claim_id=claim.claim_id, claim_version=claim.claim_version)
            return
        try:
            decision = self.evaluator.decide(
                claim, ready.context, Source(record.topic, record.partition, record.offset), context_as_of=ready.as_of
            )
            value = self.wire.encode("ClaimDecision", decision.to_dict(), self.topics.decisions)
        except RegistryError:
            raise  # the registry is down or refuses our schema: stop and retry, never dead-letter good claims
        except Exception as error:
            log.error("claim_failed", claim_id=claim.claim_id, claim_version=claim.claim_version, exc_info=True)
            self._dead_letter(tp, record, Rejected("other", error, f"cannot decide claim: {type(error).__name__}"))
            return
        assert self.outputs is not None
        sent_at = time.monotonic()
        claim_time, partition, offset = claim.event_time, record.partition, record.offset
        self.outputs.decision(
            Origin.of(record),
            value,
            [
                ("outcome", decision.outcome.encode()),
                ("decision_id", decision.decision_id.encode()),
                ("rule_pack", str(decision.rule_pack).encode()),
            ],
            # Bound now: the callback keeps what the metrics need until the ack, not the claim itself.
            lambda acked_at: self._record_decision(decision, claim_time, partition, offset, sent_at, acked_at),
        )
        if self.shadow is not None:
            self.shadow.observe(decision, claim, ready.context, decision.source, ready.as_of, record.key, self.producer)
        # Decided claims become prior claims for the patient's later claims.
        self.feed.decided(ready)

    def _rebuilt(self, partition: int) -> None:
        started = self._rebuilding.pop(partition)
        elapsed = time.monotonic() - started
        self.metrics.context_restore.observe(elapsed)
        log.info("context_rebuilt", partition=partition, seconds=round(elapsed, 3), **dict(self.store.sizes))

    def _dead_letter(self, tp: TopicPartition, record: Any, rejected: Rejected) -> None:
        """Guarded (worker.stream.outputs): counted and logged there, by position, never with bytes."""
        assert self.outputs is not None
        self.outputs.dead_letter(Origin.of(record), rejected)

    # --- acknowledge and commit -------------------------------------------------------------------

    def _checkpoint(self) -> None:
        outputs = self.outputs
        assert outputs is not None
        committed = self.ledger.checkpoint(
            lambda: outputs.complete(FLUSH_TIMEOUT_S) if len(outputs) else [],
            self._commit,
            lambda tp: tp[0] == self.topics.claims or self._has_dlq_duty(tp),
        )
        now = time.time()
        for tp in committed:
            topic_partition = TopicPartition(*tp)
            self.metrics.last_commit.labels(topic=tp[0], partition=str(tp[1])).set(now)
            self._series_tps.add(topic_partition)

    def _commit(self, offsets: Mapping[Tp, int]) -> bool:
        assert self.group is not None
        try:
            self.group.commit(
                {TopicPartition(*tp): OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()}
            )
        except (CommitFailedError, KafkaError) as error:
            # A rebalance took the partitions: their new owner replays from the last commit, and the
            # replayed claims get the same decision ids. Nothing is lost.
            log.warning("commit_failed", error_class=type(error).__name__, partitions=len(offsets))
            return False
        return True

    def _record_decision(
        self,
        decision: Decision,
        claim_time: datetime | None,
        partition: int,
        offset: int,
        polled_at: float,
        acked_at: float,
    ) -> None:
        latency = acked_at - polled_at
        self.metrics.claim_processing.observe(latency)
        if claim_time is not None:
            self.metrics.end_to_end_latency.observe(max(0.0, (datetime.now(UTC) - claim_time).total_seconds()))
        self.metrics.count_decision(
            decision.outcome,
            ((finding.rule_id, finding.outcome) for line in decision.lines for finding in line.findings),
        )
        # The canonical line: one per decided claim, claim and event ids only (no patient data). Its
        # fields cost 4-5 µs to build, so they are not built at a level that drops the line.
        if self._log_decisions:
            log.info(
                "claim_decided",
                claim_id=decision.claim_id,
                claim_version=decision.claim_version,
                decision_id=decision.decision_id,
                outcome=decision.outcome,
                rule_ids=list(decision.rule_ids),
                rule_pack=str(decision.rule_pack),
                partition=partition,
                offset=offset,
                context_as_of=decision.context_as_of.isoformat() if decision.context_as_of else None,
                latency_ms=round(latency * 1000, 2),
            )
        if self.on_decision is not None:
            self.on_decision(decision)
