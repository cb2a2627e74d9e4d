"""Shared fixtures for tests that need a Kafka-protocol broker.

Broker choice, first match wins:
1. ``KAFKA_BOOTSTRAP_SERVERS`` from the environment (a cluster someone else runs);
2. a testcontainers Kafka, if a Docker engine answers;
3. the embedded Tansu broker (``worker.devkit.embedded``), started once per session.

Tests never share topics or consumer groups: every test asks the factories for fresh ones, so
tests stay independent whichever broker they run against.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from worker.devkit.embedded import EmbeddedBroker, EmbeddedBrokerError, create_topics

from .producing import EventProducer, new_producer
from .stream_setup import StreamSetup, create_stream

_HERE = Path(__file__).parent
_DOCKER_SOCKETS = (Path("/var/run/docker.sock"), Path.home() / ".docker/run/docker.sock")
# The embedded broker auto-creates a missing topic with 4 partitions (even for clients that set
# allow_auto_create_topics=False); tests create theirs explicitly, by default with this count.
DEFAULT_PARTITIONS = 6
# Test-friendly client settings. A 6 s session with 1 s heartbeats (within Kafka's advice of
# heartbeat <= session / 3) lets a group notice a lost member in seconds, not the default 45 s.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1000,
    "allow_auto_create_topics": False,
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    # Return fetched records promptly instead of waiting up to the default 500 ms for more.
    "fetch_max_wait_ms": 100,
}
PRODUCER_DEFAULTS: dict[str, Any] = {
    # On real Kafka a send to a topic nobody created then fails instead of auto-creating it.
    # Tansu ignores the flag and auto-creates with 4 partitions, hence topic_factory.
    "allow_auto_create_topics": False,
    # Fail within a test's patience rather than the default 60 s.
    "max_block_ms": 10_000,
}

ProducerFactory = Callable[..., Any]
ConsumerFactory = Callable[..., Any]
TopicFactory = Callable[..., str]
GroupIdFactory = Callable[..., str]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration, so ``-m 'not integration'`` skips them all."""
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


def _docker_answers() -> bool:
    """True if a Docker engine responds; silent and quick (no socket, no client) otherwise."""
    if not os.environ.get("DOCKER_HOST") and not any(sock.exists() for sock in _DOCKER_SOCKETS):
        return False
    try:
        import docker  # type: ignore[import-untyped]  # no stubs; only from_env/ping/close used
    except ImportError:
        return False
    client = None
    # The docker client leaves sockets open on failure; its warnings are not our failure.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            client = docker.from_env(timeout=2)
            return bool(client.ping())
        except Exception:
            return False
        finally:
            if client is not None:
                client.close()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port[,host:port]`` of the broker every integration test talks to."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    if _docker_answers():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer() as container:
            yield container.get_bootstrap_server()
        return
    try:
        broker = EmbeddedBroker().start()
    except EmbeddedBrokerError as exc:
        if "pip install" in str(exc):
            pytest.skip(f"no Kafka broker available: {exc}")
        raise
    with broker:
        yield broker.bootstrap_servers


def _slug(text: str) -> str:
    """A topic- and group-safe fragment of a test name (Kafka allows [a-zA-Z0-9._-])."""
    return re.sub(r"[^a-zA-Z0-9._-]+", "-", text).strip("-")[:60] or "test"


@pytest.fixture
def new_group_id(request: pytest.FixtureRequest) -> GroupIdFactory:
    """Return a callable making a consumer group id no other test (or run) uses."""

    def make(prefix: str | None = None) -> str:
        return f"{_slug(prefix or request.node.name)}-{uuid.uuid4().hex[:12]}"

    return make


@pytest.fixture
def topic_factory(request: pytest.FixtureRequest, kafka_bootstrap: str) -> Iterator[TopicFactory]:
    """Return ``make(partitions=6, prefix=None) -> name``: an explicitly created, unique topic."""
    created: list[str] = []

    def make(partitions: int = DEFAULT_PARTITIONS, prefix: str | None = None) -> str:
        name = f"{_slug(prefix or request.node.name)}-{uuid.uuid4().hex[:12]}"
        create_topics(kafka_bootstrap, [name], partitions)
        created.append(name)
        return name

    yield make
    if created and os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        # Only a shared, long-lived cluster needs tidying; the others die with the session.
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        try:
            with contextlib.suppress(Exception):
                admin.delete_topics(created)
        finally:
            admin.close()


@pytest.fixture
def producer_factory(kafka_bootstrap: str) -> Iterator[ProducerFactory]:
    """Return ``make(**overrides) -> KafkaProducer``; every producer is closed at teardown."""
    producers: list[Any] = []

    def make(**overrides: Any) -> Any:
        settings = {"bootstrap_servers": kafka_bootstrap, **PRODUCER_DEFAULTS, **overrides}
        producer = KafkaProducer(**settings)
        producers.append(producer)
        return producer

    yield make
    for producer in producers:
        producer.close(timeout=10)


@pytest.fixture
def consumer_factory(kafka_bootstrap: str, new_group_id: GroupIdFactory) -> Iterator[ConsumerFactory]:
    """Return ``make(*topics, **overrides) -> KafkaConsumer``, closed at teardown.

    Each consumer gets a fresh group id unless ``group_id`` is given (pass ``group_id=None``
    for a group-less consumer using ``assign()``).
    """
    consumers: list[Any] = []

    def make(*topics: str, **overrides: Any) -> Any:
        settings = {
            "bootstrap_servers": kafka_bootstrap,
            "group_id": new_group_id(),
            **CONSUMER_DEFAULTS,
            **overrides,
        }
        consumer = KafkaConsumer(*topics, **settings)
        consumers.append(consumer)
        return consumer

    yield make
    for consumer in consumers:
        # Close without committing: a test decides itself what it commits.
        consumer.close(autocommit=False)


# --- the stream worker's topics and an event producer, shared by the stream tests -----------------


@pytest.fixture
def stream(kafka_bootstrap: str, topic_factory: TopicFactory, new_group_id: GroupIdFactory) -> StreamSetup:
    """The five topics of one worker deployment, with fresh names, and a fresh group id."""
    return create_stream(kafka_bootstrap, topic_factory, new_group_id())


@pytest.fixture
def events(stream: StreamSetup) -> Iterator[EventProducer]:
    producer = new_producer(stream.bootstrap)
    yield EventProducer(producer, stream.topics)
    producer.close(timeout=10)
