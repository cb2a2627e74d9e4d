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
from collections.abc import Callable, Mapping
from datetime import date, datetime
from functools import cache
from importlib.resources import files
from operator import is_not
from typing import Any, cast

import fastavro
from fastavro.validation import ValidationError, validate

SCHEMA_NAMES = ("ClaimSubmitted", "PrescriptionRecorded", "LabResultRecorded", "ClaimDecision")

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
# One byte appended to every payload before reading. Older compiled fastavro readers return a short
# string instead of raising when a length runs past the end of the buffer; with the sentinel such an
# over-read lands on it and shows up as a read position past the payload.
_SENTINEL = b"\x00"
_ABSENT = object()
# Writer schemas from a registry come as a handful of distinct dicts; parsing one costs far more
# than a decode, so they are kept (by identity, holding a reference so the id cannot be reused).
_WRITER_CACHE_SIZE = 64

# A compiled walk over one schema node: returns its argument unchanged, or a converted copy.
_Walk = Callable[[Any], Any]
# Builds the walk for a primitive (or logical) schema node, or None when it needs none.
_Leaf = Callable[[Any, str], _Walk | None]


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

    __slots__ = ("_check", "_prepare", "_writers", "name", "schema")

    def __init__(self, schema_name: str) -> None:
        self.name = schema_name
        self.schema: dict[str, Any] = load_schema(schema_name)
        self._prepare, self._check = _walks(schema_name)
        self._writers: dict[int, tuple[object, dict[str, Any]]] = {}

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Avro binary of ``record``. Missing fields with a default get it; unknown keys are ignored."""
        try:
            prepared = self._prepare(record) if self._prepare is not None else record
            out = io.BytesIO()
            fastavro.schemaless_writer(out, self.schema, prepared)
        except EncodeError:
            raise
        except Exception as exc:
            # `from None`: the original exception text quotes the offending value.
            raise EncodeError(self._explain(record, exc)) from None
        return out.getvalue()

    def decode(self, payload: bytes, writer_schema: dict[str, Any] | None = None) -> dict[str, Any]:
        """The record in ``payload``; ``writer_schema`` (raw or parsed) when it was written with another
        version of this schema, which is then resolved against ours (new fields get their defaults)."""
        if not payload:
            raise DecodeError(f"{self.name}: empty payload")
        writer = self.schema if writer_schema is None else self._writer(writer_schema)
        reader = None if writer is self.schema else self.schema
        buffer = io.BytesIO(payload + _SENTINEL)
        try:
            # Our schemas are all records, so what comes back is a dict.
            record = cast(dict[str, Any], fastavro.schemaless_reader(buffer, writer, reader))
        except Exception as exc:
            # `from None`: fastavro messages may quote payload bytes or decoded symbols.
            raise DecodeError(f"{self.name}: {_describe_read_error(exc)}") from None
        unread = len(payload) - buffer.tell()
        if unread > 0:
            raise DecodeError(f"{self.name}: {unread} trailing bytes after the record")
        if unread < 0:
            raise DecodeError(f"{self.name}: truncated payload (a length runs past the end)")
        if self._check is not None:
            self._check(record)
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
            self._writers.pop(next(iter(self._writers)))
        self._writers[id(writer_schema)] = (writer_schema, parsed)
        return parsed

    def _explain(self, record: Mapping[str, Any], exc: Exception) -> str:
        """Which fields do not fit, by path and expected type; fastavro's own message quotes values."""
        if not isinstance(record, Mapping):
            return f"{self.name}: record must be a mapping, got {type(record).__name__}"
        try:
            validate(record, self.schema, raise_errors=True)
        except ValidationError as invalid:
            # A value that fits no union branch is reported once per branch: gather them per field.
            expected: dict[str, list[str]] = {}
            for error in invalid.errors:
                expected.setdefault(_short(error.field), []).append(_type_name(error.schema))
            problems = (f"{field} expects {' | '.join(types)}" for field, types in sorted(expected.items()))
            return f"{self.name}: " + "; ".join(problems)
        except Exception:  # validate itself choked on the shape; the error type is all we can say
            pass
        return f"{self.name}: record does not fit the schema ({type(exc).__name__})"


# --- compiled walks -------------------------------------------------------------------------------
# fastavro's compiled reader/writer do the heavy lifting. What remains is compiled once per schema
# into closures that visit only the fields concerned (no per-call schema lookups):
# - before writing, ISO strings become dates/timestamps, and every non-null value of a ["null", T]
#   union is tagged with its branch (fastavro's tuple notation): otherwise fastavro validates the
#   value against each branch to pick one, which is most of its encoding time for a claim;
# - after reading, ints must fit 32 bits and doubles must be finite (fastavro hands back whatever
#   64-bit value or bit pattern random bytes give).


@cache
def _walks(name: str) -> tuple[_Walk | None, _Walk | None]:
    schema = load_schema(name)
    named: dict[str, Any] = schema["__named_schemas"]
    prepare = _compile(schema, named, name, _prepare_leaf, tag_unions=True)
    check = _compile(schema, named, name, _check_leaf, tag_unions=False)
    return prepare, check


