"""TagComplianceFunction on the embedded AWS: each rule on its event and on the sweep, both modes, duplicate
deliveries, a second account, and what reaches SNS, EventBridge and Security Hub."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from kuma_iam_cli.local.compliance_demo import HOME_ACCOUNT, PARTNER_ACCOUNT, ecs_trust
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
from kuma_iam_cli.local.expected import expected_answers, mismatches
from kuma_iam_cli.local.seed import DemoWorld
from support.aws_clients import ClientFactory
from support.compliance_harness import Compliance, finding_pairs
from support.project_files import REPO

ENFORCE = {"KUMA_IAM_COMPLIANCE_MODE": "enforce"}
EXPECTED = expected_answers(REPO / "events")


def role_tags(admin_client: ClientFactory, account: str, name: str) -> dict[str, str]:
    role = admin_client(account, "iam").get_role(RoleName=name)["Role"]
    return {tag["Key"]: tag["Value"] for tag in role.get("Tags", [])}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def in_one_order(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary with its findings sorted. This session's world has a history (tests delete and re-create
    roles), and IAM lists roles in that order; the sam tier, on a fresh world, compares them as listed."""
    return {
        **summary,
        "findings": sorted(summary["findings"], key=lambda f: (f["account"], f["roleName"], f["rule"])),
    }


# --- the sample events, as committed under events/tag_compliance -------------------------------------------


@pytest.mark.parametrize("case", COMPLIANCE_CASES, ids=lambda case: case.name)
def test_each_sample_event_gives_its_summary(case: ComplianceCase, compliance: Compliance) -> None:
    # Given a sample event (report mode)
    # When the handler takes it
    answer = compliance(case.event())
    # Then the summary is the one events/tag_compliance/expected.json gives (the sam tier checks the same)
    problems = mismatches(in_one_order(EXPECTED[f"tag_compliance/{case.name}"]), in_one_order(answer))
    assert not problems, "\n".join(problems)
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


# --- modes: report changes nothing, enforce removes exactly the offending keys ---------------------------


