"""Running `kuma-iam` as a user does: the installed command in a subprocess with only the AWS settings a test
hands over, `kuma-iam serve` read line by line, and what its commands print."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kuma_iam_cli.local.seed import UserCredentials
from support.local_ports import free_port
from support.project_files import REPO

KUMA_IAM = str(Path(sys.executable).parent / "kuma-iam")
# "Did not hang", for a command or the local stack to start or stop: seconds on a quiet machine, many times
# that on a loaded one (`make test-busy`). Never a speed target.
CEILING_SECONDS = 300.0
# No credentials, profile or metadata service but what a test hands over.
ISOLATED = {
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}


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


def user_environment(user: UserCredentials, region: str = "us-east-1") -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": user.access_key_id,
        "AWS_SECRET_ACCESS_KEY": user.secret_access_key,
        "AWS_REGION": region,
    }


@dataclass(frozen=True)
class CliRun:
    code: int
    out: str
    err: str


def run_command(
    *argv: str, cwd: Path | None = None, timeout: float = CEILING_SECONDS, **environment: str
) -> CliRun:
    """The installed kuma-iam in a subprocess, as a user (or a sidecar's init container) runs it."""
    done = subprocess.run(
        [KUMA_IAM, *argv],
        cwd=cwd,
        env=isolated_environment(**environment),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return CliRun(done.returncode, done.stdout, done.stderr)


def printed_decision(output: str) -> tuple[int, dict[str, Any]]:
    """`kuma-iam verify` prints `HTTP <status> <json body>`."""
    match = re.fullmatch(r"HTTP (\d{3}) (\{.*\})\s*", output, re.DOTALL)
    assert match is not None, output
    return int(match[1]), json.loads(match[2])


class Serve:
    """`kuma-iam serve` in a subprocess, its stdout read line by line as it comes (stderr collected)."""

    def __init__(
        self,
        cwd: Path,
        *flags: str,
        port: int | None = None,
        moto_port: int | None = None,
        **environment: str,
    ) -> None:
        self.cwd = cwd
        self.port = port if port is not None else free_port()
        self.moto_port = moto_port if moto_port is not None else free_port()
        self.process = subprocess.Popen(
            [
                KUMA_IAM,
                "serve",
                "--port",
                str(self.port),
                "--moto-port",
                str(self.moto_port),
                "--functions",
                str(REPO / "functions"),
                *flags,
            ],
            cwd=cwd,
            env=isolated_environment(**environment),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # A shell's background job ignores SIGINT, and Python then never raises KeyboardInterrupt.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.errors: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_errors, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @property
    def state_dir(self) -> Path:
        """Where this stack keeps its state: <cwd>/.local/<moto port>/."""
        return self.cwd / ".local" / str(self.moto_port)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def _read_errors(self) -> None:
        # Read as it comes, so a chatty stderr can never fill the pipe and stall the server.
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.errors.append(line)

    def read_until(self, marker: str, timeout: float = CEILING_SECONDS) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.output.append(line)
            if marker in line:
                return "".join(self.output)
        raise TimeoutError(
            f"serve printed no {marker!r} in {timeout}s; so far: {''.join(self.output)[-2000:]}"
            f"\nstderr: {''.join(self.errors)[-2000:]}"
        )

    def drain(self) -> str:
        """What serve printed since the last read, without waiting."""
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get())
        self.output.extend(rest)
        return "".join(rest)

    def finish(self, timeout: float = CEILING_SECONDS) -> tuple[int, str, str]:
        """Wait for it to exit on its own; returns the exit code, the rest of stdout, and stderr."""
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code, self.drain(), "".join(self.errors)

    def interrupt(
        self, timeout: float = CEILING_SECONDS, signum: int = signal.SIGINT
    ) -> tuple[int, str, str]:
        """Ctrl-C, as a user stops it (or another signal); returns the exit code, the rest of stdout, and
        stderr."""
        self.process.send_signal(signum)
        try:
            return self.finish(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@contextlib.contextmanager
def serving(cwd: Path, *flags: str, **options: Any) -> Iterator[Serve]:
    serve = Serve(cwd, *flags, **options)
    try:
        yield serve
    finally:
        if serve.process.poll() is None:
            serve.process.kill()
            serve.process.wait(timeout=CEILING_SECONDS)


def printed_commands(instructions: str) -> dict[str, str]:
    """The copy-paste command under each `# <case> -> <expected>` heading."""
    return dict(re.findall(r"^# (\S+) -> .*\n(.+)$", instructions, re.MULTILINE))
