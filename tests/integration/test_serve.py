"""`kuma-iam serve`, the local stack as `make run` starts it: its printed commands work from any directory,
it checks its ports before starting anything, and each stack keeps its own state, so a second one never
breaks the first."""

from __future__ import annotations

import json
import re
import signal
import socket
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kuma_iam_cli.local.events import VERIFIER_CASES
from support.cli_runs import (
    CEILING_SECONDS,
    Serve,
    isolated_environment,
    printed_commands,
    printed_decision,
    run_command,
    serving,
)
from support.local_ports import free_port

pytestmark = pytest.mark.integration

READY = "Ctrl-C stops the stack."


@dataclass(frozen=True)
class RunningStack:
    serve: Serve
    project: Path
    instructions: str

    @property
    def commands(self) -> dict[str, str]:
        return printed_commands(self.instructions)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One `kuma-iam serve`, started from a project folder, for the tests that only use it."""
    project = tmp_path_factory.mktemp("project")
    with serving(project) as serve:
        yield RunningStack(serve, project, serve.read_until(READY))


def paste(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A printed command, pasted into a fresh shell in `cwd` with no AWS settings of its own."""
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=isolated_environment(),
        capture_output=True,
        text=True,
        timeout=CEILING_SECONDS,
    )


def test_printed_commands_give_the_promised_answers_from_any_directory(
    stack: RunningStack, tmp_path: Path
) -> None:
    # Given the stack's instructions, one command per sample case
    commands = stack.commands
    assert set(commands) == {case.name for case in VERIFIER_CASES}

    # When a user pastes three of them in another directory than the one serve started in
    results = {
        name: paste(commands[name], tmp_path) for name in ("allowed", "mesh-mismatch", "malformed-token")
    }

    # Then each printed the answer its heading promised, with the matching exit code
    allowed, mesh, malformed = (results[name] for name in ("allowed", "mesh-mismatch", "malformed-token"))
    assert allowed.returncode == 0, allowed.stderr
    assert printed_decision(allowed.stdout)[1]["identity"]["roleName"] == "backend-task"
    assert mesh.returncode == 1, mesh.stderr
    assert printed_decision(mesh.stdout)[1]["reason"] == "mesh_mismatch"
    assert malformed.returncode == 2, malformed.stderr
    assert printed_decision(malformed.stdout)[1]["error"] == "invalid_request"
    # And every path they name is absolute
    for command in commands.values():
        for word in command.replace('"', " ").replace("$(", " ").replace(")", " ").split():
            if "/" in word and not word.startswith("http"):
                assert word.startswith("/"), word


def test_state_lives_in_a_folder_of_the_stack_own_port(stack: RunningStack) -> None:
    # Then the stack's world, credentials and stack file are under .local/<moto port>/
    folder = stack.serve.state_dir
    world = json.loads((folder / "world.json").read_text())
    assert world["endpoint_url"].endswith(f":{stack.serve.moto_port}")
    running = json.loads((folder / "stack.json").read_text())
    assert running["verify_url"] == f"http://127.0.0.1:{stack.serve.port}/v1/verify"
    assert running["state_dir"] == str(folder)
    credentials = folder / "credentials" / "control-plane.env"
    assert credentials.stat().st_mode & 0o777 == 0o600
    # (the world and the token issuer's keys hold secret keys too: only their owner reads them)
    assert [(folder / name).stat().st_mode & 0o777 for name in ("world.json", "tokens.json")] == [0o600] * 2
    assert str(credentials) in stack.instructions
    # And nothing in the old shared places
    assert not (stack.project / ".local" / "world.json").exists()
    assert not (stack.project / ".local" / "credentials").exists()


