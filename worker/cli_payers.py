"""`python -m worker payers schema|check DIR`: payer override files, checked before they ship."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SCHEMA_FILE = "schemas/payer-override.schema.json"


def add_payer_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "payers",
        help="payer override files: print their JSON Schema, or check a directory of them",
        description="Payer override files (format in contract.md), checked before they reach a worker.",
    )
    actions = parser.add_subparsers(dest="payers_command", required=True, metavar="ACTION")
    actions.add_parser(
        "schema",
        help="print the JSON Schema of an override file (generated from the loader's models)",
        description=f"Print the JSON Schema (2020-12) of a payer override file (shipped as {SCHEMA_FILE}).",
    )
    check = actions.add_parser(
        "check",
        help="validate every override file of DIR as the worker does at start; one summary line per payer",
        description=(
            "Validate every *.yaml/*.yml file of DIR with the worker's own loader and print its messages "
            "(file, key, problem) on stderr, then one line per valid payer saying what the override changes "
            "against its base pack. Exit status 1 if any file has a problem."
        ),
    )
    check.add_argument("directory", metavar="DIR", help="directory of payer override files")


def schema_text() -> str:
    from worker.engine.rules.packs import override_json_schema

    return json.dumps(override_json_schema(), indent=2, ensure_ascii=False) + "\n"


def run_payers_command(args: argparse.Namespace) -> int:
    if args.payers_command == "schema":
        sys.stdout.write(schema_text())
        return 0
    from worker.offline.payer_check import check_directory

    result = check_directory(Path(args.directory))
    for line in result.summaries:
        print(line)
    for problem in result.problems:
        print(f"j7507-worker: {problem}", file=sys.stderr)
    if result.problems:
        print(f"{len(result.problems)} problem(s) in {args.directory}", file=sys.stderr)
        return 1
    return 0
