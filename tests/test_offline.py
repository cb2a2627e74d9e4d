"""The offline format (contract.md "Offline evaluation"), through `evaluate_lines` and `write_results`."""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from worker.engine.evaluate import Evaluator
from worker.engine.reference import load_reference
from worker.engine.rules.packs import load_packs
from worker.offline.offline import OfflineResult, evaluate_lines, write_results

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLES = [
    json.loads(text)["bundle"] for text in (FIXTURES / "bundles.jsonl").read_text(encoding="utf-8").splitlines()
]

DECISION_FIELDS = {
    "decision_id", "claim_id", "claim_version", "patient_id", "decided_at", "outcome", "rule_pack",
    "worker_version", "source", "findings", "lines",
}  # fmt: skip
LINE_FIELDS = {"line_number", "hcpcs_code", "outcome", "findings"}
FINDING_FIELDS = {"rule_id", "outcome", "message", "evidence", "fix", "expected_carc", "policy_ref"}


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return Evaluator(load_packs(), load_reference())


def _bundle(claim_id: str = "EX-1001", index: int = 0, **claim_changes: Any) -> dict[str, Any]:
    bundle: dict[str, Any] = copy.deepcopy(EXAMPLES[index])
    bundle["claim"]["claim_id"] = claim_id
    bundle["claim"].update(claim_changes)
    return bundle


def _text(bundle: Any) -> str:
    return json.dumps(bundle)


def _run(evaluator: Evaluator, lines: list[str]) -> list[OfflineResult]:
    return list(evaluate_lines(evaluator, lines))


def test_decisions_keep_the_input_order(evaluator: Evaluator) -> None:
    claim_ids = ["C-3", "C-1", "C-2", "C-0"]
    results = _run(evaluator, [_text(_bundle(claim_id, index)) for index, claim_id in enumerate(claim_ids)])
    assert [result.output["claim_id"] for result in results] == claim_ids
    assert [result.input_line for result in results] == [1, 2, 3, 4]


def test_a_decision_has_the_contract_fields(evaluator: Evaluator) -> None:
    (result,) = _run(evaluator, [_text(_bundle(index=1))])
    decision = result.output
    assert set(decision) >= DECISION_FIELDS
    assert set(decision["rule_pack"]) >= {"name", "version"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", decision["decided_at"])
    (line,) = decision["lines"]
    assert set(line) >= LINE_FIELDS
    assert line["findings"]
    for finding in line["findings"]:
        assert set(finding) >= FINDING_FIELDS
    json.dumps(decision)  # plain JSON, nothing left to convert


def test_blank_lines_are_skipped_and_input_lines_count_them(evaluator: Evaluator) -> None:
    lines = ["", "   ", _text(_bundle("C-A")), "\n", "\t\n", "not json", _text(_bundle("C-B"))]
    results = _run(evaluator, lines)
    assert [result.input_line for result in results] == [3, 6, 7]
    assert results[1].output == {"error": results[1].output["error"], "input_line": 6}
    assert [results[0].output["claim_id"], results[2].output["claim_id"]] == ["C-A", "C-B"]


def _without(path: str) -> str:
    bundle = _bundle()
    *parents, last = path.split(".")
    node: Any = bundle
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    del node[last]
    return _text(bundle)


def _replaced(path: str, value: Any) -> str:
    bundle = _bundle()
    *parents, last = path.split(".")
    node: Any = bundle
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return _text(bundle)


MALFORMED = [
    pytest.param("{not json", None, id="not JSON"),
    pytest.param('{"claim": {', None, id="truncated JSON"),
    pytest.param("[1, 2]", None, id="an array"),
    pytest.param("42", None, id="a number"),
    pytest.param('"claim"', None, id="a string"),
    pytest.param("null", None, id="null"),
    pytest.param("{}", "claim", id="no claim"),
    pytest.param(_without("claim.claim_id"), "claim_id", id="claim_id missing"),
    pytest.param(_without("claim.payer"), "payer", id="payer missing"),
    pytest.param(_without("claim.lines.0.units"), "units", id="line units missing"),
    pytest.param(_without("claim.lines.0.date_of_service"), "date_of_service", id="line DOS missing"),
    pytest.param(_without("prescriptions.0.start_date"), "start_date", id="prescription start_date missing"),
    pytest.param(_without("labs.0.effective_time"), "effective_time", id="lab effective_time missing"),
    pytest.param(_replaced("claim.claim_version", "two"), "claim_version", id="claim_version not an int"),
    pytest.param(_replaced("claim.lines", {"line_number": 1}), "lines", id="lines not a list"),
    pytest.param(_replaced("claim.lines.0.units", "lots"), "units", id="units not a number"),
    pytest.param(_replaced("claim.lines.0.date_of_service", "2025-13-45"), "date_of_service", id="impossible date"),
    pytest.param(_replaced("claim.payer.payer_type", "CASH"), "payer_type", id="unknown payer_type"),
    pytest.param(_replaced("labs.0.status", "DONE"), "status", id="unknown lab status"),
    pytest.param(_replaced("prescriptions", "RX-EX1"), "prescriptions", id="prescriptions not a list"),
]


@pytest.mark.parametrize(("text", "field"), MALFORMED)
def test_a_malformed_bundle_gets_an_error_line_and_the_run_goes_on(
    evaluator: Evaluator, text: str, field: str | None
) -> None:
    results = _run(evaluator, [_text(_bundle("C-BEFORE")), text, _text(_bundle("C-AFTER"))])
    assert len(results) == 3
    before, bad, after = results
    assert (before.malformed, bad.malformed, after.malformed) == (False, True, False)
    assert set(bad.output) == {"error", "input_line"}
    assert bad.output["input_line"] == 2
    assert isinstance(bad.output["error"], str) and bad.output["error"]
    if field is not None:
        assert field in bad.output["error"], "the error names the field"
    assert (before.output["claim_id"], after.output["claim_id"]) == ("C-BEFORE", "C-AFTER")


SECRET = "JANE-Q-DOE-19580704"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(_replaced("claim.patient_id", 880077112233), id="patient_id a number"),
        pytest.param(_replaced("claim.patient_id", {"name": SECRET}), id="patient_id an object"),
        pytest.param(_replaced("claim.claim_version", SECRET), id="claim_version a name"),
        pytest.param(_replaced("claim.payer.payer_type", SECRET), id="payer_type a name"),
        pytest.param(_replaced("claim.lines.0.date_of_service", SECRET), id="DOS a name"),
        pytest.param(_replaced("prescriptions.0.patient_id", [SECRET]), id="prescription patient_id a list"),
        pytest.param('{"claim": "' + SECRET + '"}', id="claim a string"),
        pytest.param('{"claim": {"patient_id": "' + SECRET + '"', id="truncated JSON around a name"),
    ],
)
def test_error_messages_do_not_echo_input_values(evaluator: Evaluator, text: str) -> None:
    (result,) = _run(evaluator, [text])
    assert result.malformed
    assert SECRET not in result.output["error"]
    assert "880077112233" not in result.output["error"]


