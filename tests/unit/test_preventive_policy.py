"""`kuma-iam policy`: the SCP (or boundary statement) denies setting or removing a kuma.io/* key, in every
spelling IAM may treat as one, to everyone but the tag admins; proved with the IAM evaluator of
support/iam_policy.py on allowed and denied requests, and within AWS's size limits."""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from itertools import product
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kuma_iam.rules import TAG_PREFIX, is_kuma_key
from kuma_iam_cli.main import main
from kuma_iam_cli.preventive_policy import (
    SCP_MAX_SIZE,
    PolicyInputError,
    PolicyKind,
    kuma_key_patterns,
    parse_admins,
    preventive_policy,
)
from support.iam_policy import Decision, Request, decide, statements_of

ACTIONS = ("iam:TagRole", "iam:UntagRole", "iam:CreateRole")
TASK_ROLE = "arn:aws:iam::111122223333:role/backend-task"
ADMIN_ROLE = "arn:aws:iam::111122223333:role/platform/kuma-tag-admin"
SSO_ADMINS = "arn:aws:iam::*:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_KumaTagAdmin_*"
BREAK_GLASS = "arn:aws:iam::111122223333:user/break-glass"
ADMINS = (ADMIN_ROLE, SSO_ADMINS, BREAK_GLASS)
NON_ADMINS = (
    "arn:aws:iam::111122223333:role/platform/kuma-tag-admin-2",  # a longer name is another role
    "arn:aws:iam::111122223333:role/kuma-tag-admin",  # the same name on another path
    "arn:aws:iam::444455556666:role/platform/kuma-tag-admin",  # the same role in another account
    "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Dev_0a1b",
    "arn:aws:iam::111122223333:user/developer",
    "arn:aws:iam::111122223333:root",
)

# Every character IAM may compare equal to each letter of kuma.io/ (test_unicode_has_no_other_... proves it).
EQUIVALENTS = {
    "k": "kK\u212a",  # KELVIN SIGN
    "u": "uU",
    "m": "mM",
    "a": "aA",
    ".": ".",
    "i": "iI\u0131\u0130",  # DOTLESS I, CAPITAL I WITH DOT ABOVE (Java's equalsIgnoreCase equates them)
    "o": "oO",
    "/": "/",
}
# What IAM tag keys may hold: [\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128} (IAM API reference, Tag).
WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if unicodedata.category(c) in ("Zs", "Zl", "Zp"))
TAG_KEY_CHARS = st.characters(categories=["L", "Z", "N"], include_characters="_.:/=+-@")
# Near misses: the letters of the prefix in every spelling, a space, and a few other characters.
NEAR_MISS_CHARS = st.sampled_from(sorted(set("".join(EQUIVALENTS.values())) | set(" \u3000-_xp")))

# The policy's promise, written here independently of the generator: a key is denied to a non-admin exactly
# when it holds `?uma.?o/` (u, m, a, o in either case, ? any one character) anywhere.
PROMISED = re.compile(r".[uU][mM][aA]\..[oO]/", re.DOTALL)


def promised(keys: list[str]) -> bool:
    return any(PROMISED.search(key) for key in keys)


def statements(admins: tuple[str, ...] = ADMINS, kind: PolicyKind = PolicyKind.SCP) -> list[Any]:
    return statements_of(json.loads(preventive_policy(admins, kind)))


SCP = statements()


def tagging(action: str, principal: str, keys: list[str] | None) -> Request:
    """An IAM tagging call's request context: aws:TagKeys only when the call carries tags (or keys)."""
    context: dict[str, str | list[str]] = {"aws:PrincipalArn": principal}
    if keys is not None:
        context["aws:TagKeys"] = keys
    return Request(action, TASK_ROLE, context)


def session_principal_arn(session_arn: str, role_path: str) -> str:
    """What IAM puts in aws:PrincipalArn for a role's session: the role's ARN with its path, never the
    session's ARN (IAM User Guide, global condition keys: aws:PrincipalArn)."""
    _, partition, _, _, account, resource = session_arn.split(":", 5)
    _, role_name, _ = resource.split("/", 2)
    return f"arn:{partition}:iam::{account}:role{role_path}{role_name}"


def denied(principal: str, keys: list[str] | None, policy: list[Any] = SCP) -> set[str]:
    """The tagging actions the policy denies to `principal` for these keys."""
    return {
        action
        for action in ACTIONS
        if decide(policy, tagging(action, principal, keys)) is Decision.EXPLICIT_DENY
    }


