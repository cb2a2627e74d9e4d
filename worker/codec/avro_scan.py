"""A scan of Avro binary that checks what fastavro's compiled reader does not: indexes and booleans.

fastavro's reader takes a negative enum symbol or union branch index as Python's negative indexing
(-1 reads as the last symbol or branch) and any non-zero byte as true, so corrupt or hostile bytes
decode to a plausible record. This walks the payload once, compiled per schema into closures, and
raises `Malformed` for an index out of range, a boolean that is not 0 or 1, a negative length, or
a payload that ends early. It reads lengths and indexes only (no strings are built), so it costs
about a quarter of the decode itself (measured on a claim: 22 µs against 85 µs, a loaded machine).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Scan = Callable[[bytes, int], int]  # (payload, position) -> position after the value


class Malformed(ValueError):
    """The payload is not canonical Avro of the schema; the message names the problem, not a value."""


def read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint at `pos`: its value and the position after it (also the compiled readers'
    way past a varint of more than one byte, worker/codec/avro_fields.py)."""
    byte = buf[pos]
    pos += 1
    if byte < 0x80:
        return (byte >> 1) ^ -(byte & 1), pos
    result = byte & 0x7F
    shift = 7
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise Malformed("a varint is longer than 10 bytes")


def _skip_long(buf: bytes, pos: int) -> int:
    while buf[pos] & 0x80:
        pos += 1
    return pos + 1


def _null(buf: bytes, pos: int) -> int:
    return pos


def _boolean(buf: bytes, pos: int) -> int:
    if buf[pos] > 1:
        raise Malformed("a boolean is not 0 or 1")
    return pos + 1


def _sized(buf: bytes, pos: int) -> int:
    size, pos = read_long(buf, pos)
    if size < 0:
        raise Malformed("a string or bytes length is negative")
    end = pos + size
    if end > len(buf):
        raise Malformed("a string or bytes value runs past the end")
    return end


def _fixed_width(width: int) -> Scan:
    def scan(buf: bytes, pos: int) -> int:
        end = pos + width
        if end > len(buf):
            raise Malformed("a value runs past the end")
        return end

    return scan


_PRIMITIVES: dict[str, Scan] = {
    "null": _null,
    "boolean": _boolean,
    "int": _skip_long,
    "long": _skip_long,
    "float": _fixed_width(4),
    "double": _fixed_width(8),
    "string": _sized,
    "bytes": _sized,
}


def compile_scan(schema: Any, named: dict[str, Any]) -> Scan:
    """The scan of one (fastavro-parsed) schema node; `named` is its `__named_schemas`."""
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return _PRIMITIVES[schema]
        return compile_scan(named[schema], named)  # our schemas are not recursive
    if isinstance(schema, list):
        return _union([compile_scan(branch, named) for branch in schema])
    kind = schema["type"]
    if kind == "record" or kind == "error":
        return _record([compile_scan(field["type"], named) for field in schema["fields"]])
    if kind == "enum":
        return _enum(len(schema["symbols"]))
    if kind == "array":
        return _blocks(compile_scan(schema["items"], named), keyed=False)
    if kind == "map":
        return _blocks(compile_scan(schema["values"], named), keyed=True)
    if kind == "fixed":
        return _fixed_width(int(schema["size"]))
    return compile_scan(kind, named)  # {"type": "long", "logicalType": ...} and the like


def _union(branches: list[Scan]) -> Scan:
    count = len(branches)

    def scan(buf: bytes, pos: int) -> int:
        index, pos = read_long(buf, pos)
        if not 0 <= index < count:
            raise Malformed("a union branch index is out of range (negative or too large)")
        return branches[index](buf, pos)

    return scan


def _record(fields: list[Scan]) -> Scan:
    def scan(buf: bytes, pos: int) -> int:
        for field in fields:
            pos = field(buf, pos)
        return pos

    return scan


def _enum(count: int) -> Scan:
    def scan(buf: bytes, pos: int) -> int:
        index, pos = read_long(buf, pos)
        if not 0 <= index < count:
            raise Malformed("an enum symbol index is out of range (negative or too large)")
        return pos

    return scan


def _blocks(item: Scan, *, keyed: bool) -> Scan:
    def scan(buf: bytes, pos: int) -> int:
        count, pos = read_long(buf, pos)
        while count:
            if count < 0:  # a block with its byte size: the count is negated
                count = -count
                pos = _skip_long(buf, pos)
            for _ in range(count):
                if keyed:
                    pos = _sized(buf, pos)
                pos = item(buf, pos)
            count, pos = read_long(buf, pos)
        return pos

    return scan


def check(scan: Scan, payload: bytes) -> None:
    """Raises Malformed unless `payload` is exactly one value the scan accepts."""
    try:
        end = scan(payload, 0)
    except IndexError:
        raise Malformed("the payload ends inside the record") from None
    if end != len(payload):
        raise Malformed(f"{len(payload) - end} trailing bytes after the record")
