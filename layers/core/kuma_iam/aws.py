"""What every AWS adapter shares: client settings that fail fast, and one mapping of AWS failures."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from kuma_iam.errors import Upstream, UpstreamThrottled, UpstreamUnavailable

ACCOUNT_ID = re.compile(r"[0-9]{12}")  # applied with fullmatch

THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequests",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
    }
)


def aws_client_config(timeout_seconds: float, *, attempts: int = 2) -> Config:
    """Short timeouts and one retry: the control plane is waiting, and it retries on 503 itself."""
    return Config(
        connect_timeout=min(1.0, timeout_seconds),
        read_timeout=timeout_seconds,
        retries={"mode": "standard", "total_max_attempts": attempts},
    )


@contextmanager
def aws_errors(service: Upstream, what: str) -> Iterator[None]:
    """Turn botocore failures into UpstreamThrottled / UpstreamUnavailable; our own errors pass through."""
    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in THROTTLING:
            raise UpstreamThrottled(service, f"{what}: AWS is throttling", retry_after=2) from None
        raise UpstreamUnavailable(service, f"{what}: {code or 'error'}") from None
    except (BotoCoreError, ResponseParserError) as error:
        raise UpstreamUnavailable(service, f"{what}: {type(error).__name__}") from None
    except KeyError:
        # botocore's query parser, and our reading of its result, meet a document that is not AWS's.
        raise UpstreamUnavailable(service, f"{what}: the answer lacks expected fields") from None
