"""Metrics catalogue, structured logging and the health endpoints.

Every metric the worker exports is defined here, with its help text. Names and labels are public
(dashboards and alerts use them); labels are bounded (topics, partitions, outcomes, rule ids) and
never carry patient or claim identifiers. Tests build `Metrics(CollectorRegistry())` and read it;
the worker uses one registry per process.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

OUTCOME_LABELS = ("accept", "hold", "deny_risk", "skipped")
DEAD_LETTER_REASONS = ("decode", "contract", "other")
REBALANCE_EVENTS = ("assigned", "revoked", "lost")
CONTEXT_KINDS = ("patients", "prescriptions", "labs", "prior_claims")

# Claim processing is sub-millisecond to a few seconds under load; end-to-end spans upstream delays.
PROCESSING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
END_TO_END_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
RESTORE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Metrics:
    """The public metrics catalogue."""

    def __init__(self, registry: CollectorRegistry, rule_ids: Iterable[tuple[str, Iterable[str]]] = ()) -> None:
        self.registry = registry
        self.records_consumed = Counter(
            "j7507_records_consumed", "Input records consumed, by topic.", ["topic"], registry=registry
        )
        self.claims_decided = Counter(
            "j7507_claims_decided",
            "Claims decided, by outcome (skipped: no J7507 line, no decision published).",
            ["outcome"],
            registry=registry,
        )
        self.rule_findings = Counter(
            "j7507_rule_findings",
            "Rule findings on decided claims, by rule id and outcome.",
            ["rule_id", "outcome"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "j7507_dead_letters",
            "Input records sent to the dead-letter topic, by reason (decode, contract, other).",
            ["reason"],
            registry=registry,
        )
        self.claim_processing = Histogram(
            "j7507_claim_processing_seconds",
            "Time from a claim being polled to its decision being acknowledged by the broker.",
            buckets=PROCESSING_BUCKETS,
            registry=registry,
        )
        self.end_to_end_latency = Histogram(
            "j7507_end_to_end_latency_seconds",
            "Time from the claim's event_time to its decision being acknowledged by the broker.",
            buckets=END_TO_END_BUCKETS,
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "j7507_consumer_lag_records",
            "Records behind the fetch high watermark, per assigned input partition.",
            ["topic", "partition"],
            registry=registry,
        )
        self.last_commit = Gauge(
            "j7507_last_commit_timestamp_seconds",
            "Unix time of the last successful offset commit, per partition.",
            ["topic", "partition"],
            registry=registry,
        )
        self.loop_heartbeat = Gauge(
            "j7507_loop_heartbeat_timestamp_seconds",
            "Unix time the processing loop last iterated (liveness).",
            registry=registry,
        )
        self.assigned_partitions = Gauge(
            "j7507_assigned_partitions", "Claim partitions assigned to this worker.", registry=registry
        )
        self.rebalances = Counter(
            "j7507_rebalances", "Rebalance events, by event (assigned, revoked, lost).", ["event"], registry=registry
        )
        self.context_entries = Gauge(
            "j7507_context_entries",
            "Entries held in the in-memory patient context, by kind.",
            ["kind"],
            registry=registry,
        )
        self.late_context = Counter(
            "j7507_late_context_records",
            "Context records no later than an already decided claim of the same patient (docs/contract.md): "
            "applied for later claims, published decisions unchanged; by topic.",
            ["topic"],
            registry=registry,
        )
        self.context_restore = Histogram(
            "j7507_context_restore_seconds",
            "Time to rebuild the context of a newly assigned partition as of its first undecided claim.",
            buckets=RESTORE_BUCKETS,
            registry=registry,
        )
        self.shadow_decisions = Counter(
            "j7507_shadow_decisions",
            "Claims decided in shadow (run --shadow-payer-config), by the real (baseline) and the candidate's outcome.",
            ["baseline", "candidate"],
            registry=registry,
        )
        self.shadow_rule_findings = Counter(
            "j7507_shadow_rule_findings",
            "Rule findings of the shadow candidate's decisions, by rule id and outcome (compare with "
            "j7507_rule_findings_total).",
            ["rule_id", "outcome"],
            registry=registry,
        )
        self.shadow_errors = Counter(
            "j7507_shadow_errors",
            "Shadow evaluations or shadow decision sends that failed (the real decision is unaffected).",
            registry=registry,
        )
        self.build_info = Gauge(
            "j7507_build_info",
            "Worker version and rule pack(s); always 1.",
            ["version", "rule_pack"],
            registry=registry,
        )
        # Pre-initialise every bounded label value so dashboards and rate() see zeros, not gaps.
        for outcome in OUTCOME_LABELS:
            self.claims_decided.labels(outcome=outcome)
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(reason=reason)
        for event in REBALANCE_EVENTS:
            self.rebalances.labels(event=event)
        for kind in CONTEXT_KINDS:
            self.context_entries.labels(kind=kind).set(0)
        self._rule_series = [(rule_id, outcome.lower()) for rule_id, outcomes in rule_ids for outcome in outcomes]
        for rule_id, outcome in self._rule_series:
            self.rule_findings.labels(rule_id=rule_id, outcome=outcome)
        # Labelled children, resolved once: `labels()` takes a lock and builds a key per call, and
        # the loop counts every record, decision and finding.
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Counter, name: str, **labels: str) -> Any:
        key = (name, *labels.values())
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(**labels)
        return child

    def count_consumed(self, topic: str, records: int) -> None:
        self._child(self.records_consumed, "consumed", topic=topic).inc(records)

    def count_decision(self, outcome: str, findings: Iterable[tuple[str, str]]) -> None:
        """One decided claim: its outcome and each finding's (rule_id, outcome), as given."""
        self._child(self.claims_decided, "decided", outcome=outcome.lower()).inc()
        for rule_id, finding_outcome in findings:
            self._child(self.rule_findings, "finding", rule_id=rule_id, outcome=finding_outcome.lower()).inc()

    def start_shadow(self) -> None:
        """Pre-initialise the shadow's series, only when a shadow runs (no zeros without one)."""
        decided = [outcome for outcome in OUTCOME_LABELS if outcome != "skipped"]
        for baseline in decided:
            for candidate in decided:
                self.shadow_decisions.labels(baseline=baseline, candidate=candidate)
        for rule_id, outcome in list(self._rule_series):
            self.shadow_rule_findings.labels(rule_id=rule_id, outcome=outcome)


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """structlog JSON lines to stdout: one event per line, UTC timestamps, no colour."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=True,
    )


class Health:
    """What /livez and /readyz report; updated by the loop, read by the HTTP thread."""

    def __init__(self, liveness_timeout_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.liveness_timeout_s = liveness_timeout_s
        self._clock = clock
        self._last_beat = clock()
        self._ready_reason: str | None = "starting"
        self._lock = threading.Lock()

    def beat(self) -> None:
        with self._lock:
            self._last_beat = self._clock()

    def set_ready(self, reason_not_ready: str | None) -> None:
        """None means ready; otherwise the reason shown by /readyz."""
        with self._lock:
            self._ready_reason = reason_not_ready

    def live(self) -> tuple[bool, str]:
        with self._lock:
            age = self._clock() - self._last_beat
        return age <= self.liveness_timeout_s, f"loop iterated {age:.1f}s ago"

    def ready(self) -> tuple[bool, str]:
        with self._lock:
            reason = self._ready_reason
        return reason is None, reason or "ready"


# The health and metrics port faces the network: each connection gets at most this long in all
# (a slow or idle client is cut off), and at most this many are served at once; the rest are
# answered 503 at once and closed. Probes and scrapes take milliseconds, so neither limit is near.
CONNECTION_DEADLINE_S = 5.0
MAX_CONNECTIONS = 32
_BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nbusy\n"


class BoundedHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer with a bounded number of connection threads and a deadline per connection.

    Nothing here can block the accept loop: a refused connection gets a non-blocking 503, a full
    file-descriptor table makes `accept` back off instead of spinning, and one reaper thread shuts
    down connections past their deadline (a socket timeout alone lets a client trickle bytes)."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        max_connections: int = MAX_CONNECTIONS,
        deadline_s: float = CONNECTION_DEADLINE_S,
    ) -> None:
        super().__init__(address, handler)
        self.max_connections = max_connections
        self.deadline_s = deadline_s
        self._active: dict[socket.socket, float] = {}
        self._active_lock = threading.Lock()
        self.refused = 0
        self._closed = threading.Event()
        threading.Thread(target=self._reap, name="metrics-http-reaper", daemon=True).start()

    @property
    def active_connections(self) -> int:
        with self._active_lock:
            return len(self._active)

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            return super().get_request()
        except OSError as error:
            if error.errno in (errno.EMFILE, errno.ENFILE):
                time.sleep(0.05)  # out of descriptors: back off rather than spin on a readable socket
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._active_lock:
            full = len(self._active) >= self.max_connections
            if not full:
                self._active[request] = time.monotonic() + self.deadline_s
        if full:
            self.refused += 1
            with contextlib.suppress(OSError):
                request.setblocking(False)
                request.send(_BUSY)
            self.shutdown_request(request)
            return
        request.settimeout(self.deadline_s)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._active_lock:
                self._active.pop(request, None)

    def server_close(self) -> None:
        self._closed.set()
        super().server_close()

    def _reap(self) -> None:
        while not self._closed.wait(min(1.0, self.deadline_s / 2)):
            now = time.monotonic()
            with self._active_lock:
                late = [sock for sock, deadline in self._active.items() if deadline < now]
            for sock in late:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # the handler's read or write fails and it ends


def start_http_server(
    port: int,
    registry: CollectorRegistry,
    health: Health,
    host: str = "0.0.0.0",
    *,
    max_connections: int = MAX_CONNECTIONS,
    deadline_s: float = CONNECTION_DEADLINE_S,
) -> BoundedHTTPServer:
    """Serve /metrics, /livez and /readyz on a daemon thread; returns the server (port 0 = any)."""

    class Handler(BaseHTTPRequestHandler):
        timeout = deadline_s  # socket timeout per read and write; the reaper bounds the total

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path in ("/livez", "/readyz"):
                ok, text = health.live() if path == "/livez" else health.ready()
                self._send(200 if ok else 503, (text + "\n").encode(), "text/plain; charset=utf-8")
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every few seconds would drown the claim log

        def log_error(self, format: str, *args: Any) -> None:
            pass  # timeouts of cut-off clients are expected; the request line could carry anything

    server = BoundedHTTPServer((host, port), Handler, max_connections=max_connections, deadline_s=deadline_s)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
