"""One patient's lab results in columns (`LabTable`): the bulk of what the context holds.

Held as a `LabFacts` object, a lab result costs about 290 bytes: the slotted object, its id, three
integer objects and a dict entry. A patient within the horizon holds some 50 of them, so labs were
three quarters of the context's memory. Here a lab with one version is a row: its id (the string and
an index entry) and one machine word or less per field in typed arrays, about 150 bytes. A lab with
several versions (a correction read before the claims that settle it) keeps them as `LabFacts` in
`versions`, as `Versions` wants them, until a prune folds them back into one row.

Rows become `LabFacts` again only when a claim's view is built (`visible`), with the same field
values they were read with; removed rows leave holes that a prune compacts.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from datetime import date

from worker.engine.records import LabFacts, Versions, shared_date

_ABSENT = -(2**63)  # None in an integer column (record and event times are far from it)
_COUNTED, _HAS_VALUE = 1, 2  # flag bits below the LOINC code's index in the `code` column
_FLAG_BITS = 2

# LOINC codes: a handful, shared by every patient; a row keeps the code's index.
_codes: list[str] = []
_code_index: dict[str, int] = {}


def _code_of(loinc_code: str) -> int:
    index = _code_index.get(loinc_code)
    if index is None:
        index = _code_index[loinc_code] = len(_codes)
        _codes.append(loinc_code)
    return index


def _or_absent(value: int | None) -> int:
    return _ABSENT if value is None else value


def _or_none(value: int) -> int | None:
    return None if value == _ABSENT else value


class LabTable:
    __slots__ = (
        "_holes",
        "_rows",
        "code",
        "day",
        "effective_ms",
        "event_ms",
        "ids",
        "seq",
        "time",
        "value",
        "versions",
    )

    def __init__(self) -> None:
        self._rows: dict[str, int] = {}  # observation_id -> row of its one version
        self.ids: list[str | None] = []  # per row; None is a hole (the row moved to `versions`)
        self._holes = 0
        self.effective_ms = array("q")
        self.day = array("i")  # the UTC date of effective_time, as an ordinal
        self.event_ms = array("q")
        self.time = array("q")
        self.seq = array("q")
        self.value = array("d")  # 0.0 where there is no value (the flag says)
        self.code = array("I")  # LOINC code index << 2 | has value | counted
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
        self.ids[row] = None
        self._holes += 1
        return 0

    def _append(self, version: LabFacts) -> None:
        self._rows[version.observation_id] = len(self.ids)
        self.ids.append(version.observation_id)
        self.effective_ms.append(version.effective_ms)
        self.day.append(version.effective_date.toordinal())
        self.event_ms.append(_or_absent(version.event_ms))
        self.time.append(_or_absent(version.time))
        self.seq.append(version.seq)
        has_value = version.value is not None
        self.value.append(version.value if version.value is not None else 0.0)
        self.code.append(_code_of(version.loinc_code) << _FLAG_BITS | has_value << 1 | version.counted)

    def _facts(self, row: int) -> LabFacts:
        key = self.ids[row]
        assert key is not None
        code = self.code[row]
        return LabFacts(
            key,
            _codes[code >> _FLAG_BITS],
            bool(code & _COUNTED),
            self.value[row] if code & _HAS_VALUE else None,
            self.effective_ms[row],
            shared_date(self.day[row]),
            _or_none(self.event_ms[row]),
            _or_none(self.time[row]),
            self.seq[row],
        )

    # --- reads ------------------------------------------------------------------------------------

    def visible(self, as_of: int | None) -> list[LabFacts]:
        """The counted version each observation shows a claim with record time `as_of` (None: all)."""
        out: list[LabFacts] = []
        time, code = self.time, self.code
        for row in self._rows.values():
            if code[row] & _COUNTED and (as_of is None or time[row] <= as_of):  # absent (min) is always visible
                out.append(self._facts(row))
        for held in self.versions.values():
            lab = Versions.newest(held, as_of)
            if lab is not None and lab.counted:
                out.append(lab)
        return out

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
        cut = earliest.toordinal()
        old = [row for row in self._rows.values() if self.day[row] < cut]
        if not old:
            return 0
        level: tuple[int, int, int] | None = None  # (effective_ms, seq, row) of the newest old level
        for row in old:
            code = self.code[row]
            if code & _COUNTED and is_level(_codes[code >> _FLAG_BITS]):
                candidate = (self.effective_ms[row], self.seq[row], row)
                if level is None or candidate > level:
                    level = candidate
        dropped = 0
        for row in old:
            if level is None or row != level[2]:
                observation_id = self.ids[row]
                assert observation_id is not None
                del self._rows[observation_id]
                self.ids[row] = None
                dropped += 1
        self._holes += dropped
        if self._holes * 4 >= len(self.ids):
            self._compact()
        return dropped

    def _compact(self) -> None:
        """Close the holes (and shrink the index, which a dict never does on deletion)."""
        keep = [row for row, key in enumerate(self.ids) if key is not None]
        kept_ids = [key for key in self.ids if key is not None]
        for name in ("effective_ms", "day", "event_ms", "time", "seq", "value", "code"):
            column: array[int] | array[float] = getattr(self, name)
            setattr(self, name, array(column.typecode, [column[row] for row in keep]))
        self._rows = {key: row for row, key in enumerate(kept_ids)}
        self.ids = list(kept_ids)
        self._holes = 0
