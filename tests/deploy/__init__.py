"""Tests of the deployment artefacts under deploy/ (Docker, Helm, Grafana, Prometheus)."""
