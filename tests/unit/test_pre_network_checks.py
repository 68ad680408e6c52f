"""What a token must pass before any network call: hostile variants refused, real signers' headers taken."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from kuma_iam.errors import Denied, DenyReason, InvalidRequest
from kuma_iam.identity.checks import (
    ALLOWED_HEADERS,
    GET_CALLER_IDENTITY_BODIES,
    StsCall,
    TokenPolicy,
    check_signed_request,
)
from kuma_iam.identity.token import SignedRequest, decode_token, encode_compact, encode_vault
from support.sdk_headers import GO_SDK_V1_HEADERS, GO_SDK_V2_HEADERS
from support.token_mutations import (
    adding,
    at_url,
    dated,
    header,
    moved_to,
    not_signing,
    setting,
    signing,
    with_authorization,
    with_header,
)

Mutation = Callable[[SignedRequest], SignedRequest]

SERVER_ID_HEADER = "X-Kuma-AWS-IAM-Server-ID"
BODY = "Action=GetCallerIdentity&Version=2011-06-15"


def check(request: SignedRequest, policy: TokenPolicy, now: datetime) -> StsCall:
    return check_signed_request(request, policy, now)


def assert_well_formed_get_caller_identity(call: StsCall) -> None:
    assert call.body.decode() in GET_CALLER_IDENTITY_BODIES
    assert [value for name, value in call.headers if name.lower() == "host"] == [call.endpoint.host]


# --- the baseline ------------------------------------------------------------------------------------------


def test_request_signed_by_our_signer_passes_and_is_readdressed(
    signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime
) -> None:
    # Given a GetCallerIdentity signed by botocore for us-east-1
    # When it is checked at the moment it was signed
    call = check(signed_request, policy, signed_at)
    # Then it is ready to forward to that region's STS endpoint, with its signature facts extracted
    assert (call.endpoint.host, call.endpoint.region, call.endpoint.partition) == (
        "sts.us-east-1.amazonaws.com",
        "us-east-1",
        "aws",
    )
    assert call.body == BODY.encode()
    assert call.access_key_id == "ASIAEXAMPLEEXAMPLE01"
    assert re.fullmatch(r"[0-9a-f]{64}", call.signature)
    assert call.signed_at == signed_at
    assert_well_formed_get_caller_identity(call)
    assert ("X-Amz-Security-Token", "session-token") in call.headers


# --- refusals: (mutation, message) -------------------------------------------------------------------------

URL_CASES = [
    ("https://sts.example.com/", "not an STS endpoint"),
    ("https://sts.us-east-1.amazonaws.com.evil.com/", "not an STS endpoint"),
    ("https://evil.com/sts.us-east-1.amazonaws.com/", "URL path must be /"),
    ("https://evil.com/?https://sts.us-east-1.amazonaws.com/", "query string or fragment"),
    ("https://sts.us-east-1.amazonaws.com@evil.com/", "must not carry credentials or a port"),
    ("https://evil.com@sts.us-east-1.amazonaws.com/", "must not carry credentials or a port"),
    ("https://user:pass@sts.us-east-1.amazonaws.com/", "must not carry credentials or a port"),
    ("https://sts.us-east-1.amazonaws.com:443/", "must not carry credentials or a port"),
    ("https://sts.us-east-1.amazonaws.com:8443/", "must not carry credentials or a port"),
    ("https://STS.US-EAST-1.AMAZONAWS.COM/", "not an STS endpoint"),
    ("https://Sts.us-east-1.amazonaws.com/", "not an STS endpoint"),
    ("https://sts.us-east-1.amazonaws.com./", "not an STS endpoint"),
    ("https://sts.xx-fake-1.amazonaws.com/", "not an STS endpoint"),
    ("https://sts.us-east-1.amazonaws.com.cn/", "not an STS endpoint"),
    ("https://sts.aws-global.amazonaws.com/", "not an STS endpoint"),
    ("https://127.0.0.1/", "not an STS endpoint"),
    ("https:///", "not an STS endpoint"),
    ("https://[::1/", "not well-formed"),
    ("http://sts.us-east-1.amazonaws.com/", "scheme must be https"),
    ("ftp://sts.us-east-1.amazonaws.com/", "scheme must be https"),
    ("//sts.us-east-1.amazonaws.com/", "scheme must be https"),
    ("sts.us-east-1.amazonaws.com", "scheme must be https"),
    ("https://sts.us-east-1.amazonaws.com/sts", "URL path must be /"),
    ("https://sts.us-east-1.amazonaws.com//", "URL path must be /"),
    ("https://sts.us-east-1.amazonaws.com/%3F", "URL path must be /"),
    ("https://sts.us-east-1.amazonaws.com/?", "query string or fragment"),
    ("https://sts.us-east-1.amazonaws.com/?Action=AssumeRole", "query string or fragment"),
    ("https://sts.us-east-1.amazonaws.com?Action=GetCallerIdentity", "query string or fragment"),
    ("https://sts.us-east-1.amazonaws.com/#", "query string or fragment"),
    ("https://sts.us-east-1.amazonaws.com/#evil", "query string or fragment"),
]

BODY_CASES = [
    "Action=GetCallerIdentity&Action=GetCallerIdentity&Version=2011-06-15",
    "Action=GetCallerIdentity&Version=2011-06-15&Version=2011-06-15",
    "Action=GetCallerIdentity&Version=2011-06-15&RoleArn=x",
    "action=GetCallerIdentity&Version=2011-06-15",
    "Action=getcalleridentity&Version=2011-06-15",
    "ACTION=GETCALLERIDENTITY&VERSION=2011-06-15",
    "Action=GetCallerIdentity&Version=2011-06-16",
    "Action=GetCallerIdentity",
    "Action=GetCallerIdentity&Version=2011-06-15&",
    "&Action=GetCallerIdentity&Version=2011-06-15",
    "Action=GetCallerIdentity;Version=2011-06-15",
    "Action=Get%43allerIdentity&Version=2011-06-15",
    "Action%3DGetCallerIdentity%26Version%3D2011-06-15",
    "Action=GetCallerIdentity&Version=2011-06-15%00",
    "Action=GetCallerIdentity&Version=2011-06-15\n",
    " Action=GetCallerIdentity&Version=2011-06-15",
    "Action=AssumeRole&Version=2011-06-15",
    '{"Action": "GetCallerIdentity", "Version": "2011-06-15"}',
    "",
]

REFUSALS: list[tuple[str, Mutation, str]] = [
    *[(f"url:{url}", lambda r, url=url: at_url(r, url), message) for url, message in URL_CASES],
    *[
        (f"method:{m}", lambda r, m=m: replace(r, method=m), "method must be POST")
        for m in ("GET", "post", "PUT", "")
    ],
    *[(f"body:{b!r}", lambda r, b=b: replace(r, body=b), "body must be exactly") for b in BODY_CASES],
    # the Host header must name the URL's host exactly
    (
        "host-other-region",
        lambda r: with_header(r, "Host", "sts.eu-west-1.amazonaws.com"),
        "Host header disagrees with the URL host",
    ),
    ("host-evil", lambda r: with_header(r, "Host", "evil.com"), "Host header disagrees"),
    (
        "host-with-port",
        lambda r: with_header(r, "Host", "sts.us-east-1.amazonaws.com:443"),
        "Host header disagrees",
    ),
    (
        "host-uppercase",
        lambda r: with_header(r, "Host", "STS.US-EAST-1.AMAZONAWS.COM"),
        "Host header disagrees",
    ),
    (
        "url-moved-host-kept",
        lambda r: at_url(r, "https://sts.eu-west-1.amazonaws.com/"),
        "Host header disagrees",
    ),
    # the credential scope must fit the URL and the date
    (
        "scope-region-eu-west-1-url-us-east-1",
        lambda r: with_authorization(r, region="eu-west-1"),
        "credential scope region disagrees with the URL region",
    ),
    (
        "url-eu-west-1-scope-us-east-1",
        lambda r: moved_to(r, "sts.eu-west-1.amazonaws.com"),
        "credential scope region disagrees with the URL region",
    ),
    ("scope-service-iam", lambda r: with_authorization(r, service="iam"), "must name the sts service"),
    (
        "scope-service-sts-fips",
        lambda r: with_authorization(r, service="sts-fips"),
        "must name the sts service",
    ),
    (
        "scope-date-other-day",
        lambda r: with_authorization(r, date="20200101"),
        "scope date disagrees with X-Amz-Date",
    ),
    # headers: the allowlist, repetition, syntax
    *[
        (
            f"not-allowed:{name}",
            lambda r, name=name: adding(r, (name, "x")),
            f"header {name!r} is not allowed",
        )
        for name in (
            "X-Forwarded-Host",
            "X-Amz-Target",
            "X-Forwarded-For",
            "X-HTTP-Method-Override",
            "Transfer-Encoding",
            "Connection",
            "Expect",
            "Cookie",
            "Proxy-Authorization",
            "X-Amzn-Trace-Id",
        )
    ],
    (
        "duplicate-same-case",
        lambda r: adding(r, ("X-Amz-Date", header(r, "X-Amz-Date"))),
        "header 'X-Amz-Date' appears more than once",
    ),
    (
        "duplicate-other-case",
        lambda r: adding(r, ("x-amz-date", header(r, "X-Amz-Date"))),
        "header 'x-amz-date' appears more than once",
    ),
    (
        "duplicate-host",
        lambda r: adding(r, ("host", "sts.us-east-1.amazonaws.com")),
        "appears more than once",
    ),
    (
        "duplicate-server-id",
        lambda r: adding(r, ("x-kuma-aws-iam-server-id", "other-cp")),
        "appears more than once",
    ),
    *[
        (
            f"value:{value!r}",
            lambda r, value=value: adding(r, ("User-Agent", value)),
            "control characters or is too long",
        )
        for value in (
            "bot\x00",
            "bot\r\nX-Amz-Target: x",
            "bot\rx",
            "bot\x7f",
            "bötocore",
            "\x1b[31m",
            "x" * 8193,
        )
    ],
    *[
        (
            f"name:{name!r}",
            lambda r, name=name: adding(r, (name, "x")),
            "a header name is not a valid HTTP token",
        )
        for name in ("Bad Header", "X-Amz-Date:", "", "Host\r\n", "Ünicode", "a" * 65, "(X)", "X\x00")
    ],
    ("no-authorization", lambda r: with_header(r, "Authorization", None), "Authorization header is missing"),
    # the server id binds the token to this control plane
    (
        "server-id-wrong",
        lambda r: with_header(r, SERVER_ID_HEADER, "other-control-plane"),
        f"{SERVER_ID_HEADER} header names another control plane",
    ),
    (
        "server-id-prefix",
        lambda r: with_header(r, SERVER_ID_HEADER, "cp-unit-test-2"),
        "names another control plane",
    ),
    ("server-id-empty", lambda r: with_header(r, SERVER_ID_HEADER, ""), "names another control plane"),
    (
        "server-id-unsigned",
        lambda r: not_signing(r, "x-kuma-aws-iam-server-id"),
        "header 'x-kuma-aws-iam-server-id' must be signed",
    ),
    (
        "server-id-dropped-still-signed",
        lambda r: with_header(r, SERVER_ID_HEADER, None),
        f"{SERVER_ID_HEADER} header is missing",
    ),
    (
        "security-token-unsigned",
        lambda r: not_signing(r, "x-amz-security-token"),
        "header 'x-amz-security-token' must be signed",
    ),
    ("host-unsigned", lambda r: not_signing(r, "host"), "header 'host' must be signed"),
    ("date-unsigned", lambda r: not_signing(r, "x-amz-date"), "header 'x-amz-date' must be signed"),
    # SignedHeaders must be canonical and truthful
    (
        "signed-headers-unsorted",
        lambda r: with_authorization(
            r, signed="host;content-type;x-amz-date;x-amz-security-token;x-kuma-aws-iam-server-id"
        ),
        "SignedHeaders must be sorted and unique",
    ),
    (
        "signed-headers-duplicated",
        lambda r: with_authorization(
            r, signed="content-type;host;host;x-amz-date;x-amz-security-token;x-kuma-aws-iam-server-id"
        ),
        "SignedHeaders must be sorted and unique",
    ),
    (
        "signed-headers-names-absent",
        lambda r: signing(r, "user-agent"),
        "SignedHeaders names 'user-agent', which the request does not carry",
    ),
    (
        "signed-headers-names-disallowed-absent",
        lambda r: signing(r, "x-forwarded-host"),
        "SignedHeaders names 'x-forwarded-host'",
    ),
    # Authorization must be a SigV4 HMAC signature
    *[
        (f"authorization:{tag}", mutation, "Authorization header is not an AWS4-HMAC-SHA256 signature")
        for tag, mutation in (
            ("garbage", lambda r: with_header(r, "Authorization", "garbage")),
            ("empty", lambda r: with_header(r, "Authorization", "")),
            ("bearer", lambda r: with_header(r, "Authorization", "Bearer eyJhbGciOiJub25lIn0.e30.")),
            ("ecdsa", lambda r: with_authorization(r, algorithm="AWS4-ECDSA-P256-SHA256")),
            ("sha512", lambda r: with_authorization(r, algorithm="AWS4-HMAC-SHA512")),
            ("lowercase-algorithm", lambda r: with_authorization(r, algorithm="aws4-hmac-sha256")),
            ("signature-uppercase", lambda r: with_authorization(r, signature="A" * 64)),
            ("signature-short", lambda r: with_authorization(r, signature="a" * 63)),
            ("signature-long", lambda r: with_authorization(r, signature="a" * 65)),
            ("key-lowercase", lambda r: with_authorization(r, key="asiaexampleexample01")),
            ("key-short", lambda r: with_authorization(r, key="ASIA")),
            (
                "scope-not-aws4-request",
                lambda r: with_header(
                    r, "Authorization", header(r, "Authorization").replace("aws4_request", "aws4_reques")
                ),
            ),
            ("signed-headers-uppercase", lambda r: with_authorization(r, signed="Host;X-Amz-Date")),
            (
                "trailing-junk",
                lambda r: with_header(r, "Authorization", header(r, "Authorization") + ", Extra=1"),
            ),
        )
    ],
    # X-Amz-Date: present, well-formed, a real instant
    (
        "date-missing",
        lambda r: with_header(r, "X-Amz-Date", None),
        "X-Amz-Date header is missing or not in the form",
    ),
    *[
        (
            f"date-form:{value}",
            lambda r, value=value: dated(r, value),
            "X-Amz-Date header is missing or not in the form",
        )
        for value in ("2026-11-28T07:52:00Z", "20261128T0752Z", "20261128T075200", "20261128 075200Z", "")
    ],
    *[
        (
            f"date-impossible:{value}",
            lambda r, value=value: dated(r, value),
            "X-Amz-Date is not a real date and time",
        )
        for value in (
            "20261399T000000Z",
            "20260230T000000Z",
            "20261128T250000Z",
            "20261128T076100Z",
            "00000101T000000Z",
        )
    ],
    # body framing headers must agree with the body
    *[
        (
            f"content-type:{value}",
            lambda r, value=value: with_header(r, "Content-Type", value),
            "Content-Type must be",
        )
        for value in ("application/json", "application/x-amz-json-1.1", "text/plain", "multipart/form-data")
    ],
    *[
        (
            f"content-length:{value}",
            lambda r, value=value: adding(r, ("Content-Length", value)),
            "Content-Length disagrees",
        )
        for value in ("44", "0", "043", "-43", "43 ")
    ],
]


@pytest.mark.parametrize(
    ("mutation", "message"), [(m, msg) for _, m, msg in REFUSALS], ids=[i for i, _, _ in REFUSALS]
)
def test_hostile_variant_is_refused_before_any_network_call(
    mutation: Mutation, message: str, signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime
) -> None:
    # Given a valid signed request with one hostile change
    request = mutation(signed_request)
    # When it is checked
    with pytest.raises(InvalidRequest) as refused:
        check(request, policy, signed_at)
    # Then it is a 400 naming what is wrong
    assert message in refused.value.message


# --- core bugs: hostile input that is accepted today -------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://sts.us-east-1.amazon\taws.com/",
        "https://sts.us-east-1.amazonaws.com/\n",
        "https://sts.us-east-1.amazonaws.com\r\n/",
        " https://sts.us-east-1.amazonaws.com/",
        "\x00https://sts.us-east-1.amazonaws.com/",
    ],
    ids=["tab-in-host", "trailing-newline", "crlf-before-path", "leading-space", "leading-nul"],
)
def test_url_with_whitespace_or_control_characters_is_refused(
    url: str, signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime
) -> None:
    with pytest.raises(InvalidRequest, match="URL"):
        check(at_url(signed_request, url), policy, signed_at)


@pytest.mark.parametrize(
    "mutation",
    [
        lambda r: adding(r, ("User-Agent", "botocore\n")),
        lambda r: adding(r, ("X-Amz-User-Agent", "aws-sdk-go-v2\n")),
        lambda r: with_header(r, "Authorization", header(r, "Authorization") + "\n"),
        lambda r: with_header(r, "X-Amz-Security-Token", "session-token\n"),
        lambda r: with_header(r, "Content-Type", "application/x-www-form-urlencoded\n"),
    ],
    ids=["user-agent", "x-amz-user-agent", "authorization", "security-token", "content-type"],
)
def test_header_value_ending_in_a_newline_is_refused(
    mutation: Mutation, signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime
) -> None:
    with pytest.raises(InvalidRequest, match="control characters"):
        check(mutation(signed_request), policy, signed_at)


SKIP_HEADER = "@@@SKIP_HEADER@@@"  # urllib3's sentinel, written out: the test must not trust the import


@pytest.mark.parametrize("encoding", ["compact", "vault"])
@pytest.mark.parametrize("value", [SKIP_HEADER, f" {SKIP_HEADER}", f"aws-sdk-go-v2/1.0 {SKIP_HEADER}"])
@pytest.mark.parametrize("name", sorted(ALLOWED_HEADERS))
def test_urllib3_skip_header_sentinel_in_any_allowed_header_is_refused(
    name: str,
    value: str,
    encoding: str,
    signed_request: SignedRequest,
    policy: TokenPolicy,
    signed_at: datetime,
) -> None:
    # Given a token whose header carries urllib3's sentinel, which would make the forward drop the header
    # (User-Agent, Accept-Encoding, Host) or raise ValueError (any other): a 500 before this check
    encoded = encode_compact if encoding == "compact" else encode_vault
    request = decode_token(encoded(setting(signed_request, name, value)))
    # When it is checked / Then it is a 400 naming the header, before any network call
    with pytest.raises(InvalidRequest) as refused:
        check(request, policy, signed_at)
    assert refused.value.message.lower().startswith(f"header {name!r} carries {SKIP_HEADER}".lower())


def test_header_name_ending_in_a_newline_is_named_an_invalid_token(
    signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime
) -> None:
    with pytest.raises(InvalidRequest, match="not a valid HTTP token"):
        check(adding(signed_request, ("Host\n", "x")), policy, signed_at)


def test_missing_server_id_header_is_reported_as_missing(
    signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime
) -> None:
    request = not_signing(with_header(signed_request, SERVER_ID_HEADER, None), "x-kuma-aws-iam-server-id")
    with pytest.raises(InvalidRequest, match=f"{SERVER_ID_HEADER} header is missing"):
        check(request, policy, signed_at)


# --- the time window ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "message"),
    [
        (timedelta(seconds=901), "token was signed 901s ago, more than 900s"),
        (timedelta(days=365), "more than 900s"),
        (timedelta(seconds=-301), "signed in the future, beyond the allowed clock skew"),
        (timedelta(days=-1), "signed in the future"),
    ],
    ids=["just-too-old", "a-year-old", "just-too-far-ahead", "a-day-ahead"],
)
def test_signature_outside_the_time_window_is_denied_as_expired(
    offset: timedelta, message: str, signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime
) -> None:
    # Given a well-formed token, checked `offset` after it was signed
    # When it is checked
    with pytest.raises(Denied) as denied:
        check(signed_request, policy, signed_at + offset)
    # Then it is a decision (token_expired), not a malformed request
    assert denied.value.reason is DenyReason.TOKEN_EXPIRED
    assert message in denied.value.message


@pytest.mark.parametrize(
    "offset",
    [timedelta(seconds=900), timedelta(seconds=-300), timedelta(0)],
    ids=["exactly-max-age", "exactly-max-skew", "now"],
)
def test_signature_just_inside_the_time_window_passes(
    offset: timedelta, signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime
) -> None:
    assert check(signed_request, policy, signed_at + offset).signed_at == signed_at


def test_time_is_judged_after_the_form_so_an_old_malformed_token_is_a_400(
    signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime
) -> None:
    # Given a token that is both stale and aimed at another host
    request = at_url(signed_request, "https://evil.com/")
    # When it is checked long after signing
    # Then the malformation is reported, not the age
    with pytest.raises(InvalidRequest, match="not an STS endpoint"):
        check(request, policy, signed_at + timedelta(days=1))


# --- what real signers send passes ------------------------------------------------------------------------


def _sdk_request(
    signed: SignedRequest, headers: tuple[tuple[str, str], ...], signed_names: str
) -> SignedRequest:
    """Keep botocore's date, token and signature, dress them as another SDK does."""
    amz_date = header(signed, "X-Amz-Date")
    authorization = (
        f"AWS4-HMAC-SHA256 Credential=ASIAEXAMPLEEXAMPLE01/{amz_date[:8]}/us-east-1/sts/aws4_request, "
        f"SignedHeaders={signed_names}, Signature={'ab' * 32}"
    )
    return SignedRequest(
        method="POST",
        url=signed.url,
        headers=(
            *headers,
            ("X-Amz-Date", amz_date),
            ("X-Amz-Security-Token", "session-token"),
            (SERVER_ID_HEADER, "cp-unit-test"),
            ("Authorization", authorization),
        ),
        body=BODY,
    )


