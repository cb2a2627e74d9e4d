"""One patient's prior claims in columns (`ClaimTable`): the highest version of each, line by line.

Held as a dict of claim id to a tuple of `PriorLine` objects, a one-line prior claim cost about 230
bytes (the claim id string, a dict entry, the tuple, the line object), and a patient within the
horizon holds some 15. Here each J7507 line is a row of columns: the claim's id once, in an
`IdColumn` (its first line holds it; further lines hold no id of their own), the version, the line
count on the first line, and one reference per line field to shared objects (units, date, NDC),
about 75 bytes a line.

Rows keep the order claims were first added, and a higher version takes its claim's place, as the
dict did: the order of a patient's prior lines is the order of evidence lists, so it stays what it
was. A claim's view builds its `PriorLine` named tuples by zipping the columns (`lines`).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from datetime import date

from worker.engine.id_column import IdColumn
from worker.engine.records import PriorClaim, PriorLine


class ClaimTable:
    __slots__ = ("_claims", "count", "date_of_service", "days_supply", "ids", "line_number", "ndc", "units", "version")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._claims = 0
        self.ids = IdColumn()  # the claim id on a claim's first line; no id on its other lines
        self.count = array("q")  # lines of the claim on its first line, 0 on the others
        self.version = array("q")
        self.line_number = array("q")
        self.units: list[float] = []  # shared float objects (worker.engine.records)
        self.date_of_service: list[date] = []  # shared date objects
        self.days_supply: list[int | None] = []
        self.ndc: list[str | None] = []  # interned

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
                self._append(line, len(claim) if number == 0 else 0)
            self._claims += 1
            return 1
        if self.version[row] > first.claim_version:
            return 0
        self._splice(row, self.count[row], claim)
        return 0

    def clear(self) -> None:
        self._reset()

    def lines(self) -> list[PriorLine]:
        """Every line held, in the claims' order: what a claim's view lists as its prior lines."""
        claim_ids: list[str] = []
        current = ""
        for key in self.ids.row_keys():
            if key is not None:
                current = key
            claim_ids.append(current)
        new = tuple.__new__
        rows = zip(
            claim_ids,
            self.version,
            self.line_number,
            self.units,
            self.date_of_service,
            self.days_supply,
            self.ndc,
            strict=True,
        )
        return [new(PriorLine, fields) for fields in rows]

    def claims(self) -> list[PriorClaim]:
        """Every claim held, as its lines."""
        lines = self.lines()
        return [tuple(lines[row : row + count]) for row, count in enumerate(self.count) if count]

    def drop(self, expired: Callable[[PriorClaim], bool]) -> list[PriorClaim]:
        """Drop the claims `expired` says may go; returns them."""
        keep: list[int] = []
        dropped: list[PriorClaim] = []
        lines = self.lines()
        for row, count in enumerate(self.count):
            if not count:
                continue
            claim = tuple(lines[row : row + count])
            if expired(claim):
                dropped.append(claim)
            else:
                keep.extend(range(row, row + count))
        if dropped:
            self._keep(keep)
            self._claims -= len(dropped)
        return dropped

    # --- columns ----------------------------------------------------------------------------------

    def _append(self, line: PriorLine, count: int) -> None:
        self.count.append(count)
        self.version.append(line.claim_version)
        self.line_number.append(line.line_number)
        self.units.append(line.units)
        self.date_of_service.append(line.date_of_service)
        self.days_supply.append(line.days_supply)
        self.ndc.append(line.ndc)

    def _splice(self, row: int, count: int, claim: PriorClaim) -> None:
        """Put `claim`'s lines in place of the `count` rows of its earlier version at `row`."""
        end = row + count
        self.ids.splice(row, count, [claim[0].claim_id] + [None] * (len(claim) - 1))
        self.count[row:end] = array("q", [len(claim)] + [0] * (len(claim) - 1))
        self.version[row:end] = array("q", [line.claim_version for line in claim])
        self.line_number[row:end] = array("q", [line.line_number for line in claim])
        self.units[row:end] = [line.units for line in claim]
        self.date_of_service[row:end] = [line.date_of_service for line in claim]
        self.days_supply[row:end] = [line.days_supply for line in claim]
        self.ndc[row:end] = [line.ndc for line in claim]

    def _keep(self, rows: list[int]) -> None:
        self.ids.keep_rows(rows)
        for name in ("count", "version", "line_number"):
            column: array[int] = getattr(self, name)
            setattr(self, name, array("q", [column[row] for row in rows]))
        self.units = [self.units[row] for row in rows]
        self.date_of_service = [self.date_of_service[row] for row in rows]
        self.days_supply = [self.days_supply[row] for row in rows]
        self.ndc = [self.ndc[row] for row in rows]