# --- the spellings -------------------------------------------------------------------------------------


def _letters_it_may_be_taken_for(char: str) -> set[str]:
    """The letters of the prefix a case-insensitive comparison may equate `char` with: Unicode case folding
    (what rules.is_kuma_key uses), lower or upper case mapping (Java's equalsIgnoreCase compares both), or a
    lower-case mapping that is the letter plus combining marks (U+0130's simple mapping is plain i)."""
    lowered, upper, folded = char.lower(), char.upper(), char.casefold()
    candidates = {folded, lowered, upper.lower() if len(upper) == 1 else "", lowered[:1]} & _PREFIX_LETTERS
    return {
        letter
        for letter in candidates
        if letter in (folded, lowered)
        or upper == letter.upper()
        or (lowered[:1] == letter and all(unicodedata.category(mark) == "Mn" for mark in lowered[1:]))
    }


_PREFIX_LETTERS = set(TAG_PREFIX)


def test_unicode_has_no_other_character_iam_may_take_for_a_letter_of_the_prefix() -> None:
    # Given every Unicode code point
    found: dict[str, set[str]] = {letter: {letter} for letter in TAG_PREFIX}
    folds_to_several_letters = []
    for code_point in range(sys.maxunicode + 1):
        char = chr(code_point)
        for letter in _letters_it_may_be_taken_for(char):
            found[letter].add(char)
        folded = char.casefold()
        if len(folded) > 1 and folded in TAG_PREFIX:
            folds_to_several_letters.append(char)

    # Then the equivalents the tests draw from are exactly those, and no character folds to a run of them
    assert {letter: "".join(sorted(chars)) for letter, chars in found.items()} == {
        letter: "".join(sorted(chars)) for letter, chars in EQUIVALENTS.items()
    }
    assert folds_to_several_letters == []
    # And the generator wildcards exactly the positions with an equivalent no policy may contain (> U+00FF)
    for pattern in kuma_key_patterns():
        for position, letter in enumerate(TAG_PREFIX):
            beyond_latin1 = any(ord(char) > 0xFF for char in EQUIVALENTS[letter])
            assert (pattern[1 + position] == "?") is beyond_latin1, (pattern, letter)


def test_patterns_are_every_ascii_spelling_with_wildcards_around() -> None:
    patterns = kuma_key_patterns()
    assert len(patterns) == len(set(patterns)) == 16  # u, m, a, o in two cases each
    assert all(p.startswith("*") and p.endswith("/*") and "$" not in p for p in patterns)
    assert all(p.isascii() for p in patterns)


# --- what is denied, to whom ----------------------------------------------------------------------------

ASCII_SPELLINGS = ["".join(chars) for chars in product(*({c, c.upper()} for c in TAG_PREFIX))]


@pytest.mark.parametrize("spelling", ASCII_SPELLINGS)
def test_every_case_variant_with_surrounding_spaces_is_denied_to_non_admins(spelling: str) -> None:
    for leading, trailing in product(["", " ", "  ", "\u00a0", "\u3000"], ["", " "]):
        key = f"{leading}{spelling}type{trailing}"
        assert is_kuma_key(key)
        for principal in NON_ADMINS:
            assert denied(principal, [key]) == set(ACTIONS), (principal, key)
        assert denied(ADMIN_ROLE, [key]) == set()


KUMA_SPELLINGS = st.tuples(*(st.sampled_from(EQUIVALENTS[letter]) for letter in TAG_PREFIX)).map("".join)
KUMA_KEYS = st.builds(
    lambda leading, spelling, rest, trailing: leading + spelling + rest + trailing,
    st.text(alphabet=WHITESPACE, max_size=4),
    KUMA_SPELLINGS,
    st.text(alphabet=TAG_KEY_CHARS, max_size=20),
    st.text(alphabet=WHITESPACE, max_size=2),
)
OTHER_KEYS = st.text(alphabet=TAG_KEY_CHARS, min_size=1, max_size=40).filter(
    lambda key: not PROMISED.search(key)
)


@settings(max_examples=300, deadline=None)
@given(
    kuma=KUMA_KEYS,
    others=st.lists(OTHER_KEYS, max_size=4),
    where=st.integers(min_value=0, max_value=4),
    principal=st.sampled_from(NON_ADMINS),
)
def test_a_kuma_key_in_any_spelling_among_other_keys_is_denied(
    kuma: str, others: list[str], where: int, principal: str
) -> None:
    # Given a kuma.io/ key spelled with any character IAM may equate (Kelvin sign, dotless i, any case),
    # surrounded by any \p{Z} spaces, somewhere in a set of other keys
    keys = [*others[:where], kuma, *others[where:]]

    # Then a non-admin may neither set it nor remove it, nor create a role with it
    assert denied(principal, keys) == set(ACTIONS)
    # And an admin's role, from any session, may
    admin_session = "arn:aws:sts::111122223333:assumed-role/kuma-tag-admin/alice@example.com"
    assert denied(session_principal_arn(admin_session, "/platform/"), keys) == set()


