"""Impact analysis over the topics, and live shadow evaluation, on a real broker.

- `impact` without a file reads the three input topics from the beginning to their end at start and
  gives the same report as `impact` over the bundles of the same claims (each with the context that
  precedes it); poison is named by topic/partition@offset and the run goes on.
- `run --shadow-payer-config` publishes the real decisions unchanged (values, headers, commits) and
  the candidate's decisions to the shadow topic with `shadow: true`; a candidate that raises is
  counted, never dead-letters the claim.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import TopicPartition

from worker.cli_impact import parse_time
from worker.codec.wire import PlainAvro
from worker.devkit.synthetic import SyntheticDataset, generate
from worker.engine.evaluate import Evaluator
from worker.engine.reference import load_reference
from worker.engine.rules.packs import load_packs
from worker.offline.impact import DualEvaluator, ImpactAnalysis
from worker.offline.impact_bundles import analyse_bundles
from worker.offline.impact_progress import Progress
from worker.offline.impact_topics import TopicsImpact
from worker.offline.offline import evaluate_bundle_text

from .outputs import OutputCollector
from .producing import EventProducer, new_producer
from .stream_setup import OUTPUT_PATIENCE_S, StreamSetup, committed_offsets, create_stream, log_end_offsets
from .workers import InProcessWorker
from .workloads import comparable

DEMO_PAYERS = Path(__file__).resolve().parents[2] / "worker" / "devkit" / "demo_payers"
TopicFactory = Callable[..., str]


def _produce(events: EventProducer, dataset: SyntheticDataset) -> None:
    for event in dataset.events:
        events.send(event.kind, event.record)
    events.flush()


def _dual() -> DualEvaluator:
    reference = load_reference(None)
    return DualEvaluator(Evaluator(load_packs(None), reference), Evaluator(load_packs(DEMO_PAYERS), reference))


def test_topics_mode_reports_what_file_mode_reports_for_the_same_claims(
    stream: StreamSetup, events: EventProducer
) -> None:
    dataset = generate(40, seed=21)
    _produce(events, dataset)
    # Poison in the claims topic and in a context topic: named, counted, never fatal.
    claims_poison = events.send_raw(stream.topics.claims, b"P-POISON", b"\x00not avro")
    lab_poison = events.send_raw(stream.topics.lab_results, b"P-POISON", b"\x01\x02")

    from_file = ImpactAnalysis()
    analyse_bundles(_dual(), [json.dumps(bundle) for bundle in dataset.bundles()], from_file)
    expected = from_file.report()

    from_topics = ImpactAnalysis()
    progress = io.StringIO()
    settings = stream.settings(TIMESTAMP_SOURCE="event_time")
    reader = TopicsImpact(settings, _dual(), from_topics, PlainAvro(), Progress(progress, terminal=False))
    reader.run()
    report = from_topics.report()

    assert expected.claims > 100 and expected.changed
    assert report.to_json() == expected.to_json()
    assert sorted(bad.where for bad in report.bad_input) == sorted(
        f"{placed.topic}/{placed.partition}@{placed.offset}" for placed in (claims_poison, lab_poison)
    )
    assert all("P-POISON" not in bad.problem for bad in report.bad_input)
    total = sum(1 for _ in dataset.events) + 2
    assert reader.records_read == total
    assert f"impact: read {total:,}/{total:,} records (100.0%)" in progress.getvalue().splitlines()[-1]


def test_since_limits_the_report_but_earlier_claims_stay_history(stream: StreamSetup, events: EventProducer) -> None:
    dataset = generate(15, seed=4)
    _produce(events, dataset)
    bundles = list(dataset.bundles())
    times = sorted(bundle["claim"]["event_time"] for bundle in bundles)
    since = times[len(times) // 2]
    moment = parse_time(since, "--since")
    from_file = ImpactAnalysis(since=moment)
    analyse_bundles(_dual(), [json.dumps(bundle) for bundle in bundles], from_file)
    from_topics = ImpactAnalysis(since=moment)
    TopicsImpact(stream.settings(TIMESTAMP_SOURCE="event_time"), _dual(), from_topics, PlainAvro()).run()
    assert 0 < from_topics.report().claims < len(bundles)
    assert from_topics.report().to_json() == from_file.report().to_json()


def test_shadow_never_changes_real_decisions_and_a_raising_candidate_is_counted(
    kafka_bootstrap: str, topic_factory: TopicFactory, new_group_id: Callable[..., str]
) -> None:
    stream = create_stream(kafka_bootstrap, topic_factory, new_group_id())
    shadow_topic = topic_factory(partitions=stream.partitions["decisions"], prefix="shadow")
    producer = new_producer(kafka_bootstrap)
    events = EventProducer(producer, stream.topics)
    dataset = generate(12, seed=8)
    # Claims without a J7507 line are skipped: no decision, no shadow.
    bundles = [b for b in dataset.bundles() if any(line["hcpcs_code"] == "J7507" for line in b["claim"]["lines"])]
    poisoned = bundles[len(bundles) // 2]["claim"]
    raising = (poisoned["claim_id"], poisoned["claim_version"])
    settings = stream.settings(
        TIMESTAMP_SOURCE="event_time",
        SHADOW_PAYER_CONFIG_DIR=str(DEMO_PAYERS),
        TOPIC_SHADOW_DECISIONS=shadow_topic,
    )
    worker = InProcessWorker(settings)
    shadow = worker.app.worker.shadow
    assert shadow is not None
    real_decide = shadow.evaluator.decide

    def candidate(claim: Any, *args: Any, **kwargs: Any) -> Any:
        if (claim.claim_id, claim.claim_version) == raising:
            raise RuntimeError("a candidate that raises")
        return real_decide(claim, *args, **kwargs)

    shadow.evaluator.decide = candidate  # type: ignore[method-assign]
    try:
        _produce(events, dataset)
        with worker, OutputCollector(stream) as outputs:
            outputs.wait_for_versions((b["claim"]["claim_id"], b["claim"]["claim_version"]) for b in bundles)
            outputs.catch_up()
        registry = worker.app.metrics.registry
    finally:
        producer.close(timeout=10)

    dual = _dual()
    assert outputs.dead_letters == []
    real = {d.version: d for d in outputs.decisions}
    for bundle in bundles:
        version = (bundle["claim"]["claim_id"], bundle["claim"]["claim_version"])
        decision = real[version]
        expected = evaluate_bundle_text(dual.baseline, json.dumps(bundle))
        assert comparable(decision.value) == comparable(expected.to_dict()), version
        assert decision.headers == {
            "outcome": expected.outcome.encode(),
            "decision_id": expected.decision_id.encode(),
            "rule_pack": str(expected.rule_pack).encode(),
        }

    shadowed = _read_topic(kafka_bootstrap, shadow_topic, stream.partitions["decisions"])
    by_version = {(v["claim_id"], v["claim_version"]): (v, h) for v, h in shadowed}
    assert raising not in by_version
    assert len(by_version) == len(shadowed) == len(bundles) - 1
    moved = 0
    for bundle in bundles:
        version = (bundle["claim"]["claim_id"], bundle["claim"]["claim_version"])
        if version == raising:
            continue
        value, headers = by_version[version]
        expected = evaluate_bundle_text(dual.candidate, json.dumps(bundle))
        assert comparable(value) == comparable(expected.to_dict()), version
        assert headers["shadow"] == b"true" and headers["outcome"] == expected.outcome.encode()
        moved += real[version].value["outcome"] != expected.outcome

    assert registry.get_sample_value("j7507_shadow_errors_total") == 1
    pairs = sum(
        registry.get_sample_value("j7507_shadow_decisions_total", {"baseline": b, "candidate": c}) or 0
        for b in ("accept", "hold", "deny_risk")
        for c in ("accept", "hold", "deny_risk")
    )
    assert pairs == len(bundles) - 1
    disagreeing = pairs - sum(
        registry.get_sample_value("j7507_shadow_decisions_total", {"baseline": o, "candidate": o}) or 0
        for o in ("accept", "hold", "deny_risk")
    )
    assert disagreeing == moved > 0
    # The commit covers every claim, the one whose shadow raised included.
    committed = committed_offsets(stream.bootstrap, stream.group_id)
    ends = log_end_offsets(
        stream.bootstrap, [TopicPartition(stream.topics.claims, n) for n in range(stream.partitions["claims"])]
    )
    assert {tp: committed.get(tp, 0) for tp in ends} == ends


def _read_topic(bootstrap: str, topic: str, partitions: int) -> list[tuple[dict[str, Any], dict[str, bytes]]]:
    from kafka import KafkaConsumer

    tps = [TopicPartition(topic, n) for n in range(partitions)]
    ends = log_end_offsets(bootstrap, tps)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    wire = PlainAvro()
    out: list[tuple[dict[str, Any], dict[str, bytes]]] = []
    try:
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + OUTPUT_PATIENCE_S
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for records in consumer.poll(timeout_ms=200).values():
                out += [(wire.decode("ClaimDecision", r.value), dict(r.headers or [])) for r in records]
    finally:
        consumer.close(autocommit=False)
    return out
