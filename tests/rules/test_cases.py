"""The generic runner: every rule's table of titled cases, `{rule_id: cases}` per family module, decided here.

A family module (test_coding.py, ...) holds the cases (`fires`, `quiet` in conftest.py) and its
`CASES` table; this module runs them all through `check` and makes sure no rule of the catalogue
is left without cases. Tests that need more than one finding's outcome and evidence stay in the
family modules as plain functions.
"""

from __future__ import annotations

from typing import Any

import pytest

from worker.engine.rules import RULES

from . import test_coding, test_coverage, test_labs, test_order, test_overlap, test_payer
from .conftest import CASE_ARGS, check

FAMILIES = (test_coding, test_coverage, test_labs, test_order, test_overlap, test_payer)


def _tables() -> dict[str, list[Any]]:
    tables: dict[str, list[Any]] = {}
    for module in FAMILIES:
        for rule_id, cases in module.CASES.items():
            assert rule_id not in tables, f"{rule_id} has cases in two modules"
            tables[rule_id] = cases
    return tables


TABLES = _tables()
RUNS = [
    pytest.param(rule_id, *case.values, id=f"{rule_id}: {case.id}", marks=case.marks)
    for rule_id, cases in TABLES.items()
    for case in cases
]


@pytest.mark.parametrize(("rule_id", *CASE_ARGS), RUNS)
def test_rule_case(
    rule_id: str, changes: dict[str, Any], outcome: str | None, evidence: dict[str, str], organ: str, line: int
) -> None:
    check(rule_id, changes, outcome, evidence, organ, line)


def test_every_rule_of_the_catalogue_has_cases_that_fire_and_cases_that_do_not() -> None:
    assert sorted(set(RULES) - set(TABLES)) == []
    assert sorted(set(TABLES) - set(RULES)) == []  # a renamed rule id
    for rule_id, cases in TABLES.items():
        outcomes = {case.values[1] for case in cases}
        assert None in outcomes and outcomes - {None}, f"{rule_id}: needs a case that fires and one that does not"


def test_each_family_module_holds_only_its_familys_rules() -> None:
    for module in FAMILIES:
        family = module.__name__.rsplit("test_", 1)[1]
        assert {RULES[rule_id].family for rule_id in module.CASES} <= {family}, module.__name__
