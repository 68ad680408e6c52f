"""The token exchange is bound to its caller: the IAM principal that signed the API call must be the identity
token's own role, so that a leaked identity token is worth nothing to anyone else."""

from __future__ import annotations

from dataclasses import dataclass

from kuma_iam.aws import ACCOUNT_ID
from kuma_iam.errors import Denied, DenyReason
from kuma_iam.identity.caller import ASSUMED_ROLE_ARN, ROLE_USER_ID
from kuma_iam.verify import AuthenticatedRole


@dataclass(frozen=True, slots=True)
class ApiCaller:
    """The API call's signer, as API Gateway's IAM authorizer reports it (`requestContext.authorizer.iam`)."""

    account_id: str
    user_arn: str
    user_id: str


@dataclass(frozen=True, slots=True)
class CallerRole:
    partition: str
    account: str
    role_name: str
    role_id: str


def caller_role(caller: ApiCaller | None) -> CallerRole:
    """Before any network call: only an assumed role can be a task role (`AROA…:<session>`)."""
    if caller is None:
        raise Denied(
            DenyReason.CALLER_MISMATCH,
            "the API call carries no IAM caller; the route must use AWS_IAM authorization",
        )
    arn = ASSUMED_ROLE_ARN.fullmatch(caller.user_arn)
    user_id = ROLE_USER_ID.fullmatch(caller.user_id)
    if arn is None or user_id is None:
        raise Denied(
            DenyReason.CALLER_MISMATCH,
            f"the API call must be signed by the task role itself, not by {_shown(caller.user_arn)}",
        )
    if not ACCOUNT_ID.fullmatch(caller.account_id) or arn["account"] != caller.account_id:
        raise Denied(DenyReason.CALLER_MISMATCH, "the API caller's account disagrees with its ARN")
    if user_id["session"] != arn["session"]:
        raise Denied(DenyReason.CALLER_MISMATCH, "the API caller's user id is not its session's")
    return CallerRole(arn["partition"], arn["account"], arn["role"], user_id["role_id"])


def check_bound(caller: CallerRole, identity: AuthenticatedRole) -> None:
    """The caller must be the very role IAM vouched for: same partition, account and RoleId (a role deleted
    and re-created under the same name is someone else). Names compare as IAM compares them, without case:
    a session ARN carries the spelling its AssumeRole used (`Backend-Task`), IAM's answer the role's own."""
    same = (
        caller.partition == identity.caller.partition
        and caller.account == identity.caller.account
        and caller.role_id == identity.role.role_id
        and caller.role_name.casefold() == identity.role.name.casefold()
    )
    if not same:
        raise Denied(
            DenyReason.CALLER_MISMATCH,
            f"the API call was signed by role {caller.role_name} in account {caller.account}, not by the "
            f"identity token's role {identity.role.name} in account {identity.caller.account}",
        )


def _shown(value: str) -> str:
    return repr(value[:128])
