"""A CloudFormation/SAM template as the tests read it: its intrinsics resolved for one set of parameters.

`Template.load(path, **parameters)` takes each parameter's default unless told otherwise, and stands in
fixed values for the pseudo parameters (the stack name above all, which names metrics and alarms). A
resource reference resolves to a placeholder naming it (`<VerifierApi>`, `<ReplayTable.Arn>`), so a test can
still see what points where. Only the intrinsics our templates use are known; any other fails loudly.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str  # type: ignore[import-untyped]

from support.project_files import REPO

STACK_NAME = "kuma-iam-test"
REGION = "eu-west-1"
ACCOUNT = "123456789012"
PSEUDO = {
    "AWS::StackName": STACK_NAME,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK_NAME}/0a1b2c3d-0000-4000-8000",
}
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class _NoValue:
    """AWS::NoValue: the property or list item it stands in is left out."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


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


@dataclass
class Template:
    path: Path
    body: dict[str, Any]
    parameters: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = REPO / "template.yaml", **parameters: str) -> Template:
        decoded, problems = decode_str(path.read_text())
        assert not problems, problems
        body: dict[str, Any] = json.loads(json.dumps(decoded))
        declared = body.get("Parameters", {})
        unknown = set(parameters) - set(declared)
        assert not unknown, f"{path.name} has no parameters {sorted(unknown)}"
        values = {name: str(spec["Default"]) for name, spec in declared.items() if "Default" in spec}
        # Required parameters without a default: a value their pattern accepts, or the first allowed one.
        values.setdefault("AuthorizedAccountIds", f"{ACCOUNT},210987654321")
        values.setdefault("ServerId", "kuma-test")
        for name, spec in declared.items():
            values.setdefault(name, str(spec["AllowedValues"][0]) if "AllowedValues" in spec else f"<{name}>")
        values.update(parameters)
        return cls(path=path, body=body, parameters=values)

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
        return bool(self._evaluate(self.body["Conditions"][name]))

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
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref" or key.startswith("Fn::"):
                return self._intrinsic(key, argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def _intrinsic(self, key: str, argument: Any) -> Any:
        if key == "Ref":
            return self._ref(argument)
        if key == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return placeholder(logical_id, attribute)
        if key == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            return self._sub(text, {name: self.resolve(item) for name, item in variables.items()})
        if key == "Fn::If":
            condition, when_true, when_false = argument
            return self.resolve(when_true if self.condition(condition) else when_false)
        if key == "Fn::Split":
            delimiter, text = argument
            return str(self.resolve(text)).split(delimiter)
        if key == "Fn::Join":
            delimiter, items = argument
            return delimiter.join(str(item) for item in self.resolve(items))
        if key == "Fn::Select":
            index, items = argument
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Fn::FindInMap":
            mapping, first, second = (self.resolve(item) for item in argument[:3])
            return self.body["Mappings"][mapping][first][second]
        if key in ("Fn::Base64", "Fn::ToJsonString"):
            resolved = self.resolve(argument)
            return resolved if isinstance(resolved, str) else json.dumps(resolved)
        if key == "Fn::ImportValue":
            return f"<import {self.resolve(argument)}>"
        raise AssertionError(
            f"{self.path.name}: intrinsic {key} is not known to tests/support/cfn_template.py"
        )

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return self.parameters[name]
        assert name in self.body.get("Resources", {}), f"{self.path.name}: Ref to unknown {name}"
        return placeholder(name)

    def _sub(self, text: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                return placeholder(*name.split(".", 1))
            return str(self._ref(name))

        return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")

    def _evaluate(self, expression: Any) -> Any:
        if isinstance(expression, dict) and len(expression) == 1:
            ((key, argument),) = expression.items()
            if key == "Fn::Equals":
                left, right = (str(self._evaluate(item)) for item in argument)
                return left == right
            if key == "Fn::Not":
                return not self._evaluate(argument[0])
            if key == "Fn::And":
                return all(self._evaluate(item) for item in argument)
            if key == "Fn::Or":
                return any(self._evaluate(item) for item in argument)
            if key == "Condition":
                return self.condition(argument)
        return self.resolve(expression)