@settings(max_examples=500, deadline=None)
@given(
    keys=st.lists(
        st.one_of(
            st.text(alphabet=TAG_KEY_CHARS, min_size=1, max_size=30),
            st.text(alphabet=NEAR_MISS_CHARS, min_size=1, max_size=14),
            KUMA_KEYS,
        ),
        min_size=1,
        max_size=5,
    ),
    principal=st.sampled_from(NON_ADMINS),
)
def test_denied_exactly_as_promised_and_never_less_than_the_rule(keys: list[str], principal: str) -> None:
    refused = denied(principal, keys)
    # The policy denies a non-admin exactly what its docstring promises, for every action alike
    assert refused == (set(ACTIONS) if promised(keys) else set())
    # which includes every key the core's rule calls kuma, canonical or not
    if any(is_kuma_key(key) for key in keys):
        assert refused == set(ACTIONS)
    # And admins are never refused
    assert denied(ADMIN_ROLE, keys) == set()


@pytest.mark.parametrize(
    "keys",
    [
        ["team", "Name", "cost-center"],
        ["kuma.io"],  # no slash: not the prefix
        ["kuma-io/type", "kuma_io/type", "kumaXio/type", "kuma.i/o", "kuma.iox/type"],
        ["io/kuma", "mesh", "kuma", "KUMA"],
        ["aws:cloudformation:stack-name"],
    ],
)
def test_keys_outside_the_prefix_are_allowed_to_everyone(keys: list[str]) -> None:
    for principal in NON_ADMINS:
        assert denied(principal, keys) == set()


@pytest.mark.parametrize(
    "key",
    ["team.kuma.io/owner", "x kuma.io/type", "puma.io/x", "kuma.\u0131o/type", "Xuma.Zo/anything"],
)
def test_what_else_it_denies_is_the_documented_superset(key: str) -> None:
    # Keys the rule does not call kuma, but that hold ?uma.?o/ : denied to non-admins, as the docstring says
    assert not is_kuma_key(key)
    assert denied(NON_ADMINS[0], [key]) == set(ACTIONS)


def test_create_role_without_tags_is_allowed_to_everyone() -> None:
    # Given CreateRole without tags: IAM puts no aws:TagKeys in the context (ForAnyValue on it is false)
    for principal in NON_ADMINS:
        assert decide(SCP, tagging("iam:CreateRole", principal, None)) is Decision.IMPLICIT_DENY
        assert decide(SCP, tagging("iam:CreateRole", principal, [])) is Decision.IMPLICIT_DENY
    # (IMPLICIT_DENY here means "this SCP does not deny": the account's other policies decide.)


def test_other_actions_are_not_touched() -> None:
    for action in ("iam:UpdateAssumeRolePolicy", "iam:TagUser", "iam:TagPolicy", "iam:GetRole"):
        assert decide(SCP, tagging(action, NON_ADMINS[0], ["kuma.io/type"])) is Decision.IMPLICIT_DENY


@pytest.mark.parametrize(
    ("session", "path"),
    [
        ("arn:aws:sts::111122223333:assumed-role/kuma-tag-admin/alice", "/platform/"),
        ("arn:aws:sts::111122223333:assumed-role/kuma-tag-admin/pipeline-run-42", "/platform/"),
        (
            "arn:aws:sts::777788889999:assumed-role/AWSReservedSSO_KumaTagAdmin_0123abcd/bob@example.com",
            "/aws-reserved/sso.amazonaws.com/eu-central-1/",
        ),
    ],
)
def test_an_admin_role_covers_its_sessions_whatever_their_name(session: str, path: str) -> None:
    assert denied(session_principal_arn(session, path), ["kuma.io/type", "Kuma.io/Mesh"]) == set()


def test_a_session_of_a_same_named_role_elsewhere_is_not_an_admin() -> None:
    for session, path in [
        ("arn:aws:sts::111122223333:assumed-role/kuma-tag-admin/alice", "/"),
        ("arn:aws:sts::444455556666:assumed-role/kuma-tag-admin/alice", "/platform/"),
    ]:
        assert denied(session_principal_arn(session, path), ["kuma.io/type"]) == set(ACTIONS)


