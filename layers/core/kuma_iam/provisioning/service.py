"""The provisioner as one object: tasks in, for each tagged service whose tasks' roles agree, a good token in
its secret; then `ProvisionerFunction`, TokenProvisionerFunction's whole job (parse, provision, report)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.config import Config

from kuma_iam.aws import BotocoreSession, aws_client_config
from kuma_iam.compliance.findings import ComplianceSummary
from kuma_iam.compliance.outputs import FindingOutputs, SecurityHubTarget
from kuma_iam.config import ControlPlaneSettings, TokenProvisionerSettings
from kuma_iam.errors import (
    ConfigError,
    Denied,
    InvalidRequest,
    UpstreamError,
    UpstreamThrottled,
    UpstreamUnavailable,
)
from kuma_iam.eventbridge import ScheduledEvent, refused_event
from kuma_iam.observability import (
    PROVISIONING_SKIPPED,
    TOKEN_PROVISIONED,
    UPSTREAM_ERROR,
    logger,
    metrics_count,
    record_metric,
)
from kuma_iam.provisioning.agreement import Agreed, Disagreement, ServiceIdentity, identity_agreement
from kuma_iam.provisioning.clusters import ServedClusters
from kuma_iam.provisioning.ecs import EcsTasks
from kuma_iam.provisioning.events import TaskStateChangeEvent, parse_provisioner_event
from kuma_iam.provisioning.freshness import judge_token
from kuma_iam.provisioning.secrets import MAX_SECRET_BYTES, TOKEN_KEY, ServiceSecrets
from kuma_iam.provisioning.summary import (
    SATISFIED,
    Failure,
    Issued,
    ProvisioningSummary,
    Skipped,
    SkipReason,
)
from kuma_iam.provisioning.tasks import EcsTask, RoleRef, Skip, TaskClaim, task_claim, task_role
from kuma_iam.roles import IamClients, RoleDirectory, RoleRecord
from kuma_iam.tokens.control_plane import ControlPlaneMinter, SecretText, control_plane_http
from kuma_iam.tokens.issuer import build_minter
from kuma_iam.tokens.mint import Minter
from kuma_iam.tokens.revocations import RevocationTable, mesh_scope

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kuma_iam.aws import AwsSession

# Logged at DEBUG: a sweep meets many tasks that are no mesh's (or already served), and they are no refusal.
QUIET_REASONS = frozenset(
    {SkipReason.UNTAGGED, SkipReason.TASK_STOPPING, SkipReason.CLUSTER_NOT_SERVED, *SATISFIED}
)
# The session name of the provisioner's own AssumeRole calls (it makes none: task roles live at home).
SESSION_NAME = "kuma-iam-token-provisioner"


@dataclass(frozen=True)
class ProvisioningPolicy:
    clusters: ServedClusters
    authorized_accounts: frozenset[str]
    meshes: tuple[str, ...]
    valid_for: timedelta
    margin: timedelta


@dataclass
class _Run:
    """One invocation's results, and what it read once for all its services."""

    summary: ProvisioningSummary = field(default_factory=ProvisioningSummary)
    revoked: dict[str, frozenset[str]] = field(default_factory=dict)
    finding_keys: set[tuple[str, str, str, str]] = field(default_factory=set)

    def skip(self, task: EcsTask, reason: SkipReason, detail: str, service: str | None = None) -> None:
        self.summary.skipped.append(Skipped(task.arn, reason))
        log = logger.debug if reason in QUIET_REASONS else logger.info
        log(
            "task skipped",
            extra={"task": task.arn, "cluster": task.cluster_arn, "kumaService": service,
                   "reason": reason.value, "detail": detail},
        )  # fmt: skip

    def fail(self, what: str, name: str, error: UpstreamError) -> None:
        throttled = isinstance(error, UpstreamThrottled)
        self.summary.failed.append(Failure(what, name, error.service, error.message, throttled))
        metrics_count(UPSTREAM_ERROR, upstream=error.service)
        # `kumaService`: a log line's own `service` is Powertools' (the stack's name).
        field_name = "kumaService" if what == "service" else what
        logger.error(
            "provisioning failed",
            extra={field_name: name, "upstream": error.service, "detail": error.message},
        )

    def find(self, service: str, disagreement: Disagreement) -> None:
        finding = disagreement.finding
        key = (finding.account, finding.role_name.casefold(), service, disagreement.reason.value)
        if key not in self.finding_keys:  # one per role and service, however many of its tasks started
            self.finding_keys.add(key)
            self.summary.findings.append(finding)


