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
from worker.engine.id_column import IdColumn, decode

_KEYS = st.sampled_from(["", "a", "ab", "b", "OBS-1", "OBS-10", "\ud800", "ÿ", "þ", "a\x00b", "\x00"]) | st.text(
    max_size=6
)


class _Model:
    def __init__(self) -> None:
        self.keys: list[str | None] = []

    def find(self, key: str) -> int | None:
        return self.keys.index(key) if key in self.keys else None


def _check(column: IdColumn, model: _Model) -> None:
    assert len(column) == len(model.keys)
    assert column.keys() == model.keys
    assert [None if entry == b"\xfe" else decode(entry) for entry in column.raw()] == model.keys
    for row, key in enumerate(model.keys):
        assert column.get(row) == key
        if key is not None:
            assert column.find(key) == row


operation = st.one_of(
    st.tuples(st.just("append"), _KEYS),
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
                assert isinstance(argument, str)
                if argument not in model.keys:  # the caller appends only keys not held
                    assert column.append(argument) == len(model.keys)
                    model.keys.append(argument)
            elif name == "take":
                assert isinstance(argument, str)
                row = model.find(argument)
                assert column.take(argument) == row
                if row is not None:
                    model.keys[row] = None
            elif name == "remove":
                assert isinstance(argument, list)
                rows = [row for row in argument if row < len(model.keys) and model.keys[row] is not None]
                column.remove_rows(rows)
                for row in rows:
                    model.keys[row] = None
            elif name == "keep":
                assert isinstance(argument, list)
                rows = sorted(row for row in argument if row < len(model.keys))
                column.keep_rows(rows)
                model.keys = [model.keys[row] for row in rows]
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


def test_an_id_is_held_in_about_its_own_length() -> None:
    column = IdColumn(f"OBS-0FA4{number:09d}" for number in range(50))
    assert len(column._blob) == 1 + 50 * (17 + 1)
