"""The synthetic EHR generator: deterministic, contract-shaped, causally ordered, realistic mix.

The last test runs the generated bundles through `python -m worker evaluate` with the example payer
overrides: every planted problem must trigger its rule, every other claim must be accepted, and the
whole catalogue must fire somewhere.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from worker.codec.avro import AvroCodec
from worker.devkit.synthetic import PAYERS, SCENARIOS, SyntheticDataset, generate, write_bundles
from worker.engine.events import Claim, LabResult, Prescription
from worker.engine.rules import RULES
from worker.engine.rules.packs import load_packs

ROOT = Path(__file__).resolve().parents[1]
PAYER_CONFIG = ROOT / "examples" / "payer-config"
DEMO_PAYER_CONFIG = ROOT / "worker" / "devkit" / "demo_payers"
PATIENTS = 300

# contract.md: the fields each event must carry (optional ones may be null but are present too)
REQUIRED = {
    "claim": {
        "event_id", "event_time", "claim_id", "claim_version", "patient_id", "payer", "diagnosis_codes",
        "abn_on_file", "lines",
    },
    "prescription": {
        "event_id", "event_time", "prescription_id", "patient_id", "status", "ingredient", "formulation", "route",
        "start_date", "dispense_as_written",
    },
    "lab": {"event_id", "event_time", "observation_id", "patient_id", "loinc_code", "effective_time", "status"},
}  # fmt: skip
LINE_REQUIRED = {"line_number", "hcpcs_code", "modifiers", "units", "date_of_service"}
MODELS: dict[str, type[BaseModel]] = {"claim": Claim, "prescription": Prescription, "lab": LabResult}
SCHEMAS = {"claim": "ClaimSubmitted", "prescription": "PrescriptionRecorded", "lab": "LabResultRecorded"}
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
TROUGH_LOINCS = {"11253-2", "77348-1"}
COUNTED = {"FINAL", "CORRECTED", "AMENDED"}


@pytest.fixture(scope="module")
def dataset() -> SyntheticDataset:
    return generate(PATIENTS, seed=7)


def _j7507(claim: dict[str, Any]) -> list[dict[str, Any]]:
    return [line for line in claim["lines"] if line["hcpcs_code"] == "J7507"]


def _valid_npi(npi: str) -> bool:
    digits = [int(char) for char in "80840" + npi]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
    return len(npi) == 10 and total % 10 == 0


# --- determinism and order ----------------------------------------------------------------------


def test_same_seed_gives_the_same_events(dataset: SyntheticDataset) -> None:
    again = generate(PATIENTS, seed=7)
    assert [(e.kind, e.key, e.record) for e in again.events] == [(e.kind, e.key, e.record) for e in dataset.events]
    assert again.planted == dataset.planted


def test_a_fixed_seed_gives_the_dataset_it_gave_before_the_scenario_package(dataset: SyntheticDataset) -> None:
    # Computed from the single-module generator before it became worker/devkit/synthetic/: a refactor
    # keeps every draw in place. A deliberate change to the data updates this digest in the same commit.
    digest = hashlib.sha256()
    for event in dataset.events:
        digest.update(json.dumps([event.kind, event.key, event.record], sort_keys=True).encode())
    for key in sorted(dataset.planted):
        digest.update(json.dumps([list(key), sorted(dataset.planted[key])]).encode())
    assert (len(dataset.events), digest.hexdigest()) == (
        12041,
        "80a73cd47442c77a0c7bfec033f7064284599d0973a5579f7394024dc257338a",
    )


def test_each_scenario_sits_in_its_rules_family() -> None:
    assert SCENARIOS, "no scenarios"
    misplaced = {
        name: (scenario.family, scenario.rule_id and RULES[scenario.rule_id].family)
        for name, scenario in SCENARIOS.items()
        if scenario.rule_id not in RULES or RULES[scenario.rule_id].family != scenario.family
    }
    assert misplaced == {}


def test_another_seed_gives_other_events(dataset: SyntheticDataset) -> None:
    other = generate(PATIENTS, seed=8)
    assert {e.record["event_id"] for e in other.events}.isdisjoint(e.record["event_id"] for e in dataset.events)
    assert {e.key for e in other.events}.isdisjoint(e.key for e in dataset.events)


def test_no_patients_no_events() -> None:
    empty = generate(0)
    assert (empty.events, empty.patients, list(empty.bundles())) == ([], 0, [])
    with pytest.raises(ValueError, match="negative"):
        generate(-1)


def test_events_are_in_production_order(dataset: SyntheticDataset) -> None:
    times = [event.record["event_time"] for event in dataset.events]
    assert times == sorted(times)
    assert len({event.record["event_id"] for event in dataset.events}) == len(dataset.events)


def test_every_claim_comes_after_the_context_it_relies_on(dataset: SyntheticDataset) -> None:
    """Named prescriptions are recorded first, and every clean claim has a counted trough within 90 days."""
    prescriptions: dict[str, set[str]] = defaultdict(set)
    troughs: dict[str, dict[str, tuple[date, str]]] = defaultdict(dict)  # newest event per observation
    checked = 0
    for event in dataset.events:
        record = event.record
        if event.kind == "prescription":
            prescriptions[event.key].add(record["prescription_id"])
        elif event.kind == "lab" and record["loinc_code"] in TROUGH_LOINCS:
            troughs[event.key][record["observation_id"]] = (
                date.fromisoformat(record["effective_time"][:10]),
                record["status"],
            )
        elif event.kind == "claim":
            for line in _j7507(record):
                if line["prescription_id"] is not None:
                    assert line["prescription_id"] in prescriptions[event.key]
            if _j7507(record) and (record["claim_id"], record["claim_version"]) not in dataset.planted:
                day = date.fromisoformat(_j7507(record)[0]["date_of_service"])
                assert any(
                    day - timedelta(days=90) <= effective <= day and status in COUNTED
                    for effective, status in troughs[event.key].values()
                ), record["claim_id"]
                checked += 1
    assert checked > 500


# --- shape ----------------------------------------------------------------------------------------


def test_records_have_the_contract_shape(dataset: SyntheticDataset) -> None:
    codecs = {kind: AvroCodec(name) for kind, name in SCHEMAS.items()}
    for event in dataset.events:
        record = event.record
        assert REQUIRED[event.kind] <= record.keys(), event.kind
        assert TIMESTAMP.fullmatch(record["event_time"])
        assert record["patient_id"] == event.key
        MODELS[event.kind].model_validate(record)  # the worker's own contract models
        codecs[event.kind].encode(record)  # and the Avro schemas the demo produces with
        if event.kind == "lab":
            assert TIMESTAMP.fullmatch(record["effective_time"])
            assert record["effective_time"] <= record["event_time"]
        if event.kind == "claim":
            for npi in ("billing_provider_npi", "ordering_provider_npi", "dispensing_pharmacy_npi"):
                assert _valid_npi(record[npi]), npi
            for line in record["lines"]:
                assert line.keys() >= LINE_REQUIRED
                date.fromisoformat(line["date_of_service"])
                assert line["ndc"] is None or re.fullmatch(r"\d{11}", line["ndc"])
                assert len(line["modifiers"]) <= 4


def test_clean_j7507_lines_bill_one_unit_per_mg(dataset: SyntheticDataset) -> None:
    """units = capsules x strength, whole, and consistent with the named prescription's dose."""
    strength = {0.5: 0.5, 1.0: 1.0, 5.0: 5.0}
    doses: dict[str, dict[str, Any]] = {}
    checked = 0
    for event in dataset.events:
        if event.kind == "prescription":
            doses[event.record["prescription_id"]] = event.record
        elif event.kind == "claim" and (event.record["claim_id"], event.record["claim_version"]) not in dataset.planted:
            for line in _j7507(event.record):
                if line["prescription_id"] is None:
                    continue
                prescription = doses[line["prescription_id"]]
                assert line["units"] == line["ndc_quantity"] * strength[prescription["strength_mg"]]
                assert line["units"] == prescription["dose_mg"] * prescription["doses_per_day"] * line["days_supply"]
                assert line["units"].is_integer()
                checked += 1
    assert checked > 500


