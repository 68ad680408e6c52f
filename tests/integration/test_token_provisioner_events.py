"""The token provisioner's sample events (events/token_provisioner, the ones `sam local invoke` is given)
against the real handler: each answer is the one expected.json gives, on this session's world and, for the
whole set in both orders a user may run them, on fresh worlds as `kuma-iam serve` seeds them."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from kuma_iam_cli.local.expected import expected_answers, mismatches
from kuma_iam_cli.local.provisioner_events import PROVISIONER_CASES, ProvisionerCase
from kuma_iam_cli.local.seed import DemoWorld
from support.project_files import REPO
from support.provisioner_harness import EcsWorld, Provisioner

EXPECTED = expected_answers(REPO / "events")
# The cases whose answer does not depend on what ran before them (the sweep's does: the session's world
# has every other test's tasks; it is checked on fresh worlds below).
ON_ANY_WORLD = [case for case in PROVISIONER_CASES if case.name != "scheduled-sweep"]


def _problems(case: str, answer: Any) -> list[str]:
    return mismatches(EXPECTED[f"token_provisioner/{case}"], answer)


@pytest.mark.parametrize("case", ON_ANY_WORLD, ids=lambda case: case.name)
def test_each_sample_event_gives_its_summary(
    case: ProvisionerCase, provisioner: Provisioner, demo_world: DemoWorld
) -> None:
    # Given a sample event made for this world's demo tasks
    event = case.event(demo_world)

    # When the handler takes it, and takes it again (EventBridge delivers at least once)
    first = provisioner(event)
    again = provisioner(event, fresh=False)

    # Then both answers are the ones events/token_provisioner/expected.json gives
    assert not _problems(case.name, first), "\n".join(_problems(case.name, first))
    assert not _problems(case.name, again), "\n".join(_problems(case.name, again))
    # And a second delivery never issues again
    assert again["issued"] == []


def test_the_tagged_task_gets_its_token_in_its_secret(
    provisioner: Provisioner, demo_world: DemoWorld, ecs_world: EcsWorld
) -> None:
    # Given the demo's backend task starting (its secret made by the service's stack, `{}`)
    (case,) = [case for case in PROVISIONER_CASES if case.name == "new-tagged-task"]

    # When the event reaches the provisioner
    answer = provisioner(case.event(demo_world))

    # Then the secret holds a token, the one issued now or by an earlier sweep of this session
    token = ecs_world.document("backend")["token"]
    assert token.count(".") == 2
    if answer["issued"]:
        assert answer["issued"][0]["secret"] == "kuma-iam/dataplane-tokens/backend"


def _run_in_order(order: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "support.provisioner_samples", ",".join(order)],
        cwd=REPO / "tests",
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answers = {}
    for line in done.stdout.splitlines():
        if line.startswith("ANSWER "):
            _, case, answer = line.split(" ", 2)
            answers[case] = json.loads(answer)
    assert list(answers) == order, done.stdout[-3000:]
    return answers


@pytest.mark.parametrize(
    "order",
    [
        pytest.param(sorted(case.name for case in PROVISIONER_CASES), id="as-the-sam-tier-runs-them"),
        pytest.param(
            [
                "scheduled-sweep",
                "new-tagged-task",
                "identity-mismatch",
                "new-untagged-task",
                "not-a-task-event",
            ],
            id="sweep-first",
        ),
    ],
)
def test_every_sample_event_in_either_order_on_a_fresh_world(order: list[str]) -> None:
    # Given a fresh demo world as serve seeds it
    # When every sample event reaches the provisioner in this order
    answers = _run_in_order(order)

    # Then each answer is one expected.json gives
    for case, answer in answers.items():
        assert not _problems(case, answer), f"{case}: " + "\n".join(_problems(case, answer))
    # And the backend's token was issued exactly once, by whichever event came first
    issued = [entry["service"] for answer in answers.values() for entry in answer["issued"]]
    assert sorted(issued) == ["backend", "frontend"]
    assert (answers["scheduled-sweep"]["issued"][0]["service"] == "backend") == (
        order[0] == "scheduled-sweep"
    )
