"""Command line: `python -m worker {evaluate,impact,rules,run,demo,dead-letters,payers}` (also `j7507-worker`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from worker import __version__
from worker.errors import ConfigError

# `evaluate | head`: the reader left. Not 1 (malformed input): 128 + SIGPIPE, as a shell reports it.
EXIT_OUTPUT_CLOSED = 141


def _path_or_env(value: str | None, env: str) -> Path | None:
    chosen = value if value is not None else os.environ.get(env)
    return Path(chosen) if chosen else None


def _add_rule_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--payer-config",
        metavar="DIR",
        help="directory of payer override files (*.yaml, format in contract.md) [env PAYER_CONFIG_DIR]",
    )
    parser.add_argument(
        "--ndc-crosswalk",
        metavar="FILE",
        help="NDC crosswalk CSV replacing the shipped one (same columns) [env NDC_CROSSWALK_FILE]",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="j7507-worker",
        description="Claim-integrity checks for HCPCS J7507 (oral immediate-release tacrolimus).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    evaluate = commands.add_parser(
        "evaluate",
        help="decide claim bundles offline (JSON Lines in, one JSON decision per line out)",
        description=(
            "Read JSON Lines claim bundles ({claim, prescriptions, labs, prior_claims}) and write one "
            "JSON decision per line to stdout, in input order. A malformed bundle (a required field "
            "missing, a wrong JSON type or value: nothing is coerced; NaN, Infinity, a duplicate key) gets "
            '{"error": ..., "input_line": N}; the exit status is 1 if any bundle was malformed, '
            f"{EXIT_OUTPUT_CLOSED} if the reader of stdout went away (e.g. `| head`)."
        ),
    )
    evaluate.add_argument("file", nargs="?", default="-", metavar="FILE|-", help="bundles file (default: stdin)")
    evaluate.add_argument(
        "--max-claim-lines",
        type=int,
        metavar="N",
        help="service lines per claim; a bundle with more is malformed [env MAX_CLAIM_LINES; default 50]",
    )
    _add_rule_inputs(evaluate)

    from worker.cli_impact import add_impact_command

    add_impact_command(commands, _add_rule_inputs)

    rules = commands.add_parser("rules", help="list the rule catalogue as the code has it")
    rules.add_argument("--format", choices=("table", "json", "markdown"), default="table")

    from worker.cli_stream import add_stream_commands

    add_stream_commands(commands, _add_rule_inputs)

    from worker.cli_dead_letters import add_dead_letter_commands
    from worker.cli_payers import add_payer_commands

    add_dead_letter_commands(commands)
    add_payer_commands(commands)
    return parser


def _evaluate(args: argparse.Namespace) -> int:
    from worker.engine.evaluate import Evaluator
    from worker.engine.reference import load_reference
    from worker.engine.rules.packs import load_packs
    from worker.offline.offline import evaluate_lines, write_results
    from worker.stream.bounds import DEFAULT_MAX_CLAIM_LINES

    evaluator = Evaluator(
        load_packs(_path_or_env(args.payer_config, "PAYER_CONFIG_DIR")),
        load_reference(_path_or_env(args.ndc_crosswalk, "NDC_CROSSWALK_FILE")),
    )
    raw_lines = args.max_claim_lines or os.environ.get("MAX_CLAIM_LINES") or DEFAULT_MAX_CLAIM_LINES
    max_lines = int(raw_lines) if str(raw_lines).isdigit() else 0
    if max_lines < 1:
        raise ConfigError("--max-claim-lines/MAX_CLAIM_LINES: expected a whole number of at least 1")
    # Bytes in, decoded line by line: one line that is not UTF-8 must not end the run.
    try:
        if args.file == "-":
            stdin = getattr(sys.stdin, "buffer", sys.stdin)
            malformed = write_results(evaluate_lines(evaluator, stdin, max_lines), sys.stdout)
        else:
            try:
                handle = open(args.file, "rb")  # noqa: SIM115  (closed below, streamed line by line)
            except OSError as error:
                raise ConfigError(f"{args.file}: cannot read: {error.strerror}") from None
            with handle:
                malformed = write_results(evaluate_lines(evaluator, handle, max_lines), sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader closed the pipe: stop quietly. Point stdout at /dev/null so the interpreter's
        # own flush at exit does not print a second traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OUTPUT_CLOSED
    return 1 if malformed else 0


def _rules(args: argparse.Namespace) -> int:
    from worker.offline.catalogue import markdown_table, rule_entries, text_table

    if args.format == "json":
        print(json.dumps(rule_entries(), indent=2))
    elif args.format == "markdown":
        print(markdown_table())
    else:
        print(text_table())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "rules":
            return _rules(args)
        if args.command == "dead-letters":
            from worker.cli_dead_letters import run_dead_letters_command

            return run_dead_letters_command(args)
        if args.command == "payers":
            from worker.cli_payers import run_payers_command

            return run_payers_command(args)
        if args.command == "impact":
            from worker.cli_impact import run_impact

            return run_impact(args)
        from worker.cli_stream import run_stream_command

        return run_stream_command(args)
    except ConfigError as error:
        print(f"j7507-worker: configuration error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
