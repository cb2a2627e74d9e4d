"""The index and boolean scan (worker/codec/avro_scan.py) on hand-written Avro binary."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest

from worker.codec.avro_scan import Malformed, check, compile_scan

SCHEMA: dict[str, Any] = fastavro.parse_schema(
    {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "flag", "type": "boolean"},
            {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B", "C"]}},
            {"name": "note", "type": ["null", "string"]},
            {"name": "items", "type": {"type": "array", "items": "long"}},
            {"name": "tags", "type": {"type": "map", "values": "double"}},
        ],
    }
)
SCAN = compile_scan(SCHEMA, SCHEMA["__named_schemas"])


def written(record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, SCHEMA, record)
    return out.getvalue()


GOOD = {"flag": True, "kind": "C", "note": "hi", "items": [1, -300, 2**40], "tags": {"x": 1.5}}


def test_what_fastavro_writes_passes() -> None:
    check(SCAN, written(GOOD))
    check(SCAN, written({**GOOD, "note": None, "items": [], "tags": {}}))


def test_blocks_with_byte_sizes_pass() -> None:
    # Java's blocking encoder: a negative count followed by the block's byte size.
    payload = b"\x01" + b"\x04" + b"\x00" + b"\x03" + b"\x04" + b"\x02\x04" + b"\x00" + b"\x00"
    check(SCAN, payload)
    assert fastavro.schemaless_reader(io.BytesIO(payload), SCHEMA, None)["items"] == [1, 2]


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"\x02" + b"\x04" + b"\x00" + b"\x00" + b"\x00", "boolean"),  # flag byte 2
        (b"\x01" + b"\x01" + b"\x00" + b"\x00" + b"\x00", "enum"),  # kind -1
        (b"\x01" + b"\x06" + b"\x00" + b"\x00" + b"\x00", "enum"),  # kind 3
        (b"\x01" + b"\x04" + b"\x01" + b"\x04hi" + b"\x00" + b"\x00", "union"),  # note branch -1
        (b"\x01" + b"\x04" + b"\x02" + b"\x03", "negative"),  # note length -2
        (b"\x01" + b"\x04" + b"\x00" + b"\x00", "ends"),  # no map
        (written(GOOD) + b"\x00", "trailing"),
    ],
)
def test_malformed_payloads_are_refused(payload: bytes, problem: str) -> None:
    with pytest.raises(Malformed, match=problem):
        check(SCAN, payload)
