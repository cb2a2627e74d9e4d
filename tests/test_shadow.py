"""Live shadow evaluation, Kafka-free: what `Shadow.observe` counts, publishes and never raises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from worker.codec.wire import PlainAvro
from worker.engine.context import PatientContext
from worker.engine.evaluate import Evaluator
from worker.engine.events import Source
from worker.engine.reference import load_reference
from worker.engine.rules import RULES
from worker.engine.rules.packs import load_packs
from worker.observability import Metrics
from worker.offline.offline import parse_bundle
from worker.stream.shadow import Shadow

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PAYER_CONFIG = FIXTURES / "payer-config"
EXAMPLES = [json.loads(text)["bundle"] for text in (FIXTURES / "bundles.jsonl").read_text("utf-8").splitlines()]
SOURCE = Source("ehr.claims.v1", 0, 7)


class FakeFuture:
    def __init__(self) -> None:
        self.errbacks: list[Any] = []

    def add_errback(self, callback: Any) -> FakeFuture:
        self.errbacks.append(callback)
        return self


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, topic: str, **kwargs: Any) -> FakeFuture:
        future = FakeFuture()
        self.sent.append({"topic": topic, "future": future, **kwargs})
        return future


@pytest.fixture
def metrics() -> Metrics:
    metrics = Metrics(CollectorRegistry(), rule_ids=[(spec.rule_id, spec.outcomes) for spec in RULES.values()])
    metrics.start_shadow()
    return metrics


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def _claim_and_context(payer_id: str = "PA-PLAN") -> tuple[Any, PatientContext]:
    bundle = json.loads(json.dumps(EXAMPLES[0]))
    bundle["claim"]["payer"] = {"payer_id": payer_id, "payer_type": "COMMERCIAL", "plan_id": None}
    parsed = parse_bundle(json.dumps(bundle))
    return parsed.claim, PatientContext.from_lists(parsed.prescriptions, parsed.labs, parsed.prior_claims)


def _evaluators() -> tuple[Evaluator, Evaluator]:
    reference = load_reference(None)
    return Evaluator(load_packs(None), reference), Evaluator(load_packs(PAYER_CONFIG), reference)


def test_observe_counts_the_outcome_pair_and_the_candidates_findings(metrics: Metrics) -> None:
    live, candidate = _evaluators()
    claim, context = _claim_and_context()
    decision = live.decide(claim, context, SOURCE)
    shadow = Shadow(candidate, metrics, PlainAvro())
    result = shadow.observe(decision, claim, context, SOURCE, None, b"P-1", FakeProducer())
    assert result is not None  # the plan requires prior authorization, the built-in pack does not
    assert "prior-auth-missing" in result.rule_ids and "prior-auth-missing" not in decision.rule_ids
    pair = {"baseline": decision.outcome.lower(), "candidate": result.outcome.lower()}
    assert _sample(metrics, "j7507_shadow_decisions_total", **pair) == 1
    assert _sample(metrics, "j7507_shadow_rule_findings_total", rule_id="prior-auth-missing", outcome="deny_risk") == 1
    assert _sample(metrics, "j7507_shadow_errors_total") == 0


def test_the_shadow_publishes_with_the_real_headers_plus_shadow_true(metrics: Metrics) -> None:
    live, candidate = _evaluators()
    claim, context = _claim_and_context()
    decision = live.decide(claim, context, SOURCE)
    producer = FakeProducer()
    shadow = Shadow(candidate, metrics, PlainAvro(), topic="billing.j7507.shadow.v1")
    result = shadow.observe(decision, claim, context, SOURCE, None, b"P-1", producer)
    assert result is not None
    [sent] = producer.sent
    assert sent["topic"] == "billing.j7507.shadow.v1" and sent["key"] == b"P-1"
    assert dict(sent["headers"]) == {
        "outcome": result.outcome.encode(),
        "decision_id": result.decision_id.encode(),
        "rule_pack": str(result.rule_pack).encode(),
        "shadow": b"true",
    }
    assert PlainAvro().decode("ClaimDecision", sent["value"])["outcome"] == result.outcome
    # A send that fails later is counted, not raised (it runs on the producer's IO thread).
    sent["future"].errbacks[0](TimeoutError())
    assert _sample(metrics, "j7507_shadow_errors_total") == 1


def test_a_candidate_that_raises_is_counted_and_never_raises(metrics: Metrics) -> None:
    live, candidate = _evaluators()
    claim, context = _claim_and_context()
    decision = live.decide(claim, context, SOURCE)

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"bad candidate for {claim.patient_id}")

    candidate.decide = explode  # type: ignore[method-assign]
    producer = FakeProducer()
    shadow = Shadow(candidate, metrics, PlainAvro(), topic="billing.j7507.shadow.v1")
    assert shadow.observe(decision, claim, context, SOURCE, None, b"P-1", producer) is None
    assert producer.sent == []
    assert _sample(metrics, "j7507_shadow_errors_total") == 1
    assert (
        sum(
            _sample(metrics, "j7507_shadow_decisions_total", baseline=b, candidate=c)
            for b in ("accept", "hold", "deny_risk")
            for c in ("accept", "hold", "deny_risk")
        )
        == 0
    )


def test_shadow_series_exist_only_when_a_shadow_runs() -> None:
    metrics = Metrics(CollectorRegistry(), rule_ids=[("trough-missing", ("HOLD",))])
    assert (
        metrics.registry.get_sample_value("j7507_shadow_decisions_total", {"baseline": "accept", "candidate": "accept"})
        is None
    )
    metrics.start_shadow()
    assert (
        metrics.registry.get_sample_value("j7507_shadow_decisions_total", {"baseline": "accept", "candidate": "hold"})
        == 0
    )
    assert (
        metrics.registry.get_sample_value(
            "j7507_shadow_rule_findings_total", {"rule_id": "trough-missing", "outcome": "hold"}
        )
        == 0
    )


# --- settings -------------------------------------------------------------------------------------


def _settings(**env: str) -> Any:
    import argparse

    from worker.config import settings_from

    return settings_from(argparse.Namespace(), {"KAFKA_BOOTSTRAP_SERVERS": "k:9092", **env})


def test_shadow_settings_come_from_flags_or_environment() -> None:
    settings = _settings(SHADOW_PAYER_CONFIG_DIR=str(PAYER_CONFIG), TOPIC_SHADOW_DECISIONS="billing.shadow.v1")
    assert settings.shadow_payer_config_dir == PAYER_CONFIG
    assert settings.shadow_decisions_topic == "billing.shadow.v1"
    assert _settings().shadow_payer_config_dir is None


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"SHADOW_PAYER_CONFIG_DIR": "/no/such/dir"}, "SHADOW_PAYER_CONFIG_DIR: no such directory"),
        ({"TOPIC_SHADOW_DECISIONS": "t"}, "TOPIC_SHADOW_DECISIONS: needs --shadow-payer-config"),
        (
            {"SHADOW_PAYER_CONFIG_DIR": str(PAYER_CONFIG), "TOPIC_SHADOW_DECISIONS": "billing.j7507.decisions.v1"},
            "is already a worker topic",
        ),
    ],
)
def test_bad_shadow_settings_are_refused_at_start(env: dict[str, str], problem: str) -> None:
    from worker.errors import ConfigError

    with pytest.raises(ConfigError, match=problem):
        _settings(**env)
