"""`kuma-iam sweep`: the tag-compliance sweep from a laptop, with the function's own core and rules."""

from __future__ import annotations

import argparse
import json
import os
import sys

import boto3

from kuma_iam_cli.arguments import account_id, role_name
from kuma_iam_cli.aws_credentials import default_credentials
from kuma_iam_cli.errors import CommandError

EXIT_CLEAN, EXIT_FINDINGS = 0, 1
# In a running local stack's credentials folder: the compliance principal's, to suggest when none are set.
LOCAL_STACK_COMPLIANCE_CREDENTIALS = "compliance.env"
DESCRIPTION = """\
Read every IAM role of each account (GetAccountAuthorizationDetails, a page of up to 1,000 roles per call;
other accounts through their compliance role) and report what breaks the kuma.io tag and trust rules, as
the scheduled sweep of TagComplianceFunction does. Uses the default AWS credentials (a principal that may
list the roles and assume the compliance role in the other accounts). A progress bar per account goes to
stderr; the findings table (or --json, the function's summary) to stdout.

exit status:
  0  clean: every role of every account was checked, no findings
  1  findings
  2  error: an account could not be read to the end (its findings so far are printed), bad settings or
     arguments, no credentials; one line on stderr says which"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="check every role's kuma.io tags and trust policy, as the scheduled sweep does",
        description=DESCRIPTION,
    )
    sweep.add_argument(
        "--account",
        action="append",
        type=account_id,
        metavar="ID",
        help="an account to sweep (repeatable); default: KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS, else your own",
    )
    sweep.add_argument(
        "--enforce",
        action="store_true",
        help="remove the offending kuma.io/* tags (UntagRole), as enforce mode does",
    )
    sweep.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    sweep.add_argument(
        "--compliance-role",
        type=role_name,
        metavar="NAME",
        help="role assumed in other accounts "
        "(default: KUMA_IAM_COMPLIANCE_ROLE_NAME, else kuma-iam-compliance)",
    )
    sweep.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: `kuma-iam --help` should not pay for the compliance core and rich.
    from kuma_iam.compliance.service import build_tag_compliance
    from kuma_iam.config import ComplianceSettings
    from kuma_iam.observability import logger
    from kuma_iam_cli.sweep_view import AccountProgress, print_summary

    # The core logs for CloudWatch; here stdout is the table or the JSON, and failures are said below.
    logger.setLevel("CRITICAL")
    environment = dict(os.environ)
    _, region = default_credentials(
        None, purpose="read the roles", local_file=LOCAL_STACK_COMPLIANCE_CREDENTIALS
    )
    session = boto3.Session(region_name=region)
    accounts = list(dict.fromkeys(args.account or [])) or _default_accounts(environment, session)
    environment["KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS"] = ",".join(accounts)
    environment["KUMA_IAM_COMPLIANCE_MODE"] = "enforce" if args.enforce else "report"
    if args.compliance_role:
        environment["KUMA_IAM_COMPLIANCE_ROLE_NAME"] = args.compliance_role
    settings = ComplianceSettings.from_env(environment)
    compliance = build_tag_compliance(settings, boto3.Session(region_name=settings.region))
    with AccountProgress(accounts) as progress:
        summary = compliance.sweep(accounts, progress)

    if args.json:
        print(json.dumps(summary.wire(max_bytes=sys.maxsize), indent=2))
    else:
        print_summary(summary)
    if summary.failed_accounts:  # what was found is printed above; nothing unread may pass for clean
        failed = ", ".join(f"{failure.account} ({failure.message})" for failure in summary.failed_accounts)
        raise CommandError(f"not every role could be checked: {failed}")
    return EXIT_FINDINGS if summary.findings else EXIT_CLEAN


def _default_accounts(environment: dict[str, str], session: boto3.Session) -> list[str]:
    listed = environment.get("KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS", "").strip()
    if listed:
        return [part.strip() for part in listed.split(",") if part.strip()]
    sts = session.client("sts", endpoint_url=environment.get("AWS_ENDPOINT_URL_STS") or None)
    return [str(sts.get_caller_identity()["Account"])]
