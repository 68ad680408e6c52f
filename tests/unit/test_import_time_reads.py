"""Tests and benchmarks decide nothing at import: no clock read, free port or temp path taken at collection.

A value read once at import is stale by the time its test runs, later on a loaded machine: a token "signed
6 minutes ahead" of a clock read at collection is rightly allowed a minute later. This reads every module
of tests/ and bench/ and names any such call evaluated at import (module level, class bodies, decorators,
default arguments, parametrize tables), so the next one fails here rather than on a busy CI runner.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.project_files import REPO

# Calls whose value depends on the moment or the machine's state when they run.
DECIDED_WHEN_CALLED = {
    "now",
    "utcnow",
    "today",
    "time",
    "time_ns",
    "monotonic",
    "perf_counter",
    "utc_now",
    "ManualClock",
    "free_port",
    "refusing_port",
    "mkdtemp",
    "mkstemp",
    "gettempdir",
    "NamedTemporaryFile",
    "TemporaryDirectory",
}
MODULES = sorted([*(REPO / "tests").rglob("*.py"), *(REPO / "bench").rglob("*.py")])


def called_name(call: ast.Call) -> str | None:
    function = call.func
    if isinstance(function, ast.Attribute):
        return function.attr
    if isinstance(function, ast.Name):
        return function.id
    return None


def runs_as_script_only(node: ast.AST) -> bool:
    """`if __name__ == "__main__":`, the body a script runs when started, never when imported."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    return (
        isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Eq)
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def evaluated_at_import(node: ast.AST) -> Iterator[ast.AST]:
    """Every node Python evaluates when the module is imported: not the bodies of functions and lambdas,
    but their decorators and default values; not a script's `if __name__ == "__main__":` block."""
    if runs_as_script_only(node):
        return
    yield node
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        children: list[ast.AST] = [*node.decorator_list, *node.args.defaults]
        children += [default for default in node.args.kw_defaults if default is not None]
    elif isinstance(node, ast.Lambda):
        children = [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
    else:
        children = list(ast.iter_child_nodes(node))
    for child in children:
        yield from evaluated_at_import(child)


def import_time_calls(source: str) -> list[tuple[int, str]]:
    return [
        (node.lineno, name)
        for node in evaluated_at_import(ast.parse(source))
        if isinstance(node, ast.Call) and (name := called_name(node)) in DECIDED_WHEN_CALLED
    ]


@pytest.mark.parametrize("module", MODULES, ids=lambda path: str(path.relative_to(REPO)))
def test_module_decides_nothing_at_import(module: Path) -> None:
    assert import_time_calls(module.read_text()) == []


@pytest.mark.parametrize(
    "source",
    [
        "NOW = datetime.now(UTC)",
        "ROWS = [row(at=dt.datetime.now(UTC) - timedelta(minutes=16))]",
        "@pytest.mark.parametrize('port', [free_port()])\ndef test(port): pass",
        "def sign(at=time.time()): pass",
        "class Rows:\n    STARTED = time.monotonic()",
        "CASES = {name: mkdtemp() for name in NAMES}",
        "CLOCK = ManualClock()",
        "if __name__ != '__main__':\n    STARTED = time.monotonic()",
        "if DEBUG:\n    STARTED = time.monotonic()",
    ],
)
def test_the_check_sees_each_kind_of_import_time_read(source: str) -> None:
    assert import_time_calls(source) != []


def test_the_check_leaves_reads_at_call_time_alone() -> None:
    source = (
        "def now():\n    return datetime.now(UTC)\n"
        "ROW = denied(request=lambda r: with_header(r, 'X-Amz-Date', datetime.now(UTC).isoformat()))\n"
        "FACTORY = field(default_factory=time.perf_counter)\n"
        "LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)\n"
        "if __name__ == '__main__':\n    main(time.perf_counter())\n"
    )
    assert import_time_calls(source) == []
