"""The stream worker when things go wrong: crashes, members leaving, poison input, shutdown under load."""

from __future__ import annotations

import io
import json
import random
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import pytest
from kafka import TopicPartition

from worker import __version__
from worker.codec.avro import schema_json
from worker.codec.wire import PlainAvro

from .outputs import OutputCollector
from .producing import BackgroundProducer, EventProducer
from .stream_setup import StreamSetup, committed_offsets, key_partition, topic_end_offsets, wait_for
from .workers import WRITE_SYSCALL, InProcessWorker, WorkerProcess
from .workloads import (
    EventClock,
    OfflineJudge,
    Workload,
    as_event,
    comparable,
    load_example_bundles,
    make_workload,
    personalise,
)

TopicFactory = Callable[..., str]
GroupIdFactory = Callable[..., str]

# A guard only: a healthy worker exits within a second or two of SIGTERM (the README: within 10 s).
SIGTERM_PATIENCE_S = 15.0


def _assert_replays_agree_and_match_offline(outputs: OutputCollector, workload: Workload) -> int:
    """Every claim version decided; a replayed one identically; each as offline. Returns the replays."""
    grouped = outputs.by_version()
    assert set(grouped) == set(workload.bundles)
    judge = OfflineJudge()
    replays = 0
    for version, decisions in grouped.items():
        replays += len(decisions) - 1
        assert len({d.value["decision_id"] for d in decisions}) == 1, version
        assert len({json.dumps(comparable(d.value), default=str) for d in decisions}) == 1, version
        assert comparable(decisions[0].value) == judge.expected(workload.bundles[version]), version
    return replays


@pytest.mark.slow
def test_a_killed_worker_is_replaced_without_losing_a_claim(
    stream: StreamSetup, events: EventProducer, tmp_path: Path
) -> None:
    workload = make_workload("KILL", 500)
    assert len(workload.claims) == 2000
    events.send_context(workload.context)

    with OutputCollector(stream) as outputs:
        with WorkerProcess(stream, tmp_path, "first") as first:
            first.wait_for_event(lambda e: e.get("event") == "worker_ready", "a rebuilt assignment", 60)
            with BackgroundProducer(stream.bootstrap, stream.topics, workload.claims, pause_s=0.02) as load:
                outputs.wait_for(decisions=300)
                first.send_signal(signal.SIGKILL)
                assert first.wait() == -signal.SIGKILL
                assert load.wait() == len(workload.claims)
        # The claims kept coming while no worker ran: the killed one decided only part of them.
        decided_before_kill = len(outputs.catch_up().by_version())
        assert decided_before_kill < len(workload.claims)
        with WorkerProcess(stream, tmp_path, "second") as second:
            outputs.wait_for_versions(workload.bundles)
        outputs.catch_up()

    replays = _assert_replays_agree_and_match_offline(outputs, workload)
    _assert_no_patient_ids_logged(first, second, tag="KILL")
    print(f"kill -9 after {decided_before_kill} of {len(workload.claims)} claim versions; {replays} replayed")


@pytest.mark.slow
def test_two_workers_split_the_partitions_and_one_takes_over_when_the_other_leaves(
    stream: StreamSetup, events: EventProducer, tmp_path: Path
) -> None:
    workload = make_workload("PAIR", 120)
    # First each patient's claim A (both versions); after a member left, claim B on the same dates.
    first_round = [claim for claim in workload.claims if claim["claim_id"].endswith("-A")]
    second_round = [claim for claim in workload.claims if claim["claim_id"].endswith("-B")]
    with (
        OutputCollector(stream) as outputs,
        WorkerProcess(stream, tmp_path, "one") as one,
        WorkerProcess(stream, tmp_path, "two") as two,
    ):
        # Both members hold a share before any claim exists, so neither decides the other's.
        everything = set(range(stream.partitions["claims"]))
        wait_for(
            lambda: (
                one.owned_partitions() | two.owned_partitions() == everything
                and not one.owned_partitions() & two.owned_partitions()
                and bool(one.owned_partitions())
                and bool(two.owned_partitions())
            ),
            "the two workers to share the claims partitions",
        )
        events.send_context(workload.context)
        events.send_claims(first_round)
        outputs.wait_for_versions((claim["claim_id"], claim["claim_version"]) for claim in first_round)
        # A decision is logged just after it is produced: wait for the log lines too. Then both
        # workers are idle.
        wait_for(lambda: _logged_decisions(one) + _logged_decisions(two) >= len(first_round), "the decision logs")
        decided_by_one, decided_by_two = one.decided_partitions(), two.decided_partitions()
        assert decided_by_one and decided_by_two
        assert {d.source.partition for d in outputs.decisions} == decided_by_one | decided_by_two

        two.send_signal(signal.SIGTERM)
        assert two.wait() == 0, two.tail()
        # The same patients' later claims: the survivor needs the leaver's context and claim history.
        events.send_claims(second_round)
        outputs.wait_for_versions(workload.bundles)
        wait_for(lambda: decided_by_two <= one.decided_partitions(), "the survivor to decide the leaver's partitions")
    outputs.catch_up()

    _assert_replays_agree_and_match_offline(outputs, workload)
    assert not outputs.dead_letters
    _assert_no_patient_ids_logged(one, two, tag="PAIR")


