"""TLS settings: files checked at start, named by their setting (handshakes: tests/integration/test_tls.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from worker.codec.tls import KAFKA_TLS_SETTINGS, REGISTRY_TLS_SETTINGS, check_settings_tls, client_context
from worker.config import settings_from
from worker.errors import ConfigError


def test_registry_tls_files_come_from_the_environment_and_must_exist(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x", encoding="utf-8")
    env = {"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "SCHEMA_REGISTRY_URL": "https://r:8081"}
    settings = settings_from(argparse.Namespace(), {**env, "SCHEMA_REGISTRY_SSL_CAFILE": str(ca)})
    assert settings.schema_registry_ssl_cafile == str(ca)
    with pytest.raises(ConfigError, match=r"SCHEMA_REGISTRY_SSL_CERTFILE: no such file"):
        settings_from(argparse.Namespace(), {**env, "SCHEMA_REGISTRY_SSL_CERTFILE": str(tmp_path / "none.pem")})


def test_a_file_that_is_not_a_certificate_is_named_by_its_setting(tmp_path: Path) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^SCHEMA_REGISTRY_SSL_CAFILE: .* not a readable PEM CA certificate"):
        client_context(str(garbage), None, None, names=REGISTRY_TLS_SETTINGS)
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": str(garbage)}
    with pytest.raises(ConfigError, match=r"^KAFKA_SSL_CAFILE: "):
        check_settings_tls(settings_from(argparse.Namespace(), env))


def test_a_client_key_without_its_certificate_is_refused() -> None:
    with pytest.raises(ConfigError, match="KAFKA_SSL_KEYFILE: set, but KAFKA_SSL_CERTFILE"):
        client_context(None, None, "/some/key.pem", names=KAFKA_TLS_SETTINGS)


def test_plaintext_settings_probe_nothing() -> None:
    # Nothing listens on port 1; a PLAINTEXT worker must not try a TLS handshake there.
    check_settings_tls(settings_from(argparse.Namespace(), {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}))
