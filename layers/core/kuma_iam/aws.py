"""What every AWS adapter shares: client settings that fail fast, and one mapping of AWS failures."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import botocore.session
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


class BotocoreSession:
    """An AWS session on botocore alone: clients, its region, a region's partition, with the same credential
    chain and settings as boto3.Session. boto3's Session adds resources and S3 transfers (and with its import,
    concurrent.futures and multiprocessing) that no function uses: about 30 ms of every cold start.
    """

    def __init__(self, region_name: str | None = None) -> None:
        self._session = botocore.session.get_session()
        if region_name is not None:
            self._session.set_config_variable("region", region_name)

    @property
    def region_name(self) -> str | None:
        region: str | None = self._session.get_config_variable("region")
        return region

    def client(self, service_name: str, **options: Any) -> Any:
        """As boto3.Session.client: endpoint_url, config, credentials, region_name."""
        return self._session.create_client(service_name, **options)

    def get_partition_for_region(self, region_name: str) -> str:
        partition: str = self._session.get_partition_for_region(region_name)
        return partition


if TYPE_CHECKING:
    import boto3

    # What the core's builders take: boto3's Session (tests, the CLI) or botocore's (the functions).
    AwsSession = boto3.Session | BotocoreSession


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
