"""The Kafka-free half of the dead-letter tools: headers, filters, summaries, replay planning."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.offline.dead_letters import (
    SKIP_EMPTY,
    SKIP_NO_SOURCE,
    SKIP_NOT_AN_INPUT,
    SKIP_TRUNCATED,
    Filters,
    Replay,
    ReplayReport,
    Skip,
    StoredDeadLetter,
    entry,
    parse_time,
    plan_replay,
    summary,
    summary_lines,
    table,
)
from worker.stream import dlq

INPUTS = ("ehr.claims.v1", "ehr.prescriptions.v1", "ehr.lab-results.v1")
MOMENT_MS = int(datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)


def stored(
    *, reason: str = "decode", topic: str | None = "ehr.claims.v1", extra: tuple[tuple[str, bytes | None], ...] = ()
) -> StoredDeadLetter:
    letter = dlq.dead_letter(
        topic=topic or "x",
        partition=2,
        offset=41,
        key=b"PT-1",
        value=b"\x01\x02\x03",
        headers=[("traceparent", b"00-abc")],
        reason=reason,  # type: ignore[arg-type]
        error=ValueError("bad"),
        message="ClaimSubmitted: claim_id: Field required",
        worker_version="0.1.0",
    )
    headers: list[tuple[str, bytes | None]] = list(letter.headers)
    if topic is None:
        headers = [(name, value) for name, value in headers if name != dlq.HEADER_SOURCE_TOPIC]
    return StoredDeadLetter(3, 7, MOMENT_MS, letter.key, letter.value, (*headers, *extra))


def test_entry_has_the_listed_fields_and_never_the_key_or_value() -> None:
    row = entry(stored())
    assert row == {
        "dead_letter_partition": 3,
        "dead_letter_offset": 7,
        "source_topic": "ehr.claims.v1",
        "source_partition": 2,
        "source_offset": 41,
        "error_reason": "decode",
        "error_class": "ValueError",
        "error_message": "ClaimSubmitted: claim_id: Field required",
        "worker_version": "0.1.0",
        "size": 3,
        "timestamp": "2026-03-01T12:00:00.000Z",
    }
    assert "PT-1" not in table([row])


def test_a_null_valued_or_repeated_header_reads_as_its_last_value() -> None:
    letter = stored(extra=(("traceparent", None), (dlq.HEADER_REASON, b"other")))
    assert letter.header("traceparent") is None
    assert letter.has_header("traceparent")
    assert letter.header(dlq.HEADER_REASON) == "other"
    assert letter.header("absent") is None


def test_filters_combine_reason_topic_and_time_window() -> None:
    letter = stored(reason="contract")
    assert Filters().matches(letter)
    assert Filters(reason="contract", source_topic="ehr.claims.v1").matches(letter)
    assert not Filters(reason="decode").matches(letter)
    assert not Filters(source_topic="ehr.lab-results.v1").matches(letter)
    at = letter.timestamp
    assert Filters(since=at, until=parse_time("2026-03-02")).matches(letter)
    assert not Filters(until=at).matches(letter), "until is exclusive"
    assert not Filters(since=parse_time("2026-03-01T12:00:01Z")).matches(letter)


def test_parse_time_treats_naive_times_as_utc_and_names_bad_input() -> None:
    assert parse_time("2026-03-01T12:00") == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert parse_time("2026-03-01T13:00:00+01:00") == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time("last tuesday")


def test_replay_keeps_the_producers_headers_and_strips_the_workers() -> None:
    step = plan_replay(stored(extra=(("note", None),)), INPUTS)
    assert isinstance(step, Replay)
    assert step.topic == "ehr.claims.v1"
    assert (step.key, step.value) == (b"PT-1", b"\x01\x02\x03")
    assert step.headers == [("traceparent", b"00-abc"), ("note", b"")]
    assert step.nulled_headers == 1


@pytest.mark.parametrize(
    ("letter", "why"),
    [
        (stored(extra=((dlq.HEADER_ORIGINAL_SIZE, b"9000000"), (dlq.HEADER_ORIGINAL_SHA256, b"ab"))), SKIP_TRUNCATED),
        (stored(extra=((dlq.HEADER_ORIGINAL_SHA256, None),)), SKIP_TRUNCATED),
        (stored(extra=((dlq.HEADER_ORIGINAL_EMPTY, None),)), SKIP_EMPTY),
        (stored(topic=None), SKIP_NO_SOURCE),
        (stored(topic="billing.j7507.decisions.v1"), SKIP_NOT_AN_INPUT),
    ],
)
def test_replay_skips_what_cannot_or_must_not_be_replayed(letter: StoredDeadLetter, why: str) -> None:
    step = plan_replay(letter, INPUTS)
    assert isinstance(step, Skip)
    assert step.why == why


def test_summary_counts_by_reason_and_topic_most_frequent_first() -> None:
    rows = [entry(stored(reason="contract")), entry(stored()), entry(stored())]
    assert summary(rows) == [("decode", "ehr.claims.v1", 2), ("contract", "ehr.claims.v1", 1)]
    assert summary_lines(rows)[0] == "3 dead letter(s)"


def test_replay_report_counts_replays_per_topic_and_skips_per_reason() -> None:
    report = ReplayReport.empty()
    for letter in (stored(), stored(), stored(extra=((dlq.HEADER_ORIGINAL_EMPTY, b"1"),))):
        report.add(plan_replay(letter, INPUTS))
    lines = report.lines(dry_run=True)
    assert lines[0] == "would replay 2 dead letter(s)"
    assert "        2  to ehr.claims.v1" in lines
    assert f"        1  {SKIP_EMPTY}" in lines
    assert report.lines(dry_run=False)[0] == "replayed 2 dead letter(s)"


def test_cli_arguments_are_checked_before_anything_connects() -> None:
    from worker.cli_dead_letters import _position
    from worker.errors import ConfigError

    assert _position("3:1042") == (3, 1042)
    for bad in ("3", "a:1", "3:-1", ":"):
        with pytest.raises(ConfigError, match="PARTITION:OFFSET"):
            _position(bad)


def test_the_cli_refuses_a_bad_time_filter_with_its_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from worker.__main__ import main

    # 127.0.0.1:1 is never contacted: the filter is refused first.
    assert main(["dead-letters", "list", "--bootstrap-servers", "127.0.0.1:1", "--until", "soon"]) == 2
    assert "--until: expected an ISO 8601" in capsys.readouterr().err
