"""`python -m worker dead-letters list|show|replay`: inspect and replay the dead-letter topic.

Reads with its own group-less consumer (manual assignment, no commits), so it never joins or moves
the worker's consumer group and can run while the workers do. The key and value of a dead letter
(patient data) never reach the terminal or a log: `show --raw FILE` writes the value to a file.
Filtering, summaries and replay planning live in worker/offline/dead_letters.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from worker.errors import ConfigError
from worker.offline.dead_letters import (
    REASONS,
    Filters,
    Replay,
    ReplayReport,
    StoredDeadLetter,
    entry,
    parse_time,
    plan_replay,
    summary_lines,
    table,
)

# How long a read waits for the broker to answer a fetch before it gives up: a guard against an
# unreachable broker, not a pace (reading stops as soon as every partition is at its end).
READ_PATIENCE_S = 60.0
PROGRESS_EVERY_S = 2.0


def add_dead_letter_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "dead-letters",
        help="list, show or replay dead letters (own group-less consumer; never the worker's group)",
        description=(
            "Inspect the dead-letter topic and replay dead letters to the topics they came from. Kafka "
            "settings as for `run` (KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL, KAFKA_SSL_*, "
            "KAFKA_SASL_*, TOPIC_*). Keys and values may hold patient data: they are never printed."
        ),
    )
    actions = parser.add_subparsers(dest="dead_letters_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="one row per dead letter, then a summary by reason and topic")
    _add_connection(listing)
    _add_filters(listing)
    listing.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="table (default; summary after it) or a JSON array on stdout (summary on stderr)",
    )

    show = actions.add_parser("show", help="one dead letter's headers and size")
    _add_connection(show)
    show.add_argument("position", metavar="PARTITION:OFFSET", help="where it is in the dead-letter topic")
    show.add_argument(
        "--raw", metavar="FILE", help="write the original value bytes to FILE (mode 0600; they may hold patient data)"
    )

    replay = actions.add_parser(
        "replay",
        help="re-produce the selected originals to their source topics",
        description=(
            "Re-produce each selected dead letter's original key, value and headers (without the "
            "worker's error headers) to its source topic; the worker then decides it again (a claim "
            "version keeps its decision_id) or dead-letters it again with its reason. Safe to run "
            "twice. Skipped and reported: truncated originals, empty-record markers, and records "
            "whose source is not one of the worker's input topics."
        ),
    )
    _add_connection(replay)
    _add_filters(replay)
    replay.add_argument("--dry-run", action="store_true", help="report what would be replayed; produce nothing")


def _add_connection(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Kafka")
    group.add_argument("--bootstrap-servers", metavar="HOST:PORT,...", help="[env KAFKA_BOOTSTRAP_SERVERS]")
    group.add_argument(
        "--kafka-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="kafka-python client override, repeatable [env KAFKA_OPTIONS]",
    )
    for role, env in (
        ("dead-letter", "TOPIC_DEAD_LETTER"),
        ("claims", "TOPIC_CLAIMS"),
        ("prescriptions", "TOPIC_PRESCRIPTIONS"),
        ("lab-results", "TOPIC_LAB_RESULTS"),
    ):
        group.add_argument(f"--topic-{role}", metavar="TOPIC", help=f"[env {env}]")


def _add_filters(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters (all must match)")
    group.add_argument("--reason", choices=REASONS, help="error_reason header")
    group.add_argument("--source-topic", metavar="TOPIC", help="source_topic header")
    group.add_argument("--since", metavar="ISO", help="dead-lettered at or after (ISO 8601; naive is UTC)")
    group.add_argument("--until", metavar="ISO", help="dead-lettered before (ISO 8601; naive is UTC)")


def _filters(args: argparse.Namespace) -> Filters:
    problems = []
    moments: dict[str, Any] = {}
    for name in ("since", "until"):
        text = getattr(args, name)
        if text:
            try:
                moments[name] = parse_time(text)
            except ValueError as error:
                problems.append(f"--{name}: {error}")
    if problems:
        raise ConfigError("; ".join(problems))
    return Filters(reason=args.reason, source_topic=args.source_topic, **moments)


def run_dead_letters_command(args: argparse.Namespace) -> int:
    from worker.codec.tls import check_settings_tls
    from worker.config import settings_from

    settings = settings_from(args)
    check_settings_tls(settings)
    action = args.dead_letters_command
    if action == "list":
        return _list(settings, _filters(args), args.format)
    if action == "show":
        return _show(settings, args.position, args.raw)
    return _replay(settings, _filters(args), dry_run=args.dry_run)


# --- reading --------------------------------------------------------------------------------------


def _consumer(settings: Any) -> Any:
    from worker.stream.kafka_clients import assigned_consumer

    return assigned_consumer(settings, "dead-letters")


def _partitions(consumer: Any, topic: str) -> list[int]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise ConfigError(f"--topic-dead-letter/TOPIC_DEAD_LETTER: topic {topic!r} does not exist")
    return sorted(partitions)


def _stored(record: Any) -> StoredDeadLetter:
    return StoredDeadLetter(
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value,
        headers=tuple(record.headers or ()),
    )


def read_all(consumer: Any, topic: str) -> Iterator[StoredDeadLetter]:
    """Every record of the topic, from the beginning to the end it had when the read began."""
    from kafka import TopicPartition

    tps = [TopicPartition(topic, number) for number in _partitions(consumer, topic)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    # The high watermark a fetch reports is the end to read to (the embedded broker's ListOffsets
    # can answer short). Fixed at the first answer per partition, so records dead-lettered while
    # we read (by a replay in progress, say) do not keep the read going.
    ends: dict[Any, int] = {}
    last_progress = time.monotonic()
    while True:
        for tp in tps:
            if tp not in ends and consumer.highwater(tp) is not None:
                ends[tp] = consumer.highwater(tp)
        if len(ends) == len(tps) and all(consumer.position(tp) >= ends[tp] for tp in tps):
            return
        batch = consumer.poll(timeout_ms=500)
        if batch:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > READ_PATIENCE_S:
            raise ConfigError(f"dead-letter topic {topic!r}: no answer from the broker for {READ_PATIENCE_S:.0f} s")
        for tp, records in batch.items():
            end = ends.get(tp)
            for record in records:
                if end is None or record.offset < end:
                    yield _stored(record)
            if end is not None and consumer.position(tp) >= end:
                consumer.pause(tp)


def _list(settings: Any, filters: Filters, output: str) -> int:
    consumer = _consumer(settings)
    try:
        entries = [
            entry(letter) for letter in read_all(consumer, settings.topics.dead_letter) if filters.matches(letter)
        ]
    finally:
        consumer.close(autocommit=False)
    if output == "json":
        print(json.dumps(entries, indent=2))
        print("\n".join(summary_lines(entries)), file=sys.stderr)
    else:
        if entries:
            print(table(entries))
            print()
        print("\n".join(summary_lines(entries)))
    return 0


def _position(text: str) -> tuple[int, int]:
    partition, sep, offset = text.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise ConfigError(f"PARTITION:OFFSET: expected two numbers such as 3:1042, got {text!r}")
    return int(partition), int(offset)


def _show(settings: Any, position: str, raw: str | None) -> int:
    from kafka import TopicPartition

    partition, offset = _position(position)
    topic = settings.topics.dead_letter
    consumer = _consumer(settings)
    try:
        if partition not in _partitions(consumer, topic):
            raise ConfigError(f"PARTITION:OFFSET: topic {topic!r} has no partition {partition}")
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        found = _fetch_one(consumer, tp, offset)
    finally:
        consumer.close(autocommit=False)
    if found is None:
        print(f"j7507-worker: no dead letter at {partition}:{offset} in {topic}", file=sys.stderr)
        return 1
    shown = entry(found)
    shown["headers"] = [
        {"name": name, "value": None if value is None else value.decode("utf-8", "replace")}
        for name, value in found.headers
    ]
    shown["key_size"] = None if found.key is None else len(found.key)
    if raw:
        _write_private(Path(raw), found.value or b"")
        shown["raw_written_to"] = raw
    print(json.dumps(shown, indent=2))
    return 0


def _fetch_one(consumer: Any, tp: Any, offset: int) -> StoredDeadLetter | None:
    deadline = time.monotonic() + READ_PATIENCE_S
    while time.monotonic() < deadline:
        highwater = consumer.highwater(tp)
        if highwater is not None and offset >= highwater:
            return None
        for record in consumer.poll(timeout_ms=500).get(tp, []):
            if record.offset == offset:
                return _stored(record)
            if record.offset > offset:
                return None  # compacted or deleted
    raise ConfigError(f"dead-letter topic: no answer from the broker for {READ_PATIENCE_S:.0f} s")


def _write_private(path: Path, data: bytes) -> None:
    # Created 0600 from the start (not chmod-ed after): the bytes may hold patient data.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as error:
        raise ConfigError(f"--raw: cannot write {path}: {error.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


# --- replay ---------------------------------------------------------------------------------------


def _replay(settings: Any, filters: Filters, *, dry_run: bool) -> int:
    report = ReplayReport.empty()
    consumer = _consumer(settings)
    producer = None
    futures: list[Any] = []
    last_progress = time.monotonic()
    try:
        if not dry_run:
            from worker.stream.kafka_clients import producer as make_producer

            producer = make_producer(settings)
        for letter in read_all(consumer, settings.topics.dead_letter):
            if not filters.matches(letter):
                continue
            step = plan_replay(letter, settings.topics.inputs)
            report.add(step)
            if isinstance(step, Replay) and producer is not None:
                futures.append(producer.send(step.topic, key=step.key, value=step.value, headers=step.headers))
            if time.monotonic() - last_progress >= PROGRESS_EVERY_S:
                last_progress = time.monotonic()
                done = sum(report.replayed.values())
                print(f"dead-letters replay: {done} replayed, {sum(report.skipped.values())} skipped", file=sys.stderr)
        if producer is not None:
            producer.flush()
            failed = 0
            for future in futures:
                if future.failed():
                    failed += 1
            if failed:
                print("\n".join(report.lines(dry_run=dry_run)))
                print(f"j7507-worker: {failed} replayed record(s) were not acknowledged", file=sys.stderr)
                return 1
    finally:
        consumer.close(autocommit=False)
        if producer is not None:
            producer.close(timeout=10)
    print("\n".join(report.lines(dry_run=dry_run)))
    return 0
