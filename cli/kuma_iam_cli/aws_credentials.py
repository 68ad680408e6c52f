"""The default AWS credential chain, as the commands that sign something use it."""

from __future__ import annotations

import boto3
from botocore.credentials import ReadOnlyCredentials

from kuma_iam_cli.errors import CommandError

DEFAULT_REGION = "us-east-1"


def default_credentials(region: str | None, *, purpose: str) -> tuple[ReadOnlyCredentials, str]:
    """The chain's credentials (environment, profile, ECS or EC2 metadata) and the region to sign for.

    purpose: what they are for, e.g. "sign the token"; the error says it when there are none.
    """
    session = boto3.Session(region_name=region)
    credentials = session.get_credentials()
    frozen = credentials.get_frozen_credentials() if credentials is not None else None
    if frozen is None or not frozen.access_key or not frozen.secret_key:
        raise CommandError(
            f"no AWS credentials found to {purpose} (environment, profile, ECS or EC2 metadata)"
        )
    return frozen, region or session.region_name or DEFAULT_REGION