def test_extra_fields_and_missing_event_ids_are_accepted(evaluator: Evaluator) -> None:
    bundle = _bundle()
    bundle["claim"]["submitted_by"] = "a newer producer"
    bundle["labs"][0]["specimen"] = "whole blood"
    bundle["note"] = "ignored"
    assert "event_id" not in bundle["claim"]
    (result,) = _run(evaluator, [_text(bundle)])
    assert not result.malformed
    assert result.output["outcome"] == "ACCEPT"


def test_write_results_writes_one_json_object_per_line_and_reports_malformed(evaluator: Evaluator) -> None:
    out = io.StringIO()
    malformed = write_results(evaluate_lines(evaluator, [_text(_bundle("C-1")), "", "[]", _text(_bundle("C-2"))]), out)
    written = [json.loads(text) for text in out.getvalue().splitlines()]
    assert malformed is True
    assert [record.get("claim_id", record.get("input_line")) for record in written] == ["C-1", 3, "C-2"]


def test_write_results_reports_no_malformed_for_good_input(evaluator: Evaluator) -> None:
    out = io.StringIO()
    assert write_results(evaluate_lines(evaluator, [_text(bundle) for bundle in EXAMPLES]), out) is False
    assert len(out.getvalue().splitlines()) == len(EXAMPLES)


def test_a_claim_over_the_line_limit_is_a_malformed_line_naming_the_limit(evaluator: Evaluator) -> None:
    bundle = _bundle()
    bundle["claim"]["lines"] = [
        {**bundle["claim"]["lines"][0], "line_number": number} for number in range(1, 52)
    ]  # 51 lines
    exactly = copy.deepcopy(bundle)
    exactly["claim"]["lines"] = exactly["claim"]["lines"][:50]

    over, at_limit = _run(evaluator, [_text(bundle), _text(exactly)])

    assert over.malformed and "51 service lines, over the limit of 50 (MAX_CLAIM_LINES" in over.output["error"]
    assert not at_limit.malformed and len(at_limit.output["lines"]) == 50
    assert [result.malformed for result in evaluate_lines(evaluator, [_text(bundle)], max_claim_lines=60)] == [False]
