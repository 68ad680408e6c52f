"""The identity token's two encodings: what round-trips, and the precise refusal of every malformed form."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from kuma_iam.errors import InvalidRequest
from kuma_iam.identity.token import (
    COMPACT_PREFIX,
    MAX_TOKEN_BYTES,
    SignedRequest,
    decode_token,
    encode_compact,
    encode_vault,
)

VAULT_KEYS_MESSAGE = (
    "Vault login data must have exactly "
    "iam_http_request_method, iam_request_body, iam_request_headers, iam_request_url"
)
COMPACT_SHAPE_MESSAGE = "compact token must be an object with exactly method, url, headers and body"

ODD_REQUEST = SignedRequest(
    method="GET",
    url="https://example.com/path?q=ü#frag",
    headers=(("X-Odd", "ünïcode"), ("x-odd", "same name, other case"), ("Empty", "")),
    body='{"not": "form"}\n',
)


def compact_from_json(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return COMPACT_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def compact_from(document: Any) -> str:
    return compact_from_json(json.dumps(document))


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def vault_login(
    headers: Any,
    *,
    url: str = "https://sts.us-east-1.amazonaws.com/",
    body: str = "Action=GetCallerIdentity&Version=2011-06-15",
) -> dict[str, Any]:
    return {
        "iam_http_request_method": "POST",
        "iam_request_url": b64(url),
        "iam_request_body": b64(body),
        "iam_request_headers": b64(json.dumps(headers)),
    }


def valid_document() -> dict[str, Any]:
    return {
        "method": "POST",
        "url": "https://sts.us-east-1.amazonaws.com/",
        "headers": {"Host": "sts.us-east-1.amazonaws.com"},
        "body": "Action=GetCallerIdentity&Version=2011-06-15",
    }


def document_with(**changes: Any) -> dict[str, Any]:
    document = valid_document()
    document.update(changes)
    return document


# --- round trips -------------------------------------------------------------------------------------


@pytest.mark.parametrize("encode", [encode_compact, encode_vault], ids=["compact", "vault"])
def test_signed_request_round_trips_through_each_encoding(encode: Any, signed_request: SignedRequest) -> None:
    # Given a request signed by botocore
    # When it is encoded and decoded again
    decoded = decode_token(encode(signed_request))
    # Then nothing was lost or reordered
    assert decoded == signed_request


@pytest.mark.parametrize("encode", [encode_compact, encode_vault], ids=["compact", "vault"])
def test_decoding_does_not_judge_content_only_shape(encode: Any) -> None:
    # Given a request that is no GetCallerIdentity at all, with non-ASCII text and names differing in case
    # When it round-trips
    # Then decoding keeps it verbatim: judging content is the pre-network checks' job
    assert decode_token(encode(ODD_REQUEST)) == ODD_REQUEST


def test_compact_token_is_prefixed_unpadded_base64url() -> None:
    token = encode_compact(ODD_REQUEST)
    assert token.startswith(COMPACT_PREFIX)
    assert "=" not in token
    assert not {"+", "/"} & set(token)


def test_compact_token_from_another_client_with_spacing_and_key_order_decodes() -> None:
    # Given JSON as another language's encoder writes it: other key order, whitespace
    text = (
        '{ "body": "Action=GetCallerIdentity&Version=2011-06-15",'
        ' "headers": {"Host": "h", "X-Amz-Date": "d"},'
        ' "url": "https://sts.us-east-1.amazonaws.com/", "method": "POST" }'
    )
    # When it is decoded
    decoded = decode_token(compact_from_json(text))
    # Then the headers keep the order they were written in
    assert decoded.headers == (("Host", "h"), ("X-Amz-Date", "d"))
    assert decoded.method == "POST"


def test_vault_headers_may_be_strings_or_lists_of_strings() -> None:
    # Given Vault login data whose headers mix a plain string and lists (Go's http.Header is name -> []string)
    login = vault_login(
        {"Host": "sts.us-east-1.amazonaws.com", "X-Amz-Date": ["20260101T000000Z"], "A": ["1", "2"]}
    )
    # When it is decoded
    decoded = decode_token(login)
    # Then every value becomes its own header, repetitions kept in order
    assert decoded.headers == (
        ("Host", "sts.us-east-1.amazonaws.com"),
        ("X-Amz-Date", "20260101T000000Z"),
        ("A", "1"),
        ("A", "2"),
    )
    assert decoded.url == "https://sts.us-east-1.amazonaws.com/"
    assert decoded.body == "Action=GetCallerIdentity&Version=2011-06-15"


def test_vault_encoding_keeps_every_repetition_of_a_header() -> None:
    request = SignedRequest("POST", "https://x/", (("A", "1"), ("A", "2")), "")
    assert decode_token(encode_vault(request)) == request


def test_token_exactly_at_the_size_limit_decodes() -> None:
    # Given a compact token of exactly MAX_TOKEN_BYTES characters (12279 JSON bytes -> 16372 base64url chars)
    filler = "x" * (12279 - len(json.dumps(document_with(body=""), separators=(",", ":"))))
    token = compact_from_json(json.dumps(document_with(body=filler), separators=(",", ":")))
    assert len(token) == MAX_TOKEN_BYTES
    # When it is decoded
    # Then the limit is inclusive
    assert decode_token(token).body == filler


# --- malformed compact tokens ------------------------------------------------------------------------


def _standard_alphabet_token() -> str:
    # '>>>???' encodes to characters outside base64url's alphabet in the standard one
    token = compact_from(document_with(body=">>>???"))
    standard = COMPACT_PREFIX + token.removeprefix(COMPACT_PREFIX).replace("-", "+").replace("_", "/")
    assert standard != token
    return standard


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


MALFORMED_COMPACT = [
    pytest.param("", "compact token must start with 'kuma-aws-v1.'", id="empty"),
    pytest.param("kuma-aws-v2." + compact_from(valid_document())[12:], "must start with", id="other-version"),
    pytest.param("KUMA-AWS-V1." + compact_from(valid_document())[12:], "must start with", id="prefix-case"),
    pytest.param(compact_from(valid_document())[12:], "must start with", id="no-prefix"),
    pytest.param(" " + compact_from(valid_document()), "must start with", id="leading-space"),
    pytest.param(COMPACT_PREFIX + "eyJ9", "not valid JSON", id="prefix-and-brace-only"),
    pytest.param(COMPACT_PREFIX + "e30=", "without padding", id="padding"),
    pytest.param(COMPACT_PREFIX + "e3=0", "without padding", id="padding-inside"),
    pytest.param(_standard_alphabet_token(), "token is not valid base64", id="standard-alphabet"),
    pytest.param(COMPACT_PREFIX + "!!!!", "token is not valid base64", id="not-base64"),
    pytest.param(COMPACT_PREFIX + "A", "token is not valid base64", id="impossible-length"),
    pytest.param(COMPACT_PREFIX + "e3 0", "token is not valid base64", id="whitespace"),
    pytest.param(COMPACT_PREFIX + "e30\n", "token is not valid base64", id="trailing-newline"),
    pytest.param(COMPACT_PREFIX + "ë30", "token is not valid base64", id="non-ascii"),
    pytest.param(compact_from_json(b"\xff\xfe{}"), "token is not valid UTF-8", id="not-utf8"),
    pytest.param(compact_from_json("not json"), "token is not valid JSON", id="not-json"),
    pytest.param(compact_from_json("{'method': 'POST'}"), "token is not valid JSON", id="python-repr"),
    pytest.param(compact_from_json("[]"), COMPACT_SHAPE_MESSAGE, id="array"),
    pytest.param(compact_from_json('"POST"'), COMPACT_SHAPE_MESSAGE, id="string"),
    pytest.param(compact_from_json("null"), COMPACT_SHAPE_MESSAGE, id="null"),
    pytest.param(compact_from_json("42"), COMPACT_SHAPE_MESSAGE, id="number"),
    pytest.param(
        compact_from({k: v for k, v in valid_document().items() if k != "body"}),
        COMPACT_SHAPE_MESSAGE,
        id="missing-body",
    ),
    pytest.param(compact_from(document_with(extra="x")), COMPACT_SHAPE_MESSAGE, id="extra-key"),
    pytest.param(compact_from(document_with(Method="POST")), COMPACT_SHAPE_MESSAGE, id="key-case-variant"),
    pytest.param(
        compact_from_json(json.dumps(valid_document())[:-1] + ', "method": "GET"}'),
        "token is not valid JSON: duplicate key",
        id="duplicate-top-level-key",
    ),
    pytest.param(
        compact_from_json(json.dumps(valid_document()).replace('"Host": ', '"Host": "a", "Host": ')),
        "token is not valid JSON: duplicate key",
        id="duplicate-header-key",
    ),
    pytest.param(compact_from(document_with(method=1)), "method must be a string", id="method-number"),
    pytest.param(compact_from(document_with(url=None)), "url must be a string", id="url-null"),
    pytest.param(compact_from(document_with(body=[])), "body must be a string", id="body-array"),
    pytest.param(
        compact_from(document_with(headers=[["Host", "h"]])),
        "token headers must be an object",
        id="headers-array",
    ),
    pytest.param(
        compact_from(document_with(headers="Host: h")), "token headers must be an object", id="headers-string"
    ),
    pytest.param(
        compact_from(document_with(headers={"Host": 1})), "header Host must be a string", id="header-number"
    ),
    pytest.param(
        compact_from(document_with(headers={"Host": ["h"]})), "header Host must be a string", id="header-list"
    ),
    pytest.param(
        compact_from(document_with(headers={"Host": None})), "header Host must be a string", id="header-null"
    ),
    pytest.param(COMPACT_PREFIX + "A" * MAX_TOKEN_BYTES, "token is larger than 16384 bytes", id="oversized"),
    pytest.param(
        "x" * (MAX_TOKEN_BYTES + 1), "token is larger than 16384 bytes", id="oversized-before-prefix"
    ),
]


@pytest.mark.parametrize(("token", "message"), MALFORMED_COMPACT)
def test_malformed_compact_token_is_refused_with_a_precise_message(token: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        decode_token(token)
    assert message in refused.value.message


@pytest.mark.parametrize(
    ("text", "messages"),
    [
        # 5000 levels fit in the size limit; the decoder either gives up or sees a non-string method.
        pytest.param(
            json.dumps(valid_document()).replace('"POST"', _nested(5000)),
            ("nested too deeply", "method must be a string"),
            id="5000-levels-in-method",
        ),
        pytest.param(
            json.dumps(valid_document()).replace(
                '"sts.us-east-1.amazonaws.com"', '{"a":' * 2000 + "1" + "}" * 2000
            ),
            ("nested too deeply", "header Host must be a string"),
            id="2000-objects-in-a-header",
        ),
        # 12000 open brackets: past any recursion limit, still inside 16 KiB once encoded.
        pytest.param("[" * 12000, ("nested too deeply", "not valid JSON"), id="12000-open-brackets"),
    ],
)
def test_deeply_nested_json_is_refused_without_crashing(text: str, messages: tuple[str, ...]) -> None:
    # Given a token whose JSON nests deeper than any real one, yet fits the size limit
    token = compact_from_json(text)
    assert len(token) <= MAX_TOKEN_BYTES
    # When it is decoded
    with pytest.raises(InvalidRequest) as refused:
        decode_token(token)
    # Then it is a 400, never a RecursionError (a 500)
    assert any(message in refused.value.message for message in messages), refused.value.message


# --- malformed Vault login data ----------------------------------------------------------------------


def _vault_with(**changes: Any) -> dict[str, Any]:
    login = vault_login({"Host": "sts.us-east-1.amazonaws.com"})
    login.update(changes)
    return login


def _vault_without(key: str) -> dict[str, Any]:
    login = vault_login({"Host": "sts.us-east-1.amazonaws.com"})
    del login[key]
    return login


MALFORMED_VAULT = [
    pytest.param({}, VAULT_KEYS_MESSAGE, id="empty"),
    pytest.param(_vault_without("iam_request_headers"), VAULT_KEYS_MESSAGE, id="missing-headers"),
    pytest.param(_vault_with(role="admin"), VAULT_KEYS_MESSAGE, id="extra-key-role"),
    pytest.param(_vault_with(method="POST"), VAULT_KEYS_MESSAGE, id="compact-key-mixed-in"),
    pytest.param(valid_document(), VAULT_KEYS_MESSAGE, id="compact-document-as-object"),
    pytest.param(
        _vault_with(iam_http_request_method=["POST"]),
        "iam_http_request_method must be a string",
        id="method-list",
    ),
    pytest.param(_vault_with(iam_request_url=None), "iam_request_url must be a string", id="url-null"),
    pytest.param(_vault_with(iam_request_body=12), "iam_request_body must be a string", id="body-number"),
    pytest.param(
        _vault_with(iam_request_headers={"Host": "h"}),
        "iam_request_headers must be a string",
        id="headers-not-encoded",
    ),
    pytest.param(
        _vault_with(iam_request_url="https://sts.us-east-1.amazonaws.com/"),
        "iam_request_url is not valid base64",
        id="url-plain",
    ),
    pytest.param(
        _vault_with(iam_request_body=b64("x")[:-1]),
        "iam_request_body is not valid base64",
        id="body-bad-padding",
    ),
    pytest.param(
        _vault_with(iam_request_body="-_-_"),
        "iam_request_body is not valid base64",
        id="body-urlsafe-alphabet",
    ),
    pytest.param(
        _vault_with(iam_request_headers="e30=\n"),
        "iam_request_headers is not valid base64",
        id="headers-newline",
    ),
    pytest.param(
        _vault_with(iam_request_url=b64(b"\xc3\x28")), "iam_request_url is not valid UTF-8", id="url-not-utf8"
    ),
    pytest.param(
        _vault_with(iam_request_body=b64(b"\xff")), "iam_request_body is not valid UTF-8", id="body-not-utf8"
    ),
    pytest.param(
        _vault_with(iam_request_headers=b64(b"\xff")),
        "iam_request_headers is not valid UTF-8",
        id="headers-not-utf8",
    ),
    pytest.param(
        _vault_with(iam_request_headers=b64("Host: h")),
        "iam_request_headers is not valid JSON",
        id="headers-not-json",
    ),
    pytest.param(
        _vault_with(iam_request_headers=b64('[["Host","h"]]')),
        "iam_request_headers must be a JSON object",
        id="headers-array",
    ),
    pytest.param(
        _vault_with(iam_request_headers=b64('"Host"')),
        "iam_request_headers must be a JSON object",
        id="headers-string",
    ),
    pytest.param(
        _vault_with(iam_request_headers=b64('{"Host":["a"],"Host":["b"]}')),
        "iam_request_headers is not valid JSON: duplicate key",
        id="headers-duplicate-key",
    ),
    pytest.param(vault_login({"Host": 1}), "header Host must be a string", id="header-number"),
    pytest.param(vault_login({"Host": None}), "header Host must be a string", id="header-null"),
    pytest.param(vault_login({"Host": {"v": "h"}}), "header Host must be a string", id="header-object"),
    pytest.param(vault_login({"Host": [1]}), "header Host must be a string", id="header-list-of-number"),
    pytest.param(vault_login({"Host": [["h"]]}), "header Host must be a string", id="header-nested-list"),
    pytest.param(
        vault_login({"Host": "h"}, body="x" * MAX_TOKEN_BYTES),
        "token is larger than 16384 bytes",
        id="oversized",
    ),
    pytest.param(
        _vault_with(iam_request_headers=b64("[" * 12000)),
        "iam_request_headers",
        id="headers-nested-12000",
    ),
]


@pytest.mark.parametrize(("login", "message"), MALFORMED_VAULT)
def test_malformed_vault_login_is_refused_with_a_precise_message(login: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        decode_token(login)
    assert message in refused.value.message


@pytest.mark.parametrize(
    "token",
    [None, 42, 4.2, True, ["kuma-aws-v1.e30"], b"kuma-aws-v1.e30", ("POST",)],
    ids=["null", "int", "float", "bool", "list", "bytes", "tuple"],
)
def test_token_of_the_wrong_type_is_refused(token: object) -> None:
    with pytest.raises(InvalidRequest, match=r"^token must be a compact string or a Vault login object$"):
        decode_token(token)