def test_a_second_stack_never_breaks_the_first(stack: RunningStack, tmp_path: Path) -> None:
    # Given a second stack started from the same folder on other ports
    with serving(stack.project) as second:
        second_instructions = second.read_until(READY)

        # When the first stack's commands run again, and the second's
        first_answer = paste(stack.commands["allowed"], tmp_path)
        second_answer = paste(printed_commands(second_instructions)["allowed"], tmp_path)

        # Then both are allowed: the second wrote its own state, not over the first's
        assert first_answer.returncode == 0, first_answer.stdout + first_answer.stderr
        assert second_answer.returncode == 0, second_answer.stdout + second_answer.stderr
        assert second.state_dir != stack.serve.state_dir
        assert str(stack.serve.state_dir) not in second_instructions

        # And Ctrl-C stops the second cleanly: its stack file goes, its world stays for `kuma-iam events`
        code, rest, stderr = second.interrupt()
    assert code == 0, stderr
    assert "stopping" in rest
    assert "Traceback" not in stderr
    assert not (second.state_dir / "stack.json").exists()
    assert (second.state_dir / "world.json").is_file()
    assert (stack.serve.state_dir / "stack.json").is_file()


def test_sigterm_stops_a_stack_as_cleanly_as_ctrl_c(tmp_path: Path) -> None:
    # Given a stack started as a background job or by a process manager, where Ctrl-C is not an option
    with serving(tmp_path) as serve:
        serve.read_until(READY)
        assert (serve.state_dir / "stack.json").is_file()

        # When it gets SIGTERM (`kill <pid>`)
        code, rest, stderr = serve.interrupt(signum=signal.SIGTERM)

    # Then it stops cleanly: exit 0, no traceback, and it no longer claims to run
    assert code == 0, stderr
    assert "stopping" in rest
    assert "Traceback" not in stderr
    assert not (serve.state_dir / "stack.json").exists()


@pytest.mark.parametrize("busy", [("--port",), ("--moto-port",), ("--port", "--moto-port")], ids="+".join)
def test_a_busy_port_stops_serve_at_once_naming_the_option(busy: tuple[str, ...], tmp_path: Path) -> None:
    # Given another program listening on the port(s) serve is asked to use (bound at once, so no other
    # process can take one in between), and a free port for the other option
    held: list[socket.socket] = []
    ports = {"--port": 0, "--moto-port": 0}
    for option in busy:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        held.append(listener)
        ports[option] = int(listener.getsockname()[1])
    ports = {option: port or free_port() for option, port in ports.items()}
    try:
        # When serve starts
        with serving(tmp_path, port=ports["--port"], moto_port=ports["--moto-port"]) as serve:
            code, out, err = serve.finish()
    finally:
        for listener in held:
            listener.close()

    # Then it exits 2 before starting anything, in one line naming each busy port and its option
    assert code == 2, out + err
    assert out == ""
    assert len(err.splitlines()) == 1, err
    for option in busy:
        assert f"port {ports[option]}" in err
        assert f"pick another with {option}" in err
    assert "Traceback" not in err
    # (nothing started: no output, no state folder; serve.finish's ceiling bounds the wait, as "did not hang")
    assert not (tmp_path / ".local").exists()


@pytest.mark.parametrize(
    ("command", "credentials"),
    [
        (("token", "--server-id", "kuma-demo"), "111111111111-backend-task.env"),
        (("sweep",), "compliance.env"),
        (
            (
                "dataplane-token",
                *("--url", "http://127.0.0.1:9/v1/tokens", "--server-id", "kuma-demo", "--mesh", "default"),
                *("--name", "backend-01", "--output", "unused.token"),  # in the stack's project folder
            ),
            "111111111111-backend-task-caller.env",
        ),
    ],
    ids=["token", "sweep", "dataplane-token"],
)
def test_no_credentials_points_to_the_running_stacks_credentials(
    command: tuple[str, ...], credentials: str, stack: RunningStack
) -> None:
    # When a user runs a command with no credentials, beside a running stack
    run = run_command(*command, cwd=stack.project)

    # Then the error says where the stack keeps credentials and which file to use
    assert run.code == 2
    assert len(run.err.splitlines()) == 1, run.err
    assert "no AWS credentials found" in run.err
    assert f"env $(cat {stack.serve.state_dir}/credentials/{credentials})" in run.err
    assert not (stack.project / "unused.token").exists()


