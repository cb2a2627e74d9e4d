"""Guarded outputs (worker/stream/outputs.py) with a fake producer that behaves like kafka-python's."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka import errors as kafka_errors
from prometheus_client import CollectorRegistry

from worker.observability import Metrics
from worker.stream.dlq import (
    HEADER_ERROR_MESSAGE,
    HEADER_ORIGINAL_EMPTY,
    HEADER_ORIGINAL_HEADERS_DROPPED,
    HEADER_ORIGINAL_KEY_SHA256,
    HEADER_ORIGINAL_KEY_SIZE,
    HEADER_ORIGINAL_SHA256,
    HEADER_ORIGINAL_SIZE,
    HEADER_REASON,
    HEADER_SOURCE_OFFSET,
)
from worker.stream.intake import Rejected
from worker.stream.outputs import FRAMING_BYTES, DeliveryError, Origin, Outputs, record_size

LIMIT = 10_000  # the fake producer's max_request_size


@dataclass
class FakeFuture:
    error: BaseException | None = None
    done: bool = True

    @property
    def is_done(self) -> bool:
        return self.done

    @property
    def exception(self) -> BaseException | None:
        return self.error

    def failed(self) -> bool:
        return self.error is not None


@dataclass
class FakeProducer:
    """Checks what kafka-python checks in send(); `broker_limit` is the topic's max.message.bytes."""

    config: dict[str, Any] = field(default_factory=lambda: {"max_request_size": LIMIT})
    broker_limit: int | None = None
    refuse_all: BaseException | None = None
    unacknowledged: bool = False
    sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, headers: Any = None) -> FakeFuture:
        if key is None and value is None:
            raise ValueError("Need at least one: key or value")
        if not all(isinstance(name, str) and isinstance(data, bytes) for name, data in headers or []):
            raise TypeError("All headers items must be (str, bytes) tuples")
        size = record_size(key, value, headers or []) + 70
        if size > self.config["max_request_size"]:
            raise kafka_errors.MessageSizeTooLargeError(f"The message is {size} bytes")
        self.sent.append((topic, key, value, list(headers or [])))
        if self.refuse_all is not None:
            return FakeFuture(self.refuse_all)
        if self.unacknowledged:
            return FakeFuture(done=False)
        if self.broker_limit is not None and size > self.broker_limit:
            return FakeFuture(kafka_errors.MessageSizeTooLargeError())
        return FakeFuture()

    def flush(self, timeout: float | None = None) -> None:
        pass


def outputs(producer: FakeProducer) -> tuple[Outputs[str], Metrics]:
    metrics = Metrics(CollectorRegistry())
    return (
        Outputs(producer, decisions_topic="decisions", dead_letter_topic="dlq", worker_version="9.9", metrics=metrics),
        metrics,
    )


