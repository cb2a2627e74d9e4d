"""Rewrite the README's generated rule table from the code (`python scripts/sync_readme.py`)."""

from __future__ import annotations

import re
from pathlib import Path

from worker.offline.catalogue import markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"(<!-- rules:start -->\n).*?(<!-- rules:end -->)", re.DOTALL)


def main() -> None:
    text = README.read_text(encoding="utf-8")
    README.write_text(BLOCK.sub(lambda m: m.group(1) + markdown_table() + "\n" + m.group(2), text), encoding="utf-8")


if __name__ == "__main__":
    main()
