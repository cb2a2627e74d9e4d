"""The time-ordered merge of a claims partition with its context partitions (no Kafka here).

docs/contract.md, "Time: what a claim sees": a claim is decided with the context whose record time is
≤ its own. Context is applied to the versioned store (`worker.engine.context`) as soon as it is read, so
reading ahead never leaks into a claim; what this module decides is *when a claim may be decided*:
once every context partition it depends on has been read far enough that nothing ≤ its time can
still be behind. That is Kafka Streams' `PartitionGroup` rule (KIP-353, KIP-695): wait while an
input is empty but has data on the broker. A context partition is far enough for a claim at time t
when either

- it is caught up to the end offset asked for *after* the claim was fetched (so every context event
  acknowledged before the claim was produced has been read: the freshness guarantee), or
- its last `LOOKAHEAD_RECORDS` records are all later than t (it is ahead of the claim; a record
  stamped earlier than that many later ones before it is taken as out of order and reaches only
  claims decided after it is read).

And a claim waits `grace_ms` past its time (`CONTEXT_GRACE_MS`), so slow producers' context counts.

The merge also says which partitions to pause so that memory stays bounded on a backlog: a context
partition that is ahead of its claims, and a claims partition whose queue is long. Claims below a
task's `replay_until` (the committed offset when the partition was assigned) are history: they go
through the same merge, so the rebuilt context is the one the claim at `replay_until` would have
seen, and the loop adds them to the claim history without deciding them again.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

Tp = tuple[str, int]  # (topic, partition); kafka-python's TopicPartition is one

# How many consecutive records later than a claim make a context partition "ahead" of it. Also the
# most context a partition is read ahead of its claims, so it bounds the look-ahead's memory: about
# 300 bytes a record held.
LOOKAHEAD_RECORDS = 256
# A claims partition's queue above this many claims is paused (they wait for context). Queued claims
# are their records (about 1 KiB each with Kafka timestamps; decoded events, a few KiB, with event
# times): this bounds what a backlog holds in memory besides the context.
MAX_QUEUED_CLAIMS = 200


@dataclass(slots=True)
class QueuedClaim:
    """A claims record waiting in its partition's queue, with its record time and fetch epoch."""

    offset: int
    time: int  # record time, ms
    epoch: int  # the claims poll that fetched it
    payload: Any  # what the loop needs to process it (record, decoded claim or rejection)
    needs_context: bool = True  # dead letters and claims without a J7507 line do not wait
    history: bool = False  # below replay_until: rebuild the claim history, decide nothing


