"""Run the installed kuma-iam as a user, or a sidecar's container, runs it: its own process, and no AWS
settings but those a test hands over."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

KUMA_IAM = str(Path(sys.executable).parent / "kuma-iam")
# No credentials, profile or metadata service but what a test hands over.
ISOLATED = {
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass(frozen=True)
class CliRun:
    code: int
    out: str
    err: str


def isolated_environment(**environment: str) -> dict[str, str]:
    """A subprocess environment without any AWS_* of ours: only `environment` and the isolation above.

    PYTHONUNBUFFERED goes too: a user's shell does not set it, and output buffering is part of what we test.
    """
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "KUMA_", "KMESH_")) and name != "PYTHONUNBUFFERED"
    }
    return {**kept, **ISOLATED, **environment}


def run_command(*argv: str, timeout: float = 60, **environment: str) -> CliRun:
    """The installed kuma-iam in a subprocess, as a user (or a sidecar's init container) runs it."""
    done = subprocess.run(
        [KUMA_IAM, *argv],
        env=isolated_environment(**environment),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return CliRun(done.returncode, done.stdout, done.stderr)
