"""A CloudFormation template as one deployment would see it, for tests that read its policies as IAM will.

`deploy(path, parameters, region=..., partition=...)` checks the parameters as CloudFormation does
(AllowedValues, AllowedPattern), evaluates the Conditions, drops the resources and outputs whose condition
is false, and resolves the intrinsic functions our templates use: Ref, Fn::Sub, Fn::GetAtt (Arn of roles
and rules), Fn::If, Fn::Equals, Fn::Or, Fn::And, Fn::Not, Fn::Split, Fn::Join and AWS::NoValue.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str  # type: ignore[import-untyped]

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
) -> Deployment:
    template = load(path)
    return _Resolver(template, parameters, region, partition, account, stack_name).deployment()


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

    def deployment(self) -> Deployment:
        conditions = {name: self._condition(name) for name in self._template.get("Conditions", {})}
        resources = {
            name: self._value(resource)
            for name, resource in self._template["Resources"].items()
            if self._holds(resource)
        }
        outputs = {
            name: self._value(output["Value"])
            for name, output in self._template.get("Outputs", {}).items()
            if self._holds(output)
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
        return f"{self._pseudo['AWS::StackName']}-{name}"

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
        if resource["Type"] == "AWS::Events::Rule" and attribute == "Arn":
            name = self._value(resource["Properties"]["Name"])
            return f"{arn}:events:{self._pseudo['AWS::Region']}:{self._pseudo['AWS::AccountId']}:rule/{name}"
        raise NotImplementedError(f"Fn::GetAtt {resource['Type']}.{attribute} is not modelled")
