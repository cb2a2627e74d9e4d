"""`VersionedRows`: what a patient's lab and prescription tables share.

A record with one version (the usual case) is a row of the table, found by its id in an
`IdColumn`; when a second version of it arrives, both move to `versions` as `Versions` wants them (a
list in arrival order), and the row becomes a hole until a compaction, or until a prune folds the
list back into a row. The id is each record's first field (`LabFacts.observation_id`,
`RxFacts.prescription_id`).
"""

from __future__ import annotations

from typing import Generic, TypeVar

from worker.engine.id_column import IdColumn
from worker.engine.records import LabFacts, RxFacts, Versions

V = TypeVar("V", LabFacts, RxFacts)


class VersionedRows(Generic[V]):
    __slots__ = ()
    ids: IdColumn
    versions: dict[str, list[V]]
    _holes: int

    def __len__(self) -> int:
        """Records held (each counted once, whatever its versions)."""
        return len(self.ids) - self._holes + len(self.versions)

    def add(self, version: V) -> int:
        """Add a version in arrival order; returns 1 when its id is new."""
        key: str = version[0]
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
        self._compact_if_sparse()
        return 0

    def _fold_settled(self, settled: int | None) -> None:
        """Fold what every later claim sees of each multi-version record (`Versions.settle`); a
        record left with one version becomes a row again."""
        for key, held in list(self.versions.items()):
            folded = Versions.settle(held, settled)
            if isinstance(folded, list):
                self.versions[key] = folded
            else:
                del self.versions[key]
                self._append(folded)

    def _drop(self, rows: list[int]) -> None:
        """Make `rows` holes (one pass over the id column)."""
        self.ids.remove_rows(rows)
        for row in rows:
            self._hole(row)

    def _compact_if_sparse(self) -> None:
        # Holes cost a few bytes each and views skip them: compact only when they are a quarter.
        if self._holes * 4 >= len(self.ids):
            self._compact()

    # Each table stores its rows in its own way.

    def _append(self, version: V) -> None:
        raise NotImplementedError

    def _facts(self, row: int, key: str) -> V:
        raise NotImplementedError

    def _hole(self, row: int) -> None:
        """Take a row out (its id is already a hole)."""
        raise NotImplementedError

    def _compact(self) -> None:
        raise NotImplementedError
