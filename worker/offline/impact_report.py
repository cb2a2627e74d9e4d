"""The three renderings of an impact report: a terminal table, JSON (the contract's) and markdown.

The table and markdown show the transitions as a baseline x candidate matrix (claims and charges),
the rules whose counts change most, the first changed claims (rule ids added and removed, and the
message of the first added finding) and the bad input. JSON is docs/contract.md "Impact analysis",
exactly its four fields. No rendering holds a patient identifier: claims go by id and version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal

from worker.offline.impact import OUTCOME_ORDER, ImpactReport, format_charges

TOP_RULES = 10
FIRST_CHANGED = 20
BAD_SHOWN = 20
MESSAGE_WIDTH = 90


def render(report: ImpactReport, fmt: str) -> str:
    if fmt == "json":
        return render_json(report)
    if fmt == "markdown":
        return render_markdown(report)
    return render_table(report)


def render_json(report: ImpactReport) -> str:
    return json.dumps(report.to_json(), indent=2) + "\n"


def _money(amount: Decimal) -> str:
    text = format_charges(amount)
    whole, _, cents = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-')):,}.{cents}"


def _outcomes(report: ImpactReport) -> tuple[list[str], list[str]]:
    """Rows (baseline) and columns (candidate) that occur, in severity order."""
    rows = [o for o in OUTCOME_ORDER if any(t.baseline == o for t in report.transitions)]
    columns = [o for o in OUTCOME_ORDER if any(t.candidate == o for t in report.transitions)]
    return rows, columns


def _matrix(report: ImpactReport) -> tuple[list[str], list[list[str]]]:
    rows, columns = _outcomes(report)
    cells = {(t.baseline, t.candidate): f"{t.claims:,} / {_money(t.charges)}" for t in report.transitions}
    header = ["baseline \\ candidate", *columns]
    body = [[row, *(cells.get((row, column), "") for column in columns)] for row in rows]
    return header, body


def _rules(report: ImpactReport) -> tuple[list[str], list[list[str]]]:
    moved = [rule for rule in report.rules if rule.change][:TOP_RULES]
    return ["rule_id", "baseline", "candidate", "change"], [
        [rule.rule_id, f"{rule.baseline:,}", f"{rule.candidate:,}", f"{rule.change:+,}"] for rule in moved
    ]


def _short(text: str | None, width: int = MESSAGE_WIDTH) -> str:
    if not text:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


def _changed(report: ImpactReport, *, code: bool) -> tuple[list[str], list[list[str]]]:
    def ids(rule_ids: Sequence[str]) -> str:
        return ", ".join(f"`{r}`" if code else r for r in rule_ids)

    return ["claim", "version", "baseline", "candidate", "added", "removed", "first added finding"], [
        [
            claim.claim_id,
            str(claim.claim_version),
            claim.baseline,
            claim.candidate,
            ids(claim.added),
            ids(claim.removed),
            _short(claim.message),
        ]
        for claim in report.changed[:FIRST_CHANGED]
    ]


def _summary(report: ImpactReport) -> str:
    return (
        f"{report.claims:,} claims compared: {len(report.changed):,} changed ({report.moved_claims:,} to another "
        f"outcome), {_money(report.changed_charges)} in J7507 charges on changed claims."
    )


# --- table ----------------------------------------------------------------------------------------


def _text_table(header: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    return [line(header), line(["-" * width for width in widths]), *(line(row) for row in body)]


def render_table(report: ImpactReport) -> str:
    out = [f"Impact of {report.candidate_name} against {report.baseline_name}", _summary(report), ""]
    out.append("Transitions (claims / charges; rows: baseline, columns: candidate)")
    out += _text_table(*_matrix(report)) if report.transitions else ["  (no claims)"]
    out.append("")
    header, body = _rules(report)
    out.append("Rules whose counts change most")
    out += _text_table(header, body) if body else ["  (no rule changes its count)"]
    out.append("")
    header, body = _changed(report, code=False)
    shown = f"first {len(body)} of {len(report.changed):,}" if len(report.changed) > len(body) else "all"
    out.append(f"Changed claims ({shown})")
    out += _text_table(header, body) if body else ["  (none)"]
    if report.bad_input:
        out += ["", f"Bad input: {len(report.bad_input):,} record(s) or line(s) not decided"]
        out += [f"  {bad.where}: {bad.problem}" for bad in report.bad_input[:BAD_SHOWN]]
        if len(report.bad_input) > BAD_SHOWN:
            out.append(f"  ... and {len(report.bad_input) - BAD_SHOWN:,} more")
    return "\n".join(out) + "\n"


# --- markdown -------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], body: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(_cell(c) for c in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(_cell(c) for c in row) + " |" for row in body),
    ]


def render_markdown(report: ImpactReport) -> str:
    out = [f"### Impact of {report.candidate_name} against {report.baseline_name}", "", _summary(report), ""]
    out += ["**Transitions** (claims / charges; rows: baseline, columns: candidate)", ""]
    out += _md_table(*_matrix(report)) if report.transitions else ["No claims."]
    header, body = _rules(report)
    out += ["", "**Rules whose counts change most**", ""]
    out += _md_table(header, [[f"`{row[0]}`", *row[1:]] for row in body]) if body else ["No rule changes its count."]
    header, body = _changed(report, code=True)
    shown = f"first {len(body)} of {len(report.changed):,}" if len(report.changed) > len(body) else "all"
    out += ["", f"**Changed claims** ({shown})", ""]
    out += _md_table(header, body) if body else ["None."]
    if report.bad_input:
        out += ["", f"**Bad input**: {len(report.bad_input):,} record(s) or line(s) not decided", ""]
        out += [f"- {bad.where}: {_cell(bad.problem)}" for bad in report.bad_input[:BAD_SHOWN]]
        if len(report.bad_input) > BAD_SHOWN:
            out.append(f"- ... and {len(report.bad_input) - BAD_SHOWN:,} more")
    return "\n".join(out) + "\n"
