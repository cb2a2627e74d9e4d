"""Confluent Schema Registry wire format: magic byte 0, 4-byte big-endian schema id, Avro binary body.

Writing registers the project's schema under the topic's value subject (TopicNameStrategy,
``{topic}-value``) once and frames the body with the id the registry gives. Reading fetches the
writer's schema by the id in the frame (once per id) and resolves it against the project's current
schema, so records written with an older or newer version of a schema still decode, new fields
getting their defaults.

Two kinds of failure, on purpose:

- ``worker.errors.DecodeError``: the payload is bad and always will be: no magic byte, too short, an
  id the registry does not know, a writer schema that is not an Avro record or cannot be resolved
  against ours, a truncated body. The stream dead-letters the record with its original bytes.
- ``RegistryError``: the registry could not be asked or answered something unusable. Retrying the
  same record later may well succeed, so it must NOT be dead-lettered: the error propagates out of
  the loop, the worker exits without committing, and its restart reads the record again from the
  last committed offset. ``RegistryUnavailable`` (connection refused, timeout, 5xx, 429) is the
  transient kind; the parent class covers answers no restart fixes by itself (401/403, a schema the
  registry refuses to register, a 404 that is not the registry's "schema not found", which means a
  wrong URL) and needs a person.

Messages name the schema id, subject, HTTP status and registry error code; never payload values,
and never the password (which only ever lives in one Authorization header value).
"""

from __future__ import annotations

import base64
import json
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from email.message import Message
from http.client import HTTPException
from typing import IO, Any

import structlog

from worker import __version__
from worker.codec.avro import AvroCodec, schema_json
from worker.errors import ConfigError, DecodeError

log = structlog.get_logger("worker.registry")

MAGIC_BYTE = 0
# Magic byte, then the schema id as a Java int (signed, big-endian).
_HEADER = struct.Struct(">bi")
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_ACCEPT = f"{CONTENT_TYPE}, application/vnd.schemaregistry+json; q=0.9, application/json; q=0.5"
# The registry's error code for "Schema not found" (a 404 for another reason is a wrong URL).
_SCHEMA_NOT_FOUND = 40403
# Per socket operation. A lookup happens once per schema id, inside the poll loop: 10 s is far
# below the group consumer's max poll interval (kafka_clients.MAX_POLL_INTERVAL_MS, 10 minutes)
# yet long enough for a registry behind a load balancer on a cold TLS connection.
DEFAULT_TIMEOUT_S = 10.0
# How long a "schema id not found" answer is believed, and how many such ids are remembered.
UNKNOWN_ID_TTL_S = 60.0
UNKNOWN_ID_CACHE_SIZE = 1024
# Registry messages are short; anything longer is a proxy's error page, which helps no one in a log.
_MESSAGE_LIMIT = 300


class RegistryError(Exception):
    """The registry answered, but not with anything usable (credentials, refused schema, wrong URL)."""


class RegistryUnavailable(RegistryError):
    """The registry could not be reached or failed (connection, timeout, 5xx): retry, do not dead-letter."""


