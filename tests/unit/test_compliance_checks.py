"""Compliance's pure parts: who may change kuma.io tags, a role -> findings, and what enforce removes."""

from __future__ import annotations

from typing import Any

import pytest

from kuma_iam.compliance.changes import RoleChange, TagAdmins, unauthorized_change
from kuma_iam.compliance.enforce import removal_plan
from kuma_iam.compliance.evaluate import change_findings, role_findings
from kuma_iam.compliance.events import UserIdentity
from kuma_iam.compliance.findings import ComplianceFinding, ComplianceSummary, Remediation
from kuma_iam.compliance.outputs import asff_id
from kuma_iam.roles import RoleRecord
from kuma_iam.rules import RULES, Severity
from support.iam_policy import arn_like

ACCOUNT = "111111111111"
ECS_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
        }
    ],
}
ADMINS = TagAdmins(
    (
        "arn:aws:iam::111111111111:role/platform-admin",
        "arn:aws:iam::*:role/aws-reserved/*/AWSReservedSSO_Admin_*",
    )
)
DATAPLANE = {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "kuma.io/service": "backend"}


def role(tags: dict[str, str], trust: Any = ECS_TRUST, name: str = "backend-task") -> RoleRecord:
    return RoleRecord(ACCOUNT, name, f"arn:aws:iam::{ACCOUNT}:role/{name}", "AROAEXAMPLE", "/", tags, trust)


def change(
    event: str = "TagRole", principal: str | None = "arn:aws:iam::111111111111:user/mallory", **kw: Any
) -> RoleChange:
    return RoleChange(
        account=ACCOUNT,
        role_name="backend-task",
        event_name=event,
        event_id="ev-1",
        principal_arn=principal,
        principal=principal or "AWSService",
        **kw,
    )


# --- tag administrators ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arn", "admitted"),
    [
        ("arn:aws:iam::111111111111:role/platform-admin", True),
        ("arn:aws:iam::111111111111:role/Platform-Admin", True),  # role names are unique regardless of case
        ("arn:aws:iam::222222222222:role/platform-admin", False),
        ("arn:aws:iam::111111111111:role/platform-admin-2", False),
        ("arn:aws:iam::111111111111:user/platform-admin", False),
        ("arn:aws:iam::333333333333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0123", True),
        ("arn:aws:iam::333333333333:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Dev_0123", False),
        ("arn:aws:sts::111111111111:assumed-role/platform-admin/session", False),
        (None, False),
    ],
)
def test_admins_match_arn_patterns_with_wildcards(arn: str | None, admitted: bool) -> None:
    assert ADMINS.admits(arn) is admitted


@pytest.mark.parametrize(
    ("pattern", "arn", "admitted"),
    [
        ("arn:aws:iam::111111111111:role/admin-?", "arn:aws:iam::111111111111:role/admin-1", True),
        ("arn:aws:iam::111111111111:role/admin-?", "arn:aws:iam::111111111111:role/admin-12", False),
        ("arn:aws:iam::111111111111:role/admin-?", "arn:aws:iam::111111111111:role/admin-", False),
        ("arn:aws:iam::11111111111?:role/admin", "arn:aws:iam::111111111112:role/admin", True),
        ("arn:aws:iam::111111111111:role/a?min", "arn:aws:iam::111111111111:role/a?min", True),
    ],
)
def test_a_question_mark_matches_one_character_as_in_the_preventive_policy(
    pattern: str, arn: str, admitted: bool
) -> None:
    # `kuma-iam policy --admins` takes the same patterns, which IAM's ArnNotLike reads with `?` as one
    # character: a literal `?` here would flag (and in enforce mode take back) an admin's own change
    assert TagAdmins((pattern,)).admits(arn) is admitted
    assert arn_like(arn, pattern) is admitted


