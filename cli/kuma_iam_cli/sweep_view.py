"""How `kuma-iam sweep` looks: a progress bar per account on stderr while the roles are read, then a table of
findings (and of removals) on stdout, drawn with rich."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from kuma_iam.compliance.findings import ComplianceSummary
from kuma_iam.rules import Severity

_STYLE = {Severity.HIGH: "bold red", Severity.MEDIUM: "yellow", Severity.LOW: "cyan"}
_ORDER = {Severity.HIGH: 0, Severity.MEDIUM: 1, Severity.LOW: 2}


class AccountProgress:
    """A bar per account: roles read and findings so far; it pulses until the last page, then fills."""

    def __init__(self, accounts: list[str]) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]account {task.fields[account]}"),
            BarColumn(),
            TextColumn(
                "{task.fields[roles]:>6} roles, {task.fields[findings]} findings {task.fields[state]}"
            ),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {
            account: self._progress.add_task(
                "", total=None, account=account, roles=0, findings=0, state="", start=False
            )
            for account in accounts
        }

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def account_started(self, account: str) -> None:
        self._progress.start_task(self._tasks[account])

    def page_done(self, account: str, roles: int, findings: int) -> None:
        task = self._tasks[account]
        fields = self._progress.tasks[task].fields
        self._progress.update(task, roles=fields["roles"] + roles, findings=fields["findings"] + findings)

    def account_done(self, account: str, failure: str | None) -> None:
        # The bar fills either way: the state says how it ended.
        self._progress.update(
            self._tasks[account], total=1, completed=1, state="[red]failed" if failure else "[green]done"
        )


def print_summary(summary: ComplianceSummary, console: Console | None = None) -> None:
    console = console or Console()
    if not summary.findings:
        incomplete = " (some accounts could not be read: see below)" if summary.failed_accounts else ""
        console.print(f"[green]{summary.evaluated} roles checked: no findings{incomplete}.")
    else:
        table = Table(
            title=f"{len(summary.findings)} findings in {summary.evaluated} roles", show_lines=False
        )
        for column in ("severity", "rule", "account", "role"):
            table.add_column(column, no_wrap=True)
        table.add_column("what is wrong", overflow="fold", ratio=1)
        for finding in sorted(
            summary.findings, key=lambda f: (_ORDER[f.severity], f.account, f.role_name, f.rule)
        ):
            table.add_row(
                f"[{_STYLE[finding.severity]}]{finding.severity}",
                finding.rule,
                finding.account,
                finding.role_name,
                finding.message,
            )
        console.print(table)
    if summary.remediations:
        removed = Table(title="kuma.io tags removed (enforce)")
        for column in ("account", "role", "removed"):
            removed.add_column(column, overflow="fold")
        for remediation in summary.remediations:
            removed.add_row(remediation.account, remediation.roleName, ", ".join(remediation.removedTags))
        console.print(removed)
