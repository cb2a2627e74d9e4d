"""Poison pills on the real broker: no record may stop a partition.

One worker process reads a claims partition on which every kind of record a buggy or hostile
upstream can produce is followed by a good claim of the same patient. For each: the worker stays
up, the record is dead-lettered with a reason, the good claim behind it is decided, memory stays
bounded, and none of the record's bytes (nor the patient id) reach the log.

The worker runs with its producer's max_request_size lowered to 16 KiB, so that the output limit
is in reach of a claim of 50 lines (its decision is about 25 KB) and the truncation of large dead
letters is exercised with the same code as at the default 1 MiB.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaProducer, TopicPartition

from worker.codec.wire import PlainAvro

from .conftest import PRODUCER_DEFAULTS
from .outputs import DeadLetterOut, OutputCollector
from .producing import EventProducer, Placed, placed
from .stream_setup import KAFKA_OPTIONS, StreamSetup, key_partition
from .workers import WorkerProcess
from .workloads import EventClock, as_event, load_example_bundles, personalise

PATIENT = "P-SECRET-7507"
SECRET = b"SECRET-BYTES-7507"  # in every poison record's value or headers: must never be logged
OUTPUT_LIMIT = 16_384  # the worker's producer max_request_size in this suite
# A good claim behind a poison record is decided within this long (a guard, not a benchmark:
# it is decided in milliseconds; a stopped partition never decides it).
DECIDED_WITHIN_S = 30.0
# The worker's resident memory may not grow past this while it digests the poison (a 25,000-line
# claim once grew it past 1.6 GB).
MEMORY_BOUND_BYTES = 700 * 2**20


class NotUtf8HeaderName(str):
    """A header name whose bytes on the wire are not UTF-8 (kafka-python encodes names itself)."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"\xff\xfe" + SECRET


@dataclass
class Case:
    name: str
    reasons: set[str]
    send: Callable[[], Placed]
    check: Callable[[DeadLetterOut], None] | None = None


class MemoryWatch(threading.Thread):
    """Samples a process's resident set size (Linux /proc) until stopped; keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="rss-watch", daemon=True)
        self.path = Path(f"/proc/{pid}/status")
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            try:
                for line in self.path.read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.peak = max(self.peak, int(line.split()[1]) * 1024)
            except OSError:
                return


def _header(letter: DeadLetterOut, name: str) -> str | None:
    return letter.header(name)


def send_unchecked(producer: KafkaProducer, topic: str, partition: int) -> Placed:
    """Produce a record with neither key nor value, which kafka-python's send() refuses but the
    wire allows (Java and librdkafka producers send them): appended below send()'s checks."""
    producer.partitions_for(topic)  # metadata first, as send() would
    future = producer._accumulator.append(TopicPartition(topic, partition), int(time.time() * 1000), None, None, [])[0]
    producer._sender.wakeup()
    return placed(future)


