"""`IdColumn`: a column of identifiers held as one byte string, with lookup by identifier.

A patient's context holds some 50 lab observation ids: as `str` objects each is about 65 bytes,
and the dict that finds a row by its id costs 2 KiB more per patient (a dict table for 52 keys has
85 entry slots of 24 bytes). Here the ids are UTF-8 in one `bytearray`, each followed by 0xFF, a
byte UTF-8 never uses, so no id can contain the separator or match across two entries: about 18
bytes an id, and a lookup is one `find` of `0xFF id 0xFF`, a fast C scan of a kilobyte.

A row taken out (a hole) holds the single byte 0xFE, and a row without an id of its own (the second
line of a claim, whose first line holds the claim's id) the byte 0xFD: no UTF-8 text holds either,
so neither matches an id (the empty id is an empty entry, and stays findable). Past `INDEX_FROM` rows the scan would
make adding linear in the rows, so a dict index is built from then on: an unusually long history
costs memory, never time.
"""

from __future__ import annotations

from collections.abc import Iterable

_SEP = b"\xff"
_HOLE = b"\xfe"
_UNKEYED = b"\xfd"
INDEX_FROM = 256  # rows: above this, a dict finds rows (a scan of 256 ids is about a microsecond)


def _encode(key: str) -> bytes:
    # surrogatepass: an id from a JSON bundle may hold a lone surrogate; it must round-trip.
    return key.encode("utf-8", "surrogatepass")


def _has_surrogate(key: str) -> bool:
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# The markers as `texts` reads them: decoding with surrogateescape turns each into a lone surrogate.
_SEP_TEXT, HOLE_TEXT, UNKEYED_TEXT = "\udcff", "\udcfe", "\udcfd"


class IdColumn:
    __slots__ = ("_blob", "_escaped", "_index", "_rows")

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._blob = bytearray(_SEP)
        self._rows = 0
        self._index: dict[str, int] | None = None
        # A key with a lone surrogate was ever stored: `texts` must decode entry by entry.
        self._escaped = False
        for key in keys:
            self.append(key)

    def __len__(self) -> int:
        """Rows, holes included."""
        return self._rows

    def append(self, key: str | None) -> int:
        """Add `key` as a new last row (the caller knows it is not held; None: a row without an id
        of its own); returns the row."""
        row = self._rows
        if key is None:
            self._blob += _UNKEYED
        else:
            try:
                self._blob += key.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate (JSON bundles can hold one)
                self._escaped = True
                self._blob += _encode(key)
        self._blob += _SEP
        self._rows += 1
        if self._index is not None:
            if key is not None:
                self._index[key] = row
        elif self._rows > INDEX_FROM:
            self._index = {held: row for row, held in enumerate(self.row_keys()) if held is not None}
        return row

    def find(self, key: str) -> int | None:
        """The row holding `key`, or None."""
        if self._index is not None:
            return self._index.get(key)
        at = self._blob.find(_SEP + _encode(key) + _SEP)
        if at < 0:
            return None
        return self._blob.count(_SEP, 0, at)  # the separators before it: one per earlier row

    def take(self, key: str) -> int | None:
        """Make the row holding `key` a hole; returns that row, or None when `key` is not held."""
        encoded = _encode(key)
        at = self._blob.find(_SEP + encoded + _SEP)
        if at < 0:
            return None
        row = self._blob.count(_SEP, 0, at)
        self._blob[at + 1 : at + 1 + len(encoded)] = _HOLE
        if self._index is not None:
            del self._index[key]
        return row

    def remove_rows(self, rows: Iterable[int]) -> None:
        """Make each of `rows` a hole (one pass over the column, however many)."""
        entries = self.raw()
        for row in rows:
            entries[row] = _HOLE
        self._rebuild(entries)

    def keep_rows(self, rows: Iterable[int]) -> None:
        """Keep only `rows`, in their order: they become rows 0, 1, ... (closes the holes)."""
        entries = self.raw()
        self._rebuild([entries[row] for row in rows])

    def splice(self, row: int, count: int, keys: Iterable[str | None]) -> None:
        """Replace rows `row` to `row + count` with `keys` (None: a row without an id), in place."""
        entries = self.raw()
        keys = list(keys)
        self._escaped = self._escaped or any(key is not None and _has_surrogate(key) for key in keys)
        entries[row : row + count] = [_UNKEYED if key is None else _encode(key) for key in keys]
        self._rebuild(entries)

    def get(self, row: int) -> str | None:
        """The key of `row` (None for a hole or a row without an id)."""
        entry = self.raw()[row]
        return None if entry in (_HOLE, _UNKEYED) else decode(entry)

    def row_keys(self) -> list[str | None]:
        """Every row's key, in row order (None for holes and rows without an id)."""
        return [None if text in (HOLE_TEXT, UNKEYED_TEXT) else text for text in self.texts()]

    def texts(self) -> list[str]:
        """Every row's entry as text, in row order: its key, `HOLE_TEXT` or `UNKEYED_TEXT`.

        One decode of the whole column and one split (0xFF, 0xFE and 0xFD become lone surrogates,
        which no decoded UTF-8 holds), unless a key with a lone surrogate was stored."""
        if self._escaped:
            markers = {_HOLE: HOLE_TEXT, _UNKEYED: UNKEYED_TEXT}
            return [markers.get(entry) or decode(entry) for entry in self.raw()]
        return self._blob.decode("utf-8", "surrogateescape").split(_SEP_TEXT)[1:-1]

    def held(self) -> list[int]:
        """The rows that are not holes (without decoding any key)."""
        return [row for row, entry in enumerate(self.raw()) if entry != _HOLE]

    def raw(self) -> list[bytes]:
        """Every row's entry as stored (UTF-8, holes 0xFE, rows without an id 0xFD): `decode`
        those a view shows."""
        return bytes(self._blob).split(_SEP)[1:-1]

    def _rebuild(self, entries: list[bytes]) -> None:
        self._blob = bytearray(_SEP + _SEP.join(entries) + _SEP) if entries else bytearray(_SEP)
        self._rows = len(entries)
        self._index = None
        if self._rows > INDEX_FROM:
            self._index = {held: row for row, held in enumerate(self.row_keys()) if held is not None}


def decode(entry: bytes) -> str:
    """A live entry of `IdColumn.raw` as its key."""
    return entry.decode("utf-8", "surrogatepass")
