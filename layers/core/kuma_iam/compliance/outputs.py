"""Where findings go: a log line and a `ComplianceFinding` metric (dimension `rule`) per finding, one SNS
message per invocation with HIGH or MEDIUM findings, one EventBridge event per finding, and Security Hub
(ASFF, one per finding, a stable id so that a re-sweep updates rather than duplicates) when enabled.

Any function that reports `ComplianceFinding`s publishes them here (`source` names it). Every output is
attempted; if one fails the first failure is raised afterwards, so the invocation is retried: a duplicate
notification is better than a lost one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kuma_iam.aws import aws_errors
from kuma_iam.compliance.findings import ComplianceFinding, ComplianceSummary
from kuma_iam.errors import UpstreamError, UpstreamUnavailable
from kuma_iam.observability import (
    COMPLIANCE_FINDING,
    COMPLIANCE_OUTPUT_ERROR,
    COMPLIANCE_REMEDIATION,
    logger,
    metrics_count,
)
from kuma_iam.rules import RULES, Severity

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_securityhub import SecurityHubClient
    from mypy_boto3_sns import SNSClient

EVENT_SOURCE = "kuma-iam.compliance"
EVENT_DETAIL_TYPE = "Kuma IAM Compliance Finding"
NOTIFIED = (Severity.HIGH, Severity.MEDIUM)
_EVENTS_PER_CALL = 10  # PutEvents' limit
_FINDINGS_PER_IMPORT = 100  # BatchImportFindings' limit
_SNS_MAX_BYTES = 200_000  # SNS takes 256 KB; the rest of the findings are counted, not listed
_SEVERITY_ORDER = {Severity.HIGH: 0, Severity.MEDIUM: 1, Severity.LOW: 2}


@dataclass(frozen=True)
class SecurityHubTarget:
    """Where ASFF findings are imported: the account this runs in, whose default product takes them (Security
    Hub accepts a default-product finding only for the importing account; the role's own account is in the
    resource ARN)."""

    client: SecurityHubClient
    account: str
    region: str
    partition: str

    @property
    def product_arn(self) -> str:
        return f"arn:{self.partition}:securityhub:{self.region}:{self.account}:product/{self.account}/default"


@dataclass
class FindingOutputs:
    source: str  # the reporting function, e.g. "tag-compliance"
    sns: SNSClient | None = None
    topic_arn: str | None = None
    events: EventBridgeClient | None = None
    event_bus: str = "default"
    security_hub: Callable[[], SecurityHubTarget] | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def publish(self, summary: ComplianceSummary, *, trigger: str) -> None:
        """Every output for the invocation's findings and removals; raises the first UpstreamError after
        trying them all."""
        for finding in summary.findings:
            log = logger.warning if finding.severity is Severity.HIGH else logger.info
            fields = finding.wire()
            # `message` is the log line's own field: the finding's message goes out as `detail`.
            fields["detail"] = fields.pop("message")
            log("compliance finding", extra={**fields, "trigger": trigger, "source": self.source})
            metrics_count(COMPLIANCE_FINDING, rule=finding.rule)
        for remediation in summary.remediations:
            logger.warning("kuma.io tags removed", extra={**remediation.model_dump(), "trigger": trigger})
            metrics_count(COMPLIANCE_REMEDIATION)
        for failure in summary.failed_accounts:
            logger.error(
                "account not fully checked",
                extra={"account": failure.account, "detail": failure.message, "trigger": trigger},
            )
        if not summary.findings:
            return
        failures: list[UpstreamError] = []
        for name, output in (
            ("sns", self._notify),
            ("events", self._put_events),
            ("securityhub", self._import),
        ):
            try:
                output(summary, trigger)
            except UpstreamError as error:
                metrics_count(COMPLIANCE_OUTPUT_ERROR, output=name)
                logger.error("compliance output failed", extra={"output": name, "detail": error.message})
                failures.append(error)
        if failures:
            raise failures[0]

    # --- SNS: one message per invocation ---

    def _notify(self, summary: ComplianceSummary, trigger: str) -> None:
        if self.sns is None or self.topic_arn is None:
            return
        notified = sorted(
            (finding for finding in summary.findings if finding.severity in NOTIFIED),
            key=lambda finding: (_SEVERITY_ORDER[finding.severity], finding.account, finding.role_name),
        )
        if not notified:
            return
        counts = summary.counts_by_severity()
        subject = f"kuma-iam {self.source}: {counts['HIGH']} HIGH, {counts['MEDIUM']} MEDIUM findings"
        with aws_errors("sns", f"cannot publish to {self.topic_arn}"):
            self.sns.publish(
                TopicArn=self.topic_arn,
                Subject=subject[:100],
                Message=self._message(summary, notified, trigger),
            )

    def _message(
        self, summary: ComplianceSummary, notified: Sequence[ComplianceFinding], trigger: str
    ) -> str:
        lines = [
            f"kuma-iam {self.source} ({trigger}): {summary.evaluated} roles evaluated, "
            f"{len(summary.findings)} findings, {len(summary.remediations)} roles with kuma.io tags removed.",
            "",
        ]
        size = sum(len(line.encode()) + 1 for line in lines)
        for index, finding in enumerate(notified):
            line = (
                f"{finding.severity} {finding.rule} account {finding.account} role {finding.role_name}: "
                f"{finding.message}"
            )
            if size + len(line.encode()) > _SNS_MAX_BYTES:
                lines.append(
                    f"... and {len(notified) - index} more HIGH/MEDIUM findings (see the function's log)"
                )
                break
            lines.append(line)
            size += len(line.encode()) + 1
        for remediation in summary.remediations[:50]:
            lines.append(
                f"removed {', '.join(remediation.removedTags)} from {remediation.account} "
                f"{remediation.roleName}"
            )
        for failure in summary.failed_accounts:
            lines.append(f"NOT fully checked: account {failure.account}: {failure.message}")
        return "\n".join(lines)

    # --- EventBridge: one event per finding ---

    def _put_events(self, summary: ComplianceSummary, trigger: str) -> None:
        if self.events is None:
            return
        entries = [self._event(finding, trigger) for finding in summary.findings]
        for start in range(0, len(entries), _EVENTS_PER_CALL):
            batch = entries[start : start + _EVENTS_PER_CALL]
            with aws_errors("events", f"cannot put finding events on bus {self.event_bus}"):
                answer = self.events.put_events(Entries=batch)  # type: ignore[arg-type]
                if answer.get("FailedEntryCount", 0):
                    # One more try for the entries EventBridge refused (throttled, internal); only those.
                    retry = [
                        entry
                        for entry, result in zip(batch, answer["Entries"], strict=True)
                        if "ErrorCode" in result
                    ]
                    answer = self.events.put_events(Entries=retry)  # type: ignore[arg-type]
            if answer.get("FailedEntryCount", 0):
                codes = sorted(
                    {result.get("ErrorCode", "?") for result in answer["Entries"] if "ErrorCode" in result}
                )
                raise UpstreamUnavailable(
                    "events",
                    f"EventBridge refused {answer['FailedEntryCount']} finding events: {', '.join(codes)}",
                )

    def _event(self, finding: ComplianceFinding, trigger: str) -> dict[str, Any]:
        detail = {
            **finding.wire(),
            "roleArn": finding.role_arn,
            "tagKeys": list(finding.tag_keys),
            "source": self.source,
            "trigger": trigger,
        }
        entry: dict[str, Any] = {
            "Source": EVENT_SOURCE,
            "DetailType": EVENT_DETAIL_TYPE,
            "Detail": json.dumps(detail),
            "EventBusName": self.event_bus,
            "Time": self.clock(),
        }
        if finding.role_arn:
            entry["Resources"] = [finding.role_arn]
        return entry

    # --- Security Hub: one ASFF finding per finding, updated in place on re-sweeps ---

    def _import(self, summary: ComplianceSummary, trigger: str) -> None:
        if self.security_hub is None:
            return
        target = self.security_hub()
        now = self.clock()
        findings = [
            asff_finding(finding, target=target, now=now, source=self.source) for finding in summary.findings
        ]
        for start in range(0, len(findings), _FINDINGS_PER_IMPORT):
            batch = findings[start : start + _FINDINGS_PER_IMPORT]
            with aws_errors("securityhub", "cannot import findings into Security Hub"):
                answer = target.client.batch_import_findings(Findings=batch)  # type: ignore[arg-type]
            if answer.get("FailedCount", 0):
                reasons = sorted({item.get("ErrorCode", "?") for item in answer.get("FailedFindings", [])})
                raise UpstreamUnavailable(
                    "securityhub",
                    f"Security Hub refused {answer['FailedCount']} findings: {', '.join(reasons)}",
                )


def asff_id(finding: ComplianceFinding) -> str:
    """The same for the same problem with the same role (IAM names compare without case), so a re-sweep
    updates the Security Hub finding; an occurrence (one event's change) gets its own."""
    what = "\0".join(
        [
            finding.rule,
            finding.account,
            finding.role_name.casefold(),
            *sorted(key.casefold() for key in finding.tag_keys),
        ]
        + ([finding.occurrence] if finding.occurrence else [])
    )
    digest = hashlib.sha256(what.encode()).hexdigest()[:24]
    return f"kuma-iam/{finding.account}/{finding.role_name.casefold()}/{finding.rule}/{digest}"


def asff_finding(
    finding: ComplianceFinding, *, target: SecurityHubTarget, now: datetime, source: str
) -> dict[str, Any]:
    """The finding in AWS Security Finding Format (schema 2018-10-08)."""
    rule = RULES.get(finding.rule)
    types = (
        ["TTPs/Privilege Escalation"]
        if finding.occurrence
        else ["Software and Configuration Checks/AWS Security Best Practices"]
    )
    timestamp = now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    role_arn = finding.role_arn or f"arn:{target.partition}:iam::{finding.account}:role/{finding.role_name}"
    return {
        "SchemaVersion": "2018-10-08",
        "Id": asff_id(finding),
        "ProductArn": target.product_arn,
        "GeneratorId": f"kuma-iam/{source}/{finding.rule}",
        "AwsAccountId": target.account,
        "Types": types,
        "CreatedAt": timestamp,
        "UpdatedAt": timestamp,
        "Severity": {"Label": finding.severity.value},
        "FindingProviderFields": {"Severity": {"Label": finding.severity.value}, "Types": types},
        "Title": f"{finding.rule}: {rule.title if rule else finding.rule} ({finding.role_name})"[:256],
        "Description": finding.message[:1024],
        "Resources": [
            {"Type": "AwsIamRole", "Id": role_arn, "Partition": target.partition, "Region": target.region}
        ],
        "Compliance": {"Status": "FAILED"},
        "RecordState": "ACTIVE",
        "ProductFields": {
            "kuma-iam/rule": finding.rule,
            "kuma-iam/account": finding.account,
            "kuma-iam/source": source,
        },
    }
