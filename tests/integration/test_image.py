"""The container image, built by scripts/build-image.sh and run with podman against the broker.

The build makes (once, then cached) a minimal Debian root filesystem with mmdebstrap, imports it
as the base and builds deploy/Dockerfile on it with no network. The container runs with host
networking (the broker listens on 127.0.0.1), a read-only root filesystem and the image's own
non-root user, as the Helm chart runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from worker.devkit.embedded import free_loopback_port

from .outputs import OutputCollector
from .producing import EventProducer
from .stream_setup import REPO_ROOT, StreamSetup
from .workloads import EventClock, load_example_bundles
from .workloads import personalise as personalised

pytestmark = pytest.mark.slow

# The same flags as scripts/lib.sh's podman_flags: runc copes with hybrid cgroups, and explicit
# ulimits need no CAP_SYS_RESOURCE.
ULIMITS = ("--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096")
# Guards, not expectations: the first build downloads Debian packages.
BUILD_PATIENCE_S = 900
READY_PATIENCE_S = 120


def podman_flags() -> list[str]:
    return [*(("--runtime", "runc") if shutil.which("runc") else ()), *ULIMITS]


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("podman") is None:
        pytest.skip("podman not installed (scripts/test.sh installs it with apt)")
    built = subprocess.run(
        ["bash", "scripts/build-image.sh"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_PATIENCE_S,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    tag = built.stdout.strip().splitlines()[-1]
    assert tag.startswith("j7507-worker:")
    return tag


@pytest.fixture
def container_name() -> Iterator[str]:
    name = f"j7507-test-{uuid.uuid4().hex[:10]}"
    yield name
    subprocess.run(["podman", "rm", "--force", "--time", "0", name], capture_output=True, check=False)


def podman(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def test_image_runs_non_root_read_only_decides_and_stops_on_sigterm(
    image: str, stream: StreamSetup, events: EventProducer, container_name: str
) -> None:
    [(_, bundle), *_] = load_example_bundles()
    events.send_bundles([personalised(bundle, "PT-IMAGE-0001", EventClock(), claim_id="CLM-IMAGE-1")])
    port = free_loopback_port()
    env = stream.env(METRICS_PORT=str(port), METRICS_HOST="127.0.0.1")
    started = podman(
        "run",
        "--detach",
        "--name",
        container_name,
        *podman_flags(),
        "--network",
        "host",
        "--read-only",
        *(item for key, value in env.items() for item in ("--env", f"{key}={value}")),
        image,
    )
    assert started.returncode == 0, started.stderr

    # The image runs this checkout's code (the build caches nothing that could be stale).
    in_image = podman("exec", "--env", "COLUMNS=200", container_name, "j7507-worker", "--help").stdout
    on_host = subprocess.run(
        [sys.executable, "-m", "worker", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        cwd=REPO_ROOT,
        check=True,
    ).stdout
    assert in_image == on_host
    assert podman("exec", container_name, "id", "-u").stdout.strip() == "10001"
    writable = podman("exec", container_name, "sh", "-c", "touch /opt/probe")
    assert writable.returncode != 0
    assert "Read-only file system" in writable.stderr

    deadline = time.monotonic() + READY_PATIENCE_S
    while _status(f"http://127.0.0.1:{port}/readyz") != 200:
        running = podman("inspect", "--format", "{{.State.Running}}", container_name).stdout.strip()
        assert running == "true", podman("logs", container_name).stderr[-3000:]
        assert time.monotonic() < deadline, "/readyz never answered 200"
        time.sleep(0.5)

    with OutputCollector(stream) as outputs:
        outputs.wait_for(decisions=1)
        assert outputs.decisions[0].value["claim_id"] == "CLM-IMAGE-1"

    # `podman stop --time 10` sends the image's STOPSIGNAL (SIGTERM) and SIGKILLs after 10 s: exit
    # status 0 means the worker stopped by itself, within those 10 s.
    stopped = podman("stop", "--time", "10", container_name, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert podman("inspect", "--format", "{{.State.ExitCode}}", container_name).stdout.strip() == "0"
    logs = podman("logs", container_name)
    assert '"event": "claim_decided"' in logs.stdout + logs.stderr
    assert "PT-IMAGE-0001" not in logs.stdout + logs.stderr
