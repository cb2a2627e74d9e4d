"""Rule packs: the built-in settings of rules.md, payer override files, and the NDC crosswalk file."""

from __future__ import annotations

import json
import shutil
from datetime import date
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from worker.engine.evaluate import Evaluator
from worker.engine.events import Claim
from worker.engine.reference import load_reference
from worker.engine.rules.packs import Pack, PackResolver, load_packs
from worker.errors import ConfigError
from worker.offline.offline import evaluate_bundle_text

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PAYER_CONFIG = FIXTURES / "payer-config"
BAD_CONFIG = FIXTURES / "bad-config"

COVERED_PREFIXES = {
    "Z940", "Z941", "Z942", "Z943", "Z944", "Z9481", "Z9482", "Z9483", "Z9484", "Z9489",
    "T860", "T861", "T862", "T863", "T864", "T865", "T8681", "T8685", "T8689", "Z482", "D8981",
}  # fmt: skip
ALLOWED_MODIFIERS = {"KX", "GA", "GZ", "EY", "GY", "99"}

# rules.md trough_targets: organ -> (early, later), ng/mL inclusive.
TROUGH_TARGETS: dict[str | None, tuple[tuple[float, float], tuple[float, float]]] = {
    "KIDNEY": ((4, 20), (4, 15)),
    "HEART": ((10, 20), (5, 15)),
    "LUNG": ((10, 15), (8, 12)),
    "HEART_LUNG": ((10, 15), (8, 12)),
    "LIVER": ((5, 20), (5, 20)),
    "PANCREAS": ((5, 20), (5, 20)),
    "INTESTINE": ((5, 20), (5, 20)),
    "BONE_MARROW": ((5, 20), (5, 20)),
    "ISLET": ((5, 20), (5, 20)),
    "OTHER": ((5, 20), (5, 20)),
    None: ((5, 20), (5, 20)),
}

# rules.md "Pack settings": the settings that differ between the built-in packs.
PACK_TABLE = {
    "medicare-dme": {"requires_ndc": False, "medicare_rules": True, "step_therapy_generic_first": False},
    "commercial-default": {"requires_ndc": True, "medicare_rules": False, "step_therapy_generic_first": True},
    "medicaid-default": {"requires_ndc": True, "medicare_rules": False, "step_therapy_generic_first": True},
}
DAYS_SUPPLY = {  # (DOS, limit)
    "medicare-dme": [(date(2000, 1, 1), 30), (date(2024, 12, 31), 30), (date(2025, 1, 1), 90), (date(2030, 6, 1), 90)],
    "commercial-default": [(date(2024, 12, 31), 90), (date(2025, 1, 1), 90)],
    "medicaid-default": [(date(2024, 12, 31), 30), (date(2025, 1, 1), 30)],
}


def _example_bundle() -> dict[str, Any]:
    """The first example bundle (clean Medicare liver claim, ACCEPT)."""
    first = (FIXTURES / "bundles.jsonl").read_text(encoding="utf-8").splitlines()[0]
    bundle: dict[str, Any] = json.loads(first)["bundle"]
    return bundle


def _claim(payer_id: str, payer_type: str) -> Claim:
    claim = _example_bundle()["claim"]
    claim["payer"] = {"payer_id": payer_id, "payer_type": payer_type}
    return Claim.model_validate(claim)


def _pack(resolver: PackResolver, payer_id: str, payer_type: str) -> Pack:
    return resolver.for_claim(_claim(payer_id, payer_type))


