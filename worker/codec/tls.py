"""TLS for the worker's connections: contexts from the settings' files, and a start-up probe.

kafka-python, given a CA file that does not sign the broker's certificate, only retries its
bootstrap until it times out, and says "NoBrokersAvailable". Before any Kafka client is built,
`check_kafka_tls` makes one TLS handshake with the first bootstrap server that accepts a TCP
connection and turns a certificate problem into a configuration error naming the setting. A
server that does not answer at all is not a TLS problem: the worker's own retries handle it.

It lives in `worker.codec` because it is client-side connection code and its one library user is
the schema registry client (`worker.codec.registry`); the CLI calls the probe before it starts the
stream or the dead-letter tools. It imports only the settings and errors, so any layer may use it.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable
from typing import TYPE_CHECKING

from worker.errors import ConfigError

if TYPE_CHECKING:
    from worker.config import Settings

PROBE_TIMEOUT_S = 5.0


def client_context(
    cafile: str | None,
    certfile: str | None,
    keyfile: str | None,
    *,
    names: tuple[str, str, str],
) -> ssl.SSLContext:
    """A verifying client context (system CAs unless `cafile`); `names` are the three settings' names."""
    ca_name, cert_name, key_name = names
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (ssl.SSLError, OSError, ValueError) as error:
        raise ConfigError(f"{ca_name}: {cafile} is not a readable PEM CA certificate file ({_why(error)})") from None
    if keyfile and not certfile:
        raise ConfigError(f"{key_name}: set, but {cert_name} (the client certificate) is not")
    if certfile:
        try:
            context.load_cert_chain(certfile, keyfile)
        except (ssl.SSLError, OSError, ValueError) as error:
            raise ConfigError(
                f"{cert_name}/{key_name}: cannot load the client certificate and key ({_why(error)})"
            ) from None
    return context


def _why(error: BaseException) -> str:
    if isinstance(error, ssl.SSLError):
        return error.reason or str(error)
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)


def _host_port(server: str) -> tuple[str, int]:
    host, _, port = server.strip().rpartition(":")
    return host.strip("[]") or "localhost", int(port) if port.isdigit() else 9092


def check_kafka_tls(bootstrap_servers: Iterable[str], context: ssl.SSLContext, *, ca_setting: str) -> None:
    """One TLS handshake with the first bootstrap server that accepts TCP; certificate errors are fatal."""
    for server in bootstrap_servers:
        host, port = _host_port(server)
        try:
            raw = socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S)
        except OSError:
            continue  # not up (yet): kafka-python retries, and reports it if it stays down
        with raw:
            try:
                with context.wrap_socket(raw, server_hostname=host):
                    return
            except ssl.SSLCertVerificationError as error:
                raise ConfigError(
                    f"{ca_setting}: the certificate of {host}:{port} does not verify against it "
                    f"({error.verify_message or error.reason}); set it to the CA that signed the broker's certificate"
                ) from None
            except ssl.SSLError as error:
                raise ConfigError(
                    f"KAFKA_SECURITY_PROTOCOL: TLS handshake with {host}:{port} failed ({_why(error)}); "
                    "is that a TLS listener?"
                ) from None
            except OSError:
                # Closed or reset mid-handshake, or a timeout: most likely a plaintext listener.
                raise ConfigError(
                    f"KAFKA_SECURITY_PROTOCOL: {host}:{port} did not complete a TLS handshake; is that a TLS listener?"
                ) from None


KAFKA_TLS_SETTINGS = ("KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE")
REGISTRY_TLS_SETTINGS = ("SCHEMA_REGISTRY_SSL_CAFILE", "SCHEMA_REGISTRY_SSL_CERTFILE", "SCHEMA_REGISTRY_SSL_KEYFILE")


def check_settings_tls(settings: Settings) -> None:
    """At start: the TLS files load, and the Kafka brokers' certificate verifies against the CA."""
    if settings.schema_registry_url:
        client_context(
            settings.schema_registry_ssl_cafile,
            settings.schema_registry_ssl_certfile,
            settings.schema_registry_ssl_keyfile,
            names=REGISTRY_TLS_SETTINGS,
        )
    security = settings.security
    if not security.protocol.endswith("SSL"):
        return
    context = client_context(security.ssl_cafile, security.ssl_certfile, security.ssl_keyfile, names=KAFKA_TLS_SETTINGS)
    ca_setting = "KAFKA_SSL_CAFILE" if security.ssl_cafile else "KAFKA_SSL_CAFILE (unset: the system CAs)"
    check_kafka_tls(settings.bootstrap_servers.split(","), context, ca_setting=ca_setting)
