"""Where a local stack keeps what its printed commands need, and how other commands find a running one.

Each `kuma-iam serve` owns one folder, `<state root>/<embedded AWS port>/` (by default `.local/5000/`):
the world file and the token issuer's keys beside it, the credential files its commands read, the
functions' JSON log, and `stack.json` while it runs. The port names the folder because it cannot be
shared: a second stack on the same port is refused before it starts, and one on another port writes
elsewhere, so no stack ever rewrites another's files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import kuma_iam_cli

DEFAULT_STATE_ROOT = Path(".local")
DEFAULT_MOTO_PORT = 5000
TOKENS_FILE = "tokens.json"  # beside the world file: `events` and sam-env.sh look for it there


@dataclass(frozen=True)
class RunningStack:
    """What `stack.json` says of a stack that runs: its process, where to call it, where its state is."""

    pid: int
    verify_url: str
    endpoint_url: str
    state_dir: str

    @property
    def credentials_dir(self) -> Path:
        return Path(self.state_dir) / "credentials"


@dataclass(frozen=True)
class StackState:
    """One stack's folder; every path in it is absolute, so printed commands work from any directory."""

    folder: Path

    @classmethod
    def for_port(cls, root: Path, moto_port: int) -> StackState:
        return cls((root / str(moto_port)).absolute())

    @property
    def world_file(self) -> Path:
        return self.folder / "world.json"

    @property
    def tokens_file(self) -> Path:
        """The token issuer's keys, table and principal (local/token_keys.py)."""
        return self.folder / TOKENS_FILE

    @property
    def credentials_dir(self) -> Path:
        return self.folder / "credentials"

    @property
    def lambda_log(self) -> Path:
        """The function's own output (JSON logs, EMF metrics, warnings), as Lambda sends it to CloudWatch."""
        return self.folder / "lambda.log"

    @property
    def stack_file(self) -> Path:
        return self.folder / "stack.json"

    def prepare(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def write_credentials(self, name: str, environment: Mapping[str, str]) -> Path:
        """Credentials for the printed commands live in files (mode 600), not in the terminal's scrollback."""
        self.credentials_dir.mkdir(parents=True, exist_ok=True)
        path = self.credentials_dir / f"{name}.env"
        return self.write_private(path, "".join(f"{key}={value}\n" for key, value in environment.items()))

    def write_private(self, path: Path, text: str) -> Path:
        """A file only its owner reads (mode 600): the world and the issuer's keys hold secret keys too."""
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(text)
        return path

    def announce(self, stack: RunningStack) -> None:
        self.stack_file.write_text(json.dumps(asdict(stack), indent=2) + "\n")

    def withdraw(self) -> None:
        self.stack_file.unlink(missing_ok=True)


def running_stacks(roots: Iterable[Path] | None = None) -> list[RunningStack]:
    """Stacks whose process still runs, found under `roots` (default: ./.local and the repository's)."""
    found: dict[str, RunningStack] = {}
    for root in roots if roots is not None else state_roots():
        for stack_file in sorted(root.glob("*/stack.json")):
            stack = _read_stack(stack_file)
            if stack is not None and _alive(stack.pid):
                found.setdefault(stack.state_dir, stack)
    return list(found.values())


def state_roots() -> list[Path]:
    """Where stacks are looked for: the current directory's `.local`, and the one of the repository this
    command is installed from, so a command run anywhere finds them."""
    roots = [DEFAULT_STATE_ROOT.absolute()]
    repository = installed_from()
    if repository is not None and (repository / DEFAULT_STATE_ROOT) not in roots:
        roots.append(repository / DEFAULT_STATE_ROOT)
    return roots


def installed_from() -> Path | None:
    """The repository this package runs from (`make install` installs it editable), if it does."""
    repository = Path(kuma_iam_cli.__file__).resolve().parents[2]
    return repository if (repository / "pyproject.toml").is_file() else None


def _read_stack(path: Path) -> RunningStack | None:
    try:
        data = json.loads(path.read_text())
        return RunningStack(
            pid=int(data["pid"]),
            verify_url=str(data["verify_url"]),
            endpoint_url=str(data["endpoint_url"]),
            state_dir=str(data["state_dir"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # half-written or from another version: not a stack we can describe


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True
