"""Property tests: no input, however strange, makes offline evaluation raise; decisions stay valid.

`evaluate_lines` must yield, for every non-blank line, either a decision or a clean
`{"error", "input_line"}` record. Decisions must satisfy the contract whatever the values: outcome
in the allowed set, each line's outcome the worst of its findings, the claim's the worst line.

Example counts are modest (the whole suite runs in minutes on 2 cores) and there is no deadline:
these tests assert behaviour, never timing.

Timestamps mix offset-aware, naive and date-only values: the engine takes naive ones as UTC, so
they compare with each other (the explicit cases below pin the examples hypothesis once found).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from invariants import check_decision

from worker.engine.evaluate import Evaluator
from worker.engine.reference import load_reference
from worker.engine.rules.packs import load_packs
from worker.offline.offline import OfflineResult, evaluate_lines

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLES: list[dict[str, Any]] = [
    json.loads(text)["bundle"] for text in (FIXTURES / "bundles.jsonl").read_text(encoding="utf-8").splitlines()
]
EVALUATOR = Evaluator(load_packs(FIXTURES / "payer-config"), load_reference())

TIME_FIELDS = {"effective_time", "event_time"}

PROPERTY_SETTINGS = settings(
    # PROPERTY_EXAMPLES=5000 for a longer bug hunt by hand.
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- checking results -------------------------------------------------------------------------


def check_results(lines: list[str], results: list[OfflineResult]) -> None:
    expected_numbers = [number for number, text in enumerate(lines, start=1) if text.strip()]
    assert [result.input_line for result in results] == expected_numbers
    for result in results:
        json.dumps(result.output, allow_nan=False)  # every output is writable as strict JSON
        if result.malformed:
            assert set(result.output) == {"error", "input_line"}
            assert isinstance(result.output["error"], str) and result.output["error"]
            assert result.output["input_line"] == result.input_line
        else:
            check_decision(result.output)


def run(lines: list[str]) -> list[OfflineResult]:
    results = list(evaluate_lines(EVALUATOR, lines))
    check_results(lines, results)
    return results


# --- random JSON ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=25,
)


@PROPERTY_SETTINGS
@given(st.lists(json_values.map(json.dumps) | st.text(max_size=40), max_size=5))
def test_random_lines_give_decisions_or_error_lines(lines: list[str]) -> None:
    run(lines)


@PROPERTY_SETTINGS
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "claim": json_values,
            "prescriptions": json_values,
            "labs": json_values,
            "prior_claims": json_values,
        },
    )
)
def test_random_objects_with_bundle_keys_give_decisions_or_error_lines(bundle: dict[str, Any]) -> None:
    run([json.dumps(bundle)])


# --- bundles with odd values ------------------------------------------------------------------

DROP = "<drop>"

odd_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1, 0.5, 1e308, -1e308, 5e-324, 2**63, -(2**63)]),
    st.text(max_size=12),
    st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)).map(date.isoformat),
    st.sampled_from(
        [
            "", " ", "0001-01-01", "9999-12-31", "2025-12-01", "2025-01-01", "2022-05-10",
            "J7507", " j7507 ", "J7503", "KX", "25", "GA", "GZ", "00469065773", "55111052601", "0469-0617-73",
            "UN", "ME", "GR", "ML", "MEDICARE", "MEDICAID", "COMMERCIAL", "OTHER", "ESRD_ONLY", "KIDNEY", "LIVER",
            "HEART", "HEART_LUNG", "DENIED", "PENDING", "APPROVED", "ACTIVE", "STOPPED", "COMPLETED", "FINAL",
            "CORRECTED", "CANCELLED", "PRELIMINARY", "tacrolimus", "cyclosporine", "sirolimus", "St John's wort",
            "EXTENDED_RELEASE", "INJECTION", "Z94.0", "Z94.5", "ACME-HEALTH", "CAPPED-PLAN", "EX-1001", "RX-EX1",
            "O-1", "\u0000", "\ud7ff\U0010ffff", "١٢٣٤٥٦٧٨٩٠١", "NaN", "1e309",
        ]
    ),
)  # fmt: skip
odd_values = (
    odd_scalars | st.lists(odd_scalars, max_size=3) | st.dictionaries(st.text(max_size=6), odd_scalars, max_size=3)
)

# Timestamps: aware, naive and date-only, at the edges of the calendar.
aware_timestamps = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59-12:00",
            "2025-11-20T09:30:00Z", "2025-11-20T09:30:00+05:30", "2025-12-01T23:59:59-05:00", "garbage", "",
            "2025-11-20", "2025-11-20T09:30:00", "0001-01-01", "9999-12-31",
        ]
    ),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(lambda at: at.isoformat() + "Z"),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(datetime.isoformat),
    st.none(),
)  # fmt: skip


def _leaf_paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaf_paths(value, (*prefix, key))
    elif isinstance(node, list) and node and isinstance(node[0], dict | list):
        for index, value in enumerate(node):
            yield from _leaf_paths(value, (*prefix, index))
    else:
        yield prefix


def _richest_bundle() -> dict[str, Any]:
    """Example bundle with every kind of record: two lines, a cyclosporine, a prior claim, event times."""
    bundle = copy.deepcopy(EXAMPLES[4])
    claim = bundle["claim"]
    claim["event_time"] = "2025-12-01T10:00:00Z"
    claim["prior_authorization"] = {"number": "PA-1", "status": "APPROVED", "valid_from": None, "valid_to": None}
    second = copy.deepcopy(claim["lines"][0])
    second.update(line_number=2, ndc="00469060773", units=30, ndc_quantity=60)
    claim["lines"].append(second)
    for record in (*bundle["prescriptions"], *bundle["labs"]):
        record["event_time"] = "2025-11-21T10:00:00Z"
    prior = copy.deepcopy(claim)
    prior.update(claim_id="EX-0999", claim_version=1)
    prior["lines"][0]["date_of_service"] = "2025-11-01"
    bundle["prior_claims"] = [prior]
    return bundle


# Two starting points: one that decides ACCEPT (example 1) and one with every kind of record.
BASES = [copy.deepcopy(EXAMPLES[0]), _richest_bundle()]
LEAF_PATHS = [sorted(set(_leaf_paths(base)), key=str) for base in BASES]


def _set(bundle: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = bundle
    for part in path[:-1]:
        node = node[part]
    if value == DROP and isinstance(node, dict):
        node.pop(path[-1], None)
    elif value != DROP:
        node[path[-1]] = value


@st.composite
def odd_bundles(draw: st.DrawFn) -> dict[str, Any]:
    which = draw(st.sampled_from(range(len(BASES))))
    bundle = copy.deepcopy(BASES[which])
    for path in draw(st.lists(st.sampled_from(LEAF_PATHS[which]), max_size=6, unique=True)):
        values = aware_timestamps if path[-1] in TIME_FIELDS else odd_values
        _set(bundle, path, draw(values | st.just(DROP)))
    # Structural oddities: duplicated ids and lines, resubmissions, empty lists.
    for key in ("prescriptions", "labs", "prior_claims"):
        items = bundle.get(key)
        if not isinstance(items, list):
            continue  # a mutation replaced or dropped the whole list
        duplicate = draw(st.booleans())
        if items and duplicate:
            items.append(copy.deepcopy(draw(st.sampled_from(items))))
        if draw(st.integers(0, 9)) == 0:
            bundle[key] = []
    if isinstance(bundle.get("prior_claims"), list) and draw(st.booleans()):
        resubmission = copy.deepcopy(bundle["claim"])
        resubmission["claim_version"] = draw(st.integers(-3, 5))
        bundle["prior_claims"].append(resubmission)
    lines = bundle["claim"].get("lines")
    if isinstance(lines, list) and lines and draw(st.booleans()):
        lines.append(copy.deepcopy(lines[0]))
    return bundle


@PROPERTY_SETTINGS
@given(odd_bundles())
def test_odd_bundles_give_valid_decisions_or_error_lines(bundle: dict[str, Any]) -> None:
    run([json.dumps(bundle)])


@PROPERTY_SETTINGS
@given(odd_bundles())
def test_the_same_bundle_gets_the_same_decision(bundle: dict[str, Any]) -> None:
    text = json.dumps(bundle)
    first, second = run([text, text])
    assert first.malformed == second.malformed
    for result in (first, second):
        result.output.pop("input_line" if result.malformed else "decided_at")
    assert first.output == second.output


@PROPERTY_SETTINGS
@given(odd_bundles(), st.lists(st.integers(min_value=-5, max_value=50), min_size=1, max_size=3))
def test_versions_of_the_claim_itself_never_count_as_history(bundle: dict[str, Any], versions: list[int]) -> None:
    """rules.md: lines of the claim being evaluated, in any version, are never prior lines."""
    claim = bundle["claim"]
    if not isinstance(bundle.get("prior_claims"), list):
        return  # a mutation already made the bundle malformed
    with_versions = copy.deepcopy(bundle)
    for version in versions:
        resubmission = copy.deepcopy(claim)
        resubmission["claim_version"] = version
        with_versions["prior_claims"].append(resubmission)
    plain, extended = run([json.dumps(bundle), json.dumps(with_versions)])
    if plain.malformed or extended.malformed:
        return
    plain.output.pop("decided_at")
    extended.output.pop("decided_at")
    assert plain.output == extended.output


# --- once crashes (minimal examples): each is now decided, or refused as the contract says ---------


def _clean() -> dict[str, Any]:
    return copy.deepcopy(EXAMPLES[0])


def _decide_once(bundle: dict[str, Any]) -> OfflineResult:
    (result,) = run([json.dumps(bundle)])
    return result


def _findings(result: OfflineResult) -> dict[str, dict[str, str]]:
    """rule id -> evidence of the decision's findings."""
    assert not result.malformed, result.output
    return {finding["rule_id"]: finding["evidence"] for line in result.output["lines"] for finding in line["findings"]}


