"""Workers under test: the loop on a thread (`InProcessWorker`) or the `run` command (`WorkerProcess`).

Every timeout here is a guard against a hung test, never a performance expectation.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from worker.app import App, build_app
from worker.config import Settings

from .stream_setup import _WORKER_ENV_NAMES, _WORKER_ENV_PREFIXES, EXIT_PATIENCE_S, REPO_ROOT, StreamSetup

# --- workers ------------------------------------------------------------------------------------


class InProcessWorker:
    """The worker loop on a background thread; every Kafka client lives on that thread only."""

    def __init__(self, settings: Settings) -> None:
        self.app: App = build_app(settings, metrics_host="127.0.0.1", configure_logs=False)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stream-worker", daemon=True)

    def _run(self) -> None:
        try:
            self.app.worker.run()
        except BaseException as error:
            self.error = error

    def __enter__(self) -> InProcessWorker:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop(raise_error=exc_info[0] is None)

    def stop(self, *, raise_error: bool = True) -> None:
        """Ask the loop to stop (as SIGTERM does), wait for it, and re-raise what it failed with."""
        self.app.worker.request_stop()
        self._thread.join(EXIT_PATIENCE_S)
        self.app.close()
        if raise_error and self._thread.is_alive():
            raise AssertionError(f"the worker did not stop within {EXIT_PATIENCE_S:g}s")
        if raise_error and self.error is not None:
            raise self.error


# write(2) on x86-64 and arm64 Linux; other platforms skip the test that needs it.
WRITE_SYSCALL = {"x86_64": 1, "aarch64": 64}.get(os.uname().machine, -1)


class WorkerProcess:
    """The worker's `run` command as a child process, its JSON log lines captured to a file.

    With `gated_logs`, stdout is a pipe that a thread copies to the file only while the gate is
    open: closing it lets the pipe fill up, so the worker blocks in the middle of writing a log line
    (the way a slow log shipper blocks a container's stdout).
    """

    def __init__(
        self, setup: StreamSetup, log_dir: Path, name: str, *args: str, gated_logs: bool = False, **env: str
    ) -> None:
        self.name = name
        self.args = args
        self.gate: threading.Event | None = threading.Event() if gated_logs else None
        self._pump: threading.Thread | None = None
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(_WORKER_ENV_PREFIXES) and key not in _WORKER_ENV_NAMES
        }
        # Unbuffered: the log is read while the worker runs, and survives a SIGKILL.
        self.env = {
            **inherited,
            **setup.env(**env),
            "PYTHONUNBUFFERED": "1",
            "PYTHONFAULTHANDLER": "1",
            "LOG_LEVEL": "INFO",
            "METRICS_HOST": "127.0.0.1",  # tests serve on loopback only
        }
        self.stdout_path = log_dir / f"{name}.stdout.log"
        self.stderr_path = log_dir / f"{name}.stderr.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with self.stdout_path.open("ab") as stdout, self.stderr_path.open("ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "worker", "run", *self.args],
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=stdout if self.gate is None else subprocess.PIPE,
                stderr=stderr,
            )
        if self.gate is not None:
            self.gate.set()
            self._pump = threading.Thread(target=self._copy_logs, name=f"{self.name}-logs", daemon=True)
            self._pump.start()
        return self

    def _copy_logs(self) -> None:
        assert self.process is not None and self.process.stdout is not None and self.gate is not None
        source = self.process.stdout.fileno()
        with self.stdout_path.open("ab") as sink:
            while True:
                self.gate.wait()
                chunk = os.read(source, 65536)
                if not chunk:
                    return
                sink.write(chunk)
                sink.flush()

    def hold_logs(self) -> None:
        """Stop reading the worker's stdout (the pump finishes the read it is in)."""
        assert self.gate is not None
        self.gate.clear()

    def release_logs(self) -> None:
        assert self.gate is not None
        self.gate.set()

    def blocked_writing_logs(self) -> bool:
        """Is the worker's main thread inside a write(2) to stdout? (Linux: /proc/PID/syscall.)"""
        fields = Path(f"/proc/{self.pid}/syscall").read_text().split()
        return fields[:2] == [str(WRITE_SYSCALL), "0x1"]

    def __enter__(self) -> WorkerProcess:
        return self.start() if self.process is None else self

    def __exit__(self, *exc_info: object) -> None:
        if self.gate is not None:
            self.gate.set()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self._pump is not None:
            self._pump.join(EXIT_PATIENCE_S)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def send_signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = EXIT_PATIENCE_S) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            # SIGABRT makes faulthandler print every thread's stack: why it hangs, in the failure.
            self.process.send_signal(signal.SIGABRT)
            self.process.wait(EXIT_PATIENCE_S)
            raise AssertionError(f"worker {self.name} did not exit within {timeout:g}s\n{self.tail()}") from None

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 10) -> str:
        """The last log lines and stderr, for failure messages (claim and event ids only)."""
        text = self.stdout_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        return "\n".join([*text, self.stderr()[-6000:]])

    def events(self) -> Iterator[dict[str, Any]]:
        """The JSON log events written so far (a line cut short by a kill is skipped)."""
        for line in self.stdout_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                yield event

    def wait_for_event(self, condition: Callable[[dict[str, Any]], bool], what: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events():
                if condition(event):
                    return event
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"worker {self.name} exited ({self.process.returncode}) before {what}\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {self.name}: no {what} within {timeout:g}s\n{self.tail()}")
            time.sleep(0.1)

    def owned_partitions(self) -> set[int]:
        """Claims partitions held after the last rebalance, from the worker's rebalance log lines."""
        owned: set[int] = set()
        for event in self.events():
            if event.get("event") != "rebalance":
                continue
            if event.get("event_type") == "assigned":
                owned = set(event.get("partitions", []))
            else:
                owned -= set(event.get("partitions", []))
        return owned

    def decided_partitions(self) -> set[int]:
        return {event["partition"] for event in self.events() if event.get("event") == "claim_decided"}