# --- bundles --------------------------------------------------------------------------------------


def test_one_bundle_per_claim_version_with_only_earlier_context(dataset: SyntheticDataset) -> None:
    bundles = list(dataset.bundles())
    claims = dataset.claims()
    assert len(bundles) == len(claims) == len({(c["claim_id"], c["claim_version"]) for c in claims})
    for bundle in bundles[::7]:
        claim = bundle["claim"]
        context = bundle["prescriptions"] + bundle["labs"] + bundle["prior_claims"]
        assert all(item["patient_id"] == claim["patient_id"] for item in context)
        assert all(item["event_time"] <= claim["event_time"] for item in context)
    # prior_claims are the patient's earlier claim events, all versions
    last = bundles[-1]
    patient = last["claim"]["patient_id"]
    earlier = [c for c in claims if c["patient_id"] == patient][:-1]
    assert last["prior_claims"] == earlier


def test_write_bundles_writes_json_lines(dataset: SyntheticDataset) -> None:
    out = io.StringIO()
    count = write_bundles(dataset, out)
    lines = out.getvalue().splitlines()
    assert count == len(lines) == len(dataset.claims())
    assert json.loads(lines[0]) == next(dataset.bundles())


# --- realism ----------------------------------------------------------------------------------------


def test_population_mix_is_realistic() -> None:
    big = generate(1000, seed=21)
    first_claims: dict[str, dict[str, Any]] = {}
    for claim in big.claims():
        first_claims.setdefault(claim["patient_id"], claim)
    organs = Counter(c["transplant"]["organ"] for c in first_claims.values() if c["transplant"])
    payer_types = Counter(c["payer"]["payer_type"] for c in first_claims.values())
    share = {name: count / len(first_claims) for name, count in (organs + payer_types).items()}
    assert 0.54 < share["KIDNEY"] < 0.66 and 0.20 < share["LIVER"] < 0.30
    assert 0.04 < share["HEART"] < 0.12 and 0.02 < share["LUNG"] < 0.08
    assert 0.44 < share["MEDICARE"] < 0.56 and 0.29 < share["COMMERCIAL"] < 0.41 and 0.10 < share["MEDICAID"] < 0.20
    entitlements = Counter(c["coverage"]["entitlement"] for c in first_claims.values() if c["coverage"])
    assert set(entitlements) == {"AGE", "DISABILITY", "ESRD_ONLY"}
    assert any(c["coverage"] and c["coverage"]["part_b_id_enrolled"] for c in big.claims())

    claims = big.claims()
    problem_share = len(big.planted) / len(claims)
    assert 0.22 < problem_share < 0.38
    resubmitted = sum(c["claim_version"] == 2 for c in claims) / len(claims)
    assert 0.01 < resubmitted < 0.08
    j7507_lines = Counter(len(_j7507(c)) for c in claims)
    assert j7507_lines[1] > j7507_lines[2] > 0 and 0 < j7507_lines[0] < 0.05 * len(claims)
    neighbours = Counter(line["hcpcs_code"] for c in claims for line in c["lines"] if line["hcpcs_code"] != "J7507")
    assert {"J7517", "J7518", "Q0511"} <= neighbours.keys()
    assert {line["days_supply"] for c in claims for line in _j7507(c)} >= {30, 90}


