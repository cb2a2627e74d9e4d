"""The compiled field readers (worker/codec/avro_fields.py) against the checked read they shortcut.

The promise: whatever the compiled reader accepts, the checked read (fastavro, the scan, the checks,
pydantic) accepts too, and the compact facts built from either are equal. Anything it is unsure of
it hands back (None), and the checked read decides.
"""

from __future__ import annotations

import io
import json
import typing
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.codec.avro import AvroCodec, load_schema
from worker.codec.avro_fields import compile_fields, compile_record
from worker.engine import events
from worker.engine.events import LabResult, Prescription
from worker.engine.records import LAB_FIELDS, RX_FIELDS, LabFacts, RxFacts
from worker.errors import DecodeError

LAB = AvroCodec("LabResultRecorded")
RX = AvroCodec("PrescriptionRecorded")
READ_LAB = compile_fields(LAB.schema, LAB_FIELDS)
READ_RX = compile_fields(RX.schema, RX_FIELDS)

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
finite = st.floats(allow_nan=False, allow_infinity=False)
int32 = st.integers(-(2**31), 2**31 - 1)
moments = st.datetimes(min_value=datetime(1, 1, 3), max_value=datetime(9999, 12, 29), timezones=st.just(UTC)).map(
    lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000)
)
days = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))


def _symbols(codec: AvroCodec, field: str) -> list[str]:
    (schema,) = (f["type"] for f in codec.schema["fields"] if f["name"] == field)
    return list(schema["symbols"])


labs = st.fixed_dictionaries(
    {
        "event_id": text,
        "event_time": moments,
        "observation_id": text,
        "patient_id": text,
        "loinc_code": st.sampled_from(["11253-2", "2160-0", "33914-3", "x"]) | text,
        "display": st.none() | text,
        "value": st.none() | finite,
        "unit": st.none() | text,
        "effective_time": moments,
        "status": st.sampled_from(_symbols(LAB, "status")),
    }
)
prescriptions = st.fixed_dictionaries(
    {
        "event_id": text,
        "event_time": moments,
        "prescription_id": text,
        "patient_id": text,
        "status": st.sampled_from(_symbols(RX, "status")),
        "ingredient": st.sampled_from(["tacrolimus", "Cyclo-Sporine", ""]) | text,
        "formulation": st.sampled_from(_symbols(RX, "formulation")),
        "route": st.sampled_from(_symbols(RX, "route")),
        "strength_mg": st.none() | finite,
        "dose_mg": st.none() | finite,
        "doses_per_day": st.none() | int32,
        "days_supply": st.none() | int32,
        "start_date": days,
        "end_date": st.none() | days,
        "dosing_weight_kg": st.none() | finite,
        "prescriber_npi": st.none() | text,
        "dispense_as_written": st.booleans(),
        "clinical_justification": st.none() | text,
        "rxnorm_code": st.none() | text,
        "ndc": st.none() | text,
    }
)


def _without_seq(facts: LabFacts | RxFacts) -> LabFacts | RxFacts:
    return facts._replace(seq=0)


def checked_lab(payload: bytes, time: int) -> LabFacts | None:
    try:
        return LabFacts.of(LabResult.model_validate(LAB.decode(payload)), time)
    except (DecodeError, ValueError):
        return None


def checked_rx(payload: bytes, time: int) -> RxFacts | None:
    try:
        return RxFacts.of(Prescription.model_validate(RX.decode(payload)), time)
    except (DecodeError, ValueError):
        return None


def test_the_context_schemas_compile_and_nested_ones_do_not() -> None:
    assert READ_LAB is not None and READ_RX is not None
    assert compile_fields(load_schema("ClaimSubmitted"), ["claim_id"]) is None  # records and arrays inside


@pytest.mark.parametrize(
    ("codec", "field", "literal"),
    [
        (LAB, "status", events.LabStatus),
        (RX, "status", events.PrescriptionStatus),
        (RX, "formulation", events.Formulation),
        (RX, "route", events.Route),
    ],
)
def test_every_schema_symbol_is_one_the_model_accepts(codec: AvroCodec, field: str, literal: object) -> None:
    # The compiled reader passes any symbol of the schema: the model must accept exactly those.
    assert set(_symbols(codec, field)) == set(typing.get_args(literal))


