"""`IdColumn` behaves as a list of keys with holes and a dict from key to row (worker/engine/id_column.py).

Checked against that plain model over random operations, with keys that could confuse a byte
string: the empty key, lone surrogates (JSON bundles can carry them), characters whose UTF-8 holds
0xBF or 0xFE-looking bytes, keys that are prefixes or suffixes of others, and more rows than
`INDEX_FROM`, where the dict index takes over.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.engine import id_column
from worker.engine.id_column import HOLE_TEXT, UNKEYED_TEXT, IdColumn, decode

_KEYS = st.sampled_from(["", "a", "ab", "b", "OBS-1", "OBS-10", "\ud800", "ÿ", "þ", "a\x00b", "\x00"]) | st.text(
    max_size=6
)


_HOLE, _UNKEYED = object(), object()


class _Model:
    """Rows as a list: a key, or a hole, or a row without an id."""

    def __init__(self) -> None:
        self.rows: list[object] = []

    @property
    def keys(self) -> list[str | None]:
        return [row if isinstance(row, str) else None for row in self.rows]

    def find(self, key: str) -> int | None:
        return self.rows.index(key) if key in self.rows else None


def _check(column: IdColumn, model: _Model) -> None:
    assert len(column) == len(model.rows)
    assert column.row_keys() == model.keys
    stored = {b"\xfe": _HOLE, b"\xfd": _UNKEYED}
    assert [stored.get(entry) or decode(entry) for entry in column.raw()] == model.rows
    markers = {HOLE_TEXT: _HOLE, UNKEYED_TEXT: _UNKEYED}
    assert [markers.get(text) or text for text in column.texts()] == model.rows
    for row, key in enumerate(model.keys):
        assert column.get(row) == key
        if key is not None:
            assert column.find(key) == row


operation = st.one_of(
    st.tuples(st.just("append"), _KEYS),
    st.tuples(st.just("append"), st.none()),
    st.tuples(
        st.just("splice"), st.tuples(st.integers(0, 40), st.integers(0, 3), st.lists(_KEYS | st.none(), max_size=3))
    ),
    st.tuples(st.just("take"), _KEYS),
    st.tuples(st.just("remove"), st.lists(st.integers(0, 400), max_size=5)),
    st.tuples(st.just("keep"), st.lists(st.integers(0, 400), max_size=8, unique=True)),
    st.tuples(st.just("find"), _KEYS),
)


@settings(max_examples=300)
@given(st.lists(operation, max_size=40), st.integers(min_value=1, max_value=6))
def test_column_behaves_as_a_list_and_a_dict(operations: list[tuple[str, object]], index_from: int) -> None:
    original = id_column.INDEX_FROM
    id_column.INDEX_FROM = index_from  # small, so that examples cross to the dict index and back
    try:
        column, model = IdColumn(), _Model()
        for name, argument in operations:
            if name == "append":
                assert argument is None or isinstance(argument, str)
                if argument is None or argument not in model.rows:  # the caller appends only keys not held
                    assert column.append(argument) == len(model.rows)
                    model.rows.append(_UNKEYED if argument is None else argument)
            elif name == "splice":
                assert isinstance(argument, tuple)
                row, count, keys = argument
                row = min(row, len(model.rows))
                others = model.rows[:row] + model.rows[row + count :]
                fresh: list[str | None] = []
                for key in keys:  # the caller splices in only keys not held elsewhere
                    if key is None or (key not in others and key not in fresh):
                        fresh.append(key)
                column.splice(row, count, fresh)
                model.rows[row : row + count] = [_UNKEYED if key is None else key for key in fresh]
            elif name == "take":
                assert isinstance(argument, str)
                row = model.find(argument)
                assert column.take(argument) == row
                if row is not None:
                    model.rows[row] = _HOLE
            elif name == "remove":
                assert isinstance(argument, list)
                rows = [row for row in argument if row < len(model.rows) and model.rows[row] is not _HOLE]
                column.remove_rows(rows)
                for row in rows:
                    model.rows[row] = _HOLE
            elif name == "keep":
                assert isinstance(argument, list)
                rows = sorted(row for row in argument if row < len(model.rows))
                column.keep_rows(rows)
                model.rows = [model.rows[row] for row in rows]
            else:
                assert isinstance(argument, str)
                assert column.find(argument) == model.find(argument)
            _check(column, model)
    finally:
        id_column.INDEX_FROM = original


def test_many_rows_take_the_index_and_stay_findable() -> None:
    column = IdColumn(f"OBS-{number}" for number in range(id_column.INDEX_FROM * 3))
    assert column._index is not None
    assert column.find("OBS-700") == 700
    assert column.take("OBS-700") == 700
    assert column.find("OBS-700") is None
    assert column.find("OBS-70") == 70  # a prefix of a taken key is still its own row


def test_texts_decode_at_once_until_a_key_with_a_lone_surrogate_is_stored() -> None:
    column = IdColumn(["OBS-1", "ÿþ"])
    assert not column._escaped and column.texts() == ["OBS-1", "ÿþ"]
    column.append("\udcff")  # the separator's own text: from now on, entry by entry
    assert column._escaped and column.texts() == ["OBS-1", "ÿþ", "\udcff"]
    assert column.find("\udcff") == 2


def test_an_id_is_held_in_about_its_own_length() -> None:
    column = IdColumn(f"OBS-0FA4{number:09d}" for number in range(50))
    assert len(column._blob) == 1 + 50 * (17 + 1)
