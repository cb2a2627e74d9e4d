"""The Confluent Schema Registry wire format against a loopback stand-in of the registry: framing,
caching, writer/reader resolution, which failures are bad data (DecodeError) and which are a
registry in trouble (RegistryError, never dead-lettered), credentials, and byte-level interop with
Confluent's own serializers."""

from __future__ import annotations

import base64
import copy
import io
import json
import struct
from collections.abc import Iterator
from typing import Any

import fastavro
import pytest
from registry_standin import RegistryStandIn
from samples import CLAIM, DECISION, LAB, PATIENT_ID, PRESCRIPTION, RECORDS
from structlog.testing import capture_logs

from worker.codec.avro import SCHEMA_NAMES, schema_json
from worker.codec.registry import (
    CONTENT_TYPE,
    UNKNOWN_ID_TTL_S,
    RegistryError,
    RegistryUnavailable,
    RegistryWire,
    registered_text,
)
from worker.errors import ConfigError, DecodeError, EncodeError

USER, PASSWORD = "svc-j7507", "s3cret-Pa55word"
TOPIC = "ehr.test.v1"


@pytest.fixture
def standin() -> Iterator[RegistryStandIn]:
    with RegistryStandIn() as registry:
        yield registry


@pytest.fixture
def wire(standin: RegistryStandIn) -> RegistryWire:
    return RegistryWire(standin.url)


def frame(schema_id: int, body: bytes) -> bytes:
    return b"\x00" + struct.pack(">i", schema_id) + body


