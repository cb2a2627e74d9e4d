"""The layers' import contracts ([tool.importlinter] in pyproject.toml) hold and cover the whole package."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = REPO_ROOT / "worker"


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _top_level_modules() -> set[str]:
    names = {f"worker.{path.stem}" for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    names |= {f"worker.{path.parent.name}" for path in PACKAGE.glob("*/__init__.py")}
    return names


def test_lint_imports_keeps_every_contract() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(_contracts())} kept, 0 broken." in result.stdout


def test_devkit_contract_names_every_other_top_level_module() -> None:
    (devkit,) = [c for c in _contracts() if c["forbidden_modules"] == ["worker.devkit"]]
    assert set(devkit["source_modules"]) == _top_level_modules() - {"worker.devkit"}  # type: ignore[arg-type]


def test_the_ignored_devkit_imports_are_lazy() -> None:
    """The contract ignores the demo command's import of the devkit: it must stay inside a function."""
    for path in PACKAGE.rglob("*.py"):
        if PACKAGE / "devkit" in path.parents:  # the devkit and its subpackages import each other freely
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module-level statements only
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("worker.devkit"), f"{path.name} imports {node.module} at load"
            if isinstance(node, ast.Import):
                assert all(not a.name.startswith("worker.devkit") for a in node.names), path.name
