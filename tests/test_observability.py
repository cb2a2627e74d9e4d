"""Metrics catalogue and health endpoints, read from a private registry and a real HTTP server."""

from __future__ import annotations

import io
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import structlog
from prometheus_client import CollectorRegistry

from worker.engine.rules import RULES
from worker.observability import BoundedHTTPServer, Health, Metrics, configure_logging, start_http_server

PUBLIC_METRICS = {
    "j7507_records_consumed_total",
    "j7507_claims_decided_total",
    "j7507_rule_findings_total",
    "j7507_dead_letters_total",
    "j7507_claim_processing_seconds",
    "j7507_end_to_end_latency_seconds",
    "j7507_consumer_lag_records",
    "j7507_last_commit_timestamp_seconds",
    "j7507_loop_heartbeat_timestamp_seconds",
    "j7507_assigned_partitions",
    "j7507_rebalances_total",
    "j7507_context_entries",
    "j7507_context_restore_seconds",
    "j7507_build_info",
}


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry(), rule_ids=[(spec.rule_id, spec.outcomes) for spec in RULES.values()])


def test_the_catalogue_has_every_public_metric_with_help(metrics: Metrics) -> None:
    names = set()
    for family in metrics.registry.collect():
        assert family.documentation, family.name
        names.update(sample.name for sample in family.samples)
        names.add(family.name)
    missing = {name for name in PUBLIC_METRICS if name not in names and name.removesuffix("_total") not in names}
    assert not missing


def test_rule_findings_are_pre_initialised_for_every_rule_and_outcome(metrics: Metrics) -> None:
    for spec in RULES.values():
        for outcome in spec.outcomes:
            labels = {"rule_id": spec.rule_id, "outcome": outcome.lower()}
            assert metrics.registry.get_sample_value("j7507_rule_findings_total", labels) == 0.0
    for outcome in ("accept", "hold", "deny_risk", "skipped"):
        assert metrics.registry.get_sample_value("j7507_claims_decided_total", {"outcome": outcome}) == 0.0


@pytest.fixture
def server(metrics: Metrics) -> Iterator[tuple[str, Health]]:
    clock = [100.0]
    health = Health(liveness_timeout_s=60, clock=lambda: clock[0])
    http = start_http_server(0, metrics.registry, health, host="127.0.0.1")
    health.clock_ref = clock  # type: ignore[attr-defined]
    yield f"http://127.0.0.1:{http.server_address[1]}", health
    http.shutdown()
    http.server_close()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_health_endpoints_follow_the_loop(server: tuple[str, Health]) -> None:
    base, health = server
    clock = health.clock_ref  # type: ignore[attr-defined]
    assert get(f"{base}/readyz")[0] == 503  # starting
    health.set_ready(None)
    assert get(f"{base}/readyz") == (200, "ready\n")
    assert get(f"{base}/livez")[0] == 200
    clock[0] += 61  # the loop has not iterated for over a minute
    status, body = get(f"{base}/livez")
    assert status == 503
    assert "61.0s ago" in body
    health.beat()
    assert get(f"{base}/livez")[0] == 200
    assert get(f"{base}/nope")[0] == 404


def test_metrics_endpoint_serves_the_catalogue(server: tuple[str, Health]) -> None:
    base, _ = server
    status, body = get(f"{base}/metrics")
    assert status == 200
    assert 'j7507_claims_decided_total{outcome="deny_risk"} 0.0' in body


def test_logs_are_one_json_object_per_line() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    try:
        structlog.get_logger("t").info("claim_decided", claim_id="C-1", rule_ids=["trough-missing"])
        structlog.get_logger("t").debug("hidden")
    finally:
        structlog.reset_defaults()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "claim_decided"
    assert record["rule_ids"] == ["trough-missing"]
    assert record["level"] == "info"
    assert record["timestamp"].endswith("Z")


@pytest.fixture
def small_server(metrics: Metrics) -> Iterator[BoundedHTTPServer]:
    health = Health()
    http = start_http_server(0, metrics.registry, health, host="127.0.0.1", max_connections=3, deadline_s=0.5)
    yield http
    http.shutdown()
    http.server_close()


def _connect(server: BoundedHTTPServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10)
    return sock


def test_an_idle_connection_is_cut_off_at_its_deadline(small_server: BoundedHTTPServer) -> None:
    sock = _connect(small_server)
    with sock:
        assert sock.recv(100) == b""  # closed by the server, not by our 10 s timeout


def test_a_client_trickling_bytes_is_cut_off_at_its_deadline(small_server: BoundedHTTPServer) -> None:
    sock = _connect(small_server)
    with sock:
        sock.sendall(b"GET /livez HTTP/1.0\r\n")
        closed = False
        for _ in range(100):  # one header byte every 0.1 s would keep a per-read timeout happy for ever
            try:
                sock.sendall(b"X")
            except OSError:
                closed = True
                break
            time.sleep(0.1)
        assert closed or sock.recv(100) == b""


def test_connections_over_the_cap_are_refused_at_once_and_livez_answers_again_after(
    small_server: BoundedHTTPServer,
) -> None:
    idle = [_connect(small_server) for _ in range(3)]
    try:
        while small_server.active_connections < 3:
            time.sleep(0.01)
        with _connect(small_server) as extra:
            extra.sendall(b"GET /livez HTTP/1.0\r\n\r\n")
            assert extra.recv(100).startswith(b"HTTP/1.0 503")
        assert small_server.refused == 1
    finally:
        for sock in idle:
            sock.close()
    while small_server.active_connections:
        time.sleep(0.01)
    url = f"http://127.0.0.1:{small_server.server_address[1]}/livez"
    assert get(url)[0] == 200