def test_pattern_metacharacters_are_literal() -> None:
    admins = TagAdmins(("arn:aws:iam::111111111111:role/a.b",))
    assert admins.admits("arn:aws:iam::111111111111:role/a.b")
    assert not admins.admits("arn:aws:iam::111111111111:role/aXb")


def test_no_admins_means_every_kuma_change_is_unauthorized() -> None:
    assert unauthorized_change(change(set_tags={"kuma.io/mesh": "x"}), TagAdmins(())) is not None


@pytest.mark.parametrize(
    ("the_change", "fires"),
    [
        (change(set_tags={"kuma.io/mesh": "payments"}), True),
        (change(set_tags={"Kuma.IO/Mesh": "payments"}), True),  # IAM keys compare without case
        (change(set_tags={" kuma.io/type": "dataplane"}), True),
        (change("UntagRole", removed_keys=("kuma.io/service",)), True),
        (change("CreateRole", set_tags={"kuma.io/type": "dataplane"}), True),
        (change(set_tags={"team": "payments"}), False),
        (change("UntagRole", removed_keys=("team",)), False),
        (
            change(principal="arn:aws:iam::111111111111:role/platform-admin", set_tags={"kuma.io/mesh": "x"}),
            False,
        ),
        (change(set_tags={"kuma.io/mesh": "x"}, failed="AccessDenied"), False),
        (change("UpdateAssumeRolePolicy"), False),
        (change(principal=None, set_tags={"kuma.io/mesh": "x"}), True),  # an AWS service is no admin
    ],
)
def test_unauthorized_change_fires_only_for_kuma_keys_by_non_admins(
    the_change: RoleChange, fires: bool
) -> None:
    assert (unauthorized_change(the_change, ADMINS) is not None) is fires


# --- role and change -> findings ---------------------------------------------------------------------------


def test_compliant_role_has_no_findings() -> None:
    assert role_findings(role(DATAPLANE)) == []


def test_untagged_role_is_not_judged_even_with_an_open_trust() -> None:
    assert (
        role_findings(
            role({"team": "x"}, trust={"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*"}]})
        )
        == []
    )


