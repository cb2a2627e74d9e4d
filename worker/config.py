"""One frozen settings object for the stream worker, from flags and environment, validated at start.

Flags win over environment variables, which win over defaults. Every problem is reported at once,
with the setting's flag and variable name, before anything connects to Kafka. Secrets (SASL
password, registry password) come only from the environment or from mounted files and are never
printed: `Settings.__repr__` and `redacted()` hide them. What the settings are, their flags,
variables, parsers and defaults, is one table: worker/settings_table.py.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from worker.errors import ConfigError
from worker.settings_table import REQUIRED, SASL_MECHANISMS, SECRETS, SETTINGS, Setting

ContextScope = Literal["partition", "global"]
TimestampSource = Literal["kafka", "event_time"]


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
    # Live shadow evaluation (worker.stream.shadow): a candidate's payer overrides, where its decisions go.
    shadow_payer_config_dir: Path | None = None
    shadow_decisions_topic: str | None = None

    def redacted(self) -> dict[str, Any]:
        """Settings for the start-up log line, secrets (the table's) replaced."""
        shown: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name in SECRETS:
                value = "***" if value else None
            elif isinstance(value, (Topics, Security)):
                value = {
                    f.name: "***"
                    if f"{item.name}.{f.name}" in SECRETS and getattr(value, f.name)
                    else getattr(value, f.name)
                    for f in fields(value)
                }
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            shown[item.name] = value
        return shown


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for `run` (and `demo`), from the table; each names its environment variable in the help."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for setting in SETTINGS:
        if setting.flag is None or setting.cli_flag:
            continue
        group = groups.get(setting.group) or groups.setdefault(setting.group, parser.add_argument_group(setting.group))
        default = "" if setting.default is REQUIRED else f"; default {setting.default_text}"
        options: dict[str, Any] = {"help": f"{_plain(setting.meaning)} [env {setting.env}{default}]"}
        if setting.repeated:
            options |= {"action": "append", "default": []}
        if setting.metavar:
            options["metavar"] = setting.metavar
        if setting.choices:
            options["choices"] = setting.choices
        group.add_argument(setting.flag, **options)


def _plain(markdown: str) -> str:
    return markdown.replace("`", "").replace("%", "%%")  # argparse formats help with %


def _raw(setting: Setting, args: argparse.Namespace, env: Mapping[str, str], problems: list[str]) -> Any:
    """The setting's text as given (a list for a repeated flag), or None when it was not."""
    flag_value = getattr(args, setting.dest, None) if setting.dest else None
    if setting.repeated:
        items = [item for item in (env.get(setting.env) or "").split(",") if item.strip()]
        items += list(flag_value or [])
        return items or None
    if flag_value not in (None, ""):
        return str(flag_value)
    if env.get(setting.env):
        return env[setting.env]
    path = env.get(f"{setting.env}_FILE") if setting.secret else None
    if not path:
        return None
    try:  # a mounted Kubernetes Secret
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        problems.append(f"{setting.env}_FILE: cannot read {path}: {error.strerror}")
        return None


def settings_from(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Settings:
    """Build and validate the settings; raises ConfigError listing every problem."""
    env = os.environ if env is None else env
    problems: list[str] = []
    values: dict[str, Any] = {}
    for setting in SETTINGS:  # every setting is read, so every problem is found, before any is raised
        raw = _raw(setting, args, env, problems)
        value = setting.default
        if raw is None and setting.default is REQUIRED:
            problems.append(f"{setting.label}: required")
            value = ""
        elif raw is not None:
            try:
                value = setting.parse(raw)
            except ValueError as error:
                problems.append(f"{setting.label}: {error}")
        values[setting.name] = value
    problems += _conflicts(values)
    if problems:
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems))
    nested: dict[str, dict[str, Any]] = {"topics": {}, "security": {}}
    top: dict[str, Any] = {}
    for name, value in values.items():
        outer, _, inner = name.partition(".")
        if inner:
            nested[outer][inner] = value
        else:
            top[name] = value
    top["client_options"] = top["client_options"] or {}
    return Settings(**top, topics=Topics(**nested["topics"]), security=Security(**nested["security"]))


def _conflicts(values: Mapping[str, Any]) -> list[str]:
    """Problems of settings taken together."""
    problems: list[str] = []
    topics = [value for name, value in values.items() if name.startswith("topics.")]
    if len(set(topics)) != len(topics):
        problems.append(f"topics: every topic must be distinct, got {', '.join(topics)}")
    protocol, mechanism = values["security.protocol"], values["security.sasl_mechanism"]
    if protocol.startswith("SASL_"):
        if mechanism not in SASL_MECHANISMS:
            problems.append(f"KAFKA_SASL_MECHANISM: expected one of {', '.join(SASL_MECHANISMS)} for {protocol}")
    elif mechanism:
        problems.append(f"KAFKA_SASL_MECHANISM: set, but KAFKA_SECURITY_PROTOCOL {protocol} does not use SASL")
    if mechanism and (not values["security.sasl_username"] or not values["security.sasl_password"]):
        problems.append("KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE): required for SASL")
    shadow_topic = values["shadow_decisions_topic"]
    if shadow_topic and not values["shadow_payer_config_dir"]:
        problems.append("--shadow-decisions-topic/TOPIC_SHADOW_DECISIONS: needs --shadow-payer-config")
    if shadow_topic and shadow_topic in topics:
        problems.append(f"--shadow-decisions-topic/TOPIC_SHADOW_DECISIONS: {shadow_topic} is already a worker topic")
    return problems
