"""A role's current tags and trust policy, and the change an event reports, -> findings. Pure: the tag rules
are the verifier's own (kuma_iam.rules), the trust rules sit beside them (kuma_iam.trust)."""

from __future__ import annotations

from kuma_iam.compliance.changes import RoleChange, TagAdmins, unauthorized_change
from kuma_iam.compliance.findings import ComplianceFinding
from kuma_iam.roles import RoleRecord
from kuma_iam.rules import KUMA_TAG_CHANGE_UNAUTHORIZED, is_kuma_key, tag_violations
from kuma_iam.trust import trust_violations


def role_findings(role: RoleRecord) -> list[ComplianceFinding]:
    """Every problem with the role as IAM has it now; a role without kuma.io tags is none of our business."""
    if not any(is_kuma_key(key) for key in role.tags):
        return []
    findings = [
        ComplianceFinding(
            rule=violation.rule,
            severity=violation.severity,
            account=role.account,
            role_name=role.name,
            message=violation.message,
            role_arn=role.arn,
            tag_keys=(violation.key,),
            enforceable=True,
        )
        for violation in tag_violations(role.tags)
    ]
    findings += [
        ComplianceFinding(
            rule=violation.rule,
            severity=violation.severity,
            account=role.account,
            role_name=role.name,
            message=violation.message,
            role_arn=role.arn,
        )
        for violation in trust_violations(role.trust_policy)
    ]
    return findings


def change_findings(
    change: RoleChange, admins: TagAdmins, role: RoleRecord | None
) -> list[ComplianceFinding]:
    """`kuma-tag-change-unauthorized` for the change, if it breaks it. The keys it names for enforcement are
    those the change set and the role still carries with the value it set (a later change is its own
    event), and those it removed."""
    message = unauthorized_change(change, admins)
    if message is None:
        return []
    current = role.tags if role is not None else {}
    still_set = tuple(
        key
        for key, value in current.items()
        if any(
            key.casefold() == set_key.casefold() and value == set_value
            for set_key, set_value in change.kuma_keys_set().items()
        )
    )
    return [
        ComplianceFinding(
            rule=KUMA_TAG_CHANGE_UNAUTHORIZED.id,
            severity=KUMA_TAG_CHANGE_UNAUTHORIZED.severity,
            account=change.account,
            role_name=role.name if role is not None else change.role_name,
            message=message if role is not None else f"{message}; the role has been deleted since",
            role_arn=role.arn if role is not None else None,
            tag_keys=still_set + change.kuma_keys_removed(),
            enforceable=True,
            occurrence=change.event_id,
        )
    ]
