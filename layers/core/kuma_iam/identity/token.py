"""Decode and encode the identity token: a signed sts:GetCallerIdentity request, compact or Vault-style."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kuma_iam.errors import InvalidRequest
from kuma_iam.strict_json import load_strict_json

COMPACT_PREFIX = "kuma-aws-v1."
# A real token is about 2 KiB (a session token is the largest part); anything far past that is an attack.
MAX_TOKEN_BYTES = 16 * 1024
VAULT_KEYS = frozenset(
    {"iam_http_request_method", "iam_request_url", "iam_request_body", "iam_request_headers"}
)
COMPACT_KEYS = frozenset({"method", "url", "headers", "body"})


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """The request exactly as the sidecar signed it; headers keep their order and every repetition."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: str


def decode_token(token: object) -> SignedRequest:
    """Accept either encoding; anything else is an InvalidRequest naming what is wrong."""
    if isinstance(token, str):
        return _decode_compact(token)
    if isinstance(token, Mapping):
        return _decode_vault(token)
    raise InvalidRequest("token must be a compact string or a Vault login object")


def encode_compact(request: SignedRequest) -> str:
    document = {
        "method": request.method,
        "url": request.url,
        "headers": dict(request.headers),
        "body": request.body,
    }
    raw = json.dumps(document, separators=(",", ":")).encode()
    return COMPACT_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def encode_vault(request: SignedRequest) -> dict[str, str]:
    headers: dict[str, list[str]] = {}
    for name, value in request.headers:
        headers.setdefault(name, []).append(value)
    return {
        "iam_http_request_method": request.method,
        "iam_request_url": _b64(request.url.encode()),
        "iam_request_body": _b64(request.body.encode()),
        "iam_request_headers": _b64(json.dumps(headers).encode()),
    }


def _decode_compact(token: str) -> SignedRequest:
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidRequest(f"token is larger than {MAX_TOKEN_BYTES} bytes")
    if not token.startswith(COMPACT_PREFIX):
        raise InvalidRequest(f"compact token must start with {COMPACT_PREFIX!r}")
    encoded = token.removeprefix(COMPACT_PREFIX)
    if "=" in encoded:
        raise InvalidRequest("compact token must be base64url without padding")
    document = load_strict_json(
        _b64decode(encoded + "=" * (-len(encoded) % 4), urlsafe=True, what="token"), "token"
    )
    if not isinstance(document, dict) or set(document) != COMPACT_KEYS:
        raise InvalidRequest("compact token must be an object with exactly method, url, headers and body")
    headers = document["headers"]
    if not isinstance(headers, dict):
        raise InvalidRequest("token headers must be an object of name to string")
    return SignedRequest(
        method=_string(document["method"], "method"),
        url=_string(document["url"], "url"),
        headers=tuple(
            (_string(k, "header name"), _string(v, f"header {k[:64]}")) for k, v in headers.items()
        ),
        body=_string(document["body"], "body"),
    )


def _decode_vault(login: Mapping[Any, Any]) -> SignedRequest:
    if set(login) != VAULT_KEYS:
        raise InvalidRequest("Vault login data must have exactly " + ", ".join(sorted(VAULT_KEYS)))
    fields = [_string(login[key], key) for key in sorted(VAULT_KEYS)]
    if sum(len(field) for field in fields) > MAX_TOKEN_BYTES:
        raise InvalidRequest(f"token is larger than {MAX_TOKEN_BYTES} bytes")
    url = _utf8(
        _b64decode(login["iam_request_url"], urlsafe=False, what="iam_request_url"), "iam_request_url"
    )
    body = _utf8(
        _b64decode(login["iam_request_body"], urlsafe=False, what="iam_request_body"), "iam_request_body"
    )
    raw_headers = load_strict_json(
        _b64decode(login["iam_request_headers"], urlsafe=False, what="iam_request_headers"),
        "iam_request_headers",
    )
    if not isinstance(raw_headers, dict):
        raise InvalidRequest("iam_request_headers must be a JSON object")
    headers: list[tuple[str, str]] = []
    for name, value in raw_headers.items():
        values = value if isinstance(value, list) else [value]
        headers.extend((name, _string(item, f"header {name[:64]}")) for item in values)
    return SignedRequest(
        method=_string(login["iam_http_request_method"], "iam_http_request_method"),
        url=url,
        headers=tuple(headers),
        body=body,
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _b64decode(value: object, *, urlsafe: bool, what: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidRequest(f"{what} must be a base64 string")
    try:
        raw = value.encode("ascii")
        if urlsafe:
            if b"+" in raw or b"/" in raw:
                raise binascii.Error("standard alphabet in base64url")
            raw = raw.replace(b"-", b"+").replace(b"_", b"/")
        return base64.b64decode(raw, validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise InvalidRequest(f"{what} is not valid base64") from None


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"{what} is not valid UTF-8") from None


def _string(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{what} must be a string")
    return value
