"""The stream loop: poll claims, keep patient context current, decide, produce, commit.

Shape of one iteration (every step on the main thread; the kafka-python consumer is not
thread-safe):

1. poll a batch of claims from the group consumer (claims topic only);
2. apply rebalance events queued by the listener: restore the context of new partitions
   (prescriptions and labs from the beginning to the high watermark, claims up to the committed
   offset as prior-claims history), drop that of revoked or lost ones;
3. apply whatever context records are available, then, for the partitions in the batch, wait until
   their context partitions are caught up to the broker's end offsets (so any context event
   acknowledged before a claim was produced is visible to that claim);
4. decide each claim (the same `Evaluator.decide` as the offline CLI) and send its decision;
   undecodable or invalid input goes to the dead-letter topic;
5. flush the producer, check every send was acknowledged, and only then commit the offsets:
   at-least-once, and a replayed claim gets the same decision_id.

Co-partitioning: only the claims topic is subscribed by the group; the worker follows the same
partition numbers of the two context topics by manual assignment, which guarantees it owns the
same partitions of each (the start-up check refuses differing partition counts). With
`--context-scope global` it follows every context partition instead.

Context topics are not consumed by the group, but the worker commits its context positions under
the group id too: that is the dead-letter watermark, so a poison context record seen again during a
later restore is not dead-lettered twice.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import structlog
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from worker import kafka_clients
from worker.config import Settings
from worker.context import ContextStore
from worker.errors import ConfigError
from worker.evaluate import Evaluator
from worker.events import Claim, Decision, LabResult, Prescription, Source
from worker.intake import Rejected, check_claim_bounds, read_event
from worker.observability import Health, Metrics
from worker.outputs import DeliveryError, Origin, Outputs
from worker.polling import UNREADABLE_MESSAGE, Unreadable, poll_safely
from worker.registry import RegistryError
from worker.wire import WireFormat

log = structlog.get_logger("worker.stream")

POLL_TIMEOUT_MS = 500  # bounds how long SIGTERM waits for the loop to notice (well under 10 s)
# The loop thread does the CPU work; kafka-python's IO threads need the GIL only briefly. CPython's
# default 5 ms switch interval makes the loop hand the GIL over far more often than they need it
# (measured: about 15% of the loop's throughput); 50 ms stays far below every Kafka timeout
# (heartbeats are sent every second or more).
GIL_SWITCH_INTERVAL_S = 0.05
FLUSH_TIMEOUT_S = 30.0
Headers = list[tuple[str, bytes]]
__all__ = ["DeliveryError", "StreamWorker"]  # DeliveryError lives in worker.outputs now


@dataclass
class _Pending:
    """A sent decision, waiting for the broker's acknowledgement before its offset is committed."""

    decision: Decision | None
    polled_at: float
    event_time: datetime | None
    partition: int
    offset: int


class _RebalanceQueue(ConsumerRebalanceListener):  # type: ignore[misc]
    """Runs on the consumer's IO thread: only queues events and pauses new partitions.

    Pausing keeps records of a new partition from being fetched before its context is restored; the
    main loop does the blocking work (restore, commit) and resumes them.
    """

    def __init__(self) -> None:
        self.events: deque[tuple[str, frozenset[TopicPartition]]] = deque()
        self.consumer: KafkaConsumer | None = None

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.events.append(("revoked", frozenset(revoked)))

    def on_partitions_lost(self, lost: Iterable[TopicPartition]) -> None:
        self.events.append(("lost", frozenset(lost)))

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        partitions = frozenset(assigned)
        if self.consumer is not None and partitions:
            self.consumer.pause(*partitions)
        self.events.append(("assigned", partitions))