def avro_body(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    """Avro binary as another producer would write it with ``schema`` (plain fastavro)."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


def without_field(schema_name: str, field: str) -> dict[str, Any]:
    """The project's schema as an older version had it: ``field`` not there yet."""
    schema: dict[str, Any] = json.loads(schema_json(schema_name))
    schema["fields"] = [entry for entry in schema["fields"] if entry["name"] != field]
    assert len(schema["fields"]) == len(json.loads(schema_json(schema_name))["fields"]) - 1
    return schema


def closed_url() -> str:
    """The URL of a registry that is not there any more (nothing listens on the port)."""
    with RegistryStandIn() as gone:
        return gone.url


# --- framing and round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("schema_name", SCHEMA_NAMES)
def test_round_trip_with_confluent_framing(standin: RegistryStandIn, wire: RegistryWire, schema_name: str) -> None:
    record = RECORDS[schema_name]

    payload = wire.encode(schema_name, record, TOPIC)

    schema_id = standin.subjects()[f"{TOPIC}-value"][0]
    assert payload[0] == 0
    assert int.from_bytes(payload[1:5], "big") == schema_id
    assert json.loads(standin.schema_text(schema_id) or "") == json.loads(schema_json(schema_name))
    assert wire.decode(schema_name, payload) == record
    # A reader with its own (empty) caches reads it too: the id alone carries the schema.
    assert RegistryWire(standin.url).decode(schema_name, payload) == record


def test_the_registered_text_keeps_docs_and_defaults() -> None:
    # Parsing Canonical Form would drop them, and the registry checks compatibility with this text.
    registered = json.loads(registered_text("PrescriptionRecorded"))
    fields = {field["name"]: field for field in registered["fields"]}

    assert registered == json.loads(schema_json("PrescriptionRecorded"))
    assert fields["dispense_as_written"]["default"] is False
    assert registered["doc"]


def test_a_schema_is_registered_once_per_subject(standin: RegistryStandIn, wire: RegistryWire) -> None:
    first = wire.encode("LabResultRecorded", LAB, TOPIC)
    second = wire.encode("LabResultRecorded", {**LAB, "value": 7.5}, TOPIC)
    other_topic = wire.encode("LabResultRecorded", LAB, "ehr.other.v1")

    posts = [seen for seen in standin.requests if seen.method == "POST"]
    assert [seen.path for seen in posts] == [
        f"/subjects/{TOPIC}-value/versions",
        "/subjects/ehr.other.v1-value/versions",
    ]
    assert all(seen.headers["content-type"] == CONTENT_TYPE for seen in posts)
    assert posts[0].body == {"schema": registered_text("LabResultRecorded"), "schemaType": "AVRO"}
    # Registry ids are global: the same schema under another subject has the same id.
    assert first[:5] == second[:5] == other_topic[:5]


def test_a_record_that_does_not_fit_registers_nothing(standin: RegistryStandIn, wire: RegistryWire) -> None:
    with pytest.raises(EncodeError):
        wire.encode("LabResultRecorded", {**LAB, "value": "high"}, TOPIC)

    assert standin.requests == []


def test_a_writer_schema_is_fetched_once_per_id(standin: RegistryStandIn) -> None:
    producer = RegistryWire(standin.url)
    payloads = [producer.encode("LabResultRecorded", {**LAB, "value": float(n)}, TOPIC) for n in range(5)]
    schema_id = int.from_bytes(payloads[0][1:5], "big")
    consumer = RegistryWire(standin.url)

    decoded = [consumer.decode("LabResultRecorded", payload)["value"] for payload in payloads]

    assert decoded == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert standin.count("GET", f"/schemas/ids/{schema_id}") == 1
    assert len(standin.requests) == 2  # the producer's registration and the consumer's one fetch


def test_the_plain_body_is_offered_only_for_a_known_writer_schema_equal_to_ours(standin: RegistryStandIn) -> None:
    producer = RegistryWire(standin.url)
    ours = producer.encode("LabResultRecorded", LAB, TOPIC)
    older = avro_body(without_field("LabResultRecorded", "unit"), {k: v for k, v in LAB.items() if k != "unit"})
    older_id = standin.register("ehr.older.v1-value", json.dumps(without_field("LabResultRecorded", "unit")))
    consumer = RegistryWire(standin.url)

    # An id not fetched yet: the checked read fetches it first.
    assert consumer.plain_body("LabResultRecorded", ours) is None
    consumer.decode("LabResultRecorded", ours)
    assert consumer.plain_body("LabResultRecorded", ours) == ours[5:]
    # Another writer schema needs resolution: never the plain body.
    consumer.decode("LabResultRecorded", frame(older_id, older))
    assert consumer.plain_body("LabResultRecorded", frame(older_id, older)) is None
    assert consumer.plain_body("LabResultRecorded", b"\x01" + ours[1:]) is None  # no magic byte
    assert consumer.plain_body("LabResultRecorded", ours[:3]) is None


# --- schema evolution -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema_name", "new_field", "default"),
    [("LabResultRecorded", "display", None), ("PrescriptionRecorded", "dispense_as_written", False)],
)
def test_a_record_written_with_an_older_schema_gets_the_new_fields_default(
    standin: RegistryStandIn, wire: RegistryWire, schema_name: str, new_field: str, default: Any
) -> None:
    current_id = standin.register(f"{TOPIC}-value", registered_text(schema_name))
    older = without_field(schema_name, new_field)
    older_id = standin.register(f"{TOPIC}-value", json.dumps(older))
    record = RECORDS[schema_name]
    assert older_id != current_id
    assert record[new_field] != default

    decoded = wire.decode(schema_name, frame(older_id, avro_body(older, record)))

    assert decoded == {**record, new_field: default}


def test_a_writer_schema_of_another_record_type_is_a_decode_error(standin: RegistryStandIn, wire: RegistryWire) -> None:
    payload = wire.encode("PrescriptionRecorded", PRESCRIPTION, TOPIC)
    schema_id = int.from_bytes(payload[1:5], "big")

    with pytest.raises(DecodeError, match=rf"cannot be resolved.*schema id {schema_id}\b") as caught:
        wire.decode("LabResultRecorded", payload)

    assert PATIENT_ID not in str(caught.value)


# --- bad data: DecodeError --------------------------------------------------------------------------


def test_a_payload_without_the_magic_byte_is_a_decode_error(standin: RegistryStandIn, wire: RegistryWire) -> None:
    plain = avro_body(json.loads(schema_json("LabResultRecorded")), LAB)

    with pytest.raises(DecodeError, match="magic byte") as caught:
        wire.decode("LabResultRecorded", b"\x01" + plain[1:])

    assert PATIENT_ID not in str(caught.value)
    assert standin.requests == []  # nothing to ask the registry about


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\x00\x00\x00\x01"])
def test_a_payload_shorter_than_the_header_is_a_decode_error(wire: RegistryWire, payload: bytes) -> None:
    with pytest.raises(DecodeError, match="too short"):
        wire.decode("ClaimSubmitted", payload)


