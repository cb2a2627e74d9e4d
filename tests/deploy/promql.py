"""Every PromQL expression the deployment ships: Grafana dashboard queries and Prometheus rules.

The deploy tests use this to check metric names and syntax offline; an integration test that
runs a real Prometheus against a running worker can evaluate each expression through the
query API:

    from deploy.promql import all_queries
    for query in all_queries():
        result = prometheus_instant_query(query.expr)   # must not be an error
        ...

Grafana template variables are replaced by values a bare Prometheus accepts: the label
filters ($namespace, $pod, $topic) by the regex ``.*`` (they are always used with ``=~``) and
the interval variables by durations. Pass ``variables`` to choose other values, for example a
longer ``__rate_interval`` for a Prometheus that has scraped for a while.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from .paths import DASHBOARD_PATH, RULES_PATH

# Short windows, so a Prometheus that has scraped for a minute or two already returns data.
DEFAULT_VARIABLES: Mapping[str, str] = {
    "namespace": ".*",
    "pod": ".*",
    "topic": ".*",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
}

# $name, ${name}, ${name:format} and the deprecated [[name]].
_VARIABLE = re.compile(r"\$\{(?P<braced>\w+)(?::\w+)?\}|\[\[(?P<old>\w+)\]\]|\$(?P<bare>\w+)")


@dataclass(frozen=True)
class PromQLQuery:
    """One expression and where it comes from."""

    source: str  # e.g. "dashboard panel 'Lag per partition' A" or "rule j7507-worker.alerts/J7507..."
    raw: str  # as written in the file, Grafana variables included
    expr: str  # variables substituted: ready for Prometheus


def substitute(expr: str, variables: Mapping[str, str] = DEFAULT_VARIABLES) -> str:
    """Replace Grafana template variables; an unknown variable is an error, not a silent gap."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("old") or match.group("bare")
        if name not in variables:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return variables[name]

    return _VARIABLE.sub(replace, expr)


def dashboard_queries(
    path: Path = DASHBOARD_PATH, variables: Mapping[str, str] = DEFAULT_VARIABLES
) -> list[PromQLQuery]:
    """Panel targets (rows included, nested or not) and annotation queries of the dashboard."""
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    queries: list[PromQLQuery] = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            raw = target.get("expr", "")
            if raw:
                source = f"dashboard panel {panel.get('title', '')!r} {target.get('refId', '')}".rstrip()
                queries.append(PromQLQuery(source, raw, substitute(raw, variables)))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        raw = annotation.get("expr", "")
        if raw:
            source = f"dashboard annotation {annotation.get('name', '')!r}"
            queries.append(PromQLQuery(source, raw, substitute(raw, variables)))
    return queries


def rule_queries(path: Path = RULES_PATH) -> list[PromQLQuery]:
    """Recording and alerting rule expressions, in file order."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    queries: list[PromQLQuery] = []
    for group in document["groups"]:
        for rule in group["rules"]:
            name = rule.get("record") or rule.get("alert")
            raw = rule["expr"].strip()
            queries.append(PromQLQuery(f"rule {group['name']}/{name}", raw, raw))
    return queries


def all_queries(variables: Mapping[str, str] = DEFAULT_VARIABLES) -> list[PromQLQuery]:
    """Dashboard queries first, then rules."""
    return dashboard_queries(variables=variables) + rule_queries()


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def metric_names(expr: str) -> frozenset[str]:
    """Metric names an expression selects, read from the parsed PromQL, not guessed by regex."""
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__":
                    names.add(matcher.value)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return frozenset(names)


def recording_rule_names(path: Path = RULES_PATH) -> frozenset[str]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return frozenset(rule["record"] for group in document["groups"] for rule in group["rules"] if "record" in rule)