@dataclass
class TokenProvisioner:
    """Keeps a good token in each served, tagged service's secret; every refusal is a skip with its reason."""

    ecs: EcsTasks
    roles: Callable[[RoleRef], RoleRecord]
    secrets: ServiceSecrets
    minter: Minter
    revocations: RevocationTable
    policy: ProvisioningPolicy
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def task_changed(self, cluster_arn: str, task_arn: str) -> ProvisioningSummary:
        """One task an event named: read again from ECS (the event says only which task), then provisioned."""
        run = _Run()
        run.summary.tasks = 1
        named = EcsTask(task_arn, cluster_arn, "", None, None, {})
        if not self.policy.clusters.serves(cluster_arn):
            run.skip(
                named, SkipReason.CLUSTER_NOT_SERVED, "the task's cluster is not in KUMA_IAM_ECS_CLUSTERS"
            )
            return run.summary
        try:
            tasks = self.ecs.describe(cluster_arn, [task_arn])
        except UpstreamError as error:
            run.fail("cluster", cluster_arn, error)
            run.skip(named, _upstream_reason(error), error.message)
            return run.summary
        if not tasks:
            run.skip(named, SkipReason.TASK_NOT_FOUND, "ECS does not know the task (stopped long ago?)")
            return run.summary
        self._provision(tasks, run)
        return run.summary

    def sweep(self) -> ProvisioningSummary:
        """Every running and pending task of every served cluster; a cluster that cannot be read is reported
        and the others are still swept."""
        run = _Run()
        for cluster in self.policy.clusters.arns:
            try:
                tasks = self.ecs.describe(str(cluster), self.ecs.task_arns(str(cluster)))
            except UpstreamError as error:
                run.fail("cluster", str(cluster), error)
                continue
            run.summary.tasks += len(tasks)
            self._provision(tasks, run)
        return run.summary

    # --- tasks -> services -> secrets ---

    def _provision(self, tasks: Sequence[EcsTask], run: _Run) -> None:
        by_service: dict[str, list[tuple[EcsTask, Agreed]]] = defaultdict(list)
        failed_services: dict[str, UpstreamError] = {}
        for task in tasks:
            claim = task_claim(task)
            if isinstance(claim, Skip):
                run.skip(task, claim.reason, claim.detail)
                continue
            try:
                decided = self._agreement(claim, run)
            except UpstreamError as failure:
                failed_services.setdefault(claim.service, failure)
                run.skip(task, _upstream_reason(failure), failure.message, claim.service)
                continue
            if decided is not None:
                by_service[claim.service].append((task, decided))
        for service, first_failure in failed_services.items():
            run.fail("service", service, first_failure)
            # Fail closed for the service: what could not be read might have disagreed.
            for task, _ in by_service.pop(service, []):
                run.skip(task, _upstream_reason(first_failure), first_failure.message, service)
        for service, members in by_service.items():
            self._serve(service, members, run)

    def _agreement(self, claim: TaskClaim, run: _Run) -> Agreed | None:
        """The task's identity if its role agrees; a skip (and, for a disagreement, a finding) if not."""
        task, service = claim.task, claim.service
        role_ref = task_role(self.ecs.role_arn(task), self.policy.authorized_accounts)
        if isinstance(role_ref, Skip):
            run.skip(task, role_ref.reason, role_ref.detail, service)
            return None
        task_account = task.arn.split(":")[4]
        if role_ref.account != task_account:
            run.skip(
                task,
                SkipReason.INVALID_TASK_ROLE,
                f"the task role is in account {role_ref.account}, not the task's {task_account}",
                service,
            )
            return None
        try:
            role = self.roles(role_ref)
        except Denied as denied:
            run.skip(task, SkipReason.ROLE_NOT_FOUND, denied.message, service)
            return None
        decided = identity_agreement(claim, role)
        if isinstance(decided, Disagreement):
            run.find(service, decided)
            run.skip(task, decided.reason, decided.detail, service)
            logger.warning(
                "task identity mismatch",
                extra={"task": task.arn, "kumaService": service, "roleArn": role.arn,
                       "reason": decided.reason.value, "detail": decided.detail},
            )  # fmt: skip
            return None
        return decided

    def _serve(self, service: str, members: list[tuple[EcsTask, Agreed]], run: _Run) -> None:
        """One decision, and at most one token, for all of a service's tasks: they share its secret."""
        identities = {agreed.identity for _, agreed in members}
        if len(identities) > 1:
            meshes = sorted(f"{identity.mesh}/{identity.workload or '-'}" for identity in identities)
            for task, _ in members:
                run.skip(
                    task,
                    SkipReason.CONFLICTING_IDENTITIES,
                    f"tasks of service {service} claim different meshes or workloads ({', '.join(meshes)}); "
                    "one secret holds one token",
                    service,
                )
            return
        (identity,) = identities
        agreed = members[0][1]
        if identity.mesh not in self.policy.meshes:
            for task, _ in members:
                run.skip(
                    task,
                    SkipReason.MESH_NOT_SERVED,
                    f"mesh {identity.mesh} is not in KUMA_IAM_MESHES ({', '.join(self.policy.meshes)})",
                    service,
                )
            return
        try:
            outcome = self._refresh(identity, agreed, run)
        except UpstreamError as error:
            run.fail("service", service, error)
            outcome = _upstream_reason(error)
        if isinstance(outcome, Issued):
            run.summary.issued.append(outcome)
            return
        for task, _ in members:
            run.skip(task, outcome, f"secret {self.secrets.name_for(service)}: {outcome.value}", service)

    def _refresh(self, identity: ServiceIdentity, agreed: Agreed, run: _Run) -> Issued | SkipReason:
        name = self.secrets.name_for(identity.service)
        current = self.secrets.read(name)
        if current is None:
            logger.warning("secret missing", extra={"secret": name, "kumaService": identity.service})
            return SkipReason.SECRET_MISSING
        if current.document is None:
            logger.warning("secret is not a JSON object; left as it is", extra={"secret": name})
            return SkipReason.SECRET_NOT_JSON_OBJECT
        verdict = judge_token(
            current.document.get(TOKEN_KEY),
            agreed.token_identity,
            keys=self.minter.verification_keys(),
            now=self.clock(),
            margin=self.policy.margin,
        )
        if verdict.good:
            verdict = verdict.revoked_if(self._revoked(identity.mesh, run))
        if verdict.good:
            return SkipReason.TOKEN_VALID
        if not current.has_room_for_a_token():
            logger.warning(
                "secret has no room for a token; left as it is",
                extra={"secret": name, "kumaService": identity.service, "limitBytes": MAX_SECRET_BYTES},
            )
            return SkipReason.SECRET_TOO_LARGE
        issued = self.minter.mint(agreed.token_identity, self.policy.valid_for)
        if not self.secrets.put_token(current, issued.token):
            logger.info("secret refreshed by another invocation", extra={"secret": name})
            return SkipReason.REFRESHED_CONCURRENTLY
        metrics_count(TOKEN_PROVISIONED)
        result = Issued(identity.service, identity.mesh, name, issued.jti, issued.expires_at)
        logger.info(
            "token provisioned",
            extra={"kumaService": result.service, "mesh": result.mesh, "secret": name, "jti": issued.jti,
                   "expiresAt": result.wire()["expiresAt"], "kid": issued.kid, "replacedJti": verdict.jti,
                   "replaced": verdict.stale.value if verdict.stale else None},
        )  # fmt: skip
        return result

    def _revoked(self, mesh: str, run: _Run) -> frozenset[str]:
        if mesh not in run.revoked:
            run.revoked[mesh] = frozenset(self.revocations.revoked(mesh_scope(mesh)))
        return run.revoked[mesh]


