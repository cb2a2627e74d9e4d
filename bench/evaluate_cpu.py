"""Micro-benchmark: CPU time to decide one typical claim bundle (not a test; run by hand).

    .venv/bin/python bench/evaluate_cpu.py [--iterations N] [--repeats R]

A typical bundle: one J7507 line, 3 prescriptions (tacrolimus IR, mycophenolate, a stopped
cyclosporine), 12 lab results (trough, creatinine, eGFR, ALT over three months, one superseded) and
6 prior claims (monthly fills, one resubmitted). It decides ACCEPT, so every rule runs to the end.

Measured with time.process_time (CPU of this process, not wall clock, so other load on the machine
matters less); each figure is the best of R repeats of N iterations, after a warm-up, and the median
of the repeats beside it. Many short repeats rather than a few long ones: on a shared machine the
same loop runs for seconds at a time up to 1.7 times slower (a neighbour on the core or its cache),
and the best of short repeats is what the work costs without that; the median shows how much of it
there was. The figures:

- parse+evaluate: JSON text -> Bundle -> PatientContext -> decision (the offline CLI path, minus output)
- context+evaluate: Bundle already parsed; build the context and decide
- evaluate only: claim and context ready; Evaluator.decide (the stream's per-claim cost)
- decision to JSON: decision_json + json.dumps of the result

Then the claim bounds (worker/stream/bounds.py), "evaluate only" against the typical bundle of this run:
a claim of 50 identical J7507 lines (X12 837P's maximum, MAX_CLAIM_LINES; duplicate-line fires on
49 of them), and a patient with 200 prior claims. Rules are linear in lines and history, so the
cost per line stays flat and the decision's size is bounded (evidence lists are capped).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from worker.engine.context import PatientContext
from worker.engine.evaluate import Evaluator
from worker.engine.events import Bundle
from worker.engine.reference import load_reference
from worker.engine.rules.packs import load_packs
from worker.offline.offline import decision_json, evaluate_bundle_text

DOS = date(2025, 12, 1)


def _line(date_of_service: date, line_number: int = 1) -> dict[str, Any]:
    return {
        "line_number": line_number,
        "hcpcs_code": "J7507",
        "modifiers": ["KX"],
        "units": 240,
        "charge_amount": "320.00",
        "date_of_service": date_of_service.isoformat(),
        "ndc": "55111052601",
        "ndc_quantity": 240,
        "ndc_unit": "UN",
        "days_supply": 30,
        "prescription_id": "RX-TAC",
    }


def _claim(claim_id: str, version: int, date_of_service: date) -> dict[str, Any]:
    return {
        "claim_id": claim_id,
        "claim_version": version,
        "patient_id": "P-BENCH",
        "payer": {"payer_id": "MEDICARE-DME-JC", "payer_type": "MEDICARE"},
        "coverage": {"part_a_at_transplant": True, "part_b_active": True, "entitlement": "AGE"},
        "transplant": {"organ": "KIDNEY", "transplant_date": "2024-06-15", "discharge_date": "2024-06-25"},
        "diagnosis_codes": ["Z94.0", "I10"],
        "abn_on_file": False,
        "dispensing_pharmacy_npi": "1003000142",
        "lines": [_line(date_of_service)],
    }


def _prescription(prescription_id: str, ingredient: str, **fields: Any) -> dict[str, Any]:
    return {
        "prescription_id": prescription_id,
        "patient_id": "P-BENCH",
        "status": "ACTIVE",
        "ingredient": ingredient,
        "formulation": "IMMEDIATE_RELEASE",
        "route": "ORAL",
        "start_date": "2025-06-01",
        **fields,
    }


def _lab(observation_id: str, loinc: str, value: float, day: date, status: str = "FINAL") -> dict[str, Any]:
    return {
        "observation_id": observation_id,
        "patient_id": "P-BENCH",
        "loinc_code": loinc,
        "value": value,
        "effective_time": f"{day.isoformat()}T09:30:00Z",
        "status": status,
    }


def typical_bundle() -> dict[str, Any]:
    labs = []
    for month, day in enumerate((DOS - timedelta(days=70), DOS - timedelta(days=40), DOS - timedelta(days=10))):
        labs += [
            _lab(f"TAC-{month}", "11253-2", 8.0 + month, day),
            _lab(f"CREA-{month}", "2160-0", 1.1, day),
            _lab(f"EGFR-{month}", "98979-8", 60.0, day),
        ]
    labs += [
        _lab("ALT-0", "1742-6", 30, DOS - timedelta(days=40)),
        _lab("TAC-2", "11253-2", 9.5, DOS - timedelta(days=10), status="CORRECTED"),  # supersedes TAC-2
        _lab("K-0", "2823-3", 4.2, DOS - timedelta(days=10)),
    ]
    prior_claims = [_claim(f"CLM-{month}", 1, DOS - timedelta(days=30 * month)) for month in range(1, 6)]
    prior_claims.append(_claim("CLM-1", 2, DOS - timedelta(days=30)))  # a resubmission of CLM-1
    return {
        "claim": _claim("CLM-0", 1, DOS),
        "prescriptions": [
            _prescription(
                "RX-TAC",
                "tacrolimus",
                strength_mg=1.0,
                dose_mg=4.0,
                doses_per_day=2,
                days_supply=30,
                dosing_weight_kg=80,
            ),
            _prescription("RX-MMF", "mycophenolate mofetil", strength_mg=500.0, dose_mg=1000.0, doses_per_day=2),
            _prescription("RX-CSA", "cyclosporine", status="STOPPED", end_date="2024-07-01"),
        ],
        "labs": labs,
        "prior_claims": prior_claims,
    }


def fifty_line_bundle() -> dict[str, Any]:
    bundle = typical_bundle()
    bundle["claim"]["lines"] = [_line(DOS, number) for number in range(1, 51)]
    return bundle


def long_history_bundle() -> dict[str, Any]:
    bundle = typical_bundle()
    bundle["prior_claims"] = [
        _claim(f"CLM-H{index}", 1, DOS - timedelta(days=30 * (index % 100 + 1))) for index in range(200)
    ]
    return bundle


def repeat_microseconds(action: Callable[[], object], iterations: int, repeats: int) -> list[float]:
    """CPU µs per call of each of `repeats` runs of `iterations` calls, after a warm-up."""
    for _ in range(min(iterations, 200)):  # warm-up: caches, lazy imports
        action()
    runs = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(iterations):
            action()
        runs.append((time.process_time() - start) / iterations * 1e6)
    return runs


def best_microseconds(action: Callable[[], object], iterations: int, repeats: int) -> float:
    return min(repeat_microseconds(action, iterations, repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=25)
    args = parser.parse_args()

    evaluator = Evaluator(load_packs(), load_reference())
    text = json.dumps(typical_bundle())
    bundle = Bundle.model_validate_json(text)
    context = PatientContext.from_lists(bundle.prescriptions, bundle.labs, bundle.prior_claims)
    decision = evaluator.decide(bundle.claim, context)
    assert decision.outcome == "ACCEPT", [f.rule_id for line in decision.lines for f in line.findings]

    def context_and_decide() -> object:
        fresh = PatientContext.from_lists(bundle.prescriptions, bundle.labs, bundle.prior_claims)
        return evaluator.decide(bundle.claim, fresh)

    measurements = {
        "parse+evaluate": lambda: evaluate_bundle_text(evaluator, text),
        "context+evaluate": context_and_decide,
        "evaluate only": lambda: evaluator.decide(bundle.claim, context),
        "decision to JSON": lambda: json.dumps(decision_json(decision)),
    }
    print(
        f"typical bundle: {len(bundle.claim.lines)} line, {len(bundle.prescriptions)} prescriptions, "
        f"{len(bundle.labs)} labs, {len(bundle.prior_claims)} prior claims, {len(text)} bytes of JSON"
    )
    print(f"CPU time per bundle (best of {args.repeats} × {args.iterations} iterations, time.process_time):")
    baseline = 0.0
    for name, action in measurements.items():
        runs = repeat_microseconds(action, args.iterations, args.repeats)
        microseconds = min(runs)
        baseline = microseconds if name == "evaluate only" else baseline
        print(f"  {name:<18} {microseconds:8.1f} µs (median {statistics.median(runs):.1f})")

    print("bounded cases, evaluate only (ratio to the typical bundle's):")
    for name, extreme in (("50 identical lines", fifty_line_bundle()), ("200 prior claims", long_history_bundle())):
        parsed = Bundle.model_validate_json(json.dumps(extreme))
        ready = PatientContext.from_lists(parsed.prescriptions, parsed.labs, parsed.prior_claims)
        decided = evaluator.decide(parsed.claim, ready)
        iterations = max(20, args.iterations // 10)
        microseconds = best_microseconds(
            lambda claim=parsed.claim, context=ready: evaluator.decide(claim, context),  # type: ignore[misc]
            iterations,
            args.repeats,
        )
        size = len(json.dumps(decision_json(decided)))
        print(
            f"  {name:<18} {microseconds:8.1f} µs ({microseconds / baseline:5.1f}x; "
            f"{microseconds / len(parsed.claim.lines):6.1f} µs per line), decision {size:,} bytes of JSON"
        )


if __name__ == "__main__":
    main()
