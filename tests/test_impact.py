"""Impact analysis, Kafka-free: the comparison, the report model, the bundles source and the renderers."""

from __future__ import annotations

import copy
import json
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.devkit.synthetic import generate
from worker.engine.evaluate import Evaluator
from worker.engine.reference import load_reference
from worker.engine.rules.packs import load_packs
from worker.offline.impact import DualEvaluator, ImpactAnalysis, format_charges, j7507_charges
from worker.offline.impact_bundles import analyse_bundles
from worker.offline.impact_report import render
from worker.offline.offline import evaluate_lines

REPO = Path(__file__).resolve().parents[1]
DEMO_PAYERS = REPO / "worker" / "devkit" / "demo_payers"
REFERENCE = load_reference(None)


@pytest.fixture(scope="module")
def pool() -> list[str]:
    """Synthetic bundles (with planted problems) as JSON lines: the claims every test draws from."""
    return [json.dumps(bundle) for bundle in generate(60, seed=5).bundles()]


def _dual(baseline: Path | None, candidate: Path | None) -> DualEvaluator:
    return DualEvaluator(Evaluator(load_packs(baseline), REFERENCE), Evaluator(load_packs(candidate), REFERENCE))


def _analyse(dual: DualEvaluator, lines: Sequence[str], **window: Any) -> ImpactAnalysis:
    analysis = ImpactAnalysis(**window)
    analyse_bundles(dual, lines, analysis)
    return analysis


# --- the difference of two evaluate runs, computed independently -------------------------------------


def _rules_of(decision: dict[str, Any]) -> Counter[str]:
    findings = [*decision["findings"], *(f for line in decision["lines"] for f in line["findings"])]
    return Counter(finding["rule_id"] for finding in findings)


def _charges(line: str) -> Decimal:
    lines = json.loads(line)["claim"]["lines"]
    amounts = [item.get("charge_amount") for item in lines if item["hcpcs_code"] == "J7507"]
    return sum((Decimal(amount) for amount in amounts if amount), Decimal(0))


def expected_impact(baseline: Evaluator, candidate: Evaluator, lines: Sequence[str]) -> dict[str, Any]:
    """What two `evaluate` runs over the same lines differ by, in the report's terms."""
    before = {result.input_line: result for result in evaluate_lines(baseline, lines)}
    after = {result.input_line: result for result in evaluate_lines(candidate, lines)}
    assert before.keys() == after.keys()
    transitions: dict[tuple[str, str], list[Any]] = {}
    rules_before: Counter[str] = Counter()
    rules_after: Counter[str] = Counter()
    changed = []
    bad = []
    for number, result in before.items():
        if result.malformed:
            bad.append(f"line {number}")
            continue
        b, c = result.output, after[number].output
        if b["outcome"] == "SKIPPED":
            continue
        row = transitions.setdefault((b["outcome"], c["outcome"]), [0, Decimal(0)])
        row[0] += 1
        row[1] += _charges(lines[number - 1])
        rb, rc = _rules_of(b), _rules_of(c)
        rules_before.update(rb)
        rules_after.update(rc)
        added, removed = sorted(set(rc) - set(rb)), sorted(set(rb) - set(rc))
        if added or removed or b["outcome"] != c["outcome"]:
            changed.append((b["claim_id"], b["claim_version"], b["outcome"], c["outcome"], added, removed))
    return {
        "claims": sum(count for count, _ in transitions.values()),
        "transitions": {key: (count, charges) for key, (count, charges) in transitions.items()},
        "rules": {rule: (rules_before[rule], rules_after[rule]) for rule in set(rules_before) | set(rules_after)},
        "changed": sorted(changed),
        "bad": bad,
    }


def as_compared(report_json: dict[str, Any], bad: list[str]) -> dict[str, Any]:
    return {
        "claims": report_json["claims"],
        "transitions": {
            (row["baseline"], row["candidate"]): (row["claims"], Decimal(row["charges"]))
            for row in report_json["transitions"]
        },
        "rules": {row["rule_id"]: (row["baseline"], row["candidate"]) for row in report_json["rules"]},
        "changed": sorted(
            (c["claim_id"], c["claim_version"], c["baseline"], c["candidate"], c["added"], c["removed"])
            for c in report_json["changed"]
        ),
        "bad": bad,
    }


