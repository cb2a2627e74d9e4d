"""Rewrite the README's generated tables (rules, settings) from the code (`python scripts/sync_readme.py`)."""

from __future__ import annotations

import re
from pathlib import Path

from worker.offline.catalogue import markdown_table
from worker.settings_table import markdown_table as settings_table

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"(<!-- rules:start -->\n).*?(<!-- rules:end -->)", re.DOTALL)
SETTINGS_BLOCK = re.compile(r"(<!-- settings:start -->\n).*?(<!-- settings:end -->)", re.DOTALL)


def main() -> None:
    text = README.read_text(encoding="utf-8")
    text = BLOCK.sub(lambda m: m.group(1) + markdown_table() + "\n" + m.group(2), text)
    text = SETTINGS_BLOCK.sub(lambda m: m.group(1) + settings_table() + m.group(2), text)
    README.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
