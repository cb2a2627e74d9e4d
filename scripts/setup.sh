#!/usr/bin/env bash
# Set up .venv with the project and the given extras, on a fresh Debian machine or any Linux with
# Python >= 3.11. Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh embedded,dev
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-embedded}"
python="${PYTHON:-python3}"

source scripts/lib.sh

"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "setup: Python 3.11 or newer is needed ($python is $("$python" --version 2>&1))" >&2; exit 1; }
# Debian splits venv/ensurepip out of the interpreter package.
"$python" -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[${extras}]"
