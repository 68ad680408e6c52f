"""Check a Kuma token the way a control plane does offline: RS256 only, the key of its decimal `kid`, the
signature, `nbf` and `exp`, the claims' types, and the revocation list. For `kuma-iam tokens validate` and for
functions that must judge a token they did not just sign (an expiring or revoked one is replaced)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from kuma_iam.tokens import jwt
from kuma_iam.tokens.references import KID


class InvalidToken(ValueError):
    """The token would not be accepted; the message says why."""


@dataclass(frozen=True, slots=True)
class ValidToken:
    kid: str
    jti: str
    expires_at: datetime
    claims: dict[str, Any]

    @property
    def kind(self) -> str:
        return "zone" if "Zone" in self.claims else "dataplane"


def validate_token(
    token: str,
    public_keys: Mapping[str, RSAPublicKey],
    *,
    now: datetime,
    revoked: Collection[str] = (),
) -> ValidToken:
    try:
        parsed = jwt.parse(token)
    except jwt.MalformedToken as error:
        raise InvalidToken(str(error)) from None
    if parsed.header.get("alg") != jwt.ALGORITHM:
        raise InvalidToken(f"alg must be {jwt.ALGORITHM}")
    kid = parsed.header.get("kid")
    if not isinstance(kid, str) or not KID.fullmatch(kid):
        raise InvalidToken("kid must be a decimal serial number as a string")
    key = public_keys.get(kid)
    if key is None:
        raise InvalidToken(f"no public key for kid {kid}")
    try:
        key.verify(parsed.signature, parsed.signing_input, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise InvalidToken("the signature does not verify") from None
    claims = parsed.claims
    expires = _numeric(claims, "exp")
    if expires is None:
        raise InvalidToken("exp is missing")
    moment = now.timestamp()
    if moment >= expires:
        raise InvalidToken("the token has expired")
    not_before = _numeric(claims, "nbf")
    if not_before is not None and moment < not_before:
        raise InvalidToken("the token is not valid yet")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise InvalidToken("jti is missing")
    if jti in revoked:
        raise InvalidToken("the token is revoked")
    _check_shape(claims)
    return ValidToken(kid, jti, datetime.fromtimestamp(expires, UTC), claims)


def _numeric(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"{name} must be a number")
    return float(value)


def _check_shape(claims: Mapping[str, Any]) -> None:
    if "Zone" in claims:
        scope = claims.get("Scope")
        if not isinstance(claims["Zone"], str) or not isinstance(scope, list):
            raise InvalidToken("a zone token has a string Zone and a list Scope")
        if not all(isinstance(item, str) for item in scope):
            raise InvalidToken("Scope holds strings")
        return
    for name in ("Name", "Mesh", "Type"):
        if not isinstance(claims.get(name), str):
            raise InvalidToken(f"{name} must be a string")
    tags = claims.get("Tags")
    if not isinstance(tags, dict) or not all(
        isinstance(values, list) and all(isinstance(value, str) for value in values)
        for values in tags.values()
    ):
        raise InvalidToken("Tags must map each tag to a list of strings")
    if "Workload" in claims and not isinstance(claims["Workload"], str):
        raise InvalidToken("Workload must be a string")
