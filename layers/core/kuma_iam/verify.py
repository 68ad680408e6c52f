"""Identity token + role + claimed Dataplane -> decision: the verifier's whole job, without HTTP."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from kuma_iam.aws import BotocoreSession, aws_client_config
from kuma_iam.config import VerifierSettings
from kuma_iam.errors import Denied, DenyReason
from kuma_iam.identity.caller import AssumedRoleCaller, assumed_role_caller
from kuma_iam.identity.checks import TokenPolicy, check_signed_request
from kuma_iam.identity.replay import ReplayGuard
from kuma_iam.identity.sts import StsForwarder
from kuma_iam.identity.token import decode_token
from kuma_iam.observability import ALLOWED, DENIED, STS_LATENCY, logger, metrics_count, timed
from kuma_iam.roles import IamClients, RoleDirectory, RoleRecord
from kuma_iam.rules import DataplaneClaim, ProxyType, RoleTags, claim_mismatch, role_tags

if TYPE_CHECKING:
    from kuma_iam.aws import AwsSession

Name = Annotated[str, StringConstraints(min_length=1, max_length=253)]
# The session name of the verifier's AssumeRole into reader roles; the member template's trust pins it.
VERIFIER_SESSION_NAME = "kuma-iam-verifier"


class DataplaneSpec(BaseModel):
    """The Dataplane identity the sidecar claims, as the control plane sends it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ProxyType = ProxyType.DATAPLANE
    mesh: Name | None = None
    name: Name
    tags: Annotated[dict[Name, Annotated[list[Name], Field(max_length=64)]], Field(max_length=64)] = {}
    workload: Name | None = None

    @model_validator(mode="after")
    def _dataplane_needs_mesh(self) -> DataplaneSpec:
        if self.type == ProxyType.DATAPLANE and self.mesh is None:
            raise ValueError("mesh is required for a dataplane")
        return self

    def claim(self) -> DataplaneClaim:
        return DataplaneClaim(
            type=self.type,
            mesh=self.mesh,
            services=tuple(self.tags.get("kuma.io/service", ())),
            workload=self.workload,
        )


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    token: str | dict[str, Any]
    dataplane: DataplaneSpec

    @field_validator("token", mode="before")
    @classmethod
    def _token_shape(cls, value: Any) -> Any:
        if not isinstance(value, str | dict):
            raise ValueError("token must be a compact string or a Vault login object")
        return value


@dataclass(frozen=True, slots=True)
class VerifiedIdentity:
    """Who the sidecar is, as IAM and STS say, and what its role lets it be: an allow's wire fields."""

    account: str
    arn: str
    roleId: str  # noqa: N815 - the wire format's names
    roleName: str  # noqa: N815
    sessionArn: str  # noqa: N815
    sessionName: str  # noqa: N815
    type: ProxyType
    mesh: str | None
    service: str | None
    workload: str | None

    def wire(self) -> dict[str, Any]:
        """Every field, nulls included, as the verify API answers them."""
        return {
            "account": self.account,
            "arn": self.arn,
            "roleId": self.roleId,
            "roleName": self.roleName,
            "sessionArn": self.sessionArn,
            "sessionName": self.sessionName,
            "type": self.type.value,
            "mesh": self.mesh,
            "service": self.service,
            "workload": self.workload,
        }


# Plain dataclasses, not models: what the verifier built itself needs no validation, only its wire form.
@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    identity: VerifiedIdentity | None = None
    reason: DenyReason | None = None
    message: str | None = None

    def body(self) -> dict[str, Any]:
        """An allow carries the whole identity (nulls included); a deny its reason and message."""
        if self.identity is not None:
            return {"allowed": True, "identity": self.identity.wire()}
        return {"allowed": False, "reason": self.reason, "message": self.message}


@dataclass(frozen=True, slots=True)
class AuthenticatedRole:
    caller: AssumedRoleCaller
    role: RoleRecord
    tags: RoleTags

    def identity(self) -> VerifiedIdentity:
        return VerifiedIdentity(
            account=self.caller.account,
            arn=self.role.arn,
            roleId=self.role.role_id,
            roleName=self.role.name,
            sessionArn=self.caller.session_arn,
            sessionName=self.caller.session_name,
            type=self.tags.type,
            mesh=self.tags.mesh,
            service=self.tags.service,
            workload=self.tags.workload,
        )