PAYERS = ("MEDICARE-DME-JC", "MEDICARE-DME-JA", "ACME-HEALTH", "SUMMIT-CARE", "STATE-MEDICAID-OH", "BLUE-HARBOR-PPO")
SETTINGS = st.fixed_dictionaries(
    {},
    optional={
        "requires_prior_auth": st.booleans(),
        "requires_ndc": st.booleans(),
        "max_days_supply": st.integers(1, 120),
        "refill_window_days": st.integers(0, 20),
        "lifetime_units_cap": st.integers(100, 50_000),
        "quantity_tolerance": st.sampled_from([0.0, 0.05, 0.1, 0.5]),
        "lab_lookback_days": st.integers(10, 400),
    },
)
CONFIG = st.dictionaries(st.sampled_from(PAYERS), SETTINGS, max_size=4)
MALFORMED = st.sampled_from(["{", "[]", '{"claim": 1}', '{"claim": {"claim_id": "X"}}', "\ufffe\x00"])


def write_config(directory: Path, config: dict[str, dict[str, Any]]) -> Path | None:
    """Override files for `config` (payer id -> settings) in `directory`; None for an empty config."""
    if not config:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    for number, (payer_id, payer_settings) in enumerate(sorted(config.items())):
        text = yaml.safe_dump({"payer_id": payer_id, "settings": payer_settings})
        (directory / f"payer-{number}.yaml").write_text(text, encoding="utf-8")
    return directory


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    baseline=CONFIG,
    candidate=CONFIG,
    picks=st.lists(st.integers(0, 10_000), min_size=0, max_size=40),
    bad=st.lists(st.tuples(st.integers(0, 40), MALFORMED), max_size=3),
)
def test_impact_is_the_difference_of_two_evaluate_runs(
    pool: list[str],
    baseline: dict[str, dict[str, Any]],
    candidate: dict[str, dict[str, Any]],
    picks: list[int],
    bad: list[tuple[int, str]],
) -> None:
    lines = [pool[pick % len(pool)] for pick in picks]
    for position, text in bad:
        lines.insert(min(position, len(lines)), text)
    with tempfile.TemporaryDirectory() as root:
        dual = _dual(write_config(Path(root) / "b", baseline), write_config(Path(root) / "c", candidate))
        report = _analyse(dual, lines).report()
        expected = expected_impact(dual.baseline, dual.candidate, lines)
    assert as_compared(report.to_json(), [item.where for item in report.bad_input]) == expected


def test_the_demo_payers_move_planted_payer_problems(pool: list[str]) -> None:
    report = _analyse(_dual(None, DEMO_PAYERS), pool).report()
    assert report.claims > 0 and report.changed
    added = {rule for claim in report.changed for rule in claim.added}
    assert {"prior-auth-missing", "specialty-pharmacy-required"} <= added
    # The built-in packs never raise the payer rules these overrides switch on.
    assert all(rule.baseline == 0 for rule in report.rules if rule.rule_id == "specialty-pharmacy-required")
    # Every changed claim's first added finding is shown, and comes from the candidate.
    assert all(claim.message for claim in report.changed if claim.added)


def test_the_same_configuration_changes_nothing(pool: list[str]) -> None:
    report = _analyse(_dual(DEMO_PAYERS, DEMO_PAYERS), pool).report()
    assert report.changed == ()
    assert all(row.baseline == row.candidate for row in report.transitions)
    assert all(rule.change == 0 for rule in report.rules)


# --- the report model ---------------------------------------------------------------------------


def test_json_has_exactly_the_contracts_fields(pool: list[str]) -> None:
    report = _analyse(_dual(None, DEMO_PAYERS), [*pool[:80], "{"]).report()
    document = json.loads(render(report, "json"))
    assert set(document) == {"claims", "transitions", "rules", "changed"}
    assert all(set(row) == {"baseline", "candidate", "claims", "charges"} for row in document["transitions"])
    assert all(set(row) == {"rule_id", "baseline", "candidate"} for row in document["rules"])
    assert all(
        set(row) == {"claim_id", "claim_version", "baseline", "candidate", "added", "removed"}
        for row in document["changed"]
    )
    assert all(isinstance(row["charges"], str) and "." in row["charges"] for row in document["transitions"])
    assert document["claims"] == sum(row["claims"] for row in document["transitions"])


def test_skipped_claims_are_left_out_and_charges_sum_j7507_lines_only(pool: list[str]) -> None:
    bundle = json.loads(pool[0])
    claim = bundle["claim"]
    claim["lines"][0]["charge_amount"] = "100.10"
    other = {**claim["lines"][0], "line_number": 9, "hcpcs_code": "J7517", "charge_amount": "999.00"}
    claim["lines"].append(other)
    skipped = copy.deepcopy(bundle)
    skipped["claim"]["claim_id"] = "NO-J7507"
    skipped["claim"]["lines"] = [other]
    report = _analyse(_dual(None, None), [json.dumps(bundle), json.dumps(skipped)]).report()
    assert report.claims == 1
    assert [row.to_json()["charges"] for row in report.transitions] == ["100.10"]


