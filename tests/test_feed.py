"""The as-of feed without Kafka: a fixed interleaving of out-of-order claims and context, with the
exact decisions expected after every input (the shape of Kafka Streams' StreamTableJoinIntegrationTest).

Times are record times in milliseconds. The patient is the clean liver example (ACCEPT as given).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from worker.codec.wire import PlainAvro
from worker.config import Topics
from worker.engine.context_store import ContextStore
from worker.engine.evaluate import Evaluator
from worker.engine.events import Claim, LabResult, Prescription
from worker.engine.reference import load_reference
from worker.engine.rules.packs import load_packs
from worker.stream.feed import ContextFeed, ReadyClaim, RejectedRecord
from worker.stream.merge import LOOKAHEAD_RECORDS, TimeOrderedMerge

TOPICS = Topics(claims="claims", prescriptions="rx", lab_results="labs", decisions="out", dead_letter="dlq")
RX, LABS = ("rx", 0), ("labs", 0)
CLEAN = json.loads((Path(__file__).parent / "fixtures" / "bundles.jsonl").read_text().splitlines()[0])["bundle"]
WIRE = PlainAvro()
EVALUATOR = Evaluator(load_packs(None), load_reference(None))


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    timestamp: int | None
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def _event(model: Any, schema: str, fields: dict[str, Any]) -> bytes:
    record = {"event_id": "E", "event_time": "2026-01-01T00:00:00Z", **fields}
    return WIRE.encode(schema, model.model_validate(record).model_dump(), "t")


def claim(claim_id: str, date_of_service: str, version: int = 1) -> bytes:
    fields = json.loads(json.dumps(CLEAN["claim"]))
    fields["claim_id"] = claim_id
    fields["claim_version"] = version
    fields["lines"][0]["date_of_service"] = date_of_service
    return _event(Claim, "ClaimSubmitted", fields)


def prescription(**changes: Any) -> bytes:
    return _event(Prescription, "PrescriptionRecorded", {**CLEAN["prescriptions"][0], **changes})


def lab(index: int, **changes: Any) -> bytes:
    return _event(LabResult, "LabResultRecorded", {**CLEAN["labs"][index], **changes})


class Harness:
    """Feeds records one at a time and returns what became decidable after each."""

    def __init__(self, *, grace_ms: int = 0, replay_until: int = 0, now_ms: int = 10**12) -> None:
        self.now_ms = now_ms
        self.store = ContextStore(horizon=EVALUATOR.horizon, lab_groups=EVALUATOR.reference.group_of_loinc)
        self.merge = TimeOrderedMerge(grace_ms=grace_ms, now_ms=lambda: self.now_ms)
        self.late: list[str] = []
        self.feed = ContextFeed(WIRE, TOPICS, self.store, self.merge, on_late=self.late.append)
        self.merge.open(0, [RX, LABS], replay_until=replay_until)
        self.offsets = {"claims": 0, "rx": 0, "labs": 0}

    def _record(self, topic: str, time: int, value: bytes | None, key: bytes | None = b"P-EX1") -> Record:
        record = Record(topic, 0, self.offsets[topic], time, key, value)
        self.offsets[topic] += 1
        return record

    def claim(self, time: int, value: bytes) -> list[tuple[str, str, list[str]]]:
        self.feed.add_claims(0, [self._record("claims", time, value)], self.merge.next_epoch())
        return self.decide()

    def context(self, topic: str, time: int, value: bytes | None) -> list[tuple[str, str, list[str]]]:
        rejected = self.feed.add_context((topic, 0), [self._record(topic, time, value)])
        assert rejected == [] or value is None
        return self.decide()

    def ends(self) -> list[tuple[str, str, list[str]]]:
        """The broker's end offsets, asked for now."""
        for tp in self.merge.wanted_targets():
            self.merge.set_target(tp, self.offsets[tp[0]], self.merge.epoch)
        return self.decide()

    def decide(self) -> list[tuple[str, str, list[str]]]:
        out: list[tuple[str, str, list[str]]] = []
        for ready in self.feed.ready():
            if isinstance(ready, RejectedRecord):
                out.append(("dead-letter", ready.rejected.reason, []))
                continue
            assert isinstance(ready, ReadyClaim)
            decision = EVALUATOR.decide(ready.claim, ready.context, context_as_of=ready.as_of)
            self.feed.decided(ready)
            out.append((decision.claim_id, decision.outcome, sorted(decision.rule_ids)))
        return out