class RegistryWire:
    """The worker's ``WireFormat`` for topics whose values are framed for the Confluent Schema Registry."""

    def __init__(self, url: str, *, clock: Callable[[], float] = time.monotonic, **client_options: Any) -> None:
        """`client_options`: `RegistryClient`'s (username, password, timeout, TLS files)."""
        self._client = RegistryClient(url, **client_options)
        self._codecs: dict[str, AvroCodec] = {}
        self._ids: dict[tuple[str, str], int] = {}
        # Per schema id: the writer schema (raw JSON form), or why records with that id cannot be
        # read. Ids are immutable in a registry, so an answer is good forever; a 404 is not kept,
        # as a lagging registry replica may know the id a moment later.
        self._writers: dict[int, dict[str, Any] | str] = {}
        # A 404 is remembered for a while (monotonic time of the answer), so a flood of records
        # with unknown ids costs one request per id per UNKNOWN_ID_TTL_S, not one per record.
        self._unknown: dict[int, float] = {}
        self._clock = clock

    def __repr__(self) -> str:
        return f"RegistryWire({self._client.url!r})"

    def encode(self, schema_name: str, record: Mapping[str, Any], topic: str) -> bytes:
        # Encode first: a record that does not fit raises EncodeError before anything is registered.
        body = self._codec(schema_name).encode(record)
        return _HEADER.pack(MAGIC_BYTE, self._schema_id(f"{topic}-value", schema_name)) + body

    def decode(self, schema_name: str, payload: bytes) -> dict[str, Any]:
        codec = self._codec(schema_name)
        if len(payload) < _HEADER.size:
            raise DecodeError(f"{schema_name}: {len(payload)} bytes is too short for a schema registry header")
        magic, schema_id = _HEADER.unpack_from(payload)
        if magic != MAGIC_BYTE:
            raise DecodeError(f"{schema_name}: no schema registry magic byte (not registry-framed Avro)")
        writer = self._writer(schema_name, schema_id)
        try:
            return codec.decode(payload[_HEADER.size :], writer_schema=writer)
        except DecodeError as error:
            raise DecodeError(f"{error} (writer schema id {schema_id})") from None

    def plain_body(self, schema_name: str, payload: bytes) -> bytes | None:
        """The body, when its writer schema is already known and is exactly ours; else None (the
        checked read then fetches, resolves or rejects it)."""
        if len(payload) < _HEADER.size:
            return None
        magic, schema_id = _HEADER.unpack_from(payload)
        writer = self._writers.get(schema_id) if magic == MAGIC_BYTE else None
        if not isinstance(writer, dict) or not self._codec(schema_name).is_own_schema(writer):
            return None
        return payload[_HEADER.size :]

    def _codec(self, schema_name: str) -> AvroCodec:
        codec = self._codecs.get(schema_name)
        if codec is None:
            codec = self._codecs[schema_name] = AvroCodec(schema_name)
        return codec

    def _schema_id(self, subject: str, schema_name: str) -> int:
        key = (subject, schema_name)
        schema_id = self._ids.get(key)
        if schema_id is None:
            schema_id = self._ids[key] = self._client.register(subject, registered_text(schema_name))
            log.info("registry_schema_registered", subject=subject, schema=schema_name, schema_id=schema_id)
        return schema_id

    def _writer(self, schema_name: str, schema_id: int) -> dict[str, Any]:
        writer = self._writers.get(schema_id)
        if writer is None:
            if schema_id < 0:
                raise DecodeError(f"{schema_name}: schema id {schema_id} is negative (not a registry id)")
            unknown_since = self._unknown.get(schema_id)
            if unknown_since is not None and self._clock() - unknown_since < UNKNOWN_ID_TTL_S:
                raise DecodeError(f"{schema_name}: schema id {schema_id} is unknown to the registry")
            answer = self._client.schema(schema_id)
            if answer is None:
                self._remember_unknown(schema_id)
                raise DecodeError(f"{schema_name}: schema id {schema_id} is unknown to the registry")
            self._unknown.pop(schema_id, None)
            writer = self._writers[schema_id] = _usable_writer(answer)
            log.info("registry_writer_schema_fetched", schema_id=schema_id, usable=isinstance(writer, dict))
        if isinstance(writer, str):
            raise DecodeError(f"{schema_name}: schema id {schema_id}: {writer}")
        return writer

    def _remember_unknown(self, schema_id: int) -> None:
        if len(self._unknown) >= UNKNOWN_ID_CACHE_SIZE:
            self._unknown.pop(next(iter(self._unknown)))  # the oldest answer
        self._unknown[schema_id] = self._clock()


def registered_text(schema_name: str) -> str:
    """The schema text registered for ``schema_name``: the .avsc the codec parses, as compact JSON.

    Not Avro's Parsing Canonical Form: that drops defaults (and docs), and the registry keeps the
    registered text both for its compatibility checks, which would then refuse any new version
    adding an optional field, and as the reader schema other consumers may fetch.
    """
    return json.dumps(json.loads(schema_json(schema_name)), separators=(",", ":"), ensure_ascii=False)


def _usable_writer(answer: Mapping[str, Any]) -> dict[str, Any] | str:
    """The writer schema of a ``GET /schemas/ids/{id}`` answer, or why it cannot be one."""
    schema_type = answer.get("schemaType") or "AVRO"  # the registry leaves it out for Avro
    if schema_type != "AVRO":
        return f"is a {schema_type} schema, not Avro"
    if answer.get("references"):
        return "uses schema references, which this worker does not resolve"
    text = answer.get("schema")
    if not isinstance(text, str):
        return "the registry's answer has no schema text"
    try:
        schema = json.loads(text)
    except ValueError:
        return "writer schema is not valid JSON"
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return "writer schema is not an Avro record"
    return schema


