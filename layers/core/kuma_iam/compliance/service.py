"""Tag compliance as one object: an IAM event or a sweep in, findings (and removals in enforce mode) out."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kuma_iam.aws import BotocoreSession, aws_client_config
from kuma_iam.compliance.changes import RoleChange, TagAdmins
from kuma_iam.compliance.delivery import OncePerEvent
from kuma_iam.compliance.enforce import removal_plan, remove_tags
from kuma_iam.compliance.evaluate import change_findings, role_findings
from kuma_iam.compliance.events import ComplianceEvent, IamCallEvent, parse_compliance_event
from kuma_iam.compliance.findings import AccountFailure, ComplianceFinding, ComplianceSummary
from kuma_iam.compliance.iam import PAGE_SIZE, read_role
from kuma_iam.compliance.outputs import FindingOutputs, SecurityHubTarget
from kuma_iam.compliance.sweep import SweepProgress, sweep_accounts
from kuma_iam.config import ComplianceMode, ComplianceSettings
from kuma_iam.errors import InvalidRequest, UpstreamError
from kuma_iam.eventbridge import refused_event
from kuma_iam.observability import (
    ROLES_EVALUATED,
    SWEEP_DURATION,
    logger,
    record_metric,
    timed,
)
from kuma_iam.roles import IamClients, RoleRecord
from kuma_iam.rules import is_removable_kuma_key

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

    from kuma_iam.aws import AwsSession


@dataclass
class TagCompliance:
    """Checks roles with the verifier's rules; in enforce mode removes what the findings name."""

    clients: Callable[[str], IAMClient]
    authorized_accounts: frozenset[str]
    admins: TagAdmins
    mode: ComplianceMode = ComplianceMode.REPORT
    page_size: int = PAGE_SIZE

    def check_change(self, change: RoleChange) -> ComplianceSummary:
        """Re-read the role the event names and check it whole; the event says only who changed what.

        UpstreamError propagates: the event must be retried, not dropped.
        """
        if change.account not in self.authorized_accounts:
            return ComplianceSummary(
                failed_accounts=[
                    AccountFailure(
                        account=change.account,
                        message=f"account {change.account} is not authorized "
                        "(KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS); its roles are not read",
                    )
                ]
            )
        iam = self.clients(change.account)
        role = read_role(iam, change.account, change.role_name)
        if role is None:
            logger.info(
                "role deleted since the event",
                extra={
                    "account": change.account,
                    "roleName": change.role_name,
                    "eventName": change.event_name,
                },
            )
            return ComplianceSummary(findings=change_findings(change, self.admins, None))
        findings = role_findings(role) + change_findings(change, self.admins, role)
        return self._enforced(iam, role, findings, raise_on_failure=True)

    def sweep(
        self, accounts: Sequence[str] | None = None, progress: SweepProgress | None = None
    ) -> ComplianceSummary:
        """Every role of `accounts` (default: every authorized account, home first)."""
        chosen = list(accounts) if accounts is not None else sorted(self.authorized_accounts)
        return sweep_accounts(
            chosen,
            self.clients,
            lambda iam, role: self._enforced(iam, role, role_findings(role), raise_on_failure=False),
            progress,
            page_size=self.page_size,
        )

    def _enforced(
        self, iam: IAMClient, role: RoleRecord, findings: list[ComplianceFinding], *, raise_on_failure: bool
    ) -> ComplianceSummary:
        summary = ComplianceSummary(evaluated=1, findings=findings)
        if self.mode is not ComplianceMode.ENFORCE:
            return summary
        planned = removal_plan(role.tags, findings)
        keys = [key for key in planned if is_removable_kuma_key(key)]
        if by_hand := [key for key in planned if key not in keys]:
            logger.warning(
                "kuma.io keys to remove by hand",
                extra={"account": role.account, "roleName": role.name, "tagKeys": by_hand},
            )
        if not keys:
            return summary
        try:
            removed = remove_tags(iam, role, keys)
        except UpstreamError as error:
            if raise_on_failure:
                raise
            # One role that cannot be untagged must not stop the sweep of the others.
            summary.failed_accounts.append(AccountFailure(account=role.account, message=error.message))
            return summary
        if removed is None:
            # Deleted between the read and the removal (a sweep's page, an event's re-read): no identity left.
            logger.info(
                "role deleted before its tags were removed",
                extra={"account": role.account, "roleName": role.name},
            )
        else:
            summary.remediations.append(removed)
        return summary


