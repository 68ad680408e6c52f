"""Compact JWS with RS256, as Kuma writes and reads its tokens: header {alg: RS256, kid: "<n>", typ: JWT}."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ALGORITHM = "RS256"
MAX_TOKEN_CHARS = 16 * 1024


class MalformedToken(ValueError):
    """Not a compact RS256 JWS we could have written; the message says which part."""


@dataclass(frozen=True, slots=True)
class ParsedToken:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def signing_input(kid: str, claims: Mapping[str, Any]) -> bytes:
    """`base64url(header) . base64url(claims)`: the bytes the signature covers."""
    header = {"alg": ALGORITHM, "kid": kid, "typ": "JWT"}
    return f"{_segment(header)}.{_segment(claims)}".encode("ascii")


def compact(signed_input: bytes, signature: bytes) -> str:
    return f"{signed_input.decode('ascii')}.{b64url(signature)}"


def parse(token: str) -> ParsedToken:
    """Split and decode a compact JWS; nothing is verified here (see `validator`)."""
    if len(token) > MAX_TOKEN_CHARS:
        raise MalformedToken(f"a token is at most {MAX_TOKEN_CHARS} characters")
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise MalformedToken("a JWT has three dot-separated parts")
    header = _json_object(parts[0], "header")
    claims = _json_object(parts[1], "claims")
    return ParsedToken(header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), b64url_decode(parts[2]))


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if "=" in text or "+" in text or "/" in text:
        raise MalformedToken("JWT parts are base64url without padding")
    try:
        return base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))
    except (binascii.Error, UnicodeEncodeError):
        raise MalformedToken("a JWT part is not base64url") from None


def _segment(document: Mapping[str, Any]) -> str:
    return b64url(json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        document = json.loads(b64url_decode(segment).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        if isinstance(error, MalformedToken):
            raise
        raise MalformedToken(f"the JWT {what} is not JSON") from None
    if not isinstance(document, dict):
        raise MalformedToken(f"the JWT {what} is not a JSON object")
    return document