def go_sdk_v2_style(signed: SignedRequest) -> SignedRequest:
    # Go keeps Host outside the header map, so a Go-built token carries no Host header at all.
    return _sdk_request(
        signed,
        GO_SDK_V2_HEADERS,
        "accept-encoding;amz-sdk-invocation-id;amz-sdk-request;content-length;content-type;host;"
        "x-amz-date;x-amz-security-token;x-kuma-aws-iam-server-id",
    )


def go_sdk_v1_style(signed: SignedRequest) -> SignedRequest:
    return _sdk_request(
        signed,
        GO_SDK_V1_HEADERS,
        "content-length;content-type;host;x-amz-date;x-amz-security-token;x-kuma-aws-iam-server-id",
    )


def legacy_global_endpoint(signed: SignedRequest) -> SignedRequest:
    return moved_to(signed, "sts.amazonaws.com")


def vault_go_client(signed: SignedRequest) -> SignedRequest:
    # Vault-compatible Go clients send http.Header: every value a list, names canonicalised, no Host.
    login = encode_vault(go_sdk_v1_style(signed))
    return decode_token(login)


def reordered_body(signed: SignedRequest) -> SignedRequest:
    return replace(signed, body="Version=2011-06-15&Action=GetCallerIdentity")


def without_content_type(signed: SignedRequest) -> SignedRequest:
    return not_signing(with_header(signed, "Content-Type", None), "content-type")


