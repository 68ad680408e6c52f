"""Who may assume a kuma-tagged role, read from its trust policy: pure rules beside the tag rules.

Only `ecs-tasks.amazonaws.com` may assume a role whose tags make it a mesh identity, and only on behalf of
the account's own tasks (`aws:SourceAccount` / `aws:SourceArn`, the confused-deputy guard AWS recommends).
Allow statements grant; Deny statements are not credited with narrowing a grant, because their conditions
cannot be evaluated without the request: a role whose Allow admits others is reported whatever it denies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from kuma_iam.rules import TRUST_NO_SOURCE_CONDITION, TRUST_NOT_ECS_TASKS, Rule, Severity, shown

ECS_TASKS = "ecs-tasks.amazonaws.com"
# The actions that hand out the role's credentials; sts:TagSession or sts:SetSourceIdentity alone do not.
ASSUME_ACTIONS = ("sts:assumerole", "sts:assumerolewithwebidentity", "sts:assumerolewithsaml")
SOURCE_KEYS = frozenset({"aws:sourceaccount", "aws:sourcearn"})
# Operators that hold only when the key is present and matches: no IfExists, no Not*, no ForAllValues
# (each passes a request that lacks the key).
SOURCE_OPERATORS = frozenset({"StringEquals", "StringLike", "ArnEquals", "ArnLike"})
_ACCOUNT = re.compile(r"[0-9]{12}")
_MAX_NAMED = 5  # principals named in one message


@dataclass(frozen=True, slots=True)
class TrustViolation:
    rule: str
    severity: Severity
    message: str


def trust_violations(document: Mapping[str, Any] | str | None) -> list[TrustViolation]:
    """Who may assume a kuma-tagged role, judged: `trust-not-ecs-tasks`, `trust-no-source-condition`."""
    statements = _statements(document)
    if statements is None:
        return [
            _violation(
                TRUST_NOT_ECS_TASKS, "its trust policy cannot be read, so who may assume it is unknown"
            )
        ]
    others: list[str] = []
    unguarded = 0
    for statement in statements:
        if statement.get("Effect") != "Allow" or not _grants_assume(statement):
            continue
        admitted = _admitted(statement)
        others += [principal for principal in admitted if principal != f"service {ECS_TASKS}"]
        if f"service {ECS_TASKS}" in admitted and not _has_source_condition(statement.get("Condition")):
            unguarded += 1
    violations = []
    if others:
        named = sorted(set(others))
        listed = ", ".join(named[:_MAX_NAMED]) + (
            f" and {len(named) - _MAX_NAMED} more" if len(named) > _MAX_NAMED else ""
        )
        violations.append(
            _violation(
                TRUST_NOT_ECS_TASKS,
                f"its trust policy lets {listed} assume it; only the service {ECS_TASKS} may assume a "
                "kuma-tagged role",
            )
        )
    if unguarded:
        violations.append(
            _violation(
                TRUST_NO_SOURCE_CONDITION,
                f"its trust policy lets {ECS_TASKS} assume it without an aws:SourceAccount or aws:SourceArn "
                "condition naming an account (StringEquals/StringLike/ArnEquals/ArnLike): ECS tasks of any "
                "account could be given it",
            )
        )
    return violations


def _violation(rule: Rule, message: str) -> TrustViolation:
    return TrustViolation(rule.id, rule.severity, message)


def _statements(document: Mapping[str, Any] | str | None) -> list[Mapping[str, Any]] | None:
    """The policy's statements, or None when it is not a policy we can read (which is never read as safe)."""
    if isinstance(document, str):
        document = _decoded(document)
    if not isinstance(document, Mapping):
        return None
    statements = document.get("Statement")
    if isinstance(statements, Mapping):
        statements = [statements]
    if not isinstance(statements, list) or not all(isinstance(item, Mapping) for item in statements):
        return None
    return statements


def _decoded(text: str) -> Any:
    # IAM hands policies out URL-encoded; boto3 decodes them unless the JSON inside is broken.
    for candidate in (text, unquote(text)):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None


def _values(value: Any) -> list[str]:
    """A policy field that may be one string or a list of them; anything else reads as one opaque value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item if isinstance(item, str) else json.dumps(item) for item in value]
    return [json.dumps(value)]


def _action_pattern(pattern: str) -> re.Pattern[str]:
    """IAM action wildcards: `*` any run of characters, `?` one; actions compare without case."""
    regex = "".join({"*": ".*", "?": "."}.get(char, re.escape(char)) for char in pattern)
    return re.compile(regex, re.IGNORECASE | re.DOTALL)


def _grants_assume(statement: Mapping[str, Any]) -> bool:
    if "Action" in statement:
        patterns = [_action_pattern(action) for action in _values(statement["Action"])]
        return any(pattern.fullmatch(action) for pattern in patterns for action in ASSUME_ACTIONS)
    if "NotAction" in statement:
        excluded = [_action_pattern(action) for action in _values(statement["NotAction"])]
        return any(not any(pattern.fullmatch(action) for pattern in excluded) for action in ASSUME_ACTIONS)
    return False  # IAM refuses a statement without either


def _admitted(statement: Mapping[str, Any]) -> list[str]:
    """Who the statement lets in, each as '<kind> <value>' ('service ecs-tasks.amazonaws.com' for ECS)."""
    if "NotPrincipal" in statement:
        return [f"every principal but {shown(json.dumps(statement['NotPrincipal']))} (NotPrincipal)"]
    principal = statement.get("Principal")
    if principal is None:
        return ["a statement without a Principal"]
    if principal == "*":
        return ['any principal ("Principal": "*")']
    if not isinstance(principal, Mapping):
        return [f"the principal {shown(json.dumps(principal))}"]
    admitted = []
    for kind, values in principal.items():
        for value in _values(values):
            admitted.append(_principal(str(kind), value))
    return admitted or ["an empty Principal"]


def _principal(kind: str, value: str) -> str:
    folded = kind.casefold()
    if folded == "service":
        return f"service {ECS_TASKS}" if value.strip().casefold() == ECS_TASKS else f"service {shown(value)}"
    if folded == "aws":
        if value == "*":
            return 'any AWS principal ("AWS": "*")'
        if _ACCOUNT.fullmatch(value) or value.endswith(":root"):
            return f"account {shown(value)}"
        return f"AWS principal {shown(value)}"
    if folded == "federated":
        return f"federated identities of {shown(value)}"
    return f"{shown(kind)} principal {shown(value)}"


def _has_source_condition(condition: Any) -> bool:
    """An operator that holds only when aws:SourceAccount / aws:SourceArn is present and names an account."""
    if not isinstance(condition, Mapping):
        return False
    for operator, tests in condition.items():
        if operator not in SOURCE_OPERATORS or not isinstance(tests, Mapping):
            continue
        for key, expected in tests.items():
            if str(key).casefold() in SOURCE_KEYS and _names_accounts(str(key).casefold(), _values(expected)):
                return True
    return False


def _names_accounts(key: str, values: Sequence[str]) -> bool:
    """Every value pins an account: a 12-digit id, or an ARN whose account field is one."""
    if not values:
        return False
    if key == "aws:sourceaccount":
        return all(_ACCOUNT.fullmatch(value) for value in values)
    return all(len(value.split(":")) >= 6 and _ACCOUNT.fullmatch(value.split(":")[4]) for value in values)