class _RecentMin:
    """The minimum record time over the last `size` records read (a monotonic deque)."""

    __slots__ = ("_window", "count", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.count = 0
        self._window: deque[tuple[int, int]] = deque()

    def push(self, time: int) -> None:
        index = self.count
        self.count += 1
        while self._window and self._window[-1][1] >= time:
            self._window.pop()
        self._window.append((index, time))
        while self._window[0][0] <= index - self.size:
            self._window.popleft()

    def all_later_than(self, time: int) -> bool:
        return self.count >= self.size and self._window[0][1] > time


@dataclass(slots=True)
class ContextCursor:
    """How far one context partition has been read, and the end offset it must reach."""

    position: int = 0  # next offset to read
    recent: _RecentMin = field(default_factory=lambda: _RecentMin(LOOKAHEAD_RECORDS))
    target: int | None = None  # end offset asked for after the claims of `target_epoch` were fetched
    target_epoch: int = -1

    def covers(self, claim: QueuedClaim) -> bool:
        if self.recent.all_later_than(claim.time):
            return True
        return self.target is not None and self.target_epoch >= claim.epoch and self.position >= self.target


@dataclass
class PartitionTask:
    """One claims partition and the context partitions its claims depend on."""

    partition: int
    context: tuple[Tp, ...]
    replay_until: int  # claims below this offset were decided before the assignment
    next_offset: int = 0  # the next claim offset expected (lower ones are redeliveries)
    queue: deque[QueuedClaim] = field(default_factory=deque)
    waiting_since: float | None = None  # when the head claim started waiting for context

    @property
    def replayed(self) -> bool:
        return self.next_offset >= self.replay_until


class TimeOrderedMerge:
    def __init__(
        self,
        grace_ms: int = 0,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.grace_ms = grace_ms
        self._now_ms = now_ms  # wall clock, for the grace period (record times are wall-clock times)
        self._monotonic = monotonic  # for how long a claim has waited
        self.tasks: dict[int, PartitionTask] = {}
        self.cursors: dict[Tp, ContextCursor] = {}
        self.epoch = 0

    # --- tasks ----------------------------------------------------------------------------------

    def open(self, partition: int, context: Iterable[Tp], replay_until: int, start: int = 0) -> None:
        """A newly assigned claims partition, read from `start`; its history ends at `replay_until`."""
        tps = tuple(context)
        self.tasks[partition] = PartitionTask(partition, tps, replay_until, next_offset=start)
        for tp in tps:
            self.cursors.setdefault(tp, ContextCursor())

    def reset_queue(self, partition: int) -> None:
        """The consumer will deliver the partition again from its committed offset (handed back)."""
        task = self.tasks.get(partition)
        if task is not None:
            task.queue.clear()
            task.waiting_since = None

    def close(self, partition: int) -> set[Tp]:
        """Forget a claims partition; returns the context partitions no other task depends on."""
        task = self.tasks.pop(partition, None)
        if task is None:
            return set()
        still = {tp for other in self.tasks.values() for tp in other.context}
        orphaned = {tp for tp in task.context if tp not in still}
        for tp in orphaned:
            del self.cursors[tp]
        return orphaned

    @property
    def replayed(self) -> bool:
        """Every task has rebuilt its history: the worker is ready."""
        return all(task.replayed for task in self.tasks.values())

    # --- input ----------------------------------------------------------------------------------

    def next_epoch(self) -> int:
        """Call once per claims poll that returned records; claims carry the epoch they came in."""
        self.epoch += 1
        return self.epoch

    def offer(self, partition: int, claim: QueuedClaim) -> bool:
        """Queue a claims record; False for a redelivery of one already processed, or no task."""
        task = self.tasks.get(partition)
        if task is None or claim.offset < task.next_offset:
            return False
        if task.queue and claim.offset <= task.queue[-1].offset:
            return False
        claim.history = claim.offset < task.replay_until
        task.queue.append(claim)
        return True

    def context_read(self, tp: Tp, offset: int, time: int) -> None:
        """A context record at `offset` with record `time` was applied to the store."""
        cursor = self.cursors.get(tp)
        if cursor is not None:
            cursor.position = offset + 1
            cursor.recent.push(time)

    def context_position(self, tp: Tp, position: int) -> None:
        """The consumer's position moved without records (e.g. past a transaction marker)."""
        cursor = self.cursors.get(tp)
        if cursor is not None and position > cursor.position:
            cursor.position = position

    # --- end offsets ----------------------------------------------------------------------------

    def wanted_targets(self) -> set[Tp]:
        """Context partitions whose end offset must be asked for before a head claim can go."""
        wanted: set[Tp] = set()
        for task in self.tasks.values():
            if not task.queue or not task.queue[0].needs_context:
                continue
            head = task.queue[0]
            for tp in task.context:
                cursor = self.cursors[tp]
                if not cursor.recent.all_later_than(head.time) and cursor.target_epoch < head.epoch:
                    wanted.add(tp)
        return wanted

    def set_target(self, tp: Tp, end_offset: int, epoch: int) -> None:
        cursor = self.cursors.get(tp)
        if cursor is not None:
            cursor.target = end_offset
            cursor.target_epoch = epoch

    # --- output ---------------------------------------------------------------------------------

    def ready(self) -> Iterator[tuple[int, QueuedClaim]]:
        """Pop, task by task in offset order, every head claim whose context is complete."""
        now_ms = self._now_ms()
        monotonic_now = self._monotonic()
        for task in self.tasks.values():
            while task.queue:
                head = task.queue[0]
                if head.needs_context and not self._covered(task, head, now_ms):
                    if task.waiting_since is None:
                        task.waiting_since = monotonic_now
                    break
                task.queue.popleft()
                task.next_offset = head.offset + 1
                task.waiting_since = None
                yield task.partition, head

    def _covered(self, task: PartitionTask, claim: QueuedClaim, now_ms: int) -> bool:
        if not claim.history and self.grace_ms and now_ms < claim.time + self.grace_ms:
            return False
        cursors = self.cursors
        for tp in task.context:  # noqa: SIM110 (a loop, not all() over a generator: this runs for every claim)
            if not cursors[tp].covers(claim):
                return False
        return True

    def grace_wait_ms(self) -> int | None:
        """How long until the first head claim's grace period ends (None: none waits for it)."""
        if not self.grace_ms:
            return None
        now_ms = self._now_ms()
        waits = [
            task.queue[0].time + self.grace_ms - now_ms
            for task in self.tasks.values()
            if task.queue and not task.queue[0].history and task.queue[0].needs_context
        ]
        positive = [wait for wait in waits if wait > 0]
        return min(positive) if positive else None

    def waiting_longest(self) -> tuple[int, float] | None:
        """(partition, since) of the task whose head claim has waited longest for context."""
        waiting = [(task.waiting_since, task.partition) for task in self.tasks.values() if task.waiting_since]
        if not waiting:
            return None
        since, partition = min(waiting)
        return partition, since

    # --- flow control ---------------------------------------------------------------------------

    def pause_plan(self, claims_caught_up: Callable[[int], bool]) -> tuple[set[Tp], set[int]]:
        """(context partitions, claims partitions) to pause now; every other one runs.

        A context partition is paused while it is ahead of the claims of every task that depends on
        it (their head claims, or, with an empty queue, claims still to be fetched), so a backlog
        never pulls the context topics into memory. A live task (its claims partition caught up and
        its queue empty) never pauses its context.
        """
        paused_context: set[Tp] = set()
        paused_claims: set[int] = set()
        needed: set[Tp] = set()
        ahead: set[Tp] = set()
        for task in self.tasks.values():
            if len(task.queue) >= MAX_QUEUED_CLAIMS:
                paused_claims.add(task.partition)
            for tp in task.context:
                cursor = self.cursors[tp]
                if task.queue:
                    head = task.queue[0]
                    (ahead if cursor.recent.all_later_than(head.time) else needed).add(tp)
                elif claims_caught_up(task.partition):
                    needed.add(tp)
                else:
                    ahead.add(tp)
        paused_context = ahead - needed
        return paused_context, paused_claims
