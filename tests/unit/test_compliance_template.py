"""template.yaml's tag-compliance part, held to the core: the UntagRole grant admits every spelling IAM takes
for a kuma.io/ key and nothing else, the HIGH alarm watches every HIGH rule, the rules watch the calls the
core parses, and the function's environment is what ComplianceSettings reads."""

from __future__ import annotations

import fnmatch
import itertools
import json
from typing import Any

import pytest
from cfnlint.decode import decode_str

from kuma_iam.compliance.events import WATCHED_CALLS
from kuma_iam.config import ComplianceSettings
from kuma_iam.rules import RULES, Severity, is_kuma_key
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


def _string_like(patterns: list[str], value: str) -> bool:
    """IAM's StringLike: case-sensitive, `*` any run of characters, `?` one character."""
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def _spellings(key: str) -> list[str]:
    return [
        "".join(chars)
        for chars in itertools.product(*[(c.lower(), c.upper()) if c.isalpha() else (c,) for c in key])
    ]


def test_untag_role_grant_admits_every_case_spelling_of_a_kuma_key_and_nothing_else(
    template: dict[str, Any],
) -> None:
    # Given the enforce-mode UntagRole statement
    statement = _statement(template, "RemoveOnlyKumaTags")
    patterns = statement["Condition"]["ForAllValues:StringLike"]["aws:TagKeys"]
    assert statement["Condition"]["Null"] == {"aws:TagKeys": "false"}
    assert statement["Action"] == ["iam:UntagRole"]

    # Then every spelling IAM treats as a kuma.io/ key passes (IAM compares tag keys without case) ...
    for key in ("kuma.io/type", "kuma.io/service", " kuma.io/mesh", "kuma.io/x"):
        for spelling in _spellings(key):
            assert is_kuma_key(spelling)
            assert _string_like(patterns, spelling), spelling
    # ... and no other key does
    for other in (
        "team",
        "Name",
        "kuma.iox/type",
        "xkuma.io/type",
        "kuma-io/type",
        "kuma.io",
        "aws:cloudformation:stack-name",
    ):
        assert not _string_like(patterns, other), other
    assert len(patterns) == len(set(patterns)) == 128


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
