"""`make sam-local-invoke` (tools/sam-local/invoke.sh) as a user runs it: every answer checked against
events/<function>/expected.json, and a pass/fail table at the end."""

from __future__ import annotations

import os
import re
import subprocess

from support.local_ports import free_port
from support.project_files import REPO
from support.sam_stack import SamStack


def test_invoke_script_checks_each_answer_and_ends_with_a_table(sam_stack: SamStack) -> None:
    # Given two sample events (the session's engine and image are up: sam_stack started them)
    events = ["events/verifier/allowed.json", "events/verifier/mesh-mismatch.json"]
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "KUMA_", "KMESH_"))
    }
    environment["KUMA_SAM_MOTO_PORT"] = str(free_port())

    # When the script runs them
    with sam_stack.timings.step("invoke.sh: build + 2 invokes"):
        done = subprocess.run(
            [str(REPO / "tools" / "sam-local" / "invoke.sh"), *events],
            cwd=REPO,
            env=environment,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    # Then each answer passed, progress went to stderr, and the table closes stdout
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    assert re.search(r"\[ 1/2\] verifier/allowed\s+PASS", done.stderr), done.stderr
    table = done.stdout.strip().splitlines()
    assert table[0].split()[:3] == ["event", "result", "time"]
    assert re.fullmatch(r"verifier/allowed\s+PASS\s+[\d.]+ s\s+allow", table[1])
    assert re.fullmatch(r"verifier/mesh-mismatch\s+PASS\s+[\d.]+ s\s+mesh_mismatch", table[2])
    assert table[3].startswith("2 passed, 0 failed")
