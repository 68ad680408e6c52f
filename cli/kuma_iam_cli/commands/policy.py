"""`kuma-iam policy`: print the SCP or permissions-boundary statement keeping kuma.io/* tags to admins."""

from __future__ import annotations

import argparse
import sys

from kuma_iam_cli.errors import CommandError
from kuma_iam_cli.preventive_policy import (
    PolicyInputError,
    PolicyKind,
    kuma_key_patterns,
    parse_admins,
    preventive_policy,
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = commands.add_parser(
        "policy",
        help="print a policy that lets only the tag admins set or remove kuma.io/* role tags",
        description=(
            "Print, as compact JSON, a service control policy (--kind scp) or the statements to add to a "
            "permissions boundary (--kind boundary) that deny iam:CreateRole, iam:TagRole and iam:UntagRole "
            "with a kuma.io/* key, in any spelling, to every principal but the admins."
        ),
    )
    policy.add_argument(
        "--admins",
        required=True,
        action="append",
        metavar="ARN[,ARN...]",
        help="principal ARN patterns (* and ? wildcards) that may change kuma.io/* tags; a role covers "
        "its sessions; repeat or separate with commas",
    )
    policy.add_argument(
        "--kind",
        choices=[kind.value for kind in PolicyKind],
        default=PolicyKind.SCP.value,
        help="scp: a whole service control policy; boundary: statements to add to a permissions boundary",
    )
    policy.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    kind = PolicyKind(args.kind)
    try:
        admins = parse_admins(args.admins)
        text = preventive_policy(admins, kind)
    except PolicyInputError as error:
        raise CommandError(f"policy: {error}") from None
    print(text)
    print(
        f"kuma-iam policy: {kind} of {len(text):,} characters; kuma.io/ keys in {len(kuma_key_patterns())} "
        f"patterns, {len(admins)} admin pattern(s) exempt",
        file=sys.stderr,
    )
    return 0