def test_an_unknown_schema_id_is_remembered_for_a_while_then_asked_again(standin: RegistryStandIn) -> None:
    now = [1000.0]
    wire = RegistryWire(standin.url, clock=lambda: now[0])
    payload = frame(4242, avro_body(json.loads(schema_json("LabResultRecorded")), LAB))

    for _ in range(50):  # a flood of records with an unknown id: one request
        with pytest.raises(DecodeError, match=r"schema id 4242 is unknown") as caught:
            wire.decode("LabResultRecorded", payload)
        assert PATIENT_ID not in str(caught.value)
    assert standin.count("GET", "/schemas/ids/4242") == 1

    # Not remembered for ever: a registry replica that lags behind may know the id a moment later.
    now[0] += UNKNOWN_ID_TTL_S + 1
    with pytest.raises(DecodeError, match=r"schema id 4242 is unknown"):
        wire.decode("LabResultRecorded", payload)
    assert standin.count("GET", "/schemas/ids/4242") == 2


@pytest.mark.parametrize("cut", [1, 10, 40])
def test_a_truncated_body_is_a_decode_error_naming_the_schema_id(
    standin: RegistryStandIn, wire: RegistryWire, cut: int
) -> None:
    payload = wire.encode("ClaimSubmitted", CLAIM, TOPIC)
    schema_id = int.from_bytes(payload[1:5], "big")

    with pytest.raises(DecodeError, match=rf"schema id {schema_id}\b") as caught:
        wire.decode("ClaimSubmitted", payload[:-cut])

    assert PATIENT_ID not in str(caught.value)


def test_trailing_bytes_are_a_decode_error(wire: RegistryWire) -> None:
    payload = wire.encode("LabResultRecorded", LAB, TOPIC)

    with pytest.raises(DecodeError, match="trailing bytes"):
        wire.decode("LabResultRecorded", payload + b"\x00")


# --- registry trouble: RegistryError, never DecodeError ----------------------------------------------


def test_a_registry_that_is_down_is_unavailable_not_bad_data() -> None:
    wire = RegistryWire(closed_url(), timeout=2.0)
    payload = frame(1, avro_body(json.loads(schema_json("LabResultRecorded")), LAB))

    with pytest.raises(RegistryUnavailable, match="unreachable") as decoding:
        wire.decode("LabResultRecorded", payload)
    with pytest.raises(RegistryUnavailable, match="unreachable"):
        wire.encode("ClaimDecision", DECISION, TOPIC)

    assert not isinstance(decoding.value, DecodeError)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_failing_registry_is_unavailable(standin: RegistryStandIn, wire: RegistryWire, status: int) -> None:
    payload = wire.encode("LabResultRecorded", LAB, TOPIC)
    standin.fail_with = status

    with pytest.raises(RegistryUnavailable, match=f"HTTP {status}"):
        RegistryWire(standin.url).decode("LabResultRecorded", payload)
    with pytest.raises(RegistryUnavailable, match=f"HTTP {status}"):
        RegistryWire(standin.url).encode("LabResultRecorded", LAB, TOPIC)


def test_cached_ids_keep_working_while_the_registry_is_down(standin: RegistryStandIn, wire: RegistryWire) -> None:
    payload = wire.encode("LabResultRecorded", LAB, TOPIC)
    wire.decode("LabResultRecorded", payload)
    standin.fail_with = 503

    assert wire.decode("LabResultRecorded", wire.encode("LabResultRecorded", LAB, TOPIC)) == LAB


def test_a_wrong_url_path_is_a_registry_error_not_an_unknown_id(standin: RegistryStandIn) -> None:
    # Every lookup 404s under a wrong path prefix: dead-lettering all records would be a disaster.
    wire = RegistryWire(f"{standin.url}/not-the-registry")
    payload = frame(1, avro_body(json.loads(schema_json("LabResultRecorded")), LAB))

    with pytest.raises(RegistryError, match="HTTP 404") as caught:
        wire.decode("LabResultRecorded", payload)

    assert not isinstance(caught.value, DecodeError | RegistryUnavailable)


