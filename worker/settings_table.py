"""The table of settings: one row per setting (name, flag, environment variable, parser, default, secret).

worker/config.py reads the flags and environment from it, reports every problem at once and redacts
the secrets by it; `add_settings_arguments` builds the flags from it; the README's configuration
table is generated from it (`scripts/sync_readme.py`, kept in step by tests/test_readme.py). A new
setting is one row here and one field of `Settings`. Names, flags and variables are public.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
REQUIRED = object()  # the default of a setting that must be given

# Client settings the worker owns: overriding them would break its delivery guarantees.
RESERVED_CLIENT_KEYS = frozenset(
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
class Setting:
    name: str  # the `Settings` field; "topics.claims", "security.protocol" for the nested ones
    env: str
    flag: str | None  # None: environment only (secrets, TLS and SASL, which the chart sets)
    parse: Callable[[Any], Any]  # raw text (a list for a repeated flag) -> value; ValueError says what was expected
    default: Any
    meaning: str
    secret: bool = False  # never shown; may also come from the file named by <ENV>_FILE (a mounted Secret)
    shown_default: str | None = None  # the default as the README and --help say it, when not the value itself
    group: str = "worker"  # the --help group of the flag
    cli_flag: bool = False  # the flag is the CLI's (shared with `evaluate`), not added by add_settings_arguments
    metavar: str | None = None
    choices: tuple[str, ...] | None = None  # offered by --help (and checked by argparse for flags)
    repeated: bool = False  # a repeatable flag; the variable is comma-separated

    @property
    def label(self) -> str:
        """How problems name the setting: its flag and its variable."""
        return f"{self.flag}/{self.env}" if self.flag else self.env

    @property
    def dest(self) -> str | None:
        """The argparse attribute of the flag."""
        return self.flag.lstrip("-").replace("-", "_") if self.flag else None

    @property
    def default_text(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        if self.default is REQUIRED:
            return "(required)"
        return "none" if self.default is None else str(self.default)


# --- parsers: raw text -> value, or ValueError naming what was expected ----------------------------


def text(raw: str) -> str:
    return raw


def port(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise ValueError(f"expected a port number 0-65535, got {raw!r}")
    return value


def whole(minimum: int, unit: str = "") -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise ValueError(f"expected a whole number{unit} of at least {minimum}, got {raw!r}")
        return value

    return parse


def one_of(*options: str, upper: bool = False) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.upper() if upper else raw
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {value!r}")
        return value

    return parse


def upper(raw: str) -> str:
    return raw.upper()


def directory(raw: str) -> Path:
    if not Path(raw).is_dir():
        raise ValueError(f"no such directory {raw}")
    return Path(raw)


def file_path(raw: str) -> Path:
    if not Path(raw).is_file():
        raise ValueError(f"no such file {raw}")
    return Path(raw)


def file_name(raw: str) -> str:
    """A file that must exist, kept as given: the string the client libraries take."""
    file_path(raw)
    return raw


def registry_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    if "@" in raw.split("//", 1)[1].split("/", 1)[0]:
        # Credentials in the URL would end up in logs; they belong in SCHEMA_REGISTRY_USERNAME/PASSWORD.
        raise ValueError("put credentials in SCHEMA_REGISTRY_USERNAME/PASSWORD")
    return raw


def client_options(items: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    problems: list[str] = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"expected KEY=VALUE, got {item!r}")
        elif key in RESERVED_CLIENT_KEYS:
            problems.append(f"{key} is set by the worker and cannot be overridden")
        else:
            options[key] = _typed(raw.strip())
    if problems:
        raise ValueError("; ".join(problems))
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


def _topic(name: str, env: str, default: str, meaning: str) -> Setting:
    flag = f"--topic-{name.replace('_', '-')}"
    return Setting(f"topics.{name}", env, flag, text, default, meaning, group="topics", metavar="TOPIC")


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS", "--bootstrap-servers", text, REQUIRED, "`host:port,...`",
        group="Kafka", metavar="HOST:PORT,...",
    ),
    Setting("group_id", "KAFKA_GROUP_ID", "--group-id", text, "j7507-worker", "consumer group; all replicas share it",
            group="Kafka"),
    Setting(
        "client_options", "KAFKA_OPTIONS", "--kafka-option", client_options, None,
        "kafka-python client overrides, `key=value` (repeatable flag; comma-separated variable), e.g. "
        "`max_poll_records=1000`; settings the worker owns (auto-commit, group id, serializers) are refused",
        group="Kafka", metavar="KEY=VALUE", repeated=True,
    ),
    _topic("claims", "TOPIC_CLAIMS", "ehr.claims.v1", "input topic (must exist, equal partition counts)"),
    _topic("prescriptions", "TOPIC_PRESCRIPTIONS", "ehr.prescriptions.v1", "input topic"),
    _topic("lab_results", "TOPIC_LAB_RESULTS", "ehr.lab-results.v1", "input topic"),
    _topic("decisions", "TOPIC_DECISIONS", "billing.j7507.decisions.v1",
           "output topic (must exist; the worker never creates topics)"),
    _topic("dead_letter", "TOPIC_DEAD_LETTER", "billing.j7507.dead-letter.v1", "output topic"),
    Setting("metrics_port", "METRICS_PORT", "--metrics-port", port, 9400, "`/metrics`, `/livez`, `/readyz`"),
    Setting("metrics_host", "METRICS_HOST", "--metrics-host", text, "0.0.0.0", "the address to serve them on"),
    Setting(
        "context_scope", "CONTEXT_SCOPE", "--context-scope", one_of("partition", "global"), "partition",
        "`partition`: restore and follow the context partitions matching the assigned claim partitions "
        "(co-partitioned inputs); `global`: every worker follows all context partitions",
        choices=("partition", "global"),
    ),
    Setting(
        "timestamp_source", "TIMESTAMP_SOURCE", "--timestamp-source", one_of("kafka", "event_time"), "kafka",
        "a record's time: its Kafka timestamp, or the event's `event_time`; a claim sees the context whose "
        "time is at most its own",
        choices=("kafka", "event_time"),
    ),
    Setting(
        "context_grace_ms", "CONTEXT_GRACE_MS", "--context-grace-ms", whole(0, " of milliseconds"), 0,
        "decide a claim no sooner than this long after its time, so late producers' context counts", metavar="MS",
    ),
    Setting("payer_config_dir", "PAYER_CONFIG_DIR", "--payer-config", directory, None,
            "payer override files (`*.yaml`)", cli_flag=True),
    Setting("ndc_crosswalk_file", "NDC_CROSSWALK_FILE", "--ndc-crosswalk", file_path, None,
            "a newer NDC crosswalk CSV", shown_default="shipped", cli_flag=True),
    Setting("shadow_payer_config_dir", "SHADOW_PAYER_CONFIG_DIR", "--shadow-payer-config", directory, None,
            "a candidate's payer overrides, decided in shadow beside every real decision (never changes one)",
            group="shadow evaluation", metavar="DIR"),
    Setting("shadow_decisions_topic", "TOPIC_SHADOW_DECISIONS", "--shadow-decisions-topic", text, None,
            "where the shadow's decisions go too, with header `shadow: true` (the topic must exist)",
            group="shadow evaluation", metavar="TOPIC"),
    Setting(
        "max_claim_lines", "MAX_CLAIM_LINES", "--max-claim-lines", whole(1), 50,
        "service lines per claim; a claim with more is a `contract` dead letter (offline: a malformed line)",
    ),
    Setting("log_level", "LOG_LEVEL", "--log-level", one_of("DEBUG", "INFO", "WARNING", "ERROR", upper=True), "INFO",
            "log level", choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    Setting("security.protocol", "KAFKA_SECURITY_PROTOCOL", None, one_of(*SECURITY_PROTOCOLS, upper=True),
            "PLAINTEXT", "how the worker talks to Kafka", choices=SECURITY_PROTOCOLS),
    Setting("security.sasl_mechanism", "KAFKA_SASL_MECHANISM", None, upper, None,
            "required with `SASL_*` protocols", choices=SASL_MECHANISMS),
    Setting("security.sasl_username", "KAFKA_SASL_USERNAME", None, text, None, "SASL user"),
    Setting("security.sasl_password", "KAFKA_SASL_PASSWORD", None, text, None,
            "SASL password, or `KAFKA_SASL_PASSWORD_FILE` naming a mounted file", secret=True),
    Setting("security.ssl_cafile", "KAFKA_SSL_CAFILE", None, file_name, None, "CA of the brokers' certificates"),
    Setting("security.ssl_certfile", "KAFKA_SSL_CERTFILE", None, file_name, None, "client certificate"),
    Setting("security.ssl_keyfile", "KAFKA_SSL_KEYFILE", None, file_name, None, "client certificate's key"),
    Setting("schema_registry_url", "SCHEMA_REGISTRY_URL", "--schema-registry-url", registry_url, None,
            "Confluent wire format when set (credentials never in the URL)"),
    Setting("schema_registry_username", "SCHEMA_REGISTRY_USERNAME", None, text, None, "registry basic auth user"),
    Setting("schema_registry_password", "SCHEMA_REGISTRY_PASSWORD", None, text, None,
            "registry basic auth password, or `SCHEMA_REGISTRY_PASSWORD_FILE` naming a mounted file", secret=True),
    Setting("schema_registry_ssl_cafile", "SCHEMA_REGISTRY_SSL_CAFILE", None, file_name, None,
            "CA of an `https://` registry", shown_default="system CAs"),
    Setting("schema_registry_ssl_certfile", "SCHEMA_REGISTRY_SSL_CERTFILE", None, file_name, None,
            "client certificate for the registry"),
    Setting("schema_registry_ssl_keyfile", "SCHEMA_REGISTRY_SSL_KEYFILE", None, file_name, None,
            "client certificate's key for the registry"),
)  # fmt: skip
SECRETS = frozenset(setting.name for setting in SETTINGS if setting.secret)


def markdown_table() -> str:
    """The README's configuration table."""
    rows = ["| variable | flag | default | meaning |", "|---|---|---|---|"]
    for setting in SETTINGS:
        flag = f"`{setting.flag}`" if setting.flag else ""
        default = f"`{setting.default_text}`" if setting.default not in (None, REQUIRED) else setting.default_text
        rows.append(f"| `{setting.env}` | {flag} | {default} | {setting.meaning} |")
    return "\n".join(rows) + "\n"
