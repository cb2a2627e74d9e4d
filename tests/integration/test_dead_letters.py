"""`python -m worker dead-letters list|show|replay` against the real broker and the real worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from worker import __version__
from worker.stream import dlq

from .outputs import OutputCollector
from .producing import EventProducer
from .stream_setup import EXIT_PATIENCE_S, REPO_ROOT, StreamSetup, topic_end_offsets
from .workers import InProcessWorker
from .workloads import EventClock, load_example_bundles, personalise

PATIENT = "PT-DLQ-REPLAY-0001"
_ENV_PREFIXES = ("KAFKA_", "TOPIC_", "SCHEMA_REGISTRY_")


def cli(setup: StreamSetup, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(_ENV_PREFIXES)}
    env |= {key: value for key, value in setup.env().items() if key.startswith(_ENV_PREFIXES)}
    return subprocess.run(
        [sys.executable, "-m", "worker", "dead-letters", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class _RawProducer:
    """confluent-kafka, because kafka-python can send neither null header values nor null key and value."""

    def __init__(self, setup: StreamSetup) -> None:
        from confluent_kafka import Producer

        self.topic = setup.topics.dead_letter
        self.producer = Producer({"bootstrap.servers": setup.bootstrap, "acks": "all"})

    def send(self, letter: dlq.DeadLetter) -> None:
        self.producer.produce(self.topic, key=letter.key, value=letter.value, headers=list(letter.headers))

    def flush(self) -> None:
        assert self.producer.flush(EXIT_PATIENCE_S) == 0


def _letter(
    setup: StreamSetup, key: bytes | None, value: bytes | None, reason: dlq.Reason, offset: int, **extra: Any
) -> dlq.DeadLetter:
    return dlq.dead_letter(
        topic=setup.topics.claims,
        partition=0,
        offset=offset,
        key=key,
        value=value,
        headers=extra.pop("headers", None),
        reason=reason,
        error=RuntimeError("boom") if reason == "other" else ValueError("bad"),
        message="cannot decide claim: RuntimeError" if reason == "other" else "ClaimSubmitted: not Avro",
        worker_version=__version__,
    )


def _seed(setup: StreamSetup, events: EventProducer) -> bytes:
    """Four dead letters as the worker writes them; returns the good claim's original value."""
    [(_, bundle), *_] = load_example_bundles()
    bundle = personalise(bundle, PATIENT, EventClock(), claim_id="CLM-DLQ-REPLAY-1")
    events.send_context([("prescription", r) for r in bundle["prescriptions"]] + [("lab", r) for r in bundle["labs"]])
    claim = events.wire.encode("ClaimSubmitted", bundle["claim"], setup.topics.claims)
    key = PATIENT.encode()
    raw = _RawProducer(setup)
    # 1. A good claim whose evaluation failed once ("other"), with producer headers. The worker keeps
    # a null header value as empty; one written by another tool may still be null.
    failed = _letter(setup, key, claim, "other", 10, headers=[("trace", b"t-1")])
    null_header: list[tuple[str, bytes | None]] = [("note", None)]
    raw.send(
        dlq.DeadLetter(failed.key, failed.value, [*failed.headers[:1], *null_header, *failed.headers[1:]], "other")
    )  # type: ignore[list-item]
    # 2. A claim that is not Avro at all: a replay sends it back and the worker dead-letters it again.
    raw.send(_letter(setup, key, b"\x00garbage", "decode", 11))
    # 3. A truncated original (the truncation headers): never replayed.
    truncated = _letter(setup, key, claim[:8], "decode", 12)
    extra = [(dlq.HEADER_ORIGINAL_SIZE, str(len(claim)).encode()), (dlq.HEADER_ORIGINAL_SHA256, b"ab" * 32)]
    raw.send(dlq.DeadLetter(truncated.key, truncated.value, truncated.headers + extra, "decode"))
    # 4. An empty-record marker (null key and value), its marker header null-valued.
    empty = _letter(setup, None, None, "decode", 13)
    marker: list[tuple[str, bytes | None]] = [(dlq.HEADER_ORIGINAL_EMPTY, None)]
    raw.send(dlq.DeadLetter(None, None, [*empty.headers, *marker], "decode"))  # type: ignore[list-item]
    raw.flush()
    return claim


