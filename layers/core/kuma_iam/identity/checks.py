"""Everything a token must satisfy before any network call; what passes is an `StsCall` ready to forward."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from urllib3.util import SKIP_HEADER

from kuma_iam.errors import Denied, DenyReason, InvalidRequest
from kuma_iam.identity.endpoints import StsEndpoint, sts_endpoint_for_host
from kuma_iam.identity.token import SignedRequest

SERVER_ID_HEADER = "X-Kuma-AWS-IAM-Server-ID"
# What a server id may be (the verifier's setting, and so what a sidecar may sign for): printable ASCII
# without spaces, since SigV4 folds whitespace and "a b" and "a  b" would sign alike.
SERVER_ID = re.compile(r"[\x21-\x7e]{1,256}")
GET_CALLER_IDENTITY = "Action=GetCallerIdentity&Version=2011-06-15"
GET_CALLER_IDENTITY_BODIES = frozenset({GET_CALLER_IDENTITY, "Version=2011-06-15&Action=GetCallerIdentity"})
XML_ACCEPTS = frozenset({"*/*", "text/xml", "application/xml"})
# What real signers send: botocore, the Go SDKs v1 and v2 (Amz-Sdk-*), Vault-compatible clients.
# Anything else is refused: an unknown header is either noise or an attempt to steer STS.
ALLOWED_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "amz-sdk-invocation-id",
        "amz-sdk-request",
        "authorization",
        "content-length",
        "content-type",
        "host",
        "user-agent",
        "x-amz-content-sha256",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-user-agent",
        SERVER_ID_HEADER.lower(),
    }
)
MUST_BE_SIGNED = frozenset({"host", "x-amz-date", SERVER_ID_HEADER.lower()})
# Patterns are applied with fullmatch: '$' would also accept a trailing newline.
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")
HEADER_VALUE = re.compile(r"[\t\x20-\x7e]{0,8192}")
URL_TEXT = re.compile(r"[!-~]{1,512}")  # printable ASCII, no spaces: urlsplit would silently strip the rest
AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]{16,128})/(?P<date>\d{8})/(?P<region>[a-z0-9-]{1,32})"
    r"/(?P<service>[a-z0-9-]{1,32})/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]{1,1024}),"
    r" ?Signature=(?P<signature>[0-9a-f]{64})"
)
AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
# urllib3, which forwards the token, drops a header with this value (User-Agent, Accept-Encoding, Host) or
# refuses to send the request at all (any other header): such a token could never reach STS as signed.
RESERVED_VALUE = SKIP_HEADER
CONTENT_TYPE = re.compile(r"application/x-www-form-urlencoded(; ?charset=utf-8)?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class StsCall:
    """A signed GetCallerIdentity that passed every local check, addressed to a known STS endpoint; `headers`
    are the signed request's own, in its order and spelling, with Host always among them."""

    endpoint: StsEndpoint
    headers: tuple[tuple[str, str], ...]
    body: bytes
    access_key_id: str
    signature: str
    signed_at: datetime


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    server_id: str
    max_age: timedelta
    max_skew: timedelta
    # Only the verifier's own partition: its accounts and reader roles live there, and other partitions'
    # endpoints are not reachable from it (a forged token for them would end in a 503, not a 400).
    partition: str = "aws"


def check_signed_request(request: SignedRequest, policy: TokenPolicy, now: datetime) -> StsCall:
    """Raise InvalidRequest for anything malformed, Denied(token_expired) for a stale or future signature."""
    if request.method != "POST":
        raise InvalidRequest(f"method must be POST, not {request.method[:16]!r}")
    endpoint = _check_url(request.url, policy.partition)
    if endpoint.partition != policy.partition:
        raise InvalidRequest(f"URL host is an STS endpoint of another partition than {policy.partition}")
    headers = _check_headers(request.headers)
    host = headers.get("host", endpoint.host)
    if host != endpoint.host:
        raise InvalidRequest("Host header disagrees with the URL host")
    if request.body not in GET_CALLER_IDENTITY_BODIES:
        raise InvalidRequest("body must be exactly Action=GetCallerIdentity&Version=2011-06-15")
    # STS answers JSON (or a compressed body) when asked: only its XML, uncompressed, is what we read.
    if headers.get("accept", "*/*").lower() not in XML_ACCEPTS:
        raise InvalidRequest("Accept header must allow STS's XML answer")
    if headers.get("accept-encoding", "identity").lower() != "identity":
        raise InvalidRequest("Accept-Encoding header must be identity")
    content_type = headers.get("content-type")
    if content_type is not None and not CONTENT_TYPE.fullmatch(content_type):
        raise InvalidRequest("Content-Type must be application/x-www-form-urlencoded")
    if "content-length" in headers and headers["content-length"] != str(len(request.body.encode())):
        raise InvalidRequest("Content-Length disagrees with the body")

    amz_date = headers.get("x-amz-date")
    if amz_date is None or not AMZ_DATE.fullmatch(amz_date):
        raise InvalidRequest("X-Amz-Date header is missing or not in the form YYYYMMDDTHHMMSSZ")
    server_id = headers.get(SERVER_ID_HEADER.lower())
    if server_id is None:
        raise InvalidRequest(f"{SERVER_ID_HEADER} header is missing: the sidecar must sign for a server id")
    if server_id != policy.server_id:
        raise InvalidRequest(f"{SERVER_ID_HEADER} header names another control plane")
    authorization = _check_authorization(headers, endpoint, amz_date)

    signed_at = _parse_amz_date(amz_date)
    if now - signed_at > policy.max_age:
        age = int((now - signed_at).total_seconds())
        raise Denied(
            DenyReason.TOKEN_EXPIRED,
            f"token was signed {age}s ago, more than {int(policy.max_age.total_seconds())}s",
        )
    if signed_at - now > policy.max_skew:
        raise Denied(DenyReason.TOKEN_EXPIRED, "token is signed in the future, beyond the allowed clock skew")

    # Forwarded exactly as signed (its Host already equals the endpoint's); a client that kept Host out of its
    # header map (Go) signed the URL's host, which is named here.
    implicit_host = () if "host" in headers else (("Host", endpoint.host),)
    return StsCall(
        endpoint=endpoint,
        headers=(*implicit_host, *request.headers),
        body=request.body.encode(),
        access_key_id=authorization["key"],
        signature=authorization["signature"],
        signed_at=signed_at,
    )