KINDS = {
    "lab": (LAB, READ_LAB, checked_lab, LabFacts.read, labs),
    "prescription": (RX, READ_RX, checked_rx, RxFacts.read, prescriptions),
}


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), time=st.integers(0, 2**45))
def test_a_valid_record_reads_to_the_same_facts(kind: str, data: st.DataObject, time: int) -> None:
    codec, reader, checked, facts_of, records = KINDS[kind]
    record = data.draw(records)
    payload = codec.encode(record)
    fields = reader(payload)  # type: ignore[operator]
    assert fields is not None
    assert fields[0] == record["patient_id"]
    judged = checked(payload, time)  # type: ignore[operator]
    assert judged is not None
    assert _without_seq(facts_of(fields, time)) == _without_seq(judged)  # type: ignore[operator]


def _mutate(payload: bytes, data: st.DataObject) -> bytes:
    kind = data.draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    if kind == "truncate":
        return payload[: data.draw(st.integers(0, max(len(payload) - 1, 0)))]
    if kind == "extend":
        return payload + data.draw(st.binary(min_size=1, max_size=8))
    at = data.draw(st.integers(0, len(payload) - 1))
    if kind == "flip":
        return payload[:at] + bytes([data.draw(st.integers(0, 255))]) + payload[at + 1 :]
    return payload[:at] + data.draw(st.binary(max_size=16)) + payload[at + 1 :]


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_damaged_record_is_read_as_the_checked_read_reads_it_or_handed_back(kind: str, data: st.DataObject) -> None:
    codec, reader, checked, facts_of, records = KINDS[kind]
    payload = _mutate(codec.encode(data.draw(records)), data)
    fields = reader(payload)  # type: ignore[operator]
    if fields is not None:
        judged = checked(payload, 1)  # type: ignore[operator]
        assert judged is not None, "the compiled reader accepted what the checked read rejects"
        assert _without_seq(facts_of(fields, 1)) == _without_seq(judged)  # type: ignore[operator]


@given(payload=st.binary(max_size=200))
def test_random_bytes_are_handed_back_unless_the_checked_read_takes_them(payload: bytes) -> None:
    for reader, checked in ((READ_LAB, checked_lab), (READ_RX, checked_rx)):
        if reader(payload) is not None:  # type: ignore[misc]
            assert checked(payload, 1) is not None


LAB_RECORD: dict[str, object] = {
    "event_id": "E1",
    "event_time": datetime(2025, 3, 1, 9, 0, tzinfo=UTC),
    "observation_id": "O1",
    "patient_id": "P1",
    "loinc_code": "11253-2",
    "value": 7.5,
    "effective_time": datetime(2025, 3, 1, 8, 0, tzinfo=UTC),
    "status": "FINAL",
}