@pytest.fixture
def restore_demo_tags(demo_world: DemoWorld, admin_client: ClientFactory) -> Any:
    """Put back every role's tags of both accounts after a test that enforces on the whole demo world."""
    before = {
        account: {
            role["RoleName"]: {tag["Key"]: tag["Value"] for tag in role.get("Tags", [])}
            for role in admin_client(account, "iam").get_account_authorization_details(Filter=["Role"])[
                "RoleDetailList"
            ]
        }
        for account in demo_world.authorized_accounts
    }
    yield before
    for account, roles in before.items():
        iam = admin_client(account, "iam")
        for name, tags in roles.items():
            try:
                current = role_tags(admin_client, account, name)
            except iam.exceptions.NoSuchEntityException:
                continue
            if current != tags:
                if current:
                    iam.untag_role(RoleName=name, TagKeys=list(current))
                if tags:
                    iam.tag_role(RoleName=name, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


ENFORCED = [
    pytest.param(
        {"kuma.io/type": "dataplane", "kuma.io/mesh": "Bad Mesh", "team": "x"},
        ["kuma.io/mesh"],
        id="malformed-mesh",
    ),
    pytest.param(
        {"kuma.io/type": "gateway", "kuma.io/mesh": "default", "Kuma.io/Zone": "eu", "team": "x"},
        ["Kuma.io/Zone", "kuma.io/mesh", "kuma.io/type"],
        id="invalid-type-every-kuma-key",
    ),
    pytest.param(
        {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "Kuma.io/Service": "web", "team": "x"},
        ["Kuma.io/Service", "kuma.io/mesh", "kuma.io/type"],
        id="noncanonical-service-fails-closed",
    ),
    pytest.param(
        {"kuma.io/type": "ingress", "kuma.io/zone": "eu", "team": "x"}, [], id="unknown-key-is-low-kept"
    ),
]


@pytest.mark.parametrize(("tags", "removed"), ENFORCED)
def test_enforce_on_an_event_removes_exactly_the_offending_keys(
    tags: dict[str, str],
    removed: list[str],
    compliance: Compliance,
    make_role: Callable[..., str],
    admin_client: ClientFactory,
) -> None:
    # Given a role with bad kuma.io tags (and a tag of its own), in enforce mode
    name = unique("enforce")
    make_role(HOME_ACCOUNT, name, tags)
    compliance.configure(**ENFORCE)

    # When an event about it arrives
    answer = compliance(tag_role(ADMIN, name, {"team": "x"}))

    # Then exactly those keys are gone from IAM, and the summary says so
    expected = [{"account": HOME_ACCOUNT, "roleName": name, "removedTags": removed}] if removed else []
    assert answer["remediations"] == expected, answer
    assert role_tags(admin_client, HOME_ACCOUNT, name) == {k: v for k, v in tags.items() if k not in removed}
    assert role_tags(admin_client, HOME_ACCOUNT, name)["team"] == "x"


def test_report_mode_removes_nothing(
    compliance: Compliance, make_role: Callable[..., str], admin_client: ClientFactory
) -> None:
    name = unique("report")
    tags = {"kuma.io/type": "gateway", "kuma.io/mesh": "default"}
    make_role(HOME_ACCOUNT, name, tags)
    answer = compliance(tag_role(DEVELOPER, name, {"kuma.io/type": "gateway"}))
    assert {pair[0] for pair in finding_pairs(answer)} == {
        "kuma-type-invalid",
        "kuma-tag-change-unauthorized",
    }
    assert answer["remediations"] == []
    assert role_tags(admin_client, HOME_ACCOUNT, name) == tags


def test_enforce_takes_back_an_unauthorized_change_and_fails_closed(
    compliance: Compliance, make_role: Callable[..., str], admin_client: ClientFactory
) -> None:
    # Given a one-service role whose service a developer changed to another (a valid value)
    name = unique("widen")
    make_role(
        HOME_ACCOUNT,
        name,
        {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "kuma.io/service": "web", "team": "x"},
    )
    compliance.configure(**ENFORCE)
    # When the developer's TagRole arrives
    answer = compliance(tag_role(DEVELOPER, name, {"kuma.io/service": "web"}))
    # Then the role keeps no mesh identity at all (removing only the service would widen it to any service)
    assert answer["remediations"] == [
        {
            "account": HOME_ACCOUNT,
            "roleName": name,
            "removedTags": ["kuma.io/mesh", "kuma.io/service", "kuma.io/type"],
        }
    ]
    assert role_tags(admin_client, HOME_ACCOUNT, name) == {"team": "x"}


def test_enforce_leaves_trust_findings_to_people(
    compliance: Compliance, make_role: Callable[..., str], admin_client: ClientFactory
) -> None:
    name = unique("trust")
    tags = {"kuma.io/type": "ingress"}
    make_role(HOME_ACCOUNT, name, tags, ECS_AND_A_USER)
    compliance.configure(**ENFORCE)
    answer = compliance(update_trust(ADMIN, name, ECS_AND_A_USER))
    assert finding_pairs(answer) == {("trust-not-ecs-tasks", name)}
    assert answer["remediations"] == []
    assert role_tags(admin_client, HOME_ACCOUNT, name) == tags


def test_enforce_on_the_sweep_removes_in_both_accounts_and_only_kuma_keys(
    compliance: Compliance,
    restore_demo_tags: dict[str, dict[str, dict[str, str]]],
    admin_client: ClientFactory,
) -> None:
    # Given the demo world (bad roles in both accounts), in enforce mode
    compliance.configure(**ENFORCE)
    # When the schedule sweeps
    answer = compliance(scheduled_event())
    # Then each role with a HIGH or MEDIUM tag finding lost its kuma.io keys, and only those
    removed = {(r["account"], r["roleName"]): r["removedTags"] for r in answer["remediations"]}
    assert removed[(HOME_ACCOUNT, "typo-task")] == ["kuma.io/mesh", "kuma.io/type"]
    assert removed[(PARTNER_ACCOUNT, "ledger-task")] == ["kuma.io/mesh"]
    assert (HOME_ACCOUNT, "orders-task") not in removed
    assert (HOME_ACCOUNT, "open-trust-task") not in removed  # a trust finding only
    for (account, name), keys in removed.items():
        before = restore_demo_tags[account][name]
        assert role_tags(admin_client, account, name) == {k: v for k, v in before.items() if k not in keys}
        assert all(key.strip().casefold().startswith("kuma.io/") for key in keys)
    # And a second sweep finds nothing left to remove
    again = compliance(scheduled_event())
    assert again["remediations"] == []
