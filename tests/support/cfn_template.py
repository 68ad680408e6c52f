"""A CloudFormation template as one deployment would see it, for tests that read its policies as IAM will.

`deploy(path, parameters, region=..., partition=...)` checks the parameters as CloudFormation does
(AllowedValues, AllowedPattern), evaluates the Conditions, drops the resources and outputs whose condition
is false, and resolves the intrinsic functions our templates use: Ref, Fn::Sub, Fn::GetAtt (Arn of roles
and rules), Fn::If, Fn::Equals, Fn::Or, Fn::And, Fn::Not, Fn::Split, Fn::Join and AWS::NoValue.

`Template.load(path, **parameters)` is the same resolver for tests that follow references rather than read
ARNs (every function's environment, its role, its log group, the dashboard): a resource reference resolves
to a placeholder naming it (`<VerifierApi>`, `<ReplayTable.Arn>`), parameters default, and the pseudo
parameters are fixed (the stack name above all, which names metrics and alarms).
`cloudformation_templates()` finds every template of the project.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str  # type: ignore[import-untyped]

from support.project_files import REPO

_NO_VALUE = object()
_SUB_REFERENCE = re.compile(r"\$\{(!?)([^}]+)\}")


class ParameterRejected(ValueError):
    """CloudFormation would refuse the stack: a parameter outside its AllowedValues or AllowedPattern."""


@dataclass(frozen=True)
class Deployment:
    resources: dict[str, dict[str, Any]]
    outputs: dict[str, Any]
    conditions: dict[str, bool]

    def properties(self, logical_id: str) -> dict[str, Any]:
        properties: dict[str, Any] = self.resources[logical_id].get("Properties", {})
        return properties


def load(path: Path) -> dict[str, Any]:
    decoded, problems = decode_str(path.read_text())
    assert not problems, problems
    plain: dict[str, Any] = json.loads(json.dumps(decoded))  # plain dicts, lists and strings
    return plain


def deploy(
    path: Path,
    parameters: Mapping[str, str],
    *,
    region: str = "us-east-1",
    partition: str = "aws",
    account: str = "222233334444",
    stack_name: str = "kuma-iam-member",
    only: Collection[str] | None = None,
) -> Deployment:
    """The template as CloudFormation would deploy it; `only` resolves just those resources (and no outputs),
    for a template with parts this resolver does not model."""
    template = load(path)
    return _Resolver(template, parameters, region, partition, account, stack_name).deployment(only)


class _Resolver:
    def __init__(
        self,
        template: dict[str, Any],
        parameters: Mapping[str, str],
        region: str,
        partition: str,
        account: str,
        stack_name: str,
    ) -> None:
        self._template = template
        self._pseudo = {
            "AWS::Region": region,
            "AWS::Partition": partition,
            "AWS::AccountId": account,
            "AWS::StackName": stack_name,
            "AWS::URLSuffix": "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com",
        }
        self._parameters = self._checked_parameters(parameters)
        self._conditions: dict[str, bool] = {}

    def deployment(self, only: Collection[str] | None = None) -> Deployment:
        conditions = {name: self._condition(name) for name in self._template.get("Conditions", {})}
        resources = {
            name: self._value(resource)
            for name, resource in self._template["Resources"].items()
            if self._holds(resource) and (only is None or name in only)
        }
        outputs = {
            name: self._value(output["Value"])
            for name, output in self._template.get("Outputs", {}).items()
            if self._holds(output) and only is None
        }
        return Deployment(resources, outputs, conditions)

    def _checked_parameters(self, given: Mapping[str, str]) -> dict[str, str]:
        declared = self._template.get("Parameters", {})
        unknown = set(given) - set(declared)
        assert not unknown, f"the template has no parameters {sorted(unknown)}"
        values = {}
        for name, spec in declared.items():
            if name not in given and "Default" not in spec:
                raise ParameterRejected(f"{name} is required")
            value = str(given.get(name, spec.get("Default")))
            if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
                raise ParameterRejected(f"{name}={value!r} is not one of {spec['AllowedValues']}")
            if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
                raise ParameterRejected(f"{name}={value!r} does not match {spec['AllowedPattern']}")
            values[name] = value
        return values

    def _holds(self, item: Mapping[str, Any]) -> bool:
        return "Condition" not in item or self._condition(item["Condition"])

    def _condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self._value(self._template["Conditions"][name]))
        return self._conditions[name]

    def _value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [value for value in (self._value(item) for item in node) if value is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (function, argument), *_ = node.items()
            if function == "Ref" or function.startswith("Fn::") or function == "Condition":
                return self._function(function, argument)
        resolved = {key: self._value(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not _NO_VALUE}

    def _function(self, function: str, argument: Any) -> Any:
        if function == "Ref":
            return self._ref(argument)
        if function == "Condition":
            return self._condition(argument)
        if function == "Fn::If":
            name, if_true, if_false = argument
            return self._value(if_true if self._condition(name) else if_false)
        if function == "Fn::Equals":
            left, right = (self._value(side) for side in argument)
            return str(left) == str(right)
        if function == "Fn::Or":
            return any(self._value(item) for item in argument)
        if function == "Fn::And":
            return all(self._value(item) for item in argument)
        if function == "Fn::Not":
            return not self._value(argument[0])
        if function == "Fn::Split":
            delimiter, text = argument
            return str(self._value(text)).split(delimiter)
        if function == "Fn::Join":
            delimiter, items = argument
            return delimiter.join(str(item) for item in self._value(items))
        if function == "Fn::GetAtt":
            logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
            return self._attribute(logical_id, attribute)
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            return self._sub(text, {name: self._value(value) for name, value in variables.items()})
        raise NotImplementedError(f"{function} is not modelled")

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._parameters:
            return self._parameters[name]
        resource = self._template["Resources"][name]
        if resource["Type"] == "AWS::IAM::Role":
            return self._role_name(name)
        if resource["Type"] == "AWS::SNS::Topic":  # a topic's Ref is its ARN
            return self._attribute(name, "TopicArn")
        return self._generated_name(name)

    def _generated_name(self, logical_id: str) -> str:
        return f"{self._pseudo['AWS::StackName']}-{logical_id}"

    def _sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            literal, reference = match.groups()
            if literal:
                return "${" + reference + "}"
            if reference in variables:
                return str(variables[reference])
            if "." in reference:
                return str(self._attribute(*reference.split(".", 1)))
            return str(self._ref(reference))

        return _SUB_REFERENCE.sub(replace, text)

    def _role_name(self, logical_id: str) -> str:
        properties = self._template["Resources"][logical_id].get("Properties", {})
        if "RoleName" in properties:
            return str(self._value(properties["RoleName"]))
        return f"{self._pseudo['AWS::StackName']}-{logical_id}-GENERATED"

    def _attribute(self, logical_id: str, attribute: str) -> str:
        resource = self._template["Resources"][logical_id]
        assert self._holds(resource), f"{logical_id}.{attribute} of a resource this deployment does not make"
        arn = f"arn:{self._pseudo['AWS::Partition']}"
        if resource["Type"] == "AWS::IAM::Role" and attribute == "Arn":
            path = self._value(resource.get("Properties", {}).get("Path", "/"))
            return f"{arn}:iam::{self._pseudo['AWS::AccountId']}:role{path}{self._role_name(logical_id)}"
        where = f"{self._pseudo['AWS::Region']}:{self._pseudo['AWS::AccountId']}"
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Events::Rule" and attribute == "Arn":
            name = self._value(properties["Name"])
            return f"{arn}:events:{where}:rule/{name}"
        if resource["Type"] == "AWS::Events::EventBus" and attribute == "Arn":
            return f"{arn}:events:{where}:event-bus/{self._value(properties['Name'])}"
        if resource["Type"] == "AWS::Logs::LogGroup" and attribute == "Arn":
            name = self._value(properties.get("LogGroupName", self._generated_name(logical_id)))
            return f"{arn}:logs:{where}:log-group:{name}:*"
        if resource["Type"] == "AWS::DynamoDB::Table" and attribute == "Arn":
            return f"{arn}:dynamodb:{where}:table/{self._generated_name(logical_id)}"
        if resource["Type"] == "AWS::SQS::Queue" and attribute in ("Arn", "QueueName"):
            name = self._generated_name(logical_id)
            return f"{arn}:sqs:{where}:{name}" if attribute == "Arn" else name
        if resource["Type"] == "AWS::CloudWatch::Alarm" and attribute == "Arn":
            return f"{arn}:cloudwatch:{where}:alarm:{self._generated_name(logical_id)}"
        if resource["Type"] == "AWS::SNS::Topic" and attribute in ("TopicArn", "TopicName"):
            name = self._generated_name(logical_id)
            return f"{arn}:sns:{where}:{name}" if attribute == "TopicArn" else name
        raise NotImplementedError(f"Fn::GetAtt {resource['Type']}.{attribute} is not modelled")


# --- references as placeholders: Template ------------------------------------------------------------

STACK_NAME = "kuma-iam-test"
REGION = "eu-west-1"
ACCOUNT = "123456789012"
# Required parameters of template.yaml without a default: values their patterns accept.
_REQUIRED_EXAMPLES = {"AuthorizedAccountIds": f"{ACCOUNT},210987654321", "ServerId": "kuma-test"}


def placeholder(logical_id: str, attribute: str | None = None) -> str:
    return f"<{logical_id}.{attribute}>" if attribute else f"<{logical_id}>"


def cloudformation_templates() -> list[Path]:
    """Every CloudFormation template of the project (template.yaml and any other deployable one)."""
    found = []
    for folder, subfolders, files in os.walk(REPO):
        # Hidden folders hold the venv, builds and caches, never a template of ours.
        subfolders[:] = sorted(
            name for name in subfolders if not name.startswith(".") and name != "node_modules"
        )
        for name in sorted(files):
            if name.endswith((".yaml", ".yml")):
                path = Path(folder) / name
                head = path.read_text(errors="replace")[:4000]
                if "AWSTemplateFormatVersion" in head or "AWS::Serverless" in head:
                    found.append(path)
    return sorted(found)


class _PlaceholderResolver(_Resolver):
    """The deployment resolver, with references to resources left as placeholders naming them."""

    def __init__(self, template: dict[str, Any], parameters: Mapping[str, str]) -> None:
        super().__init__(template, parameters, REGION, "aws", ACCOUNT, STACK_NAME)
        self._pseudo["AWS::StackId"] = (
            f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK_NAME}/0a1b2c3d-0000-4000-8000"
        )

    def _checked_parameters(self, given: Mapping[str, str]) -> dict[str, str]:
        # Given values are checked as CloudFormation would; a required one nobody gave stands as a
        # placeholder (these tests follow references, not values).
        declared = self._template.get("Parameters", {})
        missing = {
            name: f"<{name}>"
            for name, spec in declared.items()
            if name not in given and "Default" not in spec
        }
        template = self._template
        self._template = {**template, "Parameters": {n: v for n, v in declared.items() if n not in missing}}
        try:
            checked = super()._checked_parameters(given)
        finally:
            self._template = template
        return {**checked, **missing}

    def _ref(self, name: str) -> Any:
        if name in self._template.get("Resources", {}) and name not in self._parameters:
            return placeholder(name)
        return super()._ref(name)

    def _attribute(self, logical_id: str, attribute: str) -> str:
        assert logical_id in self._template["Resources"], f"Fn::GetAtt of unknown {logical_id}"
        return placeholder(logical_id, attribute)

    def _function(self, function: str, argument: Any) -> Any:
        if function == "Fn::Select":
            index, items = argument
            return self._value(items)[int(self._value(index))]
        if function == "Fn::FindInMap":
            mapping, first, second = (self._value(item) for item in argument[:3])
            return self._template["Mappings"][mapping][first][second]
        if function in ("Fn::Base64", "Fn::ToJsonString"):
            resolved = self._value(argument)
            return resolved if isinstance(resolved, str) else json.dumps(resolved)
        if function == "Fn::ImportValue":
            return f"<import {self._value(argument)}>"
        return super()._function(function, argument)

    def value(self, node: Any) -> Any:
        return self._value(node)

    def condition(self, name: str) -> bool:
        return self._condition(name)


@dataclass
class Template:
    path: Path
    body: dict[str, Any]
    parameters: dict[str, str] = field(default_factory=dict)
    _resolver: _PlaceholderResolver | None = None

    @classmethod
    def load(cls, path: Path = REPO / "template.yaml", **parameters: str) -> Template:
        body = load(path)
        declared = body.get("Parameters", {})
        values = {name: value for name, value in _REQUIRED_EXAMPLES.items() if name in declared}
        for name, spec in declared.items():
            if "Default" in spec:
                values[name] = str(spec["Default"])
            elif "AllowedValues" in spec:
                values.setdefault(name, str(spec["AllowedValues"][0]))
        values.update(parameters)
        resolver = _PlaceholderResolver(body, values)
        return cls(path=path, body=body, parameters=resolver._parameters, _resolver=resolver)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        """The resources this parameter set creates (a false Condition leaves one out)."""
        return {
            name: resource
            for name, resource in self.body.get("Resources", {}).items()
            if "Condition" not in resource or self.condition(resource["Condition"])
        }

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {name: res for name, res in self.resources.items() if res["Type"] == resource_type}

    def properties(self, logical_id: str) -> dict[str, Any]:
        resolved = self.resolve(self.resources[logical_id].get("Properties", {}))
        assert isinstance(resolved, dict)
        return resolved

    def condition(self, name: str) -> bool:
        assert self._resolver is not None
        return self._resolver.condition(name)

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """What the function's environment holds when deployed: Globals merged with its own, resolved."""
        variables = {
            **self.body.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}),
            **self.body["Resources"][logical_id]
            .get("Properties", {})
            .get("Environment", {})
            .get("Variables", {}),
        }
        resolved = self.resolve(variables)
        assert isinstance(resolved, dict)
        return {name: str(value) for name, value in resolved.items()}

    def resolve(self, value: Any) -> Any:
        """The value with every intrinsic resolved; AWS::NoValue items and properties left out."""
        assert self._resolver is not None
        return self._resolver.value(value)
