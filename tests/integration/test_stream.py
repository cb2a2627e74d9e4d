"""The stream worker against a real broker: decisions equal offline evaluation, with fresh context."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .outputs import OutputCollector
from .producing import EventProducer, new_producer, placed
from .stream_setup import OUTPUT_PATIENCE_S, StreamSetup, create_stream, key_partition
from .workers import InProcessWorker, WorkerProcess
from .workloads import EventClock, OfflineJudge, as_event, comparable, load_example_bundles, personalise

TopicFactory = Callable[..., str]
GroupIdFactory = Callable[..., str]


def test_example_bundles_are_decided_as_offline(stream: StreamSetup, events: EventProducer) -> None:
    """Half the bundles wait in the topics before the worker starts (restore), half arrive live."""
    clock = EventClock()
    examples = load_example_bundles()
    bundles = [personalise(bundle, f"P-STREAM-{number}", clock) for number, (_, bundle) in enumerate(examples)]
    judge = OfflineJudge()
    before, after = bundles[:3], bundles[3:]

    claims_at = dict(zip([b["claim"]["patient_id"] for b in before], events.send_bundles(before), strict=True))
    with InProcessWorker(stream.settings()), OutputCollector(stream) as outputs:
        outputs.wait_for(decisions=1)
        claims_at |= dict(zip([b["claim"]["patient_id"] for b in after], events.send_bundles(after), strict=True))
        outputs.wait_for(decisions=len(bundles))

    assert outputs.dead_letters == []
    by_patient = {decision.value["patient_id"]: decision for decision in outputs.decisions}
    assert len(outputs.decisions) == len(by_patient) == len(bundles)
    for (name, _), bundle in zip(examples, bundles, strict=True):
        patient_id = bundle["claim"]["patient_id"]
        decision = by_patient[patient_id]
        expected = judge.decide(bundle)
        assert comparable(decision.value) == comparable(expected.to_dict()), name
        assert decision.source == claims_at[patient_id], name
        assert decision.key == patient_id.encode()
        assert decision.headers == {
            "outcome": expected.outcome.encode(),
            "decision_id": expected.decision_id.encode(),
            "rule_pack": str(expected.rule_pack).encode(),
        }
    # The examples were chosen to cover every outcome; a stream that lost context would flatten them.
    assert {d.value["outcome"] for d in outputs.decisions} == {"ACCEPT", "HOLD", "DENY_RISK"}


def _rule_ids(decision: dict[str, Any]) -> set[str]:
    return {finding["rule_id"] for line in decision["lines"] for finding in line["findings"]}


def _send_and_decide(events: EventProducer, outputs: OutputCollector, claim: dict[str, Any]) -> dict[str, Any]:
    """Produce one claim and wait for its decision (so later context cannot have reached it)."""
    events.send_claims([claim])
    version = (claim["claim_id"], claim["claim_version"])
    outputs.wait_until(lambda c: version in c.by_version(), f"the decision of {version}", timeout=OUTPUT_PATIENCE_S)
    return outputs.by_version()[version][-1].value


def test_context_acknowledged_before_a_claim_is_visible_to_it(stream: StreamSetup, events: EventProducer) -> None:
    judge = OfflineJudge()
    clock = EventClock()
    template = load_example_bundles()[0][1]  # clean liver claim: ACCEPT with its context
    patients = [personalise(template, f"P-FRESH-{number}", clock) for number in range(20)]
    with InProcessWorker(stream.settings()), OutputCollector(stream) as outputs:
        # Without the prescription: every claim lacks an active prescription.
        events.send_context([("lab", lab) for bundle in patients for lab in bundle["labs"]])
        first = events.send_claims([bundle["claim"] for bundle in patients])
        outputs.wait_for(decisions=len(patients))
        assert {d.value["outcome"] for d in outputs.decisions} == {"DENY_RISK"}
        assert all("no-active-prescription" in _rule_ids(d.value) for d in outputs.decisions)

        # Each prescription acknowledged just before its patient's next claim version is sent, while
        # the worker is live: the claim must wait for it.
        resubmitted = []
        for bundle in patients:
            events.send_context([("prescription", rx) for rx in bundle["prescriptions"]])
            claim = as_event({**bundle["claim"], "event_id": None, "event_time": None, "claim_version": 2}, clock)
            events.send("claim", claim)
            resubmitted.append({**bundle, "claim": claim, "prior_claims": [bundle["claim"]]})
        events.flush()
        outputs.wait_for(decisions=2 * len(patients))

    assert len(first) == len(patients)
    second = {d.value["patient_id"]: d.value for d in outputs.decisions if d.value["claim_version"] == 2}
    assert len(second) == len(patients)
    for bundle in resubmitted:
        decision = second[bundle["claim"]["patient_id"]]
        assert decision["outcome"] == "ACCEPT", _rule_ids(decision)
        assert comparable(decision) == judge.expected(bundle)


def test_a_corrected_lab_result_replaces_the_old_one(stream: StreamSetup, events: EventProducer) -> None:
    """Liver target 5–20 ng/mL: a correction to 25 raises trough-out-of-range, one to 8 clears it."""
    judge = OfflineJudge()
    clock = EventClock()
    bundle = personalise(load_example_bundles()[0][1], "P-LAB-1", clock)
    trough = next(lab for lab in bundle["labs"] if lab["loinc_code"] == "11253-2")
    assert 5 <= trough["value"] <= 20
    first_time = trough["event_time"]
    corrections = [
        {"value": 25.0, "status": "CORRECTED"},  # newer: replaces 9.1, out of range
        {"value": 8.0, "status": "CORRECTED"},  # newer: replaces 25, in range again
        {"value": 30.0, "status": "CORRECTED", "event_time": first_time},  # older than what is held: ignored
    ]
    expected_out_of_range = [False, True, False, False]
    labs = list(bundle["labs"])
    prior: list[dict[str, Any]] = []
    with InProcessWorker(stream.settings()), OutputCollector(stream) as outputs:
        events.send_context([("prescription", rx) for rx in bundle["prescriptions"]] + [("lab", lab) for lab in labs])
        for version, out_of_range in enumerate(expected_out_of_range, start=1):
            if version > 1:
                correction = as_event(
                    {**trough, "event_id": None, "event_time": None, **corrections[version - 2]}, clock
                )
                events.send_context([("lab", correction)])
                labs.append(correction)
            claim = as_event({**bundle["claim"], "event_id": None, "event_time": None, "claim_version": version}, clock)
            decision = _send_and_decide(events, outputs, claim)
            expected = judge.expected({**bundle, "claim": claim, "labs": list(labs), "prior_claims": list(prior)})
            prior.append(claim)
            assert ("trough-out-of-range" in _rule_ids(decision)) is out_of_range, version
            assert comparable(decision) == expected, version


def test_differing_partition_counts_stop_the_worker_unless_context_is_global(
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    new_group_id: GroupIdFactory,
    tmp_path: Path,
) -> None:
    stream = create_stream(kafka_bootstrap, topic_factory, new_group_id(), counts={"prescriptions": 4})
    with WorkerProcess(stream, tmp_path, "refused") as refused:
        status = refused.wait()
    assert status == 2, refused.tail()
    message = refused.stderr()
    assert "not co-partitioned" in message
    assert stream.topics.claims in message and stream.topics.prescriptions in message
    assert stream.topics.lab_results in message

    # Globally scoped context: the prescription sits in another partition number than the claim.
    judge = OfflineJudge()
    bundle = personalise(load_example_bundles()[0][1], "P-GLOBAL-1", EventClock())
    claim_partition = key_partition(bundle["claim"]["patient_id"], stream.partitions["claims"])
    rx_partition = (claim_partition + 1) % stream.partitions["prescriptions"]
    lab_partition = (claim_partition + 2) % stream.partitions["lab_results"]
    producer = new_producer(stream.bootstrap)
    events = EventProducer(producer, stream.topics)
    try:
        rx = [events.send("prescription", record, partition=rx_partition) for record in bundle["prescriptions"]]
        labs = [events.send("lab", record, partition=lab_partition) for record in bundle["labs"]]
        events.flush()
        [claim] = events.send_claims([bundle["claim"]])
    finally:
        producer.close(timeout=10)
    assert {placed(future).partition for future in rx} == {rx_partition} != {claim.partition}
    assert {placed(future).partition for future in labs} == {lab_partition} != {claim.partition}
    with InProcessWorker(stream.settings(CONTEXT_SCOPE="global")), OutputCollector(stream) as outputs:
        outputs.wait_for(decisions=1)
    [decision] = outputs.decisions
    assert decision.source == claim
    assert decision.value["outcome"] == "ACCEPT", _rule_ids(decision.value)
    assert comparable(decision.value) == judge.expected(bundle)