def _fastavro_bytes(record: dict[str, object]) -> bytes:
    """fastavro's own writer: the codec refuses to write NaN, which another producer may send."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, LAB.schema, record)
    return out.getvalue()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("value", float("nan")),
        ("value", float("inf")),
        ("event_time", datetime(9999, 12, 31, 23, 0, tzinfo=UTC)),  # within a day of datetime's end
    ],
)
def test_values_at_the_checked_reads_edges_are_handed_back(field: str, value: object) -> None:
    assert READ_LAB(_fastavro_bytes({**LAB_RECORD, field: value})) is None  # type: ignore[misc]
    assert READ_LAB(_fastavro_bytes(LAB_RECORD)) is not None  # type: ignore[misc]


def _zigzag(value: int) -> bytes:
    encoded, out = (value << 1) ^ (value >> 63), bytearray()
    while encoded >= 0x80:
        out.append((encoded & 0x7F) | 0x80)
        encoded >>= 7
    out.append(encoded)
    return bytes(out)


def test_an_int_beyond_32_bits_is_handed_back_and_rejected() -> None:
    # The lab schema has no int: build a prescription whose days_supply varint holds 2**32.
    record: dict[str, object] = {
        "event_id": "E1",
        "event_time": datetime(2025, 3, 1, tzinfo=UTC),
        "prescription_id": "RX1",
        "patient_id": "P1",
        "status": "ACTIVE",
        "ingredient": "tacrolimus",
        "formulation": "IMMEDIATE_RELEASE",
        "route": "ORAL",
        "days_supply": 7,
        "start_date": date(2025, 3, 1),
    }
    payload = RX.encode(record)
    at = payload.index(b"\x02" + _zigzag(7))  # union branch 1, then 7
    damaged = payload[:at] + b"\x02" + _zigzag(2**32) + payload[at + 2 :]
    assert READ_RX(payload) is not None  # type: ignore[misc]
    assert READ_RX(damaged) is None  # type: ignore[misc]
    assert checked_rx(damaged, 1) is None


# --- whole records (compile_record): the claim ---------------------------------------------------

CLAIM = AvroCodec("ClaimSubmitted")
READ_CLAIM = compile_record(CLAIM.schema)


def values_of(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Valid values of any node of our schemas, as the codec writes them."""
    if isinstance(schema, str) and schema in named:
        return values_of(named[schema], named)
    if isinstance(schema, list):
        return st.one_of(*(values_of(branch, named) for branch in schema))
    if isinstance(schema, dict):
        logical, kind = schema.get("logicalType"), schema["type"]
        if logical == "timestamp-millis":
            return moments
        if logical == "date":
            return days
        if kind == "record":
            return st.fixed_dictionaries({f["name"]: values_of(f["type"], named) for f in schema["fields"]})
        if kind == "array":
            return st.lists(values_of(schema["items"], named), max_size=3)
        if kind == "enum":
            return st.sampled_from(schema["symbols"])
        return values_of(kind, named)
    return {
        "null": st.none(),
        "string": text,
        "int": int32,
        "long": st.integers(-(2**63), 2**63 - 1),
        "double": finite,
        "boolean": st.booleans(),
    }[schema]


claims = values_of(CLAIM.schema, CLAIM.schema["__named_schemas"])


def _same(read: Any, checked: Any) -> bool:
    """Equal, and of the same types all the way down (True == 1 and 1.0 == 1 would hide a difference)."""
    if type(read) is not type(checked):
        return False
    if isinstance(read, dict):
        return read.keys() == checked.keys() and all(_same(read[k], checked[k]) for k in read)
    if isinstance(read, list):
        return len(read) == len(checked) and all(map(_same, read, checked))
    if isinstance(read, datetime):
        return read == checked and read.tzinfo == checked.tzinfo
    if isinstance(read, float):
        return read == checked and str(read) == str(checked)  # the sign of zero too
    return bool(read == checked)


def checked_claim(payload: bytes) -> dict[str, Any] | None:
    try:
        return CLAIM.decode(payload)
    except DecodeError:
        return None


def test_every_input_schema_compiles_to_a_record_reader() -> None:
    for name in ("ClaimSubmitted", "LabResultRecorded", "PrescriptionRecorded"):
        assert compile_record(load_schema(name)) is not None, name


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(record=claims)
def test_a_valid_claim_reads_to_what_fastavro_reads(record: dict[str, Any]) -> None:
    payload = CLAIM.encode(record)
    read = READ_CLAIM(payload)  # type: ignore[misc]
    assert read is not None
    assert _same(read, CLAIM.decode(payload))


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_damaged_claim_is_read_as_the_checked_read_reads_it_or_handed_back(data: st.DataObject) -> None:
    payload = _mutate(CLAIM.encode(data.draw(claims)), data)
    read = READ_CLAIM(payload)  # type: ignore[misc]
    if read is not None:
        checked = checked_claim(payload)
        assert checked is not None, "the compiled reader accepted what the checked read rejects"
        assert _same(read, checked)


