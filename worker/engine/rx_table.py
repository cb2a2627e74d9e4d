"""One patient's prescriptions in columns (`RxTable`), as `LabTable` holds labs.

A patient within the horizon holds some 14 prescription versions (quarterly renewals of a regimen
that can still be active): as an `RxFacts` named tuple each, with its id string, its own integer
objects for the times and a dict entry, about 380 bytes. Here a prescription with one version is a
row: its id in an `IdColumn`, the times as machine words, one reference per other field (strings
from a small vocabulary, shared numbers and dates), about 150 bytes. Rows are stored row after row
in one list and one array, not a list per field: with a dozen rows, fifteen lists' headers and
spare capacity would cost as much as the rows (measured: 3.2 KiB a patient in columns). A prescription with several
versions (a correction read ahead of the claims that settle it) keeps them as `RxFacts` in
`versions`, as `Versions` wants them, until a prune folds them back into a row.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

from worker.engine.id_column import IdColumn
from worker.engine.records import RxFacts, Versions
from worker.engine.versioned_rows import VersionedRows

_ABSENT = -(2**63)  # None in a word column (record and event times are far from it)
_WORDS = ("event_ms", "time", "seq")  # the last three fields: int or None, held as machine words
_WORD_COUNT = len(_WORDS)
_OBJECTS = len(RxFacts._fields) - 1 - _WORD_COUNT  # fields after the id held as references
assert RxFacts._fields[-_WORD_COUNT:] == _WORDS
# Where a row's status and end date are among its references (`prune` reads them from the columns).
_STATUS, _END_DATE = RxFacts._fields.index("status") - 1, RxFacts._fields.index("end_date") - 1


class RxTable(VersionedRows[RxFacts]):
    __slots__ = ("_absent", "_holes", "ids", "live", "objects", "versions", "words")

    def __init__(self) -> None:
        self.ids = IdColumn()  # prescription_id per row; a hole: moved to `versions`, or dropped
        self.live = bytearray()  # 1 per row holding a prescription, 0 for a hole
        self.objects: list[Any] = []  # per row, the fields status ... clinical_justification
        self.words = array("q")  # per row, event_ms, time, seq
        self.versions: dict[str, list[RxFacts]] = {}
        self._holes = 0
        self._absent = 0  # rows with a time or event time of None (offline records)

    def visible(self, as_of: int | None) -> list[RxFacts]:
        """The version of each prescription a claim with record time `as_of` sees (None: all)."""
        if as_of is None or self._absent:
            mask = self.live
        else:
            times = self.words[1::_WORD_COUNT]
            mask = bytearray(live and time <= as_of for live, time in zip(self.live, times, strict=True))
        out = self._rows(mask, as_of)
        for held in self.versions.values():
            rx = Versions.newest(held, as_of)
            if rx is not None:
                out.append(rx)
        return out

    def _rows(self, mask: bytearray, as_of: int | None) -> list[RxFacts]:
        """The rows `mask` selects (and, with absent times, that `as_of` shows), in row order."""
        if self._absent:
            return [
                self._facts(row, key)
                for row, key in enumerate(self.ids.row_keys())
                if key is not None and mask[row] and self._shows(row, as_of)
            ]
        # Row by row: with a handful of rows, one tuple per row costs less than a slice per field.
        out: list[RxFacts] = []
        objects, words, new = self.objects, self.words, tuple.__new__
        for row, key in enumerate(self.ids.texts()):
            if mask[row]:
                at, to = row * _OBJECTS, row * _WORD_COUNT
                out.append(new(RxFacts, (key, *objects[at : at + _OBJECTS], *words[to : to + _WORD_COUNT])))
        return out

    def entries(self) -> Iterator[tuple[str, RxFacts | list[RxFacts]]]:
        """Every prescription with what is held of it (for tests and inspection)."""
        for row, key in enumerate(self.ids.row_keys()):
            if key is not None:
                yield key, self._facts(row, key)
        yield from self.versions.items()

    def prune(
        self,
        settled: int | None,
        expired: Callable[[RxFacts], bool],
        may_expire: Callable[[str, date | None], bool] | None = None,
    ) -> int:
        """Fold what every later claim sees of each multi-version prescription (`Versions.settle`),
        then drop the single-version ones `expired` says may go. Returns how many were dropped.

        `may_expire(status, end_date)`, when given, is asked first, from the columns: a row it
        answers False for stays, without building its `RxFacts` (a prune runs on nearly every claim
        of a patient with monthly fills, and most of what is held is still running)."""
        self._fold_settled(settled)
        live = self.live
        if may_expire is None:
            rows = [row for row, held in enumerate(live) if held]
        else:
            statuses, end_dates = self.objects[_STATUS::_OBJECTS], self.objects[_END_DATE::_OBJECTS]
            rows = [
                row
                for row, (held, status, end_date) in enumerate(zip(live, statuses, end_dates, strict=True))
                if held and may_expire(status, end_date)
            ]
        if not rows:
            return 0
        keys = self.ids.texts()
        dropped = [row for row in rows if expired(self._facts(row, keys[row]))]
        if dropped:
            self._drop(dropped)
            self._compact()
        return len(dropped)

    # --- rows -------------------------------------------------------------------------------------

    def _append(self, version: RxFacts) -> None:
        self.ids.append(version.prescription_id)
        self.live.append(1)
        self.objects.extend(version[1 : 1 + _OBJECTS])
        for value in (version.event_ms, version.time, version.seq):
            self.words.append(_ABSENT if value is None else value)
        self._absent += version.time is None or version.event_ms is None

    def _facts(self, row: int, key: str) -> RxFacts:
        at = row * _WORD_COUNT
        event_ms, time, seq = self.words[at : at + _WORD_COUNT]
        return tuple.__new__(
            RxFacts,
            (
                key,
                *self.objects[row * _OBJECTS : (row + 1) * _OBJECTS],
                None if event_ms == _ABSENT else event_ms,
                None if time == _ABSENT else time,
                seq,
            ),
        )

    def _shows(self, row: int, as_of: int | None) -> bool:
        time = self.words[row * _WORD_COUNT + 1]
        return bool(self.live[row]) and (as_of is None or time == _ABSENT or time <= as_of)

    def _hole(self, row: int) -> None:
        """Take a row out (its id is already a hole)."""
        self.live[row] = 0
        self._holes += 1
        at = row * _WORD_COUNT
        self._absent -= self.words[at] == _ABSENT or self.words[at + 1] == _ABSENT

    def _compact(self) -> None:
        keep = [row for row, live in enumerate(self.live) if live]
        self.ids.keep_rows(keep)
        self.live = bytearray(b"\x01" * len(keep))
        self.objects = [value for row in keep for value in self.objects[row * _OBJECTS : (row + 1) * _OBJECTS]]
        self.words = array(
            "q", [word for row in keep for word in self.words[row * _WORD_COUNT : (row + 1) * _WORD_COUNT]]
        )
        self._holes = 0
