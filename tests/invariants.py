"""The one decision-invariant checker: what contract.md and rules.md say about every decision.

It reads the decision record as the worker writes it (`decision_json`, the `evaluate` output line),
so the rule tables (tests/rules/conftest.py, from `Decision` objects) and the property tests (from
offline output) check the same things. With the bundle it also checks which lines are listed and
that the patient identifier appears nowhere but in `patient_id`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

CLAIM_OUTCOMES = {"ACCEPT", "HOLD", "DENY_RISK", "SKIPPED"}
LINE_OUTCOMES = {"ACCEPT", "HOLD", "DENY_RISK"}
FINDING_OUTCOMES = {"HOLD", "DENY_RISK", "INFO"}
SEVERITY = {"ACCEPT": 0, "INFO": 0, "HOLD": 1, "DENY_RISK": 2}


def check_decision(record: Mapping[str, Any], bundle: Mapping[str, Any] | None = None) -> None:
    assert record["outcome"] in CLAIM_OUTCOMES
    if bundle is not None:
        j7507 = [
            line["line_number"] for line in bundle["claim"]["lines"] if line["hcpcs_code"].strip().upper() == "J7507"
        ]
        assert [line["line_number"] for line in record["lines"]] == j7507, "only J7507 lines are listed"
    worst_by_line = []
    for line in record["lines"]:
        assert line["hcpcs_code"].strip().upper() == "J7507"
        assert line["outcome"] in LINE_OUTCOMES
        rule_ids = [finding["rule_id"] for finding in line["findings"]]
        assert len(rule_ids) == len(set(rule_ids)), f"a rule fired twice on line {line['line_number']}: {rule_ids}"
        for finding in line["findings"]:
            check_finding(finding)
        worst = max((SEVERITY[finding["outcome"]] for finding in line["findings"]), default=0)
        assert SEVERITY[line["outcome"]] == worst, "a line's outcome is its worst HOLD/DENY_RISK finding"
        worst_by_line.append(worst)
    if record["lines"]:
        assert SEVERITY[record["outcome"]] == max(worst_by_line), "the claim's outcome is its worst line's"
    else:
        assert record["outcome"] == "SKIPPED"
    if bundle is not None:
        rest = {key: value for key, value in record.items() if key != "patient_id"}
        assert record["patient_id"] == bundle["claim"]["patient_id"]
        assert str(bundle["claim"]["patient_id"]) not in json.dumps(rest, default=str), "patient_id leaked"


def check_finding(finding: Mapping[str, Any]) -> None:
    rule_id = finding["rule_id"]
    assert finding["outcome"] in FINDING_OUTCOMES
    assert finding["message"].strip(), f"{rule_id}: empty message"
    assert finding["fix"] and finding["fix"].strip(), f"{rule_id}: no fix"
    assert finding["policy_ref"] and finding["policy_ref"].strip(), f"{rule_id}: no policy_ref"
    evidence = finding["evidence"]
    assert isinstance(evidence, dict) and evidence, f"{rule_id}: no evidence"
    assert all(isinstance(key, str) and isinstance(value, str) for key, value in evidence.items())
    if finding["outcome"] == "DENY_RISK":
        assert finding["expected_carc"], f"{rule_id}: DENY_RISK without expected_carc"
