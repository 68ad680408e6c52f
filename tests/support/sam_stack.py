"""The built application under `sam local`: the stack a session sets up, and how to invoke it.

`SamStack` holds the build, the session's embedded AWS and the environment `sam` runs with, and signs each
event when a test asks for it; every `sam local` call it makes is timed into `Timings`, which the sam tier
prints at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kuma_iam_cli.local.embedded_aws import EmbeddedAws
from kuma_iam_cli.local.events import (
    VERIFIER_CASES,
    VerifierCase,
    function_principal,
    sam_env_vars,
    verify_event,
)
from kuma_iam_cli.local.expected import SampleEvent
from kuma_iam_cli.local.provisioner_events import PROVISIONER_CASES
from kuma_iam_cli.local.seed import DemoWorld, UserCredentials
from kuma_iam_cli.local.token_events import TOKEN_ISSUER_CASES, TokenIssuerCase, token_issuer_event
from kuma_iam_cli.local.token_keys import TokenKeys
from support.local_ports import free_port
from support.project_files import REPO

ENGINE = REPO / "tools" / "sam-local" / "engine.sh"
SAM = Path(sys.executable).parent / "sam"
SERVER_ID = "kuma-demo"
# samconfig.toml's `local` environment maps this name to the Docker host (--add-host ...:host-gateway).
CONTAINER_HOST = "host.docker.internal"
CONFIG_ENV = "local"
REPLAY_TABLE = "kuma-iam-replay"
# "Did not hang" for one `sam local` call or start-api to listen: a first invoke builds the layer image, later
# ones rebuild it too (local layer); a loaded machine takes several times longer. Never a speed target.
SAM_TIMEOUT_SECONDS = 300
_REPORT_DURATION = re.compile(r"REPORT RequestId: \S+\s+Init Duration: [\d.]+ ms\s+Duration: ([\d.]+) ms")
# Variables of the developer's shell that SAM would hand to the function in place of the template's.
_SCRUBBED_PREFIXES = ("AWS_", "KUMA_", "KMESH_", "POWERTOOLS_")


@dataclass
class Timings:
    """Wall-clock seconds of each setup step and each `sam local` call, for the closing summary."""

    steps: list[tuple[str, float]] = field(default_factory=list)
    invokes: list[tuple[str, str, float, float | None]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.steps.append((name, time.perf_counter() - began))

    def lines(self) -> list[str]:
        out = [f"sam tier: {time.perf_counter() - self.started:.1f} s from the first fixture to the summary"]
        out += [f"  {name:<44} {seconds:7.1f} s" for name, seconds in self.steps]
        if self.invokes:
            out.append("  sam local invoke (wall s / function Duration ms from its REPORT line):")
            for function, label, seconds, duration_ms in self.invokes:
                reported = f"{duration_ms:8.1f} ms" if duration_ms is not None else "        ?"
                out.append(f"    {function:<18} {label:<32} {seconds:6.1f} s {reported}")
            by_function: dict[str, list[tuple[float, float | None]]] = {}
            for function, _, seconds, duration_ms in self.invokes:
                by_function.setdefault(function, []).append((seconds, duration_ms))
            for function, runs in by_function.items():
                walls = sorted(seconds for seconds, _ in runs)
                durations = sorted(ms for _, ms in runs if ms is not None)
                out.append(
                    f"  {function}: {len(runs)} invokes, wall median {walls[len(walls) // 2]:.1f} s "
                    f"(min {walls[0]:.1f}, max {walls[-1]:.1f}); function Duration median "
                    f"{durations[len(durations) // 2] if durations else float('nan'):.0f} ms"
                )
        return out


@dataclass(frozen=True)
class InvokeResult:
    answer: Any  # what the function returned, as `sam local invoke` printed it
    wall_seconds: float
    duration_ms: float | None
    stderr: str

    @property
    def status(self) -> int | None:
        """An API answer's statusCode (None for a function that answers otherwise)."""
        return self.answer.get("statusCode") if isinstance(self.answer, dict) else None

    @property
    def body(self) -> dict[str, Any]:
        """An API answer's JSON body."""
        raw = self.answer.get("body") if isinstance(self.answer, dict) else None
        return json.loads(raw) if isinstance(raw, str) and raw else {}

    def explain(self) -> str:
        return f"answer {self.answer}\n--- sam stderr (tail) ---\n{self.stderr[-3000:]}"


