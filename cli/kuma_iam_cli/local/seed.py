"""The demo world on the embedded AWS: three accounts, the verifier's users, a reader role, task roles, and
the tag-compliance function's user, roles and outputs (compliance_demo.py)."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import boto3

from kuma_iam_cli.local.compliance_demo import (
    COMPLIANCE_DEMO_ROLES,
    COMPLIANCE_ROLE_NAME,
    COMPLIANCE_USER_NAME,
    COMPLIANCE_USER_STATEMENTS,
    FINDINGS_TOPIC_NAME,
    IDEMPOTENCY_TABLE,
    TAG_ADMINS,
    seed_compliance_outputs,
    seed_compliance_roles,
)
from kuma_iam_cli.local.embedded_aws import EmbeddedAws
from kuma_iam_cli.local.gateway import GatewayCaller

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sts import STSClient

logger = logging.getLogger(__name__)

HOME_ACCOUNT = "111111111111"
PARTNER_ACCOUNT = "222222222222"
OUTSIDER_ACCOUNT = "333333333333"
DEMO_REGION = "us-east-1"

READER_ROLE_NAME = "kuma-iam-reader"
VERIFIER_USER_NAME = "kuma-iam-verifier"
CONTROL_PLANE_USER_NAME = "control-plane"
CI_USER_NAME = "ci-user"
ECS_AGENT_USER_NAME = "ecs-agent"
# Holds every right in its account, so the world can still be changed once moto checks signatures.
ADMIN_USER_NAME = "embedded-admin"

_POLICY_NAME = "kuma-iam-demo"


@dataclass(frozen=True)
class TaskRoleSpec:
    account: str
    name: str
    tags: Mapping[str, str]
    path: str = "/"


DEMO_TASK_ROLES: tuple[TaskRoleSpec, ...] = (
    TaskRoleSpec(
        HOME_ACCOUNT,
        "backend-task",
        {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "kuma.io/service": "backend"},
        path="/ecs/",
    ),
    TaskRoleSpec(HOME_ACCOUNT, "frontend-task", {"kuma.io/type": "dataplane", "kuma.io/mesh": "default"}),
    TaskRoleSpec(HOME_ACCOUNT, "ingress-task", {"kuma.io/type": "ingress"}),
    TaskRoleSpec(HOME_ACCOUNT, "egress-task", {"kuma.io/type": "egress"}),
    TaskRoleSpec(
        HOME_ACCOUNT,
        "worker-task",
        {
            "kuma.io/type": "dataplane",
            "kuma.io/mesh": "default",
            "kuma.io/service": "worker",
            "kuma.io/workload": "worker",
        },
    ),
    TaskRoleSpec(HOME_ACCOUNT, "bad-type-task", {"kuma.io/type": "sidecar", "kuma.io/mesh": "default"}),
    TaskRoleSpec(HOME_ACCOUNT, "no-mesh-task", {"kuma.io/type": "dataplane"}),
    TaskRoleSpec(HOME_ACCOUNT, "untagged-task", {}),
    TaskRoleSpec(
        PARTNER_ACCOUNT,
        "payments-task",
        {"kuma.io/type": "dataplane", "kuma.io/mesh": "payments", "kuma.io/service": "payments"},
        path="/ecs/payments/",
    ),
    TaskRoleSpec(
        OUTSIDER_ACCOUNT,
        "intruder-task",
        {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "kuma.io/service": "backend"},
    ),
)


@dataclass(frozen=True)
class UserCredentials:
    """An IAM user of the demo world and its one access key."""

    user_name: str
    user_id: str
    arn: str
    account: str
    access_key_id: str
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True)
class DemoWorld:
    """What a seeded embedded AWS holds that callers need: where it is, who can sign, which roles exist."""

    endpoint_url: str
    region: str
    home_account: str
    partner_account: str
    outsider_account: str
    verifier: UserCredentials
    control_plane: UserCredentials
    ci_user: UserCredentials
    compliance: UserCredentials  # stands in for the tag-compliance function's execution role
    ecs_agents: Mapping[str, UserCredentials]
    admins: Mapping[str, UserCredentials]
    role_arns: Mapping[str, Mapping[str, str]]

    @property
    def authorized_accounts(self) -> tuple[str, str]:
        return (self.home_account, self.partner_account)

    def role_arn(self, account: str, role_name: str) -> str:
        try:
            return self.role_arns[account][role_name]
        except KeyError:
            raise LookupError(f"the demo world has no role {role_name!r} in account {account}") from None

    def to_json(self) -> str:
        """The whole world, secrets included: it describes a throwaway local moto, nothing real."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DemoWorld:
        data: dict[str, Any] = json.loads(text)
        users = {
            name: UserCredentials(**data[name])
            for name in ("verifier", "control_plane", "ci_user", "compliance")
        }
        return cls(
            endpoint_url=data["endpoint_url"],
            region=data["region"],
            home_account=data["home_account"],
            partner_account=data["partner_account"],
            outsider_account=data["outsider_account"],
            verifier=users["verifier"],
            control_plane=users["control_plane"],
            ci_user=users["ci_user"],
            compliance=users["compliance"],
            ecs_agents={account: UserCredentials(**user) for account, user in data["ecs_agents"].items()},
            admins={account: UserCredentials(**user) for account, user in data["admins"].items()},
            role_arns={account: dict(roles) for account, roles in data["role_arns"].items()},
        )


