"""The wire format: schemas match the contract, records round-trip, old writers stay readable, and
nothing undecodable gets past DecodeError."""

from __future__ import annotations

import copy
import io
import json
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from samples import CLAIM, DECISION, FINDING, J7507_LINE, LAB, PATIENT_ID, PRESCRIPTION, RECORDS

from worker.codec.avro import SCHEMA_NAMES, AvroCodec, load_schema, schema_json
from worker.errors import DecodeError, EncodeError

# The contract's names (docs: contract.md), "?" marking the optional ones; Avro order is ours.
CONTRACT_FIELDS = {
    "ClaimSubmitted": "event_id event_time claim_id claim_version patient_id payer coverage? transplant? "
    "diagnosis_codes prior_authorization? abn_on_file billing_provider_npi? ordering_provider_npi? "
    "dispensing_pharmacy_npi? lines",
    "Payer": "payer_id payer_type plan_id?",
    "Coverage": "part_a_at_transplant? part_b_active? entitlement? part_b_id_enrolled?",
    "Transplant": "organ transplant_date? discharge_date? facility? date_source?",
    "PriorAuthorization": "number status valid_from? valid_to?",
    "ClaimLine": "line_number hcpcs_code modifiers units charge_amount? date_of_service ndc? ndc_quantity? "
    "ndc_unit? days_supply? prescription_id?",
    "PrescriptionRecorded": "event_id event_time prescription_id patient_id status ingredient formulation route "
    "strength_mg? dose_mg? doses_per_day? days_supply? start_date end_date? dosing_weight_kg? prescriber_npi? "
    "dispense_as_written clinical_justification? rxnorm_code? ndc?",
    "LabResultRecorded": "event_id event_time observation_id patient_id loinc_code display? value? unit? "
    "effective_time status",
    "ClaimDecision": "decision_id claim_id claim_version claim_event_id? patient_id decided_at context_as_of? outcome "
    "rule_pack worker_version source? findings lines",
    "RulePack": "name version",
    "DecisionSource": "topic partition offset",
    "DecisionLine": "line_number hcpcs_code outcome findings",
    "Finding": "rule_id family outcome message evidence fix? expected_carc? policy_ref?",
}
CONTRACT_ENUMS = {
    "PayerType": "MEDICARE MEDICAID COMMERCIAL OTHER",
    "Entitlement": "AGE DISABILITY ESRD_ONLY",
    "Organ": "KIDNEY LIVER HEART LUNG HEART_LUNG PANCREAS INTESTINE BONE_MARROW ISLET OTHER",
    "TransplantDateSource": "ORDERING_PHYSICIAN MEDICAL_RECORD PATIENT OTHER",
    "PriorAuthorizationStatus": "APPROVED PENDING DENIED",
    "NdcUnit": "UN ME GR ML",
    "PrescriptionStatus": "ACTIVE COMPLETED STOPPED ON_HOLD ENTERED_IN_ERROR",
    "Formulation": "IMMEDIATE_RELEASE EXTENDED_RELEASE INJECTION SUSPENSION OTHER",
    "Route": "ORAL INTRAVENOUS SUBLINGUAL OTHER",
    "LabResultStatus": "FINAL PRELIMINARY CORRECTED AMENDED CANCELLED ENTERED_IN_ERROR",
    "DecisionOutcome": "ACCEPT HOLD DENY_RISK",
    "FindingOutcome": "HOLD DENY_RISK INFO",
}


def raw_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_json(name))
    return schema


def named_definitions(node: Any) -> Iterator[dict[str, Any]]:
    """Every record and enum defined (not merely referenced) anywhere in a raw schema."""
    if isinstance(node, list):
        for branch in node:
            yield from named_definitions(branch)
    elif isinstance(node, dict):
        if node.get("type") in ("record", "enum"):
            yield node
        for key in ("fields", "type", "items", "values"):
            if key in node:
                yield from named_definitions(node[key])


def all_definitions() -> dict[str, dict[str, Any]]:
    return {d["name"]: d for name in SCHEMA_NAMES for d in named_definitions(raw_schema(name))}


