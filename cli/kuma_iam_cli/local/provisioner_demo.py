"""The token provisioner's part of the demo world: an ECS cluster it serves (and one it does not), task
definitions for the demo task roles, tagged tasks with their services' empty secrets `<prefix>/<service>`
(SecretString `{}`, as a service's own stack creates them), and the provisioner's least-privilege user.

moto's quirks met here: an ECS task's lastStatus steps towards STOPPED on every DescribeTasks (its state
manager's default), so the provisioner judges a task by its desiredStatus, which ECS keeps; and moto's ECS
resolves a cluster named in ListTasks or DescribeTasks by substring, so the provisioner keeps only answers
for the exact cluster it asked about.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from kuma_iam_cli.local.embedded_aws import EmbeddedAws
from kuma_iam_cli.local.seed import DemoWorld, UserCredentials, create_user, findings_topic_arn
from kuma_iam_cli.local.token_keys import TokenKeys

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_iam import IAMClient
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
    cluster_arn: str
    other_cluster_arn: str
    secret_prefix: str
    provisioner: UserCredentials
    task_arns: Mapping[str, str]  # DemoTask.name -> the running task's ARN

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ProvisionerDemo:
        data: dict[str, Any] = json.loads(text)
        data["provisioner"] = UserCredentials(**data["provisioner"])
        return cls(**data)


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


def seed_provisioner_demo(aws: EmbeddedAws, world: DemoWorld) -> ProvisionerDemo:
    """The clusters, the provisioner's user, and the demo tasks with their secrets, in the home account; call
    before `enable_signature_checks`."""
    account = world.home_account
    ecs = cast("ECSClient", aws.client_in_account("ecs", account))
    secrets = cast("SecretsManagerClient", aws.client_in_account("secretsmanager", account))
    iam = cast("IAMClient", aws.client_in_account("iam", account))
    cluster_arn = ecs.create_cluster(clusterName=SERVED_CLUSTER)["cluster"]["clusterArn"]
    other_arn = ecs.create_cluster(clusterName=OTHER_CLUSTER)["cluster"]["clusterArn"]
    user = create_user(iam, account, PROVISIONER_USER_NAME, PROVISIONER_STATEMENTS)
    task_arns = {}
    for task in DEMO_TASKS:
        task_arns[task.name] = run_task(
            ecs, SERVED_CLUSTER, family=task.name, role_arn=world.role_arn(account, task.role), tags=task.tags
        )
        if task.secret is not None:
            secrets.create_secret(
                Name=f"{SECRET_PREFIX}/{task.tags[SERVICE_TAG]}",
                SecretString=task.secret,
                Description="the service's dataplane token, kept by kuma-iam's token provisioner",
            )
    return ProvisionerDemo(cluster_arn, other_arn, SECRET_PREFIX, user, task_arns)


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


def provisioner_environment(world: DemoWorld, keys: TokenKeys, demo: ProvisionerDemo) -> dict[str, str]:
    """The token provisioner handler's environment against this world, as its own least-privilege user."""
    endpoints = ("", "_STS", "_IAM", "_DYNAMODB", "_KMS", "_SECRETS_MANAGER", "_ECS", "_SNS", "_EVENTBRIDGE")
    return {
        "AWS_ACCESS_KEY_ID": demo.provisioner.access_key_id,
        "AWS_SECRET_ACCESS_KEY": demo.provisioner.secret_access_key,
        "AWS_REGION": world.region,
        "AWS_DEFAULT_REGION": world.region,
        **{f"AWS_ENDPOINT_URL{suffix}": world.endpoint_url for suffix in endpoints},
        "KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS": ",".join(world.authorized_accounts),
        "KUMA_IAM_HOME_ACCOUNT_ID": world.home_account,
        "KUMA_IAM_ECS_CLUSTERS": demo.cluster_arn,
        "KUMA_IAM_SECRET_PREFIX": demo.secret_prefix,
        "KUMA_IAM_SIGNING_KEYS": keys.signing_keys,
        "KUMA_IAM_MESHES": ",".join(keys.meshes),
        "KUMA_IAM_REVOCATION_TABLE": keys.revocation_table,
        "KUMA_IAM_FINDINGS_TOPIC_ARN": findings_topic_arn(world),
        "POWERTOOLS_SERVICE_NAME": "kuma-iam",
    }
