"""The `impact` command: decide the same claims under a baseline and a candidate configuration.

Claims come from a bundles file (FILE or `-`) or, without one, from the three input topics
(`worker.impact_topics`). Everything is validated before anything is read: a bad baseline or
candidate directory stops the command with the file, key and problem (exit status 2), as the worker
does. Exit status 1 when some input could not be decided (it is named in the table and markdown
reports and on stderr), else 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from worker.errors import ConfigError

IMPACT_DESCRIPTION = (
    "Decide the same claims under the baseline (--payer-config, default none: the built-in packs) and "
    "the candidate (--candidate-payer-config) and report what would change: outcome transitions with "
    "claim counts and J7507 charges, finding counts per rule, and every changed claim (by claim id and "
    "version, never a patient identifier). With FILE (or -) the claims are offline bundles (the evaluate "
    "format); without one, the three input topics of KAFKA_BOOTSTRAP_SERVERS are read from the beginning "
    "up to their end at start, every claim decided as of its time; it joins no consumer group and "
    "produces nothing. SKIPPED claims are left out. A malformed bundle or an undecodable record is "
    "counted and named (line number, or topic/partition@offset) in the table and markdown reports and on "
    "stderr (JSON keeps exactly the contract's fields), and the run goes on; the exit status is then 1. "
    "A bad baseline or candidate directory stops it at start (exit status 2). Progress goes to stderr."
)


def add_impact_command(commands: Any, add_rule_inputs: Callable[[argparse.ArgumentParser], None]) -> None:
    impact = commands.add_parser(
        "impact", help="rule-change impact analysis: baseline vs candidate payer config", description=IMPACT_DESCRIPTION
    )
    impact.add_argument(
        "file", nargs="?", default=None, metavar="FILE|-", help="bundles file (JSON Lines); without it: the topics"
    )
    add_rule_inputs(impact)
    impact.add_argument(
        "--candidate-payer-config", metavar="DIR", required=True, help="the candidate's payer override files"
    )
    impact.add_argument("--format", choices=("table", "json", "markdown"), default="table", help="default table")
    impact.add_argument("--output", metavar="FILE", help="write the report there (default stdout)")
    impact.add_argument(
        "--since", metavar="TIME", help="report claims from this ISO time on (by claim time; earlier ones are history)"
    )
    impact.add_argument("--until", metavar="TIME", help="report claims before this ISO time (by claim time)")
    kafka = impact.add_argument_group("topics (without FILE)")
    kafka.add_argument("--bootstrap-servers", metavar="HOST:PORT,...", help="[env KAFKA_BOOTSTRAP_SERVERS]")
    for role, env, default in (
        ("claims", "TOPIC_CLAIMS", "ehr.claims.v1"),
        ("prescriptions", "TOPIC_PRESCRIPTIONS", "ehr.prescriptions.v1"),
        ("lab-results", "TOPIC_LAB_RESULTS", "ehr.lab-results.v1"),
    ):
        kafka.add_argument(f"--topic-{role}", metavar="TOPIC", help=f"[env {env}; default {default}]")
    kafka.add_argument(
        "--timestamp-source",
        choices=("kafka", "event_time"),
        help="a record's time, as for run [env TIMESTAMP_SOURCE; default kafka]",
    )
    kafka.add_argument(
        "--context-scope", choices=("partition", "global"), help="as for run [env CONTEXT_SCOPE; default partition]"
    )
    kafka.add_argument("--schema-registry-url", help="Confluent wire format when set [env SCHEMA_REGISTRY_URL]")
    kafka.add_argument(
        "--kafka-option", action="append", default=[], metavar="KEY=VALUE", help="kafka-python override, repeatable"
    )


def parse_time(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise ConfigError(f"{flag}: expected an ISO 8601 time such as 2026-03-01T00:00:00Z") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _dir(value: str | None, env: str | None = None) -> Path | None:
    chosen = value if value is not None else (os.environ.get(env) if env else None)
    return Path(chosen) if chosen else None


def run_impact(args: argparse.Namespace, stderr: TextIO | None = None) -> int:
    from worker.engine.evaluate import Evaluator
    from worker.engine.reference import load_reference
    from worker.engine.rules.packs import load_packs
    from worker.offline.impact import DualEvaluator, ImpactAnalysis
    from worker.offline.impact_report import render

    stderr = stderr or sys.stderr
    since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    baseline_dir = _dir(args.payer_config, "PAYER_CONFIG_DIR")
    candidate_dir = Path(args.candidate_payer_config)
    reference = load_reference(_dir(args.ndc_crosswalk, "NDC_CROSSWALK_FILE"))
    try:
        baseline_packs = load_packs(baseline_dir)
    except ConfigError as error:
        raise ConfigError(f"--payer-config: {error}") from None
    try:
        candidate_packs = load_packs(candidate_dir)
    except ConfigError as error:
        raise ConfigError(f"--candidate-payer-config: {error}") from None
    dual = DualEvaluator(Evaluator(baseline_packs, reference), Evaluator(candidate_packs, reference))
    analysis = ImpactAnalysis(since=since, until=until)
    output = _open_output(args.output)  # before reading: a bad --output path fails at start
    try:
        if args.file is not None:
            _read_bundles(args.file, dual, analysis)
        else:
            _read_topics(args, dual, analysis, stderr)
        report = analysis.report(
            baseline_name=str(baseline_dir) if baseline_dir else "the built-in packs", candidate_name=str(candidate_dir)
        )
        output.write(render(report, args.format))
    finally:
        if output is not sys.stdout:
            output.close()
    if report.bad_input:
        stderr.write(f"impact: {len(report.bad_input):,} bad input record(s) or line(s) were not decided:\n")
        for bad in report.bad_input[:20]:
            stderr.write(f"  {bad.where}: {bad.problem}\n")
    return 1 if report.bad_input else 0


def _open_output(path: str | None) -> TextIO:
    if path is None or path == "-":
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"--output: {path}: cannot write: {error.strerror}") from None


def _read_bundles(file: str, dual: Any, analysis: Any) -> None:
    from worker.offline.impact_bundles import analyse_bundles

    if file == "-":
        analyse_bundles(dual, getattr(sys.stdin, "buffer", sys.stdin), analysis)
        return
    try:
        handle = open(file, "rb")  # noqa: SIM115  (closed below, streamed line by line)
    except OSError as error:
        raise ConfigError(f"{file}: cannot read: {error.strerror}") from None
    with handle:
        analyse_bundles(dual, handle, analysis)


def _read_topics(args: argparse.Namespace, dual: Any, analysis: Any, stderr: TextIO) -> None:
    from worker.app import make_wire
    from worker.config import settings_from
    from worker.offline.impact_progress import Progress
    from worker.offline.impact_topics import TopicsImpact

    settings = settings_from(args)
    TopicsImpact(settings, dual, analysis, make_wire(settings), Progress(stderr)).run()