def encode_with(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    """Bytes as another producer would write them: fastavro straight, with the given (raw) schema."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


# --- the schemas ----------------------------------------------------------------------------------


def test_records_and_enums_are_exactly_the_contracts() -> None:
    definitions = all_definitions()
    records = {name: d for name, d in definitions.items() if d["type"] == "record"}
    enums = {name: d for name, d in definitions.items() if d["type"] == "enum"}

    assert set(records) == set(CONTRACT_FIELDS)
    for name, spec in CONTRACT_FIELDS.items():
        fields = {field["name"]: field for field in records[name]["fields"]}
        expected = {token.rstrip("?"): token.endswith("?") for token in spec.split()}
        assert set(fields) == set(expected), name
        nullable = {n: isinstance(f["type"], list) and "null" in f["type"] for n, f in fields.items()}
        assert nullable == expected, name
    assert {name: d["symbols"] for name, d in enums.items()} == {
        name: symbols.split() for name, symbols in CONTRACT_ENUMS.items()
    }
    # Enums with an OTHER symbol read unknown future symbols as OTHER; the others have no such value.
    assert {name: d.get("default") for name, d in enums.items()} == {
        name: "OTHER" if "OTHER" in symbols.split() else None for name, symbols in CONTRACT_ENUMS.items()
    }


def test_every_record_enum_and_field_has_a_doc() -> None:
    undocumented = []
    for definition in all_definitions().values():
        if not str(definition.get("doc", "")).strip():
            undocumented.append(definition["name"])
        for field in definition.get("fields", []):
            if not str(field.get("doc", "")).strip():
                undocumented.append(f"{definition['name']}.{field['name']}")
    assert undocumented == []


def test_every_optional_field_is_null_first_with_a_null_default() -> None:
    wrong = []
    for definition in all_definitions().values():
        for field in definition.get("fields", []):
            optional = isinstance(field["type"], list) and "null" in field["type"]
            if optional and (field["type"][0] != "null" or "default" not in field or field["default"] is not None):
                wrong.append(f"{definition['name']}.{field['name']}")
    assert wrong == []


def test_contract_defaults_and_wire_types() -> None:
    fields = {f"{d['name']}.{f['name']}": f for d in all_definitions().values() for f in d.get("fields", [])}
    assert fields["ClaimSubmitted.abn_on_file"]["default"] is False
    assert fields["PrescriptionRecorded.dispense_as_written"]["default"] is False
    assert fields["ClaimLine.modifiers"]["default"] == []
    assert fields["ClaimDecision.findings"]["default"] == []
    assert fields["Finding.family"]["default"] == ""
    timestamp = {"type": "long", "logicalType": "timestamp-millis"}
    for name in ("ClaimSubmitted.event_time", "LabResultRecorded.effective_time", "ClaimDecision.decided_at"):
        assert fields[name]["type"] == timestamp, name
    assert fields["ClaimLine.date_of_service"]["type"] == {"type": "int", "logicalType": "date"}
    assert fields["ClaimLine.units"]["type"] == "double"
    assert fields["ClaimLine.charge_amount"]["type"] == ["null", "string"]
    assert fields["Finding.evidence"]["type"] == {"type": "map", "values": "string"}


def test_schemas_are_parsed_once() -> None:
    for name in SCHEMA_NAMES:
        assert load_schema(name) is load_schema(name)
        assert AvroCodec(name).schema is load_schema(name)
        assert load_schema(name)["name"] == f"billing.j7507.v1.{name}"


def test_unknown_schema_name_is_refused() -> None:
    with pytest.raises(KeyError, match="ClaimSubmited"):
        AvroCodec("ClaimSubmited")


# --- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_encoding_is_byte_for_byte_fastavros(name: str) -> None:
    # The codec prepares records for speed (tagged union branches); the bytes must not change.
    assert AvroCodec(name).encode(RECORDS[name]) == encode_with(raw_schema(name), RECORDS[name])


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_round_trip_gives_back_the_record(name: str) -> None:
    codec = AvroCodec(name)
    record = RECORDS[name]

    decoded = codec.decode(codec.encode(record))

    assert decoded == record


def test_decoded_values_have_the_contract_types() -> None:
    codec = AvroCodec("ClaimSubmitted")
    decoded = codec.decode(codec.encode(CLAIM))

    assert decoded["event_time"].utcoffset() is not None
    assert decoded["event_time"].utcoffset().total_seconds() == 0
    assert type(decoded["lines"][0]["date_of_service"]) is date
    assert type(decoded["lines"][0]["units"]) is float
    assert type(decoded["payer"]["payer_type"]) is str
    assert decoded["coverage"]["part_b_id_enrolled"] is False


def test_json_bundle_shape_encodes_like_the_native_shape() -> None:
    # The first example bundle's claim as JSON gives it: ISO dates and timestamps, integer doubles,
    # optional fields left out or null.
    bundle_claim: dict[str, Any] = {
        "event_id": "9b2f6c1e-4a57-4d0e-9a51-2f0c8e7d1a01",
        "event_time": "2026-03-02T10:00:00Z",
        "claim_id": "EX-1001",
        "claim_version": 1,
        "patient_id": "P-EX1",
        "payer": {"payer_id": "MEDICARE-DME-JC", "payer_type": "MEDICARE", "plan_id": None},
        "coverage": {
            "part_a_at_transplant": True,
            "part_b_active": True,
            "entitlement": "DISABILITY",
            "part_b_id_enrolled": False,
        },
        "transplant": {
            "organ": "LIVER",
            "transplant_date": "2025-08-20",
            "discharge_date": "2025-09-01",
            "facility": "University Hospital",
            "date_source": "ORDERING_PHYSICIAN",
        },
        "diagnosis_codes": ["Z94.4"],
        "prior_authorization": None,
        "abn_on_file": False,
        "billing_provider_npi": "1003000134",
        "ordering_provider_npi": "1003000126",
        "dispensing_pharmacy_npi": "1003000142",
        "lines": [
            {
                "line_number": 1,
                "hcpcs_code": "J7507",
                "modifiers": ["KX"],
                "units": 300,
                "charge_amount": "410.00",
                "date_of_service": "2025-12-01",
                "ndc": "00469065773",
                "ndc_quantity": 60,
                "ndc_unit": "UN",
                "days_supply": 30,
                "prescription_id": "RX-EX1",
            }
        ],
    }
    native = {
        **bundle_claim,
        "event_time": datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        "transplant": {
            **bundle_claim["transplant"],
            "transplant_date": date(2025, 8, 20),
            "discharge_date": date(2025, 9, 1),
        },
        "lines": [{**bundle_claim["lines"][0], "date_of_service": date(2025, 12, 1)}],
    }
    codec = AvroCodec("ClaimSubmitted")
    before = copy.deepcopy(bundle_claim)

    payload = codec.encode(bundle_claim)

    assert payload == codec.encode(native)
    assert bundle_claim == before, "encode must not modify the caller's record"
    decoded = codec.decode(payload)
    assert decoded["lines"][0]["date_of_service"] == date(2025, 12, 1)
    assert decoded["lines"][0]["units"] == 300.0
    assert decoded["event_time"] == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_iso_timestamps_with_an_offset_are_converted_to_the_same_instant() -> None:
    codec = AvroCodec("LabResultRecorded")
    shifted = {**LAB, "effective_time": "2025-11-20T10:30:00+01:00"}

    assert codec.decode(codec.encode(shifted))["effective_time"] == LAB["effective_time"]


def test_omitted_fields_with_defaults_get_them() -> None:
    codec = AvroCodec("PrescriptionRecorded")
    required = {k: PRESCRIPTION[k] for k in ("event_id", "event_time", "prescription_id", "patient_id")}
    minimal = {**required, "status": "STOPPED", "ingredient": "cyclosporine"}
    minimal |= {"formulation": "OTHER", "route": "ORAL", "start_date": "2025-01-01"}

    decoded = codec.decode(codec.encode(minimal))

    assert decoded["dispense_as_written"] is False
    assert decoded["end_date"] is None
    assert decoded["start_date"] == date(2025, 1, 1)


# --- encode errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"claim_version": "2"}, "claim_version"),
        ({"patient_id": 4711}, "patient_id"),
        ({"payer": {"payer_id": "MEDICARE-DME-JC", "payer_type": "SELF-PAY-P-EX1"}}, "payer_type"),
        ({"lines": [{**J7507_LINE, "ndc_unit": "PILLS-P-EX1"}]}, "ndc_unit"),
        ({"lines": [{**J7507_LINE, "date_of_service": "12/01/2025"}]}, "date_of_service"),
        ({"event_time": "2026-03-02T10:00:00"}, "event_time"),  # no offset: local time would shift
        ({"event_time": datetime(2026, 3, 2, 10, 0)}, "event_time"),
        # fastavro's writer alone would write all of these without complaint:
        ({"lines": [{**J7507_LINE, "days_supply": 2**40}]}, "lines.days_supply"),
        ({"lines": [{**J7507_LINE, "units": "300"}]}, "lines.units"),
        ({"lines": [{**J7507_LINE, "units": float("nan")}]}, "lines.units"),
        ({"abn_on_file": "false"}, "abn_on_file"),
        ({"claim_version": True}, "claim_version"),
        ({"transplant": "LIVER"}, "transplant"),
        ({"diagnosis_codes": "Z94.4"}, "diagnosis_codes"),
    ],
)
def test_encode_errors_name_the_field_never_the_value(change: dict[str, Any], field: str) -> None:
    codec = AvroCodec("ClaimSubmitted")

    with pytest.raises(EncodeError) as raised:
        codec.encode({**CLAIM, **change})

    message = str(raised.value)
    assert field in message
    assert "P-EX1" not in message
    assert "4711" not in message
    # A traceback in a log must not show a chained original error either: those quote the value.
    error = raised.value
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"outcome": "SKIPPED"}, "ClaimDecision.outcome: not a symbol of DecisionOutcome"),
        ({"lines": [{**DECISION["lines"][0], "findings": [{**FINDING, "evidence": {"units": 300}}]}]}, "evidence"),
        ({"source": {"topic": "ehr.claims.v1", "partition": 3}}, "source.offset: required field missing"),
    ],
)
def test_decision_encode_errors(change: dict[str, Any], message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        AvroCodec("ClaimDecision").encode({**DECISION, **change})


ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=5),
    st.dates(),
    st.datetimes(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=200, deadline=None)
@given(
    field=st.sampled_from(sorted(CLAIM)),
    line_field=st.sampled_from(sorted(J7507_LINE)),
    value=ANY_VALUE,
    line_value=ANY_VALUE,
)
def test_any_wrong_value_raises_nothing_but_encode_error(
    field: str, line_field: str, value: Any, line_value: Any
) -> None:
    record = {**CLAIM, field: value, "lines": [{**J7507_LINE, line_field: line_value}]}
    try:
        payload = AvroCodec("ClaimSubmitted").encode(record)
    except EncodeError:
        return
    assert AvroCodec("ClaimSubmitted").decode(payload)["claim_id"] == record["claim_id"]


def test_missing_required_field_is_an_encode_error() -> None:
    codec = AvroCodec("LabResultRecorded")
    record = {k: v for k, v in LAB.items() if k != "loinc_code"}

    with pytest.raises(EncodeError, match="loinc_code"):
        codec.encode(record)


# --- schema evolution -----------------------------------------------------------------------------

# Dropping ClaimDecision.findings would also drop the definition of Finding that DecisionLine uses:
# no older version of the schema can have looked like that.
DEFINES_A_SHARED_TYPE = {("ClaimDecision", "ClaimDecision", "findings")}


def defaulted_fields() -> Iterator[tuple[str, str, str]]:
    for name in SCHEMA_NAMES:
        for definition in named_definitions(raw_schema(name)):
            for field in definition.get("fields", []):
                case = (name, definition["name"], field["name"])
                if "default" in field and case not in DEFINES_A_SHARED_TYPE:
                    yield case


def without_field(name: str, record_name: str, field_name: str) -> dict[str, Any]:
    schema = raw_schema(name)
    for definition in named_definitions(schema):
        if definition["name"] == record_name:
            definition["fields"] = [f for f in definition["fields"] if f["name"] != field_name]
    return schema


def with_default(value: Any, field_names: set[str], field_name: str, default: Any) -> Any:
    """``value`` with ``field_name`` set to ``default`` in every record having exactly ``field_names``."""
    if isinstance(value, list):
        return [with_default(item, field_names, field_name, default) for item in value]
    if isinstance(value, dict):
        updated = {k: with_default(v, field_names, field_name, default) for k, v in value.items()}
        if set(value) == field_names:
            updated[field_name] = default
        return updated
    return value


@pytest.mark.parametrize(("name", "record_name", "field_name"), list(defaulted_fields()))
def test_older_writer_without_a_defaulted_field_decodes_with_its_default(
    name: str, record_name: str, field_name: str
) -> None:
    codec = AvroCodec(name)
    definition = all_definitions()[record_name]
    default = next(f["default"] for f in definition["fields"] if f["name"] == field_name)
    older = without_field(name, record_name, field_name)
    record = RECORDS[name]

    decoded = codec.decode(encode_with(older, record), writer_schema=older)

    field_names = {f["name"] for f in definition["fields"]}
    expected = with_default(record, field_names, field_name, default)
    assert decoded == expected
    assert decoded != record, "the test record must not already hold the default"


def test_every_schema_has_an_older_version_in_the_evolution_cases() -> None:
    assert {name for name, _, _ in defaulted_fields()} == set(SCHEMA_NAMES)


def test_newer_writer_with_an_unknown_enum_symbol_and_field_decodes() -> None:
    # A producer that already knows a newer organ and an added field; this worker does not.
    newer = raw_schema("ClaimSubmitted")
    organ = next(d for d in named_definitions(newer) if d["name"] == "Organ")
    organ["symbols"] = [*organ["symbols"], "UTERUS"]
    newer["fields"].append({"name": "place_of_service", "type": ["null", "string"], "default": None})
    record = {**CLAIM, "transplant": {**CLAIM["transplant"], "organ": "UTERUS"}, "place_of_service": "12"}

    decoded = AvroCodec("ClaimSubmitted").decode(encode_with(newer, record), writer_schema=newer)

    assert decoded["transplant"]["organ"] == "OTHER"
    assert "place_of_service" not in decoded
    assert decoded["lines"] == CLAIM["lines"]


def test_writer_schema_equal_to_ours_decodes_and_parsed_schemas_are_accepted() -> None:
    codec = AvroCodec("LabResultRecorded")
    payload = codec.encode(LAB)

    assert codec.decode(payload, writer_schema=raw_schema("LabResultRecorded")) == LAB
    assert codec.decode(payload, writer_schema=load_schema("LabResultRecorded")) == LAB


def test_an_unrelated_or_invalid_writer_schema_is_a_decode_error() -> None:
    codec = AvroCodec("ClaimSubmitted")
    payload = AvroCodec("PrescriptionRecorded").encode(PRESCRIPTION)

    with pytest.raises(DecodeError, match="ClaimSubmitted"):
        codec.decode(payload, writer_schema=raw_schema("PrescriptionRecorded"))
    with pytest.raises(DecodeError, match="writer schema"):
        codec.decode(payload, writer_schema={"type": "record", "name": "X", "fields": [{"name": "a"}]})


# --- poison ---------------------------------------------------------------------------------------


def claim_payload() -> bytes:
    return AvroCodec("ClaimSubmitted").encode(CLAIM)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (random.Random(7507).randbytes(200), "^ClaimSubmitted: "),
        (claim_payload()[:-1], "ends inside the record"),
        (claim_payload()[: len(claim_payload()) // 2], "ends inside the record"),
        (claim_payload() + b"\x00", "trailing"),
        (AvroCodec("PrescriptionRecorded").encode(PRESCRIPTION), "^ClaimSubmitted: "),
        (AvroCodec("LabResultRecorded").encode(LAB), "^ClaimSubmitted: "),
        (b"\x00\x00\x00\x00\x2a" + claim_payload(), "^ClaimSubmitted: "),  # schema-registry framing on a plain consumer
    ],
    ids=["empty", "random", "truncated-by-one", "truncated-half", "trailing-byte", "prescription", "lab", "framed"],
)
def test_undecodable_claims_raise_decode_error_without_values(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason) as raised:
        AvroCodec("ClaimSubmitted").decode(payload)

    assert "P-EX1" not in str(raised.value)
    assert "RX-EX1" not in str(raised.value)


def test_int_outside_32_bits_is_a_decode_error() -> None:
    # int and long share one varint encoding, so a long-sized value fits the bytes of an int field.
    wide = raw_schema("ClaimDecision")
    for field in wide["fields"]:
        if field["name"] == "claim_version":
            field["type"] = "long"
    payload = encode_with(wide, {**DECISION, "claim_version": 2**40})

    with pytest.raises(DecodeError, match=r"ClaimDecision\.claim_version: int out of 32-bit range"):
        AvroCodec("ClaimDecision").decode(payload)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_double_is_a_decode_error(value: float) -> None:
    payload = encode_with(raw_schema("ClaimSubmitted"), {**CLAIM, "lines": [{**J7507_LINE, "units": value}]})

    with pytest.raises(DecodeError, match=r"lines\.units: not a finite number"):
        AvroCodec("ClaimSubmitted").decode(payload)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
@settings(max_examples=150, deadline=None)
@given(payload=st.binary(max_size=400))
def test_random_bytes_raise_nothing_but_decode_error(name: str, payload: bytes) -> None:
    try:
        decoded = AvroCodec(name).decode(payload)
    except DecodeError:
        return
    assert isinstance(decoded, dict)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_damaged_valid_payloads_raise_nothing_but_decode_error(name: str, data: st.DataObject) -> None:
    # Random bytes mostly fail on the first field; damaging a real payload reaches every reader.
    payload = bytearray(AvroCodec(name).encode(RECORDS[name]))
    position = data.draw(st.integers(0, len(payload) - 1))
    action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    if action == "flip":
        payload[position] ^= data.draw(st.integers(1, 255))
    elif action == "cut":
        del payload[position:]
    else:
        payload[position:position] = data.draw(st.binary(min_size=1, max_size=8))
    try:
        decoded = AvroCodec(name).decode(bytes(payload))
    except DecodeError:
        return
    assert isinstance(decoded, dict)


def _one_byte_apart(name: str, field_path: list[str], first: Any, last: Any) -> tuple[bytes, int]:
    """The record with `field_path` set to `last`, and the one position where it differs from `first`."""
    codec = AvroCodec(name)

    def with_value(value: Any) -> bytes:
        record = copy.deepcopy(RECORDS[name])
        node = record
        for part in field_path[:-1]:
            node = node[part]
        node[field_path[-1]] = value
        return codec.encode(record)

    a, b = with_value(first), with_value(last)
    assert len(a) == len(b)
    [position] = [i for i in range(len(a)) if a[i] != b[i]]
    return b, position


def test_a_negative_enum_index_is_a_decode_error_not_the_last_symbol() -> None:
    # payer_type OTHER is index 3 (zigzag byte 6); index -1 (byte 1) would read as OTHER too.
    payload, position = _one_byte_apart("ClaimSubmitted", ["payer", "payer_type"], "MEDICARE", "OTHER")
    assert payload[position] == 6
    corrupted = payload[:position] + b"\x01" + payload[position + 1 :]
    assert fastavro.schemaless_reader(io.BytesIO(corrupted), load_schema("ClaimSubmitted"), None)  # fastavro takes it

    with pytest.raises(DecodeError, match="negative") as caught:
        AvroCodec("ClaimSubmitted").decode(corrupted)
    assert PATIENT_ID not in str(caught.value)


def test_a_negative_union_index_is_a_decode_error() -> None:
    # payer.plan_id is ["null", "string"]: branch 1 (zigzag 2) is the string; -1 (zigzag 1) too for fastavro.
    record = copy.deepcopy(CLAIM)
    record["payer"] = {**record["payer"], "plan_id": "PLAN-1"}
    payload = AvroCodec("ClaimSubmitted").encode(record)
    assert payload.count(b"\x02\x0cPLAN-1") == 1
    corrupted = payload.replace(b"\x02\x0cPLAN-1", b"\x01\x0cPLAN-1")
    assert fastavro.schemaless_reader(io.BytesIO(corrupted), load_schema("ClaimSubmitted"), None)

    with pytest.raises(DecodeError, match="negative"):
        AvroCodec("ClaimSubmitted").decode(corrupted)


def test_no_record_of_any_schema_declares_a_field_twice() -> None:
    # fastavro accepts a record with two fields of one name (and writes both): a slip it never reports.
    for name in SCHEMA_NAMES:
        for definition in named_definitions(raw_schema(name)):
            names = [field["name"] for field in definition.get("fields", [])]
            assert len(names) == len(set(names)), (name, definition["name"])
