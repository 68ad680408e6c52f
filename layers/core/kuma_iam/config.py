"""Settings, parsed once per container from the environment the handler passes in."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from kuma_iam.aws import ACCOUNT_ID
from kuma_iam.errors import ConfigError, problem_message
from kuma_iam.identity.checks import SERVER_ID
from kuma_iam.rules import DNS_LABEL
from kuma_iam.tokens.duration import format_go_duration, parse_go_duration
from kuma_iam.tokens.references import KeyReference, parse_signing_keys

# IAM's role-name rule ([\w+=,.@-], \w being ASCII letters, digits and _) written out: pydantic's regex
# engine reads \w as any Unicode word character, and compiling that 64 times over cost cold starts 10-20 ms.
ROLE_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{1,64}")
TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")  # DynamoDB's rule for a table name


class AwsSettings(BaseModel):
    """What every function knows about AWS: the authorized accounts, the region and the endpoints."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    authorized_account_ids: Annotated[
        frozenset[str], Field(validation_alias="KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS", min_length=1)
    ]
    region: Annotated[str, Field(validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))] = (
        "us-east-1"
    )
    sts_endpoint_url: Annotated[str | None, Field(validation_alias="AWS_ENDPOINT_URL_STS")] = None
    iam_endpoint_url: Annotated[str | None, Field(validation_alias="AWS_ENDPOINT_URL_IAM")] = None
    dynamodb_endpoint_url: Annotated[str | None, Field(validation_alias="AWS_ENDPOINT_URL_DYNAMODB")] = None
    # The account the function runs in (the template passes AWS::AccountId); learned from STS when unset.
    home_account_id: Annotated[
        str | None, Field(validation_alias="KUMA_IAM_HOME_ACCOUNT_ID", pattern=r"^[0-9]{12}$")
    ] = None

    @field_validator("authorized_account_ids", mode="before")
    @classmethod
    def _split_accounts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        for account in value:
            if not ACCOUNT_ID.fullmatch(account):
                raise ValueError(f"{account!r} is not a 12-digit AWS account id")
        return frozenset(value)


class VerifierSettings(AwsSettings):
    """What the verifier (and the token issuer, which verifies the same way) needs to know."""

    server_id: Annotated[str, Field(validation_alias="KUMA_IAM_SERVER_ID", pattern=f"^{SERVER_ID.pattern}$")]
    reader_role_name: Annotated[
        str, Field(validation_alias="KUMA_IAM_READER_ROLE_NAME", pattern=f"^{ROLE_NAME.pattern}$")
    ] = "kuma-iam-reader"
    role_cache_ttl_seconds: Annotated[
        float, Field(validation_alias="KUMA_IAM_ROLE_CACHE_TTL_SECONDS", ge=0, le=3600)
    ] = 60.0
    # AWS itself accepts a SigV4 signature for 15 minutes; a shorter window narrows replay.
    max_token_age_seconds: Annotated[
        int, Field(validation_alias="KUMA_IAM_MAX_TOKEN_AGE_SECONDS", ge=1, le=900)
    ] = 900
    max_clock_skew_seconds: Annotated[
        int, Field(validation_alias="KUMA_IAM_MAX_CLOCK_SKEW_SECONDS", ge=0, le=900)
    ] = 300
    # Read timeout of each AWS call (connects get at most 1 s). With everything hanging, a verification
    # takes at most 6 * (1 + this) + 2 s (STS; AssumeRole and GetRole with one retry each; the replay put):
    # the cap keeps that inside the function's 25 s timeout, so callers get our 503, not the gateway's 504.
    upstream_timeout_seconds: Annotated[
        float, Field(validation_alias="KUMA_IAM_UPSTREAM_TIMEOUT_SECONDS", gt=0, le=2.5)
    ] = 2.5
    replay_table_name: Annotated[str | None, Field(validation_alias="KUMA_IAM_REPLAY_TABLE")] = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> VerifierSettings:
        return parse_settings(cls, environ)


class ComplianceMode(StrEnum):
    REPORT = "report"  # findings only
    ENFORCE = "enforce"  # findings, and the offending kuma.io/* tags removed


# An IAM or STS principal ARN, `*` wildcards allowed: arn:aws:iam::111111111111:role/platform-admin,
# arn:aws:iam::*:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_*
TAG_ADMIN_PATTERN = re.compile(r"arn:[a-z*-]+:(iam|sts|\*):[a-z0-9*-]*:([0-9]{12}|\*):[\x21-\x7e]+")


