"""The wire format seam: how event values become records and decisions become bytes.

Plain Avro binary (the default) uses the project's schemas for reading and writing. The Confluent
Schema Registry framing (magic byte, schema id, Avro body) plugs in here when a registry URL is
configured (worker/codec/registry.py); nothing else in the worker knows which one is in use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from worker.codec.avro import AvroCodec

SCHEMA_NAMES = ("ClaimSubmitted", "PrescriptionRecorded", "LabResultRecorded", "ClaimDecision")


class WireFormat(Protocol):
    def decode(self, schema_name: str, payload: bytes) -> dict[str, Any]:
        """Raises worker.errors.DecodeError for anything that is not a valid record."""
        ...

    def encode(self, schema_name: str, record: Mapping[str, Any], topic: str) -> bytes: ...

    def plain_body(self, schema_name: str, payload: bytes) -> bytes | None:
        """The payload's Avro binary when it was written with exactly the project's schema (what a
        compiled field reader, worker/codec/avro_fields.py, can read); None: decode it instead."""
        ...


class PlainAvro:
    """Schemaless Avro binary: reader and writer share the project's current schemas."""

    def __init__(self) -> None:
        self._codecs = {name: AvroCodec(name) for name in SCHEMA_NAMES}

    def decode(self, schema_name: str, payload: bytes) -> dict[str, Any]:
        return self._codecs[schema_name].decode(payload)

    def encode(self, schema_name: str, record: Mapping[str, Any], topic: str) -> bytes:
        return self._codecs[schema_name].encode(record)

    def plain_body(self, schema_name: str, payload: bytes) -> bytes | None:
        return payload