def test_verify_sent_to_the_stacks_embedded_aws_names_its_verifier_url(stack: RunningStack) -> None:
    # Given the control plane's credentials, and the embedded AWS's URL by mistake
    credentials = dict(
        line.split("=", 1)
        for line in (stack.serve.state_dir / "credentials" / "control-plane.env").read_text().splitlines()
    )
    url = f"http://127.0.0.1:{stack.serve.moto_port}/v1/verify"

    # When verify is sent there
    run = run_command(
        "verify", "--url", url, "--token", "x", "--mesh", "default", cwd=stack.project, **credentials
    )

    # Then the error names the stack's verifier URL
    assert run.code == 2
    assert len(run.err.splitlines()) == 1, run.err
    assert f"http://127.0.0.1:{stack.serve.port}/v1/verify" in run.err


def test_the_console_shows_one_line_per_request_and_the_json_goes_to_the_function_log(
    stack: RunningStack, tmp_path: Path
) -> None:
    # When a user runs one printed command
    done = paste(stack.commands["type-mismatch"], tmp_path)
    assert done.returncode == 1, done.stderr

    # Then the console gets one readable line for it
    line = stack.serve.read_until("deny type_mismatch").splitlines()[-1]
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d POST /v1/verify user/control-plane -> 200 deny type_mismatch \(\d+ ms\)", line
    ), line
    # And nothing the function printed: no JSON log line, no EMF record, no Powertools warning
    console = "".join(stack.serve.output) + stack.serve.drain() + "".join(stack.serve.errors)
    assert not [text for text in console.splitlines() if text.lstrip().startswith("{")]
    assert "UserWarning" not in console
    # While the function's log file has its JSON, as Lambda would write it
    log = (stack.serve.state_dir / "lambda.log").read_text().splitlines()
    logged = [json.loads(text) for text in log if text.startswith("{")]
    assert any(record.get("reason") == "type_mismatch" and "level" in record for record in logged)
    assert any("_aws" in record for record in logged)


def test_printed_sweep_and_eventbridge_commands_find_what_they_say_from_any_directory(
    stack: RunningStack, tmp_path: Path
) -> None:
    # Given the stack's tag-compliance instructions: a sweep, and an event posted to the local EventBridge
    sweep_command = re.search(r"^# sweep every role.*\n(.+)$", stack.instructions, re.MULTILINE)
    event_command = re.search(
        r"^# an IAM event as EventBridge delivers it.*\n(.+)\n# -> (.+?)\. ", stack.instructions, re.MULTILINE
    )
    assert sweep_command
    assert event_command
    assert event_command[2] == "kuma-tag-change-unauthorized on orders-task"  # from expected.json
    for command in (sweep_command[1], event_command[1]):
        for word in command.replace("@", " ").replace("$(", " ").replace(")", " ").split():
            if "/" in word and not word.startswith("http"):
                assert word.startswith("/"), word

    # When a user pastes the sweep and, twice, the event, in another directory than serve's
    def run(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=isolated_environment(COLUMNS="200"),
            capture_output=True,
            text=True,
            timeout=CEILING_SECONDS,
        )

    swept = run(sweep_command[1])
    first, again = run(event_command[1]), run(event_command[1])

    # Then the sweep shows the demo's broken roles and exits 1 (findings), with no traceback
    assert swept.returncode == 1, swept.stderr
    for role in ("typo-task", "shouting-task", "ledger-task"):
        assert role in swept.stdout
    assert "Traceback" not in swept.stderr
    # And the event finds the unauthorized change, and the same event again gets the stored answer
    summary = json.loads(first.stdout)
    assert [(f["rule"], f["roleName"]) for f in summary["findings"]] == [
        ("kuma-tag-change-unauthorized", "orders-task")
    ]
    assert json.loads(again.stdout) == summary
    # And the console shows one line for each delivery; the function's JSON went to its log file
    line = stack.serve.read_until("POST /local/eventbridge").splitlines()[-1]
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d POST /local/eventbridge unsigned -> 200 "
        r"kuma-tag-change-unauthorized on orders-task \(\d+ ms\)",
        line,
    ), line
    log = (stack.serve.state_dir / "lambda.log").read_text()
    assert "kuma-tag-change-unauthorized" in log


