"""Rule packs: the pack settings of rules.md as versioned YAML data, plus payer override files.

A built-in pack (`worker/engine/rules/packs/*.yaml`) holds every setting. A payer override file
(`--payer-config DIR`, one `*.yaml` per payer, format in contract.md) names a `payer_id`, the pack
it `extends` (default: the pack for the claim's payer_type) and the settings it replaces. Every
file is validated when the worker starts: an unknown key, a wrong type or a duplicate payer fails
with a message naming the file, the key and the problem, before any claim is decided.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from worker.engine.events import Claim, PayerType, RulePackRef
from worker.engine.reference import normalize_ndc
from worker.errors import ConfigError

BUILT_IN_PACKS = ("medicare-dme", "commercial-default", "medicaid-default")
PACK_FOR_PAYER_TYPE: Mapping[PayerType, str] = {
    "MEDICARE": "medicare-dme",
    "MEDICAID": "medicaid-default",
    "COMMERCIAL": "commercial-default",
    "OTHER": "commercial-default",
}


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DaysSupplyStep(_Strict):
    """From `from` (inclusive; null = always) the limit is `days`."""

    from_: date | None = Field(default=None, alias="from")
    days: int = Field(gt=0)


class TroughRange(_Strict):
    early: tuple[float, float]
    later: tuple[float, float]

    @field_validator("early", "later")
    @classmethod
    def _ordered(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        if bounds[0] > bounds[1]:
            raise ValueError("the low bound is above the high bound")
        return bounds


class PackSettings(_Strict):
    """Every pack setting of rules.md; the names are public."""

    requires_ndc: bool
    max_days_supply: tuple[DaysSupplyStep, ...]
    allowed_modifiers: frozenset[str]
    medicare_rules: bool
    requires_prior_auth: bool
    step_therapy_generic_first: bool
    specialty_pharmacy_npis: frozenset[str]
    lifetime_units_cap: float | None = Field(ge=0)
    # Days after the date of service a claim may still be filed; also how far back a claim can reach,
    # so it bounds the patient context the stream keeps (docs/contract.md, "context horizon").
    timely_filing_days: int = Field(ge=0)
    non_preferred_ndcs: frozenset[str]
    quantity_tolerance: float = Field(ge=0, lt=1)
    refill_window_days: int = Field(ge=0)
    lab_lookback_days: int = Field(ge=0)
    max_mg_per_kg_day: float = Field(gt=0)
    covered_diagnosis_prefixes: tuple[str, ...]
    trough_targets: Mapping[str, TroughRange]

    @field_validator("max_days_supply", mode="before")
    @classmethod
    def _days_supply_steps(cls, value: Any) -> Any:
        # A plain number is one limit for every date of service (what an override usually says).
        if isinstance(value, int) and not isinstance(value, bool):
            return [{"from": None, "days": value}]
        return value

    @field_validator("max_days_supply")
    @classmethod
    def _sorted_steps(cls, steps: tuple[DaysSupplyStep, ...]) -> tuple[DaysSupplyStep, ...]:
        if not steps:
            raise ValueError("at least one limit is needed")
        return tuple(sorted(steps, key=lambda step: step.from_ or date.min))

    @field_validator("allowed_modifiers")
    @classmethod
    def _upper_modifiers(cls, modifiers: frozenset[str]) -> frozenset[str]:
        return frozenset(modifier.strip().upper() for modifier in modifiers)

    @field_validator("non_preferred_ndcs")
    @classmethod
    def _ndcs(cls, ndcs: frozenset[str]) -> frozenset[str]:
        return frozenset(normalize_ndc(ndc) for ndc in ndcs)

    @field_validator("covered_diagnosis_prefixes")
    @classmethod
    def _diagnosis_prefixes(cls, prefixes: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(normalize_diagnosis(prefix) for prefix in prefixes)

    @model_validator(mode="after")
    def _default_trough(self) -> PackSettings:
        if "DEFAULT" not in self.trough_targets:
            raise ValueError("trough_targets needs a DEFAULT entry for organs without their own")
        return self

    def max_days_supply_on(self, date_of_service: date) -> int:
        limit = self.max_days_supply[0].days
        for step in self.max_days_supply:
            if step.from_ is None or step.from_ <= date_of_service:
                limit = step.days
        return limit

    def trough_range(self, organ: str | None, early: bool) -> tuple[float, float]:
        target = self.trough_targets.get(organ or "DEFAULT") or self.trough_targets["DEFAULT"]
        return target.early if early else target.later


@lru_cache(maxsize=8192)  # codes recur on every claim; bounded because input can be anything
def normalize_diagnosis(code: str) -> str:
    """ICD-10-CM codes compare upper-case with the dot removed (Z94.0 == Z940)."""
    return code.strip().upper().replace(".", "")


@dataclass(frozen=True)
class Pack:
    name: str
    version: str
    description: str
    settings: PackSettings
    source: str  # the file it came from, for error messages and `rules`

    @property
    def ref(self) -> RulePackRef:
        return RulePackRef(self.name, self.version)


class _PackFile(_Strict):
    name: str
    version: str
    description: str = ""
    settings: dict[str, Any]


class _OverrideFile(_Strict):
    payer_id: str = Field(min_length=1)
    extends: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)


def _describe(error: ValidationError, prefix: str = "") -> str:
    # Name the key and the problem; never echo the input value (it may be anything).
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        key = ".".join(str(part) for part in item["loc"] if part != "__root__")
        problems.append(f"{prefix}{key}: {item['msg']}" if key else f"{item['msg']}")
    return "; ".join(problems)


def _read_yaml(path: Path | str, text: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', error)}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return document


def _settings(path: Path | str, raw: Mapping[str, Any]) -> PackSettings:
    try:
        return PackSettings.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{path}: {_describe(error, 'settings.')}") from None


def load_built_in_packs() -> dict[str, Pack]:
    packs: dict[str, Pack] = {}
    folder = files("worker.engine.rules") / "packs"
    for name in BUILT_IN_PACKS:
        path = f"worker/engine/rules/packs/{name}.yaml"
        document = _read_yaml(path, (folder / f"{name}.yaml").read_text(encoding="utf-8"))
        try:
            pack_file = _PackFile.model_validate(document)
        except ValidationError as error:
            raise ConfigError(f"{path}: {_describe(error)}") from None
        packs[pack_file.name] = Pack(
            name=pack_file.name,
            version=pack_file.version,
            description=pack_file.description,
            settings=_settings(path, pack_file.settings),
            source=path,
        )
    return packs


ANY_BASE = "*"


@dataclass(frozen=True)
class PackResolver:
    """Picks the pack for a claim: the payer's override if there is one, else by payer_type.

    An override without `extends` applies on top of whichever built-in pack the claim's payer_type
    picks, so it is prepared once per built-in base; one with `extends` has a single base.
    """

    built_in: Mapping[str, Pack]
    overrides: Mapping[str, Mapping[str, Pack]]  # payer_id -> base pack name (or ANY_BASE) -> pack

    def for_claim(self, claim: Claim) -> Pack:
        base_name = PACK_FOR_PAYER_TYPE[claim.payer.payer_type]
        by_base = self.overrides.get(claim.payer.payer_id)
        if by_base is not None:
            return by_base.get(ANY_BASE) or by_base[base_name]
        return self.built_in[base_name]

    @property
    def all_packs(self) -> list[Pack]:
        return [*self.built_in.values(), *(pack for by_base in self.overrides.values() for pack in by_base.values())]


def load_packs(payer_config_dir: Path | None = None) -> PackResolver:
    """Built-in packs plus the override files of `payer_config_dir` (`*.yaml`, `*.yml`)."""
    built_in = load_built_in_packs()
    overrides: dict[str, dict[str, Pack]] = {}
    sources: dict[str, Path] = {}
    if payer_config_dir is not None:
        if not payer_config_dir.is_dir():
            raise ConfigError(f"{payer_config_dir}: payer config directory does not exist")
        for path in sorted([*payer_config_dir.glob("*.yaml"), *payer_config_dir.glob("*.yml")]):
            payer_id, by_base = _load_override(path, built_in)
            if payer_id in sources:
                raise ConfigError(f"{path}: payer_id: {payer_id!r} is already configured by {sources[payer_id]}")
            sources[payer_id] = path
            overrides[payer_id] = by_base
    return PackResolver(built_in=built_in, overrides=overrides)


def _load_override(path: Path, built_in: Mapping[str, Pack]) -> tuple[str, dict[str, Pack]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    try:
        override = _OverrideFile.model_validate(_read_yaml(path, text))
    except ValidationError as error:
        raise ConfigError(f"{path}: {_describe(error)}") from None
    if override.extends is not None and override.extends not in built_in:
        raise ConfigError(f"{path}: extends: unknown pack {override.extends!r}; built-in packs: {', '.join(built_in)}")
    # The version changes whenever the override's content does, so decision ids stay honest.
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    bases = [override.extends] if override.extends else list(built_in)
    by_base: dict[str, Pack] = {}
    for base_name in bases:
        base = built_in[base_name]
        merged = {**base.settings.model_dump(by_alias=True), **override.settings}
        by_base[base_name] = Pack(
            name=f"{base.name}/{override.payer_id}",
            version=f"{base.version}+{digest}",
            description=f"{override.payer_id} override of {base.name}",
            settings=_settings(path, merged),
            source=str(path),
        )
    if override.extends:
        by_base = {ANY_BASE: by_base[override.extends]}
    return override.payer_id, by_base


def load_override_file(path: Path, built_in: Mapping[str, Pack]) -> tuple[str, dict[str, Pack]]:
    """One override file, validated exactly as at start (`payers check` reports each file's problem)."""
    return _load_override(path, built_in)


OVERRIDE_SCHEMA_ID = "https://j7507-worker.invalid/schemas/payer-override.schema.json"


def override_json_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of a payer override file, generated from the models that load it.

    The file's shape is `_OverrideFile`; its `settings` are `PackSettings` with every setting
    optional (an override replaces only what it names) and `max_days_supply` also accepting a plain
    number, as the loader does. Pydantic writes the schema; only those two differences are patched.
    """
    settings = PackSettings.model_json_schema(by_alias=True, mode="validation")
    definitions = settings.pop("$defs", {})
    settings.pop("required", None)
    settings["title"] = "Pack settings an override replaces (names and meanings in rules.md)"
    days = settings["properties"]["max_days_supply"]
    settings["properties"]["max_days_supply"] = {
        "title": days.get("title", "Max Days Supply"),
        "anyOf": [
            {"type": "integer", "exclusiveMinimum": 0, "description": "one limit for every date of service"},
            {key: value for key, value in days.items() if key != "title"},
        ],
    }
    for prop in settings["properties"].values():
        # frozenset -> uniqueItems in pydantic's schema, but the loader accepts (and drops) repeats.
        prop.pop("uniqueItems", None)
    days["minItems"] = 1
    settings["properties"]["trough_targets"]["required"] = ["DEFAULT"]
    document = _OverrideFile.model_json_schema(by_alias=True, mode="validation")
    document["title"] = "Payer override file"
    document["properties"]["extends"]["anyOf"][0]["enum"] = list(BUILT_IN_PACKS)
    document["properties"]["settings"] = {**settings, "default": {}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": OVERRIDE_SCHEMA_ID,
        **{key: value for key, value in document.items() if key != "$defs"},
        "description": "A payer override file (--payer-config DIR, one *.yaml per payer; format in contract.md).",
        "$defs": definitions,
    }
