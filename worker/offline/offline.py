"""Offline evaluation: JSON Lines bundles in, one JSON decision (or error) per line out.

The format is contract.md's "Offline evaluation": decisions in input order, blank lines skipped, a
malformed bundle gets `{"error": ..., "input_line": N}` and the run goes on. Error messages name
the field and the problem, never the offending value (it could be a patient identifier).

Bundles are strict (contract.md: nothing is coerced): pydantic's strict mode rejects a string
where a number or boolean is expected, a boolean where a number is, a timestamp where a date is;
the models reject non-finite numbers and integers beyond Avro's 32-bit `int`; and a second pass
rejects duplicate keys in one object, which every JSON reader here would otherwise resolve
silently (the last one wins).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from worker.engine.context import PatientContext
from worker.engine.evaluate import Evaluator
from worker.engine.events import (
    Bundle,
    Claim,
    ClaimLine,
    Coverage,
    Decision,
    LabResult,
    Payer,
    Prescription,
    PriorAuthorization,
    Transplant,
)
from worker.stream.bounds import DEFAULT_MAX_CLAIM_LINES, claim_lines_problem


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
    if decision.context_as_of is not None:
        record["context_as_of"] = format_timestamp(decision.context_as_of)
    return record


@dataclass(frozen=True)
class OfflineResult:
    input_line: int
    output: dict[str, Any]
    malformed: bool


class MalformedBundle(ValueError):
    """A bundle the models accept but the contract does not (a duplicate key); the message names
    the key only when it is one of the contract's field names, never a value."""


class BoundsError(ValueError):
    """A bundle over the claim bounds (worker/stream/bounds.py); the message names the limit, not a value."""


# Every field name of the bundle's models: a duplicate key is named only when it is one of these.
CONTRACT_FIELDS = frozenset(
    name
    for model in (Bundle, Claim, Payer, Coverage, Transplant, PriorAuthorization, ClaimLine, Prescription, LabResult)
    for name in model.model_fields
)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                where = f"{key}: " if key in CONTRACT_FIELDS else ""
                raise MalformedBundle(f"{where}duplicate key in one object")
            seen.add(key)
    return mapping


def parse_bundle(text: str) -> Bundle:
    """One bundle, strictly; raises ValidationError or MalformedBundle for a malformed one."""
    bundle = Bundle.model_validate_json(text, strict=True)
    # Only a valid bundle pays for the second parse; pydantic's parser cannot report duplicates.
    json.loads(text, object_pairs_hook=_no_duplicate_keys)
    return bundle


def evaluate_bundle_text(evaluator: Evaluator, text: str, max_claim_lines: int = DEFAULT_MAX_CLAIM_LINES) -> Decision:
    """Parse one bundle and decide it; raises ValidationError or MalformedBundle for a malformed
    bundle, BoundsError for a claim with too many lines."""
    bundle = parse_bundle(text)
    problem = claim_lines_problem(bundle.claim, max_claim_lines)
    if problem is not None:
        raise BoundsError(problem)
    context = PatientContext.from_lists(bundle.prescriptions, bundle.labs, bundle.prior_claims)
    # The bundle is the context; it is "as of" the claim's own time when the bundle gives one.
    return evaluator.decide(bundle.claim, context, context_as_of=bundle.claim.event_time)


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
        except (MalformedBundle, BoundsError) as error:
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
