"""Rebalances: the listener that queues them, and the plan that says what to keep (no Kafka calls).

kafka-python runs rebalance callbacks on its IO thread, where blocking consumer methods must not be
called: the listener only queues the event (and pauses newly assigned partitions, so nothing is
fetched before the loop has positioned them). The loop turns the queued events into a plan.

The range assignor rebalances eagerly: every member gives up everything, then gets its new share.
A partition revoked and handed straight back was consumed by nobody in between, so its context is
kept (only its queue of fetched claims is reset: the consumer delivers them again from the committed
offset). One that was lost (evicted from the group) may have been consumed by another member, so its
context is dropped and rebuilt, like that of a partition that is new to this worker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from kafka.consumer.subscription_state import ConsumerRebalanceListener

Event = Literal["assigned", "revoked", "lost"]


@dataclass(frozen=True)
class RebalancePlan:
    release: frozenset[int]  # drop their context (revoked and not handed back, or lost)
    handed_back: frozenset[int]  # revoked and assigned again: keep the context, reset the queue
    new: frozenset[int]  # assigned and not held: rebuild the context
    joined: bool  # an assignment arrived (possibly empty): the worker is a member of the group


def plan_rebalance(events: Iterable[tuple[Event, frozenset[int]]], owned: Iterable[int]) -> RebalancePlan:
    """Fold queued events, in order, over the claims partitions `owned` now."""
    held = set(owned)
    revoked: set[int] = set()
    dropped: set[int] = set()
    added: set[int] = set()
    back: set[int] = set()
    joined = False
    for event, partitions in events:
        if event == "lost":
            dropped |= partitions & held
            held -= partitions
            revoked -= partitions
        elif event == "revoked":
            revoked |= partitions
        else:
            joined = True
            gone = (revoked - partitions) & held
            dropped |= gone
            held -= gone
            back |= revoked & partitions & held
            added |= partitions - held
            held |= partitions
            revoked.clear()
    gone = revoked & held
    dropped |= gone
    held -= gone
    return RebalancePlan(
        release=frozenset(dropped),
        handed_back=frozenset(back - dropped),
        new=frozenset(added & held),
        joined=joined,
    )


class RebalanceQueue(ConsumerRebalanceListener):  # type: ignore[misc]
    """Runs on the consumer's IO thread: queues events and pauses newly assigned partitions."""

    def __init__(self) -> None:
        self.events: deque[tuple[Event, frozenset[int], frozenset[Any]]] = deque()
        self.consumer: Any = None

    def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        tps = frozenset(revoked)
        self.events.append(("revoked", frozenset(tp.partition for tp in tps), tps))

    def on_partitions_lost(self, lost: Iterable[Any]) -> None:
        tps = frozenset(lost)
        self.events.append(("lost", frozenset(tp.partition for tp in tps), tps))

    def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        tps = frozenset(assigned)
        if self.consumer is not None and tps:
            self.consumer.pause(*tps)
        self.events.append(("assigned", frozenset(tp.partition for tp in tps), tps))

    def drain(self) -> list[tuple[Event, frozenset[int], frozenset[Any]]]:
        drained = []
        while self.events:
            drained.append(self.events.popleft())
        return drained
