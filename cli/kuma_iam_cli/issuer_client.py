"""A task's side of the token exchange: sign its identity with the task role, call POST /v1/tokens with the
same credentials (SigV4, execute-api), and sort the answer into a token, a refusal, or a reason to retry."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from botocore.credentials import ReadOnlyCredentials

from kuma_iam.identity.token import encode_compact
from kuma_iam_cli.errors import CommandError
from kuma_iam_cli.signer import sign_api_call, sign_identity_request

EXECUTE_API_HOST = re.compile(r"[a-z0-9]+\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?")
TIMEOUT_SECONDS = 15.0
# Answers worth another try: throttling, AWS unavailable behind the issuer, a gateway in between failing.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class TokenAsk:
    """What the sidecar asks a token for (the body of POST /v1/tokens, less the identity token)."""

    url: str
    server_id: str
    mesh: str | None
    name: str
    services: tuple[str, ...] = ()
    workload: str | None = None
    proxy_type: str = "dataplane"
    zone: str | None = None
    valid_for: str | None = None

    def body(self, identity_token: str) -> dict[str, Any]:
        dataplane: dict[str, Any] = {"type": self.proxy_type, "mesh": self.mesh, "name": self.name}
        if self.services:
            dataplane["tags"] = {"kuma.io/service": list(self.services)}
        if self.workload is not None:
            dataplane["workload"] = self.workload
        body: dict[str, Any] = {"token": identity_token, "dataplane": dataplane}
        if self.valid_for is not None:
            body["validFor"] = self.valid_for
        if self.zone is not None:
            body["zone"] = self.zone
        return body


@dataclass(frozen=True)
class Issued:
    token: str = field(repr=False)
    kid: str
    jti: str
    expires_at: datetime


class Denied(Exception):
    """The issuer refused this role the token it asked for (403 denied): an answer (exit status 1), and asking
    again will not help."""


class Refused(CommandError):
    """The request or the setup is wrong (a 400, the gateway's own 403): not worth a retry, an error."""


class Unavailable(CommandError):
    """Nothing usable came back this time (throttling, AWS or the network down): try again later; an error
    once the command stops trying."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


type CredentialSource = Callable[[], tuple[ReadOnlyCredentials, str]]


class IssuerClient:
    """Calls one issuer with credentials read anew for every call (on ECS: the task role's, as they rotate).

    credentials: returns them and the SDK's region, e.g. aws_credentials.default_credentials, which raises
    CommandError when there are none.
    """

    def __init__(self, credentials: CredentialSource, *, api_region: str | None = None) -> None:
        self._credentials = credentials
        self._api_region = api_region

    def fetch(self, ask: TokenAsk) -> Issued:
        frozen, sts_region = self._credentials()
        try:
            identity = sign_identity_request(frozen, server_id=ask.server_id, region=sts_region)
        except ValueError as error:
            raise Refused(f"{error} (the SDK's region: AWS_REGION)") from None
        body = json.dumps(ask.body(encode_compact(identity))).encode()
        signing_region = api_region(ask.url, given=self._api_region, default=sts_region)
        headers = sign_api_call(frozen, url=ask.url, body=body, region=signing_region)
        request = urllib.request.Request(ask.url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
                return _issued(response.read())
        except urllib.error.HTTPError as error:
            raise _refusal(error.code, error.read(), error.headers.get("Retry-After")) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise Unavailable(f"cannot reach {_origin(ask.url)}: {reason}") from None


def api_region(url: str, *, given: str | None, default: str) -> str:
    """The region the API's SigV4 scope names: given, else read from an execute-api host, else `default`."""
    if given:
        return given
    match = EXECUTE_API_HOST.fullmatch(urlsplit(url).hostname or "")
    return match["region"] if match else default


def _issued(raw: bytes) -> Issued:
    try:
        document = json.loads(raw)
        token, kid, jti = document["token"], document["kid"], document["jti"]
        expires_at = datetime.strptime(document["expiresAt"], "%Y-%m-%dT%H:%M:%S%z")
    except (ValueError, KeyError, TypeError):
        raise Unavailable("the issuer's 200 answer is not a token") from None
    if not (
        isinstance(token, str) and token.count(".") == 2 and isinstance(kid, str) and isinstance(jti, str)
    ):
        raise Unavailable("the issuer's 200 answer is not a token")
    return Issued(token=token, kid=kid, jti=jti, expires_at=expires_at)


def _refusal(status: int, raw: bytes, retry_after: str | None) -> Exception:
    try:
        document = json.loads(raw)
    except ValueError:
        document = {}
    if not isinstance(document, dict):
        document = {}
    message = str(document.get("message") or f"HTTP {status}")[:300]
    if status == 403 and document.get("error") == "denied":
        return Denied(f"denied ({document.get('reason')}): {message}")
    if status in TRANSIENT_STATUSES:
        return Unavailable(f"HTTP {status}: {message}", _seconds(retry_after))
    if status == 403:
        # API Gateway's own refusal: the IAM authorizer did not let the call through at all.
        return Refused(
            f"the API refused the call (HTTP 403 {message}): may the task role execute-api:Invoke it?"
        )
    return Refused(f"HTTP {status}: {message}")


def _seconds(retry_after: str | None) -> float | None:
    return float(retry_after) if retry_after and retry_after.isdigit() else None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
