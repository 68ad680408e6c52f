"""`sam local invoke` of every sample event in a Lambda container, each answer checked against
events/<function>/expected.json (the same check `make sam-local-invoke` makes)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from kuma_iam_cli.local.events import write_events
from kuma_iam_cli.local.expected import SampleEvent, expected_answers, mismatches, sample_events
from kuma_iam_cli.local.provisioner_demo import DEMO_TASKS
from support.aws_clients import client_as
from support.kuma_rules import (
    dataplane_keys_for,
    validate_dataplane_token,
    validate_zone_token,
    zone_keys_for,
)
from support.project_files import REPO
from support.sam_stack import SERVER_ID, InvokeResult, SamStack

EVENTS = REPO / "events"
EXPECTED = expected_answers(EVENTS)


def _assert_answer(label: str, result: InvokeResult) -> None:
    problems = mismatches(EXPECTED[label], result.answer)
    assert not problems, "\n".join(problems) + "\n" + result.explain()


@pytest.mark.parametrize("event", sample_events(EVENTS), ids=lambda event: event.label)
def test_sam_local_invoke_answers_each_sample_event(
    event: SampleEvent, sam_stack: SamStack, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # Given the sample event, signed now against the embedded AWS when it carries a token
    event_file = sam_stack.event_file(event, tmp_path)

    # When the built function runs it in a Lambda container, with its own principal's keys
    result = sam_stack.invoke(event.function, event_file, label=event.case)

    # Then the answer is the one events/<function>/expected.json gives
    _assert_answer(event.label, result)
    # And a token the issuer hands out is one a control plane admits the asking proxy with, under the keys
    # the built function publishes
    if "token" in result.body:
        asked = json.loads(json.loads(event_file.read_text())["body"])
        published = request.getfixturevalue("published_keys")  # one more invoke, only where needed
        _assert_a_control_plane_admits(result.body["token"], asked, published)
    # And a token the provisioner put is in its service's secret, one a control plane admits a task of
    # that service with, the secret's other keys kept
    for issued in result.answer.get("issued", []) if isinstance(result.answer, dict) else []:
        published = request.getfixturevalue("published_keys")
        _assert_the_secret_admits_the_service(sam_stack, issued, published)


def test_readme_command_on_the_committed_events(sam_stack: SamStack, tmp_path: Path) -> None:
    # Given a copy of the project's events/ and samconfig.toml, re-signed for this run, next to a build
    project = tmp_path / "project"
    shutil.copytree(REPO / "events", project / "events")
    shutil.copy(REPO / "samconfig.toml", project / "samconfig.toml")
    (project / ".aws-sam").mkdir()
    (project / ".aws-sam" / "build").symlink_to(sam_stack.build_template.parent, target_is_directory=True)
    written = write_events(sam_stack.world, project / "events", server_id=SERVER_ID)
    # (the refresh rewrites the committed files; it adds none, and tag compliance's come out unchanged)
    assert {path.relative_to(project) for path in written} == {
        event.path.relative_to(REPO) for event in sample_events(EVENTS)
    }
    for path in (REPO / "events" / "tag_compliance").glob("*.json"):
        assert (project / path.relative_to(REPO)).read_text() == path.read_text(), path.name
    (project / "events" / "env.json").write_text(json.dumps(sam_stack.env_vars, indent=2) + "\n")

    # When the README's command runs there, as typed: the built template, env file and image come from
    # .aws-sam/build and samconfig.toml's `local` environment
    result = sam_stack.invoke(
        "VerifierFunction", "events/verifier/allowed.json", label="README command", cwd=project, as_typed=True
    )

    # Then the function allows the backend task
    _assert_answer("verifier/allowed", result)


def test_replay_table_makes_a_token_single_use(sam_stack: SamStack, tmp_path: Path) -> None:
    # Given the verifier with KUMA_IAM_REPLAY_TABLE set (as ReplayProtection=Enabled does) and a fresh event
    env_vars = json.loads(sam_stack.env_file.read_text())
    env_vars["VerifierFunction"]["KUMA_IAM_REPLAY_TABLE"] = "kuma-iam-replay"
    env_file = tmp_path / "env-replay.json"
    env_file.write_text(json.dumps(env_vars))
    (event,) = [
        path
        for path in write_events(sam_stack.world, tmp_path, server_id=SERVER_ID)
        if path.parent.name == "verifier" and path.stem == "allowed"
    ]

    # When the same event is invoked twice
    first = sam_stack.invoke("VerifierFunction", event, label="replay: first use", env_file=env_file)
    second = sam_stack.invoke("VerifierFunction", event, label="replay: second use", env_file=env_file)

    # Then the first use is allowed and the second denied as replayed
    assert (first.status, first.body.get("allowed")) == (200, True), first.explain()
    assert (second.status, second.body.get("reason")) == (200, "replayed"), second.explain()


@pytest.fixture(scope="module")
def published_keys(sam_stack: SamStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """GET /v1/keys answered by the built function once: the keys a control plane would be given."""
    (keys,) = [event for event in sample_events(EVENTS) if event.label == "token_issuer/keys"]
    answer = sam_stack.invoke(
        "TokenIssuerFunction",
        sam_stack.event_file(keys, tmp_path_factory.mktemp("keys")),
        label="keys (for tokens)",
    )
    assert answer.status == 200, answer.explain()
    return answer.body


def _assert_the_secret_admits_the_service(
    sam_stack: SamStack, issued: dict[str, Any], published: dict[str, Any]
) -> None:
    world = sam_stack.world
    admin = world.admins[world.home_account]
    secrets = client_as(world, "secretsmanager", admin)
    document = json.loads(secrets.get_secret_value(SecretId=issued["secret"])["SecretString"])
    (task,) = [task for task in DEMO_TASKS if task.tags.get("kuma.io/service") == issued["service"]]
    assert task.secret is not None
    assert {key: value for key, value in document.items() if key != "token"} == json.loads(task.secret)
    claims = validate_dataplane_token(
        document["token"],
        dataplane_keys_for(published, issued["mesh"]),
        now=time.time(),
        mesh=issued["mesh"],
        name=f"{issued['service']}-01",  # any name: one token serves every task of the service
        tags={"kuma.io/service": [issued["service"]]},
    )
    assert claims["jti"] == issued["jti"]


def _assert_a_control_plane_admits(token: str, asked: dict[str, Any], published: dict[str, Any]) -> None:
    """As kuma-cp configured from `published` admits the proxy that asked for it (`asked`: the POST body)."""
    spec = asked["dataplane"]
    if "zone" in asked:
        validate_zone_token(
            token, zone_keys_for(published), now=time.time(), zone=asked["zone"], scope=spec["type"]
        )
    else:
        validate_dataplane_token(
            token,
            dataplane_keys_for(published, spec["mesh"]),
            now=time.time(),
            mesh=spec["mesh"],
            name=spec["name"],
            tags=spec.get("tags", {}),
            workload=spec.get("workload"),
        )
