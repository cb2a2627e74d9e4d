"""Compiled field readers: the Avro binary of a flat record straight to a tuple of chosen fields.

The checked read (`AvroCodec.decode`, then pydantic) builds a dict, a datetime per timestamp and a
model per record, and checks every value on the way: for the context topics, read several times per
claim, that was most of a claim's cost. `compile_fields(schema, names)` generates, once per schema, a
straight-line function that walks the payload and returns the named fields' values, with timestamps
as epoch milliseconds (as the context store keeps them), dates as `date` and enum symbols as `str`.

It accepts only what the checked read would accept unchanged: every field is read and checked, and
the reader returns None for anything else (a truncated payload, trailing bytes, an enum or union
index out of range, a boolean that is not 0 or 1, an `int` beyond 32 bits, a NaN or infinite double,
a time or date that `datetime` cannot hold, text that is not UTF-8). None means "take the checked
read", which then either accepts the record after all or names the problem: the error messages keep
one source. Only flat records of primitives, enums, `date`, `timestamp-millis` and optional (null
first) unions of those compile; for anything else `compile_fields` returns None.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from worker.codec.avro_scan import read_long

FieldReader = Callable[[bytes], tuple[Any, ...] | None]

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MIN_ORDINAL, _MAX_ORDINAL = date.min.toordinal(), date.max.toordinal()
# Timestamps a datetime can hold, with a day's margin either side (the checked read decides those).
_DAY_MS = 86_400_000
_MIN_MS = (datetime.min.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).days * _DAY_MS + _DAY_MS
_MAX_MS = (datetime.max.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).days * _DAY_MS - _DAY_MS
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


class _Source:
    """The generated function's body, line by line."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str, depth: int = 1) -> None:
        self.lines.append("    " * depth + line)

    def hand_back_if(self, condition: str, depth: int) -> None:
        """Return None (take the checked read) when `condition` holds."""
        self.add(f"if {condition}:", depth)
        self.add("return None", depth + 1)

    def long(self, target: str, depth: int) -> None:
        self.add("b = buf[p]", depth)
        self.add("p += 1", depth)
        self.add("if b < 128:", depth)
        self.add(f"{target} = (b >> 1) ^ -(b & 1)", depth + 1)
        self.add("else:", depth)
        self.add(f"{target}, p = _read_long(buf, p - 1)", depth + 1)


def _value(source: _Source, schema: Any, target: str, depth: int, consts: dict[str, Any]) -> bool:
    """Emit the read of one non-union value into `target`; False when the type is not supported."""
    kind = schema if isinstance(schema, str) else schema.get("type") if isinstance(schema, dict) else None
    logical = schema.get("logicalType") if isinstance(schema, dict) else None
    if logical == "timestamp-millis" and kind == "long":
        source.long(target, depth)
        source.hand_back_if(f"not {_MIN_MS} <= {target} <= {_MAX_MS}", depth)
        return True
    if logical == "date" and kind == "int":
        source.long("n", depth)
        source.add(f"n += {_EPOCH_ORDINAL}", depth)
        source.hand_back_if(f"not {_MIN_ORDINAL} <= n <= {_MAX_ORDINAL}", depth)
        source.add(f"{target} = _date(n)", depth)
        return True
    if logical is not None:
        return False
    if kind == "string":
        source.long("n", depth)
        source.add("e = p + n", depth)
        source.hand_back_if("n < 0 or e > size", depth)
        source.add(f"{target} = buf[p:e].decode()", depth)  # strict UTF-8, as fastavro reads it
        source.add("p = e", depth)
        return True
    if kind == "long":
        source.long(target, depth)
        return True
    if kind == "int":
        source.long(target, depth)
        source.hand_back_if(f"not {_INT_MIN} <= {target} <= {_INT_MAX}", depth)
        return True
    if kind == "double":
        source.add(f"{target} = _double(buf, p)[0]", depth)
        source.add("p += 8", depth)
        source.hand_back_if(f"{target} - {target} != 0.0", depth)  # NaN or an infinity
        return True
    if kind == "boolean":
        source.add("b = buf[p]", depth)
        source.add("p += 1", depth)
        source.hand_back_if("b > 1", depth)
        source.add(f"{target} = b == 1", depth)
        return True
    if kind == "enum":
        symbols = f"_symbols{len(consts)}"
        consts[symbols] = tuple(schema["symbols"])
        source.long("n", depth)
        source.hand_back_if(f"not 0 <= n < {len(schema['symbols'])}", depth)
        source.add(f"{target} = {symbols}[n]", depth)
        return True
    return False


def compile_fields(schema: dict[str, Any], names: Sequence[str]) -> FieldReader | None:
    """A reader returning the values of `names` (in that order) of a record of `schema`, or None when
    the schema is not flat enough to compile. `schema` is the parsed or raw reader schema."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    fields = schema["fields"]
    known = {field["name"] for field in fields}
    if any(name not in known for name in names):
        raise ValueError(f"{schema.get('name')}: no field(s) {sorted(set(names) - known)}")
    source = _Source()
    consts: dict[str, Any] = {
        "_read_long": read_long,  # a varint of more than one byte (the first is inlined)
        "_date": date.fromordinal,
        "_double": struct.Struct("<d").unpack_from,
    }
    source.add("size = len(buf)")
    source.add("p = 0")
    for index, field in enumerate(fields):
        target = f"v{index}"
        kind = field["type"]
        if isinstance(kind, list):
            if len(kind) != 2 or kind[0] != "null" or isinstance(kind[1], list):
                return None
            source.long("n", 1)
            source.add("if n == 0:")
            source.add(f"{target} = None", 2)
            source.add("elif n == 1:")
            if not _value(source, kind[1], target, 2, consts):
                return None
            source.add("else:")
            source.add("return None", 2)
        elif not _value(source, kind, target, 1, consts):
            return None
    source.hand_back_if("p != size", 1)  # trailing bytes
    order = {field["name"]: index for index, field in enumerate(fields)}
    values = ", ".join(f"v{order[name]}" for name in names)
    source.add(f"return ({values}{',' if len(names) == 1 else ''})")
    body = "\n".join(["def read(buf):", "    try:", *("    " + line for line in source.lines)])
    body += "\n    except (IndexError, ValueError, struct.error):\n        return None\n"
    # IndexError: the payload ends early; ValueError: a varint too long or text not UTF-8
    # (UnicodeDecodeError); struct.error: a double cut short.
    namespace: dict[str, Any] = {"struct": struct, **consts}
    exec(compile(body, f"<avro fields of {schema.get('name')}>", "exec"), namespace)
    reader: FieldReader = namespace["read"]
    return reader
