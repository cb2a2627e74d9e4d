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
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from typing import Any, cast

import fastavro
from fastavro.read import SchemaResolutionError

from worker.codec.avro_scan import Malformed, Scan, check, compile_scan
from worker.codec.avro_walks import Walk, compile_check, compile_prepare
from worker.codec.avro_writer import Unfit, Writer, compile_writer
from worker.errors import DecodeError, EncodeError

SCHEMA_NAMES = ("ClaimSubmitted", "PrescriptionRecorded", "LabResultRecorded", "ClaimDecision")

# Writer schemas from a registry come as a handful of distinct dicts; parsing one costs far more
# than a decode, so they are kept (by identity, holding a reference so the id cannot be reused).
_WRITER_CACHE_SIZE = 64


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

    __slots__ = ("_check", "_compiled", "_prepare", "_scan", "_scans", "_writers", "name", "schema")

    def __init__(self, schema_name: str) -> None:
        self.name = schema_name
        self.schema: dict[str, Any] = load_schema(schema_name)
        self._prepare, self._check = _walks(schema_name)
        self._writers: dict[int, tuple[object, dict[str, Any]]] = {}
        self._scan = compile_scan(self.schema, self.schema["__named_schemas"])
        self._scans: dict[int, Scan] = {}  # by id() of a parsed writer schema held in _writers
        # Well-typed records (the worker's own decisions) take the compiled writer; None: off.
        self._compiled: Writer | None = compiled_writer(schema_name)

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Avro binary of ``record``. Missing fields with a default get it; unknown keys are ignored.
        Dates and timestamps may be ISO strings; a timestamp must carry its UTC offset."""
        if self._compiled is not None:
            buffer = bytearray()
            try:
                self._compiled(buffer, record)
                return bytes(buffer)
            except Unfit:
                pass  # not exactly as expected: the checked way below names what is wrong
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

    def is_own_schema(self, writer_schema: dict[str, Any]) -> bool:
        """Was a payload written with `writer_schema` written with exactly this codec's schema?"""
        try:
            return self._writer(writer_schema) is self.schema
        except DecodeError:
            return False

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


# --- compiled walks (worker.codec.avro_walks) -------------------------------------------------


@cache
def compiled_writer(name: str) -> Writer | None:
    schema = load_schema(name)
    return compile_writer(schema, schema["__named_schemas"])


@cache
def _walks(name: str) -> tuple[Walk, Walk | None]:
    schema = load_schema(name)
    named: dict[str, Any] = schema["__named_schemas"]
    return compile_prepare(schema, named, name), compile_check(schema, named, name)


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
