"""The Prometheus rules file: promtool accepts it, its unit tests pass, its alerts are usable."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
import yaml

from .catalogue import exposed_series_names
from .paths import CHART_RULES_PATH, DASHBOARD_PATH, PROMTOOL_TESTS, REPO_ROOT, RULES_PATH
from .promql import dashboard_queries, iter_panels, metric_names, recording_rule_names, rule_queries

REQUIRED_ALERTS = frozenset(
    {
        "J7507ConsumerLagGrowing",
        "J7507PartitionStalled",
        "J7507DeadLetterRatioHigh",
        "J7507LoopHeartbeatMissing",
        "J7507DenyRiskShareShift",
    }
)
# Words that would put patient or claim identity into alert labels or text.
IDENTIFYING = re.compile(r"patient|\bmember|claim_id|\bmrn\b", re.IGNORECASE)


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES_PATH.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)


def test_promtool_accepts_the_rules_file(promtool: str) -> None:
    result = _promtool(promtool, "check", "rules", str(RULES_PATH))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass(promtool: str) -> None:
    # Covers the stalled-partition, heartbeat, dead-letter, lag and DENY_RISK alerts.
    result = _promtool(promtool, "test", "rules", str(PROMTOOL_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_plain_rules_file_is_the_charts_copy() -> None:
    # One source for plain Prometheus and the PrometheusRule, so they cannot drift apart.
    assert RULES_PATH.resolve() == CHART_RULES_PATH.resolve()


def test_required_alerts_exist() -> None:
    assert {alert["alert"] for alert in _alerts()} >= REQUIRED_ALERTS


@pytest.mark.parametrize("alert", _alerts(), ids=lambda alert: str(alert["alert"]))
def test_alert_has_severity_wait_and_runbook_text(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in {"warning", "critical"}
    assert re.fullmatch(r"\d+[smh]", alert["for"])
    annotations = alert["annotations"]
    assert annotations["summary"].strip()
    # The description says what it means and what to do: a sentence or two is not enough.
    assert len(annotations["description"].split()) >= 40


def test_alerts_name_dashboard_panels_that_exist() -> None:
    dashboard = json.loads(DASHBOARD_PATH.read_text(encoding="utf-8"))
    titles = [str(panel.get("title", "")) for panel in iter_panels(dashboard)]
    referenced = {
        name
        for alert in _alerts()
        for name in re.findall(r'"([^"]+)"\s+(?:latency\s+)?panel', alert["annotations"]["description"])
    }
    assert referenced, "descriptions should point the on-call at a panel"
    for name in referenced:
        assert any(title.startswith(name) for title in titles), f"no dashboard panel titled {name!r}"


def test_rules_read_only_worker_metrics_and_their_own_recordings() -> None:
    allowed = exposed_series_names() | recording_rule_names()
    for query in rule_queries():
        assert metric_names(query.expr) <= allowed, query.source


def test_every_recording_rule_is_read_by_an_alert_or_the_dashboard() -> None:
    used = set().union(*(metric_names(query.expr) for query in rule_queries() + dashboard_queries()))
    assert recording_rule_names() <= used


def test_recording_rule_names_follow_level_metric_operation() -> None:
    for name in recording_rule_names():
        assert re.fullmatch(r"[a-z_]+:j7507_[a-z0-9_]+:[a-z0-9_]+", name), name


def test_no_patient_identifiers_in_rules() -> None:
    for rule in _rules():
        texts = [rule["expr"], *rule.get("labels", {}).values(), *rule.get("annotations", {}).values()]
        for text in texts:
            assert not IDENTIFYING.search(str(text)), f"{rule.get('alert') or rule.get('record')}: {text}"
