"""Strict bundles (contract.md "Offline evaluation"): nothing is coerced.

Each row puts one wrong JSON type or value into an otherwise clean bundle (the rule tables'
baseline, which decides ACCEPT) and expects an error line that names the field and never quotes
the value. The stream's Avro path gets its types from the schema and is unchanged (the last tests).
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from tests.rules.conftest import DROP, baseline, build, evaluator
from worker.engine.events import Claim, LabResult
from worker.offline.offline import OfflineResult, evaluate_lines

# (title, path, value, the field the error must name)
WRONG_TYPES: list[tuple[str, str, Any, str]] = [
    ("units as a string", "line.units", "120", "claim.lines.0.units"),
    ("units as a boolean", "line.units", True, "claim.lines.0.units"),
    ("ndc_quantity as a boolean", "line.ndc_quantity", False, "claim.lines.0.ndc_quantity"),
    ("claim_version as a string", "claim.claim_version", "1", "claim.claim_version"),
    ("claim_version with a fraction", "claim.claim_version", 1.5, "claim.claim_version"),
    ("claim_version beyond Avro int", "claim.claim_version", 2**31, "claim.claim_version"),
    ("line_number below Avro int", "line.line_number", -(2**31) - 1, "claim.lines.0.line_number"),
    ("days_supply beyond Avro int", "line.days_supply", 2**31, "claim.lines.0.days_supply"),
    ("days_supply with a fraction", "line.days_supply", 30.5, "claim.lines.0.days_supply"),
    ("date of service as a timestamp", "line.date_of_service", "2025-12-01T00:00:00Z", "claim.lines.0.date_of_service"),
    ("date of service without dashes", "line.date_of_service", "20251201", "claim.lines.0.date_of_service"),
    ("date of service as a number", "line.date_of_service", 20251201, "claim.lines.0.date_of_service"),
    ("transplant date in US order", "transplant.transplant_date", "06/15/2024", "claim.transplant.transplant_date"),
    ("abn_on_file as yes", "claim.abn_on_file", "yes", "claim.abn_on_file"),
    ("abn_on_file as 1", "claim.abn_on_file", 1, "claim.abn_on_file"),
    ("part_b_active as a string", "coverage.part_b_active", "true", "claim.coverage.part_b_active"),
    ("payer_type in lower case", "payer.payer_type", "medicare", "claim.payer.payer_type"),
    ("organ as a number", "transplant.organ", 1, "claim.transplant.organ"),
    ("modifiers as a string", "line.modifiers", "KX", "claim.lines.0.modifiers"),
    ("diagnosis codes as a string", "diagnosis_codes", "Z94.0", "claim.diagnosis_codes"),
    ("ndc as a number", "line.ndc", 55111052601, "claim.lines.0.ndc"),
    ("patient_id as a number", "claim.patient_id", 987654321, "claim.patient_id"),
    ("a required field missing", "claim.claim_id", DROP, "claim.claim_id"),
    ("dose as a string", "rx.dose_mg", "4", "prescriptions.0.dose_mg"),
    ("doses_per_day with a fraction", "rx.doses_per_day", 2.5, "prescriptions.0.doses_per_day"),
    ("doses_per_day as a boolean", "rx.doses_per_day", True, "prescriptions.0.doses_per_day"),
    ("dispense_as_written as 0", "rx.dispense_as_written", 0, "prescriptions.0.dispense_as_written"),
    ("start date as a timestamp", "rx.start_date", "2025-06-01T08:00:00Z", "prescriptions.0.start_date"),
    ("status outside the enumeration", "rx.status", "active", "prescriptions.0.status"),
    ("lab value as a string", "labs.0.value", "8.2", "labs.0.value"),
    ("lab value NaN", "labs.0.value", float("nan"), "labs.0.value"),
    ("lab value Infinity", "labs.0.value", float("inf"), "labs.0.value"),
    ("lab value -Infinity", "labs.0.value", float("-inf"), "labs.0.value"),
    ("effective time as a date", "labs.0.effective_time", "2025-11-20", "labs.0.effective_time"),
    ("effective time with a space", "labs.0.effective_time", "2025-11-20 09:30:00Z", "labs.0.effective_time"),
    ("effective time as epoch seconds", "labs.0.effective_time", 1763631000, "labs.0.effective_time"),
    ("event_time not a time", "claim.event_time", "yesterday", "claim.event_time"),
]


def _results(text: str) -> list[OfflineResult]:
    return list(evaluate_lines(evaluator(), [text]))


def _malformed(text: str) -> str:
    (result,) = _results(text)
    assert result.malformed, f"decided instead of rejected: {result.output.get('outcome')}"
    assert set(result.output) == {"error", "input_line"}
    error = result.output["error"]
    assert isinstance(error, str)
    return error


def test_the_baseline_is_decided() -> None:
    (result,) = _results(json.dumps(baseline()))
    assert not result.malformed and result.output["outcome"] == "ACCEPT"


@pytest.mark.parametrize(
    ("path", "value", "field"), [row[1:] for row in WRONG_TYPES], ids=[row[0] for row in WRONG_TYPES]
)
def test_a_wrong_json_type_or_value_is_malformed_naming_its_field(path: str, value: Any, field: str) -> None:
    error = _malformed(json.dumps(build({path: value})))
    assert error.startswith(f"{field}: ") or f"; {field}: " in error, error
    if value is not DROP and not isinstance(value, bool) and len(json.dumps(value)) > 2:
        assert json.dumps(value) not in error and str(value) not in error, f"the value is quoted: {error}"


@pytest.mark.parametrize("literal", ["1e400", "-1e400", "1e309"])
def test_a_number_beyond_a_double_is_malformed(literal: str) -> None:
    text = json.dumps(build({"labs.0.value": 12345.678})).replace("12345.678", literal)
    error = _malformed(text)
    assert error.startswith("labs.0.value: ") and literal not in error


def test_the_largest_avro_int_is_accepted() -> None:
    (result,) = _results(json.dumps(build({"claim.claim_version": 2**31 - 1})))
    assert not result.malformed


def test_integral_numbers_are_fine_where_a_double_is_expected() -> None:
    (result,) = _results(json.dumps(build({"line.units": 240, "rx.dose_mg": 4, "labs.0.value": 8})))
    assert not result.malformed and result.output["outcome"] == "ACCEPT"


@pytest.mark.parametrize(
    "timestamp",
    ["2025-11-20T09:30:00Z", "2025-11-20T09:30:00.123+00:00", "2025-11-20T04:30:00-05:00", "2025-11-20T09:30"],
)
def test_iso_8601_timestamps_are_accepted(timestamp: str) -> None:
    (result,) = _results(json.dumps(build({"labs.0.effective_time": timestamp})))
    assert not result.malformed, result.output


@pytest.mark.parametrize(
    ("original", "duplicated", "field"),
    [
        ('"units": 240', '"units": 240, "units": 240', "units"),
        ('"abn_on_file": false', '"abn_on_file": true, "abn_on_file": false', "abn_on_file"),
        ('"claim": {', '"claim": {"PT-SECRET-KEY": 1, "PT-SECRET-KEY": 2, ', None),
    ],
    ids=["units twice", "abn_on_file twice (last would win)", "an unknown key twice"],
)
def test_a_duplicate_key_in_one_object_is_malformed(original: str, duplicated: str, field: str | None) -> None:
    text = json.dumps(baseline())
    assert original in text
    error = _malformed(text.replace(original, duplicated, 1))
    assert "duplicate key" in error
    if field is not None:
        assert error.startswith(f"{field}: ")
    assert "PT-SECRET-KEY" not in error  # a key that is not a contract field could be anything


# --- the Avro path: types come from the schema; validation keeps its behaviour -----------------


def test_the_avro_path_validates_decoded_python_values() -> None:
    fields = baseline()["claim"]
    fields["transplant"] = {"organ": "KIDNEY", "transplant_date": date(2024, 6, 15)}
    fields["lines"][0]["date_of_service"] = date(2025, 12, 1)
    claim = Claim.model_validate(fields)
    assert claim.lines[0].date_of_service == date(2025, 12, 1)


def test_the_models_reject_non_finite_numbers_as_the_avro_decoder_does() -> None:
    record = baseline()["labs"][0] | {"value": float("nan")}
    with pytest.raises(ValueError, match="value"):
        LabResult.model_validate(record)
