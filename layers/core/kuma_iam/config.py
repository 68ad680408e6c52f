"""Settings, parsed once per container from the environment the handler passes in."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from kuma_iam.aws import ACCOUNT_ID
from kuma_iam.errors import ConfigError


class VerifierSettings(BaseModel):
    """What the verifier (and the token issuer, which verifies the same way) needs to know."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    authorized_account_ids: Annotated[
        frozenset[str], Field(validation_alias="KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS", min_length=1)
    ]
    # Printable ASCII without spaces: SigV4 folds whitespace, so "a b" and "a  b" would sign alike.
    server_id: Annotated[str, Field(validation_alias="KUMA_IAM_SERVER_ID", pattern=r"^[\x21-\x7e]{1,256}$")]
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
    reader_role_name: Annotated[
        str, Field(validation_alias="KUMA_IAM_READER_ROLE_NAME", pattern=r"^[\w+=,.@-]{1,64}$")
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

    @field_validator("authorized_account_ids", mode="before")
    @classmethod
    def _split_accounts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        for account in value:
            if not ACCOUNT_ID.fullmatch(account):
                raise ValueError(f"{account!r} is not a 12-digit AWS account id")
        return frozenset(value)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> VerifierSettings:
        return parse_settings(cls, environ)


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
            name = _env_name(model, str(item["loc"][0])) if item["loc"] else "?"
            problems.append(f"{name}: {item['msg']}")
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
