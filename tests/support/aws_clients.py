"""Clients on the embedded AWS as one of the demo world's principals, and the task roles a test makes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3

from kuma_iam_cli.local.seed import DemoWorld, UserCredentials

ClientFactory = Callable[[str, str], Any]


@dataclass(frozen=True)
class TaskRole:
    account: str
    name: str
    arn: str
    role_id: str


def client_as(world: DemoWorld, service: str, credentials: Mapping[str, str] | UserCredentials) -> Any:
    """A boto3 client on the embedded AWS signing as a world's user or with issued AWS_* credentials."""
    if isinstance(credentials, UserCredentials):
        credentials = {
            "AWS_ACCESS_KEY_ID": credentials.access_key_id,
            "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
        }
    return boto3.client(  # type: ignore[call-overload]
        service,
        region_name=world.region,
        endpoint_url=world.endpoint_url,
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=credentials.get("AWS_SESSION_TOKEN"),
    )