def send_with_null_header(bootstrap: str, topic: str, partition: int, key: bytes, value: bytes) -> Placed:
    """Produce a record with a null header value (legal on the wire; kafka-python's send() refuses it).

    kafka-python writes the record into the current batch, then fails computing its future's header
    size; a new batch would be lost with the error, so the record joins a batch opened by a normal
    record just before (a long linger keeps that batch open), and its offset is that record's + 1."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5000, max_block_ms=10_000)
    try:
        opener = producer.send(topic, key=key, value=value, partition=partition)
        with contextlib.suppress(TypeError):
            producer._accumulator.append(
                TopicPartition(topic, partition), int(time.time() * 1000), key, value, [("trace", None)]
            )
        closer = producer.send(topic, key=key, value=value, partition=partition)
        producer.flush(timeout=30)
        first, last = placed(opener), placed(closer)
    finally:
        producer.close(timeout=10)
    assert last.offset == first.offset + 2, "the null-header record was not sent"
    return Placed(first.topic, first.partition, first.offset + 1)


def test_no_record_stops_a_partition(stream: StreamSetup, tmp_path: Path) -> None:
    producer = KafkaProducer(bootstrap_servers=stream.bootstrap, max_request_size=8_000_000, **PRODUCER_DEFAULTS)
    try:
        _run_suite(stream, tmp_path, producer)
    finally:
        producer.close(timeout=10)


def _run_suite(stream: StreamSetup, tmp_path: Path, producer: KafkaProducer) -> None:
    events = EventProducer(producer, stream.topics)
    wire = PlainAvro()
    clock = EventClock()
    noise = random.Random(13)
    bundle = personalise(load_example_bundles()[0][1], PATIENT, clock, claim_id="C-POISON")
    key = PATIENT.encode()
    claims = stream.topics.claims
    partition = key_partition(PATIENT, stream.partitions["claims"])

    def good_bytes(**changes: Any) -> bytes:
        return wire.encode("ClaimSubmitted", as_event({**bundle["claim"], **changes, "event_id": None}, clock), claims)

    def raw(topic: str, value: bytes | None, *, record_key: bytes | None = key, **extra: Any) -> Callable[[], Placed]:
        return lambda: events.send_raw(topic, record_key, value, partition=partition, **extra)

    def empty(topic: str) -> Callable[[], Placed]:
        def send() -> Placed:
            return send_unchecked(producer, topic, partition)

        return send

    def lines(count: int) -> list[dict[str, Any]]:
        line = bundle["claim"]["lines"][0]
        return [{**line, "line_number": number} for number in range(1, count + 1)]

    def junk(size: int) -> bytes:
        return SECRET + noise.randbytes(size - len(SECRET))

    def null_header_record() -> Placed:
        return send_with_null_header(stream.bootstrap, claims, partition, key, junk(64))

    # Context poison, read while the worker restores (a null/null record used to stop the start).
    context_poison = {
        "null key and value on the prescriptions topic": empty(stream.topics.prescriptions)(),
        "3 MB of junk on the lab topic": raw(stream.topics.lab_results, junk(3_000_000))(),
    }
    events.send_context([("prescription", rx) for rx in bundle["prescriptions"]])
    events.send_context([("lab", lab) for lab in bundle["labs"]])

    big_value = junk(1_048_477)  # what a default producer accepts

    def truncated_value(letter: DeadLetterOut) -> None:
        assert _header(letter, "original_size") == str(len(big_value))
        assert _header(letter, "original_sha256") == hashlib.sha256(big_value).hexdigest()
        assert letter.value is not None and 0 < len(letter.value) < OUTPUT_LIMIT and big_value.startswith(letter.value)

    def truncated_key(letter: DeadLetterOut) -> None:
        assert _header(letter, "original_key_size") == "2000000"
        assert letter.key is not None and len(letter.key) < OUTPUT_LIMIT

    def empty_marker(letter: DeadLetterOut) -> None:
        assert (letter.key, letter.value, _header(letter, "original_empty")) == (None, b"", "true")

    def null_header(letter: DeadLetterOut) -> None:
        assert ("trace", b"") in letter.headers

    def names_the_limit(letter: DeadLetterOut) -> None:
        message = _header(letter, "error_message") or ""
        assert "output limit" in message and "max_request_size" in message, message
        assert _header(letter, "original_size") is None  # the claim itself fits: kept whole

    def unreadable(letter: DeadLetterOut) -> None:
        assert (letter.key, letter.value) == (None, b"")
        assert "cannot parse" in (_header(letter, "error_message") or "")

    def names_the_line_limit(letter: DeadLetterOut) -> None:
        assert "over the limit of 50 (MAX_CLAIM_LINES" in (_header(letter, "error_message") or "")

    fixed = {"event_id": "e-7507", "event_time": "2026-01-05T08:00:00.000Z"}
    negative_enum = bytearray(wire.encode("ClaimSubmitted", {**bundle["claim"], **fixed}, claims))
    other_symbol = wire.encode(
        "ClaimSubmitted",
        {**bundle["claim"], **fixed, "payer": {**bundle["claim"]["payer"], "payer_type": "OTHER"}},
        claims,
    )
    [position] = [i for i in range(len(negative_enum)) if negative_enum[i] != other_symbol[i]]
    negative_enum[position] = 1  # zigzag -1: fastavro would read the last symbol, OTHER

    cases = [
        Case("a claim whose decision passes the output limit", {"other"}, raw(claims, good_bytes(lines=lines(50))),
             names_the_limit),
        Case("271 identical lines (over MAX_CLAIM_LINES)", {"contract"}, raw(claims, good_bytes(lines=lines(271))),
             names_the_line_limit),
        Case("25,000 identical lines", {"contract"}, raw(claims, good_bytes(lines=lines(25_000))),
             names_the_line_limit),
        Case("null key and null value", {"decode"}, empty(claims), empty_marker),
        Case("a null-valued header", {"decode"}, null_header_record, null_header),
        Case("a 1,048,477-byte value", {"decode"}, raw(claims, big_value), truncated_value),
        Case("a 2 MB key", {"contract", "decode"}, raw(claims, junk(64), record_key=b"k" * 2_000_000), truncated_key),
        Case("a valid claim with a non-UTF-8 header name", {"decode"},
             raw(claims, good_bytes(), headers=[(NotUtf8HeaderName("x"), SECRET)]), unreadable),
        Case("a negative Avro enum index", {"decode"}, raw(claims, bytes(negative_enum))),
        Case("random bytes with a secret", {"decode"}, raw(claims, junk(200), headers=[("note", SECRET)])),
    ]  # fmt: skip

    env = {"KAFKA_OPTIONS": f"{KAFKA_OPTIONS},max_request_size={OUTPUT_LIMIT}"}
    with OutputCollector(stream) as outputs, WorkerProcess(stream, tmp_path, "poison", **env) as worker:
        worker.wait_for_event(lambda e: e.get("event") == "worker_ready", "a rebuilt assignment", 60)
        memory = MemoryWatch(worker.pid)
        memory.start()
        poison_at: dict[str, Placed] = {}
        decided_after: dict[str, float] = {}
        for version, case in enumerate(cases, start=1):
            poison_at[case.name] = case.send()
            sent = time.monotonic()
            events.send_claims([as_event({**bundle["claim"], "claim_version": version, "event_id": None}, clock)])
            outputs.wait_for_versions([("C-POISON", version)], timeout=DECIDED_WITHIN_S)
            decided_after[case.name] = time.monotonic() - sent
            assert worker.process is not None and worker.process.poll() is None, f"{case.name}: worker died"
        memory.stopped.set()
        memory.join()
        outputs.catch_up()
        print({name: round(seconds, 2) for name, seconds in decided_after.items()}, f"peak RSS {memory.peak >> 20} MiB")
        assert worker.process is not None and worker.process.poll() is None
        log = worker.stdout_path.read_bytes() + worker.stderr_path.read_bytes()

    letters = {(letter.source.topic, letter.source.offset): letter for letter in outputs.dead_letters}
    for case in cases:
        where = poison_at[case.name]
        assert where.partition == partition
        letter = letters.get((where.topic, where.offset))
        assert letter is not None, f"{case.name}: no dead letter"
        assert letter.header("error_reason") in case.reasons, (case.name, letter.header("error_reason"))
        assert letter.source == where, case.name
        if case.check is not None:
            case.check(letter)
    for name, where in context_poison.items():
        letter = letters[(where.topic, where.offset)]
        assert letter.header("error_reason") == "decode", name
    empty_marker(
        letters[(stream.topics.prescriptions, context_poison["null key and value on the prescriptions topic"].offset)]
    )
    lab_letter = letters[(stream.topics.lab_results, context_poison["3 MB of junk on the lab topic"].offset)]
    assert lab_letter.header("original_size") == "3000000"

    assert len(outputs.decisions) == len(cases)
    assert 0 < memory.peak < MEMORY_BOUND_BYTES
    assert SECRET not in log and PATIENT.encode() not in log and b"\\xff\\xfe" not in log
