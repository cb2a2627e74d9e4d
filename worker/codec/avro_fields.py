"""Compiled readers: the Avro binary of a record straight to its values, in generated straight-line code.

The checked read (`AvroCodec.decode`, then pydantic) runs fastavro, then a scan of the payload's
indexes and booleans, then a walk of the values, and builds a datetime per timestamp on the way: for
the context topics, read several times per claim, that was most of a claim's cost, and for a claim
it was 80 µs of its 115 µs decode. Two kinds of reader are generated once per schema:

- `compile_fields(schema, names)`: a flat record to a tuple of the named fields' values, timestamps as
  epoch milliseconds (as the context store keeps them), dates as `date`, enum symbols as `str`;
- `compile_record(schema)`: any record of our schemas (nested records, arrays, optional unions) to the
  dict fastavro would return for it (timestamps as UTC `datetime`), ready for the same pydantic model.

Both accept only what the checked read would accept unchanged: every field is read and checked, and
the reader returns None for anything else (a truncated payload, trailing bytes, an enum or union
index out of range, a boolean that is not 0 or 1, an `int` beyond 32 bits, a NaN or infinite double,
a time or date that `datetime` cannot hold, text that is not UTF-8, an array block longer than the
bytes left). None means "take the checked read", which then either accepts the record after all or
names the problem: the error messages keep one source. Primitives, enums, `date`, `timestamp-millis`,
records, arrays and optional (null first) unions compile; for anything else the compiler returns None.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from worker.codec.avro_scan import read_long
from worker.codec.codegen import FunctionSource, define

FieldReader = Callable[[bytes], tuple[Any, ...] | None]
RecordReader = Callable[[bytes], dict[str, Any] | None]

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MIN_ORDINAL, _MAX_ORDINAL = date.min.toordinal(), date.max.toordinal()
# Timestamps a datetime can hold, with a day's margin either side (the checked read decides those).
_DAY_MS = 86_400_000
_MIN_MS = (datetime.min.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).days * _DAY_MS + _DAY_MS
_MAX_MS = (datetime.max.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).days * _DAY_MS - _DAY_MS
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # fastavro's timestamps are this plus a timedelta


class _Source(FunctionSource):
    """A reader function's body; nested records get functions of their own (`FunctionSource`)."""

    def __init__(self, *, datetimes: bool = False, nested: bool = False) -> None:
        super().__init__(
            {
                "struct": struct,
                "_read_long": read_long,  # a varint of more than one byte, where not read inline
                "_date": date.fromordinal,
                "_double": struct.Struct("<d").unpack_from,
                "_EPOCH": _EPOCH,
                "_timedelta": timedelta,
            }
        )
        self.datetimes = datetimes  # timestamps as UTC datetimes (else epoch milliseconds)
        self.nested_records = nested  # records and arrays may appear (else only a flat record compiles)

    def hand_back_if(self, condition: str, depth: int) -> None:
        """Return None (take the checked read) when `condition` holds."""
        self.add(f"if {condition}:", depth)
        self.add("return None", depth + 1)

    def long(self, target: str, depth: int, *, wide: bool = False) -> None:
        """A zigzag varint into `target`, as `avro_scan.read_long` reads it. One byte is read inline
        (lengths, counts, indexes, small ints); more are read by `read_long`, or inline when `wide`
        (dates and timestamps, three and six bytes, where the call cost more than the loop: a claim
        35 → 27 µs). Inline everywhere, the claim reader's code took 3 MiB to compile instead of 1.6
        and gained nothing more."""
        self.add("b = buf[p]", depth)
        self.add("p += 1", depth)
        self.add("if b < 128:", depth)
        self.add(f"{target} = (b >> 1) ^ -(b & 1)", depth + 1)
        self.add("else:", depth)
        if not wide:
            self.add(f"{target}, p = _read_long(buf, p - 1)", depth + 1)
            return
        self.add("z = b & 127", depth + 1)
        self.add("s = 7", depth + 1)
        self.add("b = buf[p]", depth + 1)
        self.add("p += 1", depth + 1)
        self.add("while b >= 128:", depth + 1)
        self.add("z |= (b & 127) << s", depth + 2)
        self.add("s += 7", depth + 2)
        self.hand_back_if("s > 63", depth + 2)  # longer than 10 bytes
        self.add("b = buf[p]", depth + 2)
        self.add("p += 1", depth + 2)
        self.add(f"{target} = ((z | b << s) >> 1) ^ -(z & 1)", depth + 1)


