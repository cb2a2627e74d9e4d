"""`python -m worker evaluate|rules`: files and stdin, exit statuses, payer config, the rule catalogue.

Most cases call `worker.__main__.main` in-process (fast); a few run the real module to check what a
shell sees (exit status, stdin, stderr).
"""

from __future__ import annotations

import copy
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from worker.__main__ import main

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PAYER_CONFIG = FIXTURES / "payer-config"
BAD_CONFIG = FIXTURES / "bad-config"
EXAMPLES = [
    json.loads(text)["bundle"] for text in (FIXTURES / "bundles.jsonl").read_text(encoding="utf-8").splitlines()
]

RULES_MD = Path(__file__).resolve().parents[1] / "docs" / "rules.md"


def _catalogue() -> list[tuple[str, tuple[str, ...], bool, str]]:
    """docs/rules.md, in catalogue order: rule_id, outcomes, MEDICARE-only, section."""
    rows: list[tuple[str, tuple[str, ...], bool, str]] = []
    section = ""
    for line in RULES_MD.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif match := re.match(r"\| `([a-z0-9-]+)` \| ([^|]+) \|", line):
            outcomes = tuple(dict.fromkeys(re.findall(r"DENY_RISK|HOLD|INFO", match[2])))
            rows.append((match[1], outcomes, "(MEDICARE)" in match[2], section))
    return rows


CATALOGUE = _catalogue()
RULE_IDS = [rule_id for rule_id, *_ in CATALOGUE]


def _jsonl(*bundles: Any) -> str:
    return "".join((bundle if isinstance(bundle, str) else json.dumps(bundle)) + "\n" for bundle in bundles)


def _write(folder: Path, *bundles: Any) -> Path:
    path = folder / "bundles.jsonl"
    path.write_text(_jsonl(*bundles), encoding="utf-8")
    return path


def _bundle(claim_id: str = "EX-1001", payer: dict[str, str] | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = copy.deepcopy(EXAMPLES[0])
    bundle["claim"]["claim_id"] = claim_id
    if payer is not None:
        bundle["claim"]["payer"] = payer
    return bundle


def _evaluate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]], str]:
    status = main(["evaluate", *argv])
    captured = capsys.readouterr()
    return status, [json.loads(text) for text in captured.out.splitlines()], captured.err


# --- evaluate ---------------------------------------------------------------------------------


def test_evaluate_a_file_of_good_bundles_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, decisions, _ = _evaluate(capsys, str(_write(tmp_path, *EXAMPLES)))
    assert status == 0
    assert [decision["outcome"] for decision in decisions] == [
        "ACCEPT",
        "DENY_RISK",
        "DENY_RISK",
        "HOLD",
        "DENY_RISK",
        "DENY_RISK",
    ]


def test_evaluate_with_a_malformed_line_exits_1_and_still_decides_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, _bundle("C-1"), "", "{oops", '{"claim": 7}', _bundle("C-2"))
    status, outputs, _ = _evaluate(capsys, str(path))
    assert status == 1
    assert outputs[0]["claim_id"] == "C-1"
    assert set(outputs[1]) == {"error", "input_line"} and outputs[1]["input_line"] == 3
    assert set(outputs[2]) == {"error", "input_line"} and outputs[2]["input_line"] == 4
    assert outputs[3]["claim_id"] == "C-2"
    assert len(outputs) == 4


def test_evaluate_reads_stdin_with_dash(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(_jsonl(_bundle("C-IN-1"), _bundle("C-IN-2"))))
    status, decisions, _ = _evaluate(capsys, "-")
    assert status == 0
    assert [decision["claim_id"] for decision in decisions] == ["C-IN-1", "C-IN-2"]


def test_evaluate_reads_stdin_by_default(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(_jsonl(_bundle("C-IN-1"))))
    status, decisions, _ = _evaluate(capsys)
    assert (status, [decision["claim_id"] for decision in decisions]) == (0, ["C-IN-1"])