def test_the_boundary_statement_decides_the_same_inside_a_boundary() -> None:
    # Given the boundary statements added to a boundary that otherwise allows everything
    boundary = [{"Effect": "Allow", "Action": "*", "Resource": "*"}, *statements(kind=PolicyKind.BOUNDARY)]

    # Then kuma keys are refused to non-admins, everything else stays within the boundary
    for principal in NON_ADMINS:
        assert denied(principal, ["team", "KUMA.IO/TYPE"], boundary) == set(ACTIONS)
        assert decide(boundary, tagging("iam:TagRole", principal, ["team"])) is Decision.ALLOW
    assert decide(boundary, tagging("iam:TagRole", ADMIN_ROLE, ["kuma.io/type"])) is Decision.ALLOW


# --- the document, its size, and bad input ---------------------------------------------------------------


def test_the_scp_is_a_versioned_ascii_document_within_the_organizations_limit() -> None:
    text = preventive_policy(ADMINS, PolicyKind.SCP)
    document = json.loads(text)
    assert document["Version"] == "2012-10-17"
    assert text.isascii()  # IAM and Organizations policy documents: nothing beyond U+00FF
    assert len(text.encode()) <= SCP_MAX_SIZE


def _admins(count: int) -> tuple[str, ...]:
    return tuple(f"arn:aws:iam::{100000000000 + n}:role/platform/kuma-tag-admin" for n in range(count))


@pytest.mark.parametrize(("count", "ceiling"), [(1, 600), (10, 1200)])
def test_sizes_for_one_and_ten_admins(count: int, ceiling: int) -> None:
    # One admin: about 500 characters; ten: about 1,000 (each ARN above is 55 characters)
    for kind in PolicyKind:
        assert len(preventive_policy(_admins(count), kind)) <= ceiling


def test_too_many_admins_is_refused_with_the_size_and_what_to_do() -> None:
    with pytest.raises(PolicyInputError, match=r"would be [\d,]+ characters, over .*5,120.*role path"):
        preventive_policy(_admins(100), PolicyKind.SCP)
    with pytest.raises(PolicyInputError, match=r"over .*6,144"):
        preventive_policy(_admins(120), PolicyKind.BOUNDARY)


def test_admins_are_split_trimmed_and_deduplicated() -> None:
    assert parse_admins([f"{ADMIN_ROLE}, {BREAK_GLASS}", ADMIN_ROLE]) == (ADMIN_ROLE, BREAK_GLASS)


def test_cli_prints_the_policy_and_a_size_note(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "--admins", f"{ADMIN_ROLE},{SSO_ADMINS}", "--admins", BREAK_GLASS]) == 0
    out, err = capsys.readouterr()
    assert out == preventive_policy(ADMINS, PolicyKind.SCP) + "\n"
    assert err.count("\n") == 1
    assert "16 patterns" in err

    assert main(["policy", "--kind", "boundary", "--admins", ADMIN_ROLE]) == 0
    out, _ = capsys.readouterr()
    assert isinstance(json.loads(out), list)


@pytest.mark.parametrize(
    ("admins", "says"),
    [
        ("arn:aws:sts::111122223333:assumed-role/kuma-tag-admin/alice", "is a role session: name the role"),
        # GetFederationToken's caller picks the name: any IAM user allowed it could pass for alice
        ("arn:aws:sts::111122223333:federated-user/alice", "is a federated user"),
        ("arn:aws:sts::*:federated-user/*", "is a federated user"),
        ("kuma-tag-admin", "not an IAM principal ARN pattern"),
        ("arn:aws:iam::11112222333:role/x", "not an IAM principal ARN pattern"),  # 11 digits
        ("arn:aws:iam::111122223333:group/admins", "not an IAM principal ARN pattern"),
        ("arn:aws:iam::111122223333:role/", "not an IAM principal ARN pattern"),
        ("arn:aws:iam::111122223333:role/${aws:username}", "not an IAM principal ARN pattern"),
        (f"{ADMIN_ROLE},", "empty entry"),
        ("", "empty entry"),
        (",".join(_admins(100)), "over AWS Organizations' limit"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    admins: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "--admins", admins]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert says in err


def test_cli_without_admins_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy"]) == 2
    _, err = capsys.readouterr()
    assert err.startswith("kuma-iam: the following arguments are required: --admins")
    assert err.count("\n") == 1
