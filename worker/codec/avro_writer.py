"""A compiled Avro binary writer for records that are already well typed (the worker's decisions).

fastavro's writer picks every union branch by validating the value against each branch, and the
codec's checking walk (`worker.avro`) runs before it: for a decision with findings that is about
11 µs per finding, more than deciding the claim. The worker builds its decisions itself, so their
types are right by construction; this writer is compiled once per schema into closures that append
the Avro binary encoding to a bytearray, checking exact Python types as they go.

It never reports errors: any value it does not expect (a wrong type, a missing field, a number out
of range, an unknown enum symbol) raises `Unfit`, and the codec then encodes the record the checked
way, which names the problem. The bytes are Avro's binary encoding, which is canonical for a schema
and a value (arrays and maps as one block), so they equal fastavro's; tests compare them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import fastavro.write

Writer = Callable[[bytearray, Any], None]

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_pack_double = struct.Struct("<d").pack


class Unfit(Exception):
    """The value is not what the compiled writer expects: encode it the checked way."""


def _varint_bytes(number: int) -> bytes:
    zigzag = (number << 1) ^ (number >> 63)
    out = bytearray()
    while zigzag & ~0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


# Lengths, counts, small ints and union indexes: nearly every long written is in this range.
_SMALL = {number: _varint_bytes(number) for number in range(-1024, 1025)}


def write_long(out: bytearray, number: int) -> None:
    small = _SMALL.get(number)
    out += small if small is not None else _varint_bytes(number)


def compile_writer(schema: Any, named: dict[str, Any]) -> Writer | None:
    """The writer of a parsed schema, or None when it has a shape this writer does not handle."""
    if isinstance(schema, str):
        if schema in named:
            return compile_writer(named[schema], named)
        return _PRIMITIVES.get(schema)
    if isinstance(schema, list):
        return _union(schema, named)
    kind = schema["type"]
    logical = schema.get("logicalType")
    if logical is not None:
        return _logical(schema, kind, logical)
    if kind == "record":
        return _record(schema, named)
    if kind == "array":
        item = compile_writer(schema["items"], named)
        return None if item is None else _array(item)
    if kind == "map":
        value = compile_writer(schema["values"], named)
        return None if value is None else _map(value)
    if kind == "enum":
        return _enum(schema["symbols"])
    return _PRIMITIVES.get(kind) if isinstance(kind, str) else None


def _record(schema: dict[str, Any], named: dict[str, Any]) -> Writer | None:
    fields = []
    for field in schema["fields"]:
        writer = compile_writer(field["type"], named)
        if writer is None:
            return None
        fields.append((field["name"], writer))

    def write(out: bytearray, value: Any) -> None:
        if type(value) is not dict:
            raise Unfit
        try:
            for name, writer in fields:
                writer(out, value[name])  # a missing field (even one with a default): Unfit below
        except KeyError:
            raise Unfit from None

    return write


def _array(item: Writer) -> Writer:
    def write(out: bytearray, value: Any) -> None:
        if type(value) is not list and type(value) is not tuple:
            raise Unfit
        if value:
            write_long(out, len(value))
            for element in value:
                item(out, element)
        out.append(0)

    return write


def _map(item: Writer) -> Writer:
    def write(out: bytearray, value: Any) -> None:
        if type(value) is not dict:
            raise Unfit
        if value:
            write_long(out, len(value))
            for key, element in value.items():
                _string(out, key)
                item(out, element)
        out.append(0)

    return write


def _enum(symbols: list[str]) -> Writer:
    index = {symbol: _SMALL[position] for position, symbol in enumerate(symbols)}

    def write(out: bytearray, value: Any) -> None:
        encoded = index.get(value) if type(value) is str else None
        if encoded is None:
            raise Unfit
        out += encoded

    return write


def _union(schema: list[Any], named: dict[str, Any]) -> Writer | None:
    # Only ["null", X] and [X, "null"]: the value's None-ness says the branch.
    if len(schema) != 2 or "null" not in schema:
        return None
    null_index = schema.index("null")
    inner = compile_writer(schema[1 - null_index], named)
    if inner is None:
        return None
    null_tag, value_tag = _SMALL[null_index], _SMALL[1 - null_index]

    def write(out: bytearray, value: Any) -> None:
        if value is None:
            out += null_tag
        else:
            out += value_tag
            inner(out, value)

    return write


def _logical(schema: dict[str, Any], kind: str, logical: str) -> Writer | None:
    """Dates and timestamps, converted by the same functions fastavro's writer calls."""
    if (kind, logical) not in (("int", "date"), ("long", "timestamp-millis")):
        return None
    prepare = fastavro.write.LOGICAL_WRITERS[f"{kind}-{logical}"]
    base = _PRIMITIVES[kind]

    # Exact types only: an ISO string, a naive time or a datetime for a date go the checked way.
    def write_timestamp(out: bytearray, value: Any) -> None:
        if type(value) is not datetime or value.tzinfo is None:
            raise Unfit
        base(out, prepare(value, schema))

    def write_date(out: bytearray, value: Any) -> None:
        if type(value) is not date:
            raise Unfit
        base(out, prepare(value, schema))

    return write_timestamp if logical == "timestamp-millis" else write_date


def _null(out: bytearray, value: Any) -> None:
    if value is not None:
        raise Unfit


def _boolean(out: bytearray, value: Any) -> None:
    if value is True:
        out.append(1)
    elif value is False:
        out.append(0)
    else:
        raise Unfit


def _int(out: bytearray, value: Any) -> None:
    if type(value) is not int or not _INT_MIN <= value <= _INT_MAX:
        raise Unfit
    write_long(out, value)


def _long(out: bytearray, value: Any) -> None:
    if type(value) is not int or not _LONG_MIN <= value <= _LONG_MAX:
        raise Unfit
    write_long(out, value)


def _double(out: bytearray, value: Any) -> None:
    if type(value) is not float or value != value or value in (float("inf"), float("-inf")):
        raise Unfit  # non-finite numbers: the checked way decides
    out += _pack_double(value)


def _string(out: bytearray, value: Any) -> None:
    if type(value) is not str:
        raise Unfit
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:
        raise Unfit from None
    write_long(out, len(encoded))
    out += encoded


def _bytes(out: bytearray, value: Any) -> None:
    if type(value) is not bytes:
        raise Unfit
    write_long(out, len(value))
    out += value


_PRIMITIVES: dict[str, Writer] = {
    "null": _null,
    "boolean": _boolean,
    "int": _int,
    "long": _long,
    "double": _double,
    "string": _string,
    "bytes": _bytes,
}
# "float" is left out on purpose: a double narrowed to 4 bytes is the checked writer's decision.
