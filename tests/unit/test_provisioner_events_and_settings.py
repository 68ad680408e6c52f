"""The provisioner's edges: the events it takes (ECS task state changes, the schedule) and refuses, and its
settings (signer choice, clusters, secret prefix, lifetimes), each refusal naming its variable."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from kuma_iam.config import TokenProvisionerSettings, TokenSigner
from kuma_iam.errors import ConfigError, InvalidRequest
from kuma_iam.eventbridge import ScheduledEvent
from kuma_iam.provisioning.events import TaskStateChangeEvent, parse_provisioner_event

CLUSTER = "arn:aws:ecs:us-east-1:111111111111:cluster/mesh"
TASK = "arn:aws:ecs:us-east-1:111111111111:task/mesh/0f3b2c4d5e6f478899aabbccddeeff00"
TASK_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "detail-type": "ECS Task State Change",
    "source": "aws.ecs",
    "account": "111111111111",
    "time": "2026-03-01T12:00:00Z",
    "region": "us-east-1",
    "resources": [TASK],
    "detail": {
        "clusterArn": CLUSTER,
        "taskArn": TASK,
        "desiredStatus": "RUNNING",
        "lastStatus": "PROVISIONING",
        "attachments": [{"id": "x", "type": "eni", "status": "PRECREATED"}],
        "containers": [{"name": "app", "lastStatus": "PENDING"}],
        "overrides": {"containerOverrides": [{"name": "app"}]},
        "version": 1,
    },
}
SWEEP: dict[str, Any] = {
    **TASK_EVENT,
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "resources": ["arn:aws:events:us-east-1:111111111111:rule/sweep"],
    "detail": {},
}


def test_a_task_state_change_and_a_tick_are_taken() -> None:
    change = parse_provisioner_event(copy.deepcopy(TASK_EVENT))
    assert isinstance(change, TaskStateChangeEvent)
    assert (change.detail.clusterArn, change.detail.taskArn) == (CLUSTER, TASK)
    assert isinstance(parse_provisioner_event(copy.deepcopy(SWEEP)), ScheduledEvent)


def test_what_an_event_says_beyond_which_task_is_never_read() -> None:
    # Given an event carrying tags, a role and a definition of its own (non-string tags among them)
    event = copy.deepcopy(TASK_EVENT)
    event["detail"]["tags"] = [{"key": "kuma.io/service", "value": 7}, {"key": ["x"]}]
    event["detail"]["overrides"]["taskRoleArn"] = "arn:aws:iam::111111111111:role/admin"
    event["detail"]["taskDefinitionArn"] = "arn:aws:ecs:us-east-1:111111111111:task-definition/evil:1"

    # When it is parsed
    change = parse_provisioner_event(event)

    # Then it is taken, and what the provisioner learns from it is which task, in which cluster: no more
    assert isinstance(change, TaskStateChangeEvent)
    assert change.detail.model_dump() == {
        "clusterArn": CLUSTER,
        "taskArn": TASK,
        "desiredStatus": "RUNNING",
        "lastStatus": "PROVISIONING",
    }


def test_a_task_arn_in_the_oldest_format_names_no_cluster_and_is_taken() -> None:
    event = _with(
        ("detail", "taskArn"), "arn:aws:ecs:us-east-1:111111111111:task/1b2c3d4e-5f60-4718-8a9b-0c1d2e3f4a5b"
    )
    assert isinstance(parse_provisioner_event(event), TaskStateChangeEvent)


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    event = copy.deepcopy(TASK_EVENT)
    target = event
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return event


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        ([], "JSON list"),
        (_with(("detail-type",), "ECS Container Instance State Change"), "not one this function takes"),
        (_with(("detail-type",), None), "not one this function takes"),
        (_with(("source",), "aws.iam"), "source"),
        (_with(("detail", "taskArn"), None), "detail.taskArn"),
        (_with(("detail", "clusterArn"), "mesh"), "detail.clusterArn"),
        (_with(("detail", "clusterArn"), "arn:aws:iam::111111111111:role/x"), "detail.clusterArn"),
        (_with(("detail", "taskArn"), 7), "detail.taskArn"),
        (_with(("account",), "1111"), "account"),
        (_with(("detail", "lastStatus"), "x" * 65), "detail.lastStatus"),
        (_with(("detail", "padding"), "x" * 300_000), "bytes"),
        (_with(("detail", "containers"), [{"name": "app"}] * 30_000), "bytes"),
        # a task ARN that is no task's, or another cluster's, account's or region's
        (_with(("detail", "taskArn"), f"{CLUSTER}/../task/x"), "detail.taskArn: .* is not an ECS task ARN"),
        (_with(("detail", "taskArn"), TASK.replace("/mesh/", "/mesh/../")), "not an ECS task ARN"),
        (_with(("detail", "taskArn"), TASK.replace("/mesh/", "/other/")), "not a task of clusterArn"),
        (
            _with(("detail", "taskArn"), TASK.replace("111111111111", "222222222222")),
            "not a task of clusterArn",
        ),
        (_with(("detail", "taskArn"), TASK.replace("us-east-1", "eu-west-1")), "not a task of clusterArn"),
        (_with(("detail", "clusterArn"), f"{CLUSTER}/.."), "detail.clusterArn: .* is not an ECS cluster ARN"),
        (_with(("detail", "clusterArn"), ["a", "list"]), "detail.clusterArn"),
        (_with(("detail",), "a string"), "detail"),
    ],
)
def test_anything_else_is_refused_naming_the_problem(event: Any, problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem):
        parse_provisioner_event(event)


BASE = {"KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS": "111111111111", "KUMA_IAM_REVOCATION_TABLE": "revocations"}
KEYS = {"KUMA_IAM_SIGNING_KEYS": "1=alias/kuma-iam-dataplane-tokens"}
CP = {
    "KUMA_IAM_TOKEN_SIGNER": "control-plane",
    "KUMA_IAM_CP_URL": "https://kuma-cp.mesh.internal:5682",
    "KUMA_IAM_CP_TOKEN_SECRET": "arn:aws:secretsmanager:us-east-1:111111111111:secret:kuma-cp/admin-AbCdEf",
}


def test_defaults_sign_with_the_issuers_keys() -> None:
    settings = TokenProvisionerSettings.from_env(BASE | KEYS)
    assert settings.signer is TokenSigner.SIGNING_KEYS
    assert settings.signing is not None
    assert settings.control_plane is None
    assert str(settings.signing.signing_keys[0]) == "kid 1 (alias/kuma-iam-dataplane-tokens)"
    assert settings.ecs_clusters == ()
    assert settings.secret_prefix == "kuma-iam/dataplane-tokens"
    assert (settings.token_valid_for, settings.token_refresh_margin) == (
        timedelta(hours=24),
        timedelta(hours=8),
    )
    assert settings.meshes == ("default",)


def test_the_control_plane_signer_needs_no_keys_of_its_own() -> None:
    settings = TokenProvisionerSettings.from_env(BASE | CP | {"KUMA_IAM_CP_URL": "https://cp:5682/"})
    assert settings.signer is TokenSigner.CONTROL_PLANE
    assert settings.signing is None
    assert settings.control_plane is not None
    assert settings.control_plane.url == "https://cp:5682"
    assert settings.control_plane.ca_secret_arn is None


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        (BASE, "KUMA_IAM_SIGNING_KEYS: Field required"),
        ({**BASE, **CP, "KUMA_IAM_CP_URL": "http://cp:5681"}, "KUMA_IAM_CP_URL: .*https://"),
        ({**BASE, **CP, "KUMA_IAM_CP_URL": "https://cp:5682/?token=x"}, "KUMA_IAM_CP_URL: .*no query"),
        ({**BASE, **CP, "KUMA_IAM_CP_CA_SECRET": "kuma-cp/ca"}, "KUMA_IAM_CP_CA_SECRET: .*secret ARN"),
        (
            {k: v for k, v in (BASE | CP).items() if k != "KUMA_IAM_CP_TOKEN_SECRET"},
            "KUMA_IAM_CP_TOKEN_SECRET",
        ),
        (BASE | KEYS | {"KUMA_IAM_TOKEN_SIGNER": "kms"}, "KUMA_IAM_TOKEN_SIGNER"),
        (BASE | KEYS | {"KUMA_IAM_ECS_CLUSTERS": "mesh,not a cluster"}, "KUMA_IAM_ECS_CLUSTERS: .*neither"),
        (BASE | KEYS | {"KUMA_IAM_SECRET_PREFIX": "tokens/"}, "KUMA_IAM_SECRET_PREFIX: .*trailing"),
        (BASE | KEYS | {"KUMA_IAM_SECRET_PREFIX": "to kens"}, "KUMA_IAM_SECRET_PREFIX"),
        (BASE | KEYS | {"KUMA_IAM_SECRET_PREFIX": "kuma/../other"}, "KUMA_IAM_SECRET_PREFIX: .*'\\.\\.'"),
        (BASE | KEYS | {"KUMA_IAM_SECRET_PREFIX": "./tokens"}, "KUMA_IAM_SECRET_PREFIX: .*segment"),
        (BASE | KEYS | {"KUMA_IAM_SECRET_PREFIX": "/tokens"}, "KUMA_IAM_SECRET_PREFIX: .*leading"),
        (BASE | KEYS | {"KUMA_IAM_SECRET_PREFIX": "a//b"}, "KUMA_IAM_SECRET_PREFIX"),
        (
            BASE | KEYS | {"KUMA_IAM_TOKEN_REFRESH_MARGIN": "24h"},
            "must be shorter than KUMA_IAM_TOKEN_VALID_FOR",
        ),
        (BASE | KEYS | {"KUMA_IAM_TOKEN_VALID_FOR": "48h"}, "longer than KUMA_IAM_TOKEN_MAX_VALID_FOR"),
        (BASE | KEYS | {"KUMA_IAM_TOKEN_VALID_FOR": "30s"}, "KUMA_IAM_TOKEN_VALID_FOR: .*at least"),
        ({**KEYS, "KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS": "111111111111"}, "KUMA_IAM_REVOCATION_TABLE"),
    ],
)
def test_a_bad_setting_fails_at_start_naming_its_variable(environment: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TokenProvisionerSettings.from_env(environment)


def test_a_long_lived_token_needs_a_longer_maximum() -> None:
    settings = TokenProvisionerSettings.from_env(
        BASE | KEYS | {"KUMA_IAM_TOKEN_VALID_FOR": "72h", "KUMA_IAM_TOKEN_MAX_VALID_FOR": "168h"}
    )
    assert settings.token_valid_for == timedelta(hours=72)