def _compile(schema: Any, named: dict[str, Any], path: str, leaf: _Leaf, tag_unions: bool) -> _Walk | None:
    if isinstance(schema, str):
        if schema in named:
            return _compile(named[schema], named, path, leaf, tag_unions)
        return leaf(schema, path)
    if isinstance(schema, list):
        if tag_unions:
            non_null = [branch for branch in schema if branch != "null"]
            if len(non_null) == 1 and len(schema) == 2:
                inner = _compile(non_null[0], named, path, leaf, tag_unions)
                return _tagged_optional(_branch_name(non_null[0]), inner)
        walks = [_compile(branch, named, path, leaf, tag_unions) for branch in schema]
        branches = [walk for walk in walks if walk is not None]
        return _union(branches) if branches else None
    kind = schema["type"]
    if kind == "record":
        fields = []
        for field in schema["fields"]:
            walk = _compile(field["type"], named, f"{path}.{field['name']}", leaf, tag_unions)
            if walk is not None:
                fields.append((field["name"], walk))
        return _record(fields) if fields else None
    if kind == "array":
        item = _compile(schema["items"], named, path, leaf, tag_unions)
        return _array(item) if item is not None else None
    if kind == "map":
        value = _compile(schema["values"], named, path, leaf, tag_unions)
        return _map(value) if value is not None else None
    if kind in ("enum", "fixed"):
        return None
    return leaf(schema, path)


def _branch_name(schema: Any) -> str:
    """The name fastavro's tuple notation uses for a union branch: full name or primitive type."""
    if isinstance(schema, str):
        return schema
    if schema["type"] in ("record", "enum", "fixed"):
        return str(schema["name"])
    return str(schema["type"])  # a logical type goes by its underlying primitive


def _record(fields: list[tuple[str, _Walk]]) -> _Walk:
    def walk(value: Any) -> Any:
        # `type(...) is dict` first: the ABC isinstance check is slow and almost every record is a dict.
        if type(value) is not dict and not isinstance(value, Mapping):
            return value  # not ours to judge: the writer reports the type error
        copy = None
        for name, field_walk in fields:
            old = value.get(name, _ABSENT)
            if old is _ABSENT:
                continue  # the writer fills the default or reports the missing field
            new = field_walk(old)
            if new is not old:
                if copy is None:
                    copy = dict(value)  # copy on first change: the caller's record stays as given
                copy[name] = new
        return value if copy is None else copy

    return walk


def _array(item: _Walk) -> _Walk:
    def walk(value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return value
        new = [item(element) for element in value]
        return new if any(map(is_not, new, value)) else value

    return walk


def _map(item: _Walk) -> _Walk:
    def walk(value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        new = {key: item(element) for key, element in value.items()}
        return new if any(map(is_not, new.values(), value.values())) else value

    return walk


def _tagged_optional(name: str, inner: _Walk | None) -> _Walk:
    def walk(value: Any) -> Any:
        if value is None:
            return None
        return (name, value if inner is None else inner(value))

    return walk


def _union(branches: list[_Walk]) -> _Walk:
    # Each branch walk ignores values that are not of its type, so the first one that changes the
    # value is the branch the value belongs to.
    def walk(value: Any) -> Any:
        if value is None:
            return None
        for branch in branches:
            new = branch(value)
            if new is not value:
                return new
        return value

    return walk


def _prepare_leaf(schema: Any, path: str) -> _Walk | None:
    logical = schema.get("logicalType") if isinstance(schema, dict) else None
    if logical == "date":
        return _date_walk(path)
    if logical == "timestamp-millis":
        return _timestamp_walk(path)
    return None


def _date_walk(path: str) -> _Walk:
    def walk(value: Any) -> Any:
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise EncodeError(f"{path}: not an ISO date (YYYY-MM-DD)") from None
        return value

    return walk


def _timestamp_walk(path: str) -> _Walk:
    def walk(value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise EncodeError(f"{path}: not an ISO 8601 timestamp") from None
        # A naive timestamp would be read as UTC by fastavro; a local time would silently shift.
        if isinstance(value, datetime) and value.utcoffset() is None:
            raise EncodeError(f"{path}: timestamp has no UTC offset")
        return value

    return walk


def _check_leaf(schema: Any, path: str) -> _Walk | None:
    if schema == "int":

        def check_int(value: Any) -> Any:
            if type(value) is int and not _INT_MIN <= value <= _INT_MAX:
                raise DecodeError(f"{path}: int out of 32-bit range")
            return value

        return check_int
    if schema in ("double", "float"):

        def check_finite(value: Any) -> Any:
            # NaN and infinities are valid Avro but meaningless here, and JSON output cannot carry them.
            if type(value) is float and not math.isfinite(value):
                raise DecodeError(f"{path}: not a finite number")
            return value

        return check_finite
    return None


# --- messages -------------------------------------------------------------------------------------


def _describe_read_error(exc: Exception) -> str:
    if isinstance(exc, EOFError | StopIteration):
        return "truncated payload"
    if isinstance(exc, UnicodeDecodeError):
        return "a string is not valid UTF-8"
    if isinstance(exc, IndexError):
        return "an enum symbol or union branch index is out of range, or the payload is truncated"
    if isinstance(exc, OverflowError):
        return "a date or timestamp is out of range"
    if type(exc).__name__ == "SchemaResolutionError":
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
