"""Building the kafka-python clients the worker uses, with its settings and the user's overrides.

Each override goes to the clients that know the key; a key no client knows fails at start (as
kafka-python itself would, but naming the setting).
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.coordinator.assignors.range import RangePartitionAssignor

from worker.config import Settings
from worker.errors import ConfigError
from worker.stream.partitioner import KeyHashPartitioner

# The group consumer must stay in the group while a newly assigned partition's context is
# restored, which can take minutes for a large population: allow 10 minutes between polls.
MAX_POLL_INTERVAL_MS = 600_000
# Context consumers wait at most this long for data in a fetch, so a caught-up partition answers
# fast when a batch of claims waits on the context barrier.
CONTEXT_FETCH_MAX_WAIT_MS = 20
PRODUCER_BATCH_BYTES = 1024 * 1024
# Fetched-but-unread records are memory a backlog holds until their partition's turn in the merge
# (a paused partition keeps its last fetch). Both bounds matter: Kafka honours the per-partition one,
# and a whole response is bounded by the total (the embedded broker honours only that one).
CLAIMS_PARTITION_FETCH_BYTES = 256 * 1024  # a few hundred claims
CLAIMS_FETCH_BYTES = 256 * 1024
CONTEXT_PARTITION_FETCH_BYTES = 64 * 1024  # about 500 lab results
CONTEXT_FETCH_BYTES = 128 * 1024


def _split_overrides(settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    consumer_keys = set(KafkaConsumer.DEFAULT_CONFIG)
    producer_keys = set(KafkaProducer.DEFAULT_CONFIG)
    unknown = [key for key in settings.client_options if key not in consumer_keys | producer_keys]
    if unknown:
        raise ConfigError(f"--kafka-option/KAFKA_OPTIONS: unknown kafka-python setting(s): {', '.join(unknown)}")
    consumer = {k: v for k, v in settings.client_options.items() if k in consumer_keys}
    producer = {k: v for k, v in settings.client_options.items() if k in producer_keys}
    return consumer, producer


def _common(settings: Settings, client_id: str) -> dict[str, Any]:
    return {
        "bootstrap_servers": settings.bootstrap_servers.split(","),
        "client_id": client_id,
        **settings.security.client_options(),
    }


def group_consumer(settings: Settings) -> KafkaConsumer:
    overrides, _ = _split_overrides(settings)
    config: dict[str, Any] = {
        **_common(settings, "j7507-worker"),
        "group_id": settings.group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "allow_auto_create_topics": False,
        "max_poll_records": settings.max_batch,
        "max_partition_fetch_bytes": CLAIMS_PARTITION_FETCH_BYTES,
        "fetch_max_bytes": CLAIMS_FETCH_BYTES,
        "max_poll_interval_ms": MAX_POLL_INTERVAL_MS,
        "partition_assignment_strategy": (RangePartitionAssignor,),
        **overrides,
    }
    return KafkaConsumer(**config)


def assigned_consumer(settings: Settings, purpose: str) -> KafkaConsumer:
    """A consumer outside the group (manual assignment), for context and claim-history reads."""
    overrides, _ = _split_overrides(settings)
    group_only = {
        "session_timeout_ms",
        "heartbeat_interval_ms",
        "max_poll_interval_ms",
        "partition_assignment_strategy",
    }
    config: dict[str, Any] = {
        **_common(settings, f"j7507-worker-{purpose}"),
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "allow_auto_create_topics": False,
        # Context is applied as it is read and paused when ahead of its claims: a poll of a thousand
        # records and small fetches keep the read-ahead (and its memory) small.
        "max_poll_records": 1_000,
        "max_partition_fetch_bytes": CONTEXT_PARTITION_FETCH_BYTES,
        "fetch_max_bytes": CONTEXT_FETCH_BYTES,
        "fetch_max_wait_ms": CONTEXT_FETCH_MAX_WAIT_MS,
        **{k: v for k, v in overrides.items() if k not in group_only},
    }
    return KafkaConsumer(**config)


def producer(settings: Settings) -> KafkaProducer:
    _, overrides = _split_overrides(settings)
    config: dict[str, Any] = {
        **_common(settings, "j7507-worker"),
        "acks": "all",
        "enable_idempotence": True,
        # A few ms of lingering lets a batch of decisions share requests; flush() ends each batch.
        "linger_ms": 5,
        # One produce batch per partition per poll batch: kafka-python wakes its sender thread for
        # every new or full batch (16 KiB by default, about 20 decisions), and each wake-up is a
        # syscall and a GIL hand-over taken from the loop.
        "batch_size": PRODUCER_BATCH_BYTES,
        "partitioner": KeyHashPartitioner(),  # the default's placement, murmur2 four bytes at a time
        **overrides,
    }
    return KafkaProducer(**config)
