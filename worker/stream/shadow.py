"""Live shadow evaluation: decide every claim under a candidate configuration too, and compare.

`run --shadow-payer-config DIR` gives the stream loop a `Shadow`; after each real decision is built
and sent, the loop calls `observe` with the same claim, context and time. The shadow

- counts the outcome pair (`j7507_shadow_decisions_total{baseline,candidate}`) and the candidate's
  findings (`j7507_shadow_rule_findings_total{rule_id,outcome}`), to compare with the real
  `j7507_rule_findings_total`;
- with `--shadow-decisions-topic T`, publishes the candidate's decision there with the real
  headers plus `shadow: true`, fire and forget: the ledger never waits for it, so it never holds
  a commit back; a failed send is logged and counted;
- never changes the real decision, its headers or its commit, and never dead-letters: any failure
  (the candidate raising, encoding, sending) is logged with the claim id and version and counted in
  `j7507_shadow_errors_total`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from worker.codec.wire import WireFormat
from worker.engine.context import PatientContext
from worker.engine.evaluate import Evaluator
from worker.engine.events import Claim, Decision, Source
from worker.observability import Metrics

log = structlog.get_logger("worker.shadow")

SHADOW_HEADER = ("shadow", b"true")


@dataclass
class Shadow:
    evaluator: Evaluator
    metrics: Metrics
    wire: WireFormat
    topic: str | None = None

    def observe(
        self,
        decision: Decision,
        claim: Claim,
        context: PatientContext,
        source: Source | None,
        context_as_of: datetime | None,
        key: bytes | None,
        producer: Any,
    ) -> Decision | None:
        """Decide `claim` under the candidate and record the comparison; returns the candidate's decision
        (None when the shadow failed). Never raises."""
        try:
            candidate = self.evaluator.decide(claim, context, source, context_as_of=context_as_of)
            self.metrics.shadow_decisions.labels(
                baseline=decision.outcome.lower(), candidate=candidate.outcome.lower()
            ).inc()
            for finding in (*candidate.findings, *(f for line in candidate.lines for f in line.findings)):
                self.metrics.shadow_rule_findings.labels(rule_id=finding.rule_id, outcome=finding.outcome.lower()).inc()
            if self.topic is not None:
                self._publish(candidate, claim, key, producer)
        except Exception as error:
            # The class only: an exception's message could carry a value from the claim.
            self._failed(claim.claim_id, claim.claim_version, "shadow_failed", type(error).__name__)
            return None
        return candidate

    def _publish(self, candidate: Decision, claim: Claim, key: bytes | None, producer: Any) -> None:
        assert self.topic is not None
        value = self.wire.encode("ClaimDecision", candidate.to_dict(), self.topic)
        future = producer.send(
            self.topic,
            key=key,
            value=value,
            headers=[
                ("outcome", candidate.outcome.encode()),
                ("decision_id", candidate.decision_id.encode()),
                ("rule_pack", str(candidate.rule_pack).encode()),
                SHADOW_HEADER,
            ],
        )
        claim_id, claim_version = claim.claim_id, claim.claim_version
        # Runs on the producer's IO thread: only a counter and a log line (both thread-safe).
        future.add_errback(
            lambda error: self._failed(claim_id, claim_version, "shadow_send_failed", type(error).__name__)
        )

    def _failed(self, claim_id: str, claim_version: int, event: str, error_class: str) -> None:
        self.metrics.shadow_errors.inc()
        log.warning(event, claim_id=claim_id, claim_version=claim_version, error_class=error_class)
