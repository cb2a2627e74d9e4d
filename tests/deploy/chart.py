"""Render the Helm chart offline with Helm's own engine (helm-python-sdk, no helm binary)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import helm_python as helm
import yaml

from .paths import CHART_DIR

RELEASE = "claims"
NAMESPACE = "billing"
# Kinds whose schemas are not in Kubernetes itself (Prometheus Operator and KEDA CRDs).
CRD_KINDS = frozenset({"ServiceMonitor", "PrometheusRule", "ScaledObject", "TriggerAuthentication"})


@dataclass(frozen=True)
class Rendered:
    manifests: list[dict[str, Any]]
    notes: str

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [manifest for manifest in self.manifests if manifest["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
        return found[0]

    @property
    def kinds(self) -> set[str]:
        return {manifest["kind"] for manifest in self.manifests}


def render(values: Mapping[str, Any] | None = None) -> Rendered:
    """Validate values against values.schema.json, then render as `helm template` would."""
    user_values = dict(values) if values is not None else None
    with helm.Chart.load(CHART_DIR) as chart:
        chart.validate_schema(user_values)
        files = chart.render(user_values, name=RELEASE, namespace=NAMESPACE)
    manifests: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            notes = text
        elif path.endswith((".yaml", ".yml")):
            manifests.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(manifests, notes)


def lint(values: Mapping[str, Any] | None = None, kube_version: str = "v1.30.0") -> dict[str, Any]:
    """`helm lint --strict` findings as data (severity 1 info, 2 warning, 3 error)."""
    return helm.lint(CHART_DIR, dict(values) if values is not None else None, strict=True, kube_version=kube_version)


def container(deployment: Mapping[str, Any], name: str = "worker") -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    matching = [candidate for candidate in containers if candidate["name"] == name]
    assert len(matching) == 1, f"expected one container named {name}"
    return matching[0]


def env_of(deployment: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The worker container's env, by variable name (a duplicate name fails)."""
    env: list[dict[str, Any]] = container(deployment).get("env", [])
    names = [item["name"] for item in env]
    assert len(names) == len(set(names)), f"duplicate env vars: {names}"
    return {item["name"]: item for item in env}
