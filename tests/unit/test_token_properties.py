"""decode + pre-network checks under random mutation: refused precisely, or still a GetCallerIdentity."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kuma_iam.errors import Denied, InvalidRequest
from kuma_iam.identity.checks import (
    ALLOWED_HEADERS,
    GET_CALLER_IDENTITY_BODIES,
    SERVER_ID_HEADER,
    StsCall,
    TokenPolicy,
    check_signed_request,
)
from kuma_iam.identity.endpoints import sts_endpoint_for_host
from kuma_iam.identity.token import SignedRequest, decode_token, encode_compact, encode_vault
from support.token_mutations import compact_document, compact_of, compact_raw

FAST = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def checked(token: object, policy: TokenPolicy, now: datetime) -> StsCall | None:
    """None for a refusal the HTTP layer maps to 400 or a deny; any other exception fails the property."""
    try:
        call = check_signed_request(decode_token(token), policy, now)
    except (InvalidRequest, Denied) as refused:
        event(f"refused: {type(refused).__name__}")
        return None
    event("accepted")
    return call


def assert_still_get_caller_identity(call: StsCall, policy: TokenPolicy) -> None:
    """What an accepted token may be forwarded as: nothing an attacker could steer."""
    assert sts_endpoint_for_host(call.endpoint.host) == call.endpoint
    assert call.body.decode() in GET_CALLER_IDENTITY_BODIES
    assert [value for name, value in call.headers if name.lower() == "host"] == [call.endpoint.host]
    names = [name.lower() for name, _ in call.headers]
    assert len(names) == len(set(names))
    assert set(names) <= ALLOWED_HEADERS
    headers = dict(zip(names, (value for _, value in call.headers), strict=True))
    assert headers[SERVER_ID_HEADER.lower()] == policy.server_id
    assert f"/{call.endpoint.region}/sts/aws4_request" in headers["authorization"]


# --- mutation strategies ----------------------------------------------------------------------------------

BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
TOKEN_NOISE = st.sampled_from([*BASE64URL, "=", "+", "/", " ", ".", "\n", "é", "\x00"])


@st.composite
def mutated_text(draw: st.DrawFn, original: str, alphabet: st.SearchStrategy[str]) -> str:
    text = original
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text)))
        operation = draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        if operation == "replace" and position < len(text):
            text = text[:position] + draw(alphabet) + text[position + 1 :]
        elif operation == "insert":
            text = text[:position] + draw(alphabet) + text[position:]
        elif operation == "delete":
            text = text[:position] + text[position + 1 :]
        else:
            text = text[:position]
    return text


@st.composite
def mutated_bytes(draw: st.DrawFn, original: bytes) -> bytes:
    raw = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(raw)))
        byte = draw(st.integers(0, 255) | st.sampled_from(list(b'"\\{}[]:,&=?#@/ ')))
        if draw(st.booleans()) and position < len(raw):
            raw[position] = byte
        else:
            raw.insert(position, byte)
    return bytes(raw)


# Values a field might be turned into: near-misses of the originals, and hostile classics.
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "POST",
            "GET",
            "https://sts.us-east-1.amazonaws.com/",
            "https://sts.eu-west-1.amazonaws.com/",
            "https://sts.amazonaws.com/",
            "https://evil.com/",
            "https://sts.us-east-1.amazonaws.com.evil.com/",
            "https://sts.us-east-1.amazonaws.com@evil.com/",
            "Action=GetCallerIdentity&Version=2011-06-15",
            "Version=2011-06-15&Action=GetCallerIdentity",
            "Action=AssumeRole&Version=2011-06-15",
            "sts.us-east-1.amazonaws.com",
            "Host",
            "X-Forwarded-Host",
            "x-amz-date",
            "cp-unit-test",
            "\r\nX-Injected: 1",
        ]
    ),
)


@st.composite
def mutated_document(draw: st.DrawFn, document: dict[str, Any]) -> dict[str, Any]:
    mutated: dict[str, Any] = json.loads(json.dumps(document))
    headers: dict[str, Any] = mutated["headers"]
    target = draw(st.sampled_from(["method", "url", "body", "header-value", "header-name", "add", "drop"]))
    name = draw(st.sampled_from(sorted(headers)))
    if target in ("method", "url", "body"):
        mutated[target] = draw(mutated_text(mutated[target], st.characters()) | HOSTILE_TEXT)
    elif target == "header-value":
        headers[name] = draw(mutated_text(headers[name], st.characters()) | HOSTILE_TEXT)
    elif target == "header-name":
        headers[draw(mutated_text(name, st.characters()) | HOSTILE_TEXT)] = headers.pop(name)
    elif target == "add":
        headers[draw(HOSTILE_TEXT)] = draw(HOSTILE_TEXT)
    else:
        del headers[name]
    return mutated


# --- properties -------------------------------------------------------------------------------------------


def test_unmutated_token_is_accepted(
    signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime
) -> None:
    # The baseline the properties mutate: if this failed, every property would pass vacuously.
    call = check_signed_request(decode_token(encode_compact(signed_request)), policy, signed_at)
    assert_still_get_caller_identity(call, policy)


@FAST
@given(data=st.data())
def test_mutated_compact_token_string_is_refused_or_still_get_caller_identity(
    data: st.DataObject, signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime
) -> None:
    token = data.draw(mutated_text(encode_compact(signed_request), TOKEN_NOISE))
    call = checked(token, policy, signed_at)
    if call is not None:
        assert_still_get_caller_identity(call, policy)


@FAST
@given(data=st.data())
def test_mutated_token_json_bytes_are_refused_or_still_get_caller_identity(
    data: st.DataObject, signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime
) -> None:
    raw = data.draw(mutated_bytes(json.dumps(compact_document(signed_request)).encode()))
    call = checked(compact_raw(raw), policy, signed_at)
    if call is not None:
        assert_still_get_caller_identity(call, policy)


@FAST
@given(data=st.data(), as_vault=st.booleans())
def test_mutated_token_fields_are_refused_or_still_get_caller_identity(
    data: st.DataObject,
    as_vault: bool,
    signed_request: SignedRequest,
    policy: TokenPolicy,
    signed_at: datetime,
) -> None:
    document = data.draw(mutated_document(compact_document(signed_request)))
    token: object = compact_of(document)
    if as_vault:
        token = {
            "iam_http_request_method": document["method"],
            "iam_request_url": base64.b64encode(document["url"].encode("utf-8", "surrogatepass")).decode(),
            "iam_request_body": base64.b64encode(document["body"].encode("utf-8", "surrogatepass")).decode(),
            "iam_request_headers": base64.b64encode(json.dumps(document["headers"]).encode()).decode(),
        }
    call = checked(token, policy, signed_at)
    if call is not None:
        assert_still_get_caller_identity(call, policy)


HEADER_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)


@FAST
@given(
    method=HEADER_TEXT,
    url=HEADER_TEXT,
    body=HEADER_TEXT,
    headers=st.dictionaries(HEADER_TEXT, HEADER_TEXT, max_size=6),
)
def test_any_request_round_trips_through_both_encodings(
    method: str, url: str, body: str, headers: dict[str, str]
) -> None:
    request = SignedRequest(method=method, url=url, headers=tuple(headers.items()), body=body)
    assert decode_token(encode_compact(request)) == request
    assert decode_token(encode_vault(request)) == request
