"""`kuma-iam serve`, the local stack as `make run` starts it: its printed commands, its ports, its state."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kuma_iam_cli.local.events import VERIFIER_CASES
from support.cli_runs import isolated_environment, printed_commands, printed_decision, serving

pytestmark = pytest.mark.integration


def test_serve_prints_commands_that_give_the_documented_answers_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    # Given the local stack, started as `make run` does, in a fresh folder, its stdout a pipe (as under
    # `make run | tee` or in CI), so the instructions must come flushed, not when it exits
    with serving(tmp_path) as serve:
        instructions = serve.read_until("Ctrl-C stops the stack.", timeout=60)
        commands = printed_commands(instructions)
        assert set(commands) == {case.name for case in VERIFIER_CASES}

        # When a user pastes three of its commands into a shell
        results = {
            name: subprocess.run(
                ["bash", "-c", commands[name]],
                cwd=tmp_path,
                env=isolated_environment(),
                capture_output=True,
                text=True,
                timeout=60,
            )
            for name in ("allowed", "mesh-mismatch", "malformed-token")
        }

        # And then presses Ctrl-C
        code, rest, stderr = serve.interrupt()

    # Then each command printed the answer its heading promised, with the matching exit code
    allowed, mesh, malformed = (results[name] for name in ("allowed", "mesh-mismatch", "malformed-token"))
    assert allowed.returncode == 0, allowed.stderr
    assert printed_decision(allowed.stdout)[1]["identity"]["roleName"] == "backend-task"
    assert mesh.returncode == 1, mesh.stderr
    assert printed_decision(mesh.stdout)[1]["reason"] == "mesh_mismatch"
    assert malformed.returncode == 2, malformed.stderr
    assert printed_decision(malformed.stdout) == (
        400,
        {"error": "invalid_request", "message": printed_decision(malformed.stdout)[1]["message"]},
    )
    # And the stack stopped cleanly
    assert code == 0
    assert "stopping" in rest
    assert "Traceback" not in stderr
    assert (tmp_path / ".local" / "world.json").is_file()
