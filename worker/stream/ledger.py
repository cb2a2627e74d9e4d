"""The offset ledger and its checkpoint: what may be committed, and when.

At-least-once, in arroyo's and quix-streams' shape: an input offset is committed only after every
output its records produced (decisions, dead letters) was acknowledged by the broker, and only past
the offsets already committed. The checkpoint is the one place that does it: settle the outputs
(flush the producer and check every acknowledgement: `worker.stream.outputs.Outputs.complete`), run the
callbacks of the acknowledged decisions, then commit. A failed acknowledgement raises
`DeliveryError`, so nothing is committed and the records are processed again (with the same
decision ids) after a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from worker.errors import DeliveryError

__all__ = ["DeliveryError", "OffsetLedger"]

Tp = tuple[str, int]
OnAck = Callable[[float], None]  # called with the monotonic time the checkpoint confirmed the output


class OffsetLedger:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.consumed: dict[Tp, int] = {}  # next offset to commit, per input partition
        self.committed: dict[Tp, int] = {}  # the group's committed offset, per input partition

    def consume(self, tp: Tp, next_offset: int) -> None:
        """Records of `tp` before `next_offset` are processed (their outputs have been sent)."""
        if next_offset > self.consumed.get(tp, 0):
            self.consumed[tp] = next_offset

    def know_committed(self, tp: Tp, offset: int) -> None:
        self.committed[tp] = offset

    def forget(self, tps: Iterable[Tp]) -> None:
        for tp in tps:
            self.consumed.pop(tp, None)
            self.committed.pop(tp, None)

    def checkpoint(
        self,
        settle: Callable[[], Iterable[OnAck]],
        commit: Callable[[Mapping[Tp, int]], bool],
        committable: Callable[[Tp], bool] = lambda tp: True,
    ) -> dict[Tp, int]:
        """Settle the outputs (raises DeliveryError), run their callbacks, then commit.

        `commit` returns False when the group refused the commit (a rebalance took the partitions:
        their new owner processes them again from the last commit). Returns what was committed.
        """
        acknowledged = list(settle())
        acked_at = self._clock()
        for on_ack in acknowledged:
            on_ack(acked_at)
        offsets = {
            tp: offset for tp, offset in self.consumed.items() if offset > self.committed.get(tp, 0) and committable(tp)
        }
        if not offsets or not commit(offsets):
            return {}
        self.committed.update(offsets)
        return offsets
