"""The caller STS vouched for, and the only kind of caller we accept: an assumed IAM role."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kuma_iam.aws import ACCOUNT_ID
from kuma_iam.errors import Denied, DenyReason, UpstreamUnavailable

ASSUMED_ROLE_ARN = re.compile(
    r"arn:(?P<partition>[a-z-]{3,16}):sts::(?P<account>\d{12}):assumed-role/"
    r"(?P<role>[\w+=,.@-]{1,64})/(?P<session>[\w+=,.@-]{1,64})",
    re.ASCII,
)
ROLE_USER_ID = re.compile(r"(?P<role_id>AROA[A-Z0-9]{8,124}):(?P<session>[\w+=,.@-]{1,64})", re.ASCII)


@dataclass(frozen=True, slots=True)
class StsAnswer:
    """GetCallerIdentity's result, as STS returned it."""

    account: str
    arn: str
    user_id: str


@dataclass(frozen=True, slots=True)
class AssumedRoleCaller:
    partition: str
    account: str
    role_name: str
    role_id: str
    session_name: str
    session_arn: str


def assumed_role_caller(answer: StsAnswer, partition: str) -> AssumedRoleCaller:
    """Accept only `arn:<partition>:sts::<account>:assumed-role/<role>/<session>` whose parts agree."""
    arn_fields = answer.arn.split(":", 5)  # arn:partition:service:region:account:resource
    if not ACCOUNT_ID.fullmatch(answer.account) or len(arn_fields) != 6 or arn_fields[4] != answer.account:
        raise UpstreamUnavailable("sts", "STS answered with an account that disagrees with the ARN")
    match = ASSUMED_ROLE_ARN.fullmatch(answer.arn)
    if match is None:
        raise Denied(
            DenyReason.UNSUPPORTED_PRINCIPAL,
            "only an assumed IAM role (an ECS task role) may authenticate, not "
            + _principal_kind(answer.arn),
        )
    if match["partition"] != partition:
        raise Denied(
            DenyReason.UNSUPPORTED_PRINCIPAL, "the caller's partition differs from the STS endpoint's"
        )
    user_id = ROLE_USER_ID.fullmatch(answer.user_id)
    if user_id is None or user_id["session"] != match["session"]:
        raise UpstreamUnavailable(
            "sts", "STS answered with a UserId that does not belong to the assumed role"
        )
    return AssumedRoleCaller(
        partition=partition,
        account=answer.account,
        role_name=match["role"],
        role_id=user_id["role_id"],
        session_name=match["session"],
        session_arn=answer.arn,
    )


def _principal_kind(arn: str) -> str:
    resource = arn.split(":", 5)[-1]
    kind = resource.split("/", 1)[0]
    return f"a {kind[:32]!r} principal" if kind else "this principal"
