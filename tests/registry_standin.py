"""A stand-in for the Confluent Schema Registry: the REST subset the worker and the Confluent
serializers use, in memory, served on loopback by a thread.

- ``POST /subjects/{subject}/versions``: ``{"id": N}``; the same schema gets the same id again
  (under any subject, like the real registry's global ids); 422 (42201) for a schema that does not
  parse as Avro.
- ``GET /schemas/ids/{id}``: ``{"schema": "..."}``; 404 with error code 40403 for an unknown id.
- Basic auth when credentials are given: 401 (error code 401) without the right header.

Query strings (``?normalize=false``, ``?subject=...``) are accepted and ignored. Every request is
recorded so tests can count round trips and look at headers; ``fail_with`` makes every request
answer that status, as a registry in trouble would.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

import fastavro

_VERSIONS = re.compile(r"/subjects/(?P<subject>[^/]+)/versions")
_SCHEMA_BY_ID = re.compile(r"/schemas/ids/(?P<id>-?\d+)")


@dataclass(frozen=True)
class Seen:
    """One request as the stand-in received it."""

    method: str
    path: str  # without the query string
    headers: dict[str, str]
    body: Any  # the JSON body, or None


class RegistryStandIn:
    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.credentials = credentials
        self.requests: list[Seen] = []
        # Every request answers this status (with a registry-style body) when set.
        self.fail_with: int | None = None
        self._texts: dict[int, str] = {}
        self._parsed: dict[int, Any] = {}
        self._versions: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._server = HTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._serve, name="registry-standin", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> RegistryStandIn:
        self._thread.start()
        return self

    def _serve(self) -> None:
        # A short poll interval: shutdown() waits for the next poll, which would be 0.5 s per test.
        self._server.serve_forever(poll_interval=0.05)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> RegistryStandIn:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # --- state, also for tests to set up directly -------------------------------------------------

    def register(self, subject: str, schema_text: str) -> int:
        """The id of ``schema_text``, adding it (and a version of ``subject``) when it is new."""
        parsed = json.loads(schema_text)
        with self._lock:
            # The real registry compares a normalized form; comparing the parsed JSON ignores
            # whitespace and key order, which is what differs between serializers' texts.
            schema_id = next((known for known, value in self._parsed.items() if value == parsed), None)
            if schema_id is None:
                schema_id = len(self._texts) + 1
                self._texts[schema_id] = schema_text
                self._parsed[schema_id] = parsed
            versions = self._versions.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id

    def schema_text(self, schema_id: int) -> str | None:
        with self._lock:
            return self._texts.get(schema_id)

    def subjects(self) -> dict[str, list[int]]:
        with self._lock:
            return {subject: list(ids) for subject, ids in self._versions.items()}

    def count(self, method: str, path: str) -> int:
        return sum(1 for seen in self.requests if seen.method == method and seen.path == path)

    # --- HTTP -------------------------------------------------------------------------------------

    def answer(self, seen: Seen) -> tuple[int, dict[str, Any]]:
        self.requests.append(seen)
        if self.fail_with is not None:
            return self.fail_with, {"error_code": self.fail_with * 100 + 1, "message": "stand-in told to fail"}
        if self.credentials is not None:
            user, password = self.credentials
            expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if seen.headers.get("authorization") != expected:
                return 401, {"error_code": 401, "message": "Unauthorized"}
        versions = _VERSIONS.fullmatch(seen.path)
        if seen.method == "POST" and versions:
            return self._post_version(unquote(versions["subject"]), seen.body)
        by_id = _SCHEMA_BY_ID.fullmatch(seen.path)
        if seen.method == "GET" and by_id:
            text = self.schema_text(int(by_id["id"]))
            if text is None:
                return 404, {"error_code": 40403, "message": "Schema not found"}
            return 200, {"schema": text}
        return 404, {"error_code": 404, "message": "HTTP 404 Not Found"}

    def _post_version(self, subject: str, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
            return 422, {"error_code": 42201, "message": "Invalid schema"}
        if body.get("schemaType", "AVRO") != "AVRO":
            return 422, {"error_code": 42201, "message": "Only AVRO in the stand-in"}
        try:
            fastavro.parse_schema(json.loads(body["schema"]))
        except Exception:
            return 422, {"error_code": 42201, "message": "Invalid schema"}
        return 200, {"id": self.register(subject, body["schema"])}


def _handler_for(standin: RegistryStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, answer = standin.answer(Seen(method, urlsplit(self.path).path, headers, body))
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler
