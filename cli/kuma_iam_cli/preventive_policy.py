"""The preventive control: a policy that lets only the tag administrators set or remove kuma.io/* role tags.

IAM compares tag keys without case, but its condition operators compare with case and it has no
case-insensitive wildcard operator (StringEqualsIgnoreCase takes no wildcards). So the policy names the
prefix in every spelling IAM could treat as `kuma.io/`, with wildcards on both sides:

    Deny iam:CreateRole, iam:TagRole, iam:UntagRole
    if ForAnyValue:StringLike aws:TagKeys is one of *?uma.?o/*, *?umA.?o/*, ... (16 patterns)
    and ArnNotLike aws:PrincipalArn is none of the admins

A non-admin's request is denied exactly when one of its tag keys contains `?uma.?o/`, with u, m, a, o in
either case and `?` any one character. That is every key `rules.is_kuma_key` calls kuma (any case, any
surrounding spaces: the leading `*` takes the spaces), and besides: `kuma.io/` further inside a key
(`team.kuma.io/owner`), and any character where the k or the i stands (`puma.io/x`, or a dotless i).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from kuma_iam.rules import TAG_PREFIX

TAGGING_ACTIONS = ("iam:CreateRole", "iam:TagRole", "iam:UntagRole")
# AWS Organizations' limit for an SCP, in characters. We count UTF-8 bytes, never fewer than characters,
# and the policy is ASCII anyway: IAM policy documents may not hold characters beyond U+00FF.
SCP_MAX_SIZE = 5120
# IAM's limit for a managed policy (a permissions boundary is one), in characters without white space.
MANAGED_POLICY_MAX_SIZE = 6144

# Letters of the prefix that a character beyond U+00FF may stand for in a case-insensitive comparison:
# KELVIN SIGN (U+212A) case-folds to k, as rules.is_kuma_key folds; Java's equalsIgnoreCase, a likely
# comparison inside IAM, also equates DOTLESS I (U+0131) and CAPITAL I WITH DOT ABOVE (U+0130) with i.
# A policy document cannot contain those characters, so their position takes the wildcard `?`, which also
# covers whatever else IAM might fold there. The unit tests scan all of Unicode for the other letters.
_FOLDED_FROM_BEYOND_LATIN1 = frozenset("ki")

_PARTITION = r"(?:aws(?:-[a-z]+)*|\*)"
_ACCOUNT = r"(?:[0-9]{12}|[0-9?*]*[?*][0-9?*]*)"
_PATH_AND_NAME = r"[\w+=,.@/?*-]+"
_ADMIN_ARN = re.compile(
    rf"arn:{_PARTITION}:iam::{_ACCOUNT}:(?:root|(?:role|user)/{_PATH_AND_NAME})", re.ASCII
)
_SESSION_ARN = re.compile(r"arn:[^:]*:sts::[^:]*:assumed-role/.*")
# aws:PrincipalArn of a GetFederationToken session is arn:…:sts::<account>:federated-user/<Name>, and Name is
# whatever the calling IAM user passes: exempting one would exempt every user allowed GetFederationToken.
_FEDERATED_ARN = re.compile(r"arn:[^:]*:sts::[^:]*:federated-user/.*")


class PolicyKind(StrEnum):
    SCP = "scp"
    BOUNDARY = "boundary"


class PolicyInputError(ValueError):
    """The admins cannot make a policy: a pattern that is not an IAM ARN, or too many to fit."""


def kuma_key_patterns() -> tuple[str, ...]:
    """StringLike patterns that together match every key holding a spelling of kuma.io/ (module docstring)."""
    spellings = [
        ("?",) if letter in _FOLDED_FROM_BEYOND_LATIN1 else tuple(dict.fromkeys((letter, letter.upper())))
        for letter in TAG_PREFIX
    ]
    return tuple("*" + "".join(spelling) + "*" for spelling in itertools.product(*spellings))


def parse_admins(values: Sequence[str]) -> tuple[str, ...]:
    """Admin ARN patterns from comma-separated lists, in order, without repeats; a bad one is named."""
    admins: dict[str, None] = {}
    for value in values:
        for admin in (part.strip() for part in value.split(",")):
            admins[_checked_admin(admin)] = None
    if not admins:
        raise PolicyInputError("--admins names no one: give at least one tag administrator's ARN")
    return tuple(admins)


def _checked_admin(admin: str) -> str:
    shown = repr(admin[:120])
    if not admin:
        raise PolicyInputError("--admins has an empty entry (two commas in a row, or a trailing comma)")
    if _SESSION_ARN.fullmatch(admin):
        # aws:PrincipalArn of a role session is its role's ARN, so a session pattern would match nobody.
        raise PolicyInputError(
            f"admin {shown} is a role session: name the role, "
            "arn:<partition>:iam::<account>:role/<path><name> (aws:PrincipalArn of every session of a role "
            "is the role's ARN)"
        )
    if _FEDERATED_ARN.fullmatch(admin):
        raise PolicyInputError(
            f"admin {shown} is a federated user, whose name any IAM user allowed sts:GetFederationToken "
            "chooses: name the IAM user or, better, a role"
        )
    if not _ADMIN_ARN.fullmatch(admin):
        raise PolicyInputError(
            f"admin {shown} is not an IAM principal ARN pattern: "
            "arn:<partition>:iam::<account>:role/<path><name>, ...:user/<path><name> or ...:root, "
            "with * and ? as wildcards"
        )
    return admin


def deny_statement(admins: Sequence[str]) -> dict[str, Any]:
    """Deny setting or removing a kuma.io/* key, in any spelling, to every principal but the admins."""
    return {
        "Sid": "DenyKumaTagChangesButByTagAdmins",
        "Effect": "Deny",
        "Action": list(TAGGING_ACTIONS),
        "Resource": "*",
        "Condition": {
            # aws:TagKeys holds the keys of CreateRole's and TagRole's tags and UntagRole's keys; without
            # tags (CreateRole) the key is absent and ForAnyValue is false: the role may be created.
            "ForAnyValue:StringLike": {"aws:TagKeys": list(kuma_key_patterns())},
            # For a role's session aws:PrincipalArn is the role's ARN (with its path), so a role pattern
            # covers every session of the role, whatever its session name.
            "ArnNotLike": {"aws:PrincipalArn": list(admins)},
        },
    }


def preventive_policy(admins: Sequence[str], kind: PolicyKind) -> str:
    """The policy as compact JSON: a whole SCP, or the statements to add to a permissions boundary."""
    statement = deny_statement(admins)
    if kind is PolicyKind.SCP:
        text = _compact({"Version": "2012-10-17", "Statement": [statement]})
        limit, what = SCP_MAX_SIZE, "AWS Organizations' limit for an SCP"
    else:
        text = _compact([statement])
        limit, what = MANAGED_POLICY_MAX_SIZE, "IAM's limit for a managed policy, before your own statements"
    if len(text.encode()) > limit:
        raise PolicyInputError(
            f"the {kind} would be {len(text.encode()):,} characters, over {what} ({limit:,}): name the "
            f"admins with fewer, wider patterns, e.g. one role path (arn:aws:iam::*:role/kuma-tag-admins/*)"
        )
    return text


def _compact(document: object) -> str:
    # ensure_ascii: IAM takes only characters up to U+00FF in a policy document.
    return json.dumps(document, separators=(",", ":"), ensure_ascii=True)
