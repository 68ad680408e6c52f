"""IAM policy evaluation, as far as our policies use it, written from AWS's documentation, for tests.

What each rule below follows (IAM User Guide):
- "Condition operators" (reference_policies_elements_condition_operators): StringLike/StringNotLike are
  case-sensitive and take `*` (any run of characters) and `?` (one character) anywhere in the value;
  ArnLike/ArnEquals (and their Not forms) compare each of the six colon-delimited ARN components
  separately, each with `*` and `?`; several values for one key match if any matches, a negated operator
  holds if none matches; "If the key that you specify in a policy condition is not present in the request
  context, the values do not match and the condition is false. If the policy condition requires that the
  key is not matched, such as StringNotLike or ArnNotLike, and the right key is not present, the condition
  is true" (all operators but ...IfExists and Null); Null "true" holds when the key is absent.
- "Condition" element (reference_policies_elements_condition): several operators, or several keys under
  one, must all hold (AND); condition key names are not case-sensitive.
- "Set operators for multivalued context keys" (reference_policies_condition-single-vs-multi-valued-
  context-keys): ForAllValues holds if every request value matches, and also when the key is absent or
  its value set is empty; ForAnyValue holds if at least one request value matches, and is false when the
  key is absent.
- "Policy evaluation logic" (reference_policies_evaluation-logic): a statement applies when its Action,
  Resource (and Principal, in a resource policy) match and its Condition holds; an applicable Deny wins,
  then an applicable Allow; otherwise the request is implicitly denied. Action names are not
  case-sensitive.
Anything outside that (policy variables, other operators) raises instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

ContextValue = str | Sequence[str]


class Decision(StrEnum):
    ALLOW = "Allow"
    EXPLICIT_DENY = "ExplicitDeny"
    IMPLICIT_DENY = "ImplicitDeny"


@dataclass(frozen=True)
class Request:
    """One request as IAM sees it: action, resource, request context; `principal` for resource policies."""

    action: str
    resource: str = "*"
    context: Mapping[str, ContextValue] = field(default_factory=dict)
    principal: Mapping[str, str] = field(default_factory=dict)  # e.g. {"AWS": role ARN}


def decide(statements: Sequence[Mapping[str, Any]], request: Request) -> Decision:
    applicable = [statement for statement in statements if statement_applies(statement, request)]
    if any(statement["Effect"] == "Deny" for statement in applicable):
        return Decision.EXPLICIT_DENY
    if any(statement["Effect"] == "Allow" for statement in applicable):
        return Decision.ALLOW
    return Decision.IMPLICIT_DENY


def statements_of(policy: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The statements of a policy document, or of a bare statement list (a boundary fragment)."""
    if isinstance(policy, Mapping):
        assert policy.get("Version") == "2012-10-17", "policies without Version 2012-10-17 have no variables"
        statements = policy["Statement"]
        return [statements] if isinstance(statements, Mapping) else list(statements)
    return list(policy)


def statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    unknown = set(statement) - {"Sid", "Effect", "Action", "Resource", "Principal", "Condition"}
    if unknown:
        raise NotImplementedError(f"statement elements this evaluator does not know: {sorted(unknown)}")
    actions = _as_list(statement["Action"])
    if not any(glob_match(request.action.lower(), pattern.lower()) for pattern in actions):
        return False
    resources = _as_list(statement.get("Resource", "*"))
    if not any(pattern == "*" or arn_like(request.resource, pattern) for pattern in resources):
        return False
    if "Principal" in statement and not _principal_matches(statement["Principal"], request.principal):
        return False
    return condition_holds(statement.get("Condition", {}), request.context)


def condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, ContextValue]) -> bool:
    folded = {key.lower(): value for key, value in context.items()}
    return all(
        _operator_holds(operator, key, _as_list(values), folded.get(key.lower()))
        for operator, block in condition.items()
        for key, values in block.items()
    )


def glob_match(value: str, pattern: str) -> bool:
    """StringLike: `*` any run of characters (none included), `?` exactly one, all else literal, with case."""
    if "${" in pattern:
        raise NotImplementedError(f"policy variables are not modelled: {pattern!r}")
    regex = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def arn_like(value: str, pattern: str) -> bool:
    """ArnLike: the six colon-delimited components matched one by one, so no wildcard spans a colon."""
    value_parts, pattern_parts = value.split(":", 5), pattern.split(":", 5)
    if len(value_parts) != 6 or len(pattern_parts) != 6:
        return False
    return all(glob_match(part, glob) for part, glob in zip(value_parts, pattern_parts, strict=True))


def _equals(value: str, wanted: str) -> bool:
    return value == wanted


_MATCHERS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "StringEquals": (_equals, False),
    "StringNotEquals": (_equals, True),
    "StringLike": (glob_match, False),
    "StringNotLike": (glob_match, True),
    "ArnEquals": (arn_like, False),
    "ArnLike": (arn_like, False),
    "ArnNotEquals": (arn_like, True),
    "ArnNotLike": (arn_like, True),
}


def _operator_holds(operator: str, key: str, wanted: list[str], present: ContextValue | None) -> bool:
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    absent = present is None or (not isinstance(present, str) and len(present) == 0)
    if base == "Null":
        assert not qualifier, operator
        assert wanted in (["true"], ["false"]), (operator, wanted)
        return absent == (wanted == ["true"])
    if base not in _MATCHERS:
        raise NotImplementedError(f"condition operator {operator!r} is not modelled")
    match, negated = _MATCHERS[base]

    def one(value: str) -> bool:
        hit = any(match(value, candidate) for candidate in wanted)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return absent or all(one(value) for value in _as_list(present or []))
    if qualifier == "ForAnyValue":
        return not absent and any(one(value) for value in _as_list(present or []))
    if qualifier:
        raise NotImplementedError(f"set operator {qualifier!r} is not modelled")
    if absent:
        return if_exists or negated
    if not isinstance(present, str):
        raise AssertionError(f"{key} is multivalued: {operator} needs ForAnyValue or ForAllValues")
    return one(present)


def _principal_matches(principal: Any, caller: Mapping[str, str]) -> bool:
    if principal == "*":
        return True
    return any(
        caller.get(kind) == value or value == "*"
        for kind, values in principal.items()
        for value in _as_list(values)
        if kind in caller
    )


def _as_list(values: Any) -> list[str]:
    return [values] if isinstance(values, str) else list(values)
