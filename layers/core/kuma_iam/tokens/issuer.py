"""The exchange: a verified IAM identity, from the role that signed the call, for a standard Kuma token.

Identity and rules are the verifier's own (`IdentityVerifier.authorize`); what is added is the binding to
the API caller (checked before a replay-protected token is spent), the issuer's own limits (meshes, zone,
lifetime), and signing (`TokenMinter`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, field_validator

from kuma_iam.aws import BotocoreSession, aws_client_config
from kuma_iam.config import TokenIssuerSettings, TokenSigningSettings
from kuma_iam.errors import Denied, DenyReason, InvalidRequest
from kuma_iam.observability import TOKEN_DENIED, TOKEN_ISSUED, logger, metrics_count
from kuma_iam.rules import SERVICE_TAG, ProxyType
from kuma_iam.tokens.binding import ApiCaller, caller_role, check_bound
from kuma_iam.tokens.claims import TokenIdentity, dataplane_identity, zone_identity
from kuma_iam.tokens.duration import format_go_duration, parse_go_duration
from kuma_iam.tokens.keys import KeyRing
from kuma_iam.tokens.mint import IssuedToken, TokenMinter
from kuma_iam.tokens.publication import published_keys
from kuma_iam.tokens.references import KeyReference, KeySource
from kuma_iam.tokens.signers import KmsSigner, PemSigner, Signer
from kuma_iam.verify import DataplaneSpec, IdentityVerifier, VerifyRequest, build_verifier

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from kuma_iam.aws import AwsSession

DEFAULT_VALID_FOR = timedelta(hours=1)
MIN_VALID_FOR = timedelta(minutes=1)


class TokenRequest(VerifyRequest):
    """`POST /v1/tokens`: the identity token and Dataplane of a verify request, the lifetime, and the zone."""

    # The wire's name, not an alias: pydantic would silently ignore a `valid_for` key beside an alias.
    validFor: timedelta | None = None  # noqa: N815
    zone: Annotated[str | None, Field(min_length=1, max_length=253)] = None

    @field_validator("validFor", mode="before")
    @classmethod
    def _go_duration(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError('validFor must be a duration string like "1h" or "90m"')
        duration = parse_go_duration(value)
        if duration < MIN_VALID_FOR:
            raise ValueError(f"validFor must be at least {format_go_duration(MIN_VALID_FOR)}")
        return duration

    @field_validator("dataplane")
    @classmethod
    def _only_the_service_tag(cls, spec: DataplaneSpec) -> DataplaneSpec:
        # The role vouches for kuma.io/service alone; binding anything else would be the caller's say-so.
        others = sorted(set(spec.tags) - {SERVICE_TAG})
        if others:
            raise ValueError(f"a token binds only the tag {SERVICE_TAG}, not {others[0][:64]!r}")
        return spec


@dataclass(frozen=True, slots=True)
class IssuerLimits:
    meshes: tuple[str, ...]
    zone: str | None
    max_valid_for: timedelta

    def valid_for(self, asked: timedelta | None) -> timedelta:
        if asked is None:
            return min(DEFAULT_VALID_FOR, self.max_valid_for)
        if asked > self.max_valid_for:
            raise InvalidRequest(
                f"validFor {format_go_duration(asked)} is longer than this issuer's maximum "
                f"{format_go_duration(self.max_valid_for)}"
            )
        return asked

    def check(self, request: TokenRequest) -> None:
        """What the issuer serves at all, decided before any network call."""
        spec = request.dataplane
        if request.zone is not None and request.zone != self.zone:
            raise Denied(
                DenyReason.ZONE_MISMATCH,
                f"this issuer signs for zone {self.zone!r}, the request names {request.zone[:64]!r}"
                if self.zone is not None
                else "this issuer signs no zone tokens",
            )
        if spec.type is ProxyType.DATAPLANE and spec.mesh not in self.meshes:
            raise Denied(
                DenyReason.MESH_MISMATCH,
                f"this issuer signs for meshes {', '.join(self.meshes)}; not {str(spec.mesh)[:64]!r}",
            )
        if spec.type is not ProxyType.DATAPLANE and self.zone is None:
            raise InvalidRequest(f"this issuer signs no zone tokens, so none for a zone {spec.type.value}")


@dataclass
class TokenIssuer:
    verifier: IdentityVerifier
    minter: TokenMinter
    limits: IssuerLimits

    def exchange(self, request: TokenRequest, caller: ApiCaller | None) -> IssuedToken:
        """Raise InvalidRequest, Denied or UpstreamError; return a token only for what the role allows."""
        spec = request.dataplane
        try:
            valid_for = self.limits.valid_for(request.validFor)
            self.limits.check(request)
            bound_to = caller_role(caller)
            authorized = self.verifier.authorize(
                request.token, spec.claim(), before_use=lambda identity: check_bound(bound_to, identity)
            )
        except Denied as denied:
            metrics_count(TOKEN_DENIED, reason=denied.reason.value)
            logger.info(
                "token denied",
                extra={"reason": denied.reason.value, "detail": denied.message, "dataplane": spec.name},
            )
            raise
        identity: TokenIdentity
        if authorized.tags.type is ProxyType.DATAPLANE:
            identity = dataplane_identity(
                authorized.tags, name=spec.name, services=spec.claim().services, workload=spec.workload
            )
        else:
            assert self.limits.zone is not None  # checked above
            identity = zone_identity(authorized.tags, self.limits.zone)
        issued = self.minter.mint(identity, valid_for)
        metrics_count(TOKEN_ISSUED)
        logger.info(
            "token issued",
            extra={
                "account": authorized.caller.account,
                "roleArn": authorized.role.arn,
                "sessionName": authorized.caller.session_name,
                "tokenType": "dataplane" if authorized.tags.type is ProxyType.DATAPLANE else "zone",
                "mesh": authorized.tags.mesh,
                "dataplane": spec.name,
                "kid": issued.kid,
                "jti": issued.jti,  # an id to revoke by, not a credential
                "expiresAt": issued.body()["expiresAt"],
            },
        )
        return issued

    def published_keys(self) -> dict[str, Any]:
        zone_keys = self.minter.zone_keys
        return published_keys(
            self.minter.dataplane_keys.get(),
            self.limits.meshes,
            zone_keys.get() if zone_keys is not None else None,
            self.limits.zone,
        )


def signer_loader(kms: KMSClient, secrets: SecretsManagerClient) -> Callable[[KeyReference], Signer]:
    """How each kind of key reference becomes a signer."""

    def load(reference: KeyReference) -> Signer:
        if reference.source is KeySource.KMS:
            return KmsSigner.load(kms, reference.location)
        return PemSigner.load(secrets, reference.location)

    return load


def build_minter(
    settings: TokenSigningSettings, session: AwsSession, *, timeout_seconds: float
) -> TokenMinter:
    """Signers from settings; keys load on first use and stay for the container."""
    config = aws_client_config(timeout_seconds)
    kms = session.client("kms", endpoint_url=settings.kms_endpoint_url, config=config)
    secrets = session.client(
        "secretsmanager", endpoint_url=settings.secretsmanager_endpoint_url, config=config
    )
    load = signer_loader(kms, secrets)
    dataplane_keys = KeyRing(settings.signing_keys, load, name="dataplane token")
    zone_keys = (
        KeyRing(settings.zone_signing_keys, load, name="zone token", distinct_from=dataplane_keys)
        if settings.zone_signing_keys is not None
        else None
    )
    return TokenMinter(dataplane_keys, zone_keys)


def build_token_issuer(settings: TokenIssuerSettings, session: AwsSession | None = None) -> TokenIssuer:
    """One per container, like the verifier: caches, key handles and connection pools are reused."""
    session = session or BotocoreSession(region_name=settings.region)
    return TokenIssuer(
        verifier=build_verifier(settings, session),
        minter=build_minter(settings, session, timeout_seconds=settings.upstream_timeout_seconds),
        limits=IssuerLimits(settings.meshes, settings.zone, settings.token_max_valid_for),
    )


def token_issuer_from_env(environ: Mapping[str, str]) -> TokenIssuer:
    return build_token_issuer(TokenIssuerSettings.from_env(environ))
