"""Builders for the rule tables: a clean baseline bundle, changes by path, and one `check`.

A case reads like the catalogue: `fires("units=60, ndc_quantity=60", {"line.units": 60,
"line.ndc_quantity": 60}, "DENY_RISK", expected_units="240")`. `check` builds the baseline, applies
the changes, decides the bundle through the offline path (JSON text -> `evaluate_bundle_text`, the
same code the CLI runs) and asserts the rule's finding on the line, or its absence.

Every decision made here is also checked against the contract's invariants (tests/invariants.py:
outcome aggregation, one finding per rule and line, finding fields, no patient identifier outside
`patient_id`), so each table row tests those too.

The baseline: a Medicare kidney recipient (transplant 2024-06-15, discharged 2024-06-25, Part A at
transplant, Part B active), one J7507 line on 2025-12-01 with KX for 240 × 1 mg generic capsules
(30 days of 4 mg twice a day), the active IR prescription it names, and tacrolimus 8.2 ng/mL,
creatinine 1.1 mg/dL and eGFR 62 on 2025-11-20. It decides ACCEPT with no findings under every
built-in pack (the NDC is generic, so step therapy is met).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from invariants import check_decision

from worker.engine.evaluate import Evaluator
from worker.engine.events import Decision, Finding
from worker.engine.reference import load_reference
from worker.engine.rules.packs import load_packs
from worker.offline.offline import decision_json, evaluate_bundle_text

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PAYER_CONFIG = FIXTURES / "payer-config"

# Distinctive, so a leak into a message or evidence value cannot be a coincidence.
PATIENT_ID = "PT-ZEBRA-7731-QX"
CLAIM_ID = "CLM-5001"
DOS = "2025-12-01"
TRANSPLANT_DATE = "2024-06-15"

# NDCs of the crosswalk (worker/engine/data/ndc_crosswalk.csv).
GENERIC_1MG = "55111052601"  # Dr. Reddy's tacrolimus 1 mg, J7507, not brand
GENERIC_05MG = "55111052501"  # Dr. Reddy's tacrolimus 0.5 mg, J7507, not brand
PROGRAF_05MG = "00469060773"  # Prograf 0.5 mg, J7507, brand
PROGRAF_1MG = "00469061773"  # Prograf 1 mg, J7507, brand
PROGRAF_5MG = "00469065773"  # Prograf 5 mg, J7507, brand
ASTAGRAF_1MG = "00469067773"  # Astagraf XL 1 mg: J7508
ENVARSUS_4MG = "68992304003"  # Envarsus XR 4 mg: J7503
PROGRAF_INJECTION = "00469301601"  # Prograf injection: J7525
UNKNOWN_NDC = "12345678901"  # well formed, in no crosswalk

# LOINC codes of rules.md "Laboratory context".
TACROLIMUS_LEVEL = "11253-2"
TACROLIMUS_TROUGH = "77348-1"
CREATININE = "2160-0"
EGFR = "98979-8"
EGFR_2009 = "62238-1"
EGFR_MDRD = "33914-3"
ALT = "1742-6"
AST = "1920-8"
BILIRUBIN = "1975-2"

# Payers: built-in packs by payer_type, and the override files of tests/fixtures/payer-config.
MEDICARE = {"payer_id": "MEDICARE-DME-JC", "payer_type": "MEDICARE", "plan_id": None}
COMMERCIAL = {"payer_id": "BLUE-SAMPLE", "payer_type": "COMMERCIAL", "plan_id": None}
MEDICAID = {"payer_id": "STATE-MEDICAID", "payer_type": "MEDICAID", "plan_id": None}
OTHER_PAYER = {"payer_id": "WORKERS-COMP", "payer_type": "OTHER", "plan_id": None}
PRIOR_AUTH_PLAN = {"payer_id": "PA-PLAN", "payer_type": "COMMERCIAL", "plan_id": None}
SPECIALTY_PLAN = {"payer_id": "SPECIALTY-PLAN", "payer_type": "COMMERCIAL", "plan_id": None}
CAPPED_PLAN = {"payer_id": "CAPPED-PLAN", "payer_type": "COMMERCIAL", "plan_id": None}  # cap 1000 units
FORMULARY_PLAN = {"payer_id": "FORMULARY-PLAN", "payer_type": "COMMERCIAL", "plan_id": None}
MEDICARE_30_DAY = {"payer_id": "MA-30DAY", "payer_type": "MEDICARE", "plan_id": None}
SPECIALTY_NPI = "1679576722"

# Remove a key (instead of setting it) in `build` changes.
DROP: Any = object()

_ALIASES = {
    "line": "claim.lines.0",
    "line2": "claim.lines.1",
    "line3": "claim.lines.2",
    "lines": "claim.lines",
    "rx": "prescriptions.0",
    "payer": "claim.payer",
    "coverage": "claim.coverage",
    "transplant": "claim.transplant",
    "auth": "claim.prior_authorization",
    "diagnosis_codes": "claim.diagnosis_codes",
}

# Contract fields the baseline leaves out, which a change may add.
_OPTIONAL_FIELDS = frozenset({"event_id", "event_time", "display", "rxnorm_code"})

FIXED_NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


# --- records ----------------------------------------------------------------------------------


def claim_line(
    line_number: int = 1,
    *,
    hcpcs_code: str = "J7507",
    ndc: str | None = GENERIC_1MG,
    units: float = 240,
    ndc_quantity: float | None = 240,
    ndc_unit: str | None = "UN",
    date_of_service: str = DOS,
    days_supply: int | None = 30,
    modifiers: Sequence[str] = ("KX",),
    prescription_id: str | None = "RX-TAC-1",
) -> dict[str, Any]:
    return {
        "line_number": line_number,
        "hcpcs_code": hcpcs_code,
        "modifiers": list(modifiers),
        "units": units,
        "charge_amount": "410.00",
        "date_of_service": date_of_service,
        "ndc": ndc,
        "ndc_quantity": ndc_quantity,
        "ndc_unit": ndc_unit,
        "days_supply": days_supply,
        "prescription_id": prescription_id,
    }


def prescription(
    prescription_id: str,
    *,
    ingredient: str = "tacrolimus",
    formulation: str = "IMMEDIATE_RELEASE",
    route: str = "ORAL",
    status: str = "ACTIVE",
    start_date: str = "2025-06-01",
    end_date: str | None = None,
    strength_mg: float | None = 1.0,
    dose_mg: float | None = 4.0,
    doses_per_day: float | None = 2,
    days_supply: int | None = 30,
    dosing_weight_kg: float | None = 80.0,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "prescription_id": prescription_id,
        "patient_id": PATIENT_ID,
        "status": status,
        "ingredient": ingredient,
        "formulation": formulation,
        "route": route,
        "strength_mg": strength_mg,
        "dose_mg": dose_mg,
        "doses_per_day": doses_per_day,
        "days_supply": days_supply,
        "start_date": start_date,
        "end_date": end_date,
        "dosing_weight_kg": dosing_weight_kg,
        "prescriber_npi": "1003000126",
        "dispense_as_written": False,
        "clinical_justification": None,
        **extra,
    }


def drug(prescription_id: str, ingredient: str, **fields: Any) -> dict[str, Any]:
    """Another drug's prescription (cyclosporine, sirolimus, an azole...), active from 2025-06-01."""
    return prescription(
        prescription_id,
        ingredient=ingredient,
        **{"strength_mg": None, "dose_mg": None, "doses_per_day": None, "dosing_weight_kg": None, **fields},
    )


