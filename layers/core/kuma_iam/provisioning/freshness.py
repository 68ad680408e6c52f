"""Is the token in a service's secret still good? Missing, unparsable, expired or expiring within the refresh
margin, signed by a key no longer published, revoked, or for another identity: then it is replaced. Pure; the
signature and claims are judged by the validator control planes are modelled on (tokens.validator)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from kuma_iam.tokens.claims import DataplaneIdentity
from kuma_iam.tokens.validator import InvalidToken, check_unverified, validate_token


class Staleness(StrEnum):
    """Why a token found in a secret is replaced (the validator's TokenProblem, and three of our own)."""

    MISSING = "missing"
    MALFORMED = "malformed"
    ALGORITHM = "algorithm"
    KID = "kid"
    UNKNOWN_KEY = "unknown_key"
    SIGNATURE = "signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    REVOKED = "revoked"
    EXPIRING = "expiring"  # valid, but for less than the refresh margin: a task starting now needs more
    OTHER_IDENTITY = "other_identity"  # valid, but for another mesh, service or workload than the tasks'


@dataclass(frozen=True, slots=True)
class TokenVerdict:
    stale: Staleness | None  # None: the token is good
    jti: str | None = None
    expires_at: datetime | None = None

    @property
    def good(self) -> bool:
        return self.stale is None

    def revoked_if(self, revoked: Collection[str]) -> TokenVerdict:
        """The verdict once the revocation list is known (read only for tokens good otherwise)."""
        if self.good and self.jti in revoked:
            return TokenVerdict(Staleness.REVOKED, self.jti, self.expires_at)
        return self


def judge_token(
    value: object,
    expected: DataplaneIdentity,
    *,
    keys: Mapping[str, RSAPublicKey] | None,
    now: datetime,
    margin: timedelta,
) -> TokenVerdict:
    """`keys` are the published public keys; None when the issuer (a control plane) keeps them, and then
    the signature is left to the control plane and every other rule still applies."""
    if not isinstance(value, str) or not value:
        return TokenVerdict(Staleness.MISSING)
    try:
        valid = validate_token(value, keys, now=now) if keys is not None else check_unverified(value, now=now)
    except InvalidToken as invalid:
        return TokenVerdict(Staleness(invalid.problem.value))
    if valid.kind != "dataplane" or not expected.bound_by(valid.claims):
        return TokenVerdict(Staleness.OTHER_IDENTITY, valid.jti, valid.expires_at)
    if valid.expires_at - now < margin:
        return TokenVerdict(Staleness.EXPIRING, valid.jti, valid.expires_at)
    return TokenVerdict(None, valid.jti, valid.expires_at)
