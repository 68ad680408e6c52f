"""Tokens as we write them pass Kuma's rules (an independent validator, support.kuma_rules); every way of
breaking one fails them, and our own validator (for `kuma-iam tokens validate`) agrees on each."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from kuma_iam.rules import ProxyType, RoleTags
from kuma_iam.tokens import jwt
from kuma_iam.tokens.claims import (
    CLOCK_SKEW,
    DataplaneIdentity,
    RegisteredClaims,
    ZoneIdentity,
    ZoneScope,
    dataplane_identity,
    token_claims,
    zone_identity,
)
from kuma_iam.tokens.keys import KeySet, public_key_pem
from kuma_iam.tokens.signers import PemSigner
from kuma_iam.tokens.validator import InvalidToken, validate_token
from support.kuma_rules import Rejected, validate_dataplane_token, validate_zone_token

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
BACKEND = DataplaneIdentity(name="backend-01", mesh="default", services=("backend",))
SERVICE_TAGS = {"kuma.io/service": ["backend"]}


@pytest.fixture(scope="module")
def signers(kuma_signing_keys: list[str]) -> list[PemSigner]:
    return [PemSigner.from_pem(pem.encode(), f"key {i}") for i, pem in enumerate(kuma_signing_keys)]


def sign(signer: PemSigner, kid: str, claims: dict[str, Any]) -> str:
    message = jwt.signing_input(kid, claims)
    return jwt.compact(message, signer.sign(message))


def registered(valid_for: timedelta = timedelta(hours=1), jti: str = "6d1c7d0e-1") -> RegisteredClaims:
    return RegisteredClaims.starting(jti, NOW, valid_for)


def pem_keys(**by_kid: PemSigner) -> dict[str, str]:
    return {kid.removeprefix("k"): public_key_pem(signer.public_key) for kid, signer in by_kid.items()}


def our_keys(**by_kid: PemSigner) -> dict[str, RSAPublicKey]:
    return {kid.removeprefix("k"): signer.public_key for kid, signer in by_kid.items()}


def test_a_dataplane_token_has_exactly_kumas_claims_and_header(signers: list[PemSigner]) -> None:
    # Given the claims for the backend service, valid for an hour from NOW
    token = sign(signers[0], "1", token_claims(BACKEND, registered()))
    header, claims, _ = (part + "=" * (-len(part) % 4) for part in token.split("."))
    # Then the header is Kuma's and the claims are exactly Kuma's dataplane claims, typed as its structs are
    assert json.loads(base64.urlsafe_b64decode(header)) == {"alg": "RS256", "kid": "1", "typ": "JWT"}
    decoded = json.loads(base64.urlsafe_b64decode(claims))
    start = int((NOW - CLOCK_SKEW).timestamp())
    assert decoded == {
        "Name": "backend-01",
        "Mesh": "default",
        "Tags": {"kuma.io/service": ["backend"]},
        "Type": "dataplane",
        "exp": int((NOW + timedelta(hours=1)).timestamp()),
        "nbf": start,
        "iat": start,
        "jti": "6d1c7d0e-1",
    }
    # And nbf is back-dated a few minutes for the control plane's clock
    assert timedelta(minutes=1) <= CLOCK_SKEW
    # And the control plane admits backend-01 with it
    assert validate_dataplane_token(
        token,
        pem_keys(k1=signers[0]),
        now=NOW.timestamp(),
        mesh="default",
        name="backend-01",
        tags=SERVICE_TAGS,
    )


def test_workload_is_a_claim_only_when_set(signers: list[PemSigner]) -> None:
    with_workload = DataplaneIdentity("worker-01", "default", ("worker",), "worker")
    claims = token_claims(with_workload, registered())
    assert claims["Workload"] == "worker"
    assert "Workload" not in token_claims(BACKEND, registered())
    token = sign(signers[0], "1", claims)
    keys = pem_keys(k1=signers[0])
    tags = {"kuma.io/service": ["worker"]}
    validate_dataplane_token(
        token, keys, now=NOW.timestamp(), mesh="default", name="worker-01", tags=tags, workload="worker"
    )
    with pytest.raises(Rejected, match="workload"):
        validate_dataplane_token(
            token, keys, now=NOW.timestamp(), mesh="default", name="worker-01", tags=tags, workload="other"
        )


def test_a_zone_token_passes_only_for_its_zone_and_scope(signers: list[PemSigner]) -> None:
    token = sign(signers[0], "1", token_claims(ZoneIdentity("zone-1", ZoneScope.INGRESS), registered()))
    keys = pem_keys(k1=signers[0])
    claims = validate_zone_token(token, keys, now=NOW.timestamp(), zone="zone-1", scope="ingress")
    assert set(claims) == {"Zone", "Scope", "jti", "iat", "nbf", "exp"}
    assert claims["Scope"] == ["ingress"]
    with pytest.raises(Rejected, match="out of the token's scope"):
        validate_zone_token(token, keys, now=NOW.timestamp(), zone="zone-1", scope="egress")
    with pytest.raises(Rejected, match="zone differs"):
        validate_zone_token(token, keys, now=NOW.timestamp(), zone="zone-2", scope="ingress")


# --- every way to break a token ------------------------------------------------------------------------


def _b64(document: dict[str, Any]) -> str:
    return jwt.b64url(json.dumps(document).encode())


def _parts(token: str) -> list[str]:
    return token.split(".")


def _with_header(token: str, **header: Any) -> str:
    parts = _parts(token)
    original = json.loads(jwt.b64url_decode(parts[0]))
    return ".".join([_b64({**original, **header}), parts[1], parts[2]])


def _with_claims(token: str, **claims: Any) -> str:
    parts = _parts(token)
    original = json.loads(jwt.b64url_decode(parts[1]))
    return ".".join([parts[0], _b64({**original, **claims}), parts[2]])


@dataclass(frozen=True)
class Broken:
    id: str
    make: Callable[[list[PemSigner]], str]
    kuma_reason: str
    ours: str  # our validator's message, a substring


def good(signers: list[PemSigner], valid_for: timedelta = timedelta(hours=1), kid: str = "1") -> str:
    return sign(signers[0], kid, token_claims(BACKEND, registered(valid_for)))


BROKEN = [
    Broken(
        "tampered-claims",
        lambda s: _with_claims(good(s), Mesh="payments"),
        "signature is invalid",
        "signature",
    ),
    Broken(
        "tampered-tags",
        lambda s: _with_claims(good(s), Tags={"kuma.io/service": ["admin"]}),
        "signature is invalid",
        "signature",
    ),
    Broken("tampered-kid", lambda s: _with_header(good(s), kid="2"), "signature is invalid", "signature"),
    Broken("signature-truncated", lambda s: good(s)[:-8], "signature is invalid", "signature"),
    Broken(
        "expired",
        lambda s: sign(
            s[0],
            "1",
            token_claims(
                BACKEND, RegisteredClaims.starting("j", NOW - timedelta(hours=2), timedelta(hours=1))
            ),
        ),
        "token is expired",
        "expired",
    ),
    Broken(
        "not-yet-valid",
        lambda s: sign(
            s[0],
            "1",
            token_claims(
                BACKEND, RegisteredClaims.starting("j", NOW + timedelta(hours=1), timedelta(hours=1))
            ),
        ),
        "not valid yet",
        "not valid yet",
    ),
    Broken(
        "wrong-key",
        lambda s: sign(s[1], "1", token_claims(BACKEND, registered())),
        "signature is invalid",
        "signature",
    ),
    Broken("unknown-kid", lambda s: good(s, kid="7"), "no signing key with KID 7", "no public key for kid 7"),
    Broken(
        "kid-as-number", lambda s: _with_header(good(s), kid=1), "kid header must be a string", "kid must be"
    ),
    Broken(
        "kid-missing",
        lambda s: ".".join([_b64({"alg": "RS256", "typ": "JWT"}), *_parts(good(s))[1:]]),
        "no kid header",
        "kid must be",
    ),
    Broken(
        "alg-none",
        lambda s: ".".join([_b64({"alg": "none", "kid": "1", "typ": "JWT"}), _parts(good(s))[1], ""]),
        "unsupported token alg",
        "alg must be RS256",
    ),
    Broken(
        "alg-hs256-with-public-key",
        lambda s: _with_header(good(s), alg="HS256"),
        "unsupported token alg",
        "alg must be RS256",
    ),
    Broken(
        "alg-ps256",
        lambda s: _with_header(good(s), alg="PS256"),
        "unsupported token alg",
        "alg must be RS256",
    ),
    Broken("two-parts", lambda s: ".".join(_parts(good(s))[:2]), "not three parts", "three"),
    Broken("padded", lambda s: good(s) + "==", "padding", "base64url"),
    Broken(
        "exp-as-string",
        lambda s: sign(s[0], "1", {**token_claims(BACKEND, registered()), "exp": "4102444800"}),
        "not a NumericDate",
        "exp must be a number",
    ),
    Broken(
        "no-exp",
        lambda s: sign(
            s[0], "1", {k: v for k, v in token_claims(BACKEND, registered()).items() if k != "exp"}
        ),
        "no exp",
        "exp is missing",
    ),
    Broken(
        "tags-not-lists",
        lambda s: sign(
            s[0], "1", {**token_claims(BACKEND, registered()), "Tags": {"kuma.io/service": "backend"}}
        ),
        "Tags is not a map",
        "Tags must map",
    ),
]


@pytest.mark.parametrize("broken", BROKEN, ids=lambda broken: broken.id)
def test_a_broken_token_fails_kumas_rules_and_ours(broken: Broken, signers: list[PemSigner]) -> None:
    # Given a token broken in one way; the control plane holds kid 1 (signers[0]) and kid 2 (signers[1])
    token = broken.make(signers)
    # Then the control plane's rules refuse it, for the expected reason
    with pytest.raises(Rejected) as rejected:
        validate_dataplane_token(
            token,
            pem_keys(k1=signers[0], k2=signers[1]),
            now=NOW.timestamp(),
            mesh="default",
            name="backend-01",
            tags=SERVICE_TAGS,
        )
    assert broken.kuma_reason in rejected.value.reason
    # And so does our own validator
    with pytest.raises(InvalidToken, match=broken.ours):
        validate_token(token, our_keys(k1=signers[0], k2=signers[1]), now=NOW)


def test_a_key_sets_public_keys_validate_its_tokens(signers: list[PemSigner]) -> None:
    keys = KeySet({1: signers[0], 2: signers[1]})
    token = sign(keys.signer, keys.signing_kid, token_claims(BACKEND, registered()))
    assert validate_token(token, keys.public_keys(), now=NOW).kid == "2"


def test_the_good_token_passes_both(signers: list[PemSigner]) -> None:
    token = good(signers)
    validate_dataplane_token(
        token,
        pem_keys(k1=signers[0]),
        now=NOW.timestamp(),
        mesh="default",
        name="backend-01",
        tags=SERVICE_TAGS,
    )
    valid = validate_token(token, our_keys(k1=signers[0]), now=NOW)
    assert (valid.kid, valid.kind, valid.expires_at) == ("1", "dataplane", NOW + timedelta(hours=1))
    with pytest.raises(InvalidToken, match="revoked"):
        validate_token(token, our_keys(k1=signers[0]), now=NOW, revoked={valid.jti})


@pytest.mark.parametrize(
    ("mesh", "name", "tags", "reason"),
    [
        ("payments", "backend-01", SERVICE_TAGS, "mesh differs"),
        ("default", "backend-02", SERVICE_TAGS, "name differs"),
        ("default", "backend-01", {"kuma.io/service": ["backend", "admin"]}, "does not allow"),
        ("default", "backend-01", {}, "has no tag"),
    ],
)
def test_the_control_plane_binds_the_dataplane_to_the_token(
    mesh: str, name: str, tags: dict[str, list[str]], reason: str, signers: list[PemSigner]
) -> None:
    with pytest.raises(Rejected, match=reason):
        validate_dataplane_token(
            good(signers), pem_keys(k1=signers[0]), now=NOW.timestamp(), mesh=mesh, name=name, tags=tags
        )


# --- which identity a role gets a token for ------------------------------------------------------------


def role(
    type: ProxyType = ProxyType.DATAPLANE,
    mesh: str | None = "default",
    service: str | None = None,
    workload: str | None = None,
) -> RoleTags:
    return RoleTags(type=type, mesh=mesh, service=service, workload=workload)


@pytest.mark.parametrize(
    ("tags", "asked", "asked_workload", "services", "workload"),
    [
        (role(service="backend"), ("backend",), None, ("backend",), None),
        (role(), ("web",), None, ("web",), None),
        (role(), ("web", "web-api", "web"), None, ("web", "web-api"), None),
        (role(), (), None, (), None),
        (role(service="worker", workload="worker"), ("worker",), "worker", ("worker",), "worker"),
        (role(), ("web",), "web-v2", ("web",), "web-v2"),
    ],
    ids=[
        "role-service",
        "asked-service",
        "asked-services-once-each",
        "mesh-wide",
        "role-workload",
        "asked-workload",
    ],
)
def test_the_token_carries_the_service_and_workload_the_role_allows(
    tags: RoleTags,
    asked: tuple[str, ...],
    asked_workload: str | None,
    services: tuple[str, ...],
    workload: str | None,
) -> None:
    identity = dataplane_identity(tags, name="dp-01", services=asked, workload=asked_workload)
    assert identity == DataplaneIdentity("dp-01", "default", services, workload)


def test_zone_roles_get_their_own_scope_only() -> None:
    assert zone_identity(role(ProxyType.INGRESS, None), "zone-1") == ZoneIdentity("zone-1", ZoneScope.INGRESS)
    assert zone_identity(role(ProxyType.EGRESS, None), "zone-1") == ZoneIdentity("zone-1", ZoneScope.EGRESS)
    with pytest.raises(ValueError, match="ingress or egress"):
        zone_identity(role(), "zone-1")
    with pytest.raises(ValueError, match="dataplane role"):
        dataplane_identity(role(ProxyType.INGRESS, None), name="x", services=(), workload=None)
