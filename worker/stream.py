"""The stream loop: read claims and context in time order, decide as of each claim's time, commit.

One iteration (every step on the main thread; the kafka-python consumer is not thread-safe):

1. poll claims from the group consumer (the claims topic only) and queue them per partition;
2. apply queued rebalance events (`worker.rebalance`): a new partition is read from the beginning,
   its claims below the committed offset replayed as history, so its context is rebuilt as of its
   first undecided claim (Kafka Streams restores a source-topic table to the committed offset too);
3. read the context topics and apply each record, with its time, to the versioned store;
4. ask for context end offsets where a queued claim needs them (`worker.merge`: the freshness rule);
5. decide every claim whose context is complete, as of its time; dead-letter bad input;
6. checkpoint (`worker.ledger`): flush, check every acknowledgement, then commit;
7. pause what is ahead (context ahead of its claims, long claim queues), resume the rest.

Co-partitioning: only the claims topic is subscribed by the group; the worker follows the same
partition numbers of the two context topics by manual assignment (the start-up check refuses
differing partition counts). With `--context-scope global` it follows every context partition.
Context positions are committed under the group id too: they mark what was dead-lettered already, so
a poison context record read again during a rebuild is not dead-lettered twice.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import structlog
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from worker import kafka_clients
from worker.config import Settings
from worker.context_store import CONTEXT_KINDS, ContextStore
from worker.dlq import dead_letter
from worker.errors import ConfigError
from worker.evaluate import Evaluator
from worker.events import Claim, Decision, Source
from worker.feed import ContextFeed, ReadyClaim, RejectedRecord
from worker.impact import widest
from worker.intake import Rejected
from worker.kafka_workarounds import release_drained_slot
from worker.ledger import DeliveryError, OffsetLedger
from worker.merge import TimeOrderedMerge, Tp
from worker.observability import Health, Metrics
from worker.rebalance import RebalanceQueue, plan_rebalance
from worker.registry import RegistryError
from worker.shadow import Shadow
from worker.wire import WireFormat

__all__ = ["DeliveryError", "StreamWorker"]

log = structlog.get_logger("worker.stream")

POLL_TIMEOUT_MS = 500  # bounds how long SIGTERM waits for the loop to notice (well under 10 s)
# While a claim waits for its context, the claims poll does not block and the context poll waits at
# most this long: a context fetch answers within the consumer's fetch_max_wait_ms (20 ms) anyway.
CONTEXT_WAIT_MS = 100
# The loop thread does the CPU work; kafka-python's IO threads need the GIL only briefly. CPython's
# default 5 ms switch interval makes the loop hand the GIL over far more often than they need it
# (measured: about 15% of the loop's throughput); 50 ms stays far below every Kafka timeout
# (heartbeats are sent every second or more).
GIL_SWITCH_INTERVAL_S = 0.05
FLUSH_TIMEOUT_S = 30.0


def _repause(consumer: KafkaConsumer, paused: set[TopicPartition], wanted: set[TopicPartition]) -> set[TopicPartition]:
    """Pause and resume so that exactly `wanted` is paused; returns it."""
    if wanted - paused:
        consumer.pause(*(wanted - paused))
    if paused - wanted:
        consumer.resume(*(paused - wanted))
    return wanted


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
        self.shadow = shadow  # live shadow evaluation (worker.shadow); never changes what is published
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
        shadow_topics = [self.shadow.topic] if self.shadow is not None and self.shadow.topic else []
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

    # --- one iteration ----------------------------------------------------------------------------

    def _iterate(self) -> None:
        assert self.group is not None
        waiting = self.merge.waiting_longest() is not None
        claims_wait = 0 if waiting else self._idle_wait_ms()
        batch = self.group.poll(timeout_ms=claims_wait, max_records=self.settings.max_batch)
        release_drained_slot(self.group)  # kafka-python bug: else a resumed partition may stay unread
        self._apply_rebalance()
        if batch:
            epoch = self.merge.next_epoch()
            for tp, records in batch.items():
                self.metrics.records_consumed.labels(topic=tp.topic).inc(len(records))
                self.feed.add_claims(tp.partition, records, epoch)
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

    # --- input ------------------------------------------------------------------------------------

    def _read_context(self, timeout_ms: int) -> None:
        assert self.context is not None
        if not self._context_tps:
            return
        polled = self.context.poll(timeout_ms=timeout_ms)
        release_drained_slot(self.context)
        for tp, records in polled.items():
            self.metrics.records_consumed.labels(topic=tp.topic).inc(len(records))
            for bad in self.feed.add_context(tp, records):
                # Poison seen before (below the committed offset) was dead-lettered then.
                if bad.record.offset >= self.ledger.committed.get(tp, 0) and self._has_dlq_duty(tp):
                    self._dead_letter(tp, bad.record, bad.rejected)
            self.ledger.consume(tp, records[-1].offset + 1)

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
            self.metrics.claims_decided.labels(outcome="skipped").inc()
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
        assert self.producer is not None
        future = self.producer.send(
            self.topics.decisions,
            key=record.key,
            value=value,
            headers=[
                ("outcome", decision.outcome.encode()),
                ("decision_id", decision.decision_id.encode()),
                ("rule_pack", str(decision.rule_pack).encode()),
            ],
        )
        sent_at = time.monotonic()
        self.ledger.sent(
            future,
            f"{record.topic}-{record.partition}@{record.offset}",
            lambda acked_at: self._record_decision(decision, claim, record.partition, record.offset, sent_at, acked_at),
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
        letter = dead_letter(
            topic=tp.topic,
            partition=tp.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=list(record.headers or []),
            reason=rejected.reason,
            error=rejected.error,
            message=rejected.message,
            worker_version=self.worker_version,
        )
        assert self.producer is not None
        future = self.producer.send(self.topics.dead_letter, key=letter.key, value=letter.value, headers=letter.headers)
        self.ledger.sent(future, f"{tp.topic}-{tp.partition}@{record.offset}")
        self.metrics.dead_letters.labels(reason=rejected.reason).inc()
        log.warning(
            "dead_letter",
            topic=tp.topic,
            partition=tp.partition,
            offset=record.offset,
            reason=rejected.reason,
            error_class=type(rejected.error).__name__,
            error=rejected.message,
        )

    # --- acknowledge and commit -------------------------------------------------------------------

    def _checkpoint(self) -> None:
        assert self.producer is not None
        producer = self.producer
        committed = self.ledger.checkpoint(
            lambda: producer.flush(timeout=FLUSH_TIMEOUT_S),
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
        self, decision: Decision, claim: Claim, partition: int, offset: int, polled_at: float, acked_at: float
    ) -> None:
        latency = acked_at - polled_at
        self.metrics.claim_processing.observe(latency)
        if claim.event_time is not None:
            self.metrics.end_to_end_latency.observe(max(0.0, (datetime.now(UTC) - claim.event_time).total_seconds()))
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
            partition=partition,
            offset=offset,
            context_as_of=decision.context_as_of.isoformat() if decision.context_as_of else None,
            latency_ms=round(latency * 1000, 2),
        )
        if self.on_decision is not None:
            self.on_decision(decision)

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
