"""The rule registry: every rule is a plain function registered by its public id.

A rule receives the `LineFacts` of one J7507 line and returns a `Hit` (it fires) or None. It never
raises for bad data: missing values mean "no check" or are a finding of their own. The registry
turns a hit into a `Finding` with the rule's id, family, default outcome, expected CARC and policy
reference, so a new rule is one function plus its test table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from worker.engine.events import Finding, FindingOutcome
from worker.engine.exact import text as number_text

if TYPE_CHECKING:
    from worker.engine.rules.facts import LineFacts
    from worker.engine.rules.packs import PackSettings

Family = Literal["coding", "order", "coverage", "overlap", "labs", "payer"]

FAMILY_TITLES: Mapping[Family, str] = {
    "coding": "Coding and units",
    "order": "Order and quantity",
    "coverage": "Transplant and coverage",
    "overlap": "Overlapping therapy and interactions",
    "labs": "Laboratory context",
    "payer": "Payer requirements",
}


# Evidence lists show their first values and a count, so a finding's size does not grow with the
# claim's lines or the patient's history (a decision must stay far below the output limit).
EVIDENCE_LIST_CAP = 10


@dataclass(frozen=True, slots=True)
class Capped:
    """The first values of a longer list, and how many there are in all."""

    values: tuple[object, ...]
    total: int


def capped(values: Iterable[object], total: int | None = None) -> Capped:
    """`values` cut to EVIDENCE_LIST_CAP, remembering the total (given, or len(values))."""
    items = tuple(values)
    return Capped(items[:EVIDENCE_LIST_CAP], len(items) if total is None else total)


def capped_text(items: Sequence[str], total: int, separator: str = ", ") -> str:
    """Message form of a capped list: "a, b, c and 12 more"."""
    shown = separator.join(items[:EVIDENCE_LIST_CAP])
    more = total - min(len(items), EVIDENCE_LIST_CAP)
    return f"{shown} and {more} more" if more > 0 else shown


@dataclass(frozen=True, slots=True)
class Hit:
    """A rule fired: what it found, in words and values, and what would resolve it."""

    message: str
    evidence: Mapping[str, object]
    fix: str
    outcome: FindingOutcome | None = None  # None: the rule's first listed outcome


Check = Callable[["LineFacts"], Hit | None]
# A rule that can only fire when a pack setting is on says so: the evaluator then leaves it out of
# the packs where it is off (most payer rules are off in most packs), instead of calling it per line.
# The rule still checks the setting itself, so calling it directly gives the same answer.
Applies = Callable[["PackSettings"], bool]


@dataclass(frozen=True)
class RuleSpec:
    rule_id: str
    family: Family
    outcomes: tuple[FindingOutcome, ...]
    settings: tuple[str, ...]
    policy_ref: str
    expected_carc: str | None
    medicare_only: bool
    summary: str
    check: Check = field(repr=False)
    applies: Applies | None = field(default=None, repr=False, compare=False)

    def finding(self, hit: Hit) -> Finding:
        outcome = hit.outcome or self.outcomes[0]
        return Finding(
            rule_id=self.rule_id,
            family=self.family,
            outcome=outcome,
            message=hit.message,
            evidence={key: _evidence_text(value) for key, value in hit.evidence.items()},
            fix=hit.fix,
            # An INFO finding changes nothing, so no payer reason code is expected for it.
            expected_carc=self.expected_carc if outcome == "DENY_RISK" else None,
            policy_ref=self.policy_ref,
        )


def _evidence_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | Decimal):
        return number_text(value)  # as written: 1.2, never 1.2000000000000002 (nor 1.23457e+06)
    if isinstance(value, Capped):
        return _list_text(value.values, value.total)
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else list(value)
        return _list_text(items, len(items))
    return str(value)


def _list_text(items: Sequence[object], total: int) -> str:
    """Comma-joined, at most EVIDENCE_LIST_CAP values, then "(+N more)" when there are more."""
    text = ",".join(_evidence_text(item) for item in items[:EVIDENCE_LIST_CAP])
    more = total - min(len(items), EVIDENCE_LIST_CAP)
    return f"{text} (+{more} more)" if more > 0 else text


RULES: dict[str, RuleSpec] = {}


def rule(
    rule_id: str,
    *,
    family: Family,
    outcomes: tuple[FindingOutcome, ...],
    policy_ref: str,
    expected_carc: str | None = None,
    settings: tuple[str, ...] = (),
    medicare_only: bool = False,
    applies: Applies | None = None,
) -> Callable[[Check], Check]:
    """Register a rule under its public id; the first docstring line is its catalogue summary."""

    def register(check: Check) -> Check:
        if rule_id in RULES:
            raise ValueError(f"rule {rule_id} registered twice")
        doc = (check.__doc__ or "").strip()
        RULES[rule_id] = RuleSpec(
            rule_id=rule_id,
            family=family,
            outcomes=outcomes,
            settings=(*settings, "medicare_rules") if medicare_only else settings,
            policy_ref=policy_ref,
            expected_carc=expected_carc,
            medicare_only=medicare_only,
            summary=doc.splitlines()[0] if doc else rule_id,
            check=check,
            applies=applies,
        )
        return check

    return register
