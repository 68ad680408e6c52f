"""Numbered signing keys (`kid` -> KMS key or Secrets Manager PEM): the highest signs, every one is published.

`KUMA_IAM_SIGNING_KEYS` is `1=arn:aws:secretsmanager:…,2=alias/kuma-iam-dataplane-tokens`: after a rotation
the new, higher kid signs while the old keys stay published, so tokens signed before it keep validating until
they expire. Keys are loaded once per container (`KeyRing`), never per request.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from kuma_iam.errors import ConfigError
from kuma_iam.tokens.references import KeyReference
from kuma_iam.tokens.signers import Signer


@dataclass(frozen=True, slots=True)
class PublishedKey:
    """A public key as control planes take it: PKCS#1 `RSA PUBLIC KEY` PEM, and as a JWK."""

    kid: str
    public_key: RSAPublicKey

    def pem(self) -> str:
        return public_key_pem(self.public_key)

    def jwk(self) -> dict[str, str]:
        numbers = self.public_key.public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
        }


def public_key_pem(public_key: RSAPublicKey) -> str:
    """PKCS#1 (`-----BEGIN RSA PUBLIC KEY-----`): the one form every Kuma release reads."""
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1).decode(
        "ascii"
    )


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class KeySet:
    """Loaded signers by kid; the highest kid signs."""

    signers: dict[int, Signer]

    @property
    def signing_kid(self) -> str:
        return str(max(self.signers))

    @property
    def signer(self) -> Signer:
        return self.signers[max(self.signers)]

    def published(self) -> list[PublishedKey]:
        return [PublishedKey(str(kid), self.signers[kid].public_key) for kid in sorted(self.signers)]

    def public_keys(self) -> dict[str, RSAPublicKey]:
        """kid -> public key, as `validator.validate_token` takes them."""
        return {key.kid: key.public_key for key in self.published()}


class KeyRing:
    """The key set of one kind of token, loaded on first use and kept for the container's life.

    A load that fails (AWS throttling or down) is not kept: the next request tries again.
    """

    def __init__(
        self,
        references: Sequence[KeyReference],
        load: Callable[[KeyReference], Signer],
        *,
        name: str,
        distinct_from: KeyRing | None = None,
    ) -> None:
        self.references = tuple(references)
        self.name = name
        self._load = load
        self._distinct_from = distinct_from
        self._keys: KeySet | None = None
        self._lock = threading.Lock()

    def get(self) -> KeySet:
        keys = self._keys
        if keys is not None:
            return keys
        with self._lock:
            if self._keys is None:
                loaded = KeySet({reference.kid: self._load(reference) for reference in self.references})
                _refuse_shared_material(self.name, loaded, self._distinct_from)
                self._keys = loaded
            return self._keys


def _refuse_shared_material(name: str, keys: KeySet, other: KeyRing | None) -> None:
    """One key under two kids, or in both the dataplane and the zone ring, is a configuration error: a zone
    token (no Mesh, no Name, no Tags) signed by a dataplane key would pass as a token for any dataplane."""
    seen: dict[int, int] = {}
    for kid, signer in keys.signers.items():
        modulus = signer.public_key.public_numbers().n
        if modulus in seen:
            raise ConfigError(f"{name} keys: kid {seen[modulus]} and kid {kid} are the same key")
        seen[modulus] = kid
    if other is not None:
        for kid, signer in other.get().signers.items():
            if signer.public_key.public_numbers().n in seen:
                raise ConfigError(f"{name} keys share a key with the {other.name} keys (their kid {kid})")