# --- built-in packs ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PACK_TABLE))
def test_built_in_pack_matches_the_settings_table(name: str) -> None:
    pack = load_packs().built_in[name]
    settings = pack.settings
    assert pack.name == name
    assert pack.version
    for setting, value in PACK_TABLE[name].items():
        assert getattr(settings, setting) is value, setting
    assert set(settings.allowed_modifiers) == ALLOWED_MODIFIERS
    assert settings.requires_prior_auth is False
    assert set(settings.specialty_pharmacy_npis) == set()
    assert settings.lifetime_units_cap is None
    assert set(settings.non_preferred_ndcs) == set()
    assert settings.quantity_tolerance == pytest.approx(0.10)
    assert settings.refill_window_days == 10
    assert settings.lab_lookback_days == 90
    assert settings.max_mg_per_kg_day == pytest.approx(0.4)
    assert set(settings.covered_diagnosis_prefixes) == COVERED_PREFIXES
    for date_of_service, limit in DAYS_SUPPLY[name]:
        assert settings.max_days_supply_on(date_of_service) == limit, date_of_service
    for organ, (early, later) in TROUGH_TARGETS.items():
        assert settings.trough_range(organ, True) == early, (organ, "early")
        assert settings.trough_range(organ, False) == later, (organ, "later")


@pytest.mark.parametrize(
    ("payer_type", "pack_name"),
    [
        ("MEDICARE", "medicare-dme"),
        ("MEDICAID", "medicaid-default"),
        ("COMMERCIAL", "commercial-default"),
        ("OTHER", "commercial-default"),
    ],
)
def test_payer_type_picks_the_built_in_pack(payer_type: str, pack_name: str) -> None:
    assert _pack(load_packs(), "ANY-PAYER", payer_type).name == pack_name


# --- payer override files ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def overrides() -> PackResolver:
    return load_packs(PAYER_CONFIG)


def test_override_extends_names_its_base_whatever_the_payer_type(overrides: PackResolver) -> None:
    # ACME-HEALTH extends commercial-default, so a MEDICARE payer_type does not bring Medicare rules.
    for payer_type in ("MEDICARE", "MEDICAID", "COMMERCIAL"):
        settings = _pack(overrides, "ACME-HEALTH", payer_type).settings
        assert settings.medicare_rules is False
        assert settings.requires_prior_auth is True
        assert set(settings.specialty_pharmacy_npis) == {"1679576722"}
        assert settings.lifetime_units_cap == 50000
        assert set(settings.non_preferred_ndcs) == {"00469061773"}
        assert settings.max_days_supply_on(date(2025, 6, 1)) == 30
        # Settings the override does not name come from the base.
        assert settings.refill_window_days == 10
        assert set(settings.covered_diagnosis_prefixes) == COVERED_PREFIXES


@pytest.mark.parametrize(
    ("payer_type", "medicare_rules", "requires_ndc", "days_2025"),
    [
        ("MEDICARE", True, False, 90),
        ("MEDICAID", False, True, 30),
        ("COMMERCIAL", False, True, 90),
        ("OTHER", False, True, 90),
    ],
)
def test_override_without_extends_applies_to_the_payer_type_pack(
    overrides: PackResolver, payer_type: str, medicare_rules: bool, requires_ndc: bool, days_2025: int
) -> None:
    settings = _pack(overrides, "NO-EXTENDS", payer_type).settings
    assert settings.medicare_rules is medicare_rules
    assert settings.requires_ndc is requires_ndc
    assert settings.max_days_supply_on(date(2025, 6, 1)) == days_2025
    assert settings.refill_window_days == 3


def test_override_settings_replace_rather_than_merge(overrides: PackResolver) -> None:
    assert set(_pack(overrides, "NO-EXTENDS", "COMMERCIAL").settings.allowed_modifiers) == {"KX"}


def test_an_int_max_days_supply_replaces_the_dated_medicare_limits(overrides: PackResolver) -> None:
    settings = _pack(overrides, "MA-30DAY", "MEDICARE").settings
    assert settings.medicare_rules is True
    for date_of_service in (date(2024, 12, 31), date(2025, 1, 1), date(2026, 3, 1)):
        assert settings.max_days_supply_on(date_of_service) == 30


@pytest.mark.parametrize("payer_id", ["acme-health", " ACME-HEALTH", "ACME-HEALTH ", "ACME"])
def test_payer_id_matches_override_files_exactly(overrides: PackResolver, payer_id: str) -> None:
    assert _pack(overrides, payer_id, "COMMERCIAL") == overrides.built_in["commercial-default"]


