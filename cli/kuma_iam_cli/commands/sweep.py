"""`kuma-iam sweep`: the tag-compliance sweep from a laptop, with the function's own core and rules."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kuma_iam.compliance.findings import ComplianceSummary

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="check every role's kuma.io tags and trust policy, as the scheduled sweep does",
        description=(
            "Read every IAM role of each account (GetAccountAuthorizationDetails, a page of up to 1,000 "
            "roles per call; other accounts through their compliance role) and report what breaks the "
            "kuma.io tag and trust rules. Uses the default AWS credentials. Exit status: 0 clean, 1 "
            "findings, 2 error (an account that could not be read to the end is an error)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sweep.add_argument(
        "--account",
        action="append",
        default=[],
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
        default=None,
        metavar="NAME",
        help="role assumed in other accounts (default: KUMA_IAM_COMPLIANCE_ROLE_NAME or kuma-iam-compliance)",
    )
    sweep.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: `kuma-iam --help` should not pay for boto3 and rich.
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from kuma_iam.compliance.service import build_tag_compliance
    from kuma_iam.config import ComplianceSettings
    from kuma_iam.errors import KumaIamError
    from kuma_iam.observability import logger
    from kuma_iam_cli.sweep_view import AccountProgress, print_summary

    # The core logs for CloudWatch; here stdout is the table or the JSON, and failures are said below.
    logger.setLevel("CRITICAL")
    try:
        environment = dict(os.environ)
        session = boto3.Session()
        accounts = list(dict.fromkeys(args.account)) or _default_accounts(environment, session)
        environment["KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS"] = ",".join(accounts)
        environment["KUMA_IAM_COMPLIANCE_MODE"] = "enforce" if args.enforce else "report"
        if args.compliance_role:
            environment["KUMA_IAM_COMPLIANCE_ROLE_NAME"] = args.compliance_role
        settings = ComplianceSettings.from_env(environment)
        session = boto3.Session(region_name=settings.region)
        compliance = build_tag_compliance(settings, session)
        with AccountProgress(accounts) as progress:
            summary = compliance.sweep(accounts, progress)
    except KumaIamError as error:
        return _fail(error.message)
    except (BotoCoreError, ClientError) as error:
        return _fail(str(error))
    except KeyboardInterrupt:
        return _fail("interrupted")
    if args.json:
        print(json.dumps(summary.wire(max_bytes=sys.maxsize), indent=2))
    else:
        print_summary(summary)
    return _exit_status(summary)


def _default_accounts(environment: dict[str, str], session: object) -> list[str]:
    listed = environment.get("KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS", "").strip()
    if listed:
        return [part.strip() for part in listed.split(",") if part.strip()]
    import boto3

    assert isinstance(session, boto3.Session)
    sts = session.client("sts", endpoint_url=environment.get("AWS_ENDPOINT_URL_STS") or None)
    return [str(sts.get_caller_identity()["Account"])]


def _exit_status(summary: ComplianceSummary) -> int:
    if summary.failed_accounts:
        failed = ", ".join(f"{failure.account} ({failure.message})" for failure in summary.failed_accounts)
        print(f"kuma-iam: not every role could be checked: {failed}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_FINDINGS if summary.findings else EXIT_CLEAN


def _fail(message: str) -> int:
    print(f"kuma-iam: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_ERROR
