"""templates/member-account.yaml, deployed (support/cfn_template.py) and read as IAM reads it
(support/iam_policy.py): who may assume each role, what each may do, when the compliance role may remove
tags, and which events go to the central bus from where."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from itertools import product
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kuma_iam.config import VerifierSettings
from kuma_iam.roles import IamClients
from kuma_iam.rules import TAG_PREFIX, is_kuma_key
from kuma_iam.verify import VERIFIER_SESSION_NAME
from support.cfn_template import Deployment, ParameterRejected, deploy, load
from support.iam_policy import Decision, Request, decide, statements_of
from support.project_files import REPO

MEMBER_TEMPLATE = REPO / "templates" / "member-account.yaml"
MAIN_TEMPLATE = REPO / "template.yaml"
ACCOUNT = "222233334444"
VERIFIER_ROLE = "arn:aws:iam::111122223333:role/kuma-iam-VerifierFunctionRole-AbC123"
COMPLIANCE_FUNCTION_ROLE = "arn:aws:iam::111122223333:role/kuma-iam-TagComplianceFunctionRole-DeF456"
CENTRAL_BUS = "arn:aws:events:us-east-1:111122223333:event-bus/kuma-iam-compliance"
PARAMETERS = {
    "VerifierRoleArn": VERIFIER_ROLE,
    "TagComplianceRoleArn": COMPLIANCE_FUNCTION_ROLE,
    "ComplianceEventBusArn": CENTRAL_BUS,
}
ROLE_HERE = f"arn:aws:iam::{ACCOUNT}:role/backend-task"
ROLE_ELSEWHERE = "arn:aws:iam::999988887777:role/backend-task"
# Keys IAM lets a role carry ([\p{L}\p{Z}\p{N}_.:/=+\-@], IAM API reference, Tag).
TAG_KEY_CHARS = st.characters(categories=["L", "Z", "N"], include_characters="_.:/=+-@")
STARTS_WITH_A_CASE_VARIANT = re.compile(r"[kK][uU][mM][aA]\.[iI][oO]/", re.DOTALL)


def member(enforce: str = "Disabled", **where: str) -> Deployment:
    return deploy(MEMBER_TEMPLATE, {**PARAMETERS, "Enforce": enforce}, account=ACCOUNT, **where)


def trust_of(deployment: Deployment, role: str) -> list[Any]:
    return statements_of(deployment.properties(role)["AssumeRolePolicyDocument"])


def permissions_of(deployment: Deployment, role: str) -> list[Any]:
    """Every statement that applies to the role: its inline policies and the AWS::IAM::Policy resources
    attached to it."""
    found = [
        statement
        for policy in deployment.properties(role).get("Policies", [])
        for statement in statements_of(policy["PolicyDocument"])
    ]
    role_name = deployment.properties(role).get("RoleName")
    for resource in deployment.resources.values():
        if resource["Type"] == "AWS::IAM::Policy" and role_name in resource["Properties"].get("Roles", []):
            found += statements_of(resource["Properties"]["PolicyDocument"])
    return found


def assume(principal: str, session_name: str = "kuma-iam-verifier") -> Request:
    """sts:AssumeRole by a session of `principal` (a role: the trust policy sees the role's ARN)."""
    return Request(
        "sts:AssumeRole", principal={"AWS": principal}, context={"sts:RoleSessionName": session_name}
    )


def untag(keys: list[str] | None, role: str = ROLE_HERE) -> Request:
    return Request("iam:UntagRole", role, {} if keys is None else {"aws:TagKeys": keys})


# --- the verifier's reader role ------------------------------------------------------------------------


def test_reader_role_trusts_only_the_verifier_role_under_its_session_name() -> None:
    trust = trust_of(member(), "ReaderRole")

    assert decide(trust, assume(VERIFIER_ROLE)) is Decision.ALLOW
    for someone_else in (
        COMPLIANCE_FUNCTION_ROLE,
        "arn:aws:iam::111122223333:root",
        f"arn:aws:iam::{ACCOUNT}:root",
    ):
        assert decide(trust, assume(someone_else)) is Decision.IMPLICIT_DENY, someone_else
    assert decide(trust, assume(VERIFIER_ROLE, "someone-else")) is Decision.IMPLICIT_DENY
    # Nothing but AssumeRole (no TagSession, no web identity)
    assert {statement["Action"] for statement in trust} == {"sts:AssumeRole"}


def test_with_a_token_issuer_the_reader_role_trusts_it_too_and_no_one_else() -> None:
    # Given the main stack's token issuer role, which verifies identities exactly as the verifier does
    issuer = "arn:aws:iam::111122223333:role/kuma-iam-TokenIssuerFunctionRole-GhI789"
    trust = statements_of(
        deploy(MEMBER_TEMPLATE, {**PARAMETERS, "TokenIssuerRoleArn": issuer}, account=ACCOUNT).properties(
            "ReaderRole"
        )["AssumeRolePolicyDocument"]
    )
    # Then both may assume the reader role under the pinned session name, and still nobody else
    assert decide(trust, assume(VERIFIER_ROLE)) is Decision.ALLOW
    assert decide(trust, assume(issuer)) is Decision.ALLOW
    assert decide(trust, assume(issuer, "someone-else")) is Decision.IMPLICIT_DENY
    for someone_else in (COMPLIANCE_FUNCTION_ROLE, "arn:aws:iam::111122223333:root"):
        assert decide(trust, assume(someone_else)) is Decision.IMPLICIT_DENY, someone_else
    # And without it, the verifier alone (the test above)
    assert decide(trust_of(member(), "ReaderRole"), assume(issuer)) is Decision.IMPLICIT_DENY


def test_the_pinned_session_name_and_role_name_are_what_the_verifier_uses() -> None:
    # Given the verifier's IAM clients, with an STS stand-in that records what it is asked
    class RecordingSts:
        calls: list[dict[str, str]] = []  # noqa: RUF012

        def assume_role(self, **arguments: str) -> dict[str, Any]:
            self.calls.append(arguments)
            expiry = datetime.now(UTC) + timedelta(hours=1)
            return {
                "Credentials": {
                    "AccessKeyId": "A",
                    "SecretAccessKey": "S",
                    "SessionToken": "T",
                    "Expiration": expiry,
                }
            }

    class StandInSession:
        region_name = "us-east-1"

        def client(self, service: str, **_: Any) -> object:
            return RecordingSts() if service == "sts" else object()

        def get_partition_for_region(self, region: str) -> str:
            return "aws"

    settings_default = VerifierSettings.model_fields["reader_role_name"].default
    clients = IamClients(
        StandInSession(),  # type: ignore[arg-type]
        role_name=settings_default,
        session_name=VERIFIER_SESSION_NAME,
        config=None,  # type: ignore[arg-type]
        home_account="111122223333",
    )

    # When it reads a role in the member account
    clients.for_account(ACCOUNT)

    # Then it assumes the role the template makes, under the session name the trust policy pins
    deployment = member()
    (call,) = RecordingSts.calls
    assert call["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/{deployment.properties('ReaderRole')['RoleName']}"
    pinned = trust_of(deployment, "ReaderRole")[0]["Condition"]["StringEquals"]["sts:RoleSessionName"]
    assert call["RoleSessionName"] == pinned


def test_reader_role_may_only_read_roles_of_its_own_account() -> None:
    permissions = permissions_of(member(enforce="Enabled"), "ReaderRole")

    assert decide(permissions, Request("iam:GetRole", ROLE_HERE)) is Decision.ALLOW
    assert decide(permissions, Request("iam:GetRole", ROLE_ELSEWHERE)) is Decision.IMPLICIT_DENY
    for action in ("iam:UntagRole", "iam:TagRole", "iam:GetAccountAuthorizationDetails", "iam:ListRoles"):
        assert decide(permissions, Request(action, ROLE_HERE)) is Decision.IMPLICIT_DENY, action


# --- the compliance role -----------------------------------------------------------------------------------


def test_compliance_role_trusts_only_the_compliance_function_role() -> None:
    trust = trust_of(member(), "ComplianceRole")

    assert decide(trust, assume(COMPLIANCE_FUNCTION_ROLE, "any-session")) is Decision.ALLOW
    for someone_else in (VERIFIER_ROLE, "arn:aws:iam::111122223333:root", f"arn:aws:iam::{ACCOUNT}:root"):
        assert decide(trust, assume(someone_else)) is Decision.IMPLICIT_DENY, someone_else


@pytest.mark.parametrize("enforce", ["Disabled", "Enabled"])
def test_compliance_role_sweeps_and_reads_in_both_modes(enforce: str) -> None:
    permissions = permissions_of(member(enforce), "ComplianceRole")

    assert decide(permissions, Request("iam:GetAccountAuthorizationDetails")) is Decision.ALLOW
    assert decide(permissions, Request("iam:GetRole", ROLE_HERE)) is Decision.ALLOW
    assert decide(permissions, Request("iam:GetRole", ROLE_ELSEWHERE)) is Decision.IMPLICIT_DENY
    for action in ("iam:TagRole", "iam:UpdateAssumeRolePolicy", "iam:DeleteRole", "iam:PutRolePolicy"):
        assert decide(permissions, Request(action, ROLE_HERE, {"aws:TagKeys": ["kuma.io/type"]})) is (
            Decision.IMPLICIT_DENY
        ), action


def test_report_mode_grants_no_untag_at_all() -> None:
    permissions = permissions_of(member("Disabled"), "ComplianceRole")
    assert decide(permissions, untag(["kuma.io/type"])) is Decision.IMPLICIT_DENY
    assert not any(
        resource["Type"] == "AWS::IAM::Policy" for resource in member("Disabled").resources.values()
    )


ASCII_SPELLINGS = ["".join(chars) for chars in product(*({c, c.upper()} for c in TAG_PREFIX))]


def test_enforce_lets_the_role_remove_every_case_variant_of_a_kuma_key() -> None:
    permissions = permissions_of(member("Enabled"), "ComplianceRole")
    assert len(ASCII_SPELLINGS) == 64
    for spelling in ASCII_SPELLINGS:
        for key in (f"{spelling}type", f"{spelling}service ", f"{spelling}"):
            assert decide(permissions, untag([key])) is Decision.ALLOW, key
    assert decide(permissions, untag(["kuma.io/type", "KUMA.IO/MESH", "Kuma.io/service"])) is Decision.ALLOW
    # only on roles of this account
    assert decide(permissions, untag(["kuma.io/type"], ROLE_ELSEWHERE)) is Decision.IMPLICIT_DENY


@pytest.mark.parametrize(
    "keys",
    [
        ["team"],
        ["kuma.io/type", "team"],  # one foreign key spoils the request
        ["team.kuma.io/owner"],
        ["xkuma.io/type"],
        ["kuma.io"],
        ["kuma-io/type"],
        ["puma.io/type"],
        [],
        None,  # no aws:TagKeys: ForAllValues alone would allow this; the Null check does not
    ],
)
def test_enforce_never_lets_the_role_remove_anything_else(keys: list[str] | None) -> None:
    permissions = permissions_of(member("Enabled"), "ComplianceRole")
    assert decide(permissions, untag(keys)) is Decision.IMPLICIT_DENY


@settings(max_examples=300, deadline=None)
@given(
    keys=st.lists(
        st.one_of(
            st.text(alphabet=TAG_KEY_CHARS, min_size=1, max_size=20),
            st.builds(
                lambda spelling, rest: spelling + rest, st.sampled_from(ASCII_SPELLINGS), st.text(max_size=10)
            ),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_enforce_grant_is_exactly_keys_starting_with_a_case_variant(keys: list[str]) -> None:
    permissions = permissions_of(member("Enabled"), "ComplianceRole")
    allowed = decide(permissions, untag(keys)) is Decision.ALLOW
    assert allowed == all(STARTS_WITH_A_CASE_VARIANT.match(key) for key in keys)
    if allowed:  # nothing the core's rule would not call kuma
        assert all(is_kuma_key(key) for key in keys)


# --- forwarding IAM events to the central bus --------------------------------------------------------

IAM_EVENT: dict[str, Any] = {
    "source": "aws.iam",
    "detail-type": "AWS API Call via CloudTrail",
    "detail": {"eventSource": "iam.amazonaws.com", "eventName": "TagRole"},
}


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge pattern matching for exact values: every field of the pattern is in the event and its
    value is one of the listed ones; nested objects recursively."""
    for field, wanted in pattern.items():
        if field not in event:
            return False
        if isinstance(wanted, dict):
            if not isinstance(event[field], dict) or not matches(wanted, event[field]):
                return False
        elif event[field] not in wanted:
            return False
    return True


@pytest.mark.parametrize(
    ("event", "forwarded"),
    [
        (IAM_EVENT, True),
        *[
            ({**IAM_EVENT, "detail": {**IAM_EVENT["detail"], "eventName": name}}, True)
            for name in ("CreateRole", "UntagRole", "UpdateAssumeRolePolicy")
        ],
        ({**IAM_EVENT, "detail": {**IAM_EVENT["detail"], "eventName": "GetRole"}}, False),
        ({**IAM_EVENT, "detail": {**IAM_EVENT["detail"], "eventName": "TagUser"}}, False),
        ({**IAM_EVENT, "source": "aws.sts"}, False),
        ({**IAM_EVENT, "detail-type": "AWS Service Event via CloudTrail"}, False),
    ],
)
def test_the_rule_forwards_exactly_the_four_role_events(event: dict[str, Any], forwarded: bool) -> None:
    rule = member().properties("IamEventForwardingRule")
    assert rule["EventBusName"] == "default"
    assert rule["State"] == "ENABLED"
    assert matches(rule["EventPattern"], event) is forwarded


def test_the_rule_puts_on_the_central_bus_through_a_role_that_may_do_only_that() -> None:
    deployment = member()
    (target,) = deployment.properties("IamEventForwardingRule")["Targets"]
    assert target["Arn"] == CENTRAL_BUS
    rule_arn = f"arn:aws:events:us-east-1:{ACCOUNT}:rule/kuma-iam-forward-iam-events"

    # The role is assumable by EventBridge for this rule of this account only (confused-deputy guard)
    trust = trust_of(deployment, "IamEventForwardingRole")
    assert target["RoleArn"].startswith(f"arn:aws:iam::{ACCOUNT}:role/")
    by_rule = {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": rule_arn}
    events = {"Service": "events.amazonaws.com"}
    assert decide(trust, Request("sts:AssumeRole", principal=events, context=by_rule)) is Decision.ALLOW
    other_rule = {**by_rule, "aws:SourceArn": rule_arn + "-2"}
    assert (
        decide(trust, Request("sts:AssumeRole", principal=events, context=other_rule))
        is Decision.IMPLICIT_DENY
    )
    other_account = {**by_rule, "aws:SourceAccount": "999988887777"}
    assert decide(trust, Request("sts:AssumeRole", principal=events, context=other_account)) is (
        Decision.IMPLICIT_DENY
    )
    assert decide(trust, assume(VERIFIER_ROLE)) is Decision.IMPLICIT_DENY

    # And it may put events on the central bus, nowhere else, nothing else
    permissions = permissions_of(deployment, "IamEventForwardingRole")
    assert decide(permissions, Request("events:PutEvents", CENTRAL_BUS)) is Decision.ALLOW
    assert decide(permissions, Request("events:PutEvents", CENTRAL_BUS + "-other")) is Decision.IMPLICIT_DENY
    assert decide(permissions, Request("events:PutRule", CENTRAL_BUS)) is Decision.IMPLICIT_DENY


def test_the_rule_targets_and_trust_name_the_same_rule() -> None:
    deployment = member()
    trust = trust_of(deployment, "IamEventForwardingRole")[0]
    assert trust["Condition"]["ArnEquals"]["aws:SourceArn"] == (
        f"arn:aws:events:us-east-1:{ACCOUNT}:rule/{deployment.properties('IamEventForwardingRule')['Name']}"
    )


def test_outside_us_east_1_the_roles_are_made_and_no_rule_that_would_never_fire() -> None:
    deployment = member(region="eu-west-1")
    assert {"ReaderRole", "ComplianceRole"} <= set(deployment.resources)
    assert "IamEventForwardingRule" not in deployment.resources
    assert "IamEventForwardingRole" not in deployment.resources
    assert deployment.outputs["IamEventForwarding"].startswith(
        "off: IAM's events reach EventBridge only in us-east-1"
    )
    assert member().outputs["IamEventForwarding"].startswith("on: ")


def test_every_arn_follows_the_partition() -> None:
    # Given the stack in GovCloud, where IAM's events arrive in us-gov-west-1
    gov = deploy(
        MEMBER_TEMPLATE,
        {
            "VerifierRoleArn": VERIFIER_ROLE.replace("arn:aws:", "arn:aws-us-gov:"),
            "TagComplianceRoleArn": COMPLIANCE_FUNCTION_ROLE.replace("arn:aws:", "arn:aws-us-gov:"),
            "ComplianceEventBusArn": "arn:aws-us-gov:events:us-gov-west-1:111122223333:event-bus/kuma-iam",
            "Enforce": "Enabled",
        },
        region="us-gov-west-1",
        partition="aws-us-gov",
        account=ACCOUNT,
    )
    # Then every ARN the stack makes is in that partition, and the template never writes arn:aws: itself
    assert "IamEventForwardingRule" in gov.resources
    arns = re.findall(r"arn:[a-z-]+:", repr(gov.resources))
    assert arns
    assert set(arns) == {"arn:aws-us-gov:"}
    assert "arn:aws:" not in re.sub(r"(?m)^\s*#.*$", "", MEMBER_TEMPLATE.read_text())


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("VerifierRoleArn", "arn:aws:sts::111122223333:assumed-role/kuma-iam-Verifier/x"),
        ("VerifierRoleArn", "arn:aws:iam::111122223333:user/someone"),
        ("VerifierRoleArn", "*"),
        ("TagComplianceRoleArn", "arn:aws:iam::111122223333:root"),
        ("ComplianceEventBusArn", "arn:aws:sqs:us-east-1:111122223333:queue"),
        ("ReaderRoleName", "a role"),
        ("Enforce", "enforce"),
    ],
)
def test_parameters_refuse_what_would_widen_a_trust_or_target(parameter: str, value: str) -> None:
    with pytest.raises(ParameterRejected):
        deploy(MEMBER_TEMPLATE, {**PARAMETERS, parameter: value}, account=ACCOUNT)


def test_role_names_default_to_what_the_main_stack_and_the_verifier_expect() -> None:
    member_parameters = load(MEMBER_TEMPLATE)["Parameters"]
    main_parameters = load(MAIN_TEMPLATE)["Parameters"]
    assert member_parameters["ReaderRoleName"]["Default"] == main_parameters["ReaderRoleName"]["Default"]
    assert (
        member_parameters["ReaderRoleName"]["Default"]
        == VerifierSettings.model_fields["reader_role_name"].default
    )
    assert member_parameters["ComplianceRoleName"]["Default"] == "kuma-iam-compliance"
    if "ComplianceRoleName" in main_parameters:
        assert (
            member_parameters["ComplianceRoleName"]["Default"]
            == main_parameters["ComplianceRoleName"]["Default"]
        )


def test_the_main_stack_outputs_what_the_member_template_asks_for() -> None:
    main = load(MAIN_TEMPLATE)
    if "TagComplianceFunction" not in main["Resources"]:
        pytest.skip("the tag-compliance function (issue 8) is not in template.yaml yet")
    for output in ("VerifierRoleArn", "TokenIssuerRoleArn", "TagComplianceRoleArn", "ComplianceEventBusArn"):
        assert output in main["Outputs"], output


@pytest.mark.parametrize("path", [MAIN_TEMPLATE, MEMBER_TEMPLATE], ids=lambda path: path.name)
def test_every_checkov_skip_says_why(path: Any) -> None:
    for name, resource in load(path)["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (name, skip)
            assert len(skip.get("comment", "").split()) >= 8, f"{name} skips {skip['id']} without a reason"