def test_a_date_only_effective_time_next_to_a_full_timestamp_is_refused_by_name() -> None:
    bundle = _clean()
    bundle["labs"][1]["effective_time"] = "2025-11-20"
    result = _decide_once(bundle)
    assert result.malformed
    assert result.output["error"].startswith("labs.1.effective_time: ")


def test_a_naive_event_time_replacing_an_aware_one_is_read_as_utc_and_the_later_wins() -> None:
    bundle = _clean()
    bundle["prescriptions"][0]["event_time"] = "2025-11-01T08:00:00Z"
    stopped = {**bundle["prescriptions"][0], "event_time": "2025-11-02T08:00:00", "status": "STOPPED"}
    bundle["prescriptions"].append(stopped)
    result = _decide_once(bundle)
    assert result.output["outcome"] == "DENY_RISK"
    assert _findings(result)["no-active-prescription"]["status"] == "STOPPED"  # the naive, later event won
    bundle["prescriptions"][0]["event_time"] = "2025-11-03T08:00:00Z"  # now the aware one is later
    assert _findings(_decide_once(bundle)) == {}


def test_a_naive_lab_event_time_replacing_an_aware_one_is_read_as_utc_and_the_later_wins() -> None:
    bundle = _clean()
    bundle["labs"][0]["event_time"] = "2025-11-21T08:00:00+00:00"
    bundle["labs"].append({**bundle["labs"][0], "event_time": "2025-11-21T09:00:00", "value": 40.0})
    result = _decide_once(bundle)
    assert result.output["outcome"] == "HOLD"
    assert _findings(result)["trough-out-of-range"]["value"] == "40"  # the naive, later correction won
    bundle["labs"][0]["event_time"] = "2025-11-21T10:00:00+00:00"  # now the aware one is later
    assert _findings(_decide_once(bundle)) == {}