def seed_demo_world(aws: EmbeddedAws) -> DemoWorld:
    """Create the demo accounts on a fresh embedded AWS; call before `enable_signature_checks`."""
    if aws.signature_checks_enabled:
        raise RuntimeError("seed before enable_signature_checks(): seeding runs without credentials")
    started = time.perf_counter()
    accounts = (HOME_ACCOUNT, PARTNER_ACCOUNT, OUTSIDER_ACCOUNT)
    iam_by_account = {account: _iam(aws, account) for account in accounts}

    admins = {
        account: create_user(
            iam, account, ADMIN_USER_NAME, [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
        )
        for account, iam in iam_by_account.items()
    }
    ecs_agents = {
        account: create_user(
            iam,
            account,
            ECS_AGENT_USER_NAME,
            [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
        )
        for account, iam in iam_by_account.items()
    }

    home_iam = iam_by_account[HOME_ACCOUNT]
    verifier = create_user(
        home_iam,
        HOME_ACCOUNT,
        VERIFIER_USER_NAME,
        [
            # Resource "*": moto checks IAM reads against the role ARN only when the role exists, so a
            # narrower pattern would turn NoSuchEntity into AccessDenied for a missing role.
            {"Effect": "Allow", "Action": ["iam:GetRole", "iam:ListRoleTags"], "Resource": "*"},
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": f"arn:aws:iam::*:role/{READER_ROLE_NAME}",
            },
            {"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"},
            # moto matches DynamoDB actions against "*" only (it knows no table ARN for them).
            {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": "*"},
        ],
    )
    control_plane = create_user(
        home_iam,
        HOME_ACCOUNT,
        CONTROL_PLANE_USER_NAME,
        [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}],
    )
    ci_user = create_user(
        home_iam,
        HOME_ACCOUNT,
        CI_USER_NAME,
        [{"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}],
    )

    compliance = create_user(home_iam, HOME_ACCOUNT, COMPLIANCE_USER_NAME, COMPLIANCE_USER_STATEMENTS)

    partner_iam = iam_by_account[PARTNER_ACCOUNT]
    partner_iam.create_role(
        RoleName=READER_ROLE_NAME,
        AssumeRolePolicyDocument=_policy(
            [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{HOME_ACCOUNT}:root"},
                    "Action": "sts:AssumeRole",
                }
            ]
        ),
        Description="lets the kuma-iam verifier read role tags in this account",
    )
    partner_iam.put_role_policy(
        RoleName=READER_ROLE_NAME,
        PolicyName=_POLICY_NAME,
        PolicyDocument=_policy(
            [{"Effect": "Allow", "Action": ["iam:GetRole", "iam:ListRoleTags"], "Resource": "*"}]
        ),
    )

    role_arns: dict[str, dict[str, str]] = {account: {} for account in accounts}
    role_arns[PARTNER_ACCOUNT][READER_ROLE_NAME] = partner_iam.get_role(RoleName=READER_ROLE_NAME)["Role"][
        "Arn"
    ]
    for spec in DEMO_TASK_ROLES:
        role_arns[spec.account][spec.name] = _create_task_role(iam_by_account[spec.account], spec)
    for account, arns in seed_compliance_roles(iam_by_account, compliance.arn).items():
        role_arns[account].update(arns)
    seed_compliance_outputs(
        cast("SNSClient", aws.client_in_account("sns", HOME_ACCOUNT)),
        cast("DynamoDBClient", aws.client_in_account("dynamodb", HOME_ACCOUNT)),
    )

    world = DemoWorld(
        endpoint_url=aws.endpoint_url,
        region=aws.region,
        home_account=HOME_ACCOUNT,
        partner_account=PARTNER_ACCOUNT,
        outsider_account=OUTSIDER_ACCOUNT,
        verifier=verifier,
        control_plane=control_plane,
        ci_user=ci_user,
        compliance=compliance,
        ecs_agents=ecs_agents,
        admins=admins,
        role_arns=role_arns,
    )
    logger.info(
        "demo world seeded",
        extra={
            "roles": len(DEMO_TASK_ROLES) + len(COMPLIANCE_DEMO_ROLES) + 2,
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
    return world


def task_credentials(
    world: DemoWorld, account: str, role_name: str, session_name: str = "ecs-task"
) -> dict[str, str]:
    """Task-role credentials as ECS would hand them to a task: the account's ecs-agent assumes the role."""
    agent = world.ecs_agents[account]
    sts = cast("STSClient", _client(world, "sts", agent))
    answer = sts.assume_role(RoleArn=world.role_arn(account, role_name), RoleSessionName=session_name)
    credentials = answer["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
    }


def task_caller(
    world: DemoWorld, account: str, role_name: str, session_name: str = "ecs-task"
) -> tuple[dict[str, str], GatewayCaller]:
    """Fresh task-role credentials, and the caller API Gateway's IAM authorizer reports for calls they sign
    (STS names the session: `arn:…:assumed-role/<role>/<session>`, `AROA…:<session>`)."""
    credentials = task_credentials(world, account, role_name, session_name)
    sts = boto3.client(
        "sts",
        region_name=world.region,
        endpoint_url=world.endpoint_url,
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=credentials["AWS_SESSION_TOKEN"],
    )
    identity = sts.get_caller_identity()
    caller = GatewayCaller(
        access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        account_id=identity["Account"],
        user_arn=identity["Arn"],
        user_id=identity["UserId"],
        session_token=credentials["AWS_SESSION_TOKEN"],
    )
    return credentials, caller


def recreate_role(world: DemoWorld, account: str, role_name: str) -> str:
    """Delete the role and create it again alike (path, trust, tags, policies); returns the new RoleId."""
    iam = cast("IAMClient", _client(world, "iam", world.admins[account]))
    role = iam.get_role(RoleName=role_name)["Role"]
    inline_policies = {
        name: iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    }
    attached_arns = [
        policy["PolicyArn"]
        for policy in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
        if "PolicyArn" in policy
    ]
    for name in inline_policies:
        iam.delete_role_policy(RoleName=role_name, PolicyName=name)
    for policy_arn in attached_arns:
        iam.detach_role_policy(RoleName=role_name, PolicyArn=policy_arn)
    iam.delete_role(RoleName=role_name)

    created = iam.create_role(
        RoleName=role_name,
        Path=role["Path"],
        AssumeRolePolicyDocument=_as_policy_text(role["AssumeRolePolicyDocument"]),
        Tags=role.get("Tags", []),
        Description=role.get("Description", ""),
    )["Role"]
    for name, document in inline_policies.items():
        iam.put_role_policy(RoleName=role_name, PolicyName=name, PolicyDocument=_as_policy_text(document))
    for policy_arn in attached_arns:
        iam.attach_role_policy(RoleName=role_name, PolicyArn=policy_arn)
    logger.info("role re-created", extra={"account": account, "role_name": role_name})
    return created["RoleId"]


def verifier_environment(world: DemoWorld, *, server_id: str) -> dict[str, str]:
    """The environment the verifier handler runs with against this world."""
    return {
        "AWS_ACCESS_KEY_ID": world.verifier.access_key_id,
        "AWS_SECRET_ACCESS_KEY": world.verifier.secret_access_key,
        "AWS_REGION": world.region,
        "AWS_DEFAULT_REGION": world.region,
        "AWS_ENDPOINT_URL": world.endpoint_url,
        "AWS_ENDPOINT_URL_STS": world.endpoint_url,
        "AWS_ENDPOINT_URL_IAM": world.endpoint_url,
        "AWS_ENDPOINT_URL_DYNAMODB": world.endpoint_url,
        "KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS": ",".join(world.authorized_accounts),
        "KUMA_IAM_SERVER_ID": server_id,
        "POWERTOOLS_SERVICE_NAME": "kuma-iam",
    }


def findings_topic_arn(world: DemoWorld) -> str:
    return f"arn:aws:sns:{world.region}:{world.home_account}:{FINDINGS_TOPIC_NAME}"


def compliance_environment(world: DemoWorld, *, mode: str = "report") -> dict[str, str]:
    """The environment the tag-compliance handler (and `kuma-iam sweep`) runs with against this world."""
    return {
        "AWS_ACCESS_KEY_ID": world.compliance.access_key_id,
        "AWS_SECRET_ACCESS_KEY": world.compliance.secret_access_key,
        "AWS_REGION": world.region,
        "AWS_DEFAULT_REGION": world.region,
        **{
            f"AWS_ENDPOINT_URL{suffix}": world.endpoint_url
            for suffix in ("", "_STS", "_IAM", "_DYNAMODB", "_SNS", "_EVENTBRIDGE", "_SECURITYHUB")
        },
        "KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS": ",".join(world.authorized_accounts),
        "KUMA_IAM_HOME_ACCOUNT_ID": world.home_account,
        "KUMA_IAM_COMPLIANCE_ROLE_NAME": COMPLIANCE_ROLE_NAME,
        "KUMA_IAM_COMPLIANCE_MODE": mode,
        "KUMA_IAM_TAG_ADMINS": ",".join(TAG_ADMINS),
        "KUMA_IAM_FINDINGS_TOPIC_ARN": findings_topic_arn(world),
        "KUMA_IAM_IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE,
        "KUMA_IAM_SECURITY_HUB": "Enabled",
        "POWERTOOLS_SERVICE_NAME": "kuma-iam",
    }


def control_plane_caller(world: DemoWorld) -> GatewayCaller:
    """The control plane as the local gateway knows it: the one principal allowed to call the API."""
    user = world.control_plane
    return GatewayCaller(
        access_key_id=user.access_key_id,
        secret_access_key=user.secret_access_key,
        account_id=user.account,
        user_arn=user.arn,
        user_id=user.user_id,
    )


def _iam(aws: EmbeddedAws, account: str) -> IAMClient:
    return cast("IAMClient", aws.client_in_account("iam", account))


def _client(world: DemoWorld, service: str, user: UserCredentials) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service,
        region_name=world.region,
        endpoint_url=world.endpoint_url,
        aws_access_key_id=user.access_key_id,
        aws_secret_access_key=user.secret_access_key,
    )


def create_user(
    iam: IAMClient, account: str, user_name: str, statements: list[dict[str, Any]]
) -> UserCredentials:
    """An IAM user with an inline policy of `statements` and one access key."""
    user = iam.create_user(UserName=user_name)["User"]
    iam.put_user_policy(UserName=user_name, PolicyName=_POLICY_NAME, PolicyDocument=_policy(statements))
    key = iam.create_access_key(UserName=user_name)["AccessKey"]
    return UserCredentials(
        user_name=user_name,
        user_id=user["UserId"],
        arn=user["Arn"],
        account=account,
        access_key_id=key["AccessKeyId"],
        secret_access_key=key["SecretAccessKey"],
    )


def _create_task_role(iam: IAMClient, spec: TaskRoleSpec) -> str:
    trust = {
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        # ECS itself, plus the stand-in for its agent. moto matches an AWS principal by exact ARN (the
        # account root does not cover a user), and fails on a statement with a Service principal alone, so
        # the agent is named and shares the one statement.
        "Principal": {
            "Service": "ecs-tasks.amazonaws.com",
            "AWS": [
                f"arn:aws:iam::{spec.account}:root",
                f"arn:aws:iam::{spec.account}:user/{ECS_AGENT_USER_NAME}",
            ],
        },
    }
    role = iam.create_role(
        RoleName=spec.name,
        Path=spec.path,
        AssumeRolePolicyDocument=_policy([trust]),
        Tags=[{"Key": key, "Value": value} for key, value in spec.tags.items()],
    )["Role"]
    # Not needed (GetCallerIdentity needs no permission, in AWS and in moto); it shows the task's intent.
    iam.put_role_policy(
        RoleName=spec.name,
        PolicyName=_POLICY_NAME,
        PolicyDocument=_policy([{"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}]),
    )
    return role["Arn"]


def _policy(statements: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _as_policy_text(document: object) -> str:
    # boto3 hands policy documents back already decoded; IAM wants them as JSON text again.
    return document if isinstance(document, str) else json.dumps(document)
