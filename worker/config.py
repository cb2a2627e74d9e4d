"""One frozen settings object for the stream worker, from flags and environment, validated at start.

Flags win over environment variables, which win over defaults. Every problem is reported at once,
with the setting's flag and variable name, before anything connects to Kafka. Secrets (SASL
password, registry password) come only from the environment or from mounted files and are never
printed: `Settings.__repr__` and `redacted()` hide them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from worker.errors import ConfigError

ContextScope = Literal["partition", "global"]
TimestampSource = Literal["kafka", "event_time"]
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

# Client settings the worker owns: overriding them would break its delivery guarantees.
_RESERVED_CLIENT_KEYS = frozenset(
    {
        "bootstrap_servers",
        "group_id",
        "enable_auto_commit",
        "key_deserializer",
        "value_deserializer",
        "key_serializer",
        "value_serializer",
        "allow_auto_create_topics",
    }
)


@dataclass(frozen=True)
class Topics:
    claims: str = "ehr.claims.v1"
    prescriptions: str = "ehr.prescriptions.v1"
    lab_results: str = "ehr.lab-results.v1"
    decisions: str = "billing.j7507.decisions.v1"
    dead_letter: str = "billing.j7507.dead-letter.v1"

    @property
    def inputs(self) -> tuple[str, str, str]:
        return (self.claims, self.prescriptions, self.lab_results)

    @property
    def context(self) -> tuple[str, str]:
        return (self.prescriptions, self.lab_results)


@dataclass(frozen=True)
class Security:
    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.sasl_mechanism:
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.sasl_username,
                "sasl_plain_password": self.sasl_password,
            }
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, key)
            if value:
                options[key] = value
        return options


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str
    group_id: str = "j7507-worker"
    topics: Topics = field(default_factory=Topics)
    metrics_port: int = 9400
    metrics_host: str = "0.0.0.0"  # every interface, for the kubelet's probes and Prometheus
    payer_config_dir: Path | None = None
    ndc_crosswalk_file: Path | None = None
    context_scope: ContextScope = "partition"
    client_options: Mapping[str, Any] = field(default_factory=dict)
    security: Security = field(default_factory=Security)
    schema_registry_url: str | None = None
    schema_registry_username: str | None = None
    schema_registry_password: str | None = field(default=None, repr=False)
    # TLS towards an https:// registry: its CA (default: the system's) and a client certificate.
    schema_registry_ssl_cafile: str | None = None
    schema_registry_ssl_certfile: str | None = None
    schema_registry_ssl_keyfile: str | None = None
    log_level: str = "INFO"
    max_batch: int = 500
    # Service lines per claim; more is a `contract` dead letter (worker/stream/bounds.py).
    max_claim_lines: int = 50
    # How long a batch may wait for context partitions to catch up before the worker gives up and
    # exits (Kubernetes restarts it): deciding with stale context would be worse than stopping.
    context_sync_timeout_s: float = 60.0
    # The time of a record (docs/contract.md, "Time: what a claim sees"): its Kafka timestamp, or the
    # event's own event_time.
    timestamp_source: TimestampSource = "kafka"
    # A claim is decided no sooner than this long after its time, so slow producers' context counts.
    context_grace_ms: int = 0
    # Live shadow evaluation (worker.shadow): a candidate's payer overrides, and where its decisions go.
    shadow_payer_config_dir: Path | None = None
    shadow_decisions_topic: str | None = None

    def redacted(self) -> dict[str, Any]:
        """Settings for the start-up log line, secrets replaced."""
        shown: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "schema_registry_password":
                value = "***" if value else None
            elif item.name == "security":
                value = {**{f.name: getattr(value, f.name) for f in fields(value)}}
                if value["sasl_password"]:
                    value["sasl_password"] = "***"
            elif isinstance(value, Topics):
                value = {f.name: getattr(value, f.name) for f in fields(value)}
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            shown[item.name] = value
        return shown


def add_shadow_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for live shadow evaluation (`run` only)."""
    group = parser.add_argument_group("shadow evaluation")
    group.add_argument(
        "--shadow-payer-config",
        metavar="DIR",
        help="also decide every claim under these payer overrides (a candidate) and compare, in metrics; "
        "never changes a real decision or commit [env SHADOW_PAYER_CONFIG_DIR]",
    )
    group.add_argument(
        "--shadow-decisions-topic",
        metavar="TOPIC",
        help="publish the candidate's decisions there too, with header shadow: true (the topic must exist) "
        "[env TOPIC_SHADOW_DECISIONS]",
    )


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for `run` (and `demo`); each names its environment variable in the help."""
    group = parser.add_argument_group("Kafka")
    group.add_argument("--bootstrap-servers", metavar="HOST:PORT,...", help="[env KAFKA_BOOTSTRAP_SERVERS]")
    group.add_argument("--group-id", help="consumer group [env KAFKA_GROUP_ID; default j7507-worker]")
    group.add_argument(
        "--kafka-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="kafka-python client override, repeatable, e.g. max_poll_records=1000 "
        "[env KAFKA_OPTIONS, comma-separated]",
    )
    defaults = Topics()
    topics = parser.add_argument_group("topics")
    for name, env in _TOPIC_ENV.items():
        topics.add_argument(
            f"--topic-{name.replace('_', '-')}",
            metavar="TOPIC",
            help=f"[env {env}; default {getattr(defaults, name)}]",
        )
    worker = parser.add_argument_group("worker")
    worker.add_argument("--metrics-port", type=str, help="/metrics, /livez, /readyz [env METRICS_PORT; default 9400]")
    worker.add_argument("--metrics-host", help="address to serve them on [env METRICS_HOST; default 0.0.0.0]")
    worker.add_argument(
        "--context-scope",
        choices=("partition", "global"),
        help="partition: restore and follow the context partitions matching the assigned claim "
        "partitions (co-partitioned inputs, the default); global: every worker restores and follows all "
        "context partitions [env CONTEXT_SCOPE]",
    )
    worker.add_argument(
        "--timestamp-source",
        choices=("kafka", "event_time"),
        help="a record's time: its Kafka timestamp, or the event's event_time; a claim sees the context "
        "whose time is at most its own [env TIMESTAMP_SOURCE; default kafka]",
    )
    worker.add_argument(
        "--context-grace-ms",
        metavar="MS",
        help="decide a claim no sooner than this long after its time, so late producers' context "
        "counts [env CONTEXT_GRACE_MS; default 0]",
    )
    worker.add_argument("--schema-registry-url", help="Confluent wire format when set [env SCHEMA_REGISTRY_URL]")
    worker.add_argument(
        "--max-claim-lines",
        help="service lines per claim; a claim with more is a contract dead letter [env MAX_CLAIM_LINES; default 50]",
    )
    worker.add_argument("--log-level", help="[env LOG_LEVEL; default INFO]")


_TOPIC_ENV = {
    "claims": "TOPIC_CLAIMS",
    "prescriptions": "TOPIC_PRESCRIPTIONS",
    "lab_results": "TOPIC_LAB_RESULTS",
    "decisions": "TOPIC_DECISIONS",
    "dead_letter": "TOPIC_DEAD_LETTER",
}


def _secret(env: Mapping[str, str], name: str, problems: list[str]) -> str | None:
    """A secret from NAME, or from the file named by NAME_FILE (a mounted Kubernetes Secret)."""
    if env.get(name):
        return env[name]
    path = env.get(f"{name}_FILE")
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        problems.append(f"{name}_FILE: cannot read {path}: {error.strerror}")
        return None


def _parse_client_options(items: list[str], problems: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"--kafka-option/KAFKA_OPTIONS: expected KEY=VALUE, got {item!r}")
            continue
        if key in _RESERVED_CLIENT_KEYS:
            problems.append(f"--kafka-option/KAFKA_OPTIONS: {key} is set by the worker and cannot be overridden")
            continue
        options[key] = _typed(raw.strip())
    return options


def _typed(raw: str) -> Any:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def settings_from(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Settings:
    """Build and validate the settings; raises ConfigError listing every problem."""
    env = os.environ if env is None else env
    problems: list[str] = []

    def pick(flag: str, name: str) -> str | None:
        value = getattr(args, flag, None)
        return str(value) if value not in (None, "") else (env.get(name) or None)

    bootstrap = pick("bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        problems.append("--bootstrap-servers/KAFKA_BOOTSTRAP_SERVERS: required")
    port_text = pick("metrics_port", "METRICS_PORT") or "9400"
    metrics_port = 9400
    try:
        metrics_port = int(port_text)
        if not 0 <= metrics_port <= 65535:
            raise ValueError
    except ValueError:
        problems.append(f"--metrics-port/METRICS_PORT: expected a port number 0-65535, got {port_text!r}")
    scope = pick("context_scope", "CONTEXT_SCOPE") or "partition"
    if scope not in ("partition", "global"):
        problems.append(f"--context-scope/CONTEXT_SCOPE: expected partition or global, got {scope!r}")
    timestamp_source = pick("timestamp_source", "TIMESTAMP_SOURCE") or "kafka"
    if timestamp_source not in ("kafka", "event_time"):
        problems.append(f"--timestamp-source/TIMESTAMP_SOURCE: expected kafka or event_time, got {timestamp_source!r}")
    grace_text = pick("context_grace_ms", "CONTEXT_GRACE_MS") or "0"
    grace_ms = 0
    try:
        grace_ms = int(grace_text)
        if grace_ms < 0:
            raise ValueError
    except ValueError:
        problems.append(
            f"--context-grace-ms/CONTEXT_GRACE_MS: expected a whole number of milliseconds >= 0, got {grace_text!r}"
        )
    topics = Topics(
        **{name: pick(f"topic_{name}", env_name) or getattr(Topics(), name) for name, env_name in _TOPIC_ENV.items()}
    )
    names = [getattr(topics, f.name) for f in fields(topics)]
    if len(set(names)) != len(names):
        problems.append(f"topics: every topic must be distinct, got {', '.join(names)}")
    option_items = list(getattr(args, "kafka_option", []) or [])
    if env.get("KAFKA_OPTIONS"):
        option_items = [item for item in env["KAFKA_OPTIONS"].split(",") if item.strip()] + option_items
    client_options = _parse_client_options(option_items, problems)

    protocol = (env.get("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").upper()
    if protocol not in SECURITY_PROTOCOLS:
        problems.append(f"KAFKA_SECURITY_PROTOCOL: expected one of {', '.join(SECURITY_PROTOCOLS)}, got {protocol!r}")
    mechanism = (env.get("KAFKA_SASL_MECHANISM") or "").upper() or None
    if protocol.startswith("SASL_"):
        if mechanism not in SASL_MECHANISMS:
            problems.append(f"KAFKA_SASL_MECHANISM: expected one of {', '.join(SASL_MECHANISMS)} for {protocol}")
    elif mechanism:
        problems.append(f"KAFKA_SASL_MECHANISM: set, but KAFKA_SECURITY_PROTOCOL {protocol} does not use SASL")
    password = _secret(env, "KAFKA_SASL_PASSWORD", problems)
    if mechanism and (not env.get("KAFKA_SASL_USERNAME") or not password):
        problems.append("KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE): required for SASL")
    tls_files = ("KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE")
    registry_tls_files = ("SCHEMA_REGISTRY_SSL_CAFILE", "SCHEMA_REGISTRY_SSL_CERTFILE", "SCHEMA_REGISTRY_SSL_KEYFILE")
    for name in (*tls_files, *registry_tls_files):
        if env.get(name) and not Path(env[name]).is_file():
            problems.append(f"{name}: no such file {env[name]}")

    shadow_dir = pick("shadow_payer_config", "SHADOW_PAYER_CONFIG_DIR")
    shadow_topic = pick("shadow_decisions_topic", "TOPIC_SHADOW_DECISIONS")
    if shadow_dir and not Path(shadow_dir).is_dir():
        problems.append(f"--shadow-payer-config/SHADOW_PAYER_CONFIG_DIR: no such directory {shadow_dir}")
    if shadow_topic and not shadow_dir:
        problems.append("--shadow-decisions-topic/TOPIC_SHADOW_DECISIONS: needs --shadow-payer-config")
    if shadow_topic and shadow_topic in names:
        problems.append(f"--shadow-decisions-topic/TOPIC_SHADOW_DECISIONS: {shadow_topic} is already a worker topic")
    payer_dir = pick("payer_config", "PAYER_CONFIG_DIR")
    crosswalk = pick("ndc_crosswalk", "NDC_CROSSWALK_FILE")
    if payer_dir and not Path(payer_dir).is_dir():
        problems.append(f"--payer-config/PAYER_CONFIG_DIR: no such directory {payer_dir}")
    if crosswalk and not Path(crosswalk).is_file():
        problems.append(f"--ndc-crosswalk/NDC_CROSSWALK_FILE: no such file {crosswalk}")
    registry = pick("schema_registry_url", "SCHEMA_REGISTRY_URL")
    if registry and not registry.startswith(("http://", "https://")):
        problems.append("--schema-registry-url/SCHEMA_REGISTRY_URL: expected an http:// or https:// URL")
    elif registry and "@" in registry.split("//", 1)[1].split("/", 1)[0]:
        # Credentials in the URL would end up in logs; they belong in SCHEMA_REGISTRY_USERNAME/PASSWORD.
        problems.append(
            "--schema-registry-url/SCHEMA_REGISTRY_URL: put credentials in SCHEMA_REGISTRY_USERNAME/PASSWORD"
        )
    lines_text = pick("max_claim_lines", "MAX_CLAIM_LINES") or "50"
    max_claim_lines = 50
    try:
        max_claim_lines = int(lines_text)
        if max_claim_lines < 1:
            raise ValueError
    except ValueError:
        problems.append(f"--max-claim-lines/MAX_CLAIM_LINES: expected a whole number of at least 1, got {lines_text!r}")
    log_level = (pick("log_level", "LOG_LEVEL") or "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        problems.append(f"--log-level/LOG_LEVEL: expected DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
    if problems:
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems))
    return Settings(
        bootstrap_servers=bootstrap or "",
        group_id=pick("group_id", "KAFKA_GROUP_ID") or "j7507-worker",
        topics=topics,
        metrics_port=metrics_port,
        metrics_host=pick("metrics_host", "METRICS_HOST") or "0.0.0.0",
        payer_config_dir=Path(payer_dir) if payer_dir else None,
        ndc_crosswalk_file=Path(crosswalk) if crosswalk else None,
        context_scope="global" if scope == "global" else "partition",
        client_options=client_options,
        security=Security(
            protocol=protocol,
            sasl_mechanism=mechanism,
            sasl_username=env.get("KAFKA_SASL_USERNAME") or None,
            sasl_password=password,
            ssl_cafile=env.get("KAFKA_SSL_CAFILE") or None,
            ssl_certfile=env.get("KAFKA_SSL_CERTFILE") or None,
            ssl_keyfile=env.get("KAFKA_SSL_KEYFILE") or None,
        ),
        schema_registry_url=registry,
        schema_registry_username=env.get("SCHEMA_REGISTRY_USERNAME") or None,
        schema_registry_password=_secret(env, "SCHEMA_REGISTRY_PASSWORD", problems),
        schema_registry_ssl_cafile=env.get("SCHEMA_REGISTRY_SSL_CAFILE") or None,
        schema_registry_ssl_certfile=env.get("SCHEMA_REGISTRY_SSL_CERTFILE") or None,
        schema_registry_ssl_keyfile=env.get("SCHEMA_REGISTRY_SSL_KEYFILE") or None,
        log_level=log_level,
        timestamp_source="event_time" if timestamp_source == "event_time" else "kafka",
        context_grace_ms=grace_ms,
        max_claim_lines=max_claim_lines,
        shadow_payer_config_dir=Path(shadow_dir) if shadow_dir else None,
        shadow_decisions_topic=shadow_topic,
    )
