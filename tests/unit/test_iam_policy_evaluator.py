"""The test-side IAM evaluator (support/iam_policy.py) answers AWS's documented examples as AWS does, so the
policy tests that rely on it prove something."""

from __future__ import annotations

import pytest

from support.iam_policy import (
    Decision,
    Request,
    arn_like,
    condition_holds,
    decide,
    glob_match,
)


@pytest.mark.parametrize(
    ("value", "pattern", "matches"),
    [
        ("kuma.io/type", "kuma.io/*", True),
        ("kuma.io/", "kuma.io/*", True),  # * matches nothing too
        ("Kuma.io/type", "kuma.io/*", False),  # case-sensitive
        ("kuma.io/type", "?uma.io/type", True),
        ("uma.io/type", "?uma.io/type", False),  # ? is exactly one character
        ("kuma.io/type", "kuma.io/typ", False),  # the whole value must match
        ("kuma.io/type", "*", True),
        ("a.b", "a?b", True),
        ("axb", "a.b", False),  # '.' is literal
        ("line\nbreak", "line*", True),
    ],
)
def test_string_like_wildcards(value: str, pattern: str, matches: bool) -> None:
    assert glob_match(value, pattern) is matches


def test_policy_variables_are_refused_not_guessed() -> None:
    with pytest.raises(NotImplementedError):
        glob_match("x", "${aws:username}")


@pytest.mark.parametrize(
    ("value", "pattern", "matches"),
    [
        ("arn:aws:iam::111122223333:role/admin", "arn:aws:iam::111122223333:role/admin", True),
        ("arn:aws:iam::111122223333:role/ops/admin", "arn:aws:iam::111122223333:role/admin", False),
        ("arn:aws:iam::111122223333:role/ops/admin", "arn:aws:iam::*:role/*admin", True),
        ("arn:aws:iam::111122223333:role/admin", "arn:aws:iam::*", False),  # * never spans a colon
        ("arn:aws:iam::111122223333:role/admin", "arn:*:iam::*:role/admin", True),
        ("arn:aws:iam::111122223333:role/Admin", "arn:aws:iam::111122223333:role/admin", False),
    ],
)
def test_arn_like_matches_component_by_component(value: str, pattern: str, matches: bool) -> None:
    assert arn_like(value, pattern) is matches


@pytest.mark.parametrize(
    ("operator", "context", "holds"),
    [
        # ForAnyValue: some request value matches; absent or empty: false
        ("ForAnyValue:StringLike", {"aws:TagKeys": ["team", "kuma.io/type"]}, True),
        ("ForAnyValue:StringLike", {"aws:TagKeys": ["team"]}, False),
        ("ForAnyValue:StringLike", {}, False),
        ("ForAnyValue:StringLike", {"aws:TagKeys": []}, False),
        # ForAllValues: every request value matches; absent or empty: true (AWS's warning for Allow)
        ("ForAllValues:StringLike", {"aws:TagKeys": ["kuma.io/type", "kuma.io/mesh"]}, True),
        ("ForAllValues:StringLike", {"aws:TagKeys": ["kuma.io/type", "team"]}, False),
        ("ForAllValues:StringLike", {}, True),
        ("ForAllValues:StringLike", {"aws:TagKeys": []}, True),
        # negated set operators: a value that matches none of the patterns
        ("ForAnyValue:StringNotLike", {"aws:TagKeys": ["team", "kuma.io/type"]}, True),
        ("ForAllValues:StringNotLike", {"aws:TagKeys": ["team", "kuma.io/type"]}, False),
        # condition key names are not case-sensitive
        ("ForAnyValue:StringLike", {"AWS:TagKeys": ["kuma.io/x"]}, True),
    ],
)
def test_set_operators_on_a_multivalued_key(
    operator: str, context: dict[str, list[str]], holds: bool
) -> None:
    assert condition_holds({operator: {"aws:TagKeys": ["kuma.io/*"]}}, context) is holds


@pytest.mark.parametrize(
    ("condition", "context", "holds"),
    [
        ({"ArnNotLike": {"aws:PrincipalArn": ["arn:aws:iam::*:role/admin"]}}, {}, True),  # absent: true
        ({"ArnLike": {"aws:PrincipalArn": ["arn:aws:iam::*:role/admin"]}}, {}, False),  # absent: false
        (
            {"ArnNotLike": {"aws:PrincipalArn": ["arn:aws:iam::*:role/a", "arn:aws:iam::*:role/b"]}},
            {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/b"},
            False,  # a negated operator holds only if no value matches
        ),
        ({"Null": {"aws:TagKeys": "false"}}, {"aws:TagKeys": ["x"]}, True),
        ({"Null": {"aws:TagKeys": "false"}}, {}, False),
        ({"Null": {"aws:TagKeys": "true"}}, {}, True),
        ({"StringLikeIfExists": {"aws:RequestTag/x": "y*"}}, {}, True),
        # two operators: both must hold
        (
            {
                "ForAnyValue:StringLike": {"aws:TagKeys": "kuma.io/*"},
                "ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/admin"},
            },
            {"aws:TagKeys": ["kuma.io/x"], "aws:PrincipalArn": "arn:aws:iam::111122223333:role/admin"},
            False,
        ),
    ],
)
def test_absent_keys_negation_null_and_conjunction(
    condition: dict[str, dict[str, object]], context: dict[str, object], holds: bool
) -> None:
    assert condition_holds(condition, context) is holds  # type: ignore[arg-type]


def test_single_valued_operator_on_a_multivalued_key_is_a_policy_bug() -> None:
    with pytest.raises(AssertionError, match="multivalued"):
        condition_holds({"StringLike": {"aws:TagKeys": "kuma.io/*"}}, {"aws:TagKeys": ["kuma.io/x"]})


def test_unknown_operators_are_refused_not_guessed() -> None:
    with pytest.raises(NotImplementedError):
        condition_holds({"StringLikeIgnoreCase": {"aws:TagKeys": "x"}}, {"aws:TagKeys": "x"})


def test_explicit_deny_beats_allow_and_nothing_is_implicit_deny() -> None:
    allow = {"Effect": "Allow", "Action": "iam:*", "Resource": "*"}
    deny = {"Effect": "Deny", "Action": "iam:TagRole", "Resource": "arn:aws:iam::*:role/*"}
    tag = Request("iam:TagRole", "arn:aws:iam::111122223333:role/x")
    assert decide([allow, deny], tag) is Decision.EXPLICIT_DENY
    assert decide([allow], Request("IAM:tagrole")) is Decision.ALLOW  # action names ignore case
    assert decide([deny], Request("iam:GetRole")) is Decision.IMPLICIT_DENY
    trust = {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:role/a"}, "Action": "sts:AssumeRole"}
    assert (
        decide([trust], Request("sts:AssumeRole", principal={"AWS": "arn:aws:iam::1:role/a"}))
        is Decision.ALLOW
    )
    assert decide([trust], Request("sts:AssumeRole", principal={"AWS": "arn:aws:iam::1:role/b"})) is (
        Decision.IMPLICIT_DENY
    )
