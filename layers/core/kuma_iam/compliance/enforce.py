"""Enforce mode: which kuma.io/* tags to remove from a role (pure), and removing them (UntagRole).

Exactly the keys that HIGH or MEDIUM tag findings name, in the role's own spelling; never a tag outside
kuma.io/* and never for a trust-policy finding. Two cases take every kuma.io/* key instead, so that the
role's identity fails closed rather than widening: a role left without a valid kuma.io/type, and a role that
would keep a valid identity after losing a restriction (kuma.io/mesh, service or workload) — removing only
a tampered `kuma.io/service` would turn a one-service role into an any-service one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from kuma_iam.aws import aws_errors
from kuma_iam.compliance.findings import ComplianceFinding, Remediation
from kuma_iam.roles import RoleRecord
from kuma_iam.rules import (
    MESH_TAG,
    SERVICE_TAG,
    TYPE_TAG,
    WORKLOAD_TAG,
    ProxyType,
    RoleTags,
    Severity,
    is_kuma_key,
    role_tags,
)

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

ENFORCED_SEVERITIES = frozenset({Severity.HIGH, Severity.MEDIUM})
RESTRICTIONS = frozenset({MESH_TAG, SERVICE_TAG, WORKLOAD_TAG})


def removal_plan(tags: Mapping[str, str], findings: Sequence[ComplianceFinding]) -> tuple[str, ...]:
    """The kuma.io/* keys of `tags` to remove, sorted, as the role spells them; () for none."""
    named = {
        key.casefold()
        for finding in findings
        if finding.enforceable and finding.severity in ENFORCED_SEVERITIES
        for key in finding.tag_keys
    }
    every_kuma_key = tuple(sorted(key for key in tags if is_kuma_key(key)))
    if not named or not every_kuma_key:
        return ()
    if not _has_valid_type(tags):
        return every_kuma_key
    remove = [key for key in every_kuma_key if key.casefold() in named]
    remaining = {key: value for key, value in tags.items() if key not in remove}
    lost_restriction = any(key.strip() in RESTRICTIONS for key in named)
    if not _has_valid_type(remaining) or (lost_restriction and isinstance(role_tags(remaining), RoleTags)):
        return every_kuma_key
    return tuple(remove)


def _has_valid_type(tags: Mapping[str, str]) -> bool:
    return tags.get(TYPE_TAG) in set(ProxyType)


def remove_tags(iam: IAMClient, role: RoleRecord, keys: Sequence[str]) -> Remediation | None:
    """UntagRole of exactly `keys` (all kuma.io/*, as the plan gives them); None when the role has been
    deleted since it was read (nothing is left to remove); UpstreamError when IAM says no."""
    if not keys or not all(is_kuma_key(key) for key in keys):
        raise ValueError(f"refusing to remove {list(keys)!r}: only kuma.io/* keys are ever removed")
    with aws_errors(
        "iam", f"cannot remove {', '.join(keys)} from role {role.name} in account {role.account}"
    ):
        try:
            iam.untag_role(RoleName=role.name, TagKeys=list(keys))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "NoSuchEntity":
                return None
            raise
    return Remediation(account=role.account, roleName=role.name, removedTags=list(keys))