def test_an_override_pack_is_not_the_built_in_pack(overrides: PackResolver) -> None:
    pack = _pack(overrides, "ACME-HEALTH", "COMMERCIAL")
    built_in = overrides.built_in["commercial-default"]
    assert (pack.name, pack.version) != (built_in.name, built_in.version)


def test_built_in_packs_are_unchanged_by_overrides(overrides: PackResolver) -> None:
    assert overrides.built_in == load_packs().built_in


def test_other_files_in_the_directory_are_ignored(tmp_path: Path) -> None:
    shutil.copy(PAYER_CONFIG / "capped.yaml", tmp_path)
    (tmp_path / "README.md").write_text("not: [a, pack\n", encoding="utf-8")
    assert _pack(load_packs(tmp_path), "CAPPED-PLAN", "COMMERCIAL").settings.lifetime_units_cap == 1000


def test_an_empty_directory_gives_the_built_in_packs(tmp_path: Path) -> None:
    assert _pack(load_packs(tmp_path), "ACME-HEALTH", "MEDICAID").name == "medicaid-default"


def _override_version(folder: Path, text: str) -> tuple[str, str]:
    (folder / "plan.yaml").write_text(text, encoding="utf-8")
    pack = _pack(load_packs(folder), "PLAN-V", "COMMERCIAL")
    return pack.name, pack.version


def test_the_version_changes_when_the_override_content_changes(tmp_path: Path) -> None:
    first = _override_version(tmp_path, "payer_id: PLAN-V\nsettings:\n  refill_window_days: 5\n")
    again = _override_version(tmp_path, "payer_id: PLAN-V\nsettings:\n  refill_window_days: 5\n")
    changed = _override_version(tmp_path, "payer_id: PLAN-V\nsettings:\n  refill_window_days: 7\n")
    assert first == again, "same content, same pack version"
    assert changed[1] != first[1]


def test_decision_id_follows_the_override_version(tmp_path: Path) -> None:
    bundle = _example_bundle()
    bundle["claim"]["payer"] = {"payer_id": "PLAN-V", "payer_type": "MEDICARE"}
    text = json.dumps(bundle)

    def decision_id(settings: str) -> str:
        (tmp_path / "plan.yaml").write_text(f"payer_id: PLAN-V\nsettings:\n{settings}", encoding="utf-8")
        return evaluate_bundle_text(Evaluator(load_packs(tmp_path), load_reference()), text).decision_id

    assert decision_id("  refill_window_days: 5\n") == decision_id("  refill_window_days: 5\n")
    assert decision_id("  refill_window_days: 5\n") != decision_id("  refill_window_days: 6\n")


# --- invalid override files -------------------------------------------------------------------

BAD_CASES = [
    pytest.param("bad-yaml", "acme.yaml", ["line"], id="not valid YAML"),
    pytest.param("unknown-key", "acme.yaml", ["setings"], id="unknown top-level key"),
    pytest.param("unknown-setting", "acme.yaml", ["max_day_supply"], id="unknown setting"),
    pytest.param("wrong-type", "acme.yaml", ["requires_ndc"], id="wrong type: bool"),
    pytest.param("wrong-type-days", "acme.yaml", ["max_days_supply"], id="wrong type: max_days_supply"),
    pytest.param("negative-cap", "acme.yaml", ["lifetime_units_cap"], id="negative lifetime cap"),
    pytest.param("unknown-extends", "acme.yaml", ["extends", "medicare-advantage"], id="unknown extends"),
    pytest.param(
        "duplicate-payer", "b-second.yaml", ["payer_id", "ACME-HEALTH", "a-first.yaml"], id="duplicate payer_id"
    ),
    pytest.param("missing-payer-id", "acme.yaml", ["payer_id"], id="missing payer_id"),
    pytest.param("not-a-mapping", "acme.yaml", ["mapping"], id="top level is a list"),
]


