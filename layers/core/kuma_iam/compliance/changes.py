"""Who changed which kuma.io/* tags, and whether they were allowed to: the `kuma-tag-change-unauthorized`
rule, pure. The tag administrators are ARN patterns (`KUMA_IAM_TAG_ADMINS`) with IAM's wildcards, `*` and
`?`, as the preventive policy (`kuma-iam policy --admins`) takes the same patterns."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from kuma_iam.rules import is_kuma_key, shown

TAG_EVENTS = frozenset({"CreateRole", "TagRole", "UntagRole"})


@dataclass(frozen=True, slots=True)
class RoleChange:
    """One IAM call on a role as CloudTrail reported it: who changed what; the role itself is re-read."""

    account: str
    role_name: str
    event_name: str  # CreateRole, TagRole, UntagRole, UpdateAssumeRolePolicy
    event_id: str
    # The principal that answers for the call: for an assumed role its role (session names are the caller's
    # choice), for a federated user the IAM user that federated it, else the caller's own ARN.
    principal_arn: str | None
    principal: str  # for messages: the ARN, or what CloudTrail says instead (an AWS service...)
    set_tags: Mapping[str, str] = field(default_factory=dict)
    removed_keys: tuple[str, ...] = ()
    failed: str | None = None  # CloudTrail's errorCode: the call changed nothing

    def kuma_keys_set(self) -> dict[str, str]:
        return {key: value for key, value in self.set_tags.items() if is_kuma_key(key)}

    def kuma_keys_removed(self) -> tuple[str, ...]:
        return tuple(key for key in self.removed_keys if is_kuma_key(key))


@dataclass(frozen=True, slots=True)
class TagAdmins:
    """Principals allowed to set and remove kuma.io/* tags. ARNs compare without case: IAM names (roles,
    users) are unique regardless of case, so `role/Admin` and `role/admin` are one principal. `*` matches
    any run of characters and `?` one, as in the SCP's ArnNotLike: the two controls must agree on who is an
    admin, or enforce mode would take back an admin's change that the SCP let through."""

    patterns: tuple[str, ...]
    _compiled: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = tuple(
            re.compile(
                "".join({"*": ".*", "?": "."}.get(char, re.escape(char)) for char in pattern),
                re.IGNORECASE | re.DOTALL,
            )
            for pattern in self.patterns
        )
        object.__setattr__(self, "_compiled", compiled)

    def admits(self, principal_arn: str | None) -> bool:
        return principal_arn is not None and any(
            pattern.fullmatch(principal_arn) for pattern in self._compiled
        )


def unauthorized_change(change: RoleChange, admins: TagAdmins) -> str | None:
    """Why the change breaks `kuma-tag-change-unauthorized`, or None when it does not."""
    if change.failed is not None or change.event_name not in TAG_EVENTS:
        return None
    set_keys, removed = change.kuma_keys_set(), change.kuma_keys_removed()
    if not (set_keys or removed) or admins.admits(change.principal_arn):
        return None
    what = []
    if set_keys:
        what.append(
            "set " + ", ".join(f"{shown(key)}={shown(value)}" for key, value in sorted(set_keys.items()))
        )
    if removed:
        what.append("removed " + ", ".join(shown(key) for key in sorted(removed)))
    return (
        f"{change.principal} {' and '.join(what)} with {change.event_name}, and is not a tag administrator "
        "(KUMA_IAM_TAG_ADMINS)"
    )