# --- the REST client ------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> urllib.request.Request | None:
        # urllib would resend the Authorization header to wherever the redirect points; a registry
        # has no reason to redirect, so the 3xx becomes an error instead.
        return None


class RegistryClient:
    """The two registry calls the wire format needs, over ``urllib`` (no client library at run time)."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        ssl_cafile: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
    ) -> None:
        self.url = _base_url(url)
        if (username is None) != (password is None):
            raise ConfigError("schema registry: give both the username and the password, or neither")
        self._authorization: str | None = None
        if username is not None and password is not None:
            token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
            self._authorization = f"Basic {token}"
        self._timeout = timeout
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if self.url.startswith("https://"):
            # The same settings as the Kafka connection's: a private CA, and a client certificate
            # for registries that require mutual TLS (SCHEMA_REGISTRY_SSL_*).
            from worker.codec.tls import REGISTRY_TLS_SETTINGS, client_context

            context = client_context(ssl_cafile, ssl_certfile, ssl_keyfile, names=REGISTRY_TLS_SETTINGS)
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:
        return f"RegistryClient({self.url!r})"

    def register(self, subject: str, schema_text: str) -> int:
        """``POST /subjects/{subject}/versions``: the id of the schema, registering it if it is new."""
        path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions"
        status, answer = self._request("POST", path, {"schema": schema_text, "schemaType": "AVRO"})
        if status != 200:
            raise _refusal(f"registering a schema under subject {subject!r}", status, answer)
        schema_id = answer.get("id")
        if type(schema_id) is not int:
            raise RegistryError(f"schema registry answered POST {path} without a schema id")
        return schema_id

    def schema(self, schema_id: int) -> dict[str, Any] | None:
        """``GET /schemas/ids/{id}``: the registry's answer, or None when it does not know the id."""
        status, answer = self._request("GET", f"/schemas/ids/{schema_id}")
        if status == 404 and answer.get("error_code") == _SCHEMA_NOT_FOUND:
            return None
        if status != 200:
            raise _refusal(f"fetching schema id {schema_id}", status, answer)
        return answer

    def _request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON object answered); raises RegistryUnavailable when there is no usable answer."""
        headers = {"Accept": _ACCEPT, "User-Agent": f"j7507-worker/{__version__}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = CONTENT_TYPE
        if self._authorization is not None:
            headers["Authorization"] = self._authorization
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, _read_quietly(error)
        except (OSError, HTTPException) as error:
            # URLError, refused, reset, timeout, TLS, a dropped connection. Only the error's type and
            # reason: `from None` keeps the traceback to this message.
            reason = error.reason if isinstance(error, urllib.error.URLError) else error
            raise RegistryUnavailable(
                f"schema registry {self.url} unreachable ({method} {path}): {type(reason).__name__}: {reason}"
            ) from None
        if status >= 500 or status in (408, 429):
            raise RegistryUnavailable(f"schema registry {self.url} failed {method} {path}: HTTP {status}")
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            if status == 200:
                raise RegistryError(f"schema registry {self.url} answered {method} {path} with a non-JSON body")
            answer = {}  # an error page from something in front of the registry: the status says enough
        return status, answer


def _read_quietly(error: urllib.error.HTTPError) -> bytes:
    try:
        return error.read()
    except (OSError, HTTPException):
        return b""
    finally:
        error.close()


def _refusal(action: str, status: int, answer: Mapping[str, Any]) -> RegistryError:
    if status in (401, 403):
        return RegistryError(f"schema registry refused the credentials {action} (HTTP {status})")
    detail = f"HTTP {status}"
    if "error_code" in answer:
        detail += f", error code {answer['error_code']}"
    message = str(answer.get("message") or "")
    if message:
        detail += f": {message[:_MESSAGE_LIMIT]}"
    return RegistryError(f"schema registry refused {action} ({detail})")


def _base_url(url: str) -> str:
    """The URL requests are made under, without a trailing slash; credentials belong elsewhere."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None or parts.password is not None:
        # Not echoed: it holds a password. In the URL it would also reach every log line and error.
        raise ConfigError(
            "schema registry URL: put credentials in SCHEMA_REGISTRY_USERNAME/SCHEMA_REGISTRY_PASSWORD, not the URL"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"schema registry URL: expected http(s)://host[:port][/path], got {url!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"schema registry URL: no query or fragment expected, got {url!r}")
    return url.rstrip("/")
