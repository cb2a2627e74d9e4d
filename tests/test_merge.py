"""The time-ordered merge's flow control: what is paused so that memory stays bounded."""

from __future__ import annotations

from worker.stream.merge import LOOKAHEAD_RECORDS, MAX_QUEUED_CLAIMS, QueuedClaim, TimeOrderedMerge

RX, LABS = ("rx", 0), ("labs", 0)


def merge_with_task() -> TimeOrderedMerge:
    merge = TimeOrderedMerge()
    merge.open(0, [RX, LABS], replay_until=0)
    return merge


def test_context_ahead_of_the_head_claim_is_paused_and_behind_it_runs() -> None:
    merge = merge_with_task()
    for offset in range(LOOKAHEAD_RECORDS):
        merge.context_read(RX, offset, 1_000 + offset)
    merge.offer(0, QueuedClaim(0, 500, merge.next_epoch(), None))
    assert merge.pause_plan(lambda partition: False) == ({RX}, set())


def test_a_live_task_never_pauses_its_context_and_a_backlog_pauses_it_until_claims_come() -> None:
    merge = merge_with_task()
    assert merge.pause_plan(lambda partition: True) == (set(), set())
    assert merge.pause_plan(lambda partition: False) == ({RX, LABS}, set())


def test_a_long_claim_queue_pauses_its_claims_partition() -> None:
    merge = merge_with_task()
    epoch = merge.next_epoch()
    for offset in range(MAX_QUEUED_CLAIMS):
        merge.offer(0, QueuedClaim(offset, offset, epoch, None))
    assert merge.pause_plan(lambda partition: False)[1] == {0}


def test_redeliveries_are_ignored_and_a_reset_queue_takes_them_again() -> None:
    merge = merge_with_task()
    epoch = merge.next_epoch()
    assert merge.offer(0, QueuedClaim(0, 5, epoch, None, needs_context=False))
    assert not merge.offer(0, QueuedClaim(0, 5, epoch, None))  # already queued
    assert [claim.offset for _, claim in merge.ready()] == [0]
    assert not merge.offer(0, QueuedClaim(0, 5, epoch, None))  # already processed
    merge.offer(0, QueuedClaim(1, 5, epoch, None))
    merge.reset_queue(0)  # handed back: the consumer delivers offset 1 again
    assert merge.offer(0, QueuedClaim(1, 5, epoch, None))


def test_closing_a_task_returns_the_context_partitions_nobody_else_needs() -> None:
    merge = TimeOrderedMerge()
    merge.open(0, [RX, LABS], replay_until=0)
    merge.open(1, [RX, ("labs", 1)], replay_until=0)  # the global scope shares context partitions
    assert merge.close(1) == {("labs", 1)}
    assert set(merge.cursors) == {RX, LABS}
