"""One patient's lab results in columns (`LabTable`): the bulk of what the context holds.

Held as a `LabFacts` object each, with its own integer objects and a dict entry, a lab result cost
about 290 bytes, and a patient within the horizon holds some 50: labs were three quarters of the
context's memory. Here a lab with one version is a row: its id (in an `IdColumn`, about 18 bytes
with no index entry), a reference each to shared objects (LOINC code, value, date) and one machine
word per time, about 90 bytes. A lab with several versions (a correction read before the claims
that settle it) keeps them as `LabFacts` in `versions`, as `Versions` wants them, until a prune
folds them back into a row.

Rows become `LabFacts` again when a claim's view is built (`visible`): the columns are zipped into
the records' field order and filtered at C speed (`itertools.compress`); the ids come from one
decode of the patient's id column.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from datetime import date
from itertools import compress, repeat

from worker.engine.id_column import IdColumn
from worker.engine.records import LabFacts, Versions
from worker.engine.versioned_rows import VersionedRows

_ABSENT = -(2**63)  # None in a time column (record and event times are far from it)


def _or_absent(value: int | None) -> int:
    return _ABSENT if value is None else value


def _or_none(value: int) -> int | None:
    return None if value == _ABSENT else value


class LabTable(VersionedRows[LabFacts]):
    __slots__ = (
        "_absent",
        "_holes",
        "counted",
        "effective_date",
        "effective_ms",
        "event_ms",
        "ids",
        "loinc_code",
        "seq",
        "time",
        "value",
        "versions",
    )

    def __init__(self) -> None:
        self.ids = IdColumn()  # observation_id per row; a hole: moved to `versions`, or dropped
        self._holes = 0
        self._absent = 0  # rows with a time or event time of None (offline records)
        # The columns, in LabFacts' field order (`counted` is a 0/1 mask; `visible` reads it so).
        self.loinc_code: list[str] = []  # interned by the reader: shared objects
        self.counted = bytearray()
        self.value: list[float | None] = []  # shared float objects (worker.engine.records)
        self.effective_ms = array("q")
        self.effective_date: list[date] = []  # shared date objects
        self.event_ms = array("q")
        self.time = array("q")
        self.seq = array("q")
        self.versions: dict[str, list[LabFacts]] = {}

    # --- rows (adding a version: VersionedRows.add) -----------------------------------------------

    def _append(self, version: LabFacts) -> None:
        self.ids.append(version.observation_id)
        self.loinc_code.append(version.loinc_code)
        self.counted.append(version.counted)
        self.value.append(version.value)
        self.effective_ms.append(version.effective_ms)
        self.effective_date.append(version.effective_date)
        self.event_ms.append(_or_absent(version.event_ms))
        self.time.append(_or_absent(version.time))
        self.seq.append(version.seq)
        self._absent += version.time is None or version.event_ms is None

    def _hole(self, row: int) -> None:
        """Take a row out (its id is already a hole): its mask bit goes, so views skip it."""
        self.counted[row] = 0
        self._holes += 1
        self._absent -= self.time[row] == _ABSENT or self.event_ms[row] == _ABSENT

    def _facts(self, row: int, key: str) -> LabFacts:
        return LabFacts(
            key,
            self.loinc_code[row],
            bool(self.counted[row]),
            self.value[row],
            self.effective_ms[row],
            self.effective_date[row],
            _or_none(self.event_ms[row]),
            _or_none(self.time[row]),
            self.seq[row],
        )

    # --- reads ------------------------------------------------------------------------------------

    def visible(self, as_of: int | None) -> list[LabFacts]:
        """The counted version each observation shows a claim with record time `as_of` (None: all)."""
        if self._absent:
            out = [
                self._facts(row, key)
                for row, key in enumerate(self.ids.row_keys())
                if key is not None and self._shows(row, as_of)
            ]
        else:
            rows = zip(
                self.ids.texts(),  # a hole's text is a marker: holes are never counted
                self.loinc_code,
                repeat(True),  # only counted rows pass the mask
                self.value,
                self.effective_ms,
                self.effective_date,
                self.event_ms,
                self.time,
                self.seq,
                strict=False,  # `repeat` is endless; every column has a value per row
            )
            mask = self.counted
            if as_of is not None:  # counted and visible as of the claim
                mask = bytearray(c and t <= as_of for c, t in zip(self.counted, self.time, strict=True))
            new = tuple.__new__
            out = [new(LabFacts, fields) for fields in compress(rows, mask)]
        for held in self.versions.values():
            lab = Versions.newest(held, as_of)
            if lab is not None and lab.counted:
                out.append(lab)
        return out

    def _shows(self, row: int, as_of: int | None) -> bool:
        time = self.time[row]
        return bool(self.counted[row]) and (as_of is None or time == _ABSENT or time <= as_of)

    def entries(self) -> Iterator[tuple[str, LabFacts | list[LabFacts]]]:
        """Every observation with what is held of it (for tests and inspection)."""
        for row, key in enumerate(self.ids.row_keys()):
            if key is not None:
                yield key, self._facts(row, key)
        yield from self.versions.items()

    # --- the horizon ------------------------------------------------------------------------------

    def prune(self, earliest: date, settled: int | None, is_level: Callable[[str], bool]) -> int:
        """Fold what every later claim sees of each multi-version lab (`Versions.settle`), then drop
        the labs effective before `earliest` except the newest counted level (`is_level(loinc)`)
        among them. Returns how many observations were dropped."""
        self._fold_settled(settled)
        old = [row for row in self.ids.held() if self.effective_date[row] < earliest]
        if not old:
            return 0
        level: tuple[int, int, int] | None = None  # (effective_ms, seq, row) of the newest old level
        for row in old:
            if self.counted[row] and is_level(self.loinc_code[row]):
                candidate = (self.effective_ms[row], self.seq[row], row)
                if level is None or candidate > level:
                    level = candidate
        dropped = [row for row in old if level is None or row != level[2]]
        self._drop(dropped)
        self._compact_if_sparse()
        return len(dropped)

    def _compact(self) -> None:
        """Close the holes."""
        keep = self.ids.held()
        self.loinc_code = [self.loinc_code[row] for row in keep]
        self.counted = bytearray(self.counted[row] for row in keep)
        self.value = [self.value[row] for row in keep]
        self.effective_date = [self.effective_date[row] for row in keep]
        for name in ("effective_ms", "event_ms", "time", "seq"):
            column: array[int] = getattr(self, name)
            setattr(self, name, array("q", [column[row] for row in keep]))
        self.ids.keep_rows(keep)
        self._holes = 0