def _upstream_reason(error: UpstreamError) -> SkipReason:
    if isinstance(error, UpstreamThrottled):
        return SkipReason.UPSTREAM_THROTTLED
    return SkipReason.UPSTREAM_UNAVAILABLE


@dataclass
class ProvisionerFunction:
    """TokenProvisionerFunction's whole job: parse the event, provision, publish findings, answer with the
    summary. A second delivery of an event finds the token it put and puts none (no idempotency table)."""

    provisioner: TokenProvisioner
    outputs: FindingOutputs

    def handle(self, event: object, context: LambdaContext | None = None) -> dict[str, Any]:
        """The summary; a malformed event gets an `error` naming its problem (retrying it cannot help). An
        event whose service AWS failed raises that UpstreamError once reported, so Lambda delivers it again;
        a sweep answers (the next sweep is its retry)."""
        try:
            parsed = parse_provisioner_event(event)
        except InvalidRequest as error:
            return refused_event(error, {"tasks": 0, "issued": [], "skipped": []})
        if isinstance(parsed, ScheduledEvent):
            trigger = f"scheduled sweep {parsed.id}"
            summary = self.provisioner.sweep()
        else:
            assert isinstance(parsed, TaskStateChangeEvent)
            trigger = f"task state change {parsed.id}"
            summary = self.provisioner.task_changed(parsed.detail.clusterArn, parsed.detail.taskArn)
        self._report(summary, trigger)
        if summary.failed and not isinstance(parsed, ScheduledEvent):
            failure = summary.failed[0]
            kind = UpstreamThrottled if failure.throttled else UpstreamUnavailable
            raise kind(failure.upstream, f"{failure.name}: {failure.message}")
        return summary.wire()

    def _report(self, summary: ProvisioningSummary, trigger: str) -> None:
        skipped = Counter(skipped.reason for skipped in summary.skipped)
        for reason, count in sorted(skipped.items()):
            record_metric(PROVISIONING_SKIPPED, count, reason=reason.value)
        logger.info(
            "provisioning done",
            extra={
                "trigger": trigger,
                "tasks": summary.tasks,
                "issued": len(summary.issued),
                "skipped": {reason.value: count for reason, count in sorted(skipped.items())},
                "failed": [failure.name for failure in summary.failed],
                "findings": len(summary.findings),
            },
        )
        roles = {(finding.account, finding.role_name.casefold()) for finding in summary.findings}
        self.outputs.publish(
            ComplianceSummary(evaluated=len(roles), findings=list(summary.findings)), trigger=trigger
        )


