"""The rebalance plan: handed back keeps context, lost drops it, new partitions are rebuilt."""

from __future__ import annotations

import pytest

from worker.stream.rebalance import Event, RebalancePlan, plan_rebalance


def plan(owned: set[int], *events: tuple[Event, set[int]]) -> RebalancePlan:
    return plan_rebalance([(event, frozenset(partitions)) for event, partitions in events], owned)


@pytest.mark.parametrize(
    ("owned", "events", "release", "handed_back", "new"),
    [
        pytest.param(set(), [("assigned", {0, 1})], set(), set(), {0, 1}, id="first assignment"),
        pytest.param({0, 1}, [("revoked", {0, 1}), ("assigned", {0, 1})], set(), {0, 1}, set(), id="handed back"),
        pytest.param({0, 1}, [("revoked", {0, 1}), ("assigned", {1, 2})], {0}, {1}, {2}, id="moved"),
        pytest.param({0, 1}, [("lost", {0, 1}), ("assigned", {0, 1})], {0, 1}, set(), {0, 1}, id="lost then back"),
        pytest.param({0, 1}, [("revoked", {0, 1})], {0, 1}, set(), set(), id="revoked, nothing yet"),
        pytest.param(
            {0},
            [("revoked", {0}), ("assigned", {0}), ("revoked", {0}), ("assigned", {1})],
            {0},
            set(),
            {1},
            id="back, then moved in the same batch",
        ),
    ],
)
def test_plan(
    owned: set[int],
    events: list[tuple[Event, set[int]]],
    release: set[int],
    handed_back: set[int],
    new: set[int],
) -> None:
    result = plan(owned, *events)
    assert (set(result.release), set(result.handed_back), set(result.new)) == (release, handed_back, new)


def test_an_empty_assignment_still_means_the_worker_joined() -> None:
    assert plan(set(), ("revoked", set()), ("assigned", set())).joined
    assert not plan({0}, ("revoked", {0})).joined
