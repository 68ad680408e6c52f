"""The sweep: every role of every account asked for, read a page at a time, each page checked as it comes.

An account that cannot be read to the end (no role to assume, IAM throttling past the retries, a fault) is
named in the summary with how far the sweep got; the roles read before the failure are reported, the rest
are not evaluated, so no role the sweep did not read is ever reported clean.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from kuma_iam.compliance.findings import AccountFailure, ComplianceSummary
from kuma_iam.compliance.iam import PAGE_SIZE, role_pages
from kuma_iam.errors import UpstreamError
from kuma_iam.observability import logger
from kuma_iam.roles import RoleRecord

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient


class SweepProgress(Protocol):
    """What a sweep tells its caller as it goes (the CLI draws a progress bar per account from it)."""

    def account_started(self, account: str) -> None: ...

    def page_done(self, account: str, roles: int, findings: int) -> None: ...

    def account_done(self, account: str, failure: str | None) -> None: ...


class NoProgress:
    def account_started(self, account: str) -> None:
        pass

    def page_done(self, account: str, roles: int, findings: int) -> None:
        pass

    def account_done(self, account: str, failure: str | None) -> None:
        pass


def sweep_accounts(
    accounts: Iterable[str],
    clients: Callable[[str], IAMClient],
    check_role: Callable[[IAMClient, RoleRecord], ComplianceSummary],
    progress: SweepProgress | None = None,
    *,
    page_size: int = PAGE_SIZE,
) -> ComplianceSummary:
    """Check every role of each account with `check_role` (findings, and removals in enforce mode)."""
    progress = progress or NoProgress()
    summary = ComplianceSummary()
    for account in accounts:
        progress.account_started(account)
        read = 0
        try:
            iam = clients(account)
            for page in role_pages(iam, account, page_size=page_size):
                page_summary = ComplianceSummary()
                for role in page:
                    page_summary.merge(check_role(iam, role))
                read += len(page)
                summary.merge(page_summary)
                progress.page_done(account, len(page), len(page_summary.findings))
        except UpstreamError as error:
            message = f"{error.message}; {read} roles were read and checked, the rest of the account was not"
            logger.warning(
                "sweep incomplete", extra={"account": account, "rolesRead": read, "detail": error.message}
            )
            summary.failed_accounts.append(AccountFailure(account=account, message=message))
            progress.account_done(account, message)
            continue
        progress.account_done(account, None)
    return summary
