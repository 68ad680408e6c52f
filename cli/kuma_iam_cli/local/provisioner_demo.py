"""The token provisioner's part of the demo world: an ECS cluster it serves (and one it does not), task
definitions for the demo task roles, tagged tasks with their services' empty secrets `<prefix>/<service>`
(SecretString `{}`, as a service's own stack creates them), and what its least-privilege user may do.
seed.py seeds it with the rest of the world, as it does compliance_demo.py's part.

moto's quirks met here: an ECS task's lastStatus steps towards STOPPED on every DescribeTasks (its state
manager's default), so the provisioner judges a task by its desiredStatus, which ECS keeps; and moto's ECS
resolves a cluster named in ListTasks or DescribeTasks by substring, so the provisioner keeps only answers
for the exact cluster it asked about.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

PROVISIONER_USER_NAME = "kuma-iam-token-provisioner"
SERVED_CLUSTER = "kuma-mesh"
OTHER_CLUSTER = "batch-jobs"  # a cluster the provisioner is not told to serve
SECRET_PREFIX = "kuma-iam/dataplane-tokens"  # noqa: S105 - a name, not a secret
SERVICE_TAG = "kuma.io/service"


@dataclass(frozen=True)
class DemoTask:
    """A task of the demo: which role it runs with, and which tags ECS propagated to it."""

    name: str
    role: str  # a task role of the demo world (seed.DEMO_TASK_ROLES), in the home account
    tags: Mapping[str, str]
    secret: str | None  # the service's secret value as its stack made it; None: no secret


DEMO_TASKS: tuple[DemoTask, ...] = (
    # A service whose role is for it: gets a token.
    DemoTask("backend", "backend-task", {SERVICE_TAG: "backend"}, "{}"),
    # A role that allows any service in its mesh: gets a token for the service its task is tagged with.
    DemoTask("frontend", "frontend-task", {SERVICE_TAG: "frontend", "team": "web"}, '{"owner": "web-team"}'),
    # Not a mesh task at all.
    DemoTask("report-job", "untagged-task", {"team": "finance"}, None),
    # A task claiming a service its role is not for: no token, a finding.
    DemoTask("impostor", "backend-task", {SERVICE_TAG: "payments-api"}, "{}"),
)


@dataclass(frozen=True)
class ProvisionerDemo:
    """Where the provisioner's demo tasks run and where their secrets are (the world's `provisioning`)."""

    cluster_arn: str
    other_cluster_arn: str
    secret_prefix: str
    task_arns: Mapping[str, str]  # DemoTask.name -> the running task's ARN

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ProvisionerDemo:
        return cls(**json.loads(text))

    def secret_name(self, service: str) -> str:
        return f"{self.secret_prefix}/{service}"


# What the provisioner may do. moto matches ECS, Secrets Manager, KMS and DynamoDB actions against "*" only
# (it knows no resource ARN for them); the template names the clusters, the secret prefix, keys and tables.
PROVISIONER_STATEMENTS: list[dict[str, Any]] = [
    {
        "Effect": "Allow",
        "Action": ["ecs:ListTasks", "ecs:DescribeTasks", "ecs:DescribeTaskDefinition"],
        "Resource": "*",
    },
    {"Effect": "Allow", "Action": ["iam:GetRole"], "Resource": "*"},
    {
        "Effect": "Allow",
        "Action": ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
        "Resource": "*",
    },
    {"Effect": "Allow", "Action": ["kms:Sign", "kms:GetPublicKey"], "Resource": "*"},
    {"Effect": "Allow", "Action": ["dynamodb:Query"], "Resource": "*"},
    {"Effect": "Allow", "Action": ["sns:Publish", "events:PutEvents"], "Resource": "*"},
]


def seed_provisioner_tasks(
    ecs: ECSClient, secrets: SecretsManagerClient, role_arn: Callable[[str], str]
) -> ProvisionerDemo:
    """The clusters, and the demo tasks (running with `role_arn(<demo task role>)`) with their secrets, in the
    account of the clients; seed.seed_demo_world calls it before signatures are checked."""
    cluster_arn = ecs.create_cluster(clusterName=SERVED_CLUSTER)["cluster"]["clusterArn"]
    other_arn = ecs.create_cluster(clusterName=OTHER_CLUSTER)["cluster"]["clusterArn"]
    task_arns = {}
    for task in DEMO_TASKS:
        task_arns[task.name] = run_task(
            ecs, SERVED_CLUSTER, family=task.name, role_arn=role_arn(task.role), tags=task.tags
        )
        if task.secret is not None:
            secrets.create_secret(
                Name=f"{SECRET_PREFIX}/{task.tags[SERVICE_TAG]}",
                SecretString=task.secret,
                Description="the service's dataplane token, kept by kuma-iam's token provisioner",
            )
    return ProvisionerDemo(cluster_arn, other_arn, SECRET_PREFIX, task_arns)


def run_task(
    ecs: ECSClient,
    cluster: str,
    *,
    family: str,
    role_arn: str | None,
    tags: Mapping[str, str],
    role_override: str | None = None,
) -> str:
    """Register `family` with the task role (a new revision each time) and run one task of it on Fargate, its
    tags as ECS propagates them from the service (PropagateTags: SERVICE); `role_override` is RunTask's
    overrides.taskRoleArn, the role the task then runs with instead."""
    definition: dict[str, Any] = {
        "family": family,
        "containerDefinitions": [
            {"name": "app", "image": "public.ecr.aws/docker/library/busybox", "memory": 128}
        ],
    }
    if role_arn is not None:
        definition["taskRoleArn"] = role_arn
    arn = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    started = ecs.run_task(
        cluster=cluster,
        taskDefinition=arn,
        launchType="FARGATE",
        tags=[{"key": key, "value": value} for key, value in tags.items()],
        **({"overrides": {"taskRoleArn": role_override}} if role_override else {}),  # type: ignore[arg-type]
    )
    return started["tasks"][0]["taskArn"]
