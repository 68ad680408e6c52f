"""Identity tokens signed by a real botocore STS client, exactly as it would send GetCallerIdentity.

Not our signer: botocore resolves the endpoint itself (FIPS, dual-stack, the partition's suffix), adds its
own headers (User-Agent, amz-sdk-invocation-id, amz-sdk-request, Content-Length, no Host) and signs; the
request is captured just before it would leave, so nothing is sent. A sidecar built on any AWS SDK produces
the same shape, which makes this the oracle for "what real sidecars sign".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import boto3
from botocore.awsrequest import AWSPreparedRequest
from botocore.config import Config

from kuma_iam.identity.checks import SERVER_ID_HEADER
from kuma_iam.identity.token import SignedRequest


class _Captured(Exception):
    """Not an error: how the signed request is taken off botocore's path before it is sent."""

    def __init__(self, request: AWSPreparedRequest) -> None:
        super().__init__("captured")
        self.request = request


def botocore_signed(
    credentials: Mapping[str, str],
    *,
    server_id: str,
    region: str,
    fips: bool = False,
    dualstack: bool = False,
) -> SignedRequest:
    """GetCallerIdentity signed by a boto3 STS client configured with use_fips_endpoint/use_dualstack_endpoint
    (as AWS_USE_FIPS_ENDPOINT / AWS_USE_DUALSTACK_ENDPOINT would), carrying the server-id header."""
    client = boto3.client(
        "sts",
        region_name=region,
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=credentials.get("AWS_SESSION_TOKEN"),
        config=Config(
            use_fips_endpoint=fips,
            use_dualstack_endpoint=dualstack,
            ignore_configured_endpoint_urls=True,  # signs for AWS, whatever AWS_ENDPOINT_URL* says here
            retries={"max_attempts": 1},
        ),
    )

    def bind_to_server(request: Any, **_: Any) -> None:
        request.headers[SERVER_ID_HEADER] = server_id

    def capture(request: AWSPreparedRequest, **_: Any) -> None:
        raise _Captured(request)

    client.meta.events.register("before-sign.sts.GetCallerIdentity", bind_to_server)
    client.meta.events.register("before-send.sts.GetCallerIdentity", capture)
    try:
        client.get_caller_identity()
    except _Captured as captured:
        sent = captured.request
    else:
        raise AssertionError("botocore sent GetCallerIdentity instead of handing it over")
    body = sent.body.decode() if isinstance(sent.body, bytes) else str(sent.body)
    headers = tuple(
        (name, value.decode() if isinstance(value, bytes) else str(value))
        for name, value in sent.headers.items()
    )
    return SignedRequest(method=sent.method, url=sent.url, headers=headers, body=body)
