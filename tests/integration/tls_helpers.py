"""A test PKI made with openssl, stunnel as a TLS terminator, and a Tansu broker behind it.

Tansu advertises one listener URL in its metadata; behind stunnel that must be stunnel's port, so
clients reconnect through TLS after bootstrapping. The session's embedded broker advertises its
own plaintext port, hence a broker of its own here.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from worker.devkit.embedded import LOOPBACK, MEMORY_STORAGE, free_loopback_port, resolve_binary

START_PATIENCE_S = 30.0


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path  # a CA that signed nothing the servers use
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def make_pki(directory: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, both signed by it."""
    if shutil.which("openssl") is None:
        import pytest

        pytest.skip("openssl not installed")
    directory.mkdir(parents=True, exist_ok=True)

    def ca(name: str) -> tuple[Path, Path]:
        cert, key = directory / f"{name}.pem", directory / f"{name}.key"
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
                 "-keyout", key, "-out", cert)  # fmt: skip
        return cert, key

    def leaf(name: str, ca_cert: Path, ca_key: Path, extensions: str) -> tuple[Path, Path]:
        cert, key, csr, ext = (directory / f"{name}{suffix}" for suffix in (".pem", ".key", ".csr", ".ext"))
        ext.write_text(extensions, encoding="utf-8")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", key, "-out", csr)
        _openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
                 "-extfile", ext, "-out", cert)  # fmt: skip
        return cert, key

    ca_cert, ca_key = ca("test-ca")
    other_ca, _ = ca("other-ca")
    server_cert, server_key = leaf(
        "server", ca_cert, ca_key, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
    )
    client_cert, client_key = leaf("client", ca_cert, ca_key, "extendedKeyUsage=clientAuth\n")
    return Pki(ca_cert, other_ca, server_cert, server_key, client_cert, client_key)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_PATIENCE_S
    while True:
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.5):
            return
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}: {log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {port} never accepted connections: {log.read_text()[-2000:]}")
        time.sleep(0.05)


class _Child:
    def __init__(self, command: list[str], log: Path, port: int) -> None:
        self.log = log
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
        _wait_for_port(port, self.process, log)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def stunnel_binary() -> str | None:
    return shutil.which("stunnel4") or shutil.which("stunnel")


class Stunnel:
    """stunnel in the foreground: TLS on `accept_port`, plaintext to `connect_port`."""

    def __init__(
        self, directory: Path, pki: Pki, connect_port: int, *, accept_port: int | None = None, mutual: bool = False
    ) -> None:
        binary = stunnel_binary()
        assert binary is not None
        self.port = accept_port or free_loopback_port()
        config = directory / f"stunnel-{self.port}.conf"
        lines = [
            "foreground = yes",
            "pid =",
            "debug = notice",
            "[tls]",
            f"accept = {LOOPBACK}:{self.port}",
            f"connect = {LOOPBACK}:{connect_port}",
            f"cert = {pki.server_cert}",
            f"key = {pki.server_key}",
        ]
        if mutual:
            lines += [f"CAfile = {pki.ca}", "verifyChain = yes"]
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._child = _Child([binary, str(config)], directory / f"stunnel-{self.port}.log", self.port)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._child.stop()


class TlsBroker:
    """Tansu (memory storage) on a loopback port, advertising the port of the stunnel in front of it."""

    def __init__(self, directory: Path, pki: Pki) -> None:
        self.pki = pki
        self.directory = directory
        self.broker_port = free_loopback_port()
        self.tls_port = free_loopback_port()
        self._broker: _Child | None = None
        self._stunnel: Stunnel | None = None

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.tls_port}"

    def client_options(self, cafile: Path | None = None) -> dict[str, Any]:
        return {"security_protocol": "SSL", "ssl_cafile": str(cafile or self.pki.ca)}

    def __enter__(self) -> Self:
        command = [
            resolve_binary(),
            "broker",
            "--listener-url",
            f"tcp://{LOOPBACK}:{self.broker_port}",
            "--advertised-listener-url",
            f"tcp://{LOOPBACK}:{self.tls_port}",
            "--storage-engine",
            MEMORY_STORAGE,
        ]
        self._broker = _Child(command, self.directory / "tansu.log", self.broker_port)
        self._stunnel = Stunnel(self.directory, self.pki, self.broker_port, accept_port=self.tls_port)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._stunnel is not None:
            self._stunnel.__exit__()
        if self._broker is not None:
            self._broker.stop()