def test_printed_token_commands_get_a_token_show_the_keys_and_validate_it_from_any_directory(
    stack: RunningStack, tmp_path: Path
) -> None:
    # Given the stack's token-issuer instructions, each with the answer it must get
    found = dict(
        (name, (answer, command))
        for name, answer, command in re.findall(
            r"^# (token|keys|validate): .* -> (.+)\n(.+)$", stack.instructions, re.MULTILINE
        )
    )
    assert set(found) == {"token", "keys", "validate"}
    assert found["token"][0] == "token kid 2, exit 0"  # from events/token_issuer/expected.json
    for _, command in found.values():
        for word in command.replace("$(", " ").replace(")", " ").split():
            if "/" in word and not word.startswith("http"):
                assert word.startswith("/"), word

    # When a user pastes them in their order, in another directory than serve's
    results = {name: paste(found[name][1], tmp_path) for name in ("token", "keys", "validate")}

    # Then the backend task got a token in a file only it reads, in the stack's state folder
    assert [results[name].returncode for name in ("token", "keys", "validate")] == [0, 0, 0], results
    token_file = stack.serve.state_dir / "backend.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text() not in results["token"].stderr + results["token"].stdout
    # And the keys printed as kuma-cp settings, and the token is valid under them, signed by kid 2
    assert "-----BEGIN RSA PUBLIC KEY-----" in results["keys"].stdout
    validated = json.loads(results["validate"].stdout)
    assert (validated["valid"], validated["kid"], validated["claims"]["Name"]) == (True, "2", "backend-01")
    assert validated["claims"]["Tags"] == {"kuma.io/service": ["backend"]}
    # And the issuer's keys and table are beside the world file, where `kuma-iam events` and sam-env.sh look
    assert json.loads((stack.serve.state_dir / "tokens.json").read_text())["issuer"]["access_key_id"]
    # And the console tells the exchange and the keys in a line each, never the token
    console = stack.serve.read_until("GET /v1/keys")
    assert re.search(
        r"^\d\d:\d\d:\d\d POST /v1/tokens assumed-role/backend-task/\S+ -> 200 token kid 2 for backend "
        r"\(\d+ ms\)$",
        console,
        re.MULTILINE,
    ), console[-2000:]
    assert token_file.read_text() not in console + stack.serve.drain()


def test_printed_provisioner_commands_put_a_token_and_then_find_it_good_from_any_directory(
    stack: RunningStack, tmp_path: Path
) -> None:
    # Given the stack's token provisioner instructions: a task start and the sweep, posted to the local
    # EventBridge as ECS and the schedule deliver them
    started = re.search(
        r"^# a task of backend starts.*\n(.+)\n# -> (.+?)\. ", stack.instructions, re.MULTILINE
    )
    sweep = re.search(r"^# the schedule's sweep.*\n(.+)$", stack.instructions, re.MULTILINE)
    assert started
    assert sweep
    assert started[2] == "token for backend or 1 token_valid"  # from expected.json

    # When a user pastes the task start twice, then the sweep, in another directory than serve's
    def run(command: str) -> dict[str, object]:
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=isolated_environment(),
            capture_output=True,
            text=True,
            timeout=CEILING_SECONDS,
        )
        assert done.returncode == 0, done.stderr
        answer: dict[str, object] = json.loads(done.stdout)
        return answer

    first, again, swept = run(started[1]), run(started[1]), run(sweep[1])

    # Then the first put backend's token, the second found it good, and the sweep served the rest
    assert [issued["service"] for issued in first["issued"]] == ["backend"]  # type: ignore[attr-defined]
    assert again["issued"] == []
    assert [skipped["reason"] for skipped in again["skipped"]] == ["token_valid"]  # type: ignore[attr-defined]
    assert [issued["service"] for issued in swept["issued"]] == ["frontend"]  # type: ignore[attr-defined]
    # And the console shows one line per delivery, summarized
    line = stack.serve.read_until("POST /local/eventbridge/token-provisioner").splitlines()[-1]
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d POST /local/eventbridge/token-provisioner unsigned -> 200 .+ \(\d+ ms\)", line
    ), line
