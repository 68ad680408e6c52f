"""Hostile input to the token provisioner, through the real handler on the embedded AWS: events that are
not ECS's (or lie about a task), tags that would make another secret's name, and secrets whose value is not
what a service's stack writes. Each gets a precise refusal or skip reason in the summary, never a token for
the wrong service, never a traceback, and nothing an event carries is logged whole."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from kuma_iam_cli.local.provisioner_events import task_state_change
from kuma_iam_cli.local.seed import HOME_ACCOUNT, DemoWorld
from support.aws_clients import TaskRole
from support.captured_output import EverythingLogged
from support.provisioner_harness import EcsWorld, Provisioner, reasons

pytestmark = pytest.mark.integration

MakeRole = Callable[..., TaskRole]
CANARY = "kuma-canary-7f3a"  # a value only the event carries: it must reach no log


def _agreeing_role(make_task_role: MakeRole, service: str) -> TaskRole:
    tags = {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "kuma.io/service": service}
    return make_task_role(HOME_ACCOUNT, f"{service}-task", tags)


def _changed(event: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    target = changed
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return changed


# How an event can be wrong, and the words of the refusal that names it.
MALFORMED: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("not-an-object", lambda event: [event], "JSON list"),
    ("null", lambda event: None, "JSON NoneType"),
    ("wrong-source", lambda event: _changed(event, ("source",), "aws.ec2"), "source"),
    (
        "wrong-detail-type",
        lambda event: _changed(event, ("detail-type",), "ECS Service Action"),
        "not one this function takes",
    ),
    ("no-task", lambda event: _changed(event, ("detail", "taskArn"), None), "detail.taskArn"),
    ("no-detail", lambda event: _changed(event, ("detail",), None), "detail"),
    ("task-not-a-string", lambda event: _changed(event, ("detail", "taskArn"), [CANARY]), "detail.taskArn"),
    (
        "traversal-in-task-arn",
        lambda event: _changed(
            event, ("detail", "taskArn"), event["detail"]["taskArn"].replace("/kuma-mesh/", "/kuma-mesh/../")
        ),
        "not an ECS task ARN",
    ),
    (
        "another-clusters-task",
        lambda event: _changed(
            event, ("detail", "clusterArn"), event["detail"]["clusterArn"].replace("kuma-mesh", "batch-jobs")
        ),
        "not a task of clusterArn",
    ),
    (
        "huge",
        lambda event: _changed(event, ("detail", "containers"), [{"name": CANARY}] * 20_000),
        "EventBridge events are at most",
    ),
]


@pytest.mark.parametrize(("name", "malform", "problem"), MALFORMED, ids=[case[0] for case in MALFORMED])
def test_an_event_that_is_not_ecss_is_refused_naming_its_problem(
    name: str,
    malform: Callable[[dict[str, Any]], Any],
    problem: str,
    everything_logged: EverythingLogged,
    provisioner: Provisioner,
    ecs_world: EcsWorld,
    make_task_role: MakeRole,
) -> None:
    # Given a tagged task whose role agrees, and an event about it made wrong in the case's way
    service = ecs_world.new_service("hostile")
    ecs_world.make_secret(service)
    task = ecs_world.start_task(service, _agreeing_role(make_task_role, service).arn)
    event = task_state_change(ecs_world.cluster_arn, task)
    event["detail"]["group"] = f"service:{CANARY}"
    event = malform(event)
    everything_logged.discard()

    # When it reaches the provisioner
    answer = provisioner(event)

    # Then the summary refuses it, naming the problem; no task was read, no token issued, nothing put
    assert answer["tasks"] == 0
    assert answer["issued"] == []
    assert answer["error"]["code"] == "invalid_event"
    assert problem in answer["error"]["message"]
    assert len(answer["error"]["message"]) < 500
    assert ecs_world.document(service) == {}
    # And the refusal is logged with its reason, but nothing the event carried beyond it
    logged = everything_logged.text()
    assert "event refused" in logged
    assert "Traceback" not in logged
    assert CANARY not in logged


def test_what_an_event_says_about_a_tasks_tags_and_role_is_never_believed(
    provisioner: Provisioner, ecs_world: EcsWorld, demo_world: DemoWorld, make_task_role: MakeRole
) -> None:
    # Given a task ECS knows as untagged, and a service whose role would agree
    service = ecs_world.new_service("lied")
    ecs_world.make_secret(service)
    role = _agreeing_role(make_task_role, service)
    task = ecs_world.start_task(None, role.arn, tags={"team": "x"})
    # And an event about it that claims the service's tag, another role and definition
    event = task_state_change(ecs_world.cluster_arn, task)
    event["detail"]["tags"] = [{"key": "kuma.io/service", "value": service}]
    event["detail"]["overrides"] = {"taskRoleArn": demo_world.role_arn(HOME_ACCOUNT, "frontend-task")}
    event["detail"]["taskDefinitionArn"] = "arn:aws:ecs:us-east-1:111111111111:task-definition/other:1"

    # When it reaches the provisioner
    answer = provisioner(event)

    # Then the task is what ECS says it is: untagged, and no token went anywhere
    assert reasons(answer) == {task: "untagged"}
    assert ecs_world.document(service) == {}


def test_an_event_pairing_a_served_cluster_with_a_task_of_another_is_refused_before_ecs_is_asked(
    provisioner: Provisioner, ecs_world: EcsWorld, make_task_role: MakeRole
) -> None:
    # Given a tagged task in the cluster the provisioner does not serve, whose role agrees
    service = ecs_world.new_service("elsewhere")
    ecs_world.make_secret(service)
    task = ecs_world.start_task(
        service, _agreeing_role(make_task_role, service).arn, cluster=ecs_world.demo.other_cluster_arn
    )

    # When an event claims it for the served cluster
    answer = provisioner(task_state_change(ecs_world.cluster_arn, task))

    # Then it is refused, and no token is put
    assert answer["error"]["code"] == "invalid_event"
    assert ecs_world.document(service) == {}


@pytest.mark.parametrize(
    "service_tag",
    ["../admin", "backend/../frontend", "a/b", "..", "backend ", "b" * 254],
    ids=["parent", "inner-parent", "slash", "dots", "trailing-space", "too-long"],
)
def test_a_service_tag_that_would_name_another_secret_gets_none(
    service_tag: str, provisioner: Provisioner, ecs_world: EcsWorld, demo_world: DemoWorld
) -> None:
    # Given a task tagged with a service name that is no Kuma service name, run with a role that allows
    # any service of its mesh
    role = demo_world.role_arn(HOME_ACCOUNT, "frontend-task")
    task = ecs_world.start_task(None, role, tags={"kuma.io/service": service_tag})
    before = {
        name: ecs_world.raw_value(name) for name in ("backend", "frontend") if ecs_world.secret_exists(name)
    }

    # When it starts
    answer = provisioner(task_state_change(ecs_world.cluster_arn, task))

    # Then it is skipped for its tag, and no secret changed
    assert reasons(answer) == {task: "invalid_task_tags"}
    assert answer["issued"] == []
    assert {name: ecs_world.raw_value(name) for name in before} == before


SECRETS: list[tuple[str, dict[str, Any], str]] = [
    ("json-array", {"SecretString": '["token"]'}, "secret_not_json_object"),
    ("json-string", {"SecretString": '"token"'}, "secret_not_json_object"),
    ("duplicate-keys", {"SecretString": '{"token": "a", "token": "b"}'}, "secret_not_json_object"),
    ("binary", {"SecretBinary": b"\x00\x01token"}, "secret_not_json_object"),
    ("no-room-for-a-token", {"SecretString": json.dumps({"padding": "x" * 63_000})}, "secret_too_large"),
]


@pytest.mark.parametrize(("name", "value", "reason"), SECRETS, ids=[case[0] for case in SECRETS])
def test_a_secret_not_as_a_services_stack_writes_it_is_reported_and_left_as_it_is(
    name: str,
    value: dict[str, Any],
    reason: str,
    provisioner: Provisioner,
    ecs_world: EcsWorld,
    make_task_role: MakeRole,
) -> None:
    # Given a tagged task whose role agrees, and its service's secret holding the case's value
    service = ecs_world.new_service("odd")
    ecs_world.secrets.create_secret(Name=ecs_world.secret_name(service), **value)
    task = ecs_world.start_task(service, _agreeing_role(make_task_role, service).arn)
    versions = ecs_world.versions(service)

    # When it starts
    answer = provisioner(task_state_change(ecs_world.cluster_arn, task))

    # Then the task is skipped with the reason, and the secret keeps its one version
    assert reasons(answer) == {task: reason}
    assert ecs_world.versions(service) == versions


def test_a_token_key_that_holds_no_string_is_replaced_and_the_other_keys_kept(
    provisioner: Provisioner, ecs_world: EcsWorld, make_task_role: MakeRole
) -> None:
    service = ecs_world.new_service("odd")
    ecs_world.make_secret(service, json.dumps({"token": {"not": "a token"}, "owner": "team"}))
    task = ecs_world.start_task(service, _agreeing_role(make_task_role, service).arn)

    answer = provisioner(task_state_change(ecs_world.cluster_arn, task))

    assert [issued["service"] for issued in answer["issued"]] == [service]
    document = ecs_world.document(service)
    assert document["owner"] == "team"
    assert isinstance(document["token"], str)
