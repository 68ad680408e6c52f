"""The Lambda layer's package stands alone: nothing in kuma_iam reaches for the command line or the local
stack (moto, the gateway), which are installed beside it but never shipped to Lambda."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from support.project_files import REPO

CORE = REPO / "layers" / "core" / "kuma_iam"
NOT_IN_LAMBDA = ("kuma_iam_cli", "moto", "werkzeug", "flask")


def _imported_modules(source: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("source", sorted(CORE.rglob("*.py")), ids=lambda path: str(path.relative_to(CORE)))
def test_core_module_imports_nothing_lambda_does_not_ship(source: Path) -> None:
    # Given a module of the layer's package
    # When we read what it imports
    imported = _imported_modules(source)
    # Then none of it is the tooling that stays out of the layer
    leaks = sorted(m for m in imported if m.split(".")[0] in NOT_IN_LAMBDA)
    assert not leaks, f"{source.name} imports {leaks}"


def test_core_holds_no_local_stack() -> None:
    assert not (CORE / "local").exists()
    assert not (CORE / "cli.py").exists()
