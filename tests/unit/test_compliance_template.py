"""template.yaml's tag-compliance part, held to the core: the UntagRole grant (as support/iam_policy.py
reads it) admits exactly the keys the core would remove; the HIGH alarm watches every HIGH rule; the rules
watch the calls the core parses; the function's environment is what ComplianceSettings reads."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest
from cfnlint.decode import decode_str
from hypothesis import given, settings
from hypothesis import strategies as st

from kuma_iam.compliance.events import WATCHED_CALLS
from kuma_iam.compliance.outputs import EVENT_DETAIL_TYPE, EVENT_SOURCE
from kuma_iam.config import ComplianceSettings
from kuma_iam.rules import RULES, TAG_PREFIX, Severity, is_removable_kuma_key
from support.cfn_template import deploy
from support.iam_policy import Decision, Request, decide, statements_of
from support.project_files import REPO


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, problems = decode_str((REPO / "template.yaml").read_text())
    assert not problems, problems
    return dict(json.loads(json.dumps(decoded)))


def _statement(template: dict[str, Any], sid: str) -> dict[str, Any]:
    for policy in template["Resources"]["TagComplianceFunctionRole"]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                statement = statement["Fn::If"][1]
            if statement.get("Sid") == sid:
                return dict(statement)
    raise AssertionError(f"no statement {sid}")


ACCOUNT = "111122223333"
STARTS_WITH_A_CASE_VARIANT = re.compile(r"[kK][uU][mM][aA]\.[iI][oO]/")
TAG_KEY_CHARS = st.characters(categories=["L", "Z", "N"], include_characters="_.:/=+-@")


def _permissions(enforce: bool) -> list[Any]:
    deployment = deploy(
        REPO / "template.yaml",
        {
            "AuthorizedAccountIds": f"{ACCOUNT},222233334444",
            "ServerId": "cp",
            "ComplianceMode": "enforce" if enforce else "report",
        },
        account=ACCOUNT,
        stack_name="kuma-iam",
        only=["TagComplianceFunctionRole"],
    )
    return [
        statement
        for policy in deployment.properties("TagComplianceFunctionRole")["Policies"]
        for statement in statements_of(policy["PolicyDocument"])
    ]


def _untag(keys: list[str] | None, role: str = f"arn:aws:iam::{ACCOUNT}:role/backend-task") -> Request:
    return Request("iam:UntagRole", role, {} if keys is None else {"aws:TagKeys": keys})


def _spellings(prefix: str) -> list[str]:
    return ["".join(chars) for chars in itertools.product(*[{c, c.upper()} for c in prefix])]


def test_report_mode_grants_no_untag() -> None:
    assert decide(_permissions(enforce=False), _untag(["kuma.io/type"])) is not Decision.ALLOW


def test_enforce_grants_untag_of_every_case_spelling_and_the_core_removes_only_those() -> None:
    permissions = _permissions(enforce=True)
    for spelling in _spellings(TAG_PREFIX):
        for key in (f"{spelling}type", f"{spelling}service ", spelling):
            assert decide(permissions, _untag([key])) is Decision.ALLOW, key
            assert is_removable_kuma_key(key)
    elsewhere = "arn:aws:iam::999988887777:role/x"
    assert decide(permissions, _untag(["kuma.io/type"], elsewhere)) is not Decision.ALLOW


@pytest.mark.parametrize(
    "keys",
    [["team"], ["kuma.io/type", "team"], ["xkuma.io/type"], ["kuma.io"], ["kuma-io/type"], [" kuma.io/type"]],
)
def test_enforce_never_grants_untag_of_anything_else(keys: list[str]) -> None:
    assert decide(_permissions(enforce=True), _untag(keys)) is not Decision.ALLOW
    assert not all(is_removable_kuma_key(key) for key in keys)


@pytest.mark.parametrize("keys", [[], None])
def test_enforce_never_grants_untag_without_keys(keys: list[str] | None) -> None:
    assert decide(_permissions(enforce=True), _untag(keys)) is not Decision.ALLOW


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(alphabet=TAG_KEY_CHARS, min_size=1, max_size=14)
        | st.builds(
            lambda spelling, rest: spelling + rest,
            st.sampled_from(_spellings(TAG_PREFIX)),
            st.text(max_size=6),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_grant_and_core_agree_on_what_may_be_removed(keys: list[str]) -> None:
    allowed = decide(_permissions(enforce=True), _untag(keys)) is Decision.ALLOW
    assert allowed == all(is_removable_kuma_key(key) for key in keys)
    assert allowed == all(STARTS_WITH_A_CASE_VARIANT.match(key) for key in keys)


def test_high_findings_alarm_watches_exactly_the_high_rules(template: dict[str, Any]) -> None:
    queries = template["Resources"]["HighSeverityFindingsAlarm"]["Properties"]["Metrics"]
    watched = {
        dimension["Value"]
        for query in queries
        if "MetricStat" in query
        for dimension in query["MetricStat"]["Metric"]["Dimensions"]
        if dimension["Name"] == "rule"
    }
    assert all(
        q["MetricStat"]["Metric"]["MetricName"] == "ComplianceFinding" for q in queries if "MetricStat" in q
    )
    assert watched == {rule.id for rule in RULES.values() if rule.severity is Severity.HIGH}
    expression = next(query["Expression"] for query in queries if query.get("ReturnData"))
    assert all(f"FILL({query['Id']}, 0)" in expression for query in queries if "MetricStat" in query)


def test_event_rules_match_the_calls_the_core_parses(template: dict[str, Any]) -> None:
    events = template["Resources"]["TagComplianceFunction"]["Properties"]["Events"]
    for name in ("IamChanges", "ForwardedIamChanges"):
        pattern = events[name]["Properties"]["Pattern"]
        assert pattern["source"] == ["aws.iam"]
        assert pattern["detail-type"] == ["AWS API Call via CloudTrail"]
        assert pattern["detail"]["eventName"] == list(WATCHED_CALLS)
    assert events["ForwardedIamChanges"]["Properties"]["EventBusName"] == {"Ref": "ComplianceEventBus"}
    assert events["Sweep"]["Type"] == "Schedule"


def test_function_environment_is_what_the_settings_read(template: dict[str, Any]) -> None:
    variables = template["Resources"]["TagComplianceFunction"]["Properties"]["Environment"]["Variables"]
    read = set()
    for field in ComplianceSettings.model_fields.values():
        alias = field.validation_alias
        read.update(alias.choices if hasattr(alias, "choices") else [alias])
    assert set(variables) <= read, set(variables) - read
    assert {"KUMA_IAM_COMPLIANCE_MODE", "KUMA_IAM_TAG_ADMINS", "KUMA_IAM_IDEMPOTENCY_TABLE"} <= set(variables)


def test_assume_grant_is_only_the_authorized_accounts_compliance_role(template: dict[str, Any]) -> None:
    statement = _statement(template, "AssumeComplianceRoles")
    assert statement["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/${ComplianceRoleName}"}
    assert statement["Condition"]["StringEquals"]["aws:ResourceAccount"] == {
        "Fn::Split": [",", {"Ref": "AuthorizedAccountIds"}]
    }
    outputs = template["Outputs"]
    assert {"ComplianceEventBusArn", "TagComplianceRoleArn"} <= set(outputs)


def _put_event(source: str, detail_type: str) -> Request:
    return Request(
        "events:PutEvents",
        f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/default",
        {"events:source": source, "events:detail-type": detail_type},
    )


def test_the_function_may_put_its_own_finding_events_and_no_other() -> None:
    # The source and detail-type the core writes (kuma_iam.compliance.outputs)
    permissions = _permissions(enforce=False)
    assert decide(permissions, _put_event(EVENT_SOURCE, EVENT_DETAIL_TYPE)) is Decision.ALLOW
    # Not events that other teams' rules on the default bus would route as someone else's
    for source, detail_type in [
        ("com.example.deployments", "Deployment Approved"),
        (EVENT_SOURCE, "Deployment Approved"),
        ("com.example.deployments", EVENT_DETAIL_TYPE),
    ]:
        assert decide(permissions, _put_event(source, detail_type)) is not Decision.ALLOW, source
    other_bus = Request(
        "events:PutEvents",
        f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/payments",
        {"events:source": EVENT_SOURCE, "events:detail-type": EVENT_DETAIL_TYPE},
    )
    assert decide(permissions, other_bus) is not Decision.ALLOW
