"""What a compliance check reports: one `ComplianceFinding` per problem, and the summary of an invocation.

Every function that checks mesh identities reports in this format (the token provisioner's
`provisioner-identity-mismatch` too), so that one set of outputs, alarms and dashboards serves them all.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kuma_iam.rules import Severity

# The summary is returned to the caller and kept in the idempotency table (DynamoDB items hold 400 KB):
# past this size the lists are cut and the counts say how much was left out.
MAX_SUMMARY_BYTES = 200_000


class ComplianceFinding(BaseModel):
    """One problem with one role. The wire format is the first five fields; the rest steers enforcement and
    the outputs."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    rule: str
    severity: Severity
    account: str
    role_name: str = Field(serialization_alias="roleName", validation_alias="roleName")
    message: str
    role_arn: str | None = Field(default=None, exclude=True)
    # The tag keys the finding is about (as the role spells them); what `enforce` may remove.
    tag_keys: tuple[str, ...] = Field(default=(), exclude=True)
    # Tag findings are enforceable; trust-policy findings are reported only.
    enforceable: bool = Field(default=False, exclude=True)
    # Set for a finding about one occurrence (an event's id), which no later sweep repeats; None for a finding
    # about a role's state, which a re-sweep finds again and updates.
    occurrence: str | None = Field(default=None, exclude=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class Remediation(BaseModel):
    model_config = ConfigDict(frozen=True)

    account: str
    roleName: str  # noqa: N815 - the wire format's names
    removedTags: list[str]  # noqa: N815


class AccountFailure(BaseModel):
    """An account whose roles could not all be read: nothing unread is reported clean."""

    model_config = ConfigDict(frozen=True)

    account: str
    message: str


class ComplianceSummary(BaseModel):
    """What one invocation did, as `sam local invoke` and the CLI show it."""

    evaluated: int = 0
    findings: list[ComplianceFinding] = []
    remediations: list[Remediation] = []
    failed_accounts: list[AccountFailure] = []

    def merge(self, other: ComplianceSummary) -> None:
        self.evaluated += other.evaluated
        self.findings += other.findings
        self.remediations += other.remediations
        self.failed_accounts += other.failed_accounts

    def counts_by_severity(self) -> Counter[str]:
        return Counter(finding.severity.value for finding in self.findings)

    def wire(self, *, max_bytes: int = MAX_SUMMARY_BYTES) -> dict[str, Any]:
        """{"evaluated", "findings", "remediations"} (and "failedAccounts" when any failed), at most
        `max_bytes` of JSON: findings and remediations past that are counted in "omittedFindings" /
        "omittedRemediations" instead of listed."""
        body: dict[str, Any] = {"evaluated": self.evaluated, "findings": [], "remediations": []}
        if self.failed_accounts:
            body["failedAccounts"] = [failure.model_dump() for failure in self.failed_accounts]
        budget = max_bytes - len(json.dumps(body)) - 100  # room for the omitted counts
        for key, items in (("remediations", self.remediations), ("findings", self.findings)):
            kept = 0
            for item in items:
                entry = item.wire() if isinstance(item, ComplianceFinding) else item.model_dump()
                size = len(json.dumps(entry)) + 2
                if size > budget:
                    break
                body[key].append(entry)
                budget -= size
                kept += 1
            if kept < len(items):
                body["omitted" + key.capitalize()] = len(items) - kept
        return body