@given(payload=st.binary(max_size=300))
def test_random_bytes_are_not_a_claim_unless_the_checked_read_takes_them(payload: bytes) -> None:
    read = READ_CLAIM(payload)  # type: ignore[misc]
    if read is not None:
        checked = checked_claim(payload)
        assert checked is not None and _same(read, checked)


ARRAY = fastavro.parse_schema(
    {"type": "record", "name": "T", "fields": [{"name": "xs", "type": {"type": "array", "items": "string"}}]}
)


def test_array_blocks_with_byte_sizes_and_several_blocks_read_as_fastavro_reads_them() -> None:
    read = compile_record(ARRAY)
    assert read is not None
    # Two blocks: -2 items (then their byte size, 4), "ab" and "c"; then 1 item "d"; then the end.
    payload = _zigzag(-2) + _zigzag(5) + _zigzag(2) + b"ab" + _zigzag(1) + b"c" + _zigzag(1) + _zigzag(1) + b"d" + b"\0"
    assert read(payload) == fastavro.schemaless_reader(io.BytesIO(payload), ARRAY) == {"xs": ["ab", "c", "d"]}
    # A block claiming more items than bytes left is handed back, not looped over.
    assert read(_zigzag(2**40) + b"\0") is None


def test_a_claim_with_a_nan_or_an_edge_time_is_handed_back() -> None:
    bundle = json.loads((Path(__file__).parent / "fixtures" / "bundles.jsonl").read_text().splitlines()[0])["bundle"]
    record = CLAIM.decode(
        CLAIM.encode(
            events.Claim.model_validate(
                {"event_id": "E1", "event_time": "2025-03-01T00:00:00Z", **bundle["claim"]}
            ).model_dump()
        )
    )
    assert READ_CLAIM(CLAIM.encode(record)) is not None  # type: ignore[misc]
    record["lines"][0]["units"] = float("nan")
    out = io.BytesIO()
    fastavro.schemaless_writer(out, CLAIM.schema, record)
    assert READ_CLAIM(out.getvalue()) is None  # type: ignore[misc]
    assert checked_claim(out.getvalue()) is None
    record["lines"][0]["units"] = 30.0
    record["event_time"] = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)  # within a day of datetime's end
    out = io.BytesIO()
    fastavro.schemaless_writer(out, CLAIM.schema, record)
    assert READ_CLAIM(out.getvalue()) is None  # type: ignore[misc]


LONG = fastavro.parse_schema({"type": "record", "name": "L", "fields": [{"name": "n", "type": "long"}]})
READ_LONG = compile_record(LONG)


@given(number=st.integers(-(2**63), 2**63 - 1))
def test_a_long_of_any_width_reads_as_fastavro_reads_it(number: int) -> None:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, LONG, {"n": number})
    assert READ_LONG(out.getvalue()) == {"n": number}  # type: ignore[misc]


def test_a_varint_longer_than_ten_bytes_is_handed_back() -> None:
    assert READ_LONG(b"\xff" * 10 + b"\x01") is None  # type: ignore[misc]
    assert READ_LONG(b"\xfe" + b"\xff" * 8 + b"\x01") == {"n": 2**63 - 1}  # type: ignore[misc]


def _longest_generated_function(function: Any) -> int:
    """Lines of the longest function in the namespace a compiled reader or writer was defined in."""
    spans = [
        max(line for _, _, line in value.__code__.co_lines() if line is not None)
        for value in function.__globals__.values()
        if callable(value)
        and getattr(value, "__code__", None) is not None
        and value.__code__.co_filename.startswith("<avro")
    ]
    return max(spans)


def test_generated_functions_stay_short() -> None:
    # CPython's compiler keeps memory it took for a long function: the claim reader as one function
    # of 1,400 lines cost 3 MiB of resident memory, as a function per record almost nothing.
    from worker.codec.avro import compiled_writer

    writer = compiled_writer("ClaimDecision")
    assert writer is not None
    for function in (READ_CLAIM, writer):
        assert _longest_generated_function(function) < 400
