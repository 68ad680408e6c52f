"""Signing with the caller's own credentials: the sidecar's identity token, the control plane's API call."""

from __future__ import annotations

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

from kuma_iam.identity.checks import GET_CALLER_IDENTITY, SERVER_ID_HEADER
from kuma_iam.identity.endpoints import sts_endpoint_for_region
from kuma_iam.identity.token import SignedRequest


def sign_identity_request(
    credentials: Credentials | ReadOnlyCredentials,
    *,
    server_id: str,
    region: str,
    fips: bool = False,
    dualstack: bool = False,
) -> SignedRequest:
    """Always the real regional STS URL, in the variant the SDK is set to (FIPS, dual-stack), as botocore
    resolves it; the verifier sends the token back to that very host."""
    endpoint = sts_endpoint_for_region(region, fips=fips, dualstack=dualstack)
    if endpoint is None:
        raise ValueError(f"{region!r} is not a region with a known STS endpoint")
    url = f"https://{endpoint.host}/"
    request = AWSRequest(
        method="POST",
        url=url,
        data=GET_CALLER_IDENTITY,
        headers={
            "Host": endpoint.host,
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            SERVER_ID_HEADER: server_id,
        },
    )
    SigV4Auth(credentials, "sts", region).add_auth(request)
    return SignedRequest(
        method="POST", url=url, headers=tuple(request.headers.items()), body=GET_CALLER_IDENTITY
    )


def sign_api_call(
    credentials: Credentials | ReadOnlyCredentials,
    *,
    url: str,
    body: bytes,
    region: str,
    method: str = "POST",
) -> dict[str, str]:
    """Headers of a call to the kuma-iam API (a JSON POST, or a GET of /v1/keys), SigV4-signed for
    execute-api: the control plane calling the verifier, a task calling the token issuer."""
    headers = {"Content-Type": "application/json"} if body else {}
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(credentials, "execute-api", region).add_auth(request)
    return {name: str(value) for name, value in request.headers.items()}
