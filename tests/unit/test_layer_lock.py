"""The layer ships exactly what pyproject.toml asks for, pinned and hash-checked (`make lock` writes it).

`sam build` installs CoreLayer from layers/core/requirements.txt: every line must be an exact pin with its
hashes (pip then checks each file it downloads), and the lock must answer pyproject.toml's runtime
dependencies, no more and no less; otherwise `make lock` has not been run since pyproject.toml changed.
"""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from support.project_files import REPO

LOCK = REPO / "layers" / "core" / "requirements.txt"
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s\\;]+)")
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def _locked() -> dict[str, tuple[str, list[str], list[str]]]:
    """name -> (version, hashes, what it is required by), from uv's output format."""
    locked: dict[str, tuple[str, list[str], list[str]]] = {}
    current = ""
    for line in LOCK.read_text().splitlines():
        if pin := _PIN.match(line):
            current = canonicalize_name(pin["name"])
            locked[current] = (pin["version"], [], [])
        elif current and (hashes := _HASH.findall(line)):
            locked[current][1].extend(hashes)
        elif current and (via := re.match(r"^\s+#\s+(?:via\s+)?(?P<who>\S.*)$", line)):
            locked[current][2].append(via["who"].strip())
        elif line.strip() and not line.lstrip().startswith("#"):
            raise AssertionError(f"not a pinned requirement with hashes: {line!r}")
    return locked


def _runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def test_every_locked_package_is_pinned_with_hashes() -> None:
    locked = _locked()
    assert locked
    for name, (version, hashes, _) in locked.items():
        assert version, name
        assert hashes, f"{name}=={version} has no --hash: pip would not check what it downloads"
    assert "make lock" in LOCK.read_text().splitlines()[1]


def test_the_lock_answers_pyproject_runtime_dependencies_exactly() -> None:
    # Given pyproject.toml's runtime dependencies and the lock
    wanted = {canonicalize_name(requirement.name): requirement for requirement in _runtime_requirements()}
    locked = _locked()
    direct = {name for name, (_, _, via) in locked.items() if "kuma-iam (pyproject.toml)" in via}

    # Then the lock was resolved from exactly those (uv notes each "via kuma-iam (pyproject.toml)"), and
    # each pinned version satisfies pyproject's specifier
    assert direct == set(wanted), f"run `make lock`: lock has {sorted(direct)}, pyproject {sorted(wanted)}"
    for name, requirement in wanted.items():
        version = locked[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (name, version, str(requirement))
    # And nothing in it is there for no one
    for name, (_, _, via) in locked.items():
        assert via, f"{name} is locked but required by nothing"
