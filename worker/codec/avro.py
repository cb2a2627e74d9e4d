"""The wire format: plain Avro binary (no container, no registry header) for the contract's records.

Schemas live in ``schemas/*.avsc`` and are parsed once. Decoding returns the contract's plain shape
(dicts, lists, str, float, int, bool, None; dates as ``date``, timestamps as UTC-aware ``datetime``,
enums as str); encoding accepts that shape plus the ISO strings of JSON bundles.

Every failure is a typed error whose message names the schema and field but never a value: payloads
carry patient identifiers, and these messages end up in logs and dead-letter headers.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from functools import cache
from importlib.resources import files
from operator import is_not
from typing import Any, cast

import fastavro
from fastavro.read import SchemaResolutionError

from worker.codec.avro_scan import Malformed, Scan, check, compile_scan

SCHEMA_NAMES = ("ClaimSubmitted", "PrescriptionRecorded", "LabResultRecorded", "ClaimDecision")

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_ABSENT = object()
# Writer schemas from a registry come as a handful of distinct dicts; parsing one costs far more
# than a decode, so they are kept (by identity, holding a reference so the id cannot be reused).
_WRITER_CACHE_SIZE = 64

# A compiled walk over one schema node: checks its argument and returns it, or a converted copy.
_Walk = Callable[[Any], Any]


class DecodeError(ValueError):
    """A payload is not a valid record of the expected schema (random, truncated, other schema...)."""


class EncodeError(ValueError):
    """A record does not fit its schema; the message names the field, never its value."""


def schema_json(name: str) -> str:
    """The schema exactly as written in its .avsc file (docs and defaults included): what a registry gets."""
    if name not in SCHEMA_NAMES:
        raise KeyError(f"unknown schema {name!r}; known: {', '.join(SCHEMA_NAMES)}")
    return (files("worker") / "schemas" / f"{name}.avsc").read_text(encoding="utf-8")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema (fastavro form), parsed once per process. Treat it as read-only."""
    return cast(dict[str, Any], fastavro.parse_schema(json.loads(schema_json(name))))


