"""The rule catalogue as the code has it, for `python -m worker rules` and the README."""

from __future__ import annotations

from typing import Any

from worker.engine.rules import FAMILY_TITLES, RULES, RuleSpec


def rule_entries() -> list[dict[str, Any]]:
    return [_entry(spec) for spec in RULES.values()]


def _entry(spec: RuleSpec) -> dict[str, Any]:
    return {
        "rule_id": spec.rule_id,
        "family": spec.family,
        "outcomes": list(spec.outcomes),
        "medicare_only": spec.medicare_only,
        "settings": list(spec.settings),
        "expected_carc": spec.expected_carc,
        "policy_ref": spec.policy_ref,
        "summary": spec.summary,
    }


def markdown_table() -> str:
    """One table per family, in catalogue order (the README embeds this output)."""
    out: list[str] = []
    for family, title in FAMILY_TITLES.items():
        out += [
            f"#### {title}",
            "",
            "| rule_id | outcome | CARC | policy | settings | fires when |",
            "|---|---|---|---|---|---|",
        ]
        for spec in RULES.values():
            if spec.family != family:
                continue
            outcomes = " / ".join(spec.outcomes) + (" (MEDICARE)" if spec.medicare_only else "")
            settings = ", ".join(f"`{name}`" for name in spec.settings)
            out.append(
                f"| `{spec.rule_id}` | {outcomes} | {spec.expected_carc or ''} | {spec.policy_ref} | "
                f"{settings} | {spec.summary} |"
            )
        out.append("")
    return "\n".join(out)


def text_table() -> str:
    rows = [("RULE_ID", "FAMILY", "OUTCOMES", "CARC", "POLICY", "SETTINGS")]
    for spec in RULES.values():
        outcomes = "/".join(spec.outcomes) + ("*" if spec.medicare_only else "")
        rows.append(
            (
                spec.rule_id,
                spec.family,
                outcomes,
                spec.expected_carc or "-",
                spec.policy_ref,
                ",".join(spec.settings) or "-",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.append("* Medicare-only (runs where the pack sets medicare_rules)")
    return "\n".join(lines)
