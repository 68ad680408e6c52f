"""Kuma's token claims, and the identity a verified role may have a token for.

Dataplane tokens (kumahq/kuma pkg/tokens/builtin/issuer): `Name`, `Mesh`, `Tags` (tag -> list of values),
`Type`, `Workload` (only when set). Zone tokens (pkg/tokens/builtin/zone), for zone ingress and egress:
`Zone`, `Scope`.
Both carry the registered claims `jti`, `iat`, `nbf`, `exp` as whole seconds since the epoch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from kuma_iam.rules import SERVICE_TAG, ProxyType, RoleTags

# Kuma's own issuer back-dates by seconds; minutes cover control planes whose clocks run behind ours.
CLOCK_SKEW = timedelta(minutes=5)


class ZoneScope(StrEnum):
    INGRESS = "ingress"
    EGRESS = "egress"


@dataclass(frozen=True, slots=True)
class DataplaneIdentity:
    """What a dataplane token binds the sidecar to; the control plane checks each field that is set."""

    name: str
    mesh: str
    services: tuple[str, ...]  # the kuma.io/service values the token allows; empty: any service
    workload: str | None = None

    def claims(self) -> dict[str, Any]:
        tags = {SERVICE_TAG: list(self.services)} if self.services else {}
        document: dict[str, Any] = {
            "Name": self.name,
            "Mesh": self.mesh,
            "Tags": tags,
            "Type": ProxyType.DATAPLANE.value,
        }
        if self.workload is not None:
            document["Workload"] = self.workload
        return document


@dataclass(frozen=True, slots=True)
class ZoneIdentity:
    """What a zone token binds a zone ingress or egress to: its zone, and the one scope of its role."""

    zone: str
    scope: ZoneScope

    def claims(self) -> dict[str, Any]:
        return {"Zone": self.zone, "Scope": [self.scope.value]}


TokenIdentity = DataplaneIdentity | ZoneIdentity


@dataclass(frozen=True, slots=True)
class RegisteredClaims:
    jti: str
    issued_at: int
    not_before: int
    expires_at: int

    @classmethod
    def starting(cls, jti: str, now: datetime, valid_for: timedelta) -> RegisteredClaims:
        # iat is back-dated with nbf: validators on jwt-go v4 (older Kuma) refuse an iat in their future.
        start = int((now - CLOCK_SKEW).timestamp())
        return cls(jti, start, start, int((now + valid_for).timestamp()))

    @property
    def expiry(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at, UTC)

    def claims(self) -> dict[str, Any]:
        return {"exp": self.expires_at, "nbf": self.not_before, "iat": self.issued_at, "jti": self.jti}


def token_claims(identity: TokenIdentity, registered: RegisteredClaims) -> dict[str, Any]:
    return {**identity.claims(), **registered.claims()}


def dataplane_identity(
    role: RoleTags, *, name: str, services: Iterable[str], workload: str | None
) -> DataplaneIdentity:
    """The token for a role whose tags already admit the claim (rules.claim_mismatch found nothing): the
    role's service, or the ones asked for when it has none; likewise its workload."""
    if role.type is not ProxyType.DATAPLANE or role.mesh is None:
        raise ValueError("a dataplane token needs a dataplane role with a mesh")
    asked = tuple(dict.fromkeys(services))  # in the order asked, once each
    return DataplaneIdentity(
        name=name,
        mesh=role.mesh,
        services=(role.service,) if role.service is not None else asked,
        workload=role.workload if role.workload is not None else workload,
    )


def zone_identity(role: RoleTags, zone: str) -> ZoneIdentity:
    """A zone ingress role gets the ingress scope only, an egress role the egress scope only."""
    if role.type is ProxyType.DATAPLANE:
        raise ValueError("a zone token needs an ingress or egress role")
    return ZoneIdentity(zone=zone, scope=ZoneScope(role.type.value))