@dataclass
class ComplianceFunction:
    """TagComplianceFunction's whole job: parse the event, handle each event id once, check, publish, answer
    with the summary."""

    compliance: TagCompliance
    outputs: FindingOutputs
    once: OncePerEvent | None = None

    def handle(self, event: object, context: LambdaContext | None = None) -> dict[str, Any]:
        """The summary; a malformed event gets an `error` naming its problem (retrying it cannot help), an
        AWS failure raises UpstreamError so that the event is delivered again."""
        try:
            parsed = parse_compliance_event(event)
        except InvalidRequest as error:
            return refused_event(error, {"evaluated": 0, "findings": [], "remediations": []})
        assert isinstance(event, dict)  # parse_compliance_event takes nothing else
        if self.once is None:
            return self._process(parsed)
        return self.once.run(event, lambda: self._process(parsed), context)

    def _process(self, event: ComplianceEvent) -> dict[str, Any]:
        if isinstance(event, IamCallEvent):
            change = event.change()
            trigger = f"{event.detail.eventName} event {event.id}"
            if change is None:
                logger.info(
                    "failed IAM call without a role",
                    extra={"eventId": event.id, "errorCode": event.detail.errorCode},
                )
                summary = ComplianceSummary()
            else:
                summary = self.compliance.check_change(change)
        else:
            trigger = f"scheduled sweep {event.id}"
            with timed(SWEEP_DURATION):
                summary = self.compliance.sweep()
            record_metric(ROLES_EVALUATED, summary.evaluated)
        logger.info(
            "compliance checked",
            extra={
                "trigger": trigger,
                "evaluated": summary.evaluated,
                "findings": len(summary.findings),
                "remediations": len(summary.remediations),
                "failedAccounts": [failure.account for failure in summary.failed_accounts],
            },
        )
        self.outputs.publish(summary, trigger=trigger)
        return summary.wire()


def build_tag_compliance(
    settings: ComplianceSettings, session: AwsSession | None = None, *, clients: IamClients | None = None
) -> TagCompliance:
    """The checks alone, as the CLI's sweep uses them: IAM in each account, through its compliance role."""
    clients = clients or _iam_clients(settings, session or BotocoreSession(region_name=settings.region))
    return TagCompliance(
        clients=clients.for_account,
        authorized_accounts=settings.authorized_account_ids,
        admins=TagAdmins(settings.tag_admins),
        mode=settings.mode,
        page_size=settings.sweep_page_size,
    )


def build_compliance_function(
    settings: ComplianceSettings, session: AwsSession | None = None
) -> ComplianceFunction:
    """Wire the function from settings; one per container, so clients and credentials are reused."""
    session = session or BotocoreSession(region_name=settings.region)
    config = aws_client_config(settings.upstream_timeout_seconds, attempts=settings.upstream_attempts)
    clients = _iam_clients(settings, session)
    sns = (
        session.client("sns", endpoint_url=settings.sns_endpoint_url, config=config)
        if settings.findings_topic_arn
        else None
    )
    security_hub_target: Callable[[], SecurityHubTarget] | None = None
    if settings.security_hub:
        hub = session.client("securityhub", endpoint_url=settings.securityhub_endpoint_url, config=config)

        def security_hub() -> SecurityHubTarget:
            # The home account may cost an STS call: made when the first findings are imported, not here.
            return SecurityHubTarget(hub, clients.home_account(), settings.region, clients.partition)

        security_hub_target = security_hub

    once = None
    if settings.idempotency_table_name:
        dynamodb = session.client("dynamodb", endpoint_url=settings.dynamodb_endpoint_url, config=config)
        once = OncePerEvent(dynamodb, settings.idempotency_table_name)
    return ComplianceFunction(
        compliance=build_tag_compliance(settings, clients=clients),
        outputs=FindingOutputs(
            source="tag-compliance",
            sns=sns,
            topic_arn=settings.findings_topic_arn,
            events=session.client("events", endpoint_url=settings.events_endpoint_url, config=config),
            event_bus=settings.findings_event_bus,
            security_hub=security_hub_target,
        ),
        once=once,
    )


def compliance_function_from_env(environ: Mapping[str, str]) -> ComplianceFunction:
    return build_compliance_function(ComplianceSettings.from_env(environ))


def _iam_clients(settings: ComplianceSettings, session: AwsSession) -> IamClients:
    return IamClients(
        session,
        role_name=settings.compliance_role_name,
        session_name="kuma-iam-compliance",
        config=aws_client_config(settings.upstream_timeout_seconds, attempts=settings.upstream_attempts),
        iam_endpoint_url=settings.iam_endpoint_url,
        sts_endpoint_url=settings.sts_endpoint_url,
        home_account=settings.home_account_id,
    )
