"""Claim + patient context -> decision. Pure: the stream and the offline CLI both call `decide`.

Every rule is evaluated for every J7507 line (Medicare-only rules where the pack says so); a line's
outcome is its worst HOLD or DENY_RISK finding (ACCEPT if none; INFO never counts) and the claim's
is its worst line. A claim without a J7507 line is SKIPPED.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from worker import __version__
from worker.engine.context import PatientContext
from worker.engine.events import (
    Claim,
    Decision,
    DecisionLine,
    Finding,
    LineOutcome,
    Source,
)
from worker.engine.horizon import Horizon
from worker.engine.reference import ReferenceData
from worker.engine.rules import RULES, RuleSpec
from worker.engine.rules.facts import ClaimFacts, LineFacts
from worker.engine.rules.packs import Pack, PackResolver

# Fixed namespace: decision ids must be the same in every process, release and replay.
DECISION_NAMESPACE = uuid.UUID("6f1b3c2e-7f1d-5b8e-9a57-3f0e4a1c7507")

_SEVERITY: dict[str, int] = {"ACCEPT": 0, "INFO": 0, "HOLD": 1, "DENY_RISK": 2}
_LINE_OUTCOMES: tuple[LineOutcome, ...] = ("ACCEPT", "HOLD", "DENY_RISK")


def decision_id(claim_id: str, claim_version: int, pack: Pack) -> str:
    """Deterministic: the same claim version under the same rule pack always gets the same id."""
    return str(uuid.uuid5(DECISION_NAMESPACE, f"{claim_id}\x1f{claim_version}\x1f{pack.name}\x1f{pack.version}"))


def worst_outcome(outcomes: Sequence[str]) -> LineOutcome:
    return _LINE_OUTCOMES[max((_SEVERITY[outcome] for outcome in outcomes), default=0)]


class Evaluator:
    """Decides claims with a fixed set of packs and reference data."""

    def __init__(
        self,
        packs: PackResolver,
        reference: ReferenceData,
        *,
        worker_version: str = __version__,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.packs = packs
        self.reference = reference
        self.worker_version = worker_version
        self.clock = clock
        # Per pack, the rules it runs, resolved once rather than per line.
        self._rules_by_pack: dict[tuple[str, str], tuple[RuleSpec, ...]] = {}

    @property
    def horizon(self) -> Horizon:
        """How far back any claim within its filing limit can reach, over every pack in use."""
        packs = self.packs.all_packs
        return Horizon(
            timely_filing_days=max(pack.settings.timely_filing_days for pack in packs),
            lab_lookback_days=max(pack.settings.lab_lookback_days for pack in packs),
        )

    def _rules_for(self, pack: Pack) -> tuple[RuleSpec, ...]:
        key = (pack.name, pack.version)
        rules = self._rules_by_pack.get(key)
        if rules is None:
            rules = tuple(spec for spec in RULES.values() if pack.settings.medicare_rules or not spec.medicare_only)
            self._rules_by_pack[key] = rules
        return rules

    def decide(
        self,
        claim: Claim,
        context: PatientContext,
        source: Source | None = None,
        context_as_of: datetime | None = None,
    ) -> Decision:
        """Decide one claim with its patient's context; `context_as_of` is the claim time that context
        was taken as of (the stream's record time; offline, the claim's event_time if given)."""
        pack = self.packs.for_claim(claim)
        facts = ClaimFacts(claim, context, pack.settings, self.reference)
        rules = self._rules_for(pack)
        lines: list[DecisionLine] = []
        for line in facts.j7507_lines:
            line_facts = LineFacts(facts, line)
            findings: list[Finding] = []
            for spec in rules:
                hit = spec.check(line_facts)
                if hit is not None:
                    findings.append(spec.finding(hit))
            lines.append(
                DecisionLine(
                    line_number=line.line_number,
                    hcpcs_code=line.hcpcs_code,
                    outcome=worst_outcome([finding.outcome for finding in findings]),
                    findings=tuple(findings),
                )
            )
        outcome = worst_outcome([line.outcome for line in lines]) if lines else "SKIPPED"
        return Decision(
            decision_id=decision_id(claim.claim_id, claim.claim_version, pack),
            claim_id=claim.claim_id,
            claim_version=claim.claim_version,
            patient_id=claim.patient_id,
            decided_at=self.clock(),
            context_as_of=context_as_of,
            outcome=outcome,
            rule_pack=pack.ref,
            worker_version=self.worker_version,
            source=source,
            lines=tuple(lines),
            claim_event_id=claim.event_id,
            rule_ids=tuple(dict.fromkeys(finding.rule_id for line in lines for finding in line.findings)),
        )