def test_list_show_and_replay_round_trip(stream: StreamSetup, events: EventProducer, tmp_path: Path) -> None:
    claim = _seed(stream, events)

    listed = cli(stream, "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)
    assert [item["error_reason"] for item in sorted(entries, key=lambda e: e["source_offset"])] == [
        "other",
        "decode",
        "decode",
        "decode",
    ]
    first = next(item for item in entries if item["error_reason"] == "other")
    assert first["source_topic"] == stream.topics.claims
    assert first["source_partition"] == 0
    assert first["size"] == len(claim)
    assert first["worker_version"] == __version__
    assert first["error_class"] == "RuntimeError"
    assert "4 dead letter(s)" in listed.stderr
    assert f"3  decode    {stream.topics.claims}" in listed.stderr
    # The key (the patient id) never reaches the terminal.
    assert PATIENT not in listed.stdout + listed.stderr

    table = cli(stream, "list", "--reason", "other")
    assert table.returncode == 0, table.stderr
    assert "cannot decide claim: RuntimeError" in table.stdout
    assert "1 dead letter(s)" in table.stdout
    assert "not Avro" not in table.stdout
    assert cli(stream, "list", "--since", "2999-01-01", "--format", "json").stdout.strip() == "[]"

    raw = tmp_path / "original.bin"
    shown = cli(stream, "show", f"{first['dead_letter_partition']}:{first['dead_letter_offset']}", "--raw", str(raw))
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert {"name": "note", "value": None} in detail["headers"]
    assert {"name": "error_reason", "value": "other"} in detail["headers"]
    assert detail["size"] == len(claim)
    assert raw.read_bytes() == claim
    assert raw.stat().st_mode & 0o077 == 0
    assert PATIENT not in shown.stdout
    missing = cli(stream, "show", f"{first['dead_letter_partition']}:999")
    assert missing.returncode == 1
    assert "no dead letter at" in missing.stderr

    before = topic_end_offsets(stream, "claims")
    dry = cli(stream, "replay", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would replay 2 dead letter(s)" in dry.stdout
    assert "1  original truncated" in dry.stdout
    assert "1  empty-record marker" in dry.stdout
    assert "1 null-valued producer header(s) replayed with an empty value" in dry.stdout
    assert topic_end_offsets(stream, "claims") == before, "a dry run produces nothing"

    replayed = cli(stream, "replay")
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 2 dead letter(s)" in replayed.stdout
    assert f"2  to {stream.topics.claims}" in replayed.stdout
    assert sum(topic_end_offsets(stream, "claims").values()) == sum(before.values()) + 2
    _assert_replayed_headers(stream)

    with OutputCollector(stream) as outputs, InProcessWorker(stream.settings()):
        outputs.wait_for(decisions=1, dead_letters=5)
        [decision] = outputs.decisions
        assert decision.value["claim_id"] == "CLM-DLQ-REPLAY-1"
        # The garbage went back to the dead-letter topic with its reason and its new source offset.
        again = outputs.dead_letters[4]
        assert again.header("error_reason") == "decode"
        assert again.header("source_topic") == stream.topics.claims

        # Twice is safe: the claim is decided again under the same decision id.
        twice = cli(stream, "replay", "--reason", "other")
        assert twice.returncode == 0, twice.stderr
        assert "replayed 1 dead letter(s)" in twice.stdout
        outputs.wait_for(decisions=2)
        assert len({d.value["decision_id"] for d in outputs.decisions}) == 1


def _assert_replayed_headers(setup: StreamSetup) -> None:
    """The replayed good claim carries the producer's headers, none of the worker's error headers."""
    consumer = KafkaConsumer(
        bootstrap_servers=setup.bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        tps = [TopicPartition(setup.topics.claims, n) for n in range(setup.partitions["claims"])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        for _ in range(int(EXIT_PATIENCE_S * 5)):
            records += [r for batch in consumer.poll(timeout_ms=200).values() for r in batch]
            if len(records) >= 2:
                break
        assert len(records) == 2
        good = next(r for r in records if r.value != b"\x00garbage")
        assert good.key == PATIENT.encode()
        assert list(good.headers) == [("trace", b"t-1"), ("note", b"")]
    finally:
        consumer.close(autocommit=False)


def test_missing_topic_and_bad_arguments_fail_with_the_setting(stream: StreamSetup) -> None:
    result = cli(stream, "list", "--topic-dead-letter", "no-such-topic-dlq")
    assert result.returncode == 2
    assert "TOPIC_DEAD_LETTER" in result.stderr
    bad_time = cli(stream, "replay", "--since", "yesterday")
    assert bad_time.returncode == 2
    assert "--since" in bad_time.stderr
