"""Settings: flags over environment over defaults, every problem reported at start, secrets hidden."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

import pytest

from worker.config import Security, Settings, add_settings_arguments, settings_from
from worker.errors import ConfigError
from worker.settings_table import SETTINGS


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    parser.add_argument("--payer-config")
    parser.add_argument("--ndc-crosswalk")
    return parser.parse_args(list(argv))


def test_defaults_follow_the_contract() -> None:
    settings = settings_from(parse(), {"KAFKA_BOOTSTRAP_SERVERS": "k:9092"})
    assert settings.group_id == "j7507-worker"
    assert settings.topics.inputs == ("ehr.claims.v1", "ehr.prescriptions.v1", "ehr.lab-results.v1")
    assert settings.topics.decisions == "billing.j7507.decisions.v1"
    assert settings.topics.dead_letter == "billing.j7507.dead-letter.v1"
    assert settings.metrics_port == 9400
    assert settings.context_scope == "partition"


def test_flags_override_environment() -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "env:9092", "KAFKA_GROUP_ID": "env-group", "TOPIC_CLAIMS": "env.claims"}
    settings = settings_from(parse("--bootstrap-servers", "flag:9092", "--topic-claims", "flag.claims"), env)
    assert settings.bootstrap_servers == "flag:9092"
    assert settings.group_id == "env-group"
    assert settings.topics.claims == "flag.claims"


def test_every_problem_is_reported_at_once() -> None:
    env = {
        "METRICS_PORT": "http",
        "CONTEXT_SCOPE": "galaxy",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "LOG_LEVEL": "LOUD",
    }
    with pytest.raises(ConfigError) as caught:
        settings_from(parse("--kafka-option", "nonsense"), env)
    message = str(caught.value)
    for expected in (
        "KAFKA_BOOTSTRAP_SERVERS: required",
        "METRICS_PORT",
        "CONTEXT_SCOPE",
        "KAFKA_SASL_MECHANISM",
        "LOG_LEVEL",
        "KEY=VALUE",
    ):
        assert expected in message


def test_client_options_are_typed_and_reserved_keys_refused() -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "KAFKA_OPTIONS": "max_poll_records=1000,check_crcs=false"}
    settings = settings_from(parse("--kafka-option", "fetch_max_wait_ms=50"), env)
    assert settings.client_options == {"max_poll_records": 1000, "check_crcs": False, "fetch_max_wait_ms": 50}
    with pytest.raises(ConfigError, match="enable_auto_commit is set by the worker"):
        settings_from(parse("--kafka-option", "enable_auto_commit=true"), env)


def test_duplicate_topics_are_refused() -> None:
    with pytest.raises(ConfigError, match="every topic must be distinct"):
        settings_from(parse("--topic-decisions", "ehr.claims.v1"), {"KAFKA_BOOTSTRAP_SERVERS": "k:9092"})


def test_sasl_password_from_a_mounted_file_is_never_shown(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cr3t-value\n")
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "k:9093",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "worker",
        "KAFKA_SASL_PASSWORD_FILE": str(secret),
    }
    settings = settings_from(parse(), env)
    assert settings.security.sasl_password == "s3cr3t-value"
    assert settings.security.client_options()["sasl_mechanism"] == "SCRAM-SHA-512"
    assert "s3cr3t-value" not in repr(settings)
    assert "s3cr3t-value" not in str(settings.redacted())


def test_missing_payer_config_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match=f"no such directory {missing}"):
        settings_from(parse("--payer-config", str(missing)), {"KAFKA_BOOTSTRAP_SERVERS": "k:9092"})


def test_settings_are_frozen() -> None:
    settings = Settings(bootstrap_servers="k:9092")
    with pytest.raises(AttributeError):
        settings.group_id = "other"  # type: ignore[misc]


def test_max_claim_lines_defaults_to_50_and_is_validated() -> None:
    assert settings_from(parse(), {"KAFKA_BOOTSTRAP_SERVERS": "k:9092"}).max_claim_lines == 50
    env = {"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "MAX_CLAIM_LINES": "80"}
    assert settings_from(parse(), env).max_claim_lines == 80
    assert settings_from(parse("--max-claim-lines", "20"), env).max_claim_lines == 20
    with pytest.raises(ConfigError, match="MAX_CLAIM_LINES: expected a whole number"):
        settings_from(parse(), {**env, "MAX_CLAIM_LINES": "0"})


def test_an_unreadable_registry_password_file_is_reported_with_the_other_problems(tmp_path: Path) -> None:
    env = {"METRICS_PORT": "http", "SCHEMA_REGISTRY_PASSWORD_FILE": str(tmp_path / "absent")}
    with pytest.raises(ConfigError) as caught:
        settings_from(parse(), env)
    message = str(caught.value)
    assert "KAFKA_BOOTSTRAP_SERVERS: required" in message
    assert "METRICS_PORT" in message
    assert f"SCHEMA_REGISTRY_PASSWORD_FILE: cannot read {tmp_path / 'absent'}" in message


def test_an_unreadable_registry_password_file_alone_stops_the_worker(tmp_path: Path) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "SCHEMA_REGISTRY_PASSWORD_FILE": str(tmp_path / "absent")}
    with pytest.raises(ConfigError, match="SCHEMA_REGISTRY_PASSWORD_FILE: cannot read"):
        settings_from(parse(), env)


def test_the_registry_password_file_is_read_and_hidden(tmp_path: Path) -> None:
    secret = tmp_path / "registry-password"
    secret.write_text("r3g-secret\n")
    env = {"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "SCHEMA_REGISTRY_PASSWORD_FILE": str(secret)}
    settings = settings_from(parse(), env)
    assert settings.schema_registry_password == "r3g-secret"
    assert settings.redacted()["schema_registry_password"] == "***"
    assert "r3g-secret" not in repr(settings)


def test_every_setting_names_a_settings_field_and_secrets_are_kept_out_of_repr() -> None:
    by_name = {item.name: item for item in fields(Settings)} | {
        f"security.{item.name}": item for item in fields(Security)
    }
    by_name |= {
        f"topics.{item.name}": item for item in fields(settings_from(parse(), {"KAFKA_BOOTSTRAP_SERVERS": "k"}).topics)
    }
    assert [setting.name for setting in SETTINGS if setting.name not in by_name] == []
    assert [setting.name for setting in SETTINGS if setting.secret and by_name[setting.name].repr] == []
    assert len({setting.env for setting in SETTINGS}) == len(SETTINGS)


def test_help_offers_every_flag_of_the_table() -> None:
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    help_text = parser.format_help()
    for setting in SETTINGS:
        if setting.flag and not setting.cli_flag:
            assert setting.flag in help_text and setting.env in help_text