@pytest.mark.parametrize(
    ("amount", "shown"), [("0", "0.00"), ("12.5", "12.50"), ("1000.00", "1000.00"), ("0.125", "0.125")]
)
def test_charges_are_decimal_strings_with_cents(amount: str, shown: str) -> None:
    assert format_charges(Decimal(amount)) == shown


def test_unreadable_charge_amounts_count_as_zero(pool: list[str]) -> None:
    from worker.engine.events import Claim

    claim = Claim.model_validate(json.loads(pool[0])["claim"])
    line = claim.lines[0]
    for amount, total in (("abc", "0.00"), ("NaN", "0.00"), (" 5.25 ", "5.25"), (None, "0.00")):
        changed = claim.model_copy(update={"lines": (line.model_copy(update={"charge_amount": amount}),)})
        assert format_charges(j7507_charges(changed)) == total


def test_since_and_until_select_by_claim_time(pool: list[str]) -> None:
    times = sorted(datetime.fromisoformat(json.loads(line)["claim"]["event_time"]) for line in pool)
    middle = times[len(times) // 2]
    dual = _dual(None, DEMO_PAYERS)
    whole = _analyse(dual, pool).report().claims
    early = _analyse(dual, pool, until=middle).report().claims
    late = _analyse(dual, pool, since=middle).report().claims
    assert early + late == whole
    assert 0 < early < whole
    # A bundle without a claim time is counted only when no window is set.
    untimed = json.loads(pool[0])
    del untimed["claim"]["event_time"]
    assert _analyse(dual, [json.dumps(untimed)]).report().claims == 1
    assert _analyse(dual, [json.dumps(untimed)], since=datetime(2000, 1, 1, tzinfo=UTC)).report().claims == 0


def test_bad_lines_are_named_by_number_and_the_run_goes_on(pool: list[str]) -> None:
    broken = json.loads(pool[1])
    broken["claim"]["lines"][0]["units"] = "120"
    lines = [pool[0], "{", json.dumps(broken), "", b"\xff\xfe".decode("latin-1"), pool[2]]
    report = _analyse(_dual(None, None), lines).report()
    assert report.claims == 2  # line 5 is text, not JSON: malformed like lines 2 and 3
    assert [bad.where for bad in report.bad_input] == ["line 2", "line 3", "line 5"]
    assert "claim.lines.0.units" in report.bad_input[1].problem
    assert "120" not in report.bad_input[1].problem


# --- renderers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_report(pool: list[str]) -> Any:
    return _analyse(_dual(None, DEMO_PAYERS), [*pool, '{"claim": 1}']).report()


def _patient_ids(pool: list[str]) -> Iterator[str]:
    for line in pool:
        bundle = json.loads(line)
        yield bundle["claim"]["patient_id"]


@pytest.mark.parametrize("fmt", ["table", "json", "markdown"])
def test_no_report_format_holds_a_patient_identifier(pool: list[str], demo_report: Any, fmt: str) -> None:
    text = render(demo_report, fmt)
    leaked = [patient for patient in set(_patient_ids(pool)) if patient in text]
    assert leaked == []


def test_table_shows_the_matrix_the_moving_rules_and_the_first_changed_claims(demo_report: Any) -> None:
    text = render(demo_report, "table")
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("baseline \\ candidate"))
    assert header.split()[-3:] == ["ACCEPT", "HOLD", "DENY_RISK"]
    top = max(demo_report.rules, key=lambda rule: abs(rule.change))
    assert any(line.startswith(top.rule_id) and f"{top.change:+,}" in line for line in lines)
    first = demo_report.changed[0]
    row = next(line for line in lines if line.startswith(first.claim_id + " "))
    assert first.added[0] in row
    assert "Bad input: 1" in text
    assert f"  {demo_report.bad_input[0].where}: " in text


def test_markdown_is_tables_for_a_change_ticket(demo_report: Any) -> None:
    text = render(demo_report, "markdown")
    assert text.startswith("### Impact of ")
    assert "| baseline \\ candidate | ACCEPT | HOLD | DENY_RISK |" in text
    assert "|---|---|---|---|" in text
    assert f"| `{demo_report.rules[0].rule_id}` |" in text
    assert "**Bad input**: 1" in text
