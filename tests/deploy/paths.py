"""Where the deployment artefacts live, relative to the repository root."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy"
DOCKERFILE = DEPLOY_DIR / "Dockerfile"
DOCKERIGNORE = DEPLOY_DIR / "Dockerfile.dockerignore"
CHART_DIR = DEPLOY_DIR / "helm" / "j7507-worker"
# The rules live in the chart (Helm can only read files inside it); deploy/prometheus links there.
CHART_RULES_PATH = CHART_DIR / "files" / "j7507-worker-rules.yaml"
RULES_PATH = DEPLOY_DIR / "prometheus" / "j7507-worker-rules.yaml"
DASHBOARD_PATH = DEPLOY_DIR / "grafana" / "j7507-worker.json"
PROMTOOL_TESTS = Path(__file__).resolve().parent / "promtool" / "j7507-worker-rules.test.yaml"