class ComplianceSettings(AwsSettings):
    """What tag compliance needs: where to look (accounts, the role it assumes there), what to do, where
    findings go."""

    compliance_role_name: Annotated[
        str, Field(validation_alias="KUMA_IAM_COMPLIANCE_ROLE_NAME", pattern=f"^{ROLE_NAME.pattern}$")
    ] = "kuma-iam-compliance"
    mode: Annotated[ComplianceMode, Field(validation_alias="KUMA_IAM_COMPLIANCE_MODE")] = (
        ComplianceMode.REPORT
    )
    tag_admins: Annotated[tuple[str, ...], Field(validation_alias="KUMA_IAM_TAG_ADMINS")] = ()
    findings_topic_arn: Annotated[
        str | None, Field(validation_alias="KUMA_IAM_FINDINGS_TOPIC_ARN", pattern=r"^arn:[a-z-]+:sns:\S+$")
    ] = None
    findings_event_bus: Annotated[
        str, Field(validation_alias="KUMA_IAM_FINDINGS_EVENT_BUS", pattern=r"^[\w./:-]+$", max_length=1600)
    ] = "default"
    security_hub: Annotated[bool, Field(validation_alias="KUMA_IAM_SECURITY_HUB")] = False
    idempotency_table_name: Annotated[str | None, Field(validation_alias="KUMA_IAM_IDEMPOTENCY_TABLE")] = None
    # A sweep is not latency-bound: longer reads and more retries than the verifier's, inside the function's
    # timeout (the template gives it minutes).
    upstream_timeout_seconds: Annotated[
        float, Field(validation_alias="KUMA_IAM_UPSTREAM_TIMEOUT_SECONDS", gt=0, le=60)
    ] = 10.0
    # Attempts per AWS call, the first included (botocore's standard retry mode, with its backoff).
    upstream_attempts: Annotated[int, Field(validation_alias="KUMA_IAM_UPSTREAM_ATTEMPTS", ge=1, le=10)] = 5
    # Roles per GetAccountAuthorizationDetails page (IAM's largest is 1,000; it may return fewer).
    sweep_page_size: Annotated[int, Field(validation_alias="KUMA_IAM_SWEEP_PAGE_SIZE", ge=1, le=1000)] = 1000
    sns_endpoint_url: Annotated[str | None, Field(validation_alias="AWS_ENDPOINT_URL_SNS")] = None
    events_endpoint_url: Annotated[str | None, Field(validation_alias="AWS_ENDPOINT_URL_EVENTBRIDGE")] = None
    securityhub_endpoint_url: Annotated[
        str | None, Field(validation_alias="AWS_ENDPOINT_URL_SECURITYHUB")
    ] = None

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("security_hub", mode="before")
    @classmethod
    def _enabled_or_disabled(cls, value: Any) -> Any:
        # The template's parameter says Enabled / Disabled; true / false read as well.
        if isinstance(value, str):
            return {"enabled": True, "disabled": False}.get(value.strip().lower(), value)
        return value

    @field_validator("tag_admins", mode="before")
    @classmethod
    def _split_admins(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        for pattern in value:
            if not TAG_ADMIN_PATTERN.fullmatch(pattern):
                raise ValueError(
                    f"{pattern[:100]!r} is not an IAM principal ARN pattern "
                    "(arn:<partition>:iam::<account or *>:<role/..., user/..., root>; '*' matches anything)"
                )
        return tuple(value)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ComplianceSettings:
        return parse_settings(cls, environ)


class TokenSigningSettings(BaseModel):
    """What signing Kuma tokens needs: numbered keys, the zone, the meshes, lifetimes.
    Shared by every function that signs tokens (the exchange, the provisioner)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    # kid=key pairs (KMS key id, alias or ARN; or a Secrets Manager secret ARN holding a Kuma PEM key).
    signing_keys: Annotated[tuple[KeyReference, ...], Field(validation_alias="KUMA_IAM_SIGNING_KEYS")]
    # Zone tokens (zone ingress and egress) for this zone, signed by keys of their own.
    zone: Annotated[str | None, Field(validation_alias="KUMA_IAM_ZONE")] = None
    zone_signing_keys: Annotated[
        tuple[KeyReference, ...] | None, Field(validation_alias="KUMA_IAM_ZONE_SIGNING_KEYS")
    ] = None
    # The meshes whose control-plane entries GET /v1/keys publishes; tokens are issued for these only.
    meshes: Annotated[tuple[str, ...], Field(validation_alias="KUMA_IAM_MESHES")] = ("default",)
    token_max_valid_for: Annotated[timedelta, Field(validation_alias="KUMA_IAM_TOKEN_MAX_VALID_FOR")] = (
        timedelta(hours=24)
    )
    kms_endpoint_url: Annotated[str | None, Field(validation_alias="AWS_ENDPOINT_URL_KMS")] = None
    secretsmanager_endpoint_url: Annotated[
        str | None, Field(validation_alias="AWS_ENDPOINT_URL_SECRETS_MANAGER")
    ] = None

    @field_validator("signing_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: Any) -> Any:
        return parse_signing_keys(value) if isinstance(value, str) else value

    @field_validator("zone_signing_keys", mode="before")
    @classmethod
    def _parse_zone_keys(cls, value: Any) -> Any:
        return (
            parse_signing_keys(value, variable="KUMA_IAM_ZONE_SIGNING_KEYS")
            if isinstance(value, str)
            else value
        )

    @field_validator("zone")
    @classmethod
    def _zone_name(cls, value: str | None) -> str | None:
        if value is not None and not DNS_LABEL.fullmatch(value):
            raise ValueError(f"{value[:64]!r} is not a zone name (a DNS label)")
        return value

    @field_validator("meshes", mode="before")
    @classmethod
    def _split_meshes(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        for mesh in value:
            if not DNS_LABEL.fullmatch(mesh):
                raise ValueError(f"{mesh[:64]!r} is not a mesh name (a DNS label)")
        if not value:
            raise ValueError("name at least one mesh")
        return tuple(dict.fromkeys(value))

    @field_validator("token_max_valid_for", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = parse_go_duration(value)
        if isinstance(value, timedelta) and value < MIN_TOKEN_VALIDITY:
            raise ValueError(f"must be at least {format_go_duration(MIN_TOKEN_VALIDITY)}")
        return value

    @model_validator(mode="after")
    def _zone_needs_its_keys(self) -> TokenSigningSettings:
        if (self.zone is None) != (self.zone_signing_keys is None):
            raise ValueError("KUMA_IAM_ZONE and KUMA_IAM_ZONE_SIGNING_KEYS are set together, or neither")
        shared = {key.location for key in self.signing_keys} & {
            key.location for key in self.zone_signing_keys or ()
        }
        if shared:
            # A zone token has no Mesh, Name or Tags: signed by a dataplane key, it would admit any dataplane.
            raise ValueError(f"zone tokens need keys of their own; also a dataplane key: {sorted(shared)[0]}")
        return self


class TokenIssuerSettings(VerifierSettings, TokenSigningSettings):
    """The token exchange verifies identities exactly as the verifier does, then signs."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> TokenIssuerSettings:
        return parse_settings(cls, environ)


# Shorter than the control plane's clock skew allowance, a token could expire before it is first used.
MIN_TOKEN_VALIDITY = timedelta(minutes=1)


# The SDK's endpoint overrides: botocore honours them on every client, whatever a settings model reads.
ENDPOINT_OVERRIDE = re.compile(r"AWS_ENDPOINT_URL(_[A-Z0-9_]+)?")


def parse_settings[T: BaseModel](model: type[T], environ: Mapping[str, str]) -> T:
    """Validate `environ` into `model`, or fail with one message naming every bad variable."""
    refuse_endpoint_overrides_in_lambda(environ)
    # An empty variable means unset, as the SDKs treat it (and as CloudFormation writes an optional value).
    try:
        return model.model_validate({name: value for name, value in environ.items() if value != ""})
    except ValidationError as error:
        problems = []
        for item in error.errors():
            # A rule across variables (loc is empty) names them in its own message.
            prefix = f"{_env_name(model, str(item['loc'][0]))}: " if item["loc"] else ""
            problems.append(f"{prefix}{problem_message(item)}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


def _env_name(model: type[BaseModel], field_or_alias: str) -> str:
    field = model.model_fields.get(field_or_alias)
    if field is None:
        return field_or_alias
    alias = field.validation_alias
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return field_or_alias


def refuse_endpoint_overrides_in_lambda(environ: Mapping[str, str]) -> None:
    """In a deployed function, an endpoint override would make any URL the identity authority: refuse it.

    Lambda sets AWS_LAMBDA_FUNCTION_NAME; `sam local` sets it too, with AWS_SAM_LOCAL=true, and is the one
    place (with the local stack and the tests, which are not Lambda) where the overrides point at a stand-in.
    """
    if not environ.get("AWS_LAMBDA_FUNCTION_NAME") or environ.get("AWS_SAM_LOCAL") == "true":
        return
    overrides = sorted(name for name, value in environ.items() if value and ENDPOINT_OVERRIDE.fullmatch(name))
    if overrides:
        raise ConfigError(
            f"invalid configuration: {', '.join(overrides)}: endpoint overrides are for sam local and tests "
            "only; a deployed function talks to AWS's own endpoints"
        )