def lab(
    observation_id: str,
    loinc_code: str,
    value: float | None,
    day: str,
    *,
    status: str = "FINAL",
    time: str = "09:30:00Z",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "observation_id": observation_id,
        "patient_id": PATIENT_ID,
        "loinc_code": loinc_code,
        "value": value,
        "unit": None,
        "effective_time": f"{day}T{time}",
        "status": status,
        **extra,
    }


def prior_line(
    date_of_service: str,
    *,
    days_supply: int | None = 30,
    ndc: str | None = GENERIC_1MG,
    units: float = 240,
    line_number: int = 1,
    hcpcs_code: str = "J7507",
) -> dict[str, Any]:
    return claim_line(
        line_number,
        hcpcs_code=hcpcs_code,
        ndc=ndc,
        units=units,
        ndc_quantity=units if ndc == GENERIC_1MG else None,
        date_of_service=date_of_service,
        days_supply=days_supply,
    )


def prior_claim(claim_id: str, *lines: dict[str, Any], version: int = 1) -> dict[str, Any]:
    """An earlier claim of the same patient (ClaimSubmitted), with the baseline's header."""
    claim: dict[str, Any] = copy.deepcopy(baseline()["claim"])
    claim.update(claim_id=claim_id, claim_version=version, lines=list(lines))
    return claim


def baseline(organ: str = "KIDNEY") -> dict[str, Any]:
    """A clean bundle (ACCEPT under every built-in pack); organ KIDNEY or LIVER."""
    labs = [
        lab("OBS-TAC-1", TACROLIMUS_LEVEL, 8.2, "2025-11-20"),
        lab("OBS-CREA-1", CREATININE, 1.1, "2025-11-20"),
        lab("OBS-EGFR-1", EGFR, 62, "2025-11-20"),
    ]
    diagnosis = "Z94.0"
    if organ == "LIVER":
        labs.append(lab("OBS-ALT-1", ALT, 41, "2025-11-20"))
        diagnosis = "Z94.4"
    return {
        "claim": {
            "claim_id": CLAIM_ID,
            "claim_version": 1,
            "patient_id": PATIENT_ID,
            "payer": dict(MEDICARE),
            "coverage": {
                "part_a_at_transplant": True,
                "part_b_active": True,
                "entitlement": "AGE",
                "part_b_id_enrolled": False,
            },
            "transplant": {
                "organ": organ,
                "transplant_date": TRANSPLANT_DATE,
                "discharge_date": "2024-06-25",
                "facility": "University Hospital",
                "date_source": "ORDERING_PHYSICIAN",
            },
            "diagnosis_codes": [diagnosis],
            "prior_authorization": None,
            "abn_on_file": False,
            "billing_provider_npi": "1003000134",
            "ordering_provider_npi": "1003000126",
            "dispensing_pharmacy_npi": "1003000142",
            "lines": [claim_line()],
        },
        "prescriptions": [prescription("RX-TAC-1")],
        "labs": labs,
        "prior_claims": [],
    }