class AvroCodec:
    """Encode/decode one record type as plain Avro binary (schemaless_writer/reader)."""

    __slots__ = ("_check", "_prepare", "_scan", "_scans", "_writers", "name", "schema")

    def __init__(self, schema_name: str) -> None:
        self.name = schema_name
        self.schema: dict[str, Any] = load_schema(schema_name)
        self._prepare, self._check = _walks(schema_name)
        self._writers: dict[int, tuple[object, dict[str, Any]]] = {}
        self._scan = compile_scan(self.schema, self.schema["__named_schemas"])
        self._scans: dict[int, Scan] = {}  # by id() of a parsed writer schema held in _writers

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Avro binary of ``record``. Missing fields with a default get it; unknown keys are ignored.
        Dates and timestamps may be ISO strings; a timestamp must carry its UTC offset."""
        out = io.BytesIO()
        try:
            prepared = self._prepare(record)  # raises EncodeError naming the field
            fastavro.schemaless_writer(out, self.schema, prepared)
        except EncodeError:
            raise
        except Exception as exc:
            # Not expected after the walk. `from None`: fastavro's message quotes the value.
            raise EncodeError(f"{self.name}: record does not fit the schema ({type(exc).__name__})") from None
        return out.getvalue()

    def decode(self, payload: bytes, writer_schema: dict[str, Any] | None = None) -> dict[str, Any]:
        """The record in ``payload``; ``writer_schema`` (raw or parsed) when it was written with another
        version of this schema, which is then resolved against ours (new fields get their defaults)."""
        if not payload:
            raise DecodeError(f"{self.name}: empty payload")
        writer = self.schema if writer_schema is None else self._writer(writer_schema)
        reader = None if writer is self.schema else self.schema
        buffer = io.BytesIO(payload)
        try:
            # Our schemas are all records, so what comes back is a dict.
            record = cast(dict[str, Any], fastavro.schemaless_reader(buffer, writer, reader))
        except Exception as exc:
            # `from None`: fastavro messages may quote payload bytes or decoded symbols.
            raise DecodeError(f"{self.name}: {_describe_read_error(exc)}") from None
        # fastavro stops at the end of the record and ignores what follows: garbage, or a payload
        # of another schema whose prefix happened to decode.
        unread = len(payload) - buffer.tell()
        if unread:
            raise DecodeError(f"{self.name}: {unread} trailing bytes after the record")
        if self._check is not None:
            self._check(record)
        # fastavro reads a negative enum or union index as Python's negative indexing, and any
        # non-zero byte as true: a scan of the payload's indexes and booleans catches those.
        try:
            check(self._scan if writer is self.schema else self._scans[id(writer)], payload)
        except Malformed as error:
            raise DecodeError(f"{self.name}: {error}") from None
        return record

    def _writer(self, writer_schema: dict[str, Any]) -> dict[str, Any]:
        cached = self._writers.get(id(writer_schema))
        if cached is not None and cached[0] is writer_schema:
            return cached[1]
        try:
            parsed = cast(dict[str, Any], fastavro.parse_schema(writer_schema))
        except Exception as exc:
            raise DecodeError(f"{self.name}: writer schema is not a valid Avro schema ({exc})") from None
        if parsed == self.schema:
            parsed = self.schema  # the same schema: take the fast path without resolution
        if len(self._writers) >= _WRITER_CACHE_SIZE:
            evicted = self._writers.pop(next(iter(self._writers)))[1]
            self._scans.pop(id(evicted), None)
        if parsed is not self.schema:
            self._scans[id(parsed)] = compile_scan(parsed, parsed.get("__named_schemas", {}))
        self._writers[id(writer_schema)] = (writer_schema, parsed)
        return parsed


# --- compiled walks -------------------------------------------------------------------------------
# fastavro's compiled reader/writer do the heavy lifting, but its writer does not check values: it
# writes a str for a double, True for the string "false", a 40-bit int into an int field. So each
# schema is compiled once into closures (no per-call schema lookups) that:
# - before writing, check every value against its field type, turn ISO strings into dates and
#   timestamps, and tag every record in a ["null", record] union with its name (fastavro's tuple
#   notation; otherwise fastavro validates the whole record against each branch to pick one, which
#   costs more than this whole walk);
# - after reading, check that ints fit 32 bits and doubles are finite (fastavro hands back whatever
#   64-bit value or bit pattern random bytes give).
# fastavro's compiled reader takes a negative enum or union index as Python's negative indexing
# and any non-zero byte as true: worker/codec/avro_scan.py catches those after reading.


@cache
def _walks(name: str) -> tuple[_Walk, _Walk | None]:
    schema = load_schema(name)
    named: dict[str, Any] = schema["__named_schemas"]
    return _compile_prepare(schema, named, name), _compile_check(schema, named, name)


def _compile_prepare(schema: Any, named: dict[str, Any], path: str) -> _Walk:
    if isinstance(schema, str) and schema in named:
        return _compile_prepare(named[schema], named, path)
    if isinstance(schema, list):
        non_null = [branch for branch in schema if branch != "null"]
        if len(schema) == 2 and len(non_null) == 1:
            return _optional(_record_name(non_null[0], named), _compile_prepare(non_null[0], named, path))
        return _unchecked  # no such union in our schemas: fastavro picks the branch itself
    if isinstance(schema, str):
        compile_leaf = _PRIMITIVE_CHECKS.get(schema)
        return compile_leaf(path) if compile_leaf is not None else _unchecked
    kind = schema["type"]
    if kind == "record":
        fields = [
            (
                field["name"],
                _compile_prepare(field["type"], named, f"{path}.{field['name']}"),
                "default" in field,
                _valid_as_is(field["type"]),
            )
            for field in schema["fields"]
        ]
        return _record(path, fields)
    if kind == "array":
        return _array(path, _compile_prepare(schema["items"], named, path))
    if kind == "map":
        return _map(path, _compile_prepare(schema["values"], named, path))
    if kind == "enum":
        return _enum(path, schema["name"], frozenset(schema["symbols"]))
    logical = schema.get("logicalType")
    if logical == "date":
        return _date(path)
    if logical == "timestamp-millis":
        return _timestamp(path)
    return _compile_prepare(kind, named, path)


def _compile_check(schema: Any, named: dict[str, Any], path: str) -> _Walk | None:
    if isinstance(schema, str) and schema in named:
        return _compile_check(named[schema], named, path)
    if isinstance(schema, list):
        walks = [walk for branch in schema if (walk := _compile_check(branch, named, path)) is not None]
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
            walk = _compile_check(field["type"], named, f"{path}.{field['name']}")
            if walk is not None:
                fields.append((field["name"], walk, True, ()))
        return _record(path, fields) if fields else None
    if kind == "array":
        item = _compile_check(schema["items"], named, path)
        return _array(path, item) if item is not None else None
    if kind == "map":
        value = _compile_check(schema["values"], named, path)
        return _map(path, value) if value is not None else None
    if "logicalType" not in schema and kind in ("int", "double", "float"):
        return _compile_check(kind, named, path)
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


def _record(path: str, fields: Sequence[tuple[str, _Walk, bool, tuple[type, ...]]]) -> _Walk:
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


def _array(path: str, item: _Walk) -> _Walk:
    def walk(value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise EncodeError(f"{path}: expects an array (list), got {type(value).__name__}")
        new = [item(element) for element in value]
        return new if any(map(is_not, new, value)) else value

    return walk


def _map(path: str, item: _Walk) -> _Walk:
    def walk(value: Any) -> Any:
        if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
            raise EncodeError(f"{path}: expects a map with string keys")
        new = {key: item(element) for key, element in value.items()}
        return new if any(map(is_not, new.values(), value.values())) else value

    return walk


def _optional(record_name: str | None, inner: _Walk) -> _Walk:
    if record_name is None:
        # fastavro picks a primitive branch cheaply; tagging it would cost more than it saves.
        return lambda value: None if value is None else inner(value)

    def tagged(value: Any) -> Any:
        return None if value is None else (record_name, inner(value))

    return tagged


def _union(branches: list[_Walk]) -> _Walk:
    # Decoded values only: each branch walk passes values of other types through unchanged.
    def walk(value: Any) -> Any:
        if value is not None:
            for branch in branches:
                branch(value)
        return value

    return walk


# Leaves before writing. `type(value) is bool` matters: bool is an int subclass.


def _enum(path: str, name: str, symbols: frozenset[str]) -> _Walk:
    short = _short(name)

    def walk(value: Any) -> Any:
        if type(value) is not str or value not in symbols:  # no quoting: free text may hold identifiers
            raise EncodeError(f"{path}: not a symbol of {short}")
        return value

    return walk


def _string(path: str) -> _Walk:
    def walk(value: Any) -> Any:
        if type(value) is not str and not isinstance(value, str):
            raise EncodeError(f"{path}: expects string, got {type(value).__name__}")
        return value

    return walk


def _boolean(path: str) -> _Walk:
    def walk(value: Any) -> Any:
        if type(value) is not bool:
            raise EncodeError(f"{path}: expects boolean, got {type(value).__name__}")
        return value

    return walk


def _integer(low: int, high: int, name: str) -> Callable[[str], _Walk]:
    def compile_for(path: str) -> _Walk:
        def walk(value: Any) -> Any:
            if type(value) is not int or not low <= value <= high:
                raise EncodeError(f"{path}: expects {name}")
            return value

        return walk

    return compile_for


def _number(path: str) -> _Walk:
    def walk(value: Any) -> Any:
        # Ints are fine (JSON writes 300.0 as 300); NaN and infinities would not decode.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EncodeError(f"{path}: expects a number, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise EncodeError(f"{path}: expects a finite number")
        return value

    return walk


_PRIMITIVE_CHECKS: dict[str, Callable[[str], _Walk]] = {
    "string": _string,
    "boolean": _boolean,
    "int": _integer(_INT_MIN, _INT_MAX, "int (32-bit)"),
    "long": _integer(-(2**63), 2**63 - 1, "long (64-bit)"),
    "double": _number,
    "float": _number,
}


def _date(path: str) -> _Walk:
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


def _timestamp(path: str) -> _Walk:
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


def _decoded_int(path: str) -> _Walk:
    def walk(value: Any) -> Any:
        if type(value) is int and not _INT_MIN <= value <= _INT_MAX:
            raise DecodeError(f"{path}: int out of 32-bit range")
        return value

    return walk


def _decoded_double(path: str) -> _Walk:
    def walk(value: Any) -> Any:
        # NaN and infinities are valid Avro but meaningless here, and JSON output cannot carry them.
        if type(value) is float and not math.isfinite(value):
            raise DecodeError(f"{path}: not a finite number")
        return value

    return walk


# --- messages -------------------------------------------------------------------------------------


def _describe_read_error(exc: Exception) -> str:
    if isinstance(exc, EOFError | StopIteration):
        return "payload ends inside the record (truncated, or written with another schema)"
    if isinstance(exc, UnicodeDecodeError):
        return "a string is not valid UTF-8"
    if isinstance(exc, IndexError):
        return "an enum symbol or union branch index is out of range, or the payload is truncated"
    if isinstance(exc, OverflowError):
        return "a date or timestamp is out of range"
    if isinstance(exc, SchemaResolutionError):
        return "writer schema cannot be resolved against this schema"
    return f"payload is not a valid record ({type(exc).__name__})"


def _short(field: str | None) -> str:
    # fastavro names fields by their record's full name: drop the shared namespace for readability.
    if not field:
        return "record"
    return field.removeprefix("billing.j7507.v1.")


def _type_name(schema: Any) -> str:
    if isinstance(schema, list):
        return " | ".join(_type_name(branch) for branch in schema)
    if isinstance(schema, dict):
        return str(schema.get("logicalType") or schema.get("name") or schema.get("type"))
    return str(schema)
