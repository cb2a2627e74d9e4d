"""A real Prometheus scrapes a running worker; every dashboard and alert expression evaluates.

Prometheus comes from Debian's `prometheus` package (scripts/test.sh installs it); it runs on
loopback with a throw-away TSDB, scraping the worker every second and evaluating the shipped rules
file. While claims keep flowing, each PromQL expression of the Grafana dashboard and of the rules is
sent to the query API: none may error, and the throughput, outcome and latency panels must return
numbers.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy.paths import RULES_PATH
from deploy.promql import all_queries
from kafka import KafkaProducer

from worker.app import App, build_app
from worker.codec.wire import PlainAvro
from worker.config import Settings, Topics
from worker.devkit.synthetic import generate

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="Debian package 'prometheus' is not installed")

# Panels that must show numbers once claims flow (titles in deploy/grafana/j7507-worker.json).
MUST_HAVE_DATA = ("Records consumed per second", "Claims decided per second", "Outcome mix", "Claim processing")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _query(base: str, expr: str) -> dict[str, Any]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return dict(json.load(response))
    except urllib.error.HTTPError as error:  # 400/422 carry the PromQL error as JSON
        with error:
            return dict(json.load(error))


@pytest.fixture
def topics(topic_factory: Any) -> Topics:
    return Topics(
        claims=topic_factory(prefix="prom-claims"),
        prescriptions=topic_factory(prefix="prom-rx"),
        lab_results=topic_factory(prefix="prom-labs"),
        decisions=topic_factory(prefix="prom-decisions"),
        dead_letter=topic_factory(prefix="prom-dlq"),
    )


@pytest.fixture
def running_worker(kafka_bootstrap: str, topics: Topics, new_group_id: Any) -> Iterator[App]:
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        group_id=new_group_id("prom"),
        topics=topics,
        metrics_port=0,
        client_options={"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000},
        log_level="WARNING",
    )
    app = build_app(settings, metrics_host="127.0.0.1", configure_logs=False)
    thread = threading.Thread(target=app.worker.run, name="worker", daemon=True)
    thread.start()
    yield app
    app.worker.request_stop()
    thread.join(timeout=30)
    app.close()
    assert not thread.is_alive()


def _feed(bootstrap: str, topics: Topics, stop: threading.Event) -> None:
    """Produce a synthetic EHR stream slowly, so rates and latencies stay non-zero while scraped."""
    wire = PlainAvro()
    where = {"claim": topics.claims, "prescription": topics.prescriptions, "lab": topics.lab_results}
    schema = {"claim": "ClaimSubmitted", "prescription": "PrescriptionRecorded", "lab": "LabResultRecorded"}
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    try:
        for event in generate(60, seed=5).events:
            if stop.is_set():
                break
            topic = where[event.kind]
            producer.send(topic, key=event.key.encode(), value=wire.encode(schema[event.kind], event.record, topic))
            if event.kind == "claim":
                producer.flush()
                stop.wait(0.05)
    finally:
        producer.close()


@pytest.fixture
def prometheus(tmp_path: Path, running_worker: App) -> Iterator[str]:
    assert PROMETHEUS is not None
    port = _free_port()
    target = running_worker.metrics_url.removeprefix("http://").removesuffix("/metrics")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML: no templating needed
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES_PATH.resolve())],
                "scrape_configs": [{"job_name": "j7507-worker", "static_configs": [{"targets": [target]}]}],
            }
        )
    )
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("prometheus did not start:\n" + (tmp_path / "prometheus.log").read_text()[-2000:])
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _has_numbers(answer: dict[str, Any]) -> bool:
    result = answer["data"]["result"]
    values = [sample["value"][1] for sample in result] if isinstance(result, list) else [result[1]]
    return any(not math.isnan(float(value)) for value in values)


def _evaluate_all(base: str) -> tuple[list[str], list[str]]:
    """Every dashboard and rule expression: (those that error, the must-have panels without numbers)."""
    failures, empty = [], []
    for query in all_queries():
        answer = _query(base, query.expr)
        if answer.get("status") != "success":
            failures.append(f"{query.source}: {answer.get('error')}")
        elif any(title in query.source for title in MUST_HAVE_DATA) and not _has_numbers(answer):
            empty.append(query.source)
    return failures, empty


def _rules_evaluated(base: str) -> bool:
    """Every rule group of the shipped rules file has been evaluated at least once."""
    with urllib.request.urlopen(f"{base}/api/v1/rules", timeout=10) as response:
        groups = json.load(response)["data"]["groups"]
    return bool(groups) and all(not group["lastEvaluation"].startswith("0001-") for group in groups)


def test_every_dashboard_and_rule_expression_evaluates_against_a_scraped_worker(
    prometheus: str, running_worker: App, kafka_bootstrap: str, topics: Topics
) -> None:
    stop = threading.Event()
    feeder = threading.Thread(target=_feed, args=(kafka_bootstrap, topics, stop), daemon=True)
    feeder.start()
    try:
        # Rates need two scrapes of a rising counter inside the window: wait for decided claims.
        deadline = time.monotonic() + 90
        while not _has_numbers(_query(prometheus, "sum(rate(j7507_claims_decided_total[1m])) > 0")):
            assert time.monotonic() < deadline, "the worker's metrics never reached Prometheus"
            time.sleep(1)
        # Then poll (no fixed wait) until the rules have been evaluated and every panel that must show
        # numbers does; an expression that errors fails at once, an empty panel only at the deadline.
        deadline = time.monotonic() + 60
        while True:
            failures, empty = _evaluate_all(prometheus)
            assert not failures
            if not empty and _rules_evaluated(prometheus):
                break
            assert time.monotonic() < deadline, f"panels without data: {empty}"
            time.sleep(0.5)
        target = _query(prometheus, 'up{job="j7507-worker"}')
        assert target["data"]["result"][0]["value"][1] == "1"
    finally:
        stop.set()
        feeder.join(timeout=30)
