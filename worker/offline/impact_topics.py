"""Impact analysis over the three input topics: every claim decided as of its time, twice.

The topics are read from the beginning up to their end at start with one group-less consumer
(manual assignment: it joins no group, commits nothing, produces nothing), through the stream's own
as-of feed (`worker.feed.ContextFeed` over `worker.merge.TimeOrderedMerge`): a claim gets exactly
the context the worker would have decided it with. Each claims partition is opened with its context
partitions (co-partitioned) or with all of them (`--context-scope global`), as the worker does.

"End at start": ListOffsets LATEST, raised to the high watermark of the partition's first fetch
(the embedded broker answers ListOffsets short, see docs/kafka-notes.md); records past it are
ignored. Because the end is final, each context partition's target is set once, for every claim.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from worker.codec.wire import WireFormat
from worker.config import Settings
from worker.engine.context_store import ContextStore
from worker.engine.events import Source
from worker.errors import ConfigError
from worker.offline.impact import DualEvaluator, ImpactAnalysis
from worker.offline.impact_progress import Progress
from worker.stream import kafka_clients
from worker.stream.feed import ContextFeed, InputRecord, ReadyClaim, RejectedRecord, UnreadableRecord
from worker.stream.merge import TimeOrderedMerge
from worker.stream.polling import release_parked_fetches

POLL_TIMEOUT_MS = 200
MAX_RECORDS = 10_000
FINAL_EPOCH = 2**62  # a target at the end at start holds for every claim, whatever poll fetched it


class TopicsImpact:
    def __init__(
        self,
        settings: Settings,
        dual: DualEvaluator,
        analysis: ImpactAnalysis,
        wire: WireFormat,
        progress: Progress | None = None,
        *,
        consumer_factory: Callable[[Settings], KafkaConsumer] | None = None,
    ) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.dual = dual
        self.analysis = analysis
        self.progress = progress
        self._consumer_factory = consumer_factory or (lambda s: kafka_clients.assigned_consumer(s, "impact"))
        self.store = ContextStore(
            global_scope=settings.context_scope == "global",
            horizon=dual.horizon,
            lab_groups=dual.baseline.reference.group_of_loinc,
        )
        self.merge = TimeOrderedMerge(grace_ms=0)
        self.feed = ContextFeed(wire, self.topics, self.store, self.merge, timestamp_source=settings.timestamp_source)
        self.records_read = 0
        self.claims_decided = 0

    def run(self) -> None:
        consumer = self._consumer_factory(self.settings)
        try:
            self._run(consumer)
        finally:
            consumer.close(autocommit=False)

    # --- setup ------------------------------------------------------------------------------------

    def _partition_counts(self, consumer: KafkaConsumer) -> dict[str, int]:
        counts: dict[str, int] = {}
        for topic in self.topics.inputs:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                raise ConfigError(f"topic {topic!r} does not exist")
            counts[topic] = len(partitions)
        if self.settings.context_scope == "partition" and len(set(counts.values())) != 1:
            described = ", ".join(f"{topic}={count}" for topic, count in counts.items())
            raise ConfigError(
                f"input topics are not co-partitioned (partition counts {described}); run with --context-scope global"
            )
        return counts

    def _run(self, consumer: KafkaConsumer) -> None:
        counts = self._partition_counts(consumer)
        tps = [TopicPartition(topic, number) for topic in self.topics.inputs for number in range(counts[topic])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        begin = {tp: int(offset) for tp, offset in consumer.beginning_offsets(tps).items()}
        stops = {tp: max(int(offset), begin[tp]) for tp, offset in consumer.end_offsets(tps).items()}
        confirmed: set[TopicPartition] = set()
        context_tps = [tp for tp in tps if tp.topic != self.topics.claims]
        for number in range(counts[self.topics.claims]):
            if self.store.global_scope:
                mine = context_tps
            else:
                mine = [TopicPartition(topic, number) for topic in self.topics.context]
            self.merge.open(number, mine, replay_until=0, start=begin[TopicPartition(self.topics.claims, number)])
        paused: set[TopicPartition] = set()
        stalled_since = time.monotonic()
        while True:
            batch = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_RECORDS)
            release_parked_fetches(consumer)  # else a resumed partition may never be fetched again
            for tp in tps:
                if tp not in confirmed:
                    highwater = consumer.highwater(tp)
                    if highwater is not None:
                        stops[tp] = max(stops[tp], int(highwater))
                        confirmed.add(tp)
                        if tp.topic != self.topics.claims:
                            self.merge.set_target(tp, stops[tp], FINAL_EPOCH)
            read = self._take(batch, stops)
            done = {tp for tp in confirmed if consumer.position(tp) >= stops[tp]}
            for tp in done:
                if tp.topic != self.topics.claims:
                    self.merge.context_position(tp, consumer.position(tp))
            decided = self._decide_ready()
            finished = len(done) == len(tps) and not any(task.queue for task in self.merge.tasks.values())
            if self.progress is not None:
                self.progress.update(
                    sum(min(consumer.position(tp), stops[tp]) - begin[tp] for tp in tps),
                    sum(stops[tp] - begin[tp] for tp in tps),
                    final=finished,
                )
            if finished:
                return
            if read or decided:
                stalled_since = time.monotonic()
            elif time.monotonic() - stalled_since > self.settings.context_sync_timeout_s:
                missing = sorted(f"{tp.topic}/{tp.partition}" for tp in tps if tp not in done)
                raise RuntimeError(
                    f"no progress for {self.settings.context_sync_timeout_s:g}s reading {', '.join(missing)} "
                    "to their end at start"
                )
            paused = self._flow_control(consumer, paused, done, stops, confirmed)

    # --- reading ----------------------------------------------------------------------------------

    def _take(self, batch: dict[Any, list[Any]], stops: dict[TopicPartition, int]) -> int:
        read = 0
        epoch: int | None = None
        for tp, records in batch.items():
            stop = stops[tp]
            records = [record for record in records if record.offset < stop]  # past the end at start
            if not records:
                continue
            read += len(records)
            if tp.topic == self.topics.claims:
                if epoch is None:
                    epoch = self.merge.next_epoch()
                self.feed.add_claims(tp.partition, records, epoch)
            else:
                for bad in self.feed.add_context((tp.topic, tp.partition), records):
                    self._bad(bad.record, bad.rejected.message)
        self.records_read += read
        return read

    def _bad(self, record: InputRecord | UnreadableRecord, problem: str) -> None:
        self.analysis.bad(f"{record.topic}/{record.partition}@{record.offset}", problem)

    def _decide_ready(self) -> int:
        decided = 0
        for ready in self.feed.ready():
            decided += 1
            if isinstance(ready, RejectedRecord):
                self._bad(ready.record, ready.rejected.message)
                continue
            self._decide(ready)
        return decided

    def _decide(self, ready: ReadyClaim) -> None:
        claim, record = ready.claim, ready.record
        if claim.j7507_lines and self.analysis.in_window(ready.as_of):
            try:
                baseline, candidate = self.dual.decide(
                    claim, ready.context, Source(record.topic, record.partition, record.offset), ready.as_of
                )
            except Exception as error:
                # As the worker would dead-letter it: named, counted, and the run goes on.
                self._bad(record, f"cannot decide claim: {type(error).__name__}")
            else:
                self.analysis.add(claim, baseline, candidate)
                self.claims_decided += 1
        # Earlier claims (before --since, or out of the window) are history for later ones all the same.
        self.feed.decided(ready)

    # --- flow control -----------------------------------------------------------------------------

    def _flow_control(
        self,
        consumer: KafkaConsumer,
        paused: set[TopicPartition],
        done: set[TopicPartition],
        stops: dict[TopicPartition, int],
        confirmed: set[TopicPartition],
    ) -> set[TopicPartition]:
        """Pause what is ahead (`TimeOrderedMerge.pause_plan`) and what is read to its end, so a long
        history never pulls a whole context topic into memory ahead of its claims."""

        def caught_up(partition: int) -> bool:
            tp = TopicPartition(self.topics.claims, partition)
            task = self.merge.tasks[partition]
            fetched = task.queue[-1].offset + 1 if task.queue else task.next_offset
            return tp in confirmed and fetched >= stops[tp]

        context, claims = self.merge.pause_plan(caught_up)
        wanted = {TopicPartition(*tp) for tp in context} | {
            TopicPartition(self.topics.claims, number) for number in claims
        }
        # Read to its end: nothing more to fetch. Not fetched once yet: its end is unknown, fetch it.
        wanted = (wanted | done) & confirmed
        if wanted - paused:
            consumer.pause(*(wanted - paused))
        if paused - wanted:
            consumer.resume(*(paused - wanted))
        return wanted
