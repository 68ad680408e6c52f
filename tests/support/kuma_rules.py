"""An independent validator of Kuma tokens, written from the control plane's rules, not from our code.

What a stock control plane does with a token it validates offline (kumahq/kuma pkg/core/tokens/validator.go,
pkg/tokens/builtin/issuer, pkg/tokens/builtin/zone, pkg/xds/auth/universal): three base64url parts; a header
whose `kid` is a string (older releases parse it as an integer) and whose `alg` is RS256, nothing else; the
public key configured for that kid, a PKCS#1 `RSA PUBLIC KEY` PEM (older releases read no other form); an
RSASSA-PKCS1-v1_5 SHA-256 signature; `exp` in the future, `nbf` and `iat` not (jwt-go v4 checks `iat` too);
claims of the types Kuma's structs decode; the revocation list; then the Dataplane's mesh, name and tags (or
the zone and scope) against the token. Nothing here imports kuma_iam.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Collection, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

PKCS1_PUBLIC_HEADER = "-----BEGIN RSA PUBLIC KEY-----"
DECIMAL = re.compile(r"[0-9]+")


class Rejected(Exception):
    """The control plane would refuse the token; `reason` says on which rule."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64url(part: str) -> bytes:
    if "=" in part:
        raise Rejected("padding in a base64url part")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise Rejected("a part is not base64url") from None


def _object(part: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64url(part))
    except (UnicodeDecodeError, ValueError):
        raise Rejected(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise Rejected(f"{what} is not an object")
    return value


def public_key_of(pem: str) -> rsa.RSAPublicKey:
    """Kuma's configured key: only the PKCS#1 form is accepted by every release."""
    if not pem.startswith(PKCS1_PUBLIC_HEADER):
        raise Rejected("the configured public key is not a PKCS#1 RSA PUBLIC KEY PEM")
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise Rejected("the configured public key is not RSA")
    return key


def parse_and_verify(token: str, public_keys: Mapping[str, str], *, now: float) -> dict[str, Any]:
    """The claims of a token that passes the signature and time rules; Rejected otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise Rejected("not three parts")
    header = _object(parts[0], "header")
    claims = _object(parts[1], "claims")
    kid = header.get("kid")
    if kid is None:
        raise Rejected("no kid header")
    if not isinstance(kid, str):
        raise Rejected("kid header must be a string")
    if not DECIMAL.fullmatch(kid):
        raise Rejected("kid is not an integer (older control planes parse it as one)")
    if header.get("alg") != "RS256":
        raise Rejected(f"unsupported token alg {header.get('alg')!r}")
    if kid not in public_keys:
        raise Rejected(f"there is no signing key with KID {kid}")
    key = public_key_of(public_keys[kid])
    try:
        key.verify(_b64url(parts[2]), f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise Rejected("signature is invalid") from None
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise Rejected(f"{name} is not a NumericDate")
    if "exp" not in claims:
        raise Rejected("no exp")
    if now >= claims["exp"]:
        raise Rejected("token is expired")
    if "nbf" in claims and now < claims["nbf"]:
        raise Rejected("token is not valid yet")
    if "iat" in claims and now < claims["iat"]:
        raise Rejected("token used before issued")
    if not isinstance(claims.get("jti"), str) or not claims["jti"]:
        raise Rejected("no jti")
    return claims


def validate_dataplane_token(
    token: str,
    public_keys: Mapping[str, str],
    *,
    now: float,
    mesh: str,
    name: str,
    tags: Mapping[str, Collection[str]],
    workload: str | None = None,
    revoked: Collection[str] = (),
) -> dict[str, Any]:
    """As the control plane admits a Dataplane `name` in `mesh` with `tags` presenting the token."""
    claims = parse_and_verify(token, public_keys, now=now)
    for field in ("Name", "Mesh", "Type"):
        if not isinstance(claims.get(field), str):
            raise Rejected(f"{field} is not a string")
    token_tags = claims.get("Tags")
    if not isinstance(token_tags, dict) or not all(
        isinstance(values, list) and all(isinstance(value, str) for value in values)
        for values in token_tags.values()
    ):
        raise Rejected("Tags is not a map of string lists")
    if "Workload" in claims and not isinstance(claims["Workload"], str):
        raise Rejected("Workload is not a string")
    if claims["jti"] in revoked:
        raise Rejected("token is revoked")
    if claims["Name"] and claims["Name"] != name:
        raise Rejected("proxy name differs from the token's")
    if claims["Mesh"] and claims["Mesh"] != mesh:
        raise Rejected("proxy mesh differs from the token's")
    for tag, allowed in token_tags.items():
        if tag not in tags:
            raise Rejected(f"dataplane has no tag {tag!r} required by the token")
        if not set(tags[tag]) <= set(allowed):
            raise Rejected(f"dataplane tag {tag!r} has a value the token does not allow")
    if claims.get("Workload") and claims["Workload"] != workload:
        raise Rejected("workload differs from the token's")
    return claims


def validate_zone_token(
    token: str,
    public_keys: Mapping[str, str],
    *,
    now: float,
    zone: str,
    scope: str,
    revoked: Collection[str] = (),
) -> dict[str, Any]:
    """As a zone's control plane admits its zone ingress (scope "ingress") or egress ("egress")."""
    claims = parse_and_verify(token, public_keys, now=now)
    if not isinstance(claims.get("Zone"), str):
        raise Rejected("Zone is not a string")
    token_scope = claims.get("Scope")
    if not isinstance(token_scope, list) or not all(isinstance(item, str) for item in token_scope):
        raise Rejected("Scope is not a list of strings")
    if claims["jti"] in revoked:
        raise Rejected("token is revoked")
    if scope not in token_scope:
        raise Rejected(f"{scope} is out of the token's scope")
    if claims["Zone"] and claims["Zone"] != zone:
        raise Rejected("zone differs from the token's")
    return claims


def dataplane_keys_for(published: Mapping[str, Any], mesh: str) -> dict[str, str]:
    """The kid -> PEM a control plane configured from GET /v1/keys would hold for `mesh`."""
    entries = published["dpServer"]["authn"]["dpProxy"]["dpToken"]["validator"]["publicKeys"]
    return {entry["kid"]: entry["key"] for entry in entries if entry["mesh"] == mesh}


def zone_keys_for(published: Mapping[str, Any]) -> dict[str, str]:
    entries = published["dpServer"]["authn"]["zoneProxy"]["zoneToken"]["validator"]["publicKeys"]
    return {entry["kid"]: entry["key"] for entry in entries}