class StreamWorker:
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
    ) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.evaluator = evaluator
        self.wire = wire
        self.metrics = metrics
        self.health = health
        self.worker_version = worker_version
        self.on_decision = on_decision
        self.store = ContextStore(global_scope=settings.context_scope == "global")
        self._stop = False
        self._stop_signal: int | None = None
        self._listener = _RebalanceQueue()
        self._owned: set[int] = set()  # claims partitions whose context is restored
        self._context_tps: set[TopicPartition] = set()
        self._dlq_watermark: dict[TopicPartition, int] = {}
        self._consumed: dict[TopicPartition, int] = {}  # next offset to commit, per input partition
        self._series_tps: set[TopicPartition] = set()  # partitions with lag/commit series exported
        self._claims_count = 1
        # Monotonic time the first partition was assigned: consumption (restore included) starts
        # here, after the group join. Throughput reports (demo, benchmark) measure from it.
        self.consuming_since: float | None = None
        self._context_counts: dict[str, int] = {}
        self.group: KafkaConsumer | None = None
        self.context: KafkaConsumer | None = None
        self.producer: KafkaProducer | None = None
        self.outputs: Outputs[_Pending] | None = None

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
        previous_switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        self.producer = kafka_clients.producer(self.settings)
        self.outputs = Outputs(
            self.producer,
            decisions_topic=self.topics.decisions,
            dead_letter_topic=self.topics.dead_letter,
            worker_version=self.worker_version,
            metrics=self.metrics,
        )
        self.group = kafka_clients.group_consumer(self.settings)
        self.context = kafka_clients.assigned_consumer(self.settings, "context")
        try:
            self._check_topics()
            self._listener.consumer = self.group
            self.group.subscribe(topics=[self.topics.claims], listener=self._listener)
            log.info("worker_started", group_id=self.settings.group_id, context_scope=self.settings.context_scope)
            while not self._stop and not (until is not None and until()):
                self._iterate()
            log.info("stopping", signal=self._stop_signal)
            self._complete_batch()
        finally:
            self._close()
            sys.setswitchinterval(previous_switch_interval)

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

    def _check_topics(self) -> None:
        assert self.group is not None
        counts: dict[str, int] = {}
        for topic in (*self.topics.inputs, self.topics.decisions, self.topics.dead_letter):
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

    # --- one iteration ----------------------------------------------------------------------------

    def _iterate(self) -> None:
        assert self.group is not None
        batch, unreadable = poll_safely(self.group, timeout_ms=POLL_TIMEOUT_MS, max_records=self.settings.max_batch)
        polled_at = time.monotonic()
        self._apply_rebalance_events()
        for marker in unreadable:
            if marker.partition in self._owned:
                self._consumed[marker.tp] = marker.offset + 1
                self._dead_letter_unreadable(marker)
        self._follow_context(timeout_ms=0)
        if batch:
            self._sync_context({tp.partition for tp in batch})
            for tp, records in batch.items():
                if tp.partition not in self._owned:
                    continue  # revoked while this batch was in flight; the new owner decides them
                for record in records:
                    self._process_claim(record, polled_at)
        self._complete_batch()
        self._update_gauges()
        self._beat()
        self.health.set_ready(None if not self._listener.events else "rebalance in progress")

    def _beat(self) -> None:
        """The loop is alive (also during long restores): /livez and the heartbeat metric agree."""
        self.health.beat()
        self.metrics.loop_heartbeat.set(time.time())

    # --- rebalance ----------------------------------------------------------------------------------

    def _apply_rebalance_events(self) -> None:
        """Apply queued rebalance events in order.

        The range assignor rebalances eagerly: every member gives up everything, then gets its new
        share. A partition revoked and handed straight back was consumed by nobody in between, so
        its context is kept; one that was lost (evicted from the group) may have been, so its
        context is dropped and restored.
        """
        assert self.group is not None
        revoked: set[int] = set()
        while self._listener.events:
            event, partitions = self._listener.events.popleft()
            self.metrics.rebalances.labels(event=event).inc()
            numbers = {tp.partition for tp in partitions}
            log.info("rebalance", event_type=event, partitions=sorted(numbers))
            if event == "lost":
                self._release(numbers & self._owned)
                revoked -= numbers
            elif event == "revoked":
                revoked |= numbers
            else:
                self._release((revoked - numbers) & self._owned)
                revoked.clear()
                new = numbers - self._owned
                if new:
                    self._restore(new)
                self.group.resume(*partitions)
        self._release(revoked & self._owned)

    def _context_tps_for(self, partitions: Iterable[int]) -> set[TopicPartition]:
        if self.store.global_scope:
            return {
                TopicPartition(topic, number)
                for topic, count in self._context_counts.items()
                for number in range(count)
            }
        return {TopicPartition(topic, number) for topic in self.topics.context for number in partitions}

    def _restore(self, partitions: set[int]) -> None:
        started = time.monotonic()
        if self.consuming_since is None:
            self.consuming_since = started
        self.health.set_ready(f"restoring context of partitions {sorted(partitions)}")
        assert self.group is not None and self.context is not None
        claims_tps = {TopicPartition(self.topics.claims, number) for number in partitions}
        wanted = self._context_tps_for(partitions)
        new_context = wanted - self._context_tps
        self._owned |= partitions
        for tp in (*claims_tps, *new_context):
            committed = self.group.committed(tp)
            self._dlq_watermark[tp] = committed or 0
        if new_context:
            self._context_tps |= new_context
            self.context.assign(sorted(self._context_tps))
            self.context.seek_to_beginning(*new_context)
            self._catch_up(new_context, deadline=None)
        self._restore_history(claims_tps)
        elapsed = time.monotonic() - started
        self.metrics.context_restore.observe(elapsed)
        log.info(
            "context_restored",
            partitions=sorted(partitions),
            seconds=round(elapsed, 3),
            **dict(self.store.sizes.items()),
        )

    def _restore_history(self, claims_tps: set[TopicPartition]) -> None:
        """Claims before the committed offset are the prior-claims history of their patients.

        Read with a consumer of its own, opened for the restore and closed after it: an idle
        kafka-python client keeps an IO thread that competes with the loop for the GIL.
        """
        targets = {tp: self._dlq_watermark[tp] for tp in claims_tps if self._dlq_watermark[tp] > 0}
        if not targets:
            return
        history = kafka_clients.assigned_consumer(self.settings, "history")
        try:
            history.assign(sorted(targets))
            history.seek_to_beginning(*targets)
            remaining = dict(targets)
            while remaining:
                # Unreadable records were dead-lettered when first processed: poll_safely skips them.
                for tp, records in poll_safely(history, timeout_ms=200)[0].items():
                    for record in records:
                        if record.offset >= targets[tp]:
                            break
                        try:
                            claim = read_event(self.wire, "claim", record.key, record.value, Claim)
                            check_claim_bounds(claim, self.settings.max_claim_lines)
                        except Rejected:
                            continue  # dead-lettered when it was first processed
                        if claim.j7507_lines:
                            self.store.add_claim(tp.partition, claim)
                for tp in list(remaining):
                    if history.position(tp) >= targets[tp]:
                        del remaining[tp]
                self._beat()
        finally:
            history.close(autocommit=False)

    def _release(self, partitions: set[int]) -> None:
        if not partitions:
            return
        assert self.context is not None
        self._owned -= partitions
        for number in partitions:
            self.store.drop(number)
            self._consumed.pop(TopicPartition(self.topics.claims, number), None)
        if not self.store.global_scope:
            dropped = {tp for tp in self._context_tps if tp.partition in partitions}
            self._context_tps -= dropped
            for tp in dropped:
                self._consumed.pop(tp, None)
            self.context.assign(sorted(self._context_tps))
        # Series for partitions another worker now owns would show stale lag on the dashboards.
        for tp in list(self._series_tps):
            if tp.partition in partitions and (tp.topic == self.topics.claims or not self.store.global_scope):
                self._series_tps.discard(tp)
                for gauge in (self.metrics.consumer_lag, self.metrics.last_commit):
                    with contextlib.suppress(KeyError):
                        gauge.remove(tp.topic, str(tp.partition))
        for tp in list(self._dlq_watermark):
            if tp.partition in partitions and (tp.topic == self.topics.claims or not self.store.global_scope):
                del self._dlq_watermark[tp]

    # --- context ------------------------------------------------------------------------------------

    def _follow_context(self, timeout_ms: int) -> None:
        assert self.context is not None
        if not self._context_tps:
            return
        batch, unreadable = poll_safely(self.context, timeout_ms=timeout_ms)
        for marker in unreadable:
            self._consumed[marker.tp] = marker.offset + 1
            if marker.offset >= self._dlq_watermark.get(marker.tp, 0) and self._has_dlq_duty(marker.tp):
                self._dead_letter_unreadable(marker)
        for tp, records in batch.items():
            kind = "prescription" if tp.topic == self.topics.prescriptions else "lab"
            self.metrics.records_consumed.labels(topic=tp.topic).inc(len(records))
            for record in records:
                self._apply_context(tp, kind, record)
            self._consumed[tp] = records[-1].offset + 1

    def _apply_context(self, tp: TopicPartition, kind: str, record: Any) -> None:
        try:
            if kind == "prescription":
                self.store.add_prescription(
                    tp.partition, read_event(self.wire, "prescription", record.key, record.value, Prescription)
                )
            else:
                self.store.add_lab(tp.partition, read_event(self.wire, "lab", record.key, record.value, LabResult))
        except Rejected as rejected:
            # Poison seen before (below the committed watermark) was dead-lettered then.
            if record.offset >= self._dlq_watermark.get(tp, 0) and self._has_dlq_duty(tp):
                self._dead_letter(tp, record, rejected)

    def _has_dlq_duty(self, tp: TopicPartition) -> bool:
        if not self.store.global_scope:
            return True  # only owned partitions are followed
        return tp.partition % self._claims_count in self._owned

    def _sync_context(self, partitions: set[int]) -> None:
        """Wait until the context partitions of these claims partitions reach the broker's end offsets.

        The end offsets are asked for after the claims were fetched, so they cover every context
        event acknowledged before those claims were produced. Some brokers answer ListOffsets short
        when the newest batch holds several records; the fetch high watermark covers that case.
        """
        tps = self._context_tps_for(partitions) & self._context_tps
        if tps:
            self._catch_up(tps, deadline=time.monotonic() + self.settings.context_sync_timeout_s)

    def _catch_up(self, tps: set[TopicPartition], deadline: float | None) -> None:
        assert self.context is not None
        targets = self.context.end_offsets(sorted(tps))
        while True:
            behind = set()
            for tp in tps:
                target = max(targets.get(tp) or 0, self.context.highwater(tp) or 0)
                if self.context.position(tp) < target or self.context.highwater(tp) is None:
                    behind.add(tp)
            if not behind:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise DeliveryError(
                    f"context partitions {sorted(f'{tp.topic}-{tp.partition}' for tp in behind)} did not catch up "
                    f"within {self.settings.context_sync_timeout_s:g}s"
                )
            self._follow_context(timeout_ms=100)
            self._beat()

    # --- claims -------------------------------------------------------------------------------------

    def _process_claim(self, record: Any, polled_at: float) -> None:
        tp = TopicPartition(record.topic, record.partition)
        self.metrics.records_consumed.labels(topic=record.topic).inc()
        self._consumed[tp] = record.offset + 1
        try:
            claim = read_event(self.wire, "claim", record.key, record.value, Claim)
            check_claim_bounds(claim, self.settings.max_claim_lines)
        except Rejected as rejected:
            self._dead_letter(tp, record, rejected)
            return
        if not claim.j7507_lines:
            self.metrics.claims_decided.labels(outcome="skipped").inc()
            log.debug("claim_skipped", claim_id=claim.claim_id, claim_version=claim.claim_version)
            return
        context = self.store.patient(record.partition, claim.patient_id)
        try:
            decision = self.evaluator.decide(claim, context, Source(record.topic, record.partition, record.offset))
            value = self.wire.encode("ClaimDecision", decision.to_dict(), self.topics.decisions)
        except RegistryError:
            raise  # the registry is down or refuses our schema: stop and retry, never dead-letter good claims
        except Exception as error:
            log.error("claim_failed", claim_id=claim.claim_id, claim_version=claim.claim_version, exc_info=True)
            self._dead_letter(tp, record, Rejected("other", error, f"cannot decide claim: {type(error).__name__}"))
            return
        assert self.outputs is not None
        self.outputs.decision(
            Origin.of(record),
            value,
            [
                ("outcome", decision.outcome.encode()),
                ("decision_id", decision.decision_id.encode()),
                ("rule_pack", str(decision.rule_pack).encode()),
            ],
            _Pending(decision, polled_at, claim.event_time, record.partition, record.offset),
        )
        # Decided claims become prior claims for the patient's later claims.
        self.store.add_claim(record.partition, claim)

    def _dead_letter(self, tp: TopicPartition, record: Any, rejected: Rejected) -> None:
        assert self.outputs is not None
        self.outputs.dead_letter(Origin.of(record), rejected)

    def _dead_letter_unreadable(self, marker: Unreadable) -> None:
        """A record the client could not parse: a marker with its position (no bytes to keep)."""
        assert self.outputs is not None
        error = Rejected("decode", RuntimeError(marker.error_class), UNREADABLE_MESSAGE)
        self.outputs.dead_letter(Origin(marker.topic, marker.partition, marker.offset, None, None), error)

    # --- acknowledge and commit ---------------------------------------------------------------------

    def _complete_batch(self) -> None:
        """Flush, confirm every output was acknowledged, record the decisions, then commit."""
        assert self.outputs is not None and self.group is not None
        if len(self.outputs):
            acked = self.outputs.complete(FLUSH_TIMEOUT_S)
            acked_at = time.monotonic()
            now = datetime.now(UTC)
            for pending in acked:
                self._record_decision(pending, acked_at, now)
        self._commit()

    def _record_decision(self, pending: _Pending, acked_at: float, now: datetime) -> None:
        decision = pending.decision
        assert decision is not None
        latency = acked_at - pending.polled_at
        self.metrics.claim_processing.observe(latency)
        if pending.event_time is not None:
            event_time = pending.event_time if pending.event_time.tzinfo else pending.event_time.replace(tzinfo=UTC)
            self.metrics.end_to_end_latency.observe(max(0.0, (now - event_time).total_seconds()))
        self.metrics.claims_decided.labels(outcome=decision.outcome.lower()).inc()
        for line in decision.lines:
            for finding in line.findings:
                self.metrics.rule_findings.labels(rule_id=finding.rule_id, outcome=finding.outcome.lower()).inc()
        # The canonical line: one per decided claim, claim and event ids only (no patient data).
        log.info(
            "claim_decided",
            claim_id=decision.claim_id,
            claim_version=decision.claim_version,
            decision_id=decision.decision_id,
            outcome=decision.outcome,
            rule_ids=list(decision.rule_ids),
            rule_pack=str(decision.rule_pack),
            partition=pending.partition,
            offset=pending.offset,
            latency_ms=round(latency * 1000, 2),
        )
        if self.on_decision is not None:
            self.on_decision(decision)

    def _commit(self) -> None:
        assert self.group is not None
        offsets = {
            tp: OffsetAndMetadata(offset, "", -1)
            for tp, offset in self._consumed.items()
            if offset > self._dlq_watermark.get(tp, 0) and (tp.topic == self.topics.claims or self._has_dlq_duty(tp))
        }
        if not offsets:
            return
        try:
            self.group.commit(offsets)
        except (CommitFailedError, KafkaError) as error:
            # A rebalance took the partitions: their new owner replays from the last commit, and the
            # replayed claims get the same decision ids. Nothing is lost.
            log.warning("commit_failed", error_class=type(error).__name__, partitions=len(offsets))
            return
        now = time.time()
        for tp, meta in offsets.items():
            self._dlq_watermark[tp] = meta.offset
            self.metrics.last_commit.labels(topic=tp.topic, partition=str(tp.partition)).set(now)
            self._series_tps.add(tp)

    def _update_gauges(self) -> None:
        assert self.group is not None and self.context is not None
        self.metrics.assigned_partitions.set(len(self._owned))
        for kind in ("patients", "prescriptions", "labs", "prior_claims"):
            self.metrics.context_entries.labels(kind=kind).set(self.store.sizes[kind])
        for consumer, tps in ((self.group, self._claims_tps()), (self.context, self._context_tps)):
            for tp in tps:
                highwater = consumer.highwater(tp)
                if highwater is None:
                    continue
                position = self._consumed.get(tp)
                if position is None:
                    continue
                self._series_tps.add(tp)
                self.metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                    max(0, highwater - position)
                )

    def _claims_tps(self) -> list[TopicPartition]:
        return [TopicPartition(self.topics.claims, number) for number in sorted(self._owned)]
