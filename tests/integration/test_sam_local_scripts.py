"""tools/sam-local's scripts where they need no Docker: a mistyped event fails at once, and sam-env.sh finds
the stack's world in the state layout from any directory. (The whole `make sam-local-invoke`: tests/sam.)"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from support.cli_runs import isolated_environment
from support.project_files import REPO

pytestmark = pytest.mark.integration

INVOKE = REPO / "tools" / "sam-local" / "invoke.sh"
SAM_ENV = REPO / "tools" / "sam-local" / "sam-env.sh"


def test_a_mistyped_event_fails_at_once_listing_the_valid_ones() -> None:
    # When make sam-local-invoke is given an event that does not exist
    began = time.monotonic()
    done = subprocess.run(
        [str(INVOKE), "events/verifier/alowed.json"],
        env=isolated_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )

    # Then it stops before starting anything, naming the mistake and every valid event
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("not an event: events/verifier/alowed.json\nvalid events:\n")
    assert "  events/verifier/allowed.json" in done.stderr.splitlines()
    assert "engine.sh" not in done.stderr
    assert time.monotonic() - began < 30


def test_sam_env_reads_the_default_stacks_world_from_any_directory(tmp_path: Path) -> None:
    # Given no world file for the default stack (a throwaway repository layout around the script)
    repo = tmp_path / "repo"
    (repo / "tools" / "sam-local").mkdir(parents=True)
    script = repo / "tools" / "sam-local" / "sam-env.sh"
    script.write_bytes(SAM_ENV.read_bytes())
    script.chmod(0o755)

    # When it runs from another directory, first without a stack, then with one on port 5000
    missing = subprocess.run([str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    world = repo / ".local" / "5000" / "world.json"
    world.parent.mkdir(parents=True)
    world.write_text(
        '{"verifier": {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cret"},'
        ' "region": "us-east-1", "endpoint_url": "http://127.0.0.1:5000"}'
    )
    found = subprocess.run([str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=30)

    # Then it names the file it looked for, and then exports what the file holds
    assert missing.returncode == 1
    assert f"{world} not found" in missing.stderr
    assert found.returncode == 0, found.stderr
    assert "export AWS_ENDPOINT_URL_STS=http://127.0.0.1:5000\n" in found.stdout
