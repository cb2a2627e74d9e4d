"""The README says what the code does: its rule table and commands are checked here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from worker.offline.catalogue import markdown_table
from worker.settings_table import markdown_table as settings_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_rule_table_is_the_codes_catalogue() -> None:
    block = re.search(r"<!-- rules:start -->\n(.*?)<!-- rules:end -->", README, re.DOTALL)
    assert block is not None
    assert block.group(1).strip() == markdown_table().strip(), "run: python scripts/sync_readme.py"


def test_configuration_table_is_the_settings_table() -> None:
    block = re.search(r"<!-- settings:start -->\n(.*?)<!-- settings:end -->", README, re.DOTALL)
    assert block is not None
    assert block.group(1) == settings_table(), "run: python scripts/sync_readme.py"


def test_the_two_commands_come_first_and_exist() -> None:
    commands = re.findall(r"^(scripts/\S+)", README, re.MULTILINE)
    assert commands[:2] == ["scripts/setup.sh", "scripts/test.sh"]
    for script in commands[:2]:
        assert (ROOT / script).stat().st_mode & 0o111, f"{script} is not executable"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "scripts/test.sh" in ci


def test_every_documented_subcommand_has_help() -> None:
    for command in ("evaluate", "impact", "rules", "run", "demo", "dead-letters", "payers"):
        assert f"python -m worker {command}" in README
        result = subprocess.run(
            [sys.executable, "-m", "worker", command, "--help"], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
