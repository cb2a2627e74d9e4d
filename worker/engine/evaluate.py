"""Claim + patient context -> decision. Pure: the stream and the offline CLI both call `decide`.

Every rule is evaluated for every J7507 line (Medicare-only rules where the pack says so); a line's
outcome is its worst HOLD or DENY_RISK finding (ACCEPT if none; INFO never counts) and the claim's
is its worst line. A claim without a J7507 line is SKIPPED.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial

from worker import __version__
from worker.engine.context import PatientContext
from worker.engine.events import (
    Claim,
    Decision,
    DecisionLine,
    Finding,
    LineOutcome,
    RulePackRef,
    Source,
)
from worker.engine.horizon import Horizon
from worker.engine.reference import ReferenceData
from worker.engine.rules import RULES, RuleSpec
from worker.engine.rules.facts import ClaimFacts, LineFacts
from worker.engine.rules.packs import Pack, PackResolver
from worker.engine.rules.registry import Check

# Fixed namespace: decision ids must be the same in every process, release and replay.
DECISION_NAMESPACE = uuid.UUID("6f1b3c2e-7f1d-5b8e-9a57-3f0e4a1c7507")

_SEVERITY: dict[str, int] = {"ACCEPT": 0, "INFO": 0, "HOLD": 1, "DENY_RISK": 2}
_LINE_OUTCOMES: tuple[LineOutcome, ...] = ("ACCEPT", "HOLD", "DENY_RISK")


_NAMESPACE_SHA1 = hashlib.sha1(DECISION_NAMESPACE.bytes, usedforsecurity=False)
# As uuid.UUID(version=5) sets them: the variant bits 10 in the top of the 17th hex digit.
_VARIANT_DIGIT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def decision_id(claim_id: str, claim_version: int, pack: Pack) -> str:
    """Deterministic: the same claim version under the same rule pack always gets the same id.

    This is `str(uuid.uuid5(DECISION_NAMESPACE, name))` (RFC 4122 name-based, SHA-1) computed
    without building a UUID object, which costs three times the hash (tests compare the two)."""
    name = f"{claim_id}\x1f{claim_version}\x1f{pack.name}\x1f{pack.version}"
    hasher = _NAMESPACE_SHA1.copy()  # copying the namespace's state skips OpenSSL's digest setup
    hasher.update(name.encode("utf-8"))
    hex_digest = hasher.hexdigest()
    # The first 16 bytes, version nibble 5 and the variant bits 10 set in the 17th hex digit.
    variant = _VARIANT_DIGIT[hex_digest[16]]
    return f"{hex_digest[:8]}-{hex_digest[8:12]}-5{hex_digest[13:16]}-{variant}{hex_digest[17:20]}-{hex_digest[20:32]}"


def worst_outcome(outcomes: Sequence[str]) -> LineOutcome:
    return _LINE_OUTCOMES[max((_SEVERITY[outcome] for outcome in outcomes), default=0)]


_UTC_NOW = partial(datetime.now, UTC)  # a partial: no Python frame per decision


class Evaluator:
    """Decides claims with a fixed set of packs and reference data."""

    def __init__(
        self,
        packs: PackResolver,
        reference: ReferenceData,
        *,
        worker_version: str = __version__,
        clock: Callable[[], datetime] = _UTC_NOW,
    ) -> None:
        self.packs = packs
        self.reference = reference
        self.worker_version = worker_version
        self.clock = clock
        # Per pack, the check functions it runs and the rule of each, resolved once rather than per line.
        self._rules_by_pack: dict[tuple[str, str], tuple[tuple[Check, ...], dict[Check, RuleSpec], RulePackRef]] = {}

    @property
    def horizon(self) -> Horizon:
        """How far back any claim within its filing limit can reach, over every pack in use."""
        packs = self.packs.all_packs
        return Horizon(
            timely_filing_days=max(pack.settings.timely_filing_days for pack in packs),
            lab_lookback_days=max(pack.settings.lab_lookback_days for pack in packs),
        )

    def _rules_for(self, pack: Pack) -> tuple[tuple[Check, ...], dict[Check, RuleSpec], RulePackRef]:
        """The checks a pack runs, in catalogue order, the rule of each check, and the pack's reference."""
        key = (pack.name, pack.version)
        prepared = self._rules_by_pack.get(key)
        if prepared is None:
            specs = [
                spec
                for spec in RULES.values()
                if (pack.settings.medicare_rules or not spec.medicare_only)
                and (spec.applies is None or spec.applies(pack.settings))
            ]
            # Keyed by the check: one function registered under two ids gets a wrapper of its own.
            rule_of: dict[Check, RuleSpec] = {}
            for spec in specs:
                rule_of[spec.check if spec.check not in rule_of else partial(spec.check)] = spec
            prepared = self._rules_by_pack[key] = (tuple(rule_of), rule_of, pack.ref)
        return prepared

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
        checks, rule_of, pack_ref = self._rules_for(pack)
        lines: list[DecisionLine] = []
        claim_worst = 0
        rule_ids: dict[str, None] = {}
        # The hot loop: ~35 checks per line, nearly all returning None. Iterating the bare checks
        # (the rule looked up only on a hit) and tracking severities as they come is measurably
        # cheaper than unpacking (rule, check) pairs or collecting and reducing afterwards.
        for line in facts.j7507_lines:
            line_facts = LineFacts(facts, line)
            findings: list[Finding] = []
            worst = 0
            for check in checks:
                hit = check(line_facts)
                if hit is not None:
                    finding = rule_of[check].finding(hit)
                    findings.append(finding)
                    rule_ids[finding.rule_id] = None
                    severity = _SEVERITY[finding.outcome]
                    if severity > worst:
                        worst = severity
            if worst > claim_worst:
                claim_worst = worst
            lines.append(DecisionLine(line.line_number, line.hcpcs_code, _LINE_OUTCOMES[worst], tuple(findings)))
        return Decision(
            decision_id(claim.claim_id, claim.claim_version, pack),  # decision_id
            claim.claim_id,
            claim.claim_version,
            claim.patient_id,
            self.clock(),  # decided_at
            context_as_of,
            _LINE_OUTCOMES[claim_worst] if lines else "SKIPPED",  # outcome
            pack_ref,  # rule_pack
            self.worker_version,
            source,
            tuple(lines),
            (),  # findings (claim-level: none today)
            claim.event_id,  # claim_event_id
            tuple(rule_ids),
        )
