"""The offset ledger: commit only after the outputs settled, only forward, never after a failure."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from worker.errors import DeliveryError
from worker.stream.ledger import OffsetLedger, OnAck


class Broker:
    def __init__(self, accept: bool = True) -> None:
        self.accept = accept
        self.commits: list[dict[tuple[str, int], int]] = []

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> bool:
        self.commits.append(dict(offsets))
        return self.accept


def nothing_sent() -> list[OnAck]:
    return []


def test_a_checkpoint_settles_runs_callbacks_then_commits_what_was_consumed() -> None:
    ledger, broker, acked = OffsetLedger(lambda: 7.0), Broker(), []
    ledger.consume(("claims", 0), 5)
    ledger.consume(("claims", 0), 3)  # never backwards

    assert ledger.checkpoint(lambda: [acked.append], broker.commit) == {("claims", 0): 5}
    assert acked == [7.0]
    assert ledger.committed == {("claims", 0): 5}


def test_nothing_is_committed_twice_or_below_what_the_group_already_has() -> None:
    ledger, broker = OffsetLedger(lambda: 0.0), Broker()
    ledger.know_committed(("claims", 1), 10)
    ledger.consume(("claims", 1), 8)  # history replayed below the committed offset
    assert ledger.checkpoint(nothing_sent, broker.commit) == {}
    ledger.consume(("claims", 1), 11)
    ledger.checkpoint(nothing_sent, broker.commit)
    ledger.checkpoint(nothing_sent, broker.commit)
    assert broker.commits == [{("claims", 1): 11}]


def test_outputs_that_did_not_settle_raise_and_commit_nothing() -> None:
    ledger, broker = OffsetLedger(lambda: 0.0), Broker()
    ledger.consume(("claims", 0), 3)

    def settle() -> list[OnAck]:
        raise DeliveryError("output for claims-0 offset 2 was not acknowledged")

    with pytest.raises(DeliveryError, match="offset 2"):
        ledger.checkpoint(settle, broker.commit)
    assert broker.commits == []
    assert ledger.committed == {}


def test_a_refused_commit_keeps_the_old_committed_offset_and_the_filter_is_honoured() -> None:
    ledger, broker = OffsetLedger(lambda: 0.0), Broker(accept=False)
    ledger.consume(("claims", 0), 3)
    ledger.consume(("labs", 0), 9)
    assert ledger.checkpoint(nothing_sent, broker.commit, lambda tp: tp[0] == "claims") == {}
    assert broker.commits == [{("claims", 0): 3}]
    assert ledger.committed == {}
