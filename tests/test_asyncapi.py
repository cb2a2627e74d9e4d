"""docs/asyncapi.yaml: valid for the official parser, and in step with schemas/ and the code."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from worker import __version__
from worker.config import Topics
from worker.offline.dead_letters import REASONS, WORKER_HEADERS
from worker.stream import dlq

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = REPO_ROOT / "docs" / "asyncapi.yaml"
SCHEMAS = REPO_ROOT / "schemas"
TOOL = REPO_ROOT / "tools" / "asyncapi"
AVRO = "application/vnd.apache.avro;version=1.9.0"
# The worker's own dead-letter headers; the original_* ones are set only in special cases.
ALWAYS_SET = {
    dlq.HEADER_SOURCE_TOPIC,
    dlq.HEADER_SOURCE_PARTITION,
    dlq.HEADER_SOURCE_OFFSET,
    dlq.HEADER_REASON,
    dlq.HEADER_ERROR_CLASS,
    dlq.HEADER_ERROR_MESSAGE,
    dlq.HEADER_WORKER_VERSION,
}


def _document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    return loaded


def _avro_messages(document: dict[str, Any]) -> dict[str, Path]:
    out = {}
    for name, message in document["components"]["messages"].items():
        payload = message["payload"]
        if payload.get("schemaFormat") == AVRO:
            out[name] = (DOCUMENT.parent / payload["schema"]["$ref"]).resolve()
    return out


def test_every_schema_file_is_a_message_payload_by_reference() -> None:
    messages = _avro_messages(_document())
    assert set(messages.values()) == {path.resolve() for path in SCHEMAS.glob("*.avsc")}
    for name, path in messages.items():
        assert json.loads(path.read_text(encoding="utf-8"))["name"] == name


def test_channels_are_the_five_default_topics_and_inputs_are_co_partitioned() -> None:
    document = _document()
    channels = document["channels"]
    defaults = Topics()
    assert {channel["address"] for channel in channels.values()} == {
        *defaults.inputs,
        defaults.decisions,
        defaults.dead_letter,
    }
    inputs = {cid for cid, channel in channels.items() if channel["address"] in defaults.inputs}
    for cid in inputs:
        assert set(channels[cid]["x-co-partitioned-with"]) == inputs - {cid}
    assert "murmur2" in document["info"]["description"]
    assert document["info"]["version"] == __version__


def test_headers_are_the_ones_the_worker_writes() -> None:
    messages = _document()["components"]["messages"]
    dead = messages["DeadLetter"]["headers"]
    assert set(dead["properties"]) == WORKER_HEADERS
    assert set(dead["required"]) == ALWAYS_SET
    assert dead["properties"][dlq.HEADER_REASON]["enum"] == list(REASONS)
    assert dead["properties"][dlq.HEADER_ERROR_MESSAGE]["maxLength"] == dlq.MAX_MESSAGE_BYTES
    # The decision headers, as worker/stream/loop.py sets them.
    stream_source = (REPO_ROOT / "worker" / "stream" / "loop.py").read_text(encoding="utf-8")
    decision = messages["ClaimDecision"]["headers"]
    for name in decision["required"]:
        assert f'("{name}", ' in stream_source


@pytest.fixture(scope="module")
def parsed() -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the AsyncAPI parser (@asyncapi/parser) runs on it")
    if not (TOOL / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.skip("@asyncapi/parser is not installed: scripts/test.sh runs `npm ci --prefix tools/asyncapi`")
    result = subprocess.run(
        [node, str(TOOL / "validate.mjs"), str(DOCUMENT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_the_official_parser_accepts_the_document(parsed: dict[str, Any]) -> None:
    errors = [d for d in parsed["diagnostics"] if d["severity"] == 0]  # 0 = error (Spectral)
    assert parsed["valid"], errors
    assert errors == []
    assert set(parsed["channels"].values()) == {*Topics().inputs, Topics().decisions, Topics().dead_letter}


def test_the_parser_reads_every_avro_field_of_schemas(parsed: dict[str, Any]) -> None:
    for name, path in _avro_messages(_document()).items():
        fields = [field["name"] for field in json.loads(path.read_text(encoding="utf-8"))["fields"]]
        assert parsed["messages"][name]["payloadFields"] == fields, name
    assert set(parsed["messages"]["DeadLetter"]["headers"]) == WORKER_HEADERS
