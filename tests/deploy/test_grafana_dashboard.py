"""The Grafana dashboard: every panel queries known metrics through the template variables."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .catalogue import WORKER_METRICS, base_metric, exposed_series_names
from .paths import DASHBOARD_PATH
from .promql import (
    DEFAULT_VARIABLES,
    dashboard_queries,
    iter_panels,
    metric_names,
    recording_rule_names,
    substitute,
)

FILTER_VARIABLES = ("namespace", "pod", "topic")
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_PATH.read_text(encoding="utf-8"))
    return loaded


def _variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in dashboard["templating"]["list"]}


def _content_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(panel) for panel in iter_panels(dashboard) if panel["type"] != "row"]


def test_schema_version_and_datasource_variable(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] >= 38
    datasource = _variables(dashboard)["datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")


def test_every_panel_and_query_uses_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    expected = {"type": "prometheus", "uid": "${datasource}"}
    for panel in _content_panels(dashboard):
        assert panel["datasource"] == expected, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == expected, panel["title"]


def test_every_panel_has_a_query(dashboard: dict[str, Any]) -> None:
    panels = _content_panels(dashboard)
    assert len(panels) >= 12
    for panel in panels:
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        assert all(target.get("expr", "").strip() for target in panel["targets"]), panel["title"]


def test_filter_variables_are_label_values_of_worker_metrics(dashboard: dict[str, Any]) -> None:
    variables = _variables(dashboard)
    for name in FILTER_VARIABLES:
        variable = variables[name]
        assert variable["type"] == "query"
        assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        match = LABEL_VALUES.match(variable["query"]["query"])
        assert match is not None, variable["query"]
        assert match.group("label") == name
        selector = substitute(match.group("selector"), DEFAULT_VARIABLES)
        assert metric_names(selector) <= set(WORKER_METRICS)
        # "All" must be a regex that matches every value, since queries use =~.
        assert variable["includeAll"] is True
        assert variable["allValue"] == ".*"


def test_queries_filter_by_the_template_variables(dashboard: dict[str, Any]) -> None:
    queries = dashboard_queries()
    recorded = recording_rule_names()
    for query in queries:
        assert '=~"$namespace"' in query.raw, query.source
        # Recording rules aggregate pods away; everything else must honour the pod filter.
        if not metric_names(query.expr) & recorded and "annotation" not in query.source:
            assert '=~"$pod"' in query.raw, query.source
    assert any('=~"$topic"' in query.raw for query in queries)


def test_queries_use_only_worker_metrics_and_recording_rules() -> None:
    allowed = exposed_series_names() | recording_rule_names()
    for query in dashboard_queries():
        names = metric_names(query.expr)
        assert names, f"{query.source} selects no metric"
        assert names <= allowed, f"{query.source}: unknown {sorted(names - allowed)}"


def test_every_worker_metric_is_on_the_dashboard() -> None:
    shown = {base_metric(name) for query in dashboard_queries() for name in metric_names(query.expr)}
    assert set(WORKER_METRICS) <= shown


@pytest.mark.parametrize("histogram", ["j7507_claim_processing_seconds", "j7507_end_to_end_latency_seconds"])
def test_latency_panels_show_p50_p95_p99(histogram: str) -> None:
    pattern = re.compile(r"histogram_quantile\((0\.\d+),.*" + histogram + r"_bucket", re.DOTALL)
    quantiles = {float(match.group(1)) for q in dashboard_queries() if (match := pattern.search(q.expr))}
    assert quantiles >= {0.5, 0.95, 0.99}


def test_panels_have_unique_ids_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    panels = list(iter_panels(dashboard))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells


def test_substitute_replaces_every_variable_form() -> None:
    expr = 'rate(x{a=~"$namespace", b=~"${pod}", c=~"${topic:regex}", d=~"[[pod]]"}[$__rate_interval])'
    assert substitute(expr) == 'rate(x{a=~".*", b=~".*", c=~".*", d=~".*"}[1m])'
    with pytest.raises(KeyError, match="cluster"):
        substitute('x{cluster=~"$cluster"}')


def test_promtool_parses_every_dashboard_query(promtool: str, tmp_path: Path) -> None:
    # promtool parses with the Prometheus version that will run the queries; wrapping each
    # query as a recording rule lets `check rules` do it without a server.
    rules = [
        {"record": f"dashboard:query:{index}", "expr": query.expr} for index, query in enumerate(dashboard_queries())
    ]
    rules_file = tmp_path / "dashboard-queries.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    result = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
