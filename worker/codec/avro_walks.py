"""The compiled walks of the Avro codec (`worker.codec.avro`): one closure per schema node.

fastavro's compiled reader/writer do the heavy lifting, but its writer does not check values: it
writes a str for a double, True for the string "false", a 40-bit int into an int field. So each
schema is compiled once into closures (no per-call schema lookups) that:
- before writing, check every value against its field type, turn ISO strings into dates and
  timestamps, and tag every record in a ["null", record] union with its name (fastavro's tuple
  notation; otherwise fastavro validates the whole record against each branch to pick one, which
  costs more than this whole walk);
- after reading, check that ints fit 32 bits and doubles are finite (fastavro hands back whatever
  64-bit value or bit pattern random bytes give).
fastavro's compiled reader takes a negative enum or union index as Python's negative indexing
and any non-zero byte as true: worker/codec/avro_scan.py catches those after reading.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from operator import is_not
from typing import Any

from worker.errors import DecodeError, EncodeError

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_ABSENT = object()

# A compiled walk over one schema node: checks its argument and returns it, or a converted copy.
Walk = Callable[[Any], Any]


def compile_prepare(schema: Any, named: dict[str, Any], path: str) -> Walk:
    if isinstance(schema, str) and schema in named:
        return compile_prepare(named[schema], named, path)
    if isinstance(schema, list):
        non_null = [branch for branch in schema if branch != "null"]
        if len(schema) == 2 and len(non_null) == 1:
            return _optional(_record_name(non_null[0], named), compile_prepare(non_null[0], named, path))
        return _unchecked  # no such union in our schemas: fastavro picks the branch itself
    if isinstance(schema, str):
        compile_leaf = _PRIMITIVE_CHECKS.get(schema)
        return compile_leaf(path) if compile_leaf is not None else _unchecked
    kind = schema["type"]
    if kind == "record":
        fields = [
            (
                field["name"],
                compile_prepare(field["type"], named, f"{path}.{field['name']}"),
                "default" in field,
                _valid_as_is(field["type"]),
            )
            for field in schema["fields"]
        ]
        return _record(path, fields)
    if kind == "array":
        return _array(path, compile_prepare(schema["items"], named, path))
    if kind == "map":
        return _map(path, compile_prepare(schema["values"], named, path))
    if kind == "enum":
        return _enum(path, schema["name"], frozenset(schema["symbols"]))
    logical = schema.get("logicalType")
    if logical == "date":
        return _date(path)
    if logical == "timestamp-millis":
        return _timestamp(path)
    return compile_prepare(kind, named, path)


def compile_check(schema: Any, named: dict[str, Any], path: str) -> Walk | None:
    if isinstance(schema, str) and schema in named:
        return compile_check(named[schema], named, path)
    if isinstance(schema, list):
        walks = [walk for branch in schema if (walk := compile_check(branch, named, path)) is not None]
        return _union(walks) if walks else None
    if schema == "int":
        return _decoded_int(path)
    if schema in ("double", "float"):
        return _decoded_double(path)
    if not isinstance(schema, dict):
        return None
    kind = schema["type"]
    if kind == "record":
        fields = []
        for field in schema["fields"]:
            walk = compile_check(field["type"], named, f"{path}.{field['name']}")
            if walk is not None:
                fields.append((field["name"], walk, True, ()))
        return _record(path, fields) if fields else None
    if kind == "array":
        item = compile_check(schema["items"], named, path)
        return _array(path, item) if item is not None else None
    if kind == "map":
        value = compile_check(schema["values"], named, path)
        return _map(path, value) if value is not None else None
    if "logicalType" not in schema and kind in ("int", "double", "float"):
        return compile_check(kind, named, path)
    return None  # enums, and logical types (whose conversion already fails on out-of-range values)


def _valid_as_is(schema: Any) -> tuple[type, ...]:
    """Exact Python types that are valid for a field type and need no conversion: the record walk
    accepts them inline. Only strings and booleans (optional or not) qualify: numbers need range
    checks, and dates conversion."""
    simple = {"string": str, "boolean": bool}
    if isinstance(schema, str) and schema in simple:
        return (simple[schema],)
    if isinstance(schema, list) and len(schema) == 2 and schema[0] == "null":
        branch = schema[1]
        if isinstance(branch, str) and branch in simple:
            return (type(None), simple[branch])
    return ()


def _record_name(schema: Any, named: dict[str, Any]) -> str | None:
    """The full name of a record branch (for fastavro's tuple notation), None for any other branch."""
    definition = named.get(schema, schema) if isinstance(schema, str) else schema
    if isinstance(definition, dict) and definition["type"] == "record":
        return str(definition["name"])
    return None


def _unchecked(value: Any) -> Any:
    return value


# Containers, shared by both walks (their type errors can only come from a record being encoded).
# Each returns its argument itself when nothing inside changed, and otherwise a copy: the caller's
# record is never modified.


def _record(path: str, fields: Sequence[tuple[str, Walk, bool, tuple[type, ...]]]) -> Walk:
    def walk(value: Any) -> Any:
        # `type(...) is dict` first: the ABC isinstance check is slow and almost every record is a dict.
        if type(value) is not dict and not isinstance(value, Mapping):
            raise EncodeError(f"{path}: expects a record (mapping), got {type(value).__name__}")
        copy = None
        for name, field_walk, has_default, as_is in fields:
            old = value.get(name, _ABSENT)
            if type(old) in as_is:
                continue  # most fields are plain strings: checked here, without a call
            if old is _ABSENT:
                if has_default:
                    continue  # the writer fills in the default
                raise EncodeError(f"{path}.{name}: required field missing")
            new = field_walk(old)
            if new is not old:
                if copy is None:
                    copy = dict(value)
                copy[name] = new
        return value if copy is None else copy

    return walk


def _array(path: str, item: Walk) -> Walk:
    def walk(value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise EncodeError(f"{path}: expects an array (list), got {type(value).__name__}")
        new = [item(element) for element in value]
        return new if any(map(is_not, new, value)) else value

    return walk


def _map(path: str, item: Walk) -> Walk:
    def walk(value: Any) -> Any:
        if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
            raise EncodeError(f"{path}: expects a map with string keys")
        new = {key: item(element) for key, element in value.items()}
        return new if any(map(is_not, new.values(), value.values())) else value

    return walk


def _optional(record_name: str | None, inner: Walk) -> Walk:
    if record_name is None:
        # fastavro picks a primitive branch cheaply; tagging it would cost more than it saves.
        return lambda value: None if value is None else inner(value)

    def tagged(value: Any) -> Any:
        return None if value is None else (record_name, inner(value))

    return tagged


def _union(branches: list[Walk]) -> Walk:
    # Decoded values only: each branch walk passes values of other types through unchanged.
    def walk(value: Any) -> Any:
        if value is not None:
            for branch in branches:
                branch(value)
        return value

    return walk


# Leaves before writing. `type(value) is bool` matters: bool is an int subclass.


def _enum(path: str, name: str, symbols: frozenset[str]) -> Walk:
    short = _short(name)

    def walk(value: Any) -> Any:
        if type(value) is not str or value not in symbols:  # no quoting: free text may hold identifiers
            raise EncodeError(f"{path}: not a symbol of {short}")
        return value

    return walk


def _string(path: str) -> Walk:
    def walk(value: Any) -> Any:
        if type(value) is not str and not isinstance(value, str):
            raise EncodeError(f"{path}: expects string, got {type(value).__name__}")
        return value

    return walk


def _boolean(path: str) -> Walk:
    def walk(value: Any) -> Any:
        if type(value) is not bool:
            raise EncodeError(f"{path}: expects boolean, got {type(value).__name__}")
        return value

    return walk


def _integer(low: int, high: int, name: str) -> Callable[[str], Walk]:
    def compile_for(path: str) -> Walk:
        def walk(value: Any) -> Any:
            if type(value) is not int or not low <= value <= high:
                raise EncodeError(f"{path}: expects {name}")
            return value

        return walk

    return compile_for


def _number(path: str) -> Walk:
    def walk(value: Any) -> Any:
        # Ints are fine (JSON writes 300.0 as 300); NaN and infinities would not decode.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EncodeError(f"{path}: expects a number, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise EncodeError(f"{path}: expects a finite number")
        return value

    return walk


_PRIMITIVE_CHECKS: dict[str, Callable[[str], Walk]] = {
    "string": _string,
    "boolean": _boolean,
    "int": _integer(_INT_MIN, _INT_MAX, "int (32-bit)"),
    "long": _integer(-(2**63), 2**63 - 1, "long (64-bit)"),
    "double": _number,
    "float": _number,
}


def _date(path: str) -> Walk:
    def walk(value: Any) -> Any:
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise EncodeError(f"{path}: not an ISO date (YYYY-MM-DD)") from None
        if not isinstance(value, date):
            raise EncodeError(f"{path}: expects a date, got {type(value).__name__}")
        return value

    return walk


def _timestamp(path: str) -> Walk:
    def walk(value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise EncodeError(f"{path}: not an ISO 8601 timestamp") from None
        if not isinstance(value, datetime):
            raise EncodeError(f"{path}: expects a timestamp, got {type(value).__name__}")
        # fastavro would take a naive timestamp as UTC: a local time would silently shift.
        if value.utcoffset() is None:
            raise EncodeError(f"{path}: timestamp has no UTC offset")
        return value

    return walk


# Checks after reading.


def _decoded_int(path: str) -> Walk:
    def walk(value: Any) -> Any:
        if type(value) is int and not _INT_MIN <= value <= _INT_MAX:
            raise DecodeError(f"{path}: int out of 32-bit range")
        return value

    return walk


def _decoded_double(path: str) -> Walk:
    def walk(value: Any) -> Any:
        # NaN and infinities are valid Avro but meaningless here, and JSON output cannot carry them.
        if type(value) is float and not math.isfinite(value):
            raise DecodeError(f"{path}: not a finite number")
        return value

    return walk


def _short(field: str | None) -> str:
    # fastavro names fields by their record's full name: drop the shared namespace for readability.
    if not field:
        return "record"
    return field.removeprefix("billing.j7507.v1.")
