"""What every function of the template must have, so that a new one inherits it or fails here.

Least privilege for logs (its own role, writing only its own log group), log groups an operator can keep,
endpoint overrides that never reach a deployed stack, alarms the encrypted topic admits, a dashboard that can
exist in two regions, and the secure defaults (replay protection on, a token age parameter). Read from
template.yaml with its intrinsics resolved (support.cfn_template), and from SAM's own translation.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from functools import cache
from typing import Any

import pytest

from kuma_iam.config import VerifierSettings
from support.cfn_template import ACCOUNT, REGION, STACK_NAME, Template, placeholder
from support.project_files import REPO

FUNCTION = "AWS::Serverless::Function"
ALARM_ARNS = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{STACK_NAME}/*"
_ENDPOINT_OVERRIDE = re.compile(r"AWS_ENDPOINT_URL(_[A-Z0-9_]+)?")


@cache
def _template(**parameters: str) -> Template:
    return Template.load(REPO / "template.yaml", **parameters)


def _functions() -> list[str]:
    return sorted(_template().of_type(FUNCTION))


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    """A policy's statements; in an unresolved template, both branches of a conditional one."""
    found = []
    for statement in _as_list(policy["Statement"]):
        if set(statement) == {"Fn::If"}:
            found += [
                branch
                for branch in statement["Fn::If"][1:]
                if isinstance(branch, dict) and "Effect" in branch
            ]
        else:
            found.append(statement)
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@cache
def _translated() -> dict[str, Any]:
    """SAM's translation of template.yaml (what CloudFormation deploys), optional parts switched on."""
    completed = subprocess.run(
        [
            sys.executable, "tools/lint-template/translate.py", "template.yaml",
            "--set", "ReplayProtection=Enabled", "--set", "ReservedConcurrency=50",
            "--set", "RetainLogs=Enabled",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    translated: dict[str, Any] = json.loads(completed.stdout)
    return translated


@pytest.mark.parametrize("function", _functions())
def test_each_function_writes_only_its_own_log_group(function: str) -> None:
    # Given the function, its log group and its role
    template = _template()
    properties = template.properties(function)
    log_group = properties["LoggingConfig"]["LogGroup"]
    assert log_group.removeprefix("<").removesuffix(">") in template.of_type("AWS::Logs::LogGroup"), log_group
    role = properties.get("Role", "")
    assert role.endswith(".Arn>"), f"{function} needs its own Role (SAM's generated one has logs on *)"
    role_properties = template.properties(role.removeprefix("<").removesuffix(".Arn>"))

    # Then the role has no managed policy (AWSLambdaBasicExecutionRole is logs:* on *), and its only logs
    # grant is CreateLogStream/PutLogEvents on the function's own log group
    assert not role_properties.get("ManagedPolicyArns"), role_properties.get("ManagedPolicyArns")
    logs_grants = [
        statement
        for policy in role_properties["Policies"]
        for statement in _statements(policy["PolicyDocument"])
        if any(str(action).startswith("logs:") for action in _as_list(statement["Action"]))
    ]
    assert len(logs_grants) == 1, logs_grants
    (grant,) = logs_grants
    assert grant["Effect"] == "Allow"
    assert sorted(_as_list(grant["Action"])) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert _as_list(grant["Resource"]) == [log_group.removesuffix(">") + ".Arn>"]


def test_no_role_in_the_deployed_template_can_write_any_log_group() -> None:
    # Given what SAM generates from the template
    resources = _translated()["Resources"]
    roles = {name: res for name, res in resources.items() if res["Type"] == "AWS::IAM::Role"}
    assert roles

    # Then no role carries a managed policy, nor a logs grant on a wildcard
    for name, role in roles.items():
        assert not role["Properties"].get("ManagedPolicyArns"), name
        for policy in role["Properties"].get("Policies", []):
            for statement in _statements(policy["PolicyDocument"]):
                if any(str(action).startswith("logs:") for action in _as_list(statement["Action"])):
                    assert "*" not in json.dumps(statement["Resource"]), (name, statement)


@pytest.mark.parametrize("retain", ["Enabled", "Disabled"])
def test_log_groups_follow_retain_logs_and_have_generated_names(retain: str) -> None:
    # Given the template with RetainLogs on or off
    template = _template(RetainLogs=retain)
    expected = "Retain" if retain == "Enabled" else "Delete"

    # Then every log group is kept (or deleted) with the stack and on replacement, and CloudFormation names
    # it, so that a kept group never collides with the next deploy
    groups = template.of_type("AWS::Logs::LogGroup")
    assert groups
    for name, resource in groups.items():
        assert template.resolve(resource["DeletionPolicy"]) == expected, name
        assert template.resolve(resource["UpdateReplacePolicy"]) == expected, name
        assert "LogGroupName" not in resource["Properties"], name


def test_samconfig_prod_keeps_logs_reserves_concurrency_and_single_use_tokens() -> None:
    # Given samconfig.toml's environments
    config = tomllib.loads((REPO / "samconfig.toml").read_text())

    def overrides(env: str, command: str = "deploy") -> dict[str, str]:
        text = config[env][command]["parameters"].get("parameter_overrides", "")
        return dict(item.split("=", 1) for item in text.split())

    # Then prod keeps its logs, reserves concurrency and makes tokens single-use; every sam local
    # environment declares the endpoint overrides; no deploy environment does
    prod = overrides("prod")
    assert (prod["RetainLogs"], prod["ReplayProtection"]) == ("Enabled", "Enabled")
    assert int(prod["ReservedConcurrency"]) > 0
    for env in ("default", "local"):
        for command in ("local_invoke", "local_start_api"):
            assert overrides(env, command)["LocalEndpointOverrides"] == "Enabled"
    for env, commands in config.items():
        if isinstance(commands, dict) and "deploy" in commands:
            assert "LocalEndpointOverrides" not in overrides(env), env
            assert "CAPABILITY_AUTO_EXPAND" in commands["deploy"]["parameters"]["capabilities"], env


@pytest.mark.parametrize("function", _functions())
def test_a_deployed_function_declares_no_endpoint_override(function: str) -> None:
    # Given the function as deployed, and as sam local sees it (samconfig's local environments)
    deployed = _template().function_environment(function)
    local = _template(LocalEndpointOverrides="Enabled").function_environment(function)

    # Then only sam local declares the SDK's endpoint overrides (empty, for --env-vars to set)
    assert not [name for name in deployed if _ENDPOINT_OVERRIDE.fullmatch(name)], deployed
    declared = {name: value for name, value in local.items() if _ENDPOINT_OVERRIDE.fullmatch(name)}
    assert set(declared) >= {"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_IAM"}
    assert set(declared.values()) == {""}


def test_alarms_are_named_for_the_stack_and_only_they_may_use_the_topic_and_its_key() -> None:
    # Given every alarm, the alarm topic, its policy and its key
    template = _template()
    alarms = template.of_type("AWS::CloudWatch::Alarm")
    topic = template.properties("AlarmTopic")
    key_policy = template.properties(topic["KmsMasterKeyId"].strip("<>"))["KeyPolicy"]
    (topic_policy,) = [
        template.properties(name)["PolicyDocument"]
        for name in template.of_type("AWS::SNS::TopicPolicy")
        if placeholder("AlarmTopic") in template.properties(name)["Topics"]
    ]

    # Then every alarm is named <stack>/..., and CloudWatch may publish to the topic and use its key only
    # for alarms of that name in this account
    assert alarms
    for name in alarms:
        alarm_name = template.properties(name)["AlarmName"]
        assert alarm_name.startswith(f"{STACK_NAME}/"), (name, alarm_name)
    for policy in (topic_policy, key_policy):
        for statement in _statements(policy):
            if statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}:
                assert statement["Condition"]["ArnLike"] == {"aws:SourceArn": ALARM_ARNS}, statement
                assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}, statement
    assert template.properties(topic["KmsMasterKeyId"].strip("<>"))["EnableKeyRotation"] is True


