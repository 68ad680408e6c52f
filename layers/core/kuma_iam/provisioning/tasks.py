"""What an ECS task claims to be, read from ECS's own description of it (never from an event's payload): its
kuma.io/service (and optional kuma.io/mesh, kuma.io/workload) tags, and the IAM role it runs with. Pure."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from kuma_iam.provisioning.summary import SkipReason
from kuma_iam.rules import DNS_LABEL, MESH_TAG, SERVICE_NAME, SERVICE_TAG, WORKLOAD_TAG, shown

# ECS tells a task to run until it is told to stop; a task told to stop needs no token.
RUNNING = "RUNNING"
# arn:<partition>:iam::<account>:role[/path/]<name>
ROLE_ARN = re.compile(
    r"arn:(?P<partition>[a-z-]{3,16}):iam::(?P<account>[0-9]{12}):role/(?:[\x21-\x7e]{0,510}/)?"
    r"(?P<name>[\w+=,.@-]{1,64})",
    re.ASCII,
)


@dataclass(frozen=True, slots=True)
class EcsTask:
    """A task as DescribeTasks (include=TAGS) reports it: the fields the provisioner reads."""

    arn: str
    cluster_arn: str
    desired_status: str
    task_definition_arn: str | None
    role_override: str | None  # overrides.taskRoleArn: a RunTask may replace the task definition's role
    tags: Mapping[str, str]

    @classmethod
    def from_ecs(cls, described: Mapping[str, Any]) -> EcsTask:
        """KeyError when the task's ARN or cluster is not there to read (aws.aws_errors: not AWS's answer);
        a field of another type than ECS's is read as absent, never as something else."""
        overrides = described.get("overrides")
        tags = described.get("tags")
        return cls(
            arn=_required_text(described, "taskArn"),
            cluster_arn=_required_text(described, "clusterArn"),
            desired_status=_text(described.get("desiredStatus")) or "",
            task_definition_arn=_text(described.get("taskDefinitionArn")),
            role_override=_text(overrides.get("taskRoleArn")) if isinstance(overrides, Mapping) else None,
            tags={
                tag["key"]: tag.get("value", "")
                for tag in (tags if isinstance(tags, list) else [])
                if isinstance(tag, Mapping)
                and isinstance(tag.get("key"), str)
                and isinstance(tag.get("value", ""), str)
            },
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _required_text(described: Mapping[str, Any], field: str) -> str:
    value = _text(described.get(field))
    if value is None:
        raise KeyError(field)
    return value


@dataclass(frozen=True, slots=True)
class TaskClaim:
    """The mesh identity a task's tags claim; mesh and workload may come from its role instead."""

    task: EcsTask
    service: str
    mesh: str | None
    workload: str | None


@dataclass(frozen=True, slots=True)
class RoleRef:
    account: str
    name: str
    arn: str


@dataclass(frozen=True, slots=True)
class Skip:
    reason: SkipReason
    detail: str


def task_claim(task: EcsTask) -> TaskClaim | Skip:
    """The identity the task's tags claim, or why it claims none it could get a token for."""
    if task.desired_status != RUNNING:
        return Skip(
            SkipReason.TASK_STOPPING, f"the task's desired status is {task.desired_status or 'unknown'}"
        )
    service = task.tags.get(SERVICE_TAG)
    if service is None:
        return Skip(SkipReason.UNTAGGED, f"the task has no {SERVICE_TAG} tag")
    if not SERVICE_NAME.fullmatch(service):
        return Skip(
            SkipReason.INVALID_TASK_TAGS, f"{SERVICE_TAG} is {shown(service)}, not a Kuma service name"
        )
    for key in (MESH_TAG, WORKLOAD_TAG):
        value = task.tags.get(key)
        if value is not None and not DNS_LABEL.fullmatch(value):
            return Skip(SkipReason.INVALID_TASK_TAGS, f"{key} is {shown(value)}, not a Kuma name")
    return TaskClaim(task, service, task.tags.get(MESH_TAG), task.tags.get(WORKLOAD_TAG))


def task_role(role_arn: str | None, authorized_accounts: Collection[str]) -> RoleRef | Skip:
    """The task's role as IAM names it, if it is one this mesh may read at all."""
    if not role_arn:
        return Skip(SkipReason.NO_TASK_ROLE, "the task runs without a task role (taskRoleArn)")
    match = ROLE_ARN.fullmatch(role_arn)
    if match is None:
        return Skip(SkipReason.INVALID_TASK_ROLE, f"the task role {shown(role_arn)} is not an IAM role ARN")
    if match["account"] not in authorized_accounts:
        return Skip(
            SkipReason.ACCOUNT_NOT_AUTHORIZED,
            f"the task role is in account {match['account']}, which is not authorized",
        )
    return RoleRef(match["account"], match["name"], role_arn)
