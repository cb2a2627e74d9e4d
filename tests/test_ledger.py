"""The offset ledger: commit only what was acknowledged, only forward, never after a failed send."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from worker.ledger import DeliveryError, OffsetLedger


@dataclass
class Future:
    is_done: bool = True
    exception: Any = None

    def failed(self) -> bool:
        return self.exception is not None


class Broker:
    def __init__(self, accept: bool = True) -> None:
        self.accept = accept
        self.flushes = 0
        self.commits: list[dict[tuple[str, int], int]] = []

    def flush(self) -> None:
        self.flushes += 1

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> bool:
        self.commits.append(dict(offsets))
        return self.accept


def test_a_checkpoint_flushes_confirms_runs_callbacks_then_commits_what_was_consumed() -> None:
    ledger, broker, acked = OffsetLedger(lambda: 7.0), Broker(), []
    ledger.sent(Future(), "claims-0@4", acked.append)
    ledger.consume(("claims", 0), 5)
    ledger.consume(("claims", 0), 3)  # never backwards

    assert ledger.checkpoint(broker.flush, broker.commit) == {("claims", 0): 5}
    assert (broker.flushes, acked, ledger.pending) == (1, [7.0], 0)
    assert ledger.committed == {("claims", 0): 5}


def test_nothing_is_committed_twice_or_below_what_the_group_already_has() -> None:
    ledger, broker = OffsetLedger(lambda: 0.0), Broker()
    ledger.know_committed(("claims", 1), 10)
    ledger.consume(("claims", 1), 8)  # history replayed below the committed offset
    assert ledger.checkpoint(broker.flush, broker.commit) == {}
    ledger.consume(("claims", 1), 11)
    ledger.checkpoint(broker.flush, broker.commit)
    ledger.checkpoint(broker.flush, broker.commit)
    assert broker.commits == [{("claims", 1): 11}]
    assert broker.flushes == 0  # nothing was sent


@pytest.mark.parametrize("future", [Future(exception=RuntimeError("refused")), Future(is_done=False)])
def test_an_unacknowledged_output_raises_and_commits_nothing(future: Future) -> None:
    ledger, broker, acked = OffsetLedger(lambda: 0.0), Broker(), []
    ledger.sent(Future(), "claims-0@1", acked.append)
    ledger.sent(future, "claims-0@2")
    ledger.consume(("claims", 0), 3)
    with pytest.raises(DeliveryError, match="claims-0@2"):
        ledger.checkpoint(broker.flush, broker.commit)
    assert broker.commits == [] and acked == []


def test_a_refused_commit_keeps_the_old_committed_offset_and_the_filter_is_honoured() -> None:
    ledger, broker = OffsetLedger(lambda: 0.0), Broker(accept=False)
    ledger.consume(("claims", 0), 3)
    ledger.consume(("labs", 0), 9)
    assert ledger.checkpoint(broker.flush, broker.commit, lambda tp: tp[0] == "claims") == {}
    assert broker.commits == [{("claims", 0): 3}]
    assert ledger.committed == {}