def dead_letters(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value("j7507_dead_letters_total", {"reason": reason})
    return value or 0.0


def origin(key: bytes | None = b"P-1", value: bytes | None = b"claim", headers: Any = ()) -> Origin:
    return Origin("claims", 3, 41, key, value, tuple(headers))


def header(headers: list[tuple[str, bytes]], name: str) -> bytes | None:
    return next((data for key, data in headers if key == name), None)


def decode_error() -> Rejected:
    return Rejected("decode", ValueError("bad"), "ClaimSubmitted: payload ends inside the record")


def test_a_decision_that_fits_is_sent_and_its_ticket_returned_once_acknowledged() -> None:
    producer = FakeProducer()
    out, metrics = outputs(producer)

    out.decision(origin(), b"decision", [("outcome", b"ACCEPT")], "ticket-1")

    assert out.complete(1.0) == ["ticket-1"]
    assert [(topic, key, value) for topic, key, value, _ in producer.sent] == [("decisions", b"P-1", b"decision")]
    assert len(out) == 0
    assert dead_letters(metrics, "other") == 0


def test_a_decision_over_the_output_limit_becomes_an_other_dead_letter_naming_the_limit() -> None:
    producer = FakeProducer()
    out, metrics = outputs(producer)

    out.decision(origin(), b"x" * LIMIT, [], "ticket-1")

    assert out.complete(1.0) == []
    [(topic, key, value, headers)] = producer.sent
    assert (topic, key, value) == ("dlq", b"P-1", b"claim")  # the claim's own bytes
    assert header(headers, HEADER_REASON) == b"other"
    message = (header(headers, HEADER_ERROR_MESSAGE) or b"").decode()
    assert f"output limit of {LIMIT - FRAMING_BYTES} bytes" in message and "max_request_size" in message
    assert dead_letters(metrics, "other") == 1


def test_a_decision_the_broker_refuses_as_too_large_is_dead_lettered_at_completion() -> None:
    producer = FakeProducer(broker_limit=500)
    out, metrics = outputs(producer)

    out.decision(origin(), b"d" * 1000, [], "ticket-1")

    assert out.complete(1.0) == []
    assert [topic for topic, *_ in producer.sent] == ["decisions", "dlq"]
    assert header(producer.sent[1][3], HEADER_REASON) == b"other"
    assert dead_letters(metrics, "other") == 1


def test_null_header_values_are_sent_as_empty() -> None:
    producer = FakeProducer()
    out, _ = outputs(producer)

    out.dead_letter(origin(headers=[("trace", None), ("kind", b"x")]), decode_error())
    out.complete(1.0)

    [(_, _, _, headers)] = producer.sent
    assert ("trace", b"") in headers and ("kind", b"x") in headers


def test_a_record_without_key_and_value_gets_an_empty_value_and_a_header_saying_so() -> None:
    producer = FakeProducer()
    out, _ = outputs(producer)

    out.dead_letter(origin(key=None, value=None), Rejected("decode", ValueError(), "record has no value"))
    out.complete(1.0)

    [(_, key, value, headers)] = producer.sent
    assert (key, value) == (None, b"")
    assert header(headers, HEADER_ORIGINAL_EMPTY) == b"true"


@pytest.mark.parametrize("size", [LIMIT - 100, LIMIT, 3 * LIMIT])
def test_an_original_over_the_limit_is_truncated_with_its_size_and_digest(size: int) -> None:
    producer = FakeProducer()
    out, metrics = outputs(producer)
    original = bytes(range(256)) * (size // 256 + 1)
    original = original[:size]

    out.dead_letter(origin(value=original), decode_error())
    out.complete(1.0)

    [(_, key, value, headers)] = producer.sent
    assert key == b"P-1"
    assert value is not None and original.startswith(value) and len(value) < len(original)
    assert header(headers, HEADER_ORIGINAL_SIZE) == str(size).encode()
    assert header(headers, HEADER_ORIGINAL_SHA256) == hashlib.sha256(original).hexdigest().encode()
    assert header(headers, HEADER_SOURCE_OFFSET) == b"41"
    assert dead_letters(metrics, "decode") == 1  # counted once, whatever form it took


def test_a_huge_key_is_truncated_with_its_own_size_and_digest() -> None:
    producer = FakeProducer()
    out, _ = outputs(producer)
    key = b"k" * (2 * LIMIT)

    out.dead_letter(origin(key=key, value=b"v"), decode_error())
    out.complete(1.0)

    [(_, sent_key, value, headers)] = producer.sent
    assert sent_key is not None and len(sent_key) < LIMIT and key.startswith(sent_key)
    assert header(headers, HEADER_ORIGINAL_KEY_SIZE) == str(len(key)).encode()
    assert header(headers, HEADER_ORIGINAL_KEY_SHA256) == hashlib.sha256(key).hexdigest().encode()
    assert value == b"v"


def test_producer_headers_that_do_not_fit_are_dropped_and_counted() -> None:
    producer = FakeProducer()
    out, _ = outputs(producer)
    many = [(f"h{i}", b"z" * 100) for i in range(200)]

    out.dead_letter(origin(headers=many), decode_error())
    out.complete(1.0)

    [(_, _, _, headers)] = producer.sent
    assert header(headers, HEADER_ORIGINAL_HEADERS_DROPPED) == b"200"
    assert header(headers, "h0") is None
    assert header(headers, HEADER_REASON) == b"decode"


def test_a_dead_letter_the_broker_refuses_is_sent_smaller_until_one_is_taken() -> None:
    producer = FakeProducer(broker_limit=800)
    out, _ = outputs(producer)

    out.dead_letter(origin(value=b"v" * 5000), decode_error())
    out.complete(1.0)

    # as is (refused), truncated to the producer's limit (refused), marker without original bytes.
    assert len(producer.sent) == 3
    _, key, value, headers = producer.sent[-1]
    assert (key, value) == (None, b"")
    assert header(headers, HEADER_SOURCE_OFFSET) == b"41" and header(headers, HEADER_REASON) == b"decode"


def test_a_broker_refusing_everything_stops_the_batch() -> None:
    producer = FakeProducer(refuse_all=kafka_errors.TopicAuthorizationFailedError())
    out, _ = outputs(producer)
    out.decision(origin(), b"d", [], "t")

    with pytest.raises(DeliveryError, match="not acknowledged"):
        out.complete(1.0)


def test_an_unacknowledged_output_stops_the_batch() -> None:
    producer = FakeProducer(unacknowledged=True)
    out, _ = outputs(producer)
    out.dead_letter(origin(), decode_error())

    with pytest.raises(DeliveryError, match="within 1s"):
        out.complete(1.0)


def test_tickets_come_back_in_sending_order_with_dead_letters_in_between() -> None:
    producer = FakeProducer()
    out, _ = outputs(producer)
    out.decision(origin(), b"a", [], "first")
    out.dead_letter(origin(), decode_error())
    out.decision(origin(), b"x" * LIMIT, [], "too-large")
    out.decision(origin(), b"b", [], "second")

    assert out.complete(1.0) == ["first", "second"]