def _assert_no_patient_ids_logged(*workers: WorkerProcess, tag: str) -> None:
    """Thousands of decisions, rebalances, a crash: still no patient id in any log line."""
    patient_id = re.compile(rf"{tag}-P\d{{5}}")
    for worker in workers:
        assert _logged_decisions(worker) > 0, worker.name  # there is something to look at
        assert patient_id.search(worker.stdout_path.read_text(encoding="utf-8")) is None, worker.name
        assert patient_id.search(worker.stderr()) is None, worker.name


def _logged_decisions(worker: WorkerProcess) -> int:
    return sum(1 for event in worker.events() if event.get("event") == "claim_decided")


def _claim_record(bundle: dict[str, Any], version: int, clock: EventClock) -> dict[str, Any]:
    return as_event({**bundle["claim"], "event_id": None, "event_time": None, "claim_version": version}, clock)


def _without_field(claim: dict[str, Any], field: str) -> bytes:
    """A ClaimSubmitted written by a producer whose schema lacks `field` (a required one)."""
    schema = json.loads(schema_json("ClaimSubmitted"))
    schema["fields"] = [f for f in schema["fields"] if f["name"] != field]
    wire = PlainAvro()
    record = wire.decode("ClaimSubmitted", wire.encode("ClaimSubmitted", claim, "claims"))
    del record[field]
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


