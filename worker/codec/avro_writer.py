"""A compiled Avro binary writer for records that are already well typed (the worker's decisions).

fastavro's writer picks every union branch by validating the value against each branch, and the
codec's checking walk (`worker.avro`) runs before it: for a decision with findings that is about
11 µs per finding, more than deciding the claim. The worker builds its decisions itself, so their
types are right by construction; this writer is generated once per schema as straight-line code
(a function per record, as the compiled readers are, worker/codec/avro_fields.py) that appends the
Avro binary encoding to a bytearray, checking exact Python types as it goes. A closure per schema
node, as it was first, cost a Python call per field: 20 µs a decision of the synthetic stream, 9 now.

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

from worker.codec.codegen import FunctionSource, define

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


def compile_writer(schema: Any, named: dict[str, Any]) -> Writer | None:
    """The writer of a parsed schema, or None when it has a shape this writer does not handle."""
    code = _Code()
    if not _emit(code, schema, "value", 2, named):
        return None
    main = "\n".join(
        [
            "def write(out, value):",
            "    try:",
            *code.lines,
            # A missing field (even one with a default), text that is not UTF-8: the checked way.
            "    except (KeyError, UnicodeEncodeError):",
            "        raise Unfit from None",
        ]
    )
    name = schema.get("name") if isinstance(schema, dict) else schema
    writer: Writer = define(code, main, "write", f"<avro writer of {name}>")
    return writer


class _Code(FunctionSource):
    """A writer function's body; records get functions of their own (`FunctionSource`)."""

    def __init__(self) -> None:
        super().__init__(
            {
                "Unfit": Unfit,
                "_SMALL": _SMALL,
                "_varint": _varint_bytes,
                "_double": _pack_double,
                "_date": date,
                "_datetime": datetime,
            }
        )

    def unfit_if(self, condition: str, depth: int) -> None:
        self.add(f"if {condition}:", depth)
        self.add("raise Unfit", depth + 1)

    def long(self, value: str, depth: int) -> None:
        """Append the varint of the int `value` (already checked)."""
        small = self.fresh("s")
        self.add(f"{small} = _SMALL.get({value})", depth)
        self.add(f"out += {small} if {small} is not None else _varint({value})", depth)


def _emit(code: _Code, schema: Any, value: str, depth: int, named: dict[str, Any]) -> bool:
    """Emit the write of the Python value named `value`; False when the schema is not handled."""
    if isinstance(schema, str):
        if schema in named:
            return _emit(code, named[schema], value, depth, named)
        return _primitive(code, schema, value, depth)
    if isinstance(schema, list):
        # Only ["null", X] and [X, "null"]: the value's None-ness says the branch.
        if len(schema) != 2 or "null" not in schema:
            return False
        null_index = schema.index("null")
        code.add(f"if {value} is None:", depth)
        code.add(f"out += {code.const(_SMALL[null_index])}", depth + 1)
        code.add("else:", depth)
        code.add(f"out += {code.const(_SMALL[1 - null_index])}", depth + 1)
        return _emit(code, schema[1 - null_index], value, depth + 1, named)
    kind = schema["type"]
    logical = schema.get("logicalType")
    if logical is not None:
        return _logical(code, schema, kind, logical, value, depth)
    if kind == "record":
        body = code.nested()
        body.unfit_if("type(value) is not dict", 1)
        for field in schema["fields"]:
            name = body.fresh("f")
            body.add(f"{name} = value[{field['name']!r}]", 1)
            if not _emit(body, field["type"], name, 1, named):
                return False
        function = code.fresh("_record")
        code.functions.append("\n".join([f"def {function}(out, value):", *body.lines]))
        code.add(f"{function}(out, {value})", depth)
        return True
    if kind in ("array", "map"):
        code.unfit_if(
            f"type({value}) is not dict"
            if kind == "map"
            else f"type({value}) is not list and type({value}) is not tuple",
            depth,
        )
        code.add(f"if {value}:", depth)
        code.long(f"len({value})", depth + 1)
        element = code.fresh("e")
        if kind == "map":
            key = code.fresh("k")
            code.add(f"for {key}, {element} in {value}.items():", depth + 1)
            _primitive(code, "string", key, depth + 2)
            emitted = _emit(code, schema["values"], element, depth + 2, named)
        else:
            code.add(f"for {element} in {value}:", depth + 1)
            emitted = _emit(code, schema["items"], element, depth + 2, named)
        code.add("out.append(0)", depth)  # the end of the (single) block
        return emitted
    if kind == "enum":
        encoded = code.fresh("n")
        index = code.const({symbol: _SMALL[position] for position, symbol in enumerate(schema["symbols"])})
        code.add(f"{encoded} = {index}.get({value}) if type({value}) is str else None", depth)
        code.unfit_if(f"{encoded} is None", depth)
        code.add(f"out += {encoded}", depth)
        return True
    return isinstance(kind, str) and _primitive(code, kind, value, depth)


def _logical(code: _Code, schema: dict[str, Any], kind: str, logical: str, value: str, depth: int) -> bool:
    """Dates and timestamps, converted by the same functions fastavro's writer calls."""
    if (kind, logical) not in (("int", "date"), ("long", "timestamp-millis")):
        return False
    prepare = code.const(fastavro.write.LOGICAL_WRITERS[f"{kind}-{logical}"])
    # Exact types only: an ISO string, a naive time or a datetime for a date go the checked way.
    if logical == "timestamp-millis":
        code.unfit_if(f"type({value}) is not _datetime or {value}.tzinfo is None", depth)
    else:
        code.unfit_if(f"type({value}) is not _date", depth)
    number = code.fresh("t")
    code.add(f"{number} = {prepare}({value}, {code.const(schema)})", depth)
    return _primitive(code, kind, number, depth)


def _primitive(code: _Code, kind: str, value: str, depth: int) -> bool:
    if kind == "null":
        code.unfit_if(f"{value} is not None", depth)
    elif kind == "boolean":
        code.add(f"if {value} is True:", depth)
        code.add("out.append(1)", depth + 1)
        code.add(f"elif {value} is False:", depth)
        code.add("out.append(0)", depth + 1)
        code.add("else:", depth)
        code.add("raise Unfit", depth + 1)
    elif kind in ("int", "long"):
        low, high = (_INT_MIN, _INT_MAX) if kind == "int" else (_LONG_MIN, _LONG_MAX)
        code.unfit_if(f"type({value}) is not int or not {low} <= {value} <= {high}", depth)
        code.long(value, depth)
    elif kind == "double":
        # Non-finite numbers (x - x is NaN for NaN and the infinities): the checked way decides.
        code.unfit_if(f"type({value}) is not float or {value} - {value} != 0.0", depth)
        code.add(f"out += _double({value})", depth)
    elif kind in ("string", "bytes"):
        encoded = code.fresh("b")
        if kind == "string":
            code.unfit_if(f"type({value}) is not str", depth)
            code.add(f"{encoded} = {value}.encode('utf-8')", depth)
        else:
            code.unfit_if(f"type({value}) is not bytes", depth)
            code.add(f"{encoded} = {value}", depth)
        code.long(f"len({encoded})", depth)
        code.add(f"out += {encoded}", depth)
    else:
        # "float" is left out on purpose: a double narrowed to 4 bytes is the checked writer's decision.
        return False
    return True
