"""`payers check DIR`: validate payer override files as the worker does at start, and summarise them.

Every file is checked (the worker stops at the first problem; an analyst wants them all), with the
worker's own messages (file, key, problem). For each valid file, one line says what the override
changes against its base pack, so a reviewer sees the effect without reading YAML.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.engine.rules.packs import ANY_BASE, Pack, load_built_in_packs, load_override_file
from worker.errors import ConfigError

_SHOWN_ITEMS = 4
_SHOWN_CHARS = 60


@dataclass(frozen=True)
class CheckResult:
    problems: list[str]
    summaries: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_directory(directory: Path) -> CheckResult:
    if not directory.is_dir():
        raise ConfigError(f"{directory}: payer config directory does not exist")
    built_in = load_built_in_packs()
    problems: list[str] = []
    summaries: list[str] = []
    sources: dict[str, Path] = {}
    paths = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    for path in paths:
        try:
            payer_id, by_base = load_override_file(path, built_in)
        except ConfigError as error:
            problems.append(str(error))
            continue
        if payer_id in sources:
            # The same message load_packs gives at start.
            problems.append(f"{path}: payer_id: {payer_id!r} is already configured by {sources[payer_id]}")
            continue
        sources[payer_id] = path
        summaries.append(summarise(payer_id, path, by_base, built_in))
    if not paths:
        problems.append(f"{directory}: no payer override files (*.yaml, *.yml)")
    return CheckResult(problems=problems, summaries=summaries)


def summarise(payer_id: str, path: Path, by_base: Mapping[str, Pack], built_in: Mapping[str, Pack]) -> str:
    """`PAYER (file) on BASE: setting base -> new; ...`, or `no change` when it repeats the base."""
    if ANY_BASE in by_base:
        pack = by_base[ANY_BASE]
        base_name = pack.name.split("/", 1)[0]
        changes = _changes(built_in[base_name], pack)
        where = f"on {base_name}"
    else:
        # No `extends`: the claim's payer_type picks the base; list each setting once per value.
        per_base = {name: _changes(built_in[name], pack) for name, pack in by_base.items()}
        merged: dict[str, dict[str, str]] = {}
        for name, items in per_base.items():
            for setting, text in items.items():
                merged.setdefault(setting, {})[name] = text
        changes = {}
        for setting, texts in merged.items():
            if len(texts) == len(per_base) and len(set(texts.values())) == 1:
                changes[setting] = next(iter(texts.values()))  # the same change on every base
            else:
                changes[setting] = ", ".join(f"{text} ({name})" for name, text in texts.items())
        where = "on the pack of the claim's payer_type"
    body = "; ".join(f"{setting}: {text}" for setting, text in changes.items()) or "no change"
    return f"{payer_id} ({path.name}) {where}: {body}"


def _changes(base: Pack, pack: Pack) -> dict[str, str]:
    before = base.settings.model_dump(mode="json", by_alias=True)
    after = pack.settings.model_dump(mode="json", by_alias=True)
    return {
        name: f"{_show(before[name])} -> {_show(after[name])}"
        for name in after
        if _canonical(before[name]) != _canonical(after[name])
    }


def _canonical(value: Any) -> Any:
    # Sets dump as lists in arbitrary order: compare them sorted.
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return sorted(value)
    return value


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and all(isinstance(item, dict) and set(item) == {"from", "days"} for item in value):
        # Days-supply steps: "30" or "30 (from 2024-01-01: 90)".
        steps = [str(item["days"]) if item["from"] is None else f"{item['from']}: {item['days']}" for item in value]
        return steps[0] if len(steps) == 1 else "[" + ", ".join(steps) + "]"
    if isinstance(value, list):
        items = sorted(value) if all(isinstance(item, str) for item in value) else value
        if len(items) > _SHOWN_ITEMS:
            return f"[{len(items)} items]"
        return "[" + ", ".join(str(item) for item in items) + "]"
    if isinstance(value, dict):
        text = json.dumps(value, separators=(",", ":"), sort_keys=True)
        return text if len(text) <= _SHOWN_CHARS else f"{{{len(value)} entries}}"
    return str(value)