def test_a_schema_the_registry_refuses_is_a_registry_error(standin: RegistryStandIn, wire: RegistryWire) -> None:
    standin.fail_with = 409

    with pytest.raises(RegistryError, match=rf"subject '{TOPIC}-value'.*HTTP 409, error code 40901") as caught:
        wire.encode("ClaimDecision", DECISION, TOPIC)

    assert not isinstance(caught.value, RegistryUnavailable)


# --- credentials ----------------------------------------------------------------------------------


def test_basic_auth_is_sent() -> None:
    with RegistryStandIn(credentials=(USER, PASSWORD)) as standin:
        wire = RegistryWire(standin.url, username=USER, password=PASSWORD)

        payload = wire.encode("LabResultRecorded", LAB, TOPIC)
        assert RegistryWire(standin.url, username=USER, password=PASSWORD).decode("LabResultRecorded", payload) == LAB

    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert [seen.headers.get("authorization") for seen in standin.requests] == [expected, expected]


def test_the_password_appears_in_no_error_log_or_repr() -> None:
    errors: list[BaseException] = []
    with capture_logs() as logs, RegistryStandIn(credentials=(USER, PASSWORD)) as standin:
        good = RegistryWire(standin.url, username=USER, password=PASSWORD)
        payload = good.encode("LabResultRecorded", LAB, TOPIC)
        good.decode("LabResultRecorded", payload)
        wrong = RegistryWire(standin.url, username=USER, password=PASSWORD + "-old")
        for attempt in (
            lambda: wrong.encode("LabResultRecorded", LAB, TOPIC),
            lambda: wrong.decode("LabResultRecorded", payload),
            lambda: good.decode("LabResultRecorded", frame(99, payload[5:])),
            lambda: RegistryWire(closed_url(), username=USER, password=PASSWORD).decode("LabResultRecorded", payload),
            lambda: RegistryWire(f"http://{USER}:{PASSWORD}@127.0.0.1:1"),
            lambda: RegistryWire(standin.url, username=USER),
        ):
            with pytest.raises(Exception) as caught:  # noqa: PT011 - any error: its text is what is checked
                attempt()
            errors.append(caught.value)

    assert [type(error) for error in errors] == [
        RegistryError,
        RegistryError,
        DecodeError,
        RegistryUnavailable,
        ConfigError,
        ConfigError,
    ]
    assert "credentials" in str(errors[0])
    texts = [str(error) for error in errors] + [repr(error) for error in errors] + [repr(good), repr(logs)]
    assert [text for text in texts if PASSWORD in text or PATIENT_ID in text] == []
    assert logs, "registrations and fetches are logged, so the check above looked at something"


# --- interop with Confluent's serializers ---------------------------------------------------------


@pytest.mark.parametrize("schema_name", SCHEMA_NAMES)
def test_interop_with_confluent_serializers(standin: RegistryStandIn, schema_name: str) -> None:
    avro = pytest.importorskip(
        "confluent_kafka.schema_registry.avro",
        reason="needs confluent-kafka with its schema registry extras (confluent-kafka[avro])",
    )
    registry_client = pytest.importorskip("confluent_kafka.schema_registry").SchemaRegistryClient
    serialization = pytest.importorskip("confluent_kafka.serialization")
    context = serialization.SerializationContext(TOPIC, serialization.MessageField.VALUE)
    record = RECORDS[schema_name]
    serializer = avro.AvroSerializer(registry_client({"url": standin.url}), schema_json(schema_name))
    deserializer = avro.AvroDeserializer(registry_client({"url": standin.url}))
    wire = RegistryWire(standin.url)

    theirs = serializer(copy.deepcopy(record), context)
    ours = wire.encode(schema_name, record, TOPIC)

    assert ours == theirs  # same schema, same id, same Avro body
    assert wire.decode(schema_name, theirs) == record
    assert deserializer(ours, context) == record
    assert standin.subjects() == {f"{TOPIC}-value": [int.from_bytes(ours[1:5], "big")]}