@pytest.mark.parametrize(
    ("dress", "host", "partition"),
    [
        (lambda r: r, "sts.us-east-1.amazonaws.com", "aws"),
        (go_sdk_v2_style, "sts.us-east-1.amazonaws.com", "aws"),
        (go_sdk_v1_style, "sts.us-east-1.amazonaws.com", "aws"),
        (legacy_global_endpoint, "sts.amazonaws.com", "aws"),
        (vault_go_client, "sts.us-east-1.amazonaws.com", "aws"),
        (lambda r: decode_token(encode_vault(r)), "sts.us-east-1.amazonaws.com", "aws"),
        (lambda r: decode_token(encode_compact(r)), "sts.us-east-1.amazonaws.com", "aws"),
        (reordered_body, "sts.us-east-1.amazonaws.com", "aws"),
        (without_content_type, "sts.us-east-1.amazonaws.com", "aws"),
        (
            lambda r: with_header(r, "Content-Type", "Application/X-WWW-Form-Urlencoded; Charset=UTF-8"),
            "sts.us-east-1.amazonaws.com",
            "aws",
        ),
        (lambda r: adding(r, ("User-Agent", "")), "sts.us-east-1.amazonaws.com", "aws"),
    ],
    ids=[
        "botocore",
        "go-sdk-v2",
        "go-sdk-v1",
        "legacy-global-endpoint",
        "vault-go-client-list-headers",
        "vault-round-trip",
        "compact-round-trip",
        "version-first-body",
        "no-content-type",
        "content-type-case",
        "empty-user-agent-header",
    ],
)
def test_what_real_signers_send_passes(
    dress: Mutation,
    host: str,
    partition: str,
    signed_request: SignedRequest,
    policy: TokenPolicy,
    signed_at: datetime,
) -> None:
    # Given a request in the shape a real client produces
    request = dress(signed_request)
    # When it is checked
    call = check(request, policy, signed_at)
    # Then it is forwarded to the named STS endpoint exactly as signed: every header, its spelling and order;
    # a client that kept Host out of its headers (Go) gets the URL's host named first
    assert (call.endpoint.host, call.endpoint.partition) == (host, partition)
    assert_well_formed_get_caller_identity(call)
    implicit_host = () if any(n.lower() == "host" for n, _ in request.headers) else (("Host", host),)
    assert call.headers == (*implicit_host, *request.headers)


