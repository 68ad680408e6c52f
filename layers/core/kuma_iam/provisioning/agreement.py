"""Does a task's role agree with what its tags claim? The shared rules decide (rules.role_tags,
rules.claim_mismatch), exactly as the verifier decides for a sidecar's claimed Dataplane. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from kuma_iam.compliance.findings import ComplianceFinding
from kuma_iam.provisioning.summary import SkipReason
from kuma_iam.provisioning.tasks import TaskClaim
from kuma_iam.roles import RoleRecord
from kuma_iam.rules import (
    MESH_TAG,
    PROVISIONER_IDENTITY_MISMATCH,
    SERVICE_TAG,
    TYPE_TAG,
    WORKLOAD_TAG,
    DataplaneClaim,
    ProxyType,
    RoleTags,
    claim_mismatch,
    role_tags,
)
from kuma_iam.tokens.claims import DataplaneIdentity, dataplane_identity

# The tag a mismatch is about, for the finding (Security Hub keys a finding on it).
_MISMATCHED_TAG = {
    SkipReason.TYPE_MISMATCH: TYPE_TAG,
    SkipReason.MESH_MISMATCH: MESH_TAG,
    SkipReason.SERVICE_MISMATCH: SERVICE_TAG,
    SkipReason.WORKLOAD_MISMATCH: WORKLOAD_TAG,
}


@dataclass(frozen=True, slots=True)
class ServiceIdentity:
    """What the service's token binds: every task of the service, whatever its name, in one mesh."""

    service: str
    mesh: str
    workload: str | None

    def token_identity(self, role: RoleTags) -> DataplaneIdentity:
        # No Name: one token serves every task of the service, and Kuma checks a Name only when set.
        return dataplane_identity(role, name="", services=(self.service,), workload=self.workload)


@dataclass(frozen=True, slots=True)
class Agreed:
    identity: ServiceIdentity
    token_identity: DataplaneIdentity


@dataclass(frozen=True, slots=True)
class Disagreement:
    reason: SkipReason
    detail: str
    finding: ComplianceFinding


def identity_agreement(claim: TaskClaim, role: RoleRecord) -> Agreed | Disagreement:
    """The service identity the task may have a token for, or why its role says otherwise."""
    tags = role_tags(role.tags)
    if isinstance(tags, list):
        problems = "; ".join(f"{violation.rule}: {violation.message}" for violation in tags)
        return _disagreement(
            claim,
            role,
            SkipReason.INVALID_ROLE_TAGS,
            f"role {role.name} is no kuma identity: {problems}",
            tuple(dict.fromkeys(violation.key for violation in tags)),
        )
    wanted = DataplaneClaim(
        type=ProxyType.DATAPLANE,
        mesh=claim.mesh if claim.mesh is not None else tags.mesh,
        services=(claim.service,),
        workload=claim.workload if claim.workload is not None else tags.workload,
    )
    mismatch = claim_mismatch(tags, wanted)
    if mismatch is not None:
        reason = SkipReason(mismatch.reason.value)
        return _disagreement(claim, role, reason, mismatch.message, (_MISMATCHED_TAG[reason],))
    assert wanted.mesh is not None  # a dataplane role carries its mesh (rules.role_tags)
    identity = ServiceIdentity(claim.service, wanted.mesh, wanted.workload)
    return Agreed(identity, identity.token_identity(tags))


def _disagreement(
    claim: TaskClaim, role: RoleRecord, reason: SkipReason, detail: str, tag_keys: tuple[str, ...]
) -> Disagreement:
    cluster = claim.task.cluster_arn.rsplit("/", 1)[-1]
    claimed = f"{SERVICE_TAG}={claim.service}" + (f", {MESH_TAG}={claim.mesh}" if claim.mesh else "")
    finding = ComplianceFinding(
        rule=PROVISIONER_IDENTITY_MISMATCH.id,
        severity=PROVISIONER_IDENTITY_MISMATCH.severity,
        account=role.account,
        role_name=role.name,
        role_arn=role.arn,
        message=(
            f"ECS tasks of cluster {cluster} tagged {claimed} run with role {role.name}, which gets them no "
            f"token ({reason.value}): {detail}"
        ),
        tag_keys=tag_keys,
    )
    return Disagreement(reason, detail, finding)
