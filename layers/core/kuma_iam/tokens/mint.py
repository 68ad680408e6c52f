"""Sign a token for an identity already decided: the part the exchange and the provisioner share.

A fresh random `jti`, Kuma's claims, the highest kid's key, and a check of the signature against the
published public key before anything is handed out. The `jti` is 122 random bits from the OS: drawing a
revoked one again is as likely as guessing a key, so no token pays a revocations-table read for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from kuma_iam.errors import InvalidRequest, UpstreamUnavailable
from kuma_iam.tokens import jwt
from kuma_iam.tokens.claims import (
    DataplaneIdentity,
    RegisteredClaims,
    TokenIdentity,
    ZoneIdentity,
    token_claims,
)
from kuma_iam.tokens.keys import KeyRing
from kuma_iam.tokens.signers import MAX_MESSAGE_BYTES


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    kid: str
    jti: str
    expires_at: datetime

    def body(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "kid": self.kid,
            "jti": self.jti,
            "expiresAt": self.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


@dataclass
class TokenMinter:
    """Dataplane tokens from `dataplane_keys`, zone tokens from `zone_keys` (None: this issuer makes none)."""

    dataplane_keys: KeyRing
    zone_keys: KeyRing | None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    new_jti: Callable[[], str] = field(default=lambda: str(uuid.uuid4()))

    def mint(self, identity: TokenIdentity, valid_for: timedelta) -> IssuedToken:
        """Raise InvalidRequest (claims too large to sign) or UpstreamError; return a verified token."""
        keys = self._ring_for(identity).get()
        kid, signer = keys.signing_kid, keys.signer
        jti = self.new_jti()
        registered = RegisteredClaims.starting(jti, self.clock(), valid_for)
        message = jwt.signing_input(kid, token_claims(identity, registered))
        if len(message) > MAX_MESSAGE_BYTES:
            raise InvalidRequest(
                f"the token's claims take {len(message)} bytes to sign; "
                f"at most {MAX_MESSAGE_BYTES} can be signed"
            )
        signature = signer.sign(message)
        try:
            signer.public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise UpstreamUnavailable(
                signer.service, f"the signature by kid {kid} does not verify with its published public key"
            ) from None
        return IssuedToken(jwt.compact(message, signature), kid, jti, registered.expiry)

    def _ring_for(self, identity: TokenIdentity) -> KeyRing:
        if isinstance(identity, DataplaneIdentity):
            return self.dataplane_keys
        assert isinstance(identity, ZoneIdentity)
        if self.zone_keys is None:
            raise InvalidRequest("this issuer makes no zone tokens (KUMA_IAM_ZONE is not set)")
        return self.zone_keys
