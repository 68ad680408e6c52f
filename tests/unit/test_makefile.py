"""`make help` lists every target of the Makefile, with what it does (a target added later must say too)."""

from __future__ import annotations

import re
import subprocess

from support.project_files import REPO

_RULE = re.compile(r"^([a-z][a-z0-9-]*)\s*:(?!=)", re.MULTILINE)


def _targets() -> set[str]:
    return set(_RULE.findall((REPO / "Makefile").read_text()))


def test_make_help_lists_every_target_with_a_description() -> None:
    # Given the Makefile's targets
    targets = _targets()
    assert {"install", "run", "test", "test-load", "bench", "clean", "sam-local-invoke"} <= targets

    # When a user asks for help
    done = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, timeout=60)

    # Then each target has its line and a few words
    assert done.returncode == 0, done.stderr
    described = dict(re.findall(r"^  (\S+) +(\S.*)$", done.stdout, re.MULTILINE))
    assert targets <= set(described), f"not in make help: {sorted(targets - set(described))}"
    assert all(len(text.split()) >= 2 for text in described.values()), described


def test_help_is_the_default_goal() -> None:
    done = subprocess.run(["make", "-s"], cwd=REPO, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("kuma-iam: make <target>\n")
