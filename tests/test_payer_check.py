"""`payers schema` and `payers check DIR`: the shipped schema, the loader's messages, the summaries."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from worker.__main__ import main
from worker.cli_payers import schema_text
from worker.engine.rules.packs import load_packs
from worker.errors import ConfigError
from worker.offline.payer_check import check_directory

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED = REPO_ROOT / "schemas" / "payer-override.schema.json"
EXAMPLES = REPO_ROOT / "examples" / "payer-config"


def test_the_shipped_schema_is_the_generated_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["payers", "schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == schema_text()
    assert SHIPPED.read_text(encoding="utf-8") == printed, "run: python -m worker payers schema > " + str(SHIPPED)
    jsonschema.Draft202012Validator.check_schema(json.loads(printed))


@pytest.mark.parametrize(
    "path", sorted([*EXAMPLES.glob("*.yaml"), *(REPO_ROOT / "worker" / "devkit" / "demo_payers").glob("*.yaml")])
)
def test_every_shipped_override_validates_against_the_schema(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text(encoding="utf-8")), json.loads(SHIPPED.read_text()))


@pytest.mark.parametrize(
    "document",
    [
        {"payer_id": "X", "settings": {"bogus": 1}},
        {"payer_id": "X", "settings": {"max_days_supply": "thirty"}},
        {"payer_id": "X", "extends": "no-such-pack"},
        {"payer_id": "", "settings": {}},
        {"settings": {"requires_prior_auth": True}},
        {"payer_id": "X", "settings": {"trough_targets": {"KIDNEY": {"early": [8, 12], "later": [5, 8]}}}},
    ],
)
def test_what_the_loader_refuses_the_schema_refuses(document: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, json.loads(SHIPPED.read_text()))
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(ConfigError):
        load_packs(tmp_path)


def test_a_plain_number_of_days_is_valid_for_both() -> None:
    document = {"payer_id": "X", "settings": {"max_days_supply": 30, "lifetime_units_cap": None}}
    jsonschema.validate(document, json.loads(SHIPPED.read_text()))


def test_check_reports_every_problem_with_the_start_up_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.yaml").write_text("payer_id: A\nsettings:\n  max_days_supply: abc\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("payer_id: B\nsettings: {requires_prior_auth: true}\n", encoding="utf-8")
    (tmp_path / "c.yaml").write_text("payer_id: B\n", encoding="utf-8")
    (tmp_path / "d.yml").write_text("payer_id: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as at_start:
        load_packs(tmp_path)
    assert main(["payers", "check", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert f"j7507-worker: {at_start.value}" in err.splitlines()  # the first problem, word for word
    assert f"{tmp_path / 'c.yaml'}: payer_id: 'B' is already configured by {tmp_path / 'b.yaml'}" in err
    assert f"{tmp_path / 'd.yml'}: not valid YAML" in err
    assert "3 problem(s)" in err
    assert out.splitlines() == ["B (b.yaml) on the pack of the claim's payer_type: requires_prior_auth: false -> true"]


def test_check_summarises_what_each_override_changes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["payers", "check", str(EXAMPLES)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(list(EXAMPLES.glob("*.yaml")))
    assert (
        "ACME-HEALTH (acme-health.yaml) on commercial-default: max_days_supply: 90 -> 30; "
        "requires_prior_auth: false -> true; specialty_pharmacy_npis: [] -> [1742059383, 1836104723]"
    ) in lines


def test_an_override_repeating_its_base_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "same.yaml").write_text(
        "payer_id: SAME\nextends: commercial-default\nsettings: {requires_prior_auth: false}\n", encoding="utf-8"
    )
    result = check_directory(tmp_path)
    assert result.ok
    assert result.summaries == ["SAME (same.yaml) on commercial-default: no change"]


def test_an_empty_or_missing_directory_is_a_problem(tmp_path: Path) -> None:
    assert not check_directory(tmp_path).ok
    with pytest.raises(ConfigError, match="does not exist"):
        check_directory(tmp_path / "missing")
