"""Typed errors of the core; `kuma_iam.http` maps them to HTTP responses in one place."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import ValidationError
from pydantic_core import ErrorDetails


class DenyReason(StrEnum):
    STS_REJECTED = "sts_rejected"
    UNSUPPORTED_PRINCIPAL = "unsupported_principal"
    ACCOUNT_NOT_AUTHORIZED = "account_not_authorized"
    ROLE_NOT_FOUND = "role_not_found"
    ROLE_MISMATCH = "role_mismatch"
    INVALID_ROLE_TAGS = "invalid_role_tags"
    TYPE_MISMATCH = "type_mismatch"
    MESH_MISMATCH = "mesh_mismatch"
    SERVICE_MISMATCH = "service_mismatch"
    WORKLOAD_MISMATCH = "workload_mismatch"
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 - a reason code, not a secret
    REPLAYED = "replayed"
    # The token issuer's own: the API call was not signed by the identity token's role, or names another zone.
    CALLER_MISMATCH = "caller_mismatch"
    ZONE_MISMATCH = "zone_mismatch"


# The AWS services the functions call (DESIGN.md): an UpstreamError names one, and so does its metric.
Upstream = Literal["sts", "iam", "dynamodb", "kms", "secretsmanager", "ecs", "sns", "events", "securityhub"]


class KumaIamError(Exception):
    """Base of every error the core raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(KumaIamError):
    """The caller sent something malformed: answered 400 with this message."""


def first_problem(error: ValidationError, *, default_where: str = "body") -> str:
    """The first validation problem, its place named precisely and its value never echoed."""
    first = error.errors(include_input=False, include_url=False)[0]
    # Field names can be the caller's own (extra keys, tag names): echo at most a little of each.
    where = ".".join(str(part)[:64] for part in first["loc"]) or default_where
    return f"{where}: {problem_message(first)}"


def problem_message(error: ErrorDetails) -> str:
    """pydantic's message for one problem, without the "Value error, " it puts before our own validators'
    words (`first_problem` and the settings' messages read alike)."""
    raised = error.get("ctx", {}).get("error")
    if error["type"] == "value_error" and isinstance(raised, ValueError):
        return str(raised)
    return error["msg"]


class Denied(KumaIamError):
    """A well-formed request whose identity is not allowed: a decision, not an error status."""

    def __init__(self, reason: DenyReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class UpstreamError(KumaIamError):
    """AWS could not give an answer we can trust; the caller should retry later. Never an allow."""

    status = 503
    code = "upstream_unavailable"

    def __init__(self, service: Upstream, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.service = service
        self.retry_after = retry_after


class UpstreamThrottled(UpstreamError):
    status = 429
    code = "upstream_throttled"


class UpstreamUnavailable(UpstreamError):
    pass


class ConfigError(KumaIamError):
    """The environment does not describe a usable configuration."""