def build_provisioner(
    settings: TokenProvisionerSettings,
    session: AwsSession | None = None,
    *,
    clients: IamClients | None = None,
) -> TokenProvisioner:
    """The provisioner from settings; one per container, so caches, keys and connections are reused."""
    session = session or BotocoreSession(region_name=settings.region)
    config = aws_client_config(settings.upstream_timeout_seconds, attempts=settings.upstream_attempts)
    clients = clients or _iam_clients(settings, session, config)
    try:
        clusters = ServedClusters.resolve(
            settings.ecs_clusters,
            partition=clients.partition,
            region=settings.region,
            account=clients.home_account(),
        )
    except ValueError as error:
        raise ConfigError(f"invalid configuration: KUMA_IAM_ECS_CLUSTERS: {error}") from None
    directory = RoleDirectory(clients.for_account, ttl_seconds=settings.role_cache_ttl_seconds)
    dynamodb = session.client("dynamodb", endpoint_url=settings.dynamodb_endpoint_url, config=config)
    return TokenProvisioner(
        ecs=EcsTasks(session.client("ecs", endpoint_url=settings.ecs_endpoint_url, config=config)),
        roles=lambda ref: directory.get(ref.account, ref.name, role_id=None),
        secrets=ServiceSecrets(
            session.client("secretsmanager", endpoint_url=_secrets_endpoint(settings), config=config),
            settings.secret_prefix,
        ),
        minter=_minter(settings, session, config),
        revocations=RevocationTable(dynamodb, settings.revocation_table_name),
        policy=ProvisioningPolicy(
            clusters=clusters,
            authorized_accounts=settings.authorized_account_ids,
            meshes=settings.meshes,
            valid_for=settings.token_valid_for,
            margin=settings.token_refresh_margin,
        ),
    )


