"""The IAM reads compliance makes, behind `aws_errors`: one role by name, or every role of an account a page
(up to 1,000 roles, tags and trust policies included) at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from kuma_iam.aws import aws_errors
from kuma_iam.errors import UpstreamUnavailable
from kuma_iam.observability import IAM_LATENCY, timed
from kuma_iam.roles import RoleRecord

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

# GetAccountAuthorizationDetails' largest page.
PAGE_SIZE = 1000


def read_role(iam: IAMClient, account: str, name: str) -> RoleRecord | None:
    """The role as IAM has it now, or None if it does not exist (deleted since the event: not an error).

    IAM role names are unique without regard to case: asked for `Backend-Task` it answers with the role it
    knows as `backend-task`, and that spelling is the one used from then on.
    """
    with aws_errors("iam", f"cannot read role {name} in account {account}"), timed(IAM_LATENCY):
        try:
            role = iam.get_role(RoleName=name)["Role"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "NoSuchEntity":
                return None
            raise
        record = RoleRecord.from_iam(account, role)
    if record.name.casefold() != name.casefold() or record.arn.split(":")[4:5] != [account]:
        raise UpstreamUnavailable("iam", f"IAM answered for another role than {name} in {account}")
    return record


def role_pages(iam: IAMClient, account: str, *, page_size: int = PAGE_SIZE) -> Iterator[list[RoleRecord]]:
    """Every role of the account, a page per GetAccountAuthorizationDetails call; UpstreamError from the page
    that failed (the pages before it stand)."""
    pages = iam.get_paginator("get_account_authorization_details").paginate(
        Filter=["Role"], PaginationConfig={"PageSize": page_size}
    )
    iterator = iter(pages)
    while True:
        with aws_errors("iam", f"cannot list the roles of account {account}"), timed(IAM_LATENCY):
            page = next(iterator, None)
            if page is None:
                return
            roles = [RoleRecord.from_iam(account, role) for role in page.get("RoleDetailList", [])]
        strangers = [role.arn for role in roles if role.arn.split(":")[4:5] != [account]]
        if strangers:
            raise UpstreamUnavailable("iam", f"IAM listed roles of another account than {account}")
        yield roles
