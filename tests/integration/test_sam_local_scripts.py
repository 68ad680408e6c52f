"""tools/sam-local's scripts where they need no Docker: a mistyped event fails at once, and sam-env.sh finds
the stack's world in the state layout from any directory and gives each function its own principal's keys.
(The whole `make sam-local-invoke`: tests/sam.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kuma_iam_cli.local.events import FUNCTION_PRINCIPALS
from support.cli_runs import CEILING_SECONDS, isolated_environment
from support.project_files import REPO

pytestmark = pytest.mark.integration

INVOKE = REPO / "tools" / "sam-local" / "invoke.sh"
SAM_ENV = REPO / "tools" / "sam-local" / "sam-env.sh"
WORLD: dict[str, Any] = {
    "verifier": {"access_key_id": "AKIAVERIFIER", "secret_access_key": "verifier-secret"},
    "compliance": {"access_key_id": "AKIACOMPLIANCE", "secret_access_key": "compliance-secret"},
    "provisioner": {"access_key_id": "AKIAPROVISIONER", "secret_access_key": "provisioner-secret"},
    "region": "us-east-1",
    "endpoint_url": "http://127.0.0.1:5000",
}
# What serve writes beside the world file: the token issuer's keys and principal (local/token_keys.py).
TOKENS: dict[str, Any] = {"issuer": {"access_key_id": "AKIAISSUER", "secret_access_key": "issuer-secret"}}


def test_a_mistyped_event_fails_at_once_listing_the_valid_ones() -> None:
    # When make sam-local-invoke is given an event that does not exist
    done = subprocess.run(
        [str(INVOKE), "events/verifier/alowed.json"],
        env=isolated_environment(),
        capture_output=True,
        text=True,
        timeout=CEILING_SECONDS,
    )

    # Then it stops before starting anything slow (the embedded AWS, the engine, the build), naming the
    # mistake and every valid event: "at once" is what it skipped, not a time a loaded machine could miss
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("not an event: events/verifier/alowed.json\nvalid events:\n")
    assert "  events/verifier/allowed.json" in done.stderr.splitlines()
    assert "engine.sh" not in done.stderr
    assert "invoke.sh:" not in done.stderr  # its progress lines: the embedded AWS, sam build, the invokes


def test_sam_env_reads_the_default_stacks_world_from_any_directory(tmp_path: Path) -> None:
    # Given no world file for the default stack (a throwaway repository layout around the script)
    repo = tmp_path / "repo"
    (repo / "tools" / "sam-local").mkdir(parents=True)
    script = repo / "tools" / "sam-local" / "sam-env.sh"
    script.write_bytes(SAM_ENV.read_bytes())
    script.chmod(0o755)

    # When it runs from another directory, first without a stack, then with one on port 5000
    missing = subprocess.run(
        [str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=CEILING_SECONDS
    )
    world = repo / ".local" / "5000" / "world.json"
    world.parent.mkdir(parents=True)
    world.write_text(json.dumps(WORLD))
    found = subprocess.run(
        [str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=CEILING_SECONDS
    )

    # Then it names the file it looked for, and then exports what the file holds: the verifier's keys
    assert missing.returncode == 1
    assert f"{world} not found" in missing.stderr
    assert found.returncode == 0, found.stderr
    assert "export AWS_ENDPOINT_URL_STS=http://127.0.0.1:5000\n" in found.stdout
    assert "export AWS_ACCESS_KEY_ID=AKIAVERIFIER\n" in found.stdout


@pytest.mark.parametrize("function", sorted(FUNCTION_PRINCIPALS))
def test_sam_env_gives_each_function_its_own_principals_keys(function: str, tmp_path: Path) -> None:
    # Given a world file with a principal per function, and the issuer's keys beside it as serve writes them
    world = tmp_path / "world.json"
    world.write_text(json.dumps(WORLD))
    (tmp_path / "tokens.json").write_text(json.dumps(TOKENS))

    # When sam-env.sh is asked for one function
    done = subprocess.run(
        [str(SAM_ENV), str(world), function], capture_output=True, text=True, timeout=CEILING_SECONDS
    )

    # Then it exports the keys of the principal the sam tier gives that function (events.FUNCTION_PRINCIPALS)
    principal = {**WORLD, **TOKENS}[FUNCTION_PRINCIPALS[function]]
    assert done.returncode == 0, done.stderr
    assert f"export AWS_ACCESS_KEY_ID={principal['access_key_id']}\n" in done.stdout
    assert f"export AWS_SECRET_ACCESS_KEY={principal['secret_access_key']}\n" in done.stdout


def test_sam_env_refuses_a_function_it_has_no_principal_for(tmp_path: Path) -> None:
    world = tmp_path / "world.json"
    world.write_text(json.dumps(WORLD))

    done = subprocess.run(
        [str(SAM_ENV), str(world), "NoSuchFunction"], capture_output=True, text=True, timeout=CEILING_SECONDS
    )

    assert done.returncode == 1
    assert done.stdout == ""
    assert "NoSuchFunction" in done.stderr
    assert "TagComplianceFunction" in done.stderr


def test_sam_env_says_where_the_issuers_keys_should_be(tmp_path: Path) -> None:
    # Given a world file without the token issuer's keys beside it
    world = tmp_path / "world.json"
    world.write_text(json.dumps(WORLD))

    done = subprocess.run(
        [str(SAM_ENV), str(world), "TokenIssuerFunction"],
        capture_output=True,
        text=True,
        timeout=CEILING_SECONDS,
    )

    # Then it names the file it looked for instead of a traceback
    assert done.returncode == 1
    assert done.stdout == ""
    assert f"{tmp_path / 'tokens.json'} not found" in done.stderr
    assert "Traceback" not in done.stderr