@pytest.mark.parametrize(("case", "file", "named"), BAD_CASES)
def test_an_invalid_override_file_is_a_config_error_naming_file_and_key(case: str, file: str, named: list[str]) -> None:
    with pytest.raises(ConfigError) as raised:
        load_packs(BAD_CONFIG / case)
    message = str(raised.value)
    assert file in message
    for word in named:
        assert word in message


def test_a_missing_payer_config_directory_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    with pytest.raises(ConfigError, match="no-such-dir"):
        load_packs(missing)


# --- the NDC crosswalk file -------------------------------------------------------------------

NEW_NDC = "99999000101"
NEW_ROW = f"{NEW_NDC},J7507,1,tacrolimus,IMMEDIATE_RELEASE,ORAL,1,100,false,Test Labs,tacrolimus capsule,test,fixture"


def _shipped_crosswalk() -> str:
    return (files("worker.engine") / "data" / "ndc_crosswalk.csv").read_text(encoding="utf-8")


def _newer_crosswalk(tmp_path: Path) -> Path:
    path = tmp_path / "crosswalk.csv"
    path.write_text(_shipped_crosswalk().rstrip("\n") + "\n" + NEW_ROW + "\n", encoding="utf-8")
    return path


def _rule_ids_for_new_ndc(evaluator: Evaluator) -> set[str]:
    bundle = _example_bundle()
    line = bundle["claim"]["lines"][0]
    line.update(ndc=NEW_NDC, units=300, ndc_quantity=300)
    bundle["prescriptions"][0]["strength_mg"] = 1.0
    decision = evaluate_bundle_text(evaluator, json.dumps(bundle))
    return {finding.rule_id for line in decision.lines for finding in line.findings}


def test_a_newer_crosswalk_file_is_used(tmp_path: Path) -> None:
    shipped = _rule_ids_for_new_ndc(Evaluator(load_packs(), load_reference()))
    newer = _rule_ids_for_new_ndc(Evaluator(load_packs(), load_reference(_newer_crosswalk(tmp_path))))
    assert "ndc-not-in-crosswalk" in shipped
    assert newer == set(), newer


def _broken(tmp_path: Path, row: str, header: str | None = None) -> Path:
    lines = _shipped_crosswalk().splitlines()
    if header is not None:
        lines[0] = header
    lines.insert(2, row)  # file row 3 (row 1 is the header)
    path = tmp_path / "broken-crosswalk.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("row", "column"),
    [
        pytest.param(
            NEW_ROW.replace(
                ",J7507,1,tacrolimus,IMMEDIATE_RELEASE,ORAL,1,", ",J7507,1,tacrolimus,IMMEDIATE_RELEASE,ORAL,one,"
            ),
            "strength_mg",
            id="strength not a number",
        ),
        pytest.param(NEW_ROW.replace(",false,", ",maybe,"), "brand", id="brand not true/false"),
        pytest.param(NEW_ROW.replace(NEW_NDC, "9999900010"), "ndc11", id="ndc11 not 11 digits"),
        pytest.param(NEW_ROW.replace(NEW_NDC, "00469060773"), "ndc11", id="ndc11 listed twice (row 2 has it)"),
    ],
)
def test_a_broken_crosswalk_names_file_row_and_column(tmp_path: Path, row: str, column: str) -> None:
    path = _broken(tmp_path, row)
    with pytest.raises(ConfigError) as raised:
        load_reference(path)
    message = str(raised.value)
    assert "broken-crosswalk.csv" in message
    assert "row 3" in message
    assert column in message


def test_a_crosswalk_without_a_required_column_names_the_column(tmp_path: Path) -> None:
    header = _shipped_crosswalk().splitlines()[0].replace("strength_mg", "strength")
    with pytest.raises(ConfigError, match=r"broken-crosswalk\.csv.*strength_mg"):
        load_reference(_broken(tmp_path, NEW_ROW, header=header))


def test_a_missing_crosswalk_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.csv"):
        load_reference(tmp_path / "nowhere.csv")