def test_the_dashboard_name_carries_the_region() -> None:
    template = _template()
    for name in template.of_type("AWS::CloudWatch::Dashboard"):
        dashboard_name = template.properties(name)["DashboardName"]
        assert STACK_NAME in dashboard_name
        assert REGION in dashboard_name


def test_secure_defaults_replay_on_and_token_age_a_parameter() -> None:
    # Given the template's defaults and the verifier's settings model
    template = _template()
    environment = template.function_environment("VerifierFunction")
    age_field = VerifierSettings.model_fields["max_token_age_seconds"]
    bounds = {type(item).__name__: item for item in age_field.metadata}
    age = template.body["Parameters"]["MaxTokenAgeSeconds"]

    # Then replay protection is on by default, and the token age parameter reaches the function within
    # what the settings accept
    assert template.parameters["ReplayProtection"] == "Enabled"
    assert environment["KUMA_IAM_REPLAY_TABLE"] == placeholder("ReplayTable")
    assert environment["KUMA_IAM_MAX_TOKEN_AGE_SECONDS"] == template.parameters["MaxTokenAgeSeconds"]
    assert bounds["Ge"].ge <= age["MinValue"] <= age["MaxValue"] <= bounds["Le"].le


def test_reserved_concurrency_is_optional() -> None:
    assert "ReservedConcurrentExecutions" not in _template().properties("VerifierFunction")
    reserved = _template(ReservedConcurrency="80").properties("VerifierFunction")
    assert reserved["ReservedConcurrentExecutions"] == "80"


def test_the_verifier_assumes_reader_roles_only_outside_its_own_account() -> None:
    # Given the verifier's AssumeRole grant
    role = _template().properties("VerifierFunctionRole")
    (grant,) = [
        statement
        for policy in role["Policies"]
        for statement in _statements(policy["PolicyDocument"])
        if "sts:AssumeRole" in _as_list(statement["Action"])
    ]

    # Then it names only the authorized accounts, never its own
    assert grant["Condition"]["StringNotEquals"] == {"aws:ResourceAccount": ACCOUNT}
    assert ACCOUNT in grant["Condition"]["StringEquals"]["aws:ResourceAccount"]


def test_access_log_is_json_with_errors_and_the_callers_account() -> None:
    # Given the verify API's access log format
    template = _template()
    (api,) = template.of_type("AWS::Serverless::HttpApi")
    log_format = template.properties(api)["AccessLogSettings"]["Format"]

    # Then it parses as JSON and carries API Gateway's own error and the caller's account
    fields = json.loads(log_format)
    for variable in ("$context.error.message", "$context.error.responseType", "$context.identity.accountId"):
        assert variable in fields.values(), variable
    assert fields["service"] == STACK_NAME


@pytest.mark.parametrize("function", _functions())
def test_each_handler_flushes_its_metrics(function: str) -> None:
    # Given the function's handler as the template names it
    properties = _template().properties(function)
    module, handler = properties["Handler"].rsplit(".", 1)
    tree = ast.parse((REPO / properties["CodeUri"] / f"{module}.py").read_text())
    (definition,) = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == handler]

    # Then it is wrapped in metrics.log_metrics: the aggregated metrics (Allowed, latencies...) are written
    # only when the handler returns through it
    decorators = [ast.unparse(decorator) for decorator in definition.decorator_list]
    assert any(decorator.startswith("metrics.log_metrics") for decorator in decorators), decorators
