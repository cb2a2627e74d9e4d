"""Rule-change impact: compare a baseline and a candidate decision per claim, and sum what changes.

Kafka-free and file-free: the sources (`worker.impact_sources`) decide each claim under both
configurations and hand the two decisions here; the renderers (`worker.impact_report`) turn the
`ImpactReport` into a table, JSON (docs/contract.md "Impact analysis", exactly its fields) or
markdown. Claims are named by claim id and version only: nothing here keeps a patient identifier.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from worker.engine.context import PatientContext
from worker.engine.evaluate import Evaluator
from worker.engine.events import Claim, Decision, Source
from worker.engine.horizon import Horizon, widest
from worker.engine.rules.packs import Pack

OUTCOME_ORDER = ("ACCEPT", "HOLD", "DENY_RISK")
_RANK = {outcome: rank for rank, outcome in enumerate(OUTCOME_ORDER)}
ZERO = Decimal("0.00")


def j7507_charges(claim: Claim) -> Decimal:
    """The sum of the claim's J7507 lines' `charge_amount`, exactly as written (contract: decimal string).

    A missing or unreadable amount counts as zero: the report sums money, it does not judge claims
    (a rule does that)."""
    total = ZERO
    for line in claim.j7507_lines:
        if line.charge_amount is None:
            continue
        try:
            amount = Decimal(line.charge_amount.strip())
        except InvalidOperation:
            continue
        if amount.is_finite():
            total += amount
    return total


def _rule_counts(decision: Decision) -> Counter[str]:
    counts: Counter[str] = Counter(finding.rule_id for finding in decision.findings)
    counts.update(finding.rule_id for line in decision.lines for finding in line.findings)
    return counts


def _first_message(decision: Decision, rule_ids: set[str]) -> str | None:
    """The message of the first finding (claim level, then line by line) of one of `rule_ids`."""
    for finding in (*decision.findings, *(f for line in decision.lines for f in line.findings)):
        if finding.rule_id in rule_ids:
            return finding.message
    return None


@dataclass(frozen=True)
class Transition:
    baseline: str
    candidate: str
    claims: int
    charges: Decimal

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "claims": self.claims,
            "charges": format_charges(self.charges),
        }


@dataclass(frozen=True)
class RuleCount:
    rule_id: str
    baseline: int
    candidate: int

    @property
    def change(self) -> int:
        return self.candidate - self.baseline

    def to_json(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "baseline": self.baseline, "candidate": self.candidate}


@dataclass(frozen=True)
class ChangedClaim:
    claim_id: str
    claim_version: int
    baseline: str
    candidate: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    charges: Decimal
    message: str | None  # the first added finding's message (rules write no patient identifiers)

    def to_json(self) -> dict[str, Any]:
        return {
            "claim_id": self.claim_id,
            "claim_version": self.claim_version,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "added": list(self.added),
            "removed": list(self.removed),
        }


@dataclass(frozen=True)
class BadInput:
    """Input that could not be decided: where (bundle line, or topic/partition/offset) and why."""

    where: str
    problem: str


@dataclass(frozen=True)
class ImpactReport:
    claims: int
    transitions: tuple[Transition, ...]
    rules: tuple[RuleCount, ...]
    changed: tuple[ChangedClaim, ...]
    bad_input: tuple[BadInput, ...] = ()
    baseline_name: str = "baseline"
    candidate_name: str = "candidate"

    def to_json(self) -> dict[str, Any]:
        """docs/contract.md "Impact analysis": exactly these four fields."""
        return {
            "claims": self.claims,
            "transitions": [transition.to_json() for transition in self.transitions],
            "rules": [rule.to_json() for rule in self.rules],
            "changed": [claim.to_json() for claim in self.changed],
        }

    @property
    def changed_charges(self) -> Decimal:
        return sum((claim.charges for claim in self.changed), ZERO)

    @property
    def moved_claims(self) -> int:
        """Claims whose outcome moved (a changed claim may keep its outcome with other findings)."""
        return sum(1 for claim in self.changed if claim.baseline != claim.candidate)


def format_charges(amount: Decimal) -> str:
    """A decimal string with at least two places ("1000.00"), more where the input had them."""
    return str(amount if -amount.as_tuple().exponent >= 2 else amount.quantize(ZERO))  # type: ignore[operator]


@dataclass
class ImpactAnalysis:
    """Accumulates pairs of decisions of the same claim; `report()` at the end.

    `since`/`until` (claim time, `since` inclusive, `until` exclusive) limit what is counted; a
    claim without a time is counted only when neither is set."""

    since: datetime | None = None
    until: datetime | None = None
    _claims: int = 0
    _transitions: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    _baseline_rules: Counter[str] = field(default_factory=Counter)
    _candidate_rules: Counter[str] = field(default_factory=Counter)
    _changed: list[ChangedClaim] = field(default_factory=list)
    _bad: list[BadInput] = field(default_factory=list)

    def in_window(self, claim_time: datetime | None) -> bool:
        if self.since is None and self.until is None:
            return True
        if claim_time is None:
            return False
        if self.since is not None and claim_time < self.since:
            return False
        return self.until is None or claim_time < self.until

    def add(self, claim: Claim, baseline: Decision, candidate: Decision) -> None:
        """One claim decided under both configurations (SKIPPED claims are left out)."""
        if baseline.outcome == "SKIPPED" or candidate.outcome == "SKIPPED":
            return
        self._claims += 1
        charges = j7507_charges(claim)
        row = self._transitions.setdefault((baseline.outcome, candidate.outcome), [0, ZERO])
        row[0] += 1
        row[1] += charges
        before, after = _rule_counts(baseline), _rule_counts(candidate)
        self._baseline_rules.update(before)
        self._candidate_rules.update(after)
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        if added or removed or baseline.outcome != candidate.outcome:
            self._changed.append(
                ChangedClaim(
                    claim_id=claim.claim_id,
                    claim_version=claim.claim_version,
                    baseline=baseline.outcome,
                    candidate=candidate.outcome,
                    added=tuple(added),
                    removed=tuple(removed),
                    charges=charges,
                    message=_first_message(candidate, set(added)) if added else None,
                )
            )

    def bad(self, where: str, problem: str) -> None:
        self._bad.append(BadInput(where, problem))

    @property
    def bad_count(self) -> int:
        return len(self._bad)

    def report(self, *, baseline_name: str = "baseline", candidate_name: str = "candidate") -> ImpactReport:
        transitions = tuple(
            Transition(baseline, candidate, count, charges)
            for (baseline, candidate), (count, charges) in sorted(
                self._transitions.items(), key=lambda item: (_RANK[item[0][0]], _RANK[item[0][1]])
            )
        )
        rule_ids = set(self._baseline_rules) | set(self._candidate_rules)
        rules = sorted(
            (RuleCount(rule_id, self._baseline_rules[rule_id], self._candidate_rules[rule_id]) for rule_id in rule_ids),
            key=lambda rule: (-abs(rule.change), rule.rule_id),
        )
        # Claim id order: the same claims read from a file or from the topics give the same report.
        changed = sorted(self._changed, key=lambda claim: (claim.claim_id, claim.claim_version))
        return ImpactReport(
            claims=self._claims,
            transitions=transitions,
            rules=tuple(rules),
            changed=tuple(changed),
            bad_input=tuple(self._bad),
            baseline_name=baseline_name,
            candidate_name=candidate_name,
        )


def same_pack(baseline: Pack, candidate: Pack) -> bool:
    """Two packs decide every claim alike: same name, version and settings (the source file may differ)."""
    return bool(
        baseline.name == candidate.name
        and baseline.version == candidate.version
        and baseline.settings == candidate.settings
    )


class DualEvaluator:
    """Decides a claim under the baseline and the candidate; where both resolve the claim to the same
    pack (a candidate that changes one payer leaves the others alone) the baseline's decision is the
    candidate's too, which halves the cost of the claims the change cannot touch."""

    def __init__(self, baseline: Evaluator, candidate: Evaluator) -> None:
        self.baseline = baseline
        self.candidate = candidate

    @property
    def horizon(self) -> Horizon:
        return widest(self.baseline.horizon, self.candidate.horizon)

    def decide(
        self,
        claim: Claim,
        context: PatientContext,
        source: Source | None = None,
        context_as_of: datetime | None = None,
    ) -> tuple[Decision, Decision]:
        baseline = self.baseline.decide(claim, context, source, context_as_of=context_as_of)
        if same_pack(self.baseline.packs.for_claim(claim), self.candidate.packs.for_claim(claim)):
            return baseline, baseline
        return baseline, self.candidate.decide(claim, context, source, context_as_of=context_as_of)