@pytest.mark.parametrize(
    ("region", "host", "partition"),
    [
        ("eu-west-1", "sts.eu-west-1.amazonaws.com", "aws"),
        ("cn-north-1", "sts.cn-north-1.amazonaws.com.cn", "aws-cn"),
        ("cn-northwest-1", "sts.cn-northwest-1.amazonaws.com.cn", "aws-cn"),
        ("us-gov-west-1", "sts.us-gov-west-1.amazonaws.com", "aws-us-gov"),
        ("us-gov-east-1", "sts.us-gov-east-1.amazonaws.com", "aws-us-gov"),
    ],
)
def test_regional_endpoints_pass_in_a_verifier_of_their_partition(
    region: str,
    host: str,
    partition: str,
    sign: Callable[[str], SignedRequest],
    policy: TokenPolicy,
    signed_at: datetime,
) -> None:
    # Given a request signed for a region, checked by a verifier running in that region's partition
    request = sign(region)
    assert request.url == f"https://{host}/"
    # When it is checked
    call = check(request, replace(policy, partition=partition), signed_at)
    # Then the endpoint carries the partition, which the caller's ARN must later match
    assert (call.endpoint.host, call.endpoint.region, call.endpoint.partition) == (host, region, partition)


@pytest.mark.parametrize("region", ["cn-north-1", "us-gov-west-1", "us-iso-east-1"])
def test_endpoint_of_another_partition_is_refused_before_the_network(
    region: str, sign: Callable[[str], SignedRequest], policy: TokenPolicy, signed_at: datetime
) -> None:
    # Given a commercial-partition verifier and a token signed for another partition's STS
    request = sign(region)
    # When it is checked / Then it is a 400: that STS is unreachable from here and its accounts are not ours
    with pytest.raises(InvalidRequest, match="another partition than aws"):
        check(request, policy, signed_at)