def test_poison_is_dead_lettered_once_while_good_claims_flow(stream: StreamSetup, events: EventProducer) -> None:
    judge = OfflineJudge()
    clock = EventClock()
    template = load_example_bundles()[0][1]
    alice = personalise(template, "P-POISON-A", clock, claim_id="C-POISON-A")
    bob = personalise(template, "P-POISON-B", clock, claim_id="C-POISON-B")
    key = alice["claim"]["patient_id"].encode()
    wire = PlainAvro()
    good_bytes = wire.encode("ClaimSubmitted", alice["claim"], stream.topics.claims)
    noise = random.Random(7507)

    # A poison context record among the patient's valid ones.
    context_poison = events.send_raw(stream.topics.prescriptions, key, noise.randbytes(48))
    events.send_context([("prescription", rx) for bundle in (alice, bob) for rx in bundle["prescriptions"]])
    events.send_context([("lab", lab) for bundle in (alice, bob) for lab in bundle["labs"]])

    claims = stream.topics.claims
    good: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (claim, its bundle)
    poison: dict[str, tuple[bytes | None, set[str]]] = {}  # name -> (value, acceptable reasons)
    placed: dict[str, Any] = {}

    def send_good(bundle: dict[str, Any], version: int) -> None:
        claim = _claim_record(bundle, version, clock)
        events.send_claims([claim])
        prior = [earlier for earlier, _ in good if earlier["patient_id"] == claim["patient_id"]]
        good.append((claim, {**bundle, "claim": claim, "prior_claims": prior}))

    def send_poison(name: str, value: bytes | None, reasons: set[str], key: bytes = key, **extra: Any) -> None:
        poison[name] = (value, reasons)
        placed[name] = events.send_raw(claims, key, value, **extra)

    send_good(alice, 1)
    send_poison("random bytes", noise.randbytes(64), {"decode"}, headers=[("trace-id", b"t-7507")])
    send_poison("truncated avro", good_bytes[: len(good_bytes) // 2], {"decode"})
    send_good(alice, 2)
    prescription_bytes = wire.encode("PrescriptionRecorded", alice["prescriptions"][0], claims)
    send_poison("prescription on the claims topic", prescription_bytes, {"decode", "contract"})
    send_poison("missing diagnosis_codes", _without_field(alice["claim"], "diagnosis_codes"), {"decode", "contract"})
    send_poison("key is not the patient_id", wire.encode("ClaimSubmitted", bob["claim"], claims), {"contract"})
    send_poison("tombstone", None, {"decode"})
    send_good(bob, 1)
    send_good(alice, 3)
    send_poison("random bytes, last in its partition", noise.randbytes(200), {"decode"})
    alice_partition = key_partition(alice["claim"]["patient_id"], stream.partitions["claims"])
    assert {p.partition for p in placed.values()} == {alice_partition}

    with InProcessWorker(stream.settings()), OutputCollector(stream) as outputs:
        outputs.wait_for(decisions=len(good), dead_letters=len(poison) + 1)
    committed = committed_offsets(stream.bootstrap, stream.group_id)

    # Good claims around the poison were decided, each as offline.
    decided = {d.version: d.value for d in outputs.decisions}
    assert len(outputs.decisions) == len(decided) == len(good)
    for claim, bundle in good:
        assert comparable(decided[(claim["claim_id"], claim["claim_version"])]) == judge.expected(bundle)

    # Every poison record is kept byte for byte, with where it came from and why.
    letters = {(d.source.topic, d.source.offset): d for d in outputs.dead_letters}
    assert len(letters) == len(outputs.dead_letters) == len(poison) + 1
    for name, (value, reasons) in poison.items():
        letter = letters[(claims, placed[name].offset)]
        assert letter.key == key, name
        assert letter.value == value, name
        assert letter.source == placed[name], name
        assert letter.header("error_reason") in reasons, name
        assert letter.header("error_class"), name
        assert letter.header("error_message"), name
        assert "P-POISON" not in (letter.header("error_message") or ""), name
        assert letter.header("worker_version") == __version__, name
    assert letters[(claims, placed["random bytes"].offset)].header("trace-id") == "t-7507"
    mismatch = letters[(claims, placed["key is not the patient_id"].offset)]
    assert mismatch.header("error_class") == "ContractError"
    context_letter = letters[(stream.topics.prescriptions, context_poison.offset)]
    assert context_letter.source == context_poison
    assert context_letter.header("error_reason") == "decode"

    # The poison offsets are committed: nothing before the end of any input partition is owed.
    for role in ("claims", "prescriptions", "lab_results"):
        topic = getattr(stream.topics, role)
        for number, end in topic_end_offsets(stream, role).items():
            if end:
                assert committed.get(TopicPartition(topic, number)) == end, (topic, number)

    # A restart re-reads the context topics to restore them, poison included: no second dead letter.
    with InProcessWorker(stream.settings()), OutputCollector(stream) as outputs:
        send_good(alice, 4)
        outputs.wait_for(decisions=len(good))
    outputs.catch_up()
    assert len(outputs.dead_letters) == len(poison) + 1
    assert sorted(d.version for d in outputs.decisions) == sorted(
        (claim["claim_id"], claim["claim_version"]) for claim, _ in good
    )
    assert comparable(outputs.by_version()[("C-POISON-A", 4)][0].value) == judge.expected(good[-1][1])


# Regression guard: a SIGTERM handler that logged would deadlock on structlog's non-reentrant
# write lock when the signal lands while the main thread writes a log line (most of the time under
# load). Blocking stdout makes that timing deterministic.


@pytest.mark.slow
@pytest.mark.skipif(
    not Path("/proc/self/syscall").exists() or WRITE_SYSCALL < 0, reason="needs Linux /proc/PID/syscall"
)
def test_sigterm_under_load_exits_zero_with_every_committed_claim_answered(
    stream: StreamSetup, events: EventProducer, tmp_path: Path
) -> None:
    """SIGTERM lands mid-batch, while the worker writes the log lines of decisions not yet committed."""
    workload = make_workload("TERM", 400)
    events.send_context(workload.context)
    with (
        OutputCollector(stream) as outputs,
        WorkerProcess(stream, tmp_path, "terminated", gated_logs=True) as worker,
    ):
        worker.wait_for_event(lambda e: e.get("event") == "worker_ready", "a rebuilt assignment", 60)
        worker.hold_logs()
        with BackgroundProducer(stream.bootstrap, stream.topics, workload.claims, pause_s=0.01) as load:
            # Its stdout full, the worker stops inside a claim_decided line, before the batch's commit.
            wait_for(worker.blocked_writing_logs, "the worker to block on its stdout")
            signalled = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            worker.release_logs()
            status = worker.wait(SIGTERM_PATIENCE_S)
            stopped_after = time.monotonic() - signalled
            produced = load.sent
        print(f"SIGTERM: exit {status} after {stopped_after:.2f}s, {produced} claims produced by then")
        assert status == 0, worker.tail()
        committed = committed_offsets(stream.bootstrap, stream.group_id)
        outputs.catch_up()

    answered: dict[int, set[int]] = {}
    for decision in outputs.decisions:
        answered.setdefault(decision.source.partition, set()).add(decision.source.offset)
    for letter in outputs.dead_letters:
        if letter.source.topic == stream.topics.claims:
            answered.setdefault(letter.source.partition, set()).add(letter.source.offset)
    claims_committed = 0
    for number in range(stream.partitions["claims"]):
        position = committed.get(TopicPartition(stream.topics.claims, number), 0)
        claims_committed += position
        unanswered = set(range(position)) - answered.get(number, set())
        assert not unanswered, f"partition {number}: committed offsets without an output: {sorted(unanswered)[:10]}"
    assert claims_committed > 0
