"""One patient's prescriptions in columns (`RxTable`), as `LabTable` holds labs.

A patient within the horizon holds some 14 prescription versions (quarterly renewals of a regimen
that can still be active): as an `RxFacts` named tuple each, with its id string, its own integer
objects for the times and a dict entry, about 330 bytes. Here a prescription with one version is a
row: its id in an `IdColumn`, the times as machine words, one reference per other field (strings
from a small vocabulary, shared numbers and dates), about 160 bytes. A prescription with several
versions (a correction read ahead of the claims that settle it) keeps them as `RxFacts` in
`versions`, as `Versions` wants them, until a prune folds them back into a row.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from itertools import compress
from typing import Any

from worker.engine.id_column import IdColumn, decode
from worker.engine.records import RxFacts, Versions

_ABSENT = -(2**63)  # None in a word column (record and event times are far from it)
_WORDS = ("event_ms", "time", "seq")  # the last three fields: int or None, held as machine words
_OBJECTS = len(RxFacts._fields) - 1 - len(_WORDS)  # fields after the id held as references
assert RxFacts._fields[-len(_WORDS) :] == _WORDS


class RxTable:
    __slots__ = ("_absent", "_holes", "ids", "live", "objects", "versions", "words")

    def __init__(self) -> None:
        self.ids = IdColumn()  # prescription_id per row; a hole: moved to `versions`, or dropped
        self.live = bytearray()  # 1 per row holding a prescription, 0 for a hole
        self.objects: list[list[Any]] = [[] for _ in range(_OBJECTS)]  # status ... clinical_justification
        self.words = [array("q") for _ in _WORDS]  # event_ms, time, seq
        self.versions: dict[str, list[RxFacts]] = {}
        self._holes = 0
        self._absent = 0  # rows with a time or event time of None (offline records)

    def __len__(self) -> int:
        """Prescriptions held (each counted once, whatever its versions)."""
        return len(self.ids) - self._holes + len(self.versions)

    def add(self, version: RxFacts) -> int:
        """Add a version in arrival order; returns 1 when its prescription id is new."""
        key = version.prescription_id
        held = self.versions.get(key)
        if held is not None:
            held.append(version)
            return 0
        row = self.ids.take(key)
        if row is None:
            self._append(version)
            return 1
        self.versions[key] = [self._facts(row, key), version]
        self._hole(row)
        if self._holes * 4 >= len(self.ids):  # holes cost a few bytes each: compact at a quarter
            self._compact()
        return 0

    def visible(self, as_of: int | None) -> list[RxFacts]:
        """The version of each prescription a claim with record time `as_of` sees (None: all)."""
        if self._absent:
            out = [
                self._facts(row, key)
                for row, key in enumerate(self.ids.row_keys())
                if key is not None and self._shows(row, as_of)
            ]
        else:
            mask = self.live
            if as_of is not None:
                mask = bytearray(live and time <= as_of for live, time in zip(self.live, self.words[1], strict=True))
            new = tuple.__new__
            rows = zip(
                map(decode, compress(self.ids.raw(), mask)),
                *(compress(column, mask) for column in self.objects),
                *(compress(column, mask) for column in self.words),
                strict=True,
            )
            out = [new(RxFacts, fields) for fields in rows]
        for held in self.versions.values():
            rx = Versions.newest(held, as_of)
            if rx is not None:
                out.append(rx)
        return out

    def entries(self) -> Iterator[tuple[str, RxFacts | list[RxFacts]]]:
        """Every prescription with what is held of it (for tests and inspection)."""
        for row, key in enumerate(self.ids.row_keys()):
            if key is not None:
                yield key, self._facts(row, key)
        yield from self.versions.items()

    def prune(self, settled: int | None, expired: Callable[[RxFacts], bool]) -> int:
        """Fold what every later claim sees of each multi-version prescription (`Versions.settle`),
        then drop the single-version ones `expired` says may go. Returns how many were dropped."""
        for key, held in list(self.versions.items()):
            folded = Versions.settle(held, settled)
            if isinstance(folded, RxFacts):
                del self.versions[key]
                self._append(folded)
            else:
                self.versions[key] = folded
        dropped = [
            row for row, key in enumerate(self.ids.row_keys()) if key is not None and expired(self._facts(row, key))
        ]
        if dropped:
            self.ids.remove_rows(dropped)
            for row in dropped:
                self._hole(row)
            self._compact()
        return len(dropped)

    # --- rows -------------------------------------------------------------------------------------

    def _append(self, version: RxFacts) -> None:
        self.ids.append(version.prescription_id)
        self.live.append(1)
        for column, value in zip(self.objects, version[1 : 1 + _OBJECTS], strict=True):
            column.append(value)
        for words, value in zip(self.words, (version.event_ms, version.time, version.seq), strict=True):
            words.append(_ABSENT if value is None else value)
        self._absent += version.time is None or version.event_ms is None

    def _facts(self, row: int, key: str) -> RxFacts:
        words = (None if column[row] == _ABSENT else column[row] for column in self.words)
        return RxFacts(key, *(column[row] for column in self.objects), *words)

    def _shows(self, row: int, as_of: int | None) -> bool:
        time = self.words[1][row]
        return bool(self.live[row]) and (as_of is None or time == _ABSENT or time <= as_of)

    def _hole(self, row: int) -> None:
        """Take a row out (its id is already a hole)."""
        self.live[row] = 0
        self._holes += 1
        self._absent -= self.words[0][row] == _ABSENT or self.words[1][row] == _ABSENT

    def _compact(self) -> None:
        keep = [row for row, live in enumerate(self.live) if live]
        self.ids.keep_rows(keep)
        self.live = bytearray(b"\x01" * len(keep))
        self.objects = [[column[row] for row in keep] for column in self.objects]
        self.words = [array("q", [words[row] for row in keep]) for words in self.words]
        self._holes = 0
