"""Run the installed kuma-iam as a user, or a sidecar's container, runs it: its own process, and no AWS
settings but those a test hands over."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from support.cli_environment import isolated_environment

KUMA_IAM = str(Path(sys.executable).parent / "kuma-iam")
# "Did not hang", for a command or the local stack to start or stop: seconds on a quiet machine, many times
# that on a loaded one (`make test-busy`). Never a speed target.
CEILING_SECONDS = 300.0


@dataclass(frozen=True)
class CliRun:
    code: int
    out: str
    err: str


def run_command(*argv: str, timeout: float = CEILING_SECONDS, **environment: str) -> CliRun:
    """The installed kuma-iam in a subprocess, as a user (or a sidecar's init container) runs it."""
    done = subprocess.run(
        [KUMA_IAM, *argv],
        env=isolated_environment(**environment),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return CliRun(done.returncode, done.stdout, done.stderr)
