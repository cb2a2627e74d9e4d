"""The Dockerfile, read as text: no Docker engine is needed (nor available) to check its shape."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import tomllib
from dataclasses import dataclass, field

from .paths import DOCKERFILE, DOCKERIGNORE, REPO_ROOT

DEV_TOOLS = re.compile(r"\b(apt-get|apk|gcc|g\+\+|build-essential|make|git|curl|wget|pytest|ruff|mypy)\b")


@dataclass
class Stage:
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [arguments for instruction, arguments in self.instructions if instruction == keyword]


def _stages() -> list[Stage]:
    text = DOCKERFILE.read_text(encoding="utf-8")
    # Join continuation lines and drop comments, as the Docker parser does.
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    logical = re.sub(r"\\\n", " ", "\n".join(lines))
    stages: list[Stage] = []
    for line in logical.splitlines():
        if not line.strip():
            continue
        keyword, _, arguments = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            stages.append(Stage(base=arguments.split()[0]))
        elif stages:
            stages[-1].instructions.append((keyword.upper(), arguments.strip()))
    return stages


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!").rstrip("/")
        if any(fnmatch.fnmatchcase(candidate, glob) for candidate in candidates):
            ignored = not negated
    return ignored


def test_hadolint_is_clean(hadolint: str) -> None:
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_on_one_slim_python_311_base() -> None:
    stages = _stages()
    assert len(stages) >= 2
    assert {stage.base for stage in stages} == {"${PYTHON_IMAGE}"}
    default_base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(encoding="utf-8"), re.MULTILINE)
    assert default_base is not None
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", default_base.group(1))


def test_final_stage_runs_the_console_script_as_a_numeric_non_root_user() -> None:
    final = _stages()[-1]
    [user] = final.arguments("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0
    assert not gid or gid.isdigit()
    # Exec form, so the worker itself receives SIGTERM (no shell in between).
    assert [json.loads(arguments) for arguments in final.arguments("ENTRYPOINT")] == [["j7507-worker"]]
    assert [json.loads(arguments) for arguments in final.arguments("CMD")] == [["run"]]
    assert final.arguments("EXPOSE") == ["9400"]
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "j7507-worker" in pyproject["project"]["scripts"]


def test_final_stage_installs_wheels_only_and_no_dev_tools() -> None:
    final = _stages()[-1]
    assert final.arguments("COPY") == [], "the final stage takes wheels from the build stage only"
    for command in final.arguments("RUN"):
        assert DEV_TOOLS.search(command) is None, command
    assert any("uninstall" in command and "pip" in command for command in final.arguments("RUN"))


def test_build_context_carries_what_the_build_stage_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        source
        for arguments in _stages()[0].arguments("COPY")
        for source in arguments.split()[:-1]
        if not source.startswith("--")
    ]
    # The build stage copies only the wheels scripts/build-image.sh builds on the host (dist/ is
    # git-ignored, so they do not exist in a clean clone); the image test builds them for real.
    assert sources == ["dist/wheels/"]
    assert "--wheel-dir dist/wheels" in (REPO_ROOT / "scripts" / "build-image.sh").read_text(encoding="utf-8")
    for source in sources:
        assert not _ignored(source.rstrip("/"), patterns), f"{source} is excluded from the build context"
        assert not _ignored(source + "j7507_worker-0.1.0-py3-none-any.whl", patterns)
    # And the clutter stays out.
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/deploy/test_dockerfile.py",
        "worker/__init__.py",
        "dist/x.tar.gz",
    ):
        assert _ignored(path, patterns), path