def test_china_host_signed_with_a_commercial_region_scope_is_refused(
    sign: Callable[[str], SignedRequest], policy: TokenPolicy, signed_at: datetime
) -> None:
    request = with_authorization(sign("cn-north-1"), region="us-east-1")
    with pytest.raises(InvalidRequest, match="credential scope region disagrees"):
        check(request, replace(policy, partition="aws-cn"), signed_at)


def test_legacy_global_endpoint_with_a_non_us_east_1_scope_is_refused(
    signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime
) -> None:
    request = with_authorization(legacy_global_endpoint(signed_request), region="eu-west-1")
    with pytest.raises(InvalidRequest, match="credential scope region disagrees"):
        check(request, policy, signed_at)


def test_client_host_header_is_forwarded_once_as_signed(
    signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime
) -> None:
    # Given the Host header written in lower case, as some clients do
    request = replace(
        signed_request,
        headers=tuple(("host" if n == "Host" else n, v) for n, v in signed_request.headers),
    )
    # When it is checked
    call = check(request, policy, signed_at)
    # Then exactly one Host goes out, as the client wrote it, naming the endpoint's host
    assert [(n, v) for n, v in call.headers if n.lower() == "host"] == [("host", call.endpoint.host)]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("Accept", "application/json", "Accept header must allow STS's XML answer"),
        ("Accept", "application/x-amz-json-1.1", "Accept header must allow STS's XML answer"),
        ("Accept-Encoding", "gzip", "Accept-Encoding header must be identity"),
        ("Accept-Encoding", "br", "Accept-Encoding header must be identity"),
    ],
)
def test_asking_sts_for_another_answer_format_is_refused(
    name: str,
    value: str,
    message: str,
    signed_request: SignedRequest,
    policy: TokenPolicy,
    signed_at: datetime,
) -> None:
    # Given an (unsigned) header that would make STS answer JSON or compressed, which we would not read
    request = adding(signed_request, (name, value))
    # When it is checked / Then it is refused before the network, not forwarded to end in a 503
    with pytest.raises(InvalidRequest, match=message):
        check(request, policy, signed_at)


@pytest.mark.parametrize(
    ("name", "value"), [("Accept", "*/*"), ("Accept", "text/xml"), ("Accept-Encoding", "identity")]
)
def test_asking_sts_for_its_xml_passes(
    name: str, value: str, signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime
) -> None:
    assert check(adding(signed_request, (name, value)), policy, signed_at).body
