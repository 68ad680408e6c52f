"""TagComplianceFunction on the embedded AWS: each rule on its event and on the sweep, both modes, duplicate
deliveries, a second account, and what reaches SNS, EventBridge and Security Hub."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from kuma_iam_cli.local.compliance_demo import HOME_ACCOUNT, ecs_trust
from kuma_iam_cli.local.compliance_events import (
    ADMIN,
    COMPLIANCE_CASES,
    DEVELOPER,
    ComplianceCase,
    create_role,
    scheduled_event,
    tag_role,
    untag_role,
    update_trust,
)
from kuma_iam_cli.local.seed import DemoWorld
from support.aws_clients import ClientFactory
from support.compliance_harness import Compliance, finding_pairs

ENFORCE = {"KUMA_IAM_COMPLIANCE_MODE": "enforce"}


def role_tags(admin_client: ClientFactory, account: str, name: str) -> dict[str, str]:
    role = admin_client(account, "iam").get_role(RoleName=name)["Role"]
    return {tag["Key"]: tag["Value"] for tag in role.get("Tags", [])}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


# --- the sample events, as committed under events/tag_compliance -------------------------------------------


@pytest.mark.parametrize("case", COMPLIANCE_CASES, ids=lambda case: case.name)
def test_each_sample_event_gives_its_summary(case: ComplianceCase, compliance: Compliance) -> None:
    # Given a sample event (report mode)
    # When the handler takes it
    answer = compliance(case.event())
    # Then the summary is the case's
    if case.error:
        assert answer["error"]["code"] == "invalid_event", answer
        assert (answer["evaluated"], answer["findings"], answer["remediations"]) == (0, [], [])
        return
    assert "error" not in answer, answer
    if case.evaluated is not None:
        assert answer["evaluated"] == case.evaluated, answer
    if case.only_these:
        assert finding_pairs(answer) == set(case.findings), answer
    else:
        assert set(case.findings) <= finding_pairs(answer), answer
    assert answer["remediations"] == []
    for finding in answer["findings"]:
        assert set(finding) == {"rule", "severity", "account", "roleName", "message"}
        assert finding["message"]


# --- every rule on its event and on the sweep; silence on a compliant role ---------------------------------

ECS_AND_A_USER = {
    "Version": "2012-10-17",
    "Statement": [
        *ecs_trust(HOME_ACCOUNT)["Statement"],
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{HOME_ACCOUNT}:user/developer"},
            "Action": "sts:AssumeRole",
        },
    ],
}
STATE_RULES = [
    pytest.param(
        "kuma-type-invalid", {"kuma.io/type": "gateway", "kuma.io/mesh": "default"}, None, id="type-invalid"
    ),
    pytest.param("kuma-type-missing", {"kuma.io/mesh": "default", "team": "x"}, None, id="type-missing"),
    pytest.param("kuma-mesh-missing", {"kuma.io/type": "dataplane"}, None, id="mesh-missing"),
    pytest.param(
        "kuma-value-malformed",
        {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "kuma.io/workload": "Not_A_Label"},
        None,
        id="value-malformed",
    ),
    pytest.param(
        "kuma-key-unknown", {"kuma.io/type": "ingress", "kuma.io/zone": "eu-1"}, None, id="key-unknown"
    ),
    pytest.param(
        "kuma-key-noncanonical",
        {"kuma.io/type": "egress", "KUMA.IO/Mesh": "default"},
        None,
        id="key-noncanonical",
    ),
    pytest.param(
        "trust-not-ecs-tasks", {"kuma.io/type": "ingress"}, ECS_AND_A_USER, id="trust-not-ecs-tasks"
    ),
    pytest.param(
        "trust-no-source-condition",
        {"kuma.io/type": "ingress"},
        ecs_trust(HOME_ACCOUNT, source_condition=False),
        id="trust-no-source-condition",
    ),
]


@pytest.mark.parametrize(("rule", "tags", "trust"), STATE_RULES)
def test_rule_fires_on_its_event_and_on_the_sweep(
    rule: str,
    tags: dict[str, str],
    trust: dict[str, Any] | None,
    compliance: Compliance,
    make_role: Callable[..., str],
) -> None:
    # Given a role that breaks exactly this rule
    name = unique("rule")
    make_role(HOME_ACCOUNT, name, tags, trust)

    # When an admin's tag change on it arrives, and when the schedule sweeps
    on_event = compliance(tag_role(ADMIN, name, {"team": "platform"}))
    on_sweep = compliance(scheduled_event())

    # Then the rule fires on both, and nothing else about the role
    assert finding_pairs(on_event) == {(rule, name)}, on_event
    assert {pair for pair in finding_pairs(on_sweep) if pair[1] == name} == {(rule, name)}


def test_unauthorized_change_fires_for_a_user_and_an_assumed_role_not_for_the_admin(
    compliance: Compliance, make_role: Callable[..., str]
) -> None:
    name = unique("change")
    make_role(HOME_ACCOUNT, name, {"kuma.io/type": "dataplane", "kuma.io/mesh": "default"})
    ci = type(ADMIN)(
        HOME_ACCOUNT, "AssumedRole", "ci-deployer", "platform-admin"
    )  # session name picks nothing
    for caller, fires in ((ADMIN, False), (DEVELOPER, True), (ci, True)):
        answer = compliance(tag_role(caller, name, {"kuma.io/mesh": "default"}))
        assert (("kuma-tag-change-unauthorized", name) in finding_pairs(answer)) is fires, (caller, answer)


def test_compliant_role_is_silent_on_every_event_and_the_sweep(
    compliance: Compliance, make_role: Callable[..., str]
) -> None:
    # Given a well-tagged role trusted by ECS tasks of its own account only
    name = unique("good")
    tags = {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "kuma.io/service": "good", "team": "x"}
    make_role(HOME_ACCOUNT, name, tags)
    events = [
        tag_role(ADMIN, name, {"kuma.io/service": "good"}),
        untag_role(ADMIN, name, ["kuma.io/zone"]),
        create_role(ADMIN, name, tags, ecs_trust(HOME_ACCOUNT)),
        update_trust(ADMIN, name, ecs_trust(HOME_ACCOUNT)),
        tag_role(DEVELOPER, name, {"team": "y"}),  # not a kuma.io key: anyone may
    ]
    # Then no event and no sweep reports it
    for event in events:
        answer = compliance(event)
        assert (answer["evaluated"], answer["findings"]) == (1, []), answer
    assert not [pair for pair in finding_pairs(compliance(scheduled_event())) if pair[1] == name]


def test_sweep_evaluates_every_role_of_both_accounts_once(
    compliance: Compliance, demo_world: DemoWorld, admin_client: ClientFactory
) -> None:
    listed = sum(
        len(admin_client(account, "iam").get_account_authorization_details(Filter=["Role"])["RoleDetailList"])
        for account in demo_world.authorized_accounts
    )
    answer = compliance(scheduled_event())
    assert answer["evaluated"] == listed
    assert "failedAccounts" not in answer
    assert not [pair for pair in finding_pairs(answer) if pair[1] == "orders-task"]