def test_a_fixed_interleaving_decides_each_claim_as_of_its_time() -> None:
    h = Harness()
    # A claim arrives before the context it needs: it waits for the end offsets.
    assert h.claim(200, claim("C1", "2025-12-01")) == []
    assert h.context("rx", 100, prescription()) == []
    assert h.context("labs", 100, lab(0)) == []
    assert h.context("labs", 100, lab(1)) == []
    assert h.context("labs", 100, lab(2)) == []
    assert h.ends() == [("C1", "ACCEPT", [])]
    # A correction stamped before C1 arrives after it was decided: late, applied for later claims.
    assert h.context("labs", 150, lab(0, value=30.0, status="CORRECTED", event_time="2026-01-02T00:00:00Z")) == []
    assert h.late == ["labs"]
    # The prescription entered in error after C2's time: C2 never sees it, C3 does.
    assert h.context("rx", 300, prescription(status="ENTERED_IN_ERROR", event_time="2026-01-03T00:00:00Z")) == []
    assert h.claim(250, claim("C2", "2025-12-29")) == []
    assert h.ends() == [("C2", "HOLD", ["trough-out-of-range"])]
    assert h.claim(350, claim("C3", "2026-01-26")) == []
    assert h.ends() == [("C3", "DENY_RISK", ["no-active-prescription", "trough-out-of-range"])]
    # An out-of-order resubmission of C2, stamped before the correction: the context of its own time.
    assert h.claim(120, claim("C2", "2025-12-29", version=2)) == []
    assert h.ends() == [("C2", "ACCEPT", [])]


def test_a_claim_waits_for_context_acknowledged_before_it_even_when_later_context_was_read() -> None:
    h = Harness()
    h.context("rx", 100, prescription())
    for index in range(3):
        h.context("labs", 100, lab(index))
    h.ends()
    # Context stamped after the claim, then the claim: it still asks where the topics end.
    assert h.context("rx", 900, prescription(status="STOPPED", event_time="2026-01-09T00:00:00Z")) == []
    assert h.claim(500, claim("C1", "2025-12-01")) == []
    assert h.ends() == [("C1", "ACCEPT", [])]


def test_a_context_partition_far_enough_ahead_needs_no_end_offset() -> None:
    h = Harness()
    h.context("rx", 100, prescription())
    for index in range(3):
        h.context("labs", 100, lab(index))
    for count in range(LOOKAHEAD_RECORDS):
        h.context("rx", 1_000 + count, prescription(prescription_id=f"OTHER-{count}", status="STOPPED"))
        h.context("labs", 1_000 + count, lab(1, observation_id=f"OTHER-{count}"))
    assert h.claim(500, claim("C1", "2025-12-01")) == [("C1", "ACCEPT", [])]
    assert h.merge.wanted_targets() == set()


def test_grace_holds_a_claim_until_its_time_plus_grace() -> None:
    h = Harness(grace_ms=1_000, now_ms=10_000)
    h.context("rx", 100, prescription())
    for index in range(3):
        h.context("labs", 100, lab(index))
    h.ends()
    assert h.claim(9_500, claim("C1", "2025-12-01")) == []
    assert h.ends() == []
    assert h.merge.grace_wait_ms() == 500
    h.now_ms = 10_500
    assert h.decide() == [("C1", "ACCEPT", [])]


def test_history_below_the_replay_point_is_absorbed_and_counts_as_prior_claims() -> None:
    h = Harness(replay_until=1)
    h.context("rx", 100, prescription())
    for index in range(3):
        h.context("labs", 100, lab(index))
    h.ends()
    assert h.claim(200, claim("C1", "2025-12-01")) == []  # decided before the restart: history
    assert not h.merge.replayed
    assert h.ends() == []
    assert h.merge.replayed
    assert h.claim(300, claim("C2", "2025-12-01")) == []
    assert h.ends() == [("C2", "DENY_RISK", ["duplicate-line"])]


def test_bad_records_are_rejected_in_their_place_in_the_partition() -> None:
    h = Harness()
    # With Kafka timestamps a claim is decoded when its turn comes, after the claims before it.
    assert h.claim(200, b"\x00junk") == []
    assert h.ends() == [("dead-letter", "decode", [])]
    assert h.context("labs", 100, None) == []  # a tombstone: rejected, the cursor still moves
    assert h.merge.cursors[LABS].position == 1


