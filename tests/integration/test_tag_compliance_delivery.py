"""Where tag-compliance findings go, once per event: SNS, EventBridge and Security Hub read back from the
embedded AWS; duplicate deliveries; a second account through its compliance role; IAM's case-blind names."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from kuma_iam.compliance.outputs import EVENT_DETAIL_TYPE, EVENT_SOURCE
from kuma_iam.errors import UpstreamThrottled
from kuma_iam_cli.local.compliance_demo import HOME_ACCOUNT, PARTNER_ACCOUNT, ecs_trust
from kuma_iam_cli.local.compliance_events import (
    ADMIN,
    DEVELOPER,
    PARTNER_DEVELOPER,
    scheduled_event,
    tag_role,
)
from kuma_iam_cli.local.seed import DemoWorld
from support.aws_clients import ClientFactory
from support.captured_output import emf_metrics
from support.compliance_harness import Compliance, FindingsInbox, finding_pairs
from support.fake_aws import Answer, ByAction, FakeAws, PassThrough
from support.iam_listing import ListedRole

ENFORCE = {"KUMA_IAM_COMPLIANCE_MODE": "enforce"}
THROTTLING = (
    b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
    b"<Message>Rate exceeded</Message></Error></ErrorResponse>"
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def through(proxy: FakeAws) -> dict[str, str]:
    """Every AWS call of the function through `proxy`."""
    return {
        name: proxy.url
        for name in (
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_IAM",
            "AWS_ENDPOINT_URL_STS",
            "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_ENDPOINT_URL_SNS",
            "AWS_ENDPOINT_URL_EVENTBRIDGE",
            "AWS_ENDPOINT_URL_SECURITYHUB",
        )
    }


# --- outputs -----------------------------------------------------------------------------------------------


def test_one_notification_and_one_event_per_finding(
    compliance: Compliance, findings_inbox: FindingsInbox, make_role: Callable[..., str]
) -> None:
    # Given a role with two HIGH problems, changed by a non-admin
    name = unique("outputs")
    make_role(HOME_ACCOUNT, name, {"kuma.io/type": "gateway", "Kuma.io/Mesh": "default"})
    # When the event is handled
    answer = compliance(tag_role(DEVELOPER, name, {"Kuma.io/Mesh": "default"}))
    delivered = findings_inbox.delivered()
    # Then SNS got one message naming each finding, and EventBridge one event per finding
    rules = {
        "kuma-type-invalid",
        "kuma-key-noncanonical",
        "kuma-tag-change-unauthorized",
    }
    assert {finding["rule"] for finding in answer["findings"]} == rules
    (notification,) = delivered.notifications
    for rule in rules:
        assert rule in notification["body"]
    assert len(delivered.events) == len(answer["findings"])
    for event in delivered.events:
        assert (event["source"], event["detail-type"]) == (EVENT_SOURCE, EVENT_DETAIL_TYPE)
        assert event["detail"]["roleName"] == name
        assert event["detail"]["roleArn"].endswith(f":role/{name}")
    assert {event["detail"]["rule"] for event in delivered.events} == rules


def test_low_findings_only_make_no_notification(
    compliance: Compliance, findings_inbox: FindingsInbox, make_role: Callable[..., str]
) -> None:
    name = unique("low")
    make_role(HOME_ACCOUNT, name, {"kuma.io/type": "ingress", "kuma.io/zone": "eu"})
    answer = compliance(tag_role(ADMIN, name, {"kuma.io/zone": "eu"}))
    delivered = findings_inbox.delivered()
    assert finding_pairs(answer) == {("kuma-key-unknown", name)}
    assert delivered.notifications == []
    assert len(delivered.events) == 1


def test_a_log_line_and_a_metric_per_finding(
    compliance: Compliance,
    make_role: Callable[..., str],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = unique("metrics")
    make_role(HOME_ACCOUNT, name, {"kuma.io/type": "gateway", "Kuma.io/Mesh": "default"})
    capfd.readouterr()
    caplog.clear()
    answer = compliance(tag_role(ADMIN, name, {"team": "x"}))
    points = [p for p in emf_metrics(capfd.readouterr().out) if p.name == "ComplianceFinding"]
    assert sorted(p.dimensions["rule"] for p in points) == sorted(f["rule"] for f in answer["findings"])
    logged = [record for record in caplog.records if record.getMessage() == "compliance finding"]
    assert sorted(record.__dict__["rule"] for record in logged) == sorted(
        f["rule"] for f in answer["findings"]
    )
    assert all(record.__dict__["roleName"] == name for record in logged)


def test_security_hub_gets_one_finding_each_updated_not_duplicated_by_a_re_sweep(
    compliance: Compliance, demo_world: DemoWorld, admin_client: ClientFactory
) -> None:
    hub = admin_client(HOME_ACCOUNT, "securityhub")

    def ours() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in hub.get_paginator("get_findings").paginate():
            found += [
                f
                for f in page["Findings"]
                if f["Id"].startswith("kuma-iam/") and "TTPs/Privilege Escalation" not in f["Types"]
            ]
        return found

    # When the schedule sweeps twice
    first = compliance(scheduled_event())
    after_first = ours()
    second = compliance(scheduled_event())
    after_second = ours()

    # Then Security Hub holds one ASFF finding per state finding, the same ones after the second sweep
    assert len(first["findings"]) == len(second["findings"]) > 0
    assert {f["Id"] for f in after_second} == {f["Id"] for f in after_first}
    assert len(after_second) >= len(first["findings"])
    sample = next(f for f in after_first if f["ProductFields"]["kuma-iam/rule"] == "kuma-type-invalid")
    assert sample["AwsAccountId"] == demo_world.home_account
    assert sample["Resources"][0]["Type"] == "AwsIamRole"
    assert sample["Severity"]["Label"] == "HIGH"
    assert (
        sample["ProductArn"] == f"arn:aws:securityhub:us-east-1:{HOME_ACCOUNT}:product/{HOME_ACCOUNT}/default"
    )


# --- at-least-once delivery ------------------------------------------------------------------------------


def test_a_duplicate_delivery_makes_one_finding_set_and_one_removal(
    compliance: Compliance,
    findings_inbox: FindingsInbox,
    make_role: Callable[..., str],
    aws_proxy: FakeAws,
    admin_client: ClientFactory,
) -> None:
    # Given a bad role, enforce mode, every AWS call counted
    name = unique("duplicate")
    make_role(HOME_ACCOUNT, name, {"kuma.io/type": "dataplane", "kuma.io/mesh": "Bad Mesh", "team": "x"})
    compliance.configure(**ENFORCE, **through(aws_proxy))
    event = tag_role(DEVELOPER, name, {"kuma.io/mesh": "Bad Mesh"})

    # When EventBridge delivers the same event twice (to two fresh containers)
    first = compliance(event)
    second = compliance(event)

    # Then the second answer is the first, and there was one removal, one notification, one event per finding
    assert second == first
    assert first["remediations"] == [
        {"account": HOME_ACCOUNT, "roleName": name, "removedTags": ["kuma.io/mesh"]}
    ]
    actions = aws_proxy.count_by_action()
    assert actions["UntagRole"] == 1
    assert actions["GetRole"] == 1
    delivered = findings_inbox.delivered()
    assert len(delivered.notifications) == 1
    assert len(delivered.events) == len(first["findings"]) == 2
    assert role_tags_of(admin_client, name) == {"kuma.io/type": "dataplane", "team": "x"}


def role_tags_of(admin_client: ClientFactory, name: str) -> dict[str, str]:
    role = admin_client(HOME_ACCOUNT, "iam").get_role(RoleName=name)["Role"]
    return {tag["Key"]: tag["Value"] for tag in role.get("Tags", [])}


def test_an_event_whose_role_cannot_be_read_is_retried_in_full(
    compliance: Compliance, findings_inbox: FindingsInbox, aws_proxy: FakeAws, demo_world: DemoWorld
) -> None:
    # Given IAM throttling every GetRole
    throttled = Answer(400, THROTTLING)
    moto = PassThrough(demo_world.endpoint_url)
    aws_proxy.script(then=ByAction({"GetRole": throttled}, default=moto))
    compliance.configure(**through(aws_proxy))
    event = tag_role(DEVELOPER, "orders-task", {"kuma.io/mesh": "default"})

    # When the event arrives, the invocation fails (so Lambda and EventBridge deliver it again)
    with pytest.raises(UpstreamThrottled, match="orders-task"):
        compliance(event)
    assert findings_inbox.delivered().notifications == []

    # And the redelivery, once IAM answers, is handled in full: no idempotency record stood in its way
    aws_proxy.script(then=moto)
    answer = compliance(event)
    assert finding_pairs(answer) == {("kuma-tag-change-unauthorized", "orders-task")}
    assert len(findings_inbox.delivered().notifications) == 1


# --- accounts ----------------------------------------------------------------------------------------------


def test_second_account_through_its_compliance_role(
    compliance: Compliance,
    aws_proxy: FakeAws,
    make_role: Callable[..., str],
    admin_client: ClientFactory,
    demo_world: DemoWorld,
) -> None:
    # Given a bad role in the partner account, enforce mode
    name = unique("partner")
    make_role(
        PARTNER_ACCOUNT,
        name,
        {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "kuma.io/service": "Bad Name!"},
    )
    compliance.configure(**ENFORCE, **through(aws_proxy))

    # When the partner account's event arrives on the central bus
    answer = compliance(
        tag_role(PARTNER_DEVELOPER, name, {"kuma.io/service": "Bad Name!"}, account=PARTNER_ACCOUNT)
    )

    # Then the function assumed the partner's compliance role, read and untagged the role there
    assert {(f["rule"], f["account"]) for f in answer["findings"]} == {
        ("kuma-value-malformed", PARTNER_ACCOUNT),
        ("kuma-tag-change-unauthorized", PARTNER_ACCOUNT),
    }
    assert answer["remediations"][0]["account"] == PARTNER_ACCOUNT
    assume = [r for r in aws_proxy.requests if r.action == "AssumeRole"]
    assert [r.params["RoleArn"] for r in assume] == [
        f"arn:aws:iam::{PARTNER_ACCOUNT}:role/kuma-iam-compliance"
    ]
    assert not role_tags_in(admin_client, PARTNER_ACCOUNT, name).keys() & {"kuma.io/type", "kuma.io/mesh"}
    assert demo_world.partner_account == PARTNER_ACCOUNT


def role_tags_in(admin_client: ClientFactory, account: str, name: str) -> dict[str, str]:
    role = admin_client(account, "iam").get_role(RoleName=name)["Role"]
    return {tag["Key"]: tag["Value"] for tag in role.get("Tags", [])}


def test_an_event_from_an_unauthorized_account_reads_nothing_there(
    compliance: Compliance, aws_proxy: FakeAws
) -> None:
    compliance.configure(**through(aws_proxy))
    outsider = type(DEVELOPER)("333333333333", "IAMUser", "developer")
    answer = compliance(tag_role(outsider, "intruder-task", {"kuma.io/mesh": "default"}))
    assert answer["evaluated"] == 0
    assert answer["failedAccounts"][0]["account"] == "333333333333"
    assert not [r for r in aws_proxy.requests if r.service in ("iam", "sts")]


def test_role_names_are_matched_as_iam_does_without_case(
    compliance: Compliance,
    aws_proxy: FakeAws,
    demo_world: DemoWorld,
    make_role: Callable[..., str],
    admin_client: ClientFactory,
) -> None:
    # Given a role `case-xxxx`, and an IAM stand-in that, like IAM, answers GetRole for `CASE-XXXX` with it
    # (moto matches names by exact case)
    name = unique("case")
    tags = {"kuma.io/type": "dataplane", "kuma.io/mesh": "Bad Mesh"}
    make_role(HOME_ACCOUNT, name, tags)
    as_iam_answers = ListedRole(HOME_ACCOUNT, name, tags, ecs_trust(HOME_ACCOUNT)).get_role_xml()
    moto = PassThrough(demo_world.endpoint_url)
    aws_proxy.script(then=ByAction({"GetRole": Answer(200, as_iam_answers)}, default=moto))
    compliance.configure(**ENFORCE, **through(aws_proxy))

    # When an event names the role in another case
    answer = compliance(tag_role(ADMIN, name.upper(), {"team": "x"}))

    # Then the role is found, reported and untagged by its real name
    assert finding_pairs(answer) == {("kuma-value-malformed", name)}
    assert answer["remediations"] == [
        {"account": HOME_ACCOUNT, "roleName": name, "removedTags": ["kuma.io/mesh"]}
    ]
    (get_role,) = [r for r in aws_proxy.requests if r.action == "GetRole"]
    assert get_role.params["RoleName"] == name.upper()
    assert "kuma.io/mesh" not in role_tags_in(admin_client, HOME_ACCOUNT, name)
