"""Hostile tokens through the real verifier handler on the embedded AWS, each one change from a genuine token.

Every row starts from a GetCallerIdentity that a real task role signed (moto issued the credentials) and
changes exactly one thing. It asserts the precise status, error or reason code and message, and, by counting
what reaches the embedded AWS through a pass-through proxy, that input refused before the network made no
network call at all. The last rows are the real signers' shapes (botocore, Go SDK v1 and v2, Vault clients)
that must still be allowed. `test_catalogue_counts_per_class` prints the table of classes.

Each row runs through both routes that take an identity token: POST /v1/verify (a deny is a 200 decision) and
POST /v1/tokens (a deny is 403 `denied` with the same reason; an allow is a token), the latter called by the
signing role itself, as the token exchange requires.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from kuma_iam.identity.checks import SERVER_ID_HEADER
from kuma_iam.identity.endpoints import sts_endpoint_for_region
from kuma_iam.identity.token import COMPACT_PREFIX, SignedRequest, encode_compact, encode_vault
from kuma_iam_cli.local.gateway import GatewayCaller
from kuma_iam_cli.local.seed import DemoWorld, task_caller
from support.captured_output import assert_no_secrets, header_secrets, token_secrets
from support.clock import FromNow, ManualClock, ago, ahead
from support.fake_aws import FakeAws
from support.sdk_headers import GO_SDK_V1_HEADERS, GO_SDK_V2_HEADERS
from support.token_issuer_harness import TokenIssuer
from support.token_mutations import (
    adding,
    at_url,
    compact_document,
    compact_of,
    compact_raw,
    dated,
    flip_last,
    header,
    moved_to,
    not_signing,
    setting,
    signature_of,
    signed_names,
    signing,
    signing_time,
    with_authorization,
    with_header,
)
from support.verifier_harness import Verifier, read_only_credentials

pytestmark = [
    pytest.mark.integration,
    # Powertools warns when a request ends with no metric, as a refused request does; not our concern here.
    pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning"),
]
DUPLICATE_KEY = "token is not valid JSON: duplicate key"

BODY = "Action=GetCallerIdentity&Version=2011-06-15"
ROLE = "backend-task"
CLAIM = {"mesh": "default", "name": "backend-01", "tags": {"kuma.io/service": ["backend"]}}


# --- signing: genuine tokens, from whichever principal a row needs ---------------------------------------


class Signers:
    """Credentials the embedded AWS issued, fetched once per module; signing itself is local and fresh."""

    def __init__(self, world: DemoWorld) -> None:
        self.world = world
        self._credentials: dict[str, ReadOnlyCredentials] = {}
        self._callers: dict[str, GatewayCaller] = {}

    def credentials(self, principal: str) -> ReadOnlyCredentials:
        if principal not in self._credentials:
            self._credentials[principal] = self._issue(principal)
        return self._credentials[principal]

    def caller(self, principal: str) -> GatewayCaller:
        """Who calls POST /v1/tokens with the row's token: the role that signed it (an IAM user's token, or
        one whose key was swapped, comes from the backend task)."""
        principal = principal if principal in ("frontend-as-backend", "intruder") else "backend"
        self.credentials(principal)
        return self._callers[principal]

    def _issue(self, principal: str) -> ReadOnlyCredentials:
        world = self.world
        if principal == "ci-user":  # an IAM user's long-term key, not an assumed role
            user = world.ci_user
            return ReadOnlyCredentials(user.access_key_id, user.secret_access_key, None)
        account, role, session = {
            "backend": (world.home_account, ROLE, "ecs-task"),
            "frontend-as-backend": (world.home_account, "frontend-task", ROLE),
            "intruder": (world.outsider_account, "intruder-task", "ecs-task"),
        }[principal]
        credentials, self._callers[principal] = task_caller(world, account, role, session)
        return read_only_credentials(credentials)

    def sign(
        self,
        principal: str = "backend",
        *,
        server_id: str | None,
        region: str = "us-east-1",
        host: str | None = None,
        headers: tuple[tuple[str, str], ...] = (
            ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
        ),
        at: datetime | None = None,
        keep_host: bool = True,
    ) -> SignedRequest:
        """SigV4 by botocore, as a sidecar signs; `headers` dress it as another SDK would before signing."""
        endpoint = sts_endpoint_for_region(region)
        assert endpoint is not None
        host = host or endpoint.host
        extra = {SERVER_ID_HEADER: server_id} if server_id is not None else {}
        request = AWSRequest(
            method="POST",
            url=f"https://{host}/",
            data=BODY,
            headers={**({"Host": host} if keep_host else {}), **dict(headers), **extra},
        )
        clock = (
            mock.patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None))
            if at is not None
            else nullcontext()
        )
        with clock:
            SigV4Auth(self.credentials(principal), "sts", region).add_auth(request)
        return SignedRequest(
            method="POST", url=f"https://{host}/", headers=tuple(request.headers.items()), body=BODY
        )


# --- one change at a time (beyond support.token_mutations) -----------------------------------------------


def amz_date_ago(request: SignedRequest, delta: timedelta) -> str:
    return (signing_time(request) - delta).strftime("%Y%m%dT%H%M%SZ")


# the encoded token, rebuilt by hand where a row needs what the encoders would never write


def vault_with(request: SignedRequest, **fields: str) -> dict[str, str]:
    return {**encode_vault(request), **fields}


def vault_headers_text(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def with_char_at(text: str, position: int, char: str) -> str:
    """One character of an encoded field replaced (or, for whitespace, inserted), the rest untouched."""
    if char.isspace():
        return text[:position] + char + text[position:]
    assert text[position] != char
    return text[:position] + char + text[position + 1 :]


def padding_stripped(encoded: str) -> str:
    assert encoded.endswith("="), "this field needs no padding; pick another"
    return encoded.rstrip("=")


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# --- the catalogue ----------------------------------------------------------------------------------------

Mutation = Callable[[SignedRequest], SignedRequest]
TokenBuilder = Callable[[SignedRequest], object]
BOTH = ("compact", "vault")


@dataclass(frozen=True)
class Hostile:
    """One input; `request` changes the signed request (then encoded), `token` builds the token itself."""

    id: str
    klass: str
    status: int
    code: str  # error code for 4xx/5xx, deny reason for 200, "allowed" for an allow
    message: str  # a substring of the message (for an allow: the role name in the identity)
    request: Mutation = lambda r: r
    token: TokenBuilder | None = None
    raw_body: Callable[[object], str] | None = None
    encodings: tuple[str, ...] = BOTH
    principal: str = "backend"
    # how the base token is signed (server_id, at...); `at` is a FromNow, resolved against the verifier's time
    sign: Mapping[str, Any] = field(default_factory=dict)
    reaches_sts: bool = False  # False: refused before any network call, which the proxy must confirm
    claim: Mapping[str, Any] = field(default_factory=lambda: CLAIM)
    compact_message: str | None = None  # where the compact encoding refuses it in its own words
    xfail: str | None = None

    def message_for(self, encoding: str) -> str:
        return self.compact_message if encoding == "compact" and self.compact_message else self.message


def bad(id: str, klass: str, message: str, **more: Any) -> Hostile:
    return Hostile(id, klass, 400, "invalid_request", message, **more)


def denied(id: str, klass: str, reason: str, message: str, **more: Any) -> Hostile:
    return Hostile(id, klass, 200, reason, message, **more)


def allowed(id: str, klass: str, role: str = ROLE, **more: Any) -> Hostile:
    return Hostile(id, klass, 200, "allowed", role, reaches_sts=True, **more)


NOT_STS = "URL host is not an STS endpoint of a known partition and region"

CATALOGUE: list[Hostile] = [
    # host and partition: the URL must name an STS endpoint we know, literally
    bad(
        "url-host-example", "host/partition", NOT_STS, request=lambda r: at_url(r, "https://sts.example.com/")
    ),
    bad(
        "url-host-suffix-attack",
        "host/partition",
        NOT_STS,
        request=lambda r: moved_to(r, "sts.us-east-1.amazonaws.com.evil.com"),
    ),
    bad("url-host-ip-literal", "host/partition", NOT_STS, request=lambda r: moved_to(r, "127.0.0.1")),
    bad(
        "url-host-uppercase",
        "host/partition",
        NOT_STS,
        request=lambda r: moved_to(r, "STS.US-EAST-1.AMAZONAWS.COM"),
    ),
    bad(
        "url-host-trailing-dot",
        "host/partition",
        NOT_STS,
        request=lambda r: moved_to(r, "sts.us-east-1.amazonaws.com."),
    ),
    bad(
        "url-unknown-region",
        "host/partition",
        NOT_STS,
        request=lambda r: moved_to(r, "sts.xx-fake-1.amazonaws.com"),
    ),
    bad(
        "url-cn-suffix-commercial-region",
        "host/partition",
        NOT_STS,
        request=lambda r: moved_to(r, "sts.us-east-1.amazonaws.com.cn"),
    ),
    bad(
        "url-aws-global-pseudo-region",
        "host/partition",
        NOT_STS,
        request=lambda r: moved_to(r, "sts.aws-global.amazonaws.com"),
    ),
    # lookalikes of the FIPS and dual-stack hosts (the real ones are accepted, see real-signer below)
    *[
        bad(f"url-{name}", "host/partition", NOT_STS, request=lambda r, host=host: moved_to(r, host))
        for name, host in (
            ("fips-host-suffix-attack", "sts-fips.us-east-1.amazonaws.com.evil.com"),
            ("dualstack-host-suffix-attack", "sts.us-east-1.api.aws.evil.com"),
            ("fips-dualstack-trailing-dot", "sts-fips.us-east-1.api.aws."),
            ("fips-uppercase", "STS-FIPS.US-EAST-1.AMAZONAWS.COM"),
            ("fips-pseudo-region", "sts-fips.aws-global.amazonaws.com"),
            ("fips-legacy-global", "sts-fips.amazonaws.com"),
            ("s3-style-dualstack", "sts.dualstack.us-east-1.amazonaws.com"),
            ("dualstack-dash-variant", "sts-dualstack.us-east-1.amazonaws.com"),
            ("dualstack-china-suffix-commercial-region", "sts.us-east-1.api.amazonwebservices.com.cn"),
        )
    ],
    bad(
        "url-govcloud-dualstack-host",
        "host/partition",
        "URL host is an STS endpoint of another partition than aws",
        request=lambda r: moved_to(r, "sts-fips.us-gov-west-1.api.aws"),
    ),
    bad(
        "url-userinfo-before-host",
        "host/partition",
        "must not carry credentials or a port",
        request=lambda r: at_url(r, "https://sts.us-east-1.amazonaws.com@evil.com/"),
    ),
    bad(
        "url-explicit-port",
        "host/partition",
        "must not carry credentials or a port",
        request=lambda r: at_url(r, "https://sts.us-east-1.amazonaws.com:443/"),
    ),
    bad(
        "url-http-scheme",
        "host/partition",
        "scheme must be https",
        request=lambda r: at_url(r, "http://sts.us-east-1.amazonaws.com/"),
    ),
    bad(
        "url-path",
        "host/partition",
        "URL path must be /",
        request=lambda r: at_url(r, "https://sts.us-east-1.amazonaws.com/sts"),
    ),
    bad(
        "url-tab-in-host",
        "host/partition",
        "URL must be printable ASCII without spaces",
        request=lambda r: at_url(r, "https://sts.us-east-1.amazon\taws.com/"),
    ),
    bad(
        "url-leading-space",
        "host/partition",
        "URL must be printable ASCII without spaces",
        request=lambda r: at_url(r, " https://sts.us-east-1.amazonaws.com/"),
    ),
    bad(
        "signed-for-china-partition",
        "host/partition",
        "URL host is an STS endpoint of another partition than aws",
        sign={"region": "cn-north-1"},
    ),
    # Host header, URL and credential scope must agree
    bad(
        "host-header-other-region",
        "host-scope-region",
        "Host header disagrees with the URL host",
        request=lambda r: with_header(r, "Host", "sts.eu-west-1.amazonaws.com"),
    ),
    bad(
        "host-header-evil",
        "host-scope-region",
        "Host header disagrees",
        request=lambda r: with_header(r, "Host", "evil.com"),
    ),
    bad(
        "host-header-with-port",
        "host-scope-region",
        "Host header disagrees",
        request=lambda r: with_header(r, "Host", "sts.us-east-1.amazonaws.com:443"),
    ),
    bad(
        "url-other-region-host-kept",
        "host-scope-region",
        "Host header disagrees",
        request=lambda r: at_url(r, "https://sts.eu-west-1.amazonaws.com/"),
    ),
    bad(
        "url-and-host-eu-west-1-scope-us-east-1",
        "host-scope-region",
        "credential scope region disagrees with the URL region",
        request=lambda r: moved_to(r, "sts.eu-west-1.amazonaws.com"),
    ),
    bad(
        "fips-host-of-another-region",
        "host-scope-region",
        "credential scope region disagrees with the URL region",
        request=lambda r: moved_to(r, "sts-fips.eu-west-1.amazonaws.com"),
    ),
    bad(
        "dualstack-host-header-regional-url",
        "host-scope-region",
        "Host header disagrees with the URL host",
        request=lambda r: with_header(r, "Host", "sts.us-east-1.api.aws"),
    ),
    bad(
        "scope-region-eu-west-1",
        "host-scope-region",
        "credential scope region disagrees",
        request=lambda r: with_authorization(r, region="eu-west-1"),
    ),
    bad(
        "legacy-global-host-scope-eu-west-1",
        "host-scope-region",
        "credential scope region disagrees",
        request=lambda r: with_authorization(moved_to(r, "sts.amazonaws.com"), region="eu-west-1"),
    ),
    bad(
        "china-host-commercial-scope",
        "host-scope-region",
        "URL host is an STS endpoint of another partition than aws",
        request=lambda r: moved_to(r, "sts.cn-north-1.amazonaws.com.cn"),
    ),
    bad(
        "scope-service-iam",
        "host-scope-region",
        "must name the sts service",
        request=lambda r: with_authorization(r, service="iam"),
    ),
    # method
    *[
        bad(
            f"method-{name}",
            "method",
            "method must be POST",
            request=lambda r, m=method: replace(r, method=m),
        )
        for name, method in (("get", "GET"), ("lowercase-post", "post"), ("empty", ""))
    ],
    # query strings and fragments
    *[
        bad(f"query-{name}", "query", message, request=lambda r, u=url: at_url(r, u))
        for name, url, message in (
            (
                "assume-role",
                "https://sts.us-east-1.amazonaws.com/?Action=AssumeRole",
                "query string or fragment",
            ),
            ("empty", "https://sts.us-east-1.amazonaws.com/?", "query string or fragment"),
            (
                "no-slash",
                "https://sts.us-east-1.amazonaws.com?Action=GetCallerIdentity",
                "query string or fragment",
            ),
            ("fragment", "https://sts.us-east-1.amazonaws.com/#evil", "query string or fragment"),
            (
                "percent-encoded",
                "https://sts.us-east-1.amazonaws.com/%3FAction=AssumeRole",
                "URL path must be /",
            ),
        )
    ],
    # the body must be exactly GetCallerIdentity
    *[
        bad(f"body-{name}", "body", "body must be exactly", request=lambda r, b=body: replace(r, body=b))
        for name, body in (
            ("duplicate-action", "Action=GetCallerIdentity&Action=AssumeRole&Version=2011-06-15"),
            ("extra-parameter", "Action=GetCallerIdentity&Version=2011-06-15&RoleArn=x"),
            ("lowercase-key", "action=GetCallerIdentity&Version=2011-06-15"),
            ("lowercase-action", "Action=getcalleridentity&Version=2011-06-15"),
            ("other-action", "Action=AssumeRole&Version=2011-06-15"),
            ("other-version", "Action=GetCallerIdentity&Version=2011-06-16"),
            ("percent-encoded", "Action=Get%43allerIdentity&Version=2011-06-15"),
            ("trailing-ampersand", "Action=GetCallerIdentity&Version=2011-06-15&"),
            ("json", '{"Action": "GetCallerIdentity", "Version": "2011-06-15"}'),
            ("empty", ""),
        )
    ],
    denied(
        "body-reordered-after-signing",
        "body",
        "sts_rejected",
        "SignatureDoesNotMatch",
        request=lambda r: replace(r, body="Version=2011-06-15&Action=GetCallerIdentity"),
        reaches_sts=True,
    ),
    # headers: allowlist, repetition (also differing only in case), syntax
    bad(
        "dup-x-amz-date-same-case",
        "headers",
        "header 'X-Amz-Date' appears more than once",
        request=lambda r: adding(r, ("X-Amz-Date", header(r, "X-Amz-Date"))),
        compact_message=DUPLICATE_KEY,
    ),
    bad(
        "dup-x-amz-date-other-case",
        "headers",
        "header 'x-amz-date' appears more than once",
        request=lambda r: adding(r, ("x-amz-date", header(r, "X-Amz-Date"))),
    ),
    bad(
        "dup-host-other-case",
        "headers",
        "header 'host' appears more than once",
        request=lambda r: adding(r, ("host", "sts.us-east-1.amazonaws.com")),
    ),
    bad(
        "dup-security-token",
        "headers",
        "header 'x-amz-security-token' appears more than once",
        request=lambda r: adding(r, ("x-amz-security-token", header(r, "X-Amz-Security-Token"))),
    ),
    bad(
        "dup-authorization",
        "headers",
        "header 'authorization' appears more than once",
        request=lambda r: adding(r, ("authorization", header(r, "Authorization"))),
    ),
    *[
        bad(
            f"not-allowed-{name.lower()}",
            "headers",
            f"header {name!r} is not allowed",
            request=lambda r, n=name: adding(r, (n, "x")),
        )
        for name in (
            "X-Forwarded-Host",
            "X-Amz-Target",
            "Transfer-Encoding",
            "Connection",
            "Cookie",
            "X-HTTP-Method-Override",
        )
    ],
    bad(
        "value-crlf-injection",
        "headers",
        "control characters or is too long",
        request=lambda r: adding(
            r, ("User-Agent", "botocore\r\nX-Amz-Target: AWSSecurityTokenServiceV20110615.AssumeRole")
        ),
    ),
    bad(
        "value-trailing-newline",
        "headers",
        "control characters",
        request=lambda r: adding(r, ("User-Agent", "botocore\n")),
    ),
    # urllib3's sentinel: it would drop User-Agent or Accept-Encoding, and make any other header a ValueError
    *[
        bad(
            f"skip-header-sentinel-in-{name.lower()}",
            "headers",
            f"header {name!r} carries @@@SKIP_HEADER@@@",
            request=lambda r, name=name: setting(r, name, "@@@SKIP_HEADER@@@"),
        )
        for name in (
            "X-Amz-User-Agent",
            "Amz-Sdk-Request",
            "Amz-Sdk-Invocation-Id",
            "X-Amz-Security-Token",
            "User-Agent",
            "Accept-Encoding",
        )
    ],
    bad("value-nul", "headers", "control characters", request=lambda r: adding(r, ("User-Agent", "bot\x00"))),
    bad(
        "value-too-long",
        "headers",
        "control characters or is too long",
        request=lambda r: adding(r, ("User-Agent", "x" * 8193)),
    ),
    bad(
        "name-with-space",
        "headers",
        "a header name is not a valid HTTP token",
        request=lambda r: adding(r, ("Bad Header", "x")),
    ),
    bad(
        "name-trailing-newline",
        "headers",
        "not a valid HTTP token",
        request=lambda r: adding(r, ("Host\n", "x")),
    ),
    bad(
        "authorization-missing",
        "headers",
        "Authorization header is missing",
        request=lambda r: with_header(r, "Authorization", None),
    ),
    bad(
        "authorization-bearer",
        "headers",
        "Authorization header is not an AWS4-HMAC-SHA256 signature",
        request=lambda r: with_header(r, "Authorization", "Bearer eyJhbGciOiJub25lIn0.e30."),
    ),
    bad(
        "authorization-other-algorithm",
        "headers",
        "not an AWS4-HMAC-SHA256 signature",
        request=lambda r: with_authorization(r, algorithm="AWS4-ECDSA-P256-SHA256"),
    ),
    bad(
        "signed-headers-unsorted",
        "headers",
        "SignedHeaders must be sorted and unique",
        request=lambda r: with_authorization(r, signed=";".join(reversed(signed_names(r)))),
    ),
    bad(
        "signed-headers-name-absent",
        "headers",
        "SignedHeaders names 'user-agent', which the request does not carry",
        request=lambda r: signing(r, "user-agent"),
    ),
    bad(
        "security-token-unsigned",
        "headers",
        "header 'x-amz-security-token' must be signed",
        request=lambda r: not_signing(r, "x-amz-security-token"),
    ),
    bad("host-unsigned", "headers", "header 'host' must be signed", request=lambda r: not_signing(r, "host")),
    bad(
        "content-type-json",
        "headers",
        "Content-Type must be application/x-www-form-urlencoded",
        request=lambda r: with_header(r, "Content-Type", "application/json"),
    ),
    bad(
        "content-length-disagrees",
        "headers",
        "Content-Length disagrees with the body",
        request=lambda r: adding(r, ("Content-Length", "44")),
    ),
    # the server id binds a token to one control plane
    bad(
        "server-id-other-control-plane",
        "server-id",
        "names another control plane",
        sign={"server_id": "other-control-plane"},
    ),
    bad("server-id-missing", "server-id", f"{SERVER_ID_HEADER} header is missing", sign={"server_id": None}),
    bad(
        "server-id-prefix-of-ours",
        "server-id",
        "names another control plane",
        sign={"server_id": lambda ours: ours + "-2"},
    ),
    bad(
        "server-id-other-case",
        "server-id",
        "names another control plane",
        sign={"server_id": str.upper},
    ),
    bad("server-id-empty", "server-id", "names another control plane", sign={"server_id": ""}),
    bad(
        "server-id-unsigned",
        "server-id",
        "header 'x-kuma-aws-iam-server-id' must be signed",
        request=lambda r: not_signing(r, "x-kuma-aws-iam-server-id"),
    ),
    bad(
        "server-id-second-value",
        "server-id",
        "appears more than once",
        request=lambda r: adding(r, ("x-kuma-aws-iam-server-id", "other-control-plane")),
    ),
    # the signing time
    denied(
        "signed-16-minutes-ago",
        "dates",
        "token_expired",
        "more than 900s",
        sign={"at": ago(minutes=16)},
    ),
    denied("signed-a-day-ago", "dates", "token_expired", "more than 900s", sign={"at": ago(days=1)}),
    denied(
        "signed-6-minutes-ahead",
        "dates",
        "token_expired",
        "signed in the future, beyond the allowed clock skew",
        sign={"at": ahead(minutes=6)},
    ),
    denied(
        "re-dated-a-year-back",
        "dates",
        "token_expired",
        "more than 900s",
        request=lambda r: dated(r, amz_date_ago(r, timedelta(days=365))),
    ),
    bad(
        "date-iso-form",
        "dates",
        "X-Amz-Date header is missing or not in the form YYYYMMDDTHHMMSSZ",
        request=lambda r: with_header(r, "X-Amz-Date", datetime.now(UTC).isoformat()),
    ),
    bad(
        "date-impossible",
        "dates",
        "X-Amz-Date is not a real date and time",
        request=lambda r: dated(r, "20261399T000000Z"),
    ),
    bad(
        "date-missing",
        "dates",
        "X-Amz-Date header is missing",
        request=lambda r: with_header(r, "X-Amz-Date", None),
    ),
    bad(
        "scope-date-other-day",
        "dates",
        "credential scope date disagrees with X-Amz-Date",
        request=lambda r: with_authorization(r, date="20200101"),
    ),
    # size and nesting
    bad(
        "token-oversized",
        "size/nesting",
        "token is larger than 16384 bytes",
        request=lambda r: adding(r, ("User-Agent", "x" * 17_000)),
    ),
    # As deep as fits in 16 KiB: within the size limit, JSON nesting cannot reach Python's recursion limit.
    bad(
        "compact-body-nested-at-size-limit",
        "size/nesting",
        "body must be a string",
        token=lambda r: compact_raw(
            json.dumps({**compact_document(r), "body": "@"}).replace('"@"', nested(4500))
        ),
        encodings=("compact",),
    ),
    bad(
        "vault-headers-nested-at-size-limit",
        "size/nesting",
        "iam_request_headers must be a JSON object",
        token=lambda r: vault_with(r, iam_request_headers=vault_headers_text(nested(5000))),
        encodings=("vault",),
    ),
    bad(
        "request-body-oversized",
        "size/nesting",
        "request body is larger than 65536 bytes",
        raw_body=lambda t: json.dumps({"token": t, "dataplane": {**CLAIM, "name": "x" * 70_000}}),
    ),
    bad(
        "request-body-nested-too-deeply",
        "size/nesting",
        "recursion limit exceeded",
        raw_body=lambda t: json.dumps({"token": t, "dataplane": "@"}).replace('"@"', nested(5000)),
    ),
    # base64 and UTF-8
    bad(
        "compact-padded",
        "base64/utf-8",
        "must be base64url without padding",
        token=lambda r: encode_compact(r) + "==",
        encodings=("compact",),
    ),
    bad(
        "compact-standard-alphabet-char",
        "base64/utf-8",
        "token is not valid base64",
        token=lambda r: with_char_at(encode_compact(r), 100, "+"),
        encodings=("compact",),
    ),
    bad(
        "compact-newline-inside",
        "base64/utf-8",
        "token is not valid base64",
        token=lambda r: encode_compact(r)[:100] + "\n" + encode_compact(r)[100:],
        encodings=("compact",),
    ),
    bad(
        "compact-not-utf-8",
        "base64/utf-8",
        "token is not valid UTF-8",
        token=lambda r: compact_raw(json.dumps(compact_document(r)).encode().replace(b"POST", b"P\xd3ST")),
        encodings=("compact",),
    ),
    bad(
        "vault-url-not-base64",
        "base64/utf-8",
        "iam_request_url is not valid base64",
        token=lambda r: vault_with(r, iam_request_url=r.url),
        encodings=("vault",),
    ),
    bad(
        "vault-body-padding-stripped",
        "base64/utf-8",
        "iam_request_body is not valid base64",
        token=lambda r: vault_with(r, iam_request_body=padding_stripped(encode_vault(r)["iam_request_body"])),
        encodings=("vault",),
    ),
    bad(
        "vault-headers-mime-line-break",
        "base64/utf-8",
        "iam_request_headers is not valid base64",
        token=lambda r: vault_with(
            r, iam_request_headers=with_char_at(encode_vault(r)["iam_request_headers"], 76, "\n")
        ),
        encodings=("vault",),
    ),
    bad(
        "vault-body-not-utf-8",
        "base64/utf-8",
        "iam_request_body is not valid UTF-8",
        token=lambda r: vault_with(
            r, iam_request_body=base64.b64encode(BODY.encode().replace(b"Caller", b"Call\xe9r")).decode()
        ),
        encodings=("vault",),
    ),
    # the encodings' own shape
    bad(
        "compact-prefix-v2",
        "encoding",
        "compact token must start with 'kuma-aws-v1.'",
        token=lambda r: encode_compact(r).replace("-v1.", "-v2.", 1),
        encodings=("compact",),
    ),
    bad(
        "compact-prefix-missing",
        "encoding",
        "must start with",
        token=lambda r: encode_compact(r).removeprefix(COMPACT_PREFIX),
        encodings=("compact",),
    ),
    bad(
        "compact-extra-key",
        "encoding",
        "compact token must be an object with exactly method, url, headers and body",
        token=lambda r: compact_of({**compact_document(r), "region": "us-east-1"}),
        encodings=("compact",),
    ),
    bad(
        "compact-missing-body",
        "encoding",
        "exactly method, url, headers and body",
        token=lambda r: compact_of({k: v for k, v in compact_document(r).items() if k != "body"}),
        encodings=("compact",),
    ),
    bad(
        "compact-duplicate-url-key",
        "encoding",
        "token is not valid JSON: duplicate key",
        token=lambda r: compact_raw(
            json.dumps(compact_document(r))[:-1] + ', "url": "https://evil.example/"}'
        ),
        encodings=("compact",),
    ),
    bad(
        "compact-headers-as-list",
        "encoding",
        "token headers must be an object of name to string",
        token=lambda r: compact_of({**compact_document(r), "headers": [list(p) for p in r.headers]}),
        encodings=("compact",),
    ),
    bad(
        "compact-header-value-number",
        "encoding",
        "header Content-Length must be a string",
        token=lambda r: compact_of(
            {**compact_document(r), "headers": {**dict(r.headers), "Content-Length": 43}}
        ),
        encodings=("compact",),
    ),
    bad(
        "vault-extra-key",
        "encoding",
        "Vault login data must have exactly",
        token=lambda r: {**encode_vault(r), "role": "backend-task"},
        encodings=("vault",),
    ),
    bad(
        "vault-method-list",
        "encoding",
        "iam_http_request_method must be a string",
        token=lambda r: {**encode_vault(r), "iam_http_request_method": ["POST"]},
        encodings=("vault",),
    ),
    bad(
        "vault-headers-array",
        "encoding",
        "iam_request_headers must be a JSON object",
        token=lambda r: vault_with(
            r, iam_request_headers=vault_headers_text(json.dumps([list(p) for p in r.headers]))
        ),
        encodings=("vault",),
    ),
    bad(
        "vault-headers-duplicate-key",
        "encoding",
        "iam_request_headers is not valid JSON: duplicate key",
        token=lambda r: vault_with(
            r,
            iam_request_headers=vault_headers_text(
                json.dumps({n: [v] for n, v in r.headers})[:-1]
                + f', "{SERVER_ID_HEADER}": ["other-control-plane"]}}'
            ),
        ),
        encodings=("vault",),
    ),
    bad(
        "vault-header-list-two-dates",
        "encoding",
        "appears more than once",
        token=lambda r: vault_with(
            r,
            iam_request_headers=vault_headers_text(
                json.dumps({n: [v, v] if n == "X-Amz-Date" else [v] for n, v in r.headers})
            ),
        ),
        encodings=("vault",),
    ),
    bad(
        "token-a-number",
        "encoding",
        "token must be a compact string or a Vault login object",
        raw_body=lambda t: json.dumps({"token": 12345, "dataplane": CLAIM}),
        encodings=("compact",),
    ),
    # the signature and the secrets it covers: well-formed, so only STS can refuse them
    denied(
        "signature-one-digit-changed",
        "signature",
        "sts_rejected",
        "SignatureDoesNotMatch",
        request=lambda r: with_authorization(r, signature=flip_last(signature_of(r))),
        reaches_sts=True,
    ),
    denied(
        "session-token-one-char-changed",
        "signature",
        "sts_rejected",
        "InvalidClientTokenId",
        request=lambda r: with_header(
            r, "X-Amz-Security-Token", flip_last(header(r, "X-Amz-Security-Token"))
        ),
        reaches_sts=True,
    ),
    denied(
        "access-key-of-another-principal",
        "signature",
        "sts_rejected",
        "InvalidClientTokenId",
        request=lambda r: r,
        principal="backend-key-swap",
        reaches_sts=True,
    ),
    # principals and accounts: genuinely signed, refused on what STS says
    denied(
        "iam-user-long-term-key",
        "principal/account",
        "unsupported_principal",
        "not a 'user' principal",
        principal="ci-user",
        reaches_sts=True,
    ),
    denied(
        "same-tags-untrusted-account",
        "principal/account",
        "account_not_authorized",
        "account 333333333333 is not authorized",
        principal="intruder",
        reaches_sts=True,
    ),
    allowed(
        "session-named-like-another-role",
        "principal/account",
        role="frontend-task",
        principal="frontend-as-backend",
        claim={"mesh": "default", "name": "backend-01"},
    ),
    # what real signers send must still pass
    allowed("botocore", "real-signer"),
    allowed("botocore-legacy-global-endpoint", "real-signer", sign={"host": "sts.amazonaws.com"}),
    allowed("botocore-eu-west-1", "real-signer", sign={"region": "eu-west-1"}),
    allowed("botocore-fips", "real-signer", sign={"host": "sts-fips.us-east-1.amazonaws.com"}),
    allowed("botocore-dualstack", "real-signer", sign={"host": "sts.us-east-1.api.aws"}),
    allowed(
        "botocore-fips-dualstack",
        "real-signer",
        sign={"host": "sts-fips.eu-west-1.api.aws", "region": "eu-west-1"},
    ),
    allowed("go-sdk-v1-headers", "real-signer", sign={"headers": GO_SDK_V1_HEADERS, "keep_host": False}),
    allowed("go-sdk-v2-headers", "real-signer", sign={"headers": GO_SDK_V2_HEADERS, "keep_host": False}),
    allowed(
        "vault-client-string-headers",
        "real-signer",
        token=lambda r: vault_with(r, iam_request_headers=vault_headers_text(json.dumps(dict(r.headers)))),
        encodings=("vault",),
    ),
    allowed(
        "unsigned-user-agent-added",
        "real-signer",
        request=lambda r: adding(r, ("User-Agent", "kuma-dp/2.9.0")),
    ),
    allowed(
        "host-header-lowercase-name",
        "real-signer",
        request=lambda r: replace(r, headers=tuple(("host" if n == "Host" else n, v) for n, v in r.headers)),
    ),
]


ROUTES = ("verify", "tokens")


def _params() -> Iterator[Any]:
    for route in ROUTES:
        for row in CATALOGUE:
            for encoding in row.encodings:
                marks = [pytest.mark.xfail(strict=True, reason=row.xfail)] if row.xfail else []
                yield pytest.param(
                    row, encoding, route, id=f"{route}:{row.klass}:{row.id}:{encoding}", marks=marks
                )


# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture
def verifier_environment_vars(
    verifier_environment_vars: dict[str, str], aws_counter: FakeAws
) -> dict[str, str]:
    """Everything the verifier sends to AWS passes through the counting proxy (conftest's aws_counter)."""
    aws_counter.reset_requests()
    through_proxy = (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_STS",
        "AWS_ENDPOINT_URL_IAM",
        "AWS_ENDPOINT_URL_DYNAMODB",
    )
    return {**verifier_environment_vars, **dict.fromkeys(through_proxy, aws_counter.url)}


@pytest.fixture
def issuer_environment_vars(issuer_environment_vars: dict[str, str], aws_counter: FakeAws) -> dict[str, str]:
    """The token issuer's calls to AWS (KMS and Secrets Manager too) pass through the same counting proxy."""
    aws_counter.reset_requests()
    names = [name for name in issuer_environment_vars if name.startswith("AWS_ENDPOINT_URL")]
    return {**issuer_environment_vars, **dict.fromkeys(names, aws_counter.url)}


@pytest.fixture(scope="module")
def signers(demo_world: DemoWorld) -> Signers:
    return Signers(demo_world)


@pytest.fixture
def ours(verifier_environment_vars: dict[str, str]) -> str:
    """The server id this verifier answers for; a row's own server id may be derived from it."""
    return verifier_environment_vars["KUMA_IAM_SERVER_ID"]


def base_request(signers: Signers, row: Hostile, ours: str, now: datetime) -> SignedRequest:
    """The row's genuine token; a signing time it names is resolved against `now`, the verifier's clock."""
    how = {"server_id": ours, **row.sign}
    if callable(how["server_id"]):
        how["server_id"] = how["server_id"](ours)
    if isinstance(how.get("at"), FromNow):
        how["at"] = how["at"].of(now)
    if row.principal == "backend-key-swap":
        # another valid key (the intruder's) in the scope, backend's signature and session token kept
        genuine = signers.sign("backend", **how)
        other_key = signers.credentials("intruder").access_key
        return with_authorization(genuine, key=other_key)
    return signers.sign(row.principal, **how)


def compact_keeping_every_header(request: SignedRequest) -> str:
    """encode_compact, except that a repeated header name is written twice, as an attacker would."""
    headers = "{" + ", ".join(f"{json.dumps(n)}: {json.dumps(v)}" for n, v in request.headers) + "}"
    document = json.dumps({**compact_document(request), "headers": "@"}).replace('"@"', headers)
    return compact_raw(document)


def token_for(row: Hostile, request: SignedRequest, encoding: str) -> object:
    if row.token is not None:
        return row.token(request)
    changed = row.request(request)
    return compact_keeping_every_header(changed) if encoding == "compact" else encode_vault(changed)


# --- the catalogue through the handler ------------------------------------------------------------------


@pytest.mark.parametrize(("row", "encoding", "route"), list(_params()))
def test_hostile_input_gets_its_precise_answer(
    row: Hostile,
    encoding: str,
    route: str,
    signers: Signers,
    ours: str,
    request: pytest.FixtureRequest,
    aws_counter: FakeAws,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Given a genuinely signed token changed in exactly one way (its signing time, if the row names one,
    # relative to the clock of the route's verifier, which the test holds: the row decides the same however
    # late it runs)
    held: ManualClock = request.getfixturevalue("verifier_clock" if route == "verify" else "issuer_clock")
    genuine = base_request(signers, row, ours, held())
    changed = row.request(genuine)
    token = token_for(row, genuine, encoding)
    raw_body = row.raw_body(token) if row.raw_body else None
    issued: list[str] = []
    if route == "verify":
        # When the control plane asks the verifier about it
        verify: Verifier = request.getfixturevalue("verify")
        answer = verify(token, dict(row.claim), raw_body=raw_body)
        # Then the answer is exactly the one documented
        assert answer.status == row.status, answer.body
        if row.code == "allowed":
            assert answer.body["allowed"] is True, answer.body
            assert answer.body["identity"]["roleName"] == row.message
        else:
            assert answer.reason == row.code, answer.body
            assert row.message_for(encoding) in answer.body["message"], answer.body
            assert answer.body.get("allowed") is not True
    else:
        # When the signing role asks the token issuer for a token with it
        issuer: TokenIssuer = request.getfixturevalue("issuer")
        exchanged = issuer.exchange(
            token, dict(row.claim), caller=signers.caller(row.principal), raw_body=raw_body
        )
        # Then the answer is the same decision: a token, a 403 with the same reason, or the same 400
        if row.code == "allowed":
            assert exchanged.status == 200, exchanged.body
            issued.append(exchanged.body["token"])
        else:
            assert exchanged.status == (403 if row.status == 200 else row.status), exchanged.body
            assert exchanged.reason == row.code, exchanged.body
            assert row.message_for(encoding) in exchanged.body["message"], exchanged.body
            assert "token" not in exchanged.body
    # And input refused before the network made no call at all; the rest did reach STS
    reached = aws_counter.count_by_service()
    if row.reaches_sts:
        assert reached["sts"] >= 1, reached
    else:
        assert sum(reached.values()) == 0, f"refused input still reached AWS: {dict(reached)}"
    # And nothing secret reached the logs or metrics: not the token, not the signer's or the verifier's keys
    output = capfd.readouterr()
    secrets = [
        *token_secrets(token, changed),
        *header_secrets(r.headers for r in aws_counter.requests),
        signers.credentials("backend").secret_key,
        signers.world.verifier.secret_access_key,
        *issued,  # the Kuma token handed out is a credential too
    ]
    assert_no_secrets(output.out + output.err, secrets)


def test_the_proxy_would_see_a_call_that_reached_aws(
    signers: Signers, ours: str, verify: Verifier, aws_counter: FakeAws
) -> None:
    """The zero counts above mean something: the same proxy counts the forward of a genuine token."""
    answer = verify(encode_compact(signers.sign(server_id=ours)), dict(CLAIM))
    assert answer.body["allowed"] is True
    reached = aws_counter.count_by_service()
    assert reached["sts"] >= 1, reached
    assert reached["iam"] >= 1, reached
    forwarded = [r for r in aws_counter.requests if b"GetCallerIdentity" in r.body and r.service == "sts"]
    assert forwarded
    assert forwarded[0].header("Host") == "sts.us-east-1.amazonaws.com"


REQUIRED_CLASSES = {
    "host/partition": 8,
    "host-scope-region": 6,
    "method": 2,
    "query": 3,
    "body": 6,
    "headers": 12,
    "server-id": 5,
    "dates": 5,
    "size/nesting": 4,
    "base64/utf-8": 5,
    "encoding": 8,
    "signature": 2,
    "principal/account": 2,
    "real-signer": 5,
}


def catalogue_counts() -> Counter[str]:
    return Counter(row.klass for row in CATALOGUE)


def test_catalogue_counts_per_class(capsys: pytest.CaptureFixture[str]) -> None:
    counts = catalogue_counts()
    cases = Counter(row.klass for row in CATALOGUE for _ in row.encodings)
    hostile = sum(n for k, n in counts.items() if k != "real-signer")
    with capsys.disabled():
        print("\nhostile-input catalogue (rows / handler cases):")
        for klass in sorted(counts):
            print(f"  {klass:<20} {counts[klass]:>3} / {cases[klass]:>3}")
        print(f"  {'hostile total':<20} {hostile:>3} / {sum(cases.values()) - cases['real-signer']:>3}")
    assert set(counts) == set(REQUIRED_CLASSES)
    assert all(counts[klass] >= minimum for klass, minimum in REQUIRED_CLASSES.items()), counts
    assert hostile >= 60
    assert len({row.id for row in CATALOGUE}) == len(CATALOGUE), "row ids must be unique"