def _check_url(url: str, partition: str) -> StsEndpoint:
    if not URL_TEXT.fullmatch(url):
        raise InvalidRequest("URL must be printable ASCII without spaces, at most 512 characters")
    if "?" in url or "#" in url:
        raise InvalidRequest("URL must not carry a query string or fragment")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidRequest("URL is not well-formed") from None
    if parts.scheme != "https":
        raise InvalidRequest("URL scheme must be https")
    if "@" in parts.netloc or ":" in parts.netloc:
        raise InvalidRequest("URL must not carry credentials or a port")
    if parts.path not in ("", "/"):
        raise InvalidRequest("URL path must be /")
    endpoint = sts_endpoint_for_host(parts.netloc, partition)
    if endpoint is None:
        raise InvalidRequest(
            "URL host is not an STS endpoint of a known partition and region (in any variant botocore"
            " resolves: regional, FIPS, dual-stack)"
        )
    return endpoint


def _check_headers(pairs: tuple[tuple[str, str], ...]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in pairs:
        if not HEADER_NAME.fullmatch(name):
            raise InvalidRequest("a header name is not a valid HTTP token")
        key = name.lower()
        if key not in ALLOWED_HEADERS:
            raise InvalidRequest(f"header {name!r} is not allowed")
        if key in headers:
            raise InvalidRequest(f"header {name!r} appears more than once")
        if not HEADER_VALUE.fullmatch(value):
            raise InvalidRequest(f"header {name!r} has a value with control characters or is too long")
        if RESERVED_VALUE in value:
            raise InvalidRequest(
                f"header {name!r} carries {RESERVED_VALUE}, a value the HTTP client reserves; it cannot be"
                " forwarded as signed"
            )
        headers[key] = value
    if "authorization" not in headers:
        raise InvalidRequest("Authorization header is missing")
    return headers


def _check_authorization(headers: dict[str, str], endpoint: StsEndpoint, amz_date: str) -> dict[str, str]:
    match = AUTHORIZATION.fullmatch(headers["authorization"])
    if match is None:
        raise InvalidRequest("Authorization header is not an AWS4-HMAC-SHA256 signature")
    fields = match.groupdict()
    if fields["service"] != "sts":
        raise InvalidRequest("credential scope must name the sts service")
    if fields["region"] != endpoint.region:
        raise InvalidRequest("credential scope region disagrees with the URL region")
    if fields["date"] != amz_date[:8]:
        raise InvalidRequest("credential scope date disagrees with X-Amz-Date")
    signed = fields["signed"].split(";")
    if signed != sorted(set(signed)):
        raise InvalidRequest("SignedHeaders must be sorted and unique")
    present = set(headers) | {"host"}
    if missing := [name for name in signed if name not in present]:
        raise InvalidRequest(f"SignedHeaders names {missing[0]!r}, which the request does not carry")
    required = MUST_BE_SIGNED | ({"x-amz-security-token"} & set(headers))
    if unsigned := sorted(required - set(signed)):
        raise InvalidRequest(f"header {unsigned[0]!r} must be signed")
    return fields


def _parse_amz_date(value: str) -> datetime:
    """`value` has the form YYYYMMDDTHHMMSSZ (AMZ_DATE, ASCII digits); datetime refuses what is no real
    moment (month 13, February 30, hour 24, second 60), as strptime would, for a tenth of its cost."""
    try:
        return datetime(
            int(value[0:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[9:11]),
            int(value[11:13]),
            int(value[13:15]),
            tzinfo=UTC,
        )
    except ValueError:
        raise InvalidRequest("X-Amz-Date is not a real date and time") from None