@pytest.mark.parametrize("source", ["kafka", "event_time"])
def test_the_record_time_follows_the_timestamp_source(source: str) -> None:
    from worker.stream.feed import record_time

    record = Record("claims", 0, 0, 5_000, None, None)
    from datetime import UTC, datetime

    event_time = datetime(1970, 1, 1, 0, 0, 7, tzinfo=UTC)
    assert record_time(record, event_time, source) == (7_000 if source == "event_time" else 5_000)  # type: ignore[arg-type]
    assert record_time(Record("c", 0, 0, -1, None, None), event_time, "kafka") == 7_000  # no Kafka timestamp


# --- the fast path and the checked read --------------------------------------------------------


class CheckedOnly(PlainAvro):
    """A wire format that never offers a plain body: every context record takes the checked read."""

    def plain_body(self, schema_name: str, payload: bytes) -> bytes | None:
        return None


def _held(store: ContextStore) -> list[tuple[str, list[Any]]]:
    """Every version the patient's record holds, arrival numbers aside."""
    record = store.record(0, "P-EX1")
    assert record is not None
    entries: list[tuple[str, Any]] = [*record.prescriptions.entries(), *record.labs.entries()]
    return [
        (key, [version._replace(seq=0) for version in (held if isinstance(held, list) else [held])])
        for key, held in entries
    ]


def test_the_fast_path_and_the_checked_read_hold_the_same_context() -> None:
    inputs = [
        (RX, 1, prescription()),
        (LABS, 2, lab(0)),
        (LABS, 3, lab(1, status="PRELIMINARY")),
        (RX, 4, prescription(status="STOPPED", event_time="2026-01-02T00:00:00Z")),
        (LABS, 5, lab(0, value=None, event_time="2026-01-03T00:00:00Z")),
    ]
    stores = []
    for wire in (WIRE, CheckedOnly()):
        store = ContextStore(horizon=EVALUATOR.horizon, lab_groups=EVALUATOR.reference.group_of_loinc)
        feed = ContextFeed(wire, TOPICS, store, TimeOrderedMerge(grace_ms=0, now_ms=lambda: 0))
        if wire is WIRE:  # every one of these is plain: the checked read must not be needed
            feed._apply = lambda tp, record: pytest.fail("took the checked read")  # type: ignore[method-assign]
        for offset, (tp, time, value) in enumerate(inputs):
            assert feed.add_context(tp, [Record(tp[0], 0, offset, time, b"P-EX1", value)]) == []
        stores.append(store)
    assert _held(stores[0]) == _held(stores[1])
    assert stores[0].sizes == stores[1].sizes


def test_a_record_the_fast_path_hands_back_is_judged_by_the_checked_read() -> None:
    harness = Harness()
    wrong_key = harness._record("labs", 1, lab(0), key=b"someone-else")
    rejected = harness.feed.add_context(LABS, [wrong_key])
    assert [item.rejected.message for item in rejected] == [
        "LabResultRecorded: record key is not the event's patient_id (co-partitioning needs patient_id keys)"
    ]
    truncated = harness._record("labs", 2, lab(0)[:-3])
    (item,) = harness.feed.add_context(LABS, [truncated])
    assert item.rejected.reason == "decode"
    assert harness.store.record(0, "P-EX1") is None  # nothing of either was applied


def test_a_claim_reads_to_the_same_claim_by_the_fast_path_and_the_checked_read() -> None:
    feed = Harness().feed
    record = Record("claims", 0, 0, 1, b"P-EX1", claim("C-1", "2026-01-05"))
    fast = feed._read_plain_claim(record)
    assert fast is not None
    checked_feed = ContextFeed(CheckedOnly(), TOPICS, feed.store, feed.merge)
    assert checked_feed._read_plain_claim(record) is None  # no plain body: the checked read only
    (checked, rejected) = checked_feed._decode_claim(record)
    assert rejected is None and checked == fast


@pytest.mark.parametrize(
    ("key", "damage", "reason", "message"),
    [
        (b"someone-else", 0, "contract", "ClaimSubmitted: record key is not the event's patient_id"),
        (b"P-EX1", 3, "decode", "ClaimSubmitted: payload ends inside the record"),
    ],
)
def test_a_claim_the_fast_path_hands_back_gets_the_checked_reads_dead_letter(
    key: bytes, damage: int, reason: str, message: str
) -> None:
    feed = Harness().feed
    value = claim("C-1", "2026-01-05")
    record = Record("claims", 0, 0, 1, key, value[: len(value) - damage])
    assert feed._read_plain_claim(record) is None
    (decoded, rejected) = feed._decode_claim(record)
    assert decoded is None and rejected is not None
    assert rejected.reason == reason and rejected.message.startswith(message)
