"""The default AWS credential chain, as the commands that sign something use it."""

from __future__ import annotations

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
    local_file: str,
    sdk: botocore.session.Session | None = None,
) -> tuple[ReadOnlyCredentials, str]:
    """The chain's credentials (environment, profile, ECS or EC2 metadata) and the region to sign for.

    purpose: what they are for, e.g. "sign the token"; the error says it when there are none.
    local_file: the credential file of a running local stack to suggest then, e.g. "control-plane.env".
    sdk: the botocore session to read them through, when the caller reads more of its settings.
    """
    session = boto3.Session(botocore_session=sdk, region_name=region)
    credentials = session.get_credentials()
    frozen = credentials.get_frozen_credentials() if credentials is not None else None
    if frozen is None or not frozen.access_key or not frozen.secret_key:
        raise CommandError(
            f"no AWS credentials found to {purpose} (environment, profile, ECS or EC2 metadata)"
            + _local_stack_hint(local_file)
        )
    return frozen, region or session.region_name or DEFAULT_REGION


def _local_stack_hint(local_file: str) -> str:
    stacks = running_stacks()
    if not stacks:
        return ""
    folder = stacks[0].credentials_dir
    example = shlex.quote(str(folder / local_file))
    return f"; the local stack keeps them in {folder}/: prefix the command with env $(cat {example})"
