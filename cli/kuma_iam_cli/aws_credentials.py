"""The default AWS credential chain and region, as the commands that sign something or call AWS use them."""

from __future__ import annotations

import os
import shlex

import boto3
import botocore.session
from botocore.credentials import ReadOnlyCredentials

from kuma_iam_cli.errors import CommandError
from kuma_iam_cli.local.state import running_stacks

DEFAULT_REGION = "us-east-1"


def default_credentials(
    region: str | None,
    *,
    purpose: str,
    local_file: str | None,
    sdk: botocore.session.Session | None = None,
) -> tuple[ReadOnlyCredentials, str]:
    """The chain's credentials (environment, profile, ECS or EC2 metadata) and the region to sign for.

    purpose: what they are for, e.g. "sign the token"; the error says it when there are none.
    local_file: the credential file of a running local stack to suggest then, e.g. "control-plane.env"
    (None: the local stack has none for this purpose).
    sdk: the botocore session to read them through, when the caller reads more of its settings.
    """
    session = aws_session(region, sdk=sdk)
    credentials = session.get_credentials()
    frozen = credentials.get_frozen_credentials() if credentials is not None else None
    if frozen is None or not frozen.access_key or not frozen.secret_key:
        raise CommandError(
            f"no AWS credentials found to {purpose} (environment, profile, ECS or EC2 metadata)"
            + _local_stack_hint(local_file)
        )
    return frozen, region or session.region_name or DEFAULT_REGION


def aws_session(region: str | None = None, *, sdk: botocore.session.Session | None = None) -> boto3.Session:
    """The chain's session in `region`, else AWS_REGION, else the SDK's own (AWS_DEFAULT_REGION, the profile):
    botocore reads AWS_DEFAULT_REGION only, where ECS, Lambda and most shells set AWS_REGION too, or alone."""
    return boto3.Session(botocore_session=sdk, region_name=region or os.environ.get("AWS_REGION") or None)


def _local_stack_hint(local_file: str | None) -> str:
    stacks = running_stacks() if local_file is not None else []
    if not stacks or local_file is None:
        return ""
    folder = stacks[0].credentials_dir
    example = shlex.quote(str(folder / local_file))
    return f"; the local stack keeps them in {folder}/: prefix the command with env $(cat {example})"