def test_evaluate_as_a_process_from_stdin() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker", "evaluate", "-"],
        input=_jsonl(_bundle("C-P-1"), "[]", _bundle("C-P-2")),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    outputs = [json.loads(text) for text in result.stdout.splitlines()]
    assert [output.get("claim_id", output.get("input_line")) for output in outputs] == ["C-P-1", 2, "C-P-2"]


def test_evaluate_with_payer_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    acme = _bundle("C-ACME", {"payer_id": "ACME-HEALTH", "payer_type": "COMMERCIAL"})
    acme["claim"]["lines"][0]["days_supply"] = 31  # ACME allows 30 days
    plain = _bundle("C-PLAIN", {"payer_id": "SOMEONE-ELSE", "payer_type": "COMMERCIAL"})
    path = _write(tmp_path, acme, plain)
    status, (with_acme, without), _ = _evaluate(capsys, "--payer-config", str(PAYER_CONFIG), str(path))
    assert status == 0
    acme_rules = {finding["rule_id"] for line in with_acme["lines"] for finding in line["findings"]}
    assert {"prior-auth-missing", "specialty-pharmacy-required", "days-supply-exceeds-limit"} <= acme_rules
    assert with_acme["rule_pack"] != without["rule_pack"]
    assert without["rule_pack"]["name"] == "commercial-default"

    _, (no_config, _), _ = _evaluate(capsys, str(path))
    assert no_config["rule_pack"]["name"] == "commercial-default"
    assert "prior-auth-missing" not in {
        finding["rule_id"] for line in no_config["lines"] for finding in line["findings"]
    }


@pytest.mark.parametrize(
    ("case", "file"),
    [("bad-yaml", "acme.yaml"), ("unknown-setting", "acme.yaml"), ("duplicate-payer", "b-second.yaml")],
)
def test_a_payer_config_error_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, file: str
) -> None:
    status, outputs, err = _evaluate(capsys, "--payer-config", str(BAD_CONFIG / case), str(_write(tmp_path, _bundle())))
    assert status == 2
    assert outputs == [], "nothing is decided with a broken configuration"
    assert file in err


def test_a_missing_payer_config_directory_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _evaluate(capsys, "--payer-config", str(tmp_path / "nope"), str(_write(tmp_path, _bundle())))
    assert status == 2
    assert "nope" in err


def test_a_broken_crosswalk_exits_2_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    crosswalk = tmp_path / "my-crosswalk.csv"
    crosswalk.write_text("ndc11,hcpcs,strength_mg,brand,source\n00469060773,J7507,half,true,x\n", encoding="utf-8")
    status, _, err = _evaluate(capsys, "--ndc-crosswalk", str(crosswalk), str(_write(tmp_path, _bundle())))
    assert status == 2
    assert "my-crosswalk.csv" in err
    assert "strength_mg" in err


def test_a_newer_crosswalk_is_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.resources import files

    shipped = (files("worker.engine") / "data" / "ndc_crosswalk.csv").read_text(encoding="utf-8")
    crosswalk = tmp_path / "newer.csv"
    crosswalk.write_text(
        shipped.rstrip("\n")
        + "\n99999000505,J7507,1,tacrolimus,IMMEDIATE_RELEASE,ORAL,5,100,false,Test,test,test,test\n",
        encoding="utf-8",
    )
    bundle = _bundle()
    bundle["claim"]["lines"][0]["ndc"] = "99999000505"
    path = _write(tmp_path, bundle)
    _, (shipped_decision,), _ = _evaluate(capsys, str(path))
    status, (newer_decision,), _ = _evaluate(capsys, "--ndc-crosswalk", str(crosswalk), str(path))
    assert shipped_decision["outcome"] == "HOLD"
    assert (status, newer_decision["outcome"]) == (0, "ACCEPT")