@dataclass
class IdentityVerifier:
    """Decides who a token's signer is and whether it may be the claimed Dataplane; the token issuer reuses
    `authorize` unchanged."""

    policy: TokenPolicy
    authorized_accounts: frozenset[str]
    sts: StsForwarder
    roles: RoleDirectory
    replay: ReplayGuard | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def authorize(
        self,
        token: object,
        claim: DataplaneClaim,
        *,
        before_use: Callable[[AuthenticatedRole], None] | None = None,
    ) -> AuthenticatedRole:
        """Raise InvalidRequest, Denied or UpstreamError; return only a role identity that fits the claim.
        `before_use` is a caller's own check of the identity (the token issuer's caller binding), made before
        the replay table spends the token, so that a thief's refused attempt cannot burn its owner's token."""
        call = check_signed_request(decode_token(token), self.policy, self.clock())
        with timed(STS_LATENCY):
            answer = self.sts.get_caller_identity(call)
        caller = assumed_role_caller(answer, call.endpoint.partition)
        if caller.account not in self.authorized_accounts:
            raise Denied(DenyReason.ACCOUNT_NOT_AUTHORIZED, f"account {caller.account} is not authorized")
        role = self.roles.get(caller.account, caller.role_name, role_id=caller.role_id)
        if role.role_id != caller.role_id:
            raise Denied(
                DenyReason.ROLE_MISMATCH,
                f"role {role.name} was re-created since these credentials were issued (RoleId differs)",
            )
        tags = role_tags(role.tags)
        if isinstance(tags, list):
            problems = "; ".join(f"{violation.rule}: {violation.message}" for violation in tags)
            raise Denied(
                DenyReason.INVALID_ROLE_TAGS, f"role {role.name} has invalid kuma.io tags: {problems}"
            )
        mismatch = claim_mismatch(tags, claim)
        if mismatch is not None:
            raise Denied(mismatch.reason, mismatch.message)
        authorized = AuthenticatedRole(caller=caller, role=role, tags=tags)
        if before_use is not None:
            before_use(authorized)
        # Last, so that a use that failed for any other reason (a throttled IAM, a deny) leaves the token
        # usable for the retry; the conditional put still lets only one of two concurrent uses through.
        if self.replay is not None:
            self.replay.claim(call)
        return authorized

    def verify(self, request: VerifyRequest) -> Decision:
        """A decision for well-formed input; InvalidRequest and UpstreamError propagate to the HTTP layer."""
        try:
            authorized = self.authorize(request.token, request.dataplane.claim())
        except Denied as denied:
            metrics_count(DENIED, reason=denied.reason.value)
            logger.info(
                "identity denied",
                extra={
                    "reason": denied.reason.value,
                    "detail": denied.message,
                    "dataplane": request.dataplane.name,
                },
            )
            return Decision(allowed=False, reason=denied.reason, message=denied.message)
        identity = authorized.identity()
        metrics_count(ALLOWED)
        logger.info(
            "identity allowed",
            extra={
                "account": identity.account,
                "roleArn": identity.arn,
                "sessionName": identity.sessionName,
                "mesh": identity.mesh,
                "dataplane": request.dataplane.name,
            },
        )
        return Decision(allowed=True, identity=identity)


def build_verifier(settings: VerifierSettings, session: AwsSession | None = None) -> IdentityVerifier:
    """Wire the verifier from settings; one per container, so caches and connection pools are reused."""
    session = session or BotocoreSession(region_name=settings.region)
    config = aws_client_config(settings.upstream_timeout_seconds)
    clients = IamClients(
        session,
        role_name=settings.reader_role_name,
        session_name=VERIFIER_SESSION_NAME,
        config=config,
        iam_endpoint_url=settings.iam_endpoint_url,
        sts_endpoint_url=settings.sts_endpoint_url,
        home_account=settings.home_account_id,
    )
    max_age = timedelta(seconds=settings.max_token_age_seconds)
    replay = None
    if settings.replay_table_name:
        # One attempt: a retried conditional put whose first try did land would call the first use a replay.
        dynamodb = session.client(
            "dynamodb",
            endpoint_url=settings.dynamodb_endpoint_url,
            config=aws_client_config(settings.upstream_timeout_seconds, attempts=1),
        )
        replay = ReplayGuard(dynamodb, settings.replay_table_name, max_age)
    return IdentityVerifier(
        policy=TokenPolicy(
            server_id=settings.server_id,
            max_age=max_age,
            max_skew=timedelta(seconds=settings.max_clock_skew_seconds),
            partition=session.get_partition_for_region(settings.region),
        ),
        authorized_accounts=settings.authorized_account_ids,
        sts=StsForwarder(settings.upstream_timeout_seconds, settings.sts_endpoint_url),
        roles=RoleDirectory(clients.for_account, ttl_seconds=settings.role_cache_ttl_seconds),
        replay=replay,
    )


def verifier_from_env(environ: Mapping[str, str]) -> IdentityVerifier:
    return build_verifier(VerifierSettings.from_env(environ))
