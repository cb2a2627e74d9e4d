"""Dead letters: input that cannot be decoded or breaks the contract, kept byte for byte.

A dead letter carries the original key, value and headers, plus headers saying where it came from
and why it was rejected, so it can be inspected, fixed upstream and replayed. The error message is
the worker's own description (field and problem), never a copy of the offending value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Reason = Literal["decode", "contract", "other"]

# Header names, public: replay tools and the DLQ dashboard read them.
HEADER_SOURCE_TOPIC = "source_topic"
HEADER_SOURCE_PARTITION = "source_partition"
HEADER_SOURCE_OFFSET = "source_offset"
HEADER_REASON = "error_reason"
HEADER_ERROR_CLASS = "error_class"
HEADER_ERROR_MESSAGE = "error_message"
HEADER_WORKER_VERSION = "worker_version"
# Added only when the original could not be kept as is (worker/stream/outputs.py): the dead letter then
# carries a prefix of the value (or key), and these say what the whole original was.
HEADER_ORIGINAL_SIZE = "original_size"  # the original value's size in bytes (decimal)
HEADER_ORIGINAL_SHA256 = "original_sha256"  # hex SHA-256 of the whole original value
HEADER_ORIGINAL_KEY_SIZE = "original_key_size"  # same for a key that had to be truncated
HEADER_ORIGINAL_KEY_SHA256 = "original_key_sha256"
HEADER_ORIGINAL_EMPTY = "original_empty"  # "true": the original had neither key nor value
HEADER_ORIGINAL_HEADERS_DROPPED = "original_headers_dropped"  # how many producer headers did not fit
OWN_HEADERS = frozenset(
    {
        HEADER_SOURCE_TOPIC,
        HEADER_SOURCE_PARTITION,
        HEADER_SOURCE_OFFSET,
        HEADER_REASON,
        HEADER_ERROR_CLASS,
        HEADER_ERROR_MESSAGE,
        HEADER_WORKER_VERSION,
        HEADER_ORIGINAL_SIZE,
        HEADER_ORIGINAL_SHA256,
        HEADER_ORIGINAL_KEY_SIZE,
        HEADER_ORIGINAL_KEY_SHA256,
        HEADER_ORIGINAL_EMPTY,
        HEADER_ORIGINAL_HEADERS_DROPPED,
    }
)
_OWN_HEADERS = OWN_HEADERS
MAX_MESSAGE_BYTES = 2000


class ContractError(ValueError):
    """A decodable record that breaks the event contract (missing field, wrong key, ...)."""


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    reason: Reason


def dead_letter(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes | None]] | None,
    reason: Reason,
    error: BaseException,
    message: str,
    worker_version: str,
) -> DeadLetter:
    # Keep the producer's own headers (minus any stale copies of ours, from a replayed dead letter).
    # A null header value is legal on the wire but not for kafka-python's producer: sent as empty.
    kept = [(name, value or b"") for name, value in (headers or []) if name not in _OWN_HEADERS]
    ours = [
        (HEADER_SOURCE_TOPIC, topic.encode()),
        (HEADER_SOURCE_PARTITION, str(partition).encode()),
        (HEADER_SOURCE_OFFSET, str(offset).encode()),
        (HEADER_REASON, reason.encode()),
        (HEADER_ERROR_CLASS, type(error).__name__.encode()),
        (HEADER_ERROR_MESSAGE, message.encode("utf-8")[:MAX_MESSAGE_BYTES]),
        (HEADER_WORKER_VERSION, worker_version.encode()),
    ]
    if key is None and value is None:
        # kafka-python refuses a record with neither key nor value (Java and librdkafka send them).
        return DeadLetter(key=None, value=b"", headers=[*kept, *ours, (HEADER_ORIGINAL_EMPTY, b"true")], reason=reason)
    return DeadLetter(key=key, value=value, headers=kept + ours, reason=reason)
