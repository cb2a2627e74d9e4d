"""One patient's lab results in columns (`LabTable`): the bulk of what the context holds.

Held as a `LabFacts` object each, with its own integer objects and a dict entry, a lab result cost
about 290 bytes, and a patient within the horizon holds some 50: labs were three quarters of the
context's memory. Here a lab with one version is a row: its id (the string and an index entry), a
reference each to shared objects (LOINC code, value, date) and one machine word per time, about 160
bytes. A lab with several versions (a correction read before the claims that settle it) keeps them
as `LabFacts` in `versions`, as `Versions` wants them, until a prune folds them back into a row.

Rows become `LabFacts` again when a claim's view is built (`visible`): the columns are zipped into
the records' field order and filtered at C speed (`itertools.compress`), so a view costs about what
listing the objects did.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from datetime import date
from itertools import compress, repeat

from worker.engine.records import LabFacts, Versions

_ABSENT = -(2**63)  # None in a time column (record and event times are far from it)


def _or_absent(value: int | None) -> int:
    return _ABSENT if value is None else value


def _or_none(value: int) -> int | None:
    return None if value == _ABSENT else value


class LabTable:
    __slots__ = (
        "_absent",
        "_holes",
        "_rows",
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
        self._rows: dict[str, int] = {}  # observation_id -> row of its one version
        self.ids: list[str | None] = []  # per row; None is a hole (moved to `versions`, or dropped)
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

    def __len__(self) -> int:
        """Observations held (each counted once, whatever its versions)."""
        return len(self._rows) + len(self.versions)

    # --- writes -----------------------------------------------------------------------------------

    def add(self, version: LabFacts) -> int:
        """Add a version in arrival order; returns 1 when its observation id is new."""
        key = version.observation_id
        held = self.versions.get(key)
        if held is not None:
            held.append(version)
            return 0
        row = self._rows.pop(key, None)
        if row is None:
            self._append(version)
            return 1
        self.versions[key] = [self._facts(row), version]
        self._hole(row)
        self._compact_if_sparse()
        return 0

    def _append(self, version: LabFacts) -> None:
        self._rows[version.observation_id] = len(self.ids)
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
        """Take a row out: its id goes, and its mask bit, so views skip it without a compaction."""
        self.ids[row] = None
        self.counted[row] = 0
        self._holes += 1
        self._absent -= self.time[row] == _ABSENT or self.event_ms[row] == _ABSENT

    def _facts(self, row: int) -> LabFacts:
        key = self.ids[row]
        assert key is not None
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
            out = [self._facts(row) for row in self._rows.values() if self._shows(row, as_of)]
        else:
            rows = zip(
                self.ids,
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
        for key, row in self._rows.items():
            yield key, self._facts(row)
        yield from self.versions.items()

    # --- the horizon ------------------------------------------------------------------------------

    def prune(self, earliest: date, settled: int | None, is_level: Callable[[str], bool]) -> int:
        """Fold what every later claim sees of each multi-version lab (`Versions.settle`), then drop
        the labs effective before `earliest` except the newest counted level (`is_level(loinc)`)
        among them. Returns how many observations were dropped."""
        for key, held in list(self.versions.items()):
            folded = Versions.settle(held, settled)
            if isinstance(folded, LabFacts):
                del self.versions[key]
                self._append(folded)
            else:
                self.versions[key] = folded
        old = [row for row in self._rows.values() if self.effective_date[row] < earliest]
        if not old:
            return 0
        level: tuple[int, int, int] | None = None  # (effective_ms, seq, row) of the newest old level
        for row in old:
            if self.counted[row] and is_level(self.loinc_code[row]):
                candidate = (self.effective_ms[row], self.seq[row], row)
                if level is None or candidate > level:
                    level = candidate
        dropped = 0
        for row in old:
            if level is None or row != level[2]:
                observation_id = self.ids[row]
                assert observation_id is not None
                del self._rows[observation_id]
                self._hole(row)
                dropped += 1
        self._compact_if_sparse()
        return dropped

    def _compact_if_sparse(self) -> None:
        # Holes cost a few bytes each and views skip them: compact only when they are a quarter.
        if self._holes * 4 >= len(self.ids):
            self._compact()

    def _compact(self) -> None:
        """Close the holes (and shrink the index, which a dict never does on deletion)."""
        keep = [row for row, key in enumerate(self.ids) if key is not None]
        ids = [key for key in self.ids if key is not None]
        self.loinc_code = [self.loinc_code[row] for row in keep]
        self.counted = bytearray(self.counted[row] for row in keep)
        self.value = [self.value[row] for row in keep]
        self.effective_date = [self.effective_date[row] for row in keep]
        for name in ("effective_ms", "event_ms", "time", "seq"):
            column: array[int] = getattr(self, name)
            setattr(self, name, array("q", [column[row] for row in keep]))
        self._rows = {key: row for row, key in enumerate(ids)}
        self.ids = list(ids)
        self._holes = 0
