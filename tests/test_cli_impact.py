"""`python -m worker impact` in file mode: formats, --output, exit statuses, configuration errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from worker.__main__ import main
from worker.devkit.synthetic import generate, write_bundles

REPO = Path(__file__).resolve().parents[1]
DEMO_PAYERS = REPO / "worker" / "devkit" / "demo_payers"
BAD_CONFIG = REPO / "tests" / "fixtures" / "bad-config"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("impact") / "bundles.jsonl"
    with path.open("w", encoding="utf-8") as out:
        write_bundles(generate(40, seed=3), out)
    return path


def test_json_to_output_file_exits_0(bundles: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "impact.json"
    args = ["impact", "--candidate-payer-config", str(DEMO_PAYERS), "--format", "json", "--output", str(report)]
    assert main([*args, str(bundles)]) == 0
    assert capsys.readouterr().out == ""
    document = json.loads(report.read_text(encoding="utf-8"))
    assert set(document) == {"claims", "transitions", "rules", "changed"}
    assert document["claims"] > 0


def test_table_is_the_default_and_markdown_is_a_ticket(bundles: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["impact", "--candidate-payer-config", str(DEMO_PAYERS), str(bundles)]) == 0
    table = capsys.readouterr().out
    assert table.startswith(f"Impact of {DEMO_PAYERS} against the built-in packs\n")
    assert "Transitions (claims / charges" in table
    args = ["impact", "--payer-config", str(DEMO_PAYERS), "--candidate-payer-config", str(DEMO_PAYERS)]
    assert main([*args, "--format", "markdown", str(bundles)]) == 0
    markdown = capsys.readouterr().out
    assert markdown.startswith("### Impact of ")
    assert "changed (0 to another outcome)" in markdown


def test_a_malformed_bundle_is_named_and_exits_1(
    bundles: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "some-bad.jsonl"
    good = bundles.read_text(encoding="utf-8").splitlines()[:3]
    path.write_text("\n".join([good[0], "not json", *good[1:]]) + "\n", encoding="utf-8")
    assert main(["impact", "--candidate-payer-config", str(DEMO_PAYERS), str(path)]) == 1
    captured = capsys.readouterr()
    assert "line 2: " in captured.out and "line 2: " in captured.err
    assert "3 claims compared" in captured.out


@pytest.mark.parametrize("flag", ["--payer-config", "--candidate-payer-config"])
def test_a_bad_configuration_fails_at_start_naming_the_file(
    bundles: Path, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = BAD_CONFIG / "wrong-type"
    args = ["impact", str(bundles)]
    args += (
        ["--candidate-payer-config", str(bad)]
        if flag.startswith("--candidate")
        else ["--payer-config", str(bad), "--candidate-payer-config", str(DEMO_PAYERS)]
    )
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{flag}: {bad / 'acme.yaml'}: settings." in err


def test_a_bad_since_is_a_configuration_error(bundles: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["impact", "--candidate-payer-config", str(DEMO_PAYERS), "--since", "yesterday", str(bundles)]) == 2
    assert "--since: expected an ISO 8601 time" in capsys.readouterr().err


def test_topics_mode_needs_a_broker(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    assert main(["impact", "--candidate-payer-config", str(DEMO_PAYERS)]) == 2
    assert "KAFKA_BOOTSTRAP_SERVERS: required" in capsys.readouterr().err


def test_impact_from_stdin_as_a_process(bundles: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "worker",
            "impact",
            "--candidate-payer-config",
            str(DEMO_PAYERS),
            "--format",
            "json",
            "-",
        ],
        input=bundles.read_bytes(),
        capture_output=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["claims"] > 0
