"""The offset ledger and its checkpoint: outputs awaiting acknowledgement, and what they free.

At-least-once, in arroyo's and quix-streams' shape: an input offset is committed only after every
output its records produced (decisions, dead letters) was acknowledged by the broker, and only past
the offsets already committed. The checkpoint is the one place that does it: flush the producer,
check every acknowledgement, then commit. A failed acknowledgement raises `DeliveryError`, so nothing
is committed and the records are processed again (with the same decision ids) after a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

Tp = tuple[str, int]


class DeliveryError(RuntimeError):
    """The broker did not acknowledge an output: offsets must not be committed."""


class Acknowledgement(Protocol):
    """What the ledger needs of a send's future (kafka-python's FutureRecordMetadata has it)."""

    @property
    def is_done(self) -> bool: ...

    @property
    def exception(self) -> Any: ...

    def failed(self) -> bool: ...


@dataclass(slots=True)
class _Sent:
    future: Acknowledgement
    where: str  # "topic-partition@offset" of the input it answers, for the error message
    on_ack: Callable[[float], None] | None


class OffsetLedger:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._sent: list[_Sent] = []
        self.consumed: dict[Tp, int] = {}  # next offset to commit, per input partition
        self.committed: dict[Tp, int] = {}  # the group's committed offset, per input partition

    def sent(self, future: Acknowledgement, where: str, on_ack: Callable[[float], None] | None = None) -> None:
        """An output was sent; `on_ack(acked_at)` runs once the checkpoint has confirmed it."""
        self._sent.append(_Sent(future, where, on_ack))

    def consume(self, tp: Tp, next_offset: int) -> None:
        """Records of `tp` before `next_offset` are processed (their outputs are in the ledger)."""
        if next_offset > self.consumed.get(tp, 0):
            self.consumed[tp] = next_offset

    def know_committed(self, tp: Tp, offset: int) -> None:
        self.committed[tp] = offset

    def forget(self, tps: Iterable[Tp]) -> None:
        for tp in tps:
            self.consumed.pop(tp, None)
            self.committed.pop(tp, None)

    @property
    def pending(self) -> int:
        return len(self._sent)

    def checkpoint(
        self,
        flush: Callable[[], None],
        commit: Callable[[Mapping[Tp, int]], bool],
        committable: Callable[[Tp], bool] = lambda tp: True,
    ) -> dict[Tp, int]:
        """Flush, confirm every output, run the acknowledgement callbacks, then commit.

        `commit` returns False when the group refused the commit (a rebalance took the partitions:
        their new owner processes them again from the last commit). Returns what was committed.
        """
        if self._sent:
            flush()
            acked_at = self._clock()
            for sent in self._sent:
                if not sent.future.is_done or sent.future.failed():
                    raise DeliveryError(f"output for {sent.where} was not acknowledged: {sent.future.exception!r}")
            for sent in self._sent:
                if sent.on_ack is not None:
                    sent.on_ack(acked_at)
            self._sent.clear()
        offsets = {
            tp: offset for tp, offset in self.consumed.items() if offset > self.committed.get(tp, 0) and committable(tp)
        }
        if not offsets or not commit(offsets):
            return {}
        self.committed.update(offsets)
        return offsets