def _emit(source: _Source, schema: Any, target: str, depth: int, named: dict[str, Any]) -> bool:
    """Emit the read of one value of `schema` into `target`; False when the type is not supported."""
    if isinstance(schema, str) and schema in named:
        schema = named[schema]  # a named type defined earlier in the schema
    if isinstance(schema, list):
        if len(schema) != 2 or schema[0] != "null" or isinstance(schema[1], list):
            return False
        source.long("n", depth)
        source.add("if n == 0:", depth)
        source.add(f"{target} = None", depth + 1)
        source.add("elif n == 1:", depth)
        if not _emit(source, schema[1], target, depth + 1, named):
            return False
        source.add("else:", depth)
        source.add("return None", depth + 1)
        return True
    kind = schema.get("type") if isinstance(schema, dict) else None
    if kind == "record" and source.nested_records:
        # A function per record (worker/codec/codegen.py says why); a call per record costs little.
        body, values = source.nested(), []
        for field in schema["fields"]:
            value = body.fresh("v")
            if not _emit(body, field["type"], value, 2, named):
                return False
            values.append(f"{field['name']!r}: {value}")
        body.add(f"return {{{', '.join(values)}}}, p", 2)
        function = source.fresh("_record")
        source.functions.append(_function(function, "buf, p, size", body.lines, "return None"))
        read = source.fresh("r")
        source.add(f"{read} = {function}(buf, p, size)", depth)
        source.hand_back_if(f"{read} is None", depth)
        source.add(f"{target}, p = {read}", depth)
        return True
    if kind == "array" and source.nested_records:
        items, count, item = source.fresh("a"), source.fresh("c"), source.fresh("x")
        source.add(f"{items} = []", depth)
        source.long(count, depth)
        source.add(f"while {count}:", depth)
        source.add(f"if {count} < 0:", depth + 1)  # a block with its byte size: the count is negated
        source.add(f"{count} = -{count}", depth + 2)
        source.long("n", depth + 2)
        # Every item of our schemas takes a byte at least: a longer block is not a valid payload.
        source.hand_back_if(f"{count} > size - p", depth + 1)
        source.add(f"for _ in range({count}):", depth + 1)
        if not _emit(source, schema["items"], item, depth + 2, named):
            return False
        source.add(f"{items}.append({item})", depth + 2)
        source.long(count, depth + 1)
        source.add(f"{target} = {items}", depth)
        return True
    return _value(source, schema, target, depth)


def _value(source: _Source, schema: Any, target: str, depth: int) -> bool:
    """Emit the read of one value of a primitive, enum or logical type into `target`."""
    kind = schema if isinstance(schema, str) else schema.get("type") if isinstance(schema, dict) else None
    logical = schema.get("logicalType") if isinstance(schema, dict) else None
    if logical == "timestamp-millis" and kind == "long":
        source.long(target, depth, wide=True)
        source.hand_back_if(f"not {_MIN_MS} <= {target} <= {_MAX_MS}", depth)
        if source.datetimes:
            source.add(f"{target} = _EPOCH + _timedelta(milliseconds={target})", depth)
        return True
    if logical == "date" and kind == "int":
        source.long("n", depth, wide=True)
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
        symbols = source.const(tuple(schema["symbols"]))
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
    source.add("size = len(buf)")
    source.add("p = 0")
    for index, field in enumerate(fields):
        if not _emit(source, field["type"], f"v{index}", 1, {}):
            return None
    source.hand_back_if("p != size", 1)  # trailing bytes
    order = {field["name"]: index for index, field in enumerate(fields)}
    values = ", ".join(f"v{order[name]}" for name in names)
    source.add(f"return ({values}{',' if len(names) == 1 else ''})")
    reader: FieldReader = _define(source, f"<avro fields of {schema.get('name')}>")
    return reader


def compile_record(schema: dict[str, Any]) -> RecordReader | None:
    """A reader returning the dict fastavro returns for a record of `schema` (parsed), or None when
    the schema has a type this module does not compile."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    source = _Source(datetimes=True, nested=True)
    source.add("size = len(buf)")
    source.add("p = 0")
    if not _emit(source, schema, "record", 1, schema.get("__named_schemas", {})):
        return None
    source.hand_back_if("p != size", 1)  # trailing bytes
    source.add("return record")
    reader: RecordReader = _define(source, f"<avro record of {schema.get('name')}>")
    return reader


def _function(name: str, parameters: str, lines: list[str], on_error: str) -> str:
    """A generated function: `lines` (indented for inside its `try`), and `on_error` for a payload
    that ends early (IndexError), a varint too long or text not UTF-8 (ValueError, which
    UnicodeDecodeError is) or a double cut short (struct.error)."""
    return "\n".join(
        [
            f"def {name}({parameters}):",
            "    try:",
            *lines,
            "    except (IndexError, ValueError, struct.error):",
            f"        {on_error}",
        ]
    )


def _define(source: _Source, filename: str) -> Any:
    main = _function("read", "buf", ["    " + line for line in source.lines], "return None")
    return define(source, main, "read", filename)
