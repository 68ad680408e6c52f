"""The tag-compliance part of the demo world: roles that break each rule (and one that breaks none), the
compliance role in the partner account, and the findings topic and idempotency table the function uses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_sns import SNSClient

HOME_ACCOUNT = "111111111111"
PARTNER_ACCOUNT = "222222222222"
COMPLIANCE_ROLE_NAME = "kuma-iam-compliance"
COMPLIANCE_USER_NAME = "kuma-iam-compliance"
FINDINGS_TOPIC_NAME = "kuma-iam-findings"
IDEMPOTENCY_TABLE = "kuma-iam-compliance-idempotency"
# The tag administrators of the demo: a platform role in each authorized account.
TAG_ADMINS = tuple(
    f"arn:aws:iam::{account}:role/platform-admin" for account in (HOME_ACCOUNT, PARTNER_ACCOUNT)
)


def ecs_trust(
    account: str, *, source_condition: bool = True, also: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """ECS tasks (with the confused-deputy guard unless told otherwise), optionally a second statement."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": "ecs-tasks.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    if source_condition:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account}}
    statements = [statement] + ([dict(also)] if also else [])
    return {"Version": "2012-10-17", "Statement": statements}


@dataclass(frozen=True)
class ComplianceRoleSpec:
    account: str
    name: str
    tags: Mapping[str, str]
    trust: Mapping[str, Any]
    # (rule, severity) a check of the role finds, whatever triggered it
    breaks: tuple[str, ...] = field(default=())


COMPLIANCE_DEMO_ROLES: tuple[ComplianceRoleSpec, ...] = (
    ComplianceRoleSpec(
        HOME_ACCOUNT,
        "orders-task",
        {
            "kuma.io/type": "dataplane",
            "kuma.io/mesh": "default",
            "kuma.io/service": "orders",
            "team": "orders",
        },
        ecs_trust(HOME_ACCOUNT),
    ),
    ComplianceRoleSpec(
        HOME_ACCOUNT,
        "typo-task",
        {"kuma.io/type": "dataplnae", "kuma.io/mesh": "default", "team": "billing"},
        ecs_trust(HOME_ACCOUNT),
        ("kuma-type-invalid",),
    ),
    ComplianceRoleSpec(
        HOME_ACCOUNT,
        "shouting-task",
        {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "Kuma.io/Service": "billing"},
        ecs_trust(HOME_ACCOUNT),
        ("kuma-key-noncanonical",),
    ),
    ComplianceRoleSpec(
        HOME_ACCOUNT,
        "mesh-dropped-task",
        {"kuma.io/type": "dataplane", "team": "search"},
        ecs_trust(HOME_ACCOUNT),
        ("kuma-mesh-missing",),
    ),
    ComplianceRoleSpec(
        HOME_ACCOUNT,
        "open-trust-task",
        {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "kuma.io/service": "reports"},
        ecs_trust(
            HOME_ACCOUNT,
            also={
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{HOME_ACCOUNT}:root"},
                "Action": "sts:AssumeRole",
            },
        ),
        ("trust-not-ecs-tasks",),
    ),
    ComplianceRoleSpec(
        HOME_ACCOUNT,
        "unguarded-task",
        {"kuma.io/type": "egress"},
        ecs_trust(HOME_ACCOUNT, source_condition=False),
        ("trust-no-source-condition",),
    ),
    ComplianceRoleSpec(
        PARTNER_ACCOUNT,
        "ledger-task",
        {"kuma.io/type": "dataplane", "kuma.io/mesh": "Payments!", "kuma.io/service": "ledger"},
        ecs_trust(PARTNER_ACCOUNT),
        ("kuma-value-malformed",),
    ),
)

# What the compliance user (the stand-in for the function's execution role) may do. Resource "*": moto checks
# IAM reads against the role ARN only when the role exists, and knows no ARN for most other actions.
COMPLIANCE_USER_STATEMENTS: list[dict[str, Any]] = [
    {
        "Effect": "Allow",
        "Action": ["iam:GetAccountAuthorizationDetails", "iam:GetRole", "iam:UntagRole"],
        "Resource": "*",
    },
    {
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Resource": f"arn:aws:iam::*:role/{COMPLIANCE_ROLE_NAME}",
    },
    {"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"},
    {
        "Effect": "Allow",
        "Action": [
            "sns:Publish",
            "events:PutEvents",
            "securityhub:BatchImportFindings",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        ],
        "Resource": "*",
    },
]


def seed_compliance_roles(
    iam_by_account: Mapping[str, IAMClient], compliance_user_arn: str
) -> dict[str, dict[str, str]]:
    """The demo roles and the partner account's compliance role; returns their ARNs by account and name."""
    arns: dict[str, dict[str, str]] = {}
    partner = iam_by_account[PARTNER_ACCOUNT]
    role = partner.create_role(
        RoleName=COMPLIANCE_ROLE_NAME,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    # moto matches an AWS principal by exact ARN: the user, not the account root.
                    {"Effect": "Allow", "Principal": {"AWS": compliance_user_arn}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
        Description="lets kuma-iam tag compliance read roles and remove kuma.io tags in this account",
    )["Role"]
    partner.put_role_policy(
        RoleName=COMPLIANCE_ROLE_NAME,
        PolicyName="kuma-iam-compliance",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["iam:GetAccountAuthorizationDetails", "iam:GetRole", "iam:UntagRole"],
                        "Resource": "*",
                    }
                ],
            }
        ),
    )
    arns.setdefault(PARTNER_ACCOUNT, {})[COMPLIANCE_ROLE_NAME] = role["Arn"]
    for spec in COMPLIANCE_DEMO_ROLES:
        created = iam_by_account[spec.account].create_role(
            RoleName=spec.name,
            AssumeRolePolicyDocument=json.dumps(spec.trust),
            Tags=[{"Key": key, "Value": value} for key, value in spec.tags.items()],
        )["Role"]
        arns.setdefault(spec.account, {})[spec.name] = created["Arn"]
    return arns


def seed_compliance_outputs(sns: SNSClient, dynamodb: DynamoDBClient) -> str:
    """The findings topic and the idempotency table (shaped like the template's); returns the topic ARN."""
    dynamodb.create_table(
        TableName=IDEMPOTENCY_TABLE,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return sns.create_topic(Name=FINDINGS_TOPIC_NAME)["TopicArn"]
