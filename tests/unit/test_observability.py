"""The core's logging setup: libraries that log the wire stay above DEBUG whatever the root level is."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from kuma_iam import observability


@pytest.fixture
def root_at_debug() -> Iterator[None]:
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.DEBUG)  # what Lambda does with ApplicationLogLevel=DEBUG
    yield
    root.setLevel(previous)


@pytest.mark.parametrize(
    "name",
    [
        "botocore.endpoint",  # request headers: the function's X-Amz-Security-Token, signatures
        "botocore.parsers",  # response bodies: AssumeRole's SecretAccessKey and SessionToken
        "botocore.auth",  # canonical request and string to sign
        "botocore.hooks",
        "boto3.resources.action",
        "urllib3.connectionpool",
    ],
)
def test_wire_loggers_do_not_log_debug_with_the_root_at_debug(name: str, root_at_debug: None) -> None:
    assert name.split(".")[0] in observability.WIRE_LOGGERS
    assert not logging.getLogger(name).isEnabledFor(logging.DEBUG)
    assert logging.getLogger(name).isEnabledFor(logging.WARNING)