def test_a_config_error_exits_2_as_a_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker", "evaluate", "--payer-config", str(BAD_CONFIG / "unknown-extends"), "-"],
        input="",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "acme.yaml" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_input_file_is_reported_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, outputs, err = _evaluate(capsys, str(tmp_path / "missing.jsonl"))
    assert status != 0
    assert outputs == []
    assert "missing.jsonl" in err


def test_error_lines_do_not_echo_input_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wrong_type = _bundle()
    wrong_type["claim"]["patient_id"] = {"mrn": "MRN-55501234", "name": "Jane Q Doe"}
    status, (output,), err = _evaluate(capsys, str(_write(tmp_path, wrong_type)))
    assert status == 1
    assert "patient_id" in output["error"]
    for value in ("MRN-55501234", "Jane Q Doe"):
        assert value not in output["error"]
        assert value not in err


def test_a_line_that_is_not_utf8_is_one_malformed_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bundles.jsonl"
    path.write_bytes(_jsonl(_bundle("C-1")).encode() + b'{"claim": "\xff\xfe"}\n' + _jsonl(_bundle("C-2")).encode())
    status, outputs, _ = _evaluate(capsys, str(path))
    assert status == 1
    assert [output.get("claim_id", output.get("input_line")) for output in outputs] == ["C-1", 2, "C-2"]


# --- rules ------------------------------------------------------------------------------------


def _rules(capsys: pytest.CaptureFixture[str], fmt: str) -> str:
    assert main(["rules", "--format", fmt]) == 0
    return capsys.readouterr().out


def test_rules_json_lists_exactly_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    entries = json.loads(_rules(capsys, "json"))
    assert [entry["rule_id"] for entry in entries] == RULE_IDS
    assert len(RULE_IDS) == 40


@pytest.mark.parametrize(("rule_id", "outcomes", "medicare_only", "section"), CATALOGUE, ids=RULE_IDS)
def test_rules_json_entry_matches_rules_md(
    capsys: pytest.CaptureFixture[str], rule_id: str, outcomes: tuple[str, ...], medicare_only: bool, section: str
) -> None:
    entry = next(entry for entry in json.loads(_rules(capsys, "json")) if entry["rule_id"] == rule_id)
    assert tuple(entry["outcomes"]) == outcomes
    assert entry["medicare_only"] is medicare_only
    assert entry["policy_ref"]
    assert entry["summary"]
    if "DENY_RISK" in outcomes:
        assert entry["expected_carc"], "a DENY_RISK rule names the payer's likely reason code"


def test_rules_table_lists_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    out = _rules(capsys, "table")
    listed = [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0] in RULE_IDS]
    assert listed == RULE_IDS
    for rule_id, _, medicare_only, _ in CATALOGUE:
        row = next(line for line in out.splitlines() if line.split() and line.split()[0] == rule_id)
        assert ("*" in row.split()[2]) is medicare_only, row


def test_rules_markdown_lists_every_rule_under_its_rules_md_section(capsys: pytest.CaptureFixture[str]) -> None:
    section = ""
    placed: list[tuple[str, str]] = []
    for line in _rules(capsys, "markdown").splitlines():
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        match = re.match(r"\|\s*`([a-z0-9-]+)`\s*\|", line)
        if match:
            placed.append((match.group(1), section))
    assert placed == [(rule_id, section) for rule_id, _, _, section in CATALOGUE]


def test_evaluate_piped_into_head_exits_quietly_with_the_closed_output_status() -> None:
    from worker.__main__ import EXIT_OUTPUT_CLOSED

    bundles = _jsonl(*[_bundle(f"C-H-{number}") for number in range(2000)])
    result = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -m worker evaluate - | head -n 1; exit "${{PIPESTATUS[0]}}"'],
        input=bundles,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == EXIT_OUTPUT_CLOSED != 1
    assert result.stderr == ""  # no traceback, no "Exception ignored" line
    assert json.loads(result.stdout)["claim_id"] == "C-H-0"