# --- changes by path --------------------------------------------------------------------------


def _resolve(path: str) -> list[str]:
    head, _, rest = path.partition(".")
    expanded = _ALIASES.get(head, head) + (f".{rest}" if rest else "")
    return expanded.split(".")


def _step(node: Any, part: str) -> Any:
    return node[int(part)] if isinstance(node, list) else node[part]


def apply_change(bundle: dict[str, Any], path: str, value: Any) -> None:
    """Set `path` to `value`; `path+` appends the items of `value`; DROP removes the key."""
    append = path.endswith("+")
    parts = _resolve(path.rstrip("+"))
    node: Any = bundle
    for part in parts[:-1]:
        node = _step(node, part)
    last = parts[-1]
    if append:
        _step(node, last).extend(copy.deepcopy(list(value)))
    elif value is DROP:
        del node[int(last) if isinstance(node, list) else last]
    elif isinstance(node, list):
        node[int(last)] = copy.deepcopy(value)
    else:
        # A typo must not pass silently as an ignored extra field.
        assert last in node or last in _OPTIONAL_FIELDS, f"unknown field {path!r}"
        node[last] = copy.deepcopy(value)


def build(changes: Mapping[str, Any] | None = None, *, organ: str = "KIDNEY") -> dict[str, Any]:
    bundle = baseline(organ)
    for path, value in (changes or {}).items():
        apply_change(bundle, path, value)
    return bundle


# --- deciding ---------------------------------------------------------------------------------


@cache
def evaluator() -> Evaluator:
    """Built-in packs plus the fixture payer overrides, shipped reference data, a fixed clock."""
    return Evaluator(load_packs(PAYER_CONFIG), load_reference(), clock=lambda: FIXED_NOW)


def decide(bundle: Mapping[str, Any], engine: Evaluator | None = None) -> Decision:
    decision = evaluate_bundle_text(engine or evaluator(), json.dumps(bundle))
    check_decision(decision_json(decision), bundle)
    return decision


def line_findings(decision: Decision, line_number: int = 1) -> dict[str, Finding]:
    for line in decision.lines:
        if line.line_number == line_number:
            return {finding.rule_id: finding for finding in line.findings}
    raise AssertionError(f"line {line_number} is not in the decision")


def findings_for(
    changes: Mapping[str, Any] | None = None, *, organ: str = "KIDNEY", line: int = 1
) -> dict[str, Finding]:
    return line_findings(decide(build(changes, organ=organ)), line)


# --- case tables ------------------------------------------------------------------------------


def fires(
    title: str,
    changes: Mapping[str, Any],
    outcome: str,
    *,
    organ: str = "KIDNEY",
    line: int = 1,
    marks: Any = (),
    **evidence: str,
) -> Any:
    """A case where the rule must fire with `outcome` and (at least) these evidence values."""
    return pytest.param(dict(changes), outcome, evidence, organ, line, id=title, marks=marks)


def quiet(title: str, changes: Mapping[str, Any], *, organ: str = "KIDNEY", line: int = 1, marks: Any = ()) -> Any:
    """A case where the rule must not fire."""
    return pytest.param(dict(changes), None, {}, organ, line, id=title, marks=marks)


CASE_ARGS = ("changes", "outcome", "evidence", "organ", "line")


def check(
    rule_id: str,
    changes: Mapping[str, Any],
    outcome: str | None,
    evidence: Mapping[str, str],
    organ: str = "KIDNEY",
    line: int = 1,
) -> Finding | None:
    found = findings_for(changes, organ=organ, line=line).get(rule_id)
    if outcome is None:
        assert found is None, f"{rule_id} fired: {found}"
        return None
    assert found is not None, f"{rule_id} did not fire"
    assert found.outcome == outcome
    for key, value in evidence.items():
        assert found.evidence.get(key) == value, f"evidence {key}: {found.evidence.get(key)!r} != {value!r}"
    return found


def xfail_engine(reason: str) -> Any:
    """A case where the engine disagrees with rules.md (strict xfail: it fails loudly once the engine is fixed)."""
    return pytest.mark.xfail(strict=True, reason=reason)