def test_lab_and_prescription_histories_look_like_an_ehr(dataset: SyntheticDataset) -> None:
    labs = [e.record for e in dataset.events if e.kind == "lab"]
    statuses = Counter(lab["status"] for lab in labs)
    assert statuses["FINAL"] > 0.8 * len(labs)
    assert {"PRELIMINARY", "CORRECTED", "CANCELLED"} <= statuses.keys()
    reused = Counter(lab["observation_id"] for lab in labs)
    corrected = [lab for lab in labs if lab["status"] == "CORRECTED"]
    assert all(reused[lab["observation_id"]] == 2 for lab in corrected)  # it replaces the FINAL result
    assert {"11253-2", "2160-0", "98979-8", "1742-6"} <= {lab["loinc_code"] for lab in labs}

    prescriptions = [e.record for e in dataset.events if e.kind == "prescription"]
    tacrolimus = [p for p in prescriptions if p["ingredient"] == "tacrolimus"]
    assert {p["strength_mg"] for p in tacrolimus} >= {0.5, 1.0, 5.0}
    ended = [p for p in tacrolimus if p["status"] in ("STOPPED", "COMPLETED")]
    assert ended and all(p["end_date"] for p in ended)  # dose changes close the old order
    ingredients = {p["ingredient"] for p in prescriptions}
    assert {"mycophenolate mofetil", "prednisone", "cyclosporine", "sirolimus"} <= ingredients


