"""Evaluator: the example bundles, deterministic decision ids, outcome aggregation, no patient ids.

The examples are tests/fixtures/bundles.jsonl, a byte-for-byte copy of the shared examples (each
line: `name`, `bundle`, `expect: {outcome, must_include}`).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from worker.engine.evaluate import Evaluator
from worker.engine.events import Decision
from worker.engine.reference import load_reference
from worker.engine.rules.packs import load_packs
from worker.offline.offline import decision_json, evaluate_bundle_text

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLES: list[dict[str, Any]] = [
    json.loads(text) for text in (FIXTURES / "bundles.jsonl").read_text(encoding="utf-8").splitlines() if text.strip()
]
EXAMPLE_IDS = [example["name"] for example in EXAMPLES]


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return Evaluator(load_packs(), load_reference())


def _rule_ids(decision: dict[str, Any]) -> set[str]:
    return {finding["rule_id"] for line in decision["lines"] for finding in line["findings"]}


def _decide(evaluator: Evaluator, bundle: dict[str, Any]) -> Decision:
    return evaluate_bundle_text(evaluator, json.dumps(bundle))


def test_the_examples_are_all_here() -> None:
    assert len(EXAMPLES) == 6
    assert EXAMPLES[0]["expect"] == {"outcome": "ACCEPT", "must_include": []}


@pytest.mark.parametrize("example", EXAMPLES, ids=EXAMPLE_IDS)
def test_example_through_the_function(evaluator: Evaluator, example: dict[str, Any]) -> None:
    decision = decision_json(_decide(evaluator, example["bundle"]))
    assert decision["outcome"] == example["expect"]["outcome"]
    assert set(example["expect"]["must_include"]) <= _rule_ids(decision)


@pytest.fixture(scope="module")
def cli_decisions(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """All examples through `python -m worker evaluate FILE`, run once from an unrelated directory."""
    folder = tmp_path_factory.mktemp("examples")
    bundles = folder / "bundles.jsonl"
    bundles.write_text("".join(json.dumps(example["bundle"]) + "\n" for example in EXAMPLES), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "worker", "evaluate", str(bundles)],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(text) for text in result.stdout.splitlines()]


def test_cli_writes_one_decision_per_example(cli_decisions: list[dict[str, Any]]) -> None:
    assert len(cli_decisions) == len(EXAMPLES)


@pytest.mark.parametrize("index", range(len(EXAMPLES)), ids=EXAMPLE_IDS)
def test_example_through_the_cli(cli_decisions: list[dict[str, Any]], index: int) -> None:
    expect = EXAMPLES[index]["expect"]
    decision = cli_decisions[index]
    assert decision["outcome"] == expect["outcome"]
    assert set(expect["must_include"]) <= _rule_ids(decision)


def test_cli_and_function_agree(evaluator: Evaluator, cli_decisions: list[dict[str, Any]]) -> None:
    for example, from_cli in zip(EXAMPLES, cli_decisions, strict=True):
        from_function = decision_json(_decide(evaluator, example["bundle"]))
        for record in (from_cli, from_function):
            record.pop("decided_at")
            record.pop("worker_version")
        assert from_cli == from_function


# --- decision ids -----------------------------------------------------------------------------


def _clean() -> dict[str, Any]:
    return copy.deepcopy(EXAMPLES[0]["bundle"])


def _with(changes: dict[str, Any], bundle: dict[str, Any] | None = None) -> dict[str, Any]:
    bundle = bundle or _clean()
    for key, value in changes.items():
        bundle["claim"][key] = value
    return bundle


def test_decision_id_is_deterministic_across_evaluators_and_clocks() -> None:
    early = Evaluator(load_packs(), load_reference(), clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    late = Evaluator(load_packs(), load_reference(), clock=lambda: datetime(2027, 6, 1, tzinfo=UTC))
    first, second = _decide(early, _clean()), _decide(late, _clean())
    assert first.decided_at != second.decided_at
    assert first.decision_id == second.decision_id


def test_decision_id_depends_on_claim_version_pack_and_claim_only(evaluator: Evaluator) -> None:
    base = _decide(evaluator, _clean()).decision_id
    changed_content = _clean()
    changed_content["claim"]["lines"][0]["units"] = 60
    changed_content["labs"] = []
    assert _decide(evaluator, changed_content).decision_id == base, "same claim version, same pack, same id"
    assert _decide(evaluator, _with({"claim_version": 2})).decision_id != base
    assert _decide(evaluator, _with({"claim_id": "EX-1002"})).decision_id != base
    commercial = _with({"payer": {"payer_id": "MEDICARE-DME-JC", "payer_type": "COMMERCIAL"}})
    assert _decide(evaluator, commercial).decision_id != base


# --- outcome aggregation ----------------------------------------------------------------------


def _line(line_number: int, **fields: Any) -> dict[str, Any]:
    line: dict[str, Any] = copy.deepcopy(EXAMPLES[0]["bundle"]["claim"]["lines"][0])
    line["line_number"] = line_number
    line.update(fields)
    return line


def _summary(decision: Decision) -> tuple[str, list[tuple[int, str]]]:
    return decision.outcome, [(line.line_number, line.outcome) for line in decision.lines]


def test_claim_outcome_is_its_worst_line(evaluator: Evaluator) -> None:
    hold_line = _line(1, ndc="12345678901")  # ndc-not-in-crosswalk: HOLD
    deny_line = _line(2, modifiers=["KX", "25"])  # modifier-not-allowed: DENY_RISK
    accept_line = _line(3, date_of_service="2025-12-02")
    assert _summary(_decide(evaluator, _with({"lines": [hold_line, deny_line, accept_line]}))) == (
        "DENY_RISK",
        [(1, "HOLD"), (2, "DENY_RISK"), (3, "ACCEPT")],
    )
    assert _summary(_decide(evaluator, _with({"lines": [accept_line, hold_line]}))) == (
        "HOLD",
        [(3, "ACCEPT"), (1, "HOLD")],
    )


def test_a_line_outcome_is_its_worst_finding(evaluator: Evaluator) -> None:
    # ndc-not-in-crosswalk (HOLD) and modifier-not-allowed (DENY_RISK) on one line.
    decision = _decide(evaluator, _with({"lines": [_line(1, ndc="12345678901", modifiers=["KX", "25"])]}))
    (line,) = decision.lines
    assert {finding.outcome for finding in line.findings} == {"HOLD", "DENY_RISK"}
    assert line.outcome == "DENY_RISK"


def test_info_never_changes_an_outcome(evaluator: Evaluator) -> None:
    bundle = _clean()
    cyclosporine = copy.deepcopy(bundle["prescriptions"][0])
    cyclosporine.update(prescription_id="RX-CSA", ingredient="cyclosporine", clinical_justification="Taper.")
    bundle["prescriptions"].append(cyclosporine)
    decision = _decide(evaluator, bundle)
    (line,) = decision.lines
    assert [(finding.rule_id, finding.outcome) for finding in line.findings] == [("concurrent-cyclosporine", "INFO")]
    assert (line.outcome, decision.outcome) == ("ACCEPT", "ACCEPT")


def test_no_j7507_line_is_skipped(evaluator: Evaluator) -> None:
    mycophenolate = _line(1, hcpcs_code="J7517", ndc=None, modifiers=["25"], units=0.5)
    decision = _decide(evaluator, _with({"lines": [mycophenolate]}))
    assert decision.outcome == "SKIPPED"
    assert decision.lines == ()
    assert decision_json(decision)["lines"] == []


def test_no_lines_at_all_is_skipped(evaluator: Evaluator) -> None:
    assert _decide(evaluator, _with({"lines": []})).outcome == "SKIPPED"


def test_only_j7507_lines_are_evaluated_and_listed(evaluator: Evaluator) -> None:
    lines = [
        _line(1, hcpcs_code="J7517", ndc=None, modifiers=["25"], units=0.5),
        _line(2),
        _line(3, hcpcs_code="Q0511", ndc=None, units=1),
    ]
    decision = _decide(evaluator, _with({"lines": lines}))
    assert _summary(decision) == ("ACCEPT", [(2, "ACCEPT")])
    assert [line.hcpcs_code for line in decision.lines] == ["J7507"]


# --- no patient identifier outside patient_id -------------------------------------------------

DISTINCTIVE_PATIENT = "MRN-QUOKKA-99172"


def _everything_wrong() -> dict[str, Any]:
    """A bundle that trips many rules, with the distinctive patient id on every record."""
    bundle = _clean()
    claim = bundle["claim"]
    claim.update(
        patient_id=DISTINCTIVE_PATIENT,
        diagnosis_codes=["Z94.5"],
        coverage={"part_a_at_transplant": False, "part_b_active": False, "entitlement": "ESRD_ONLY"},
        prior_authorization={"number": "PA-1", "status": "DENIED"},
    )
    claim["lines"] = [
        _line(1, units=60.5, modifiers=["GA", "GZ", "25"], days_supply=120, prescription_id="RX-NOPE"),
        _line(2, ndc=None, units=60.5),
        _line(3, ndc="12345678901", date_of_service="2025-08-25"),
    ]
    for record in (*bundle["prescriptions"], *bundle["labs"]):
        record["patient_id"] = DISTINCTIVE_PATIENT
    bundle["labs"][0]["value"] = 45.0
    prior = copy.deepcopy(claim)
    prior.update(claim_id="EX-0999", lines=[_line(1, date_of_service="2025-11-25")])
    bundle["prior_claims"] = [prior]
    return bundle


def test_patient_id_appears_only_in_the_patient_id_field(evaluator: Evaluator) -> None:
    decision = _decide(evaluator, _everything_wrong())
    assert len({finding.rule_id for line in decision.lines for finding in line.findings}) >= 10
    record = decision_json(decision)
    assert record.pop("patient_id") == DISTINCTIVE_PATIENT
    assert DISTINCTIVE_PATIENT not in json.dumps(record)
