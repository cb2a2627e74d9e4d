"""The context horizon loses nothing a claim within its filing limit needs.

Generated multi-year streams (monthly claims, labs and quarterly renewals, with corrections, errors,
resubmissions, late filings and interacting drugs) are fed in time order to a pruned and an
unbounded store; every claim within its payer's filing limit gets the identical decision (outcome,
rule ids, evidence) from both. After every claim, probes filed at the same time with a date of
service at the payer's limit (and a few days inside it) put the horizon's edge to the test, and so
do probes filed up to `OUT_OF_ORDER_SLACK` earlier (claims that arrive slightly out of order).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.devkit.history import HistoryOptions, generate_history
from worker.engine.context_store import ContextStore
from worker.engine.evaluate import Evaluator
from worker.engine.events import Claim, LabResult, Prescription
from worker.engine.horizon import OUT_OF_ORDER_SLACK
from worker.engine.records import time_ms
from worker.engine.reference import load_reference
from worker.engine.rules.packs import load_packs

EVALUATOR = Evaluator(load_packs(None), load_reference(None))
MODELS = {"claim": Claim, "prescription": Prescription, "lab": LabResult}


def _comparable(decision: object) -> object:
    lines = decision.lines  # type: ignore[attr-defined]
    return (
        decision.outcome,  # type: ignore[attr-defined]
        [(line.line_number, [(f.rule_id, f.outcome, f.evidence) for f in line.findings]) for line in lines],
    )


LIMIT_DAYS = {"MEDICARE": 365, "MEDICAID": 365, "COMMERCIAL": 180}


def _probes(record: dict[str, Any], filed: datetime) -> list[tuple[Claim, int]]:
    """The claim again, as new claims for services at and near the limit, filed at the same moment or
    up to the out-of-order slack earlier; with the record time each is decided as of."""
    limit = LIMIT_DAYS[record["payer"]["payer_type"]]
    probes = []
    for earlier in (timedelta(0), OUT_OF_ORDER_SLACK):
        for days_inside in (0, 3, 20, 60):
            fields = json.loads(json.dumps(record))
            fields["claim_id"] = f"PROBE-{days_inside}"
            fields["event_time"] = (filed - earlier).isoformat()
            service = (filed - earlier).date() - timedelta(days=limit - days_inside)
            fields["lines"][0]["date_of_service"] = service.isoformat()
            fields["lines"][0]["prescription_id"] = None  # matched by what is active on the date
            probes.append((Claim.model_validate(fields), time_ms(filed - earlier)))
    return probes


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    years=st.integers(2, 4),
    noise=st.floats(0.3, 1.0),
)
def test_pruned_and_unbounded_contexts_decide_alike_within_the_filing_limit(
    seed: int, years: int, noise: float
) -> None:
    events = generate_history(HistoryOptions(patients=4, years=years, seed=seed, noise=noise))
    groups = EVALUATOR.reference.group_of_loinc
    pruned = ContextStore(horizon=EVALUATOR.horizon, lab_groups=groups)
    unbounded = ContextStore(horizon=None, lab_groups=groups)
    compared = 0
    for event in events:
        model = MODELS[event.kind].model_validate(event.record)
        moment = model.event_time
        assert isinstance(moment, datetime)
        time = time_ms(moment)
        for store in (pruned, unbounded):
            if isinstance(model, Prescription):
                store.add_prescription(0, model, time)
            elif isinstance(model, LabResult):
                store.add_lab(0, model, time)
        if not isinstance(model, Claim):
            continue
        with_horizon = EVALUATOR.decide(model, pruned.as_of(0, model.patient_id, time))
        without = EVALUATOR.decide(model, unbounded.as_of(0, model.patient_id, time))
        if "timely-filing-expired" not in with_horizon.rule_ids:
            assert _comparable(with_horizon) == _comparable(without), (model.claim_id, model.claim_version)
            compared += 1
        for store in (pruned, unbounded):
            store.add_claim(0, model, time)
        for probe, probe_time in _probes(event.record, moment):
            probe_pruned = EVALUATOR.decide(probe, pruned.as_of(0, probe.patient_id, probe_time))
            assert "timely-filing-expired" not in probe_pruned.rule_ids
            probe_unbounded = EVALUATOR.decide(probe, unbounded.as_of(0, probe.patient_id, probe_time))
            assert _comparable(probe_pruned) == _comparable(probe_unbounded), (model.claim_id, probe.claim_id)
            compared += 1
    assert compared > 0
    # The horizon bites: after two years the pruned store holds less of everything that ages.
    for kind in ("labs", "prior_claims"):
        assert pruned.sizes[kind] < unbounded.sizes[kind], kind
