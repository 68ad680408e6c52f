"""What one provisioner invocation did: `{"tasks", "issued", "skipped"}` (and `"failed"` when AWS or the
control plane failed someone), and the closed set of reasons a task gets no new token."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from kuma_iam.compliance.findings import ComplianceFinding
from kuma_iam.errors import DenyReason, Upstream

# The summary is the invocation's answer: past this size the skipped tasks are counted, not listed.
MAX_SUMMARY_BYTES = 200_000


class SkipReason(StrEnum):
    """Why a task got no new token. The identity reasons are the verifier's own codes."""

    CLUSTER_NOT_SERVED = "cluster_not_served"
    TASK_NOT_FOUND = "task_not_found"
    TASK_STOPPING = "task_stopping"
    UNTAGGED = "untagged"  # no kuma.io/service tag: not a mesh task
    INVALID_TASK_TAGS = "invalid_task_tags"
    NO_TASK_ROLE = "no_task_role"
    INVALID_TASK_ROLE = "invalid_task_role"
    ACCOUNT_NOT_AUTHORIZED = DenyReason.ACCOUNT_NOT_AUTHORIZED.value
    ROLE_NOT_FOUND = DenyReason.ROLE_NOT_FOUND.value
    INVALID_ROLE_TAGS = DenyReason.INVALID_ROLE_TAGS.value
    TYPE_MISMATCH = DenyReason.TYPE_MISMATCH.value
    MESH_MISMATCH = DenyReason.MESH_MISMATCH.value
    SERVICE_MISMATCH = DenyReason.SERVICE_MISMATCH.value
    WORKLOAD_MISMATCH = DenyReason.WORKLOAD_MISMATCH.value
    CONFLICTING_IDENTITIES = "conflicting_identities"  # tasks of one service disagree on mesh or workload
    MESH_NOT_SERVED = "mesh_not_served"
    # Reason codes, not secrets (S105). Never created here: the service's stack creates it.
    SECRET_MISSING = "secret_missing"  # noqa: S105
    SECRET_NOT_JSON_OBJECT = "secret_not_json_object"  # noqa: S105 - never overwritten: someone else's value
    SECRET_TOO_LARGE = "secret_too_large"  # noqa: S105 - its other keys leave no room for a token
    TOKEN_VALID = "token_valid"  # noqa: S105 - the secret already holds a good token (not a refusal)
    REFRESHED_CONCURRENTLY = "refreshed_concurrently"  # another invocation put this refresh first
    UPSTREAM_THROTTLED = "upstream_throttled"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"


# Not refusals: the task has (or is about to have) a good token.
SATISFIED = frozenset({SkipReason.TOKEN_VALID, SkipReason.REFRESHED_CONCURRENTLY})


@dataclass(frozen=True, slots=True)
class Issued:
    service: str
    mesh: str
    secret: str
    jti: str
    expires_at: datetime

    def wire(self) -> dict[str, str]:
        return {
            "service": self.service,
            "mesh": self.mesh,
            "secret": self.secret,
            "jti": self.jti,
            "expiresAt": self.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


@dataclass(frozen=True, slots=True)
class Skipped:
    task: str
    reason: SkipReason

    def wire(self) -> dict[str, str]:
        return {"task": self.task, "reason": self.reason.value}


@dataclass(frozen=True, slots=True)
class Failure:
    """A service (or a whole cluster) nothing could be decided for: AWS or the control plane failed."""

    what: str  # "service" or "cluster"
    name: str
    upstream: Upstream
    message: str
    throttled: bool = False

    def wire(self) -> dict[str, str]:
        return {self.what: self.name, "upstream": self.upstream, "message": self.message}


@dataclass
class ProvisioningSummary:
    tasks: int = 0
    issued: list[Issued] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    findings: list[ComplianceFinding] = field(default_factory=list)

    def wire(self, *, max_bytes: int = MAX_SUMMARY_BYTES) -> dict[str, Any]:
        """{"tasks", "issued", "skipped"}, "failed" when any failed; skipped tasks past `max_bytes` of JSON
        are counted in "omittedSkipped" (a sweep of thousands of untagged tasks)."""
        body: dict[str, Any] = {
            "tasks": self.tasks,
            "issued": [issued.wire() for issued in self.issued],
            "skipped": [],
        }
        if self.failed:
            body["failed"] = [failure.wire() for failure in self.failed]
        budget = max_bytes - len(json.dumps(body)) - 100
        for skipped in self.skipped:
            entry = skipped.wire()
            size = len(json.dumps(entry)) + 2
            if size > budget:
                body["omittedSkipped"] = len(self.skipped) - len(body["skipped"])
                break
            body["skipped"].append(entry)
            budget -= size
        return body