def test_tag_and_trust_findings_together_and_only_tag_findings_are_enforceable() -> None:
    found = role_findings(
        role(
            {"kuma.io/type": "sidecar"},
            trust={"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}]},
        )
    )
    assert sorted((f.rule, f.enforceable) for f in found) == [
        ("kuma-type-invalid", True),
        ("trust-not-ecs-tasks", False),
    ]
    assert all(f.severity == RULES[f.rule].severity for f in found)


def test_change_finding_names_keys_still_carrying_the_value_set() -> None:
    # Given a non-admin set mesh and service; service has since been changed again by someone else
    the_role = role({**DATAPLANE, "kuma.io/mesh": "payments", "kuma.io/service": "other"})
    the_change = change(set_tags={"kuma.io/mesh": "payments", "kuma.io/service": "frontend"})
    (finding,) = change_findings(the_change, ADMINS, the_role)
    # Then the finding names only the key still carrying the value the change set
    assert (finding.rule, finding.severity, finding.tag_keys) == (
        "kuma-tag-change-unauthorized",
        Severity.HIGH,
        ("kuma.io/mesh",),
    )
    assert "mallory" in finding.message
    assert finding.occurrence == "ev-1"


def test_change_finding_on_a_deleted_role_is_still_reported() -> None:
    (finding,) = change_findings(change(set_tags={"kuma.io/mesh": "x"}), ADMINS, None)
    assert finding.role_name == "backend-task"
    assert "deleted" in finding.message
    assert finding.role_arn is None


# --- enforce: what is removed ----------------------------------------------------------------------------


def plan(tags: dict[str, str], the_change: RoleChange | None = None) -> tuple[str, ...]:
    the_role = role(tags)
    found = role_findings(the_role) + (change_findings(the_change, ADMINS, the_role) if the_change else [])
    return removal_plan(tags, found)


@pytest.mark.parametrize(
    ("tags", "removed"),
    [
        pytest.param({**DATAPLANE, "team": "x"}, (), id="compliant"),
        pytest.param({**DATAPLANE, "kuma.io/zone": "eu"}, (), id="unknown-key-is-low-and-kept"),
        pytest.param(
            {"kuma.io/type": "dataplane", "kuma.io/mesh": "Bad Mesh", "team": "x"},
            ("kuma.io/mesh",),
            id="malformed-mesh",
        ),
        pytest.param(
            {"kuma.io/type": "sidecar", "kuma.io/mesh": "default", "Kuma.io/Zone": "x", "team": "x"},
            ("Kuma.io/Zone", "kuma.io/mesh", "kuma.io/type"),
            id="invalid-type-takes-every-kuma-key",
        ),
        pytest.param(
            {"kuma.io/mesh": "default", "KUMA.IO/TYPE": "dataplane", "team": "x"},
            ("KUMA.IO/TYPE", "kuma.io/mesh"),
            id="missing-type-takes-every-kuma-key",
        ),
        pytest.param({"kuma.io/type": "dataplane"}, (), id="mesh-missing-nothing-to-remove-already-closed"),
        pytest.param(
            {**DATAPLANE, "kuma.io/service": "not a name!"},
            ("kuma.io/mesh", "kuma.io/service", "kuma.io/type"),
            id="malformed-service-would-widen-so-all-go",
        ),
        pytest.param(
            {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "Kuma.io/Service": "backend"},
            ("Kuma.io/Service", "kuma.io/mesh", "kuma.io/type"),
            id="noncanonical-service-would-widen-so-all-go",
        ),
        pytest.param(
            {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "Kuma.io/Foo": "x"},
            ("Kuma.io/Foo",),
            id="noncanonical-unknown-key-alone",
        ),
    ],
)
def test_enforce_removes_exactly_the_offending_kuma_keys(
    tags: dict[str, str], removed: tuple[str, ...]
) -> None:
    assert plan(tags) == removed
    assert "team" not in plan(tags)


def test_unauthorized_tag_of_mesh_leaves_a_dataplane_without_mesh() -> None:
    tags = {"kuma.io/type": "dataplane", "kuma.io/mesh": "payments"}
    assert plan(tags, change(set_tags={"kuma.io/mesh": "payments"})) == ("kuma.io/mesh",)


def test_unauthorized_service_change_fails_closed_instead_of_widening() -> None:
    tags = {**DATAPLANE, "kuma.io/service": "frontend"}
    assert plan(tags, change(set_tags={"kuma.io/service": "frontend"})) == (
        "kuma.io/mesh",
        "kuma.io/service",
        "kuma.io/type",
    )


def test_unauthorized_untag_of_service_fails_closed() -> None:
    tags = {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "team": "x"}
    assert plan(tags, change("UntagRole", removed_keys=("kuma.io/service",))) == (
        "kuma.io/mesh",
        "kuma.io/type",
    )


def test_admin_change_is_not_enforced() -> None:
    tags = {**DATAPLANE, "kuma.io/service": "frontend"}
    admin = change(
        principal="arn:aws:iam::111111111111:role/platform-admin", set_tags={"kuma.io/service": "frontend"}
    )
    assert plan(tags, admin) == ()


def test_trust_findings_are_never_enforced() -> None:
    the_role = role(
        DATAPLANE, trust={"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}]}
    )
    assert removal_plan(the_role.tags, role_findings(the_role)) == ()


# --- the summary and Security Hub ids ---------------------------------------------------------------------


def finding(**overrides: Any) -> ComplianceFinding:
    values: dict[str, Any] = {
        "rule": "kuma-type-invalid",
        "severity": Severity.HIGH,
        "account": ACCOUNT,
        "role_name": "backend-task",
        "message": "x",
        "tag_keys": ("kuma.io/type",),
    }
    return ComplianceFinding(**(values | overrides))


def test_summary_wire_format() -> None:
    summary = ComplianceSummary(
        evaluated=3,
        findings=[finding()],
        remediations=[Remediation(account=ACCOUNT, roleName="r", removedTags=["kuma.io/type"])],
    )
    assert summary.wire() == {
        "evaluated": 3,
        "findings": [
            {
                "rule": "kuma-type-invalid",
                "severity": "HIGH",
                "account": ACCOUNT,
                "roleName": "backend-task",
                "message": "x",
            }
        ],
        "remediations": [{"account": ACCOUNT, "roleName": "r", "removedTags": ["kuma.io/type"]}],
    }


def test_a_huge_summary_is_cut_and_counted() -> None:
    summary = ComplianceSummary(evaluated=5000, findings=[finding(message="m" * 300) for _ in range(5000)])
    wire = summary.wire(max_bytes=100_000)
    assert len(str(wire)) < 110_000
    assert wire["omittedFindings"] == 5000 - len(wire["findings"]) > 0


def test_asff_id_is_stable_across_sweeps_and_name_case_and_distinct_per_problem() -> None:
    assert asff_id(finding()) == asff_id(finding(role_name="Backend-Task", message="other words"))
    assert asff_id(finding()) != asff_id(finding(rule="kuma-mesh-missing"))
    assert asff_id(finding()) != asff_id(finding(tag_keys=("kuma.io/mesh",)))
    assert asff_id(finding(occurrence="ev-1")) != asff_id(finding(occurrence="ev-2"))


# --- who CloudTrail says made the call ----------------------------------------------------------------------

ISSUER = {"type": "Role", "arn": "arn:aws:iam::111111111111:role/platform-admin"}


@pytest.mark.parametrize(
    ("identity", "principal"),
    [
        pytest.param(
            {
                "type": "AssumedRole",
                "arn": "arn:aws:sts::111111111111:assumed-role/platform-admin/alice",
                "sessionContext": {"sessionIssuer": ISSUER},
            },
            "arn:aws:iam::111111111111:role/platform-admin",
            id="assumed-role-by-its-role",
        ),
        pytest.param(
            {"type": "AssumedRole", "arn": "arn:aws:sts::111111111111:assumed-role/platform-admin/alice"},
            None,
            id="assumed-role-without-issuer-is-nobody",
        ),
        pytest.param(
            {
                "type": "FederatedUser",
                "arn": "arn:aws:sts::111111111111:federated-user/bob",
                "sessionContext": {
                    "sessionIssuer": {"type": "IAMUser", "arn": "arn:aws:iam::111111111111:user/ops"}
                },
            },
            "arn:aws:iam::111111111111:user/ops",
            id="federated-user-by-its-iam-user",
        ),
        pytest.param(
            {"type": "IAMUser", "arn": "arn:aws:iam::111111111111:user/dev"},
            "arn:aws:iam::111111111111:user/dev",
            id="user",
        ),
        pytest.param(
            {"type": "Root", "arn": "arn:aws:iam::111111111111:root"},
            "arn:aws:iam::111111111111:root",
            id="root",
        ),
        pytest.param({"type": "AWSService", "invokedBy": "cloudformation.amazonaws.com"}, None, id="service"),
    ],
)
def test_the_accountable_principal_of_a_call(identity: dict[str, Any], principal: str | None) -> None:
    assert UserIdentity.model_validate(identity).principal_arn() == principal


def test_a_session_name_cannot_make_an_admin() -> None:
    # Given a non-admin role whose session is named like an admin's
    identity = UserIdentity.model_validate(
        {
            "type": "AssumedRole",
            "arn": "arn:aws:sts::111111111111:assumed-role/ci/platform-admin",
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": "arn:aws:iam::111111111111:role/ci"}},
        }
    )
    # Then it is judged by its role, which is no admin
    assert not ADMINS.admits(identity.principal_arn())
