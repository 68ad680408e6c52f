"""Trust-policy rules on the policy shapes IAM really holds: who may assume a kuma-tagged role."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from kuma_iam.trust import trust_violations

ACCOUNT = "111111111111"
ECS = {"Service": "ecs-tasks.amazonaws.com"}
SOURCE_ACCOUNT = {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
SOURCE_ARN = {"ArnLike": {"aws:SourceArn": f"arn:aws:ecs:us-east-1:{ACCOUNT}:*"}}


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(
    principal: Any, condition: dict[str, Any] | None = None, action: Any = "sts:AssumeRole"
) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": principal, "Action": action}
    if condition is not None:
        statement["Condition"] = condition
    return statement


def rules(document: Any) -> list[str]:
    return sorted(violation.rule for violation in trust_violations(document))


CLEAN = [
    pytest.param(policy(allow(ECS, SOURCE_ACCOUNT)), id="ecs-source-account"),
    pytest.param(policy(allow(ECS, SOURCE_ARN)), id="ecs-source-arn-arnlike"),
    pytest.param(
        policy(allow(ECS, {"ArnEquals": {"aws:SourceArn": f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/c/1"}})),
        id="ecs-source-arn-arnequals",
    ),
    pytest.param(
        policy(allow(ECS, {"StringLike": {"AWS:SOURCEACCOUNT": [ACCOUNT, "222222222222"]}})),
        id="condition-key-any-case-list",
    ),
    pytest.param(
        policy(allow({"Service": ["ecs-tasks.amazonaws.com"]}, SOURCE_ACCOUNT)), id="service-as-list"
    ),
    pytest.param(
        {"Version": "2012-10-17", "Statement": allow(ECS, SOURCE_ACCOUNT)}, id="statement-as-object"
    ),
    pytest.param(
        policy(
            allow(ECS, SOURCE_ACCOUNT),
            {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"},
        ),
        id="deny-others",
    ),
    pytest.param(
        policy(
            allow(ECS, SOURCE_ACCOUNT),
            allow({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, action="sts:TagSession"),
        ),
        id="others-may-only-tag-session",
    ),
    pytest.param(
        policy(allow(ECS, SOURCE_ACCOUNT, action=["sts:AssumeRole", "sts:TagSession"])), id="action-list"
    ),
    pytest.param(policy(), id="no-statement-nobody-may-assume"),
    pytest.param(json.dumps(policy(allow(ECS, SOURCE_ACCOUNT))), id="as-json-text"),
    pytest.param(quote(json.dumps(policy(allow(ECS, SOURCE_ACCOUNT)))), id="as-url-encoded-text"),
]


@pytest.mark.parametrize("document", CLEAN)
def test_ecs_tasks_with_a_source_condition_is_clean(document: Any) -> None:
    assert trust_violations(document) == []


NOT_ECS = [
    pytest.param(policy(allow("*")), id="principal-star"),
    pytest.param(policy(allow({"AWS": "*"})), id="aws-star"),
    pytest.param(policy(allow({"AWS": ["*"]})), id="aws-star-list"),
    pytest.param(policy(allow({"AWS": ACCOUNT})), id="bare-account"),
    pytest.param(policy(allow({"AWS": f"arn:aws:iam::{ACCOUNT}:root"})), id="account-root"),
    pytest.param(policy(allow({"AWS": f"arn:aws:iam::{ACCOUNT}:user/alice"})), id="user"),
    pytest.param(policy(allow({"AWS": f"arn:aws:iam::{ACCOUNT}:role/ci"})), id="role"),
    pytest.param(policy(allow({"Service": "lambda.amazonaws.com"})), id="other-service"),
    pytest.param(policy(allow({"Service": "ecs.amazonaws.com"})), id="ecs-not-ecs-tasks"),
    pytest.param(
        policy(
            allow({"Federated": "cognito-identity.amazonaws.com"}, action="sts:AssumeRoleWithWebIdentity")
        ),
        id="federated-web-identity",
    ),
    pytest.param(
        policy(
            allow(
                {"Federated": f"arn:aws:iam::{ACCOUNT}:saml-provider/okta"}, action="sts:AssumeRoleWithSAML"
            )
        ),
        id="federated-saml",
    ),
    pytest.param(policy(allow({"CanonicalUser": "79a59df900b949e55d96a1e698fbaced"})), id="canonical-user"),
    pytest.param(
        policy(
            {
                "Effect": "Allow",
                "NotPrincipal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/bob"},
                "Action": "sts:AssumeRole",
            }
        ),
        id="not-principal",
    ),
    pytest.param(policy(allow({"AWS": "*"}, action="sts:*")), id="action-wildcard"),
    pytest.param(policy(allow({"AWS": "*"}, action="*")), id="action-star"),
    pytest.param(policy(allow({"AWS": "*"}, action="STS:assumerole")), id="action-any-case"),
    pytest.param(policy(allow({"AWS": "*"}, action="sts:Assume?ole")), id="action-question-mark"),
    pytest.param(
        policy({"Effect": "Allow", "Principal": {"AWS": "*"}, "NotAction": "sts:TagSession"}), id="not-action"
    ),
    pytest.param(
        policy(allow({"AWS": "*"}, {"StringEquals": {"aws:PrincipalOrgID": "o-abc"}})),
        id="org-condition-still-others",
    ),
    pytest.param(policy({"Effect": "Allow", "Action": "sts:AssumeRole"}), id="no-principal"),
    pytest.param("{not json", id="unreadable-text"),
    pytest.param(None, id="missing"),
    pytest.param({"Statement": "Allow everyone"}, id="statement-not-object"),
]


@pytest.mark.parametrize("document", NOT_ECS)
def test_anyone_but_ecs_tasks_is_trust_not_ecs_tasks(document: Any) -> None:
    assert "trust-not-ecs-tasks" in rules(document)


def test_ecs_beside_others_in_one_statement_is_both_rules() -> None:
    # Given the shape moto's demo roles use: ECS tasks plus an account and a user, no condition
    document = policy(
        allow(
            {
                "Service": "ecs-tasks.amazonaws.com",
                "AWS": [f"arn:aws:iam::{ACCOUNT}:root", f"arn:aws:iam::{ACCOUNT}:user/ecs-agent"],
            }
        )
    )
    # Then both rules fire, and the message names who else may assume it
    violations = trust_violations(document)
    assert sorted(v.rule for v in violations) == ["trust-no-source-condition", "trust-not-ecs-tasks"]
    others = next(v for v in violations if v.rule == "trust-not-ecs-tasks")
    assert "user/ecs-agent" in others.message
    assert f"arn:aws:iam::{ACCOUNT}:root" in others.message
    assert others.severity == "HIGH"


NO_SOURCE = [
    pytest.param(policy(allow(ECS)), id="no-condition"),
    pytest.param(policy(allow(ECS, {"StringEquals": {"aws:SourceVpc": "vpc-1"}})), id="other-key"),
    pytest.param(
        policy(allow(ECS, {"StringEqualsIfExists": {"aws:SourceAccount": ACCOUNT}})), id="if-exists"
    ),
    pytest.param(
        policy(allow(ECS, {"StringNotEquals": {"aws:SourceAccount": "999999999999"}})), id="not-equals"
    ),
    pytest.param(
        policy(allow(ECS, {"ForAllValues:StringEquals": {"aws:SourceAccount": ACCOUNT}})), id="for-all-values"
    ),
    pytest.param(policy(allow(ECS, {"StringLike": {"aws:SourceAccount": "*"}})), id="any-account"),
    pytest.param(
        policy(allow(ECS, {"ArnLike": {"aws:SourceArn": "arn:aws:ecs:*:*:*"}})), id="arn-any-account"
    ),
    pytest.param(policy(allow(ECS, {"Null": {"aws:SourceAccount": "false"}})), id="null-operator"),
    pytest.param(policy(allow(ECS, SOURCE_ACCOUNT), allow(ECS)), id="one-guarded-one-not"),
]


@pytest.mark.parametrize("document", NO_SOURCE)
def test_ecs_trust_without_a_real_source_condition_is_medium(document: Any) -> None:
    violations = trust_violations(document)
    assert [(v.rule, v.severity) for v in violations] == [("trust-no-source-condition", "MEDIUM")]


def test_deny_is_not_credited_with_narrowing_an_allow() -> None:
    # Given an Allow for any AWS principal and a Deny that might narrow it under a condition
    document = policy(
        allow({"AWS": "*"}),
        {
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringNotEquals": {"aws:PrincipalAccount": ACCOUNT}},
        },
    )
    # Then it is still reported: the Deny's condition cannot be judged without a request
    assert rules(document) == ["trust-not-ecs-tasks"]


def test_many_principals_are_named_boundedly() -> None:
    document = policy(allow({"AWS": [f"arn:aws:iam::{ACCOUNT}:user/u{i}" for i in range(40)]}))
    (violation,) = trust_violations(document)
    assert "and 35 more" in violation.message
    assert len(violation.message) < 1000