def _minter(settings: TokenProvisionerSettings, session: AwsSession, config: Config) -> Minter:
    """The issuer's own signers, or the control plane's API: the provisioner does not care which."""
    if settings.control_plane is not None:
        return control_plane_minter(
            settings.control_plane, session, config, settings.upstream_timeout_seconds
        )
    assert settings.signing is not None  # one of the two, by the settings' own rule
    return build_minter(settings.signing, session, timeout_seconds=settings.upstream_timeout_seconds)


def control_plane_minter(
    settings: ControlPlaneSettings, session: AwsSession, config: Config, timeout_seconds: float
) -> ControlPlaneMinter:
    secrets = session.client(
        "secretsmanager", endpoint_url=settings.secretsmanager_endpoint_url, config=config
    )
    ca_secret = settings.ca_secret_arn
    ca = SecretText(secrets, ca_secret, "control plane CA bundle") if ca_secret is not None else None
    return ControlPlaneMinter(
        settings.url,
        SecretText(secrets, settings.token_secret_arn, "control plane admin token"),
        control_plane_http(lambda: ca.get() if ca is not None else None),
        timeout_seconds=timeout_seconds,
    )


def _secrets_endpoint(settings: TokenProvisionerSettings) -> str | None:
    nested = settings.signing or settings.control_plane
    return nested.secretsmanager_endpoint_url if nested is not None else None


def build_provisioner_function(
    settings: TokenProvisionerSettings, session: AwsSession | None = None
) -> ProvisionerFunction:
    """Wire the function from settings; one per container, so clients and caches are reused."""
    session = session or BotocoreSession(region_name=settings.region)
    config = aws_client_config(settings.upstream_timeout_seconds, attempts=settings.upstream_attempts)
    clients = _iam_clients(settings, session, config)
    provisioner = build_provisioner(settings, session, clients=clients)
    security_hub_target: Callable[[], SecurityHubTarget] | None = None
    if settings.security_hub:
        hub = session.client("securityhub", endpoint_url=settings.securityhub_endpoint_url, config=config)

        def security_hub() -> SecurityHubTarget:
            return SecurityHubTarget(hub, clients.home_account(), settings.region, clients.partition)

        security_hub_target = security_hub
    return ProvisionerFunction(
        provisioner=provisioner,
        outputs=FindingOutputs(
            source="token-provisioner",
            sns=session.client("sns", endpoint_url=settings.sns_endpoint_url, config=config)
            if settings.findings_topic_arn
            else None,
            topic_arn=settings.findings_topic_arn,
            events=session.client("events", endpoint_url=settings.events_endpoint_url, config=config),
            event_bus=settings.findings_event_bus,
            security_hub=security_hub_target,
        ),
    )


def provisioner_function_from_env(environ: Mapping[str, str]) -> ProvisionerFunction:
    return build_provisioner_function(TokenProvisionerSettings.from_env(environ))


def _iam_clients(settings: TokenProvisionerSettings, session: AwsSession, config: Config) -> IamClients:
    """IAM at home: a task's role lives in its task's account, which is the served clusters' (no reader role
    is ever assumed, and the template grants none)."""
    return IamClients(
        session,
        role_name=settings.reader_role_name,
        session_name=SESSION_NAME,
        config=config,
        iam_endpoint_url=settings.iam_endpoint_url,
        sts_endpoint_url=settings.sts_endpoint_url,
        home_account=settings.home_account_id,
    )
