"""One patient's prior claims in columns (`ClaimTable`): the highest version of each, line by line.

Held as a dict of claim id to a tuple of `PriorLine` objects, a one-line prior claim cost about 230
bytes (the claim id string, a dict entry, the tuple, the line object), and a patient within the
horizon holds some 15. Here each J7507 line is a row: the claim's id once, in an `IdColumn` (its
first line holds it; further lines hold no id of their own), the line count (on the first line),
version and line number as machine words, and one reference per other field to shared objects
(units, date, NDC), about 75 bytes a line. Rows are stored row after row in one array and one list:
with some 15 rows, a list per field would cost as much in headers and spare capacity as the rows.

Rows keep the order claims were first added, and a higher version takes its claim's place, as the
dict did: the order of a patient's prior lines is the order of evidence lists, so it stays what it
was. A claim's view builds its `PriorLine` named tuples by zipping the columns (`lines`).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from datetime import date
from typing import cast

from worker.engine.id_column import UNKEYED_TEXT, IdColumn
from worker.engine.records import PriorClaim, PriorLine

_WORDS = 3  # per row: count (lines of the claim, on its first line; 0 on the others), version, line number
_OBJECTS = 4  # per row: units, date_of_service, days_supply, ndc


class ClaimTable:
    __slots__ = ("_claims", "ids", "objects", "words")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._claims = 0
        self.ids = IdColumn()  # the claim id on a claim's first line; no id on its other lines
        self.words = array("q")
        self.objects: list[float | date | int | str | None] = []  # shared floats and dates, interned NDCs

    def __len__(self) -> int:
        """Claims held."""
        return self._claims

    def add(self, claim: PriorClaim) -> int:
        """Keep the highest version of each claim; returns 1 when the claim id is new."""
        first = claim[0]
        row = self.ids.find(first.claim_id)
        if row is None:
            for number, line in enumerate(claim):
                self.ids.append(first.claim_id if number == 0 else None)
                self.words.extend((len(claim) if number == 0 else 0, line.claim_version, line.line_number))
                self.objects.extend((line.units, line.date_of_service, line.days_supply, line.ndc))
            self._claims += 1
            return 1
        if self.words[row * _WORDS + 1] > first.claim_version:
            return 0
        self._splice(row, self.words[row * _WORDS], claim)
        return 0

    def clear(self) -> None:
        self._reset()

    def lines(self) -> list[PriorLine]:
        """Every line held, in the claims' order: what a claim's view lists as its prior lines."""
        lines: list[PriorLine] = []
        claim_id = ""
        words, objects, new = self.words, self.objects, tuple.__new__
        for row, text in enumerate(self.ids.texts()):
            if text != UNKEYED_TEXT:  # a claim's first line (no holes here: rows are removed, not holed)
                claim_id = text
            at, to = row * _WORDS, row * _OBJECTS
            lines.append(new(PriorLine, (claim_id, words[at + 1], words[at + 2], *objects[to : to + _OBJECTS])))
        return lines

    def claims(self) -> list[PriorClaim]:
        """Every claim held, as its lines."""
        lines = self.lines()
        return [tuple(lines[row : row + count]) for row, count in enumerate(self.words[::_WORDS]) if count]

    def drop(self, expired: Callable[[PriorClaim], bool], before: date) -> list[PriorClaim]:
        """Drop the claims `expired` says may go; returns them. Only claims with every line's date of
        service before `before` are asked (`expired` must keep every other one): a prune, run for
        nearly every claim, then reads the date column instead of building every claim's lines."""
        counts = self.words[::_WORDS]
        dates = cast(list[date], self.objects[1::_OBJECTS])  # the date_of_service column
        candidates = [
            row
            for row, (count, day) in enumerate(zip(counts, dates, strict=True))
            if count and day < before and (count == 1 or max(dates[row : row + count]) < before)
        ]
        if not candidates:
            return []
        lines = self.lines()
        dropped: list[PriorClaim] = []
        gone: set[int] = set()
        for row in candidates:
            claim = tuple(lines[row : row + counts[row]])
            if expired(claim):
                dropped.append(claim)
                gone.update(range(row, row + counts[row]))
        if dropped:
            keep = [row for row in range(len(counts)) if row not in gone]
            self.ids.keep_rows(keep)
            self.words = array("q", [word for row in keep for word in self.words[row * _WORDS : (row + 1) * _WORDS]])
            self.objects = [value for row in keep for value in self.objects[row * _OBJECTS : (row + 1) * _OBJECTS]]
            self._claims -= len(dropped)
        return dropped

    def _splice(self, row: int, count: int, claim: PriorClaim) -> None:
        """Put `claim`'s lines in place of the `count` rows of its earlier version at `row`."""
        self.ids.splice(row, count, [claim[0].claim_id] + [None] * (len(claim) - 1))
        words = [
            word
            for number, line in enumerate(claim)
            for word in (0 if number else len(claim), line.claim_version, line.line_number)
        ]
        self.words[row * _WORDS : (row + count) * _WORDS] = array("q", words)
        self.objects[row * _OBJECTS : (row + count) * _OBJECTS] = [
            value for line in claim for value in (line.units, line.date_of_service, line.days_supply, line.ndc)
        ]
