"""The command line's AWS session: the default credential chain, in the region asked for or the one set."""

from __future__ import annotations

import os

import boto3


def aws_session(region: str | None = None) -> boto3.Session:
    """botocore reads AWS_DEFAULT_REGION only; ECS, Lambda and most shells set AWS_REGION too, or alone."""
    return boto3.Session(region_name=region or os.environ.get("AWS_REGION") or None)
