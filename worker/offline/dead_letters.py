"""Dead-letter tools without Kafka: read a dead letter's headers, filter, summarise, plan a replay.

`python -m worker dead-letters` (worker/cli_dead_letters.py) feeds records read from the
dead-letter topic through these functions; keeping them free of Kafka keeps them unit-testable.

What an operator may see: the headers the worker wrote (where the record came from, why it was
rejected; the message names the field and the problem, never a value) and sizes. What they may not
see on a terminal: the key (the patient_id) and the value (the original event, with patient data).
Nothing here formats either of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.stream import dlq

Headers = Sequence[tuple[str, bytes | None]]

# Headers the worker adds when it dead-letters a record; a replay strips them so the replayed
# record carries only the producer's own headers, as the original did.
WORKER_HEADERS = frozenset(
    {
        dlq.HEADER_SOURCE_TOPIC,
        dlq.HEADER_SOURCE_PARTITION,
        dlq.HEADER_SOURCE_OFFSET,
        dlq.HEADER_REASON,
        dlq.HEADER_ERROR_CLASS,
        dlq.HEADER_ERROR_MESSAGE,
        dlq.HEADER_WORKER_VERSION,
        dlq.HEADER_ORIGINAL_SIZE,
        dlq.HEADER_ORIGINAL_SHA256,
        dlq.HEADER_ORIGINAL_EMPTY,
    }
)
REASONS = ("decode", "contract", "other")

# Why a dead letter is not replayed (the replay report counts each).
SKIP_TRUNCATED = "original truncated"
SKIP_EMPTY = "empty-record marker"
SKIP_NO_SOURCE = "no source_topic header"
SKIP_NOT_AN_INPUT = "source topic is not an input topic"


@dataclass(frozen=True)
class StoredDeadLetter:
    """One record of the dead-letter topic, as read."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]

    def header(self, name: str) -> str | None:
        """The last header of that name, decoded (the worker's headers come after the producer's)."""
        found: bytes | None = None
        present = False
        for header, value in self.headers:
            if header == name:
                found, present = value, True
        if not present or found is None:
            return None
        return found.decode("utf-8", "replace")

    def has_header(self, name: str) -> bool:
        return any(header == name for header, _ in self.headers)

    @property
    def timestamp(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    @property
    def size(self) -> int:
        """Bytes of the value as stored (the original's, unless it was truncated)."""
        return len(self.value or b"")


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def entry(letter: StoredDeadLetter) -> dict[str, Any]:
    """The `list` row of a dead letter: headers and size, never the key or the value."""
    return {
        "dead_letter_partition": letter.partition,
        "dead_letter_offset": letter.offset,
        "source_topic": letter.header(dlq.HEADER_SOURCE_TOPIC),
        "source_partition": _int_or_none(letter.header(dlq.HEADER_SOURCE_PARTITION)),
        "source_offset": _int_or_none(letter.header(dlq.HEADER_SOURCE_OFFSET)),
        "error_reason": letter.header(dlq.HEADER_REASON),
        "error_class": letter.header(dlq.HEADER_ERROR_CLASS),
        "error_message": letter.header(dlq.HEADER_ERROR_MESSAGE),
        "worker_version": letter.header(dlq.HEADER_WORKER_VERSION),
        "size": letter.size,
        "timestamp": iso(letter.timestamp),
    }


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """ISO 8601 date or date-time; a naive one is UTC (as everywhere in the worker)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected an ISO 8601 date or date-time, got {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Filters:
    reason: str | None = None
    source_topic: str | None = None
    since: datetime | None = None  # inclusive, on the dead letter's own timestamp
    until: datetime | None = None  # exclusive

    def matches(self, letter: StoredDeadLetter) -> bool:
        if self.reason is not None and letter.header(dlq.HEADER_REASON) != self.reason:
            return False
        if self.source_topic is not None and letter.header(dlq.HEADER_SOURCE_TOPIC) != self.source_topic:
            return False
        if self.since is not None and letter.timestamp < self.since:
            return False
        return self.until is None or letter.timestamp < self.until


def summary(entries: Iterable[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """(error_reason, source_topic, count), most frequent first, then by name."""
    counts = Counter((str(item["error_reason"]), str(item["source_topic"])) for item in entries)
    return sorted(((reason, topic, n) for (reason, topic), n in counts.items()), key=lambda row: (-row[2], row[:2]))


def summary_lines(entries: Sequence[dict[str, Any]]) -> list[str]:
    rows = summary(entries)
    lines = [f"{len(entries)} dead letter(s)"]
    lines += [f"  {count:>7}  {reason:<9} {topic}" for reason, topic, count in rows]
    return lines


def table(entries: Sequence[dict[str, Any]]) -> str:
    """A fixed-width table of the `list` rows (the error message last: it is the long one)."""
    columns = (
        ("dead_letter_partition", "P"),
        ("dead_letter_offset", "OFFSET"),
        ("timestamp", "TIMESTAMP"),
        ("error_reason", "REASON"),
        ("source_topic", "SOURCE_TOPIC"),
        ("source_partition", "SP"),
        ("source_offset", "SOFFSET"),
        ("size", "SIZE"),
        ("worker_version", "VERSION"),
        ("error_class", "CLASS"),
        ("error_message", "MESSAGE"),
    )
    cells = [[title for _, title in columns]]
    cells += [["" if item[name] is None else str(item[name]) for name, _ in columns] for item in entries]
    widths = [max(len(row[index]) for row in cells) for index in range(len(columns) - 1)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]) for row in cells
    ]
    return "\n".join(line.rstrip() for line in lines)


@dataclass(frozen=True)
class Replay:
    """Re-produce the original record to the topic it came from."""

    letter: StoredDeadLetter
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    nulled_headers: int = 0  # producer headers whose null value is replayed as empty


@dataclass(frozen=True)
class Skip:
    letter: StoredDeadLetter
    why: str


def plan_replay(letter: StoredDeadLetter, input_topics: Iterable[str]) -> Replay | Skip:
    """What a replay does with one dead letter.

    Skipped: a truncated original (the bytes left are not the event, replaying them would only
    dead-letter a stub), an empty-record marker (there was nothing to replay), and a record whose
    source is unknown or not one of the worker's input topics (a replay never writes anywhere else).
    A producer header with a null value is replayed with an empty value: kafka-python cannot send a
    null header value (the worker's decoding ignores producer headers either way).
    """
    if letter.has_header(dlq.HEADER_ORIGINAL_SIZE) or letter.has_header(dlq.HEADER_ORIGINAL_SHA256):
        return Skip(letter, SKIP_TRUNCATED)
    if letter.has_header(dlq.HEADER_ORIGINAL_EMPTY):
        return Skip(letter, SKIP_EMPTY)
    topic = letter.header(dlq.HEADER_SOURCE_TOPIC)
    if not topic:
        return Skip(letter, SKIP_NO_SOURCE)
    if topic not in set(input_topics):
        return Skip(letter, SKIP_NOT_AN_INPUT)
    kept = [(name, value) for name, value in letter.headers if name not in WORKER_HEADERS]
    nulled = sum(1 for _, value in kept if value is None)
    headers = [(name, b"" if value is None else value) for name, value in kept]
    return Replay(letter, topic, letter.key, letter.value, headers, nulled)


@dataclass
class ReplayReport:
    replayed: Counter[str]
    skipped: Counter[str]
    nulled_headers: int = 0

    @classmethod
    def empty(cls) -> ReplayReport:
        return cls(Counter(), Counter())

    def add(self, step: Replay | Skip) -> None:
        if isinstance(step, Replay):
            self.replayed[step.topic] += 1
            self.nulled_headers += step.nulled_headers
        else:
            self.skipped[step.why] += 1

    def lines(self, *, dry_run: bool) -> list[str]:
        verb = "would replay" if dry_run else "replayed"
        lines = [f"{verb} {sum(self.replayed.values())} dead letter(s)"]
        lines += [f"  {count:>7}  to {topic}" for topic, count in sorted(self.replayed.items())]
        lines.append(f"skipped {sum(self.skipped.values())}")
        lines += [f"  {count:>7}  {why}" for why, count in sorted(self.skipped.items())]
        if self.nulled_headers:
            lines.append(f"{self.nulled_headers} null-valued producer header(s) replayed with an empty value")
        return lines