@dataclass
class SamStack:
    """The built template, this run's embedded AWS, and how to call `sam local`."""

    world: DemoWorld
    aws: EmbeddedAws
    build_template: Path
    work_dir: Path
    env_file: Path
    env_vars: dict[str, dict[str, str]]
    process_env: dict[str, str]
    timings: Timings
    token_keys: TokenKeys | None = None  # the token issuer's keys, table and principal

    def run_sam(
        self,
        args: Sequence[str],
        *,
        cwd: Path = REPO,
        timeout: float = SAM_TIMEOUT_SECONDS,
        user: UserCredentials | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """`sam` with the session's environment; `user`'s keys become the function's credentials (sam local
        hands a function the credentials of its own environment, one principal per function in the demo)."""
        environment = dict(self.process_env)
        if user is not None:
            environment["AWS_ACCESS_KEY_ID"] = user.access_key_id
            environment["AWS_SECRET_ACCESS_KEY"] = user.secret_access_key
        return subprocess.run(
            [str(SAM), *args],
            cwd=cwd,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def invoke(
        self,
        function: str,
        event: Path | str,
        *,
        label: str,
        env_file: Path | None = None,
        cwd: Path = REPO,
        as_typed: bool = False,
        user: UserCredentials | None = None,
    ) -> InvokeResult:
        """`sam local invoke` with samconfig's `local` environment, on this session's build and env file,
        with the keys of the function's own principal (`user`'s if given).

        as_typed: pass neither --template nor --env-vars, like the README's command (run it from `cwd`).
        """
        args = ["local", "invoke", function, "--config-env", CONFIG_ENV, "--event", str(event)]
        if not as_typed:
            args += [
                *self.build_flags(), "--env-vars", str(env_file or self.env_file),
            ]  # fmt: skip
        began = time.perf_counter()
        principal = user or function_principal(self.world, function, self.token_keys)
        completed = self.run_sam(args, cwd=cwd, user=principal)
        wall = time.perf_counter() - began
        reported = _REPORT_DURATION.search(completed.stderr)
        duration_ms = float(reported.group(1)) if reported else None
        self.timings.invokes.append((function, label, wall, duration_ms))
        if completed.returncode != 0 or not completed.stdout.strip():
            raise AssertionError(
                f"sam local invoke {function} {event} exited {completed.returncode}\n"
                f"{shlex.join([str(SAM), *args])}\n{completed.stderr[-4000:]}"
            )
        # stdout carries only the function's result; logs and SAM's chatter go to stderr.
        answer = json.loads(completed.stdout.strip().splitlines()[-1])
        if isinstance(answer, dict) and "errorType" in answer:
            # An unhandled error (errorType, errorMessage): the function gave no answer of its own.
            raise AssertionError(
                f"sam local invoke {function} {event}: {completed.stdout[-2000:]}\n{completed.stderr[-4000:]}"
            )
        return InvokeResult(
            answer=answer,
            wall_seconds=wall,
            duration_ms=duration_ms,
            stderr=completed.stderr,
        )

    def signed_event(self, case: VerifierCase | TokenIssuerCase, folder: Path) -> Path:
        """folder/<case>.json for the verifier or the token issuer, its identity token signed now: an event
        signed when the session began could be older than a token's 15 minutes by the time a slow run
        invokes it."""
        if isinstance(case, TokenIssuerCase):
            event = token_issuer_event(self.world, case, server_id=SERVER_ID)
        else:
            event = verify_event(self.world, case, server_id=SERVER_ID)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{case.name}.json"
        path.write_text(json.dumps(event, indent=2) + "\n")
        return path

    def event_file(self, sample: SampleEvent, folder: Path) -> Path:
        """The file to invoke for a committed sample event: the verifier's and the token issuer's signed now
        against this run's embedded AWS (signed_event), the token provisioner's naming this world's tasks
        (ECS gives each task a random ARN), any other (tag compliance's) the committed file."""
        signed: dict[str, VerifierCase | TokenIssuerCase] = {
            **{f"verifier/{case.name}": case for case in VERIFIER_CASES},
            **{f"token_issuer/{case.name}": case for case in TOKEN_ISSUER_CASES},
        }
        provisioner = {f"token_provisioner/{case.name}": case for case in PROVISIONER_CASES}
        if sample.label in provisioner:
            path = folder / sample.folder / sample.path.name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(provisioner[sample.label].event(self.world), indent=2) + "\n")
            return path
        case = signed.get(sample.label)
        return sample.path if case is None else self.signed_event(case, folder / sample.folder)

    def build_flags(self) -> list[str]:
        # With --template, SAM looks for samconfig.toml beside that template: name the project's own.
        return ["--template", str(self.build_template), "--config-file", str(REPO / "samconfig.toml")]

    @contextlib.contextmanager
    def start_api(self, user: UserCredentials | None = None) -> Iterator[str]:
        """`sam local start-api` on a free port; yields its base URL once it accepts connections. Every
        function it serves runs with `user`'s keys (default: the session's, the verifier's)."""
        port = free_port()
        environment = dict(self.process_env)
        if user is not None:
            environment["AWS_ACCESS_KEY_ID"] = user.access_key_id
            environment["AWS_SECRET_ACCESS_KEY"] = user.secret_access_key
        args = [
            "local", "start-api", "--config-env", CONFIG_ENV, *self.build_flags(),
            "--env-vars", str(self.env_file), "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip
        log = self.work_dir / "start-api.log"
        with log.open("w") as sink:
            began = time.perf_counter()
            process = subprocess.Popen(
                [str(SAM), *args], cwd=REPO, env=environment, stdout=sink, stderr=subprocess.STDOUT
            )
            try:
                _wait_for_port(port, process, log, timeout=SAM_TIMEOUT_SECONDS)
                self.timings.steps.append(("sam local start-api: ready", time.perf_counter() - began))
                yield f"http://127.0.0.1:{port}"
            finally:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"sam local start-api exited {process.returncode}:\n{log.read_text()[-4000:]}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.3)
    raise AssertionError(
        f"sam local start-api did not listen on {port} in {timeout}s:\n{log.read_text()[-4000:]}"
    )


def engine_environment() -> dict[str, str]:
    printed = subprocess.run(
        [str(ENGINE), "env"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    exported = {}
    for line in printed.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name and value:
            exported[name] = value
    return exported


def sam_environment(engine: dict[str, str], world: DemoWorld | None = None) -> dict[str, str]:
    """What `sam` runs with: none of the developer's AWS/KUMA settings, the engine, and the world's keys.

    `sam local` hands the function the credentials of its own environment (the env file overrides only
    variables the template declares), and resolves AWS::AccountId by asking STS whose they are: pointed at
    the embedded AWS, that is the world's home account, and no slow failing call goes to the real STS.
    tools/sam-local/sam-env.sh prints the same for a shell.
    """
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith(_SCRUBBED_PREFIXES)
    }
    environment.update(engine)
    # The venv's python3.13 runs the layer's build (sam build looks for python3.13 on PATH).
    environment["PATH"] = f"{SAM.parent}{os.pathsep}{environment.get('PATH', '')}"
    environment["SAM_CLI_TELEMETRY"] = "0"
    if world is not None:
        environment.update(
            {
                "AWS_ACCESS_KEY_ID": world.verifier.access_key_id,
                "AWS_SECRET_ACCESS_KEY": world.verifier.secret_access_key,
                "AWS_REGION": world.region,
                "AWS_DEFAULT_REGION": world.region,
                "AWS_ENDPOINT_URL_STS": world.endpoint_url,
            }
        )
    return environment


def container_env_vars(
    world: DemoWorld, aws: EmbeddedAws, token_keys: TokenKeys | None = None
) -> dict[str, dict[str, str]]:
    """The `--env-vars` content for this run: the embedded AWS as a container reaches it."""
    return sam_env_vars(
        world, endpoint_url=f"http://{CONTAINER_HOST}:{aws.port}", server_id=SERVER_ID, token_keys=token_keys
    )


def write_env_file(path: Path, env_vars: dict[str, dict[str, str]]) -> Path:
    path.write_text(json.dumps(env_vars, indent=2) + "\n")
    return path