# --- payer overrides ----------------------------------------------------------------------------


def test_payer_override_files_match_what_the_generator_assumes() -> None:
    resolver = load_packs(PAYER_CONFIG)
    assert set(resolver.overrides) == {payer.payer_id for payer in PAYERS if not payer.medicare}
    for payer in PAYERS:
        if payer.medicare:
            continue
        (pack,) = resolver.overrides[payer.payer_id].values()
        settings = pack.settings
        assert pack.name.startswith("medicaid-default" if payer.payer_type == "MEDICAID" else "commercial-default")
        assert settings.requires_prior_auth == payer.requires_prior_auth
        assert settings.specialty_pharmacy_npis == frozenset(payer.specialty_pharmacy_npis)
        assert settings.max_days_supply_on(date(2025, 6, 1)) == payer.max_days_supply
        assert settings.refill_window_days == payer.refill_window_days
        assert settings.lifetime_units_cap == payer.lifetime_units_cap
        assert settings.non_preferred_ndcs == frozenset(payer.non_preferred_ndcs)
        assert settings.step_therapy_generic_first == payer.step_therapy


def test_the_demo_ships_the_same_payer_overrides() -> None:
    if not DEMO_PAYER_CONFIG.is_dir():
        pytest.skip("no packaged demo payer overrides")
    for path in PAYER_CONFIG.glob("*.yaml"):
        shipped = DEMO_PAYER_CONFIG / path.name
        assert yaml.safe_load(shipped.read_text()) == yaml.safe_load(path.read_text()), path.name


# --- end to end through the rule engine ---------------------------------------------------------------


@pytest.mark.slow
def test_evaluate_decides_planted_problems_and_accepts_the_rest(dataset: SyntheticDataset, tmp_path: Path) -> None:
    bundles = tmp_path / "bundles.jsonl"
    with bundles.open("w") as out:
        count = write_bundles(dataset, out)
    result = subprocess.run(
        [sys.executable, "-m", "worker", "evaluate", "--payer-config", str(PAYER_CONFIG), str(bundles)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    decisions = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(decisions) == count

    fired: Counter[str] = Counter()
    wrong: list[str] = []
    for decision in decisions:
        findings = [finding for line in decision["lines"] for finding in line["findings"]]
        rule_ids = {finding["rule_id"] for finding in findings}
        fired.update(rule_ids)
        planted = dataset.planted.get((decision["claim_id"], decision["claim_version"]), frozenset())
        if planted - rule_ids:
            wrong.append(f"{decision['claim_id']} v{decision['claim_version']}: {sorted(planted - rule_ids)} missing")
        if not planted and decision["outcome"] not in ("ACCEPT", "SKIPPED"):
            wrong.append(f"{decision['claim_id']} v{decision['claim_version']}: clean but {sorted(rule_ids)}")
    assert wrong == []

    assert {RULES[rule_id].family for rule_id in fired} == {spec.family for spec in RULES.values()}
    assert set(RULES) - fired.keys() == set(), "rules that never fire on synthetic data"
    outcomes = Counter(decision["outcome"] for decision in decisions)
    assert 0 < outcomes["SKIPPED"] < 0.05 * count  # a few claims without a J7507 line
    accept_share = outcomes["ACCEPT"] / (count - outcomes["SKIPPED"])
    assert 0.50 <= accept_share <= 0.85
