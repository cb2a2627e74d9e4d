"""Offline evaluation: JSON Lines bundles in, one JSON decision (or error) per line out.

The format is contract.md's "Offline evaluation": decisions in input order, blank lines skipped, a
malformed bundle gets `{"error": ..., "input_line": N}` and the run goes on. Error messages name
the field and the problem, never the offending value (it could be a patient identifier).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from worker.bounds import DEFAULT_MAX_CLAIM_LINES, claim_lines_problem
from worker.context import PatientContext
from worker.evaluate import Evaluator
from worker.events import Bundle, Decision


def describe_validation_error(error: ValidationError, limit: int = 5) -> str:
    """`field.path: problem` for each problem, without input values."""
    problems = []
    for item in error.errors(include_input=False, include_url=False, include_context=False)[:limit]:
        where = ".".join(str(part) for part in item["loc"])
        problems.append(f"{where}: {item['msg']}" if where else item["msg"])
    more = error.error_count() - limit
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds, the precision of Avro timestamp-millis."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def decision_json(decision: Decision) -> dict[str, Any]:
    record = decision.to_dict()
    record["decided_at"] = format_timestamp(decision.decided_at)
    return record


@dataclass(frozen=True)
class OfflineResult:
    input_line: int
    output: dict[str, Any]
    malformed: bool


class BoundsError(ValueError):
    """A bundle over the claim bounds (worker/bounds.py); the message names the limit, not a value."""


def evaluate_bundle_text(evaluator: Evaluator, text: str, max_claim_lines: int = DEFAULT_MAX_CLAIM_LINES) -> Decision:
    """Parse one bundle and decide it; raises ValidationError for a malformed bundle, BoundsError
    for a claim with too many lines."""
    bundle = Bundle.model_validate_json(text)
    problem = claim_lines_problem(bundle.claim, max_claim_lines)
    if problem is not None:
        raise BoundsError(problem)
    context = PatientContext.from_lists(bundle.prescriptions, bundle.labs, bundle.prior_claims)
    return evaluator.decide(bundle.claim, context)


def evaluate_lines(
    evaluator: Evaluator, lines: Iterable[str | bytes], max_claim_lines: int = DEFAULT_MAX_CLAIM_LINES
) -> Iterator[OfflineResult]:
    """Decide each line; bytes are decoded per line, so one line that is not UTF-8 is one error."""
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield OfflineResult(number, {"error": "line is not valid UTF-8", "input_line": number}, True)
                continue
        else:
            text = raw
        if number == 1:
            text = text.removeprefix("\ufeff")  # a byte-order mark some editors put at the start
        if not text.strip():
            continue
        try:
            decision = evaluate_bundle_text(evaluator, text, max_claim_lines)
        except ValidationError as error:
            yield OfflineResult(number, {"error": describe_validation_error(error), "input_line": number}, True)
            continue
        except BoundsError as error:
            yield OfflineResult(number, {"error": str(error), "input_line": number}, True)
            continue
        except (ValueError, OverflowError, RecursionError) as error:
            # Values pydantic accepts but dates cannot hold (e.g. year 9999 + 90 days): a clean
            # error line, never a crash. The class name says what, without the value.
            message = f"cannot evaluate: {type(error).__name__} on an out-of-range value"
            yield OfflineResult(number, {"error": message, "input_line": number}, True)
            continue
        yield OfflineResult(number, decision_json(decision), False)


def write_results(results: Iterable[OfflineResult], out: Any) -> bool:
    """Write one JSON object per line; returns True when any bundle was malformed."""
    malformed = False
    for result in results:
        malformed |= result.malformed
        out.write(json.dumps(result.output, separators=(",", ":"), default=str) + "\n")
    return malformed
