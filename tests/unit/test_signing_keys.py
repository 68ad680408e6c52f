"""KUMA_IAM_SIGNING_KEYS, the key ring loaded once per container, and the public keys as control planes take
them (PKCS#1 PEM, JWK)."""

from __future__ import annotations

import base64
from collections import Counter

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from kuma_iam.errors import ConfigError, UpstreamThrottled
from kuma_iam.tokens.keys import KeyRing
from kuma_iam.tokens.publication import published_keys
from kuma_iam.tokens.references import KeyReference, KeySource, parse_signing_keys
from kuma_iam.tokens.signers import PemSigner, Signer

KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
SECRET = "arn:aws:secretsmanager:us-east-1:111111111111:secret:kuma/signing-key-1-AbCdEf"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1=alias/kuma", [(1, KeySource.KMS, "alias/kuma")]),
        (f"1={KEY_ID}", [(1, KeySource.KMS, KEY_ID)]),
        ("1=mrk-" + "0" * 32, [(1, KeySource.KMS, "mrk-" + "0" * 32)]),
        (
            f"1=arn:aws:kms:eu-west-1:111111111111:key/{KEY_ID}",
            [(1, KeySource.KMS, f"arn:aws:kms:eu-west-1:111111111111:key/{KEY_ID}")],
        ),
        (
            "1=arn:aws-cn:kms:cn-north-1:111111111111:alias/k",
            [(1, KeySource.KMS, "arn:aws-cn:kms:cn-north-1:111111111111:alias/k")],
        ),
        (f"1={SECRET}", [(1, KeySource.SECRETS_MANAGER, SECRET)]),
        (
            f" 2 = alias/new , 1={SECRET} ,",
            [(1, KeySource.SECRETS_MANAGER, SECRET), (2, KeySource.KMS, "alias/new")],
        ),
        ("10=alias/ten,9=alias/nine", [(9, KeySource.KMS, "alias/nine"), (10, KeySource.KMS, "alias/ten")]),
    ],
)
def test_signing_keys_parse_sorted_by_kid(text: str, expected: list[tuple[int, KeySource, str]]) -> None:
    assert parse_signing_keys(text) == tuple(KeyReference(*item) for item in expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "names no key"),
        (",,", "names no key"),
        ("alias/kuma", "is not kid=key"),
        ("0=alias/kuma", "not a decimal serial"),
        ("01=alias/kuma", "not a decimal serial"),
        ("-1=alias/kuma", "not a decimal serial"),
        ("one=alias/kuma", "not a decimal serial"),
        ("1=alias/a,1=alias/b", "kid 1 is given twice"),
        ("1=alias/a,2=alias/a", "already another kid's key"),
        ("1=kuma", "neither a KMS key"),
        ("1=alias/", "neither a KMS key"),
        ("1=arn:aws:s3:::bucket/key", "neither a KMS key"),
        ("1=arn:aws:secretsmanager:us-east-1:111111111111:parameter/x", "neither a KMS key"),
        ("1=https://example.com/key.pem", "neither a KMS key"),
        ("1=alias/a b", "neither a KMS key"),
    ],
)
def test_bad_signing_keys_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_signing_keys(text)


def signer_of(pem: str) -> PemSigner:
    return PemSigner.from_pem(pem.encode(), "test key")


def test_public_keys_are_pkcs1_pem_and_jwk_of_the_same_key(kuma_signing_keys: list[str]) -> None:
    # Given a key ring of two Kuma keys
    references = parse_signing_keys("1=alias/one,2=alias/two")
    signers = {1: signer_of(kuma_signing_keys[0]), 2: signer_of(kuma_signing_keys[1])}
    ring = KeyRing(references, lambda reference: signers[reference.kid], name="dataplane token")
    # When it is published for two meshes
    published = published_keys(ring.get(), ("default", "payments"), None, None)
    # Then each mesh gets every kid, as PKCS#1 PEM (the form every control plane reads) of the right key
    entries = published["dpServer"]["authn"]["dpProxy"]["dpToken"]["validator"]["publicKeys"]
    assert [(entry["kid"], entry["mesh"]) for entry in entries] == [
        ("1", "default"),
        ("2", "default"),
        ("1", "payments"),
        ("2", "payments"),
    ]
    for entry in entries:
        assert entry["key"].startswith("-----BEGIN RSA PUBLIC KEY-----\n")
        loaded = serialization.load_pem_public_key(entry["key"].encode())
        assert isinstance(loaded, RSAPublicKey)
        assert loaded.public_numbers() == signers[int(entry["kid"])].public_key.public_numbers()
    # And the JWKS carries the same keys by kid; the highest kid signs; no zone keys without a zone
    for jwk in published["jwks"]["keys"]:
        numbers = signers[int(jwk["kid"])].public_key.public_numbers()
        assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("RSA", "RS256", "sig")
        assert int.from_bytes(base64.urlsafe_b64decode(jwk["n"] + "=" * (-len(jwk["n"]) % 4))) == numbers.n
        assert jwk["e"] == "AQAB"
    assert published["signingKid"] == {"dataplane": "2", "zone": None}
    assert published["dpServer"]["authn"]["zoneProxy"]["zoneToken"]["validator"]["publicKeys"] == []


def test_keys_load_once_and_a_failed_load_is_tried_again(kuma_signing_keys: list[str]) -> None:
    # Given a loader whose first call fails as a throttled AWS would
    loads: Counter[int] = Counter()
    failures = [UpstreamThrottled("kms", "throttled")]

    def load(reference: KeyReference) -> Signer:
        loads[reference.kid] += 1
        if failures:
            raise failures.pop()
        return signer_of(kuma_signing_keys[reference.kid - 1])

    ring = KeyRing(parse_signing_keys("1=alias/one,2=alias/two"), load, name="dataplane token")
    # When the ring is asked for its keys four times
    with pytest.raises(UpstreamThrottled):
        ring.get()
    first = ring.get()
    assert ring.get() is first
    assert ring.get() is first
    # Then the failure was not kept, and each key was loaded once after it
    assert loads == {1: 2, 2: 1}
    assert first.signing_kid == "2"


def test_one_key_under_two_kids_or_in_both_rings_is_refused(kuma_signing_keys: list[str]) -> None:
    same = signer_of(kuma_signing_keys[0])
    twice = KeyRing(parse_signing_keys("1=alias/one,2=alias/two"), lambda _: same, name="dataplane token")
    with pytest.raises(ConfigError, match="kid 1 and kid 2 are the same key"):
        twice.get()
    # A zone token has no Mesh, Name or Tags: signed with a dataplane key it would admit any dataplane.
    dataplane = KeyRing(parse_signing_keys("1=alias/dp"), lambda _: same, name="dataplane token")
    zone = KeyRing(
        parse_signing_keys("1=alias/zone"), lambda _: same, name="zone token", distinct_from=dataplane
    )
    with pytest.raises(ConfigError, match="share a key with the dataplane token keys"):
        zone.get()


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        (b"", "not a Kuma signing key"),
        (b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n", "not a Kuma signing key"),
        (b"-----BEGIN RSA PRIVATE KEY-----\nnot base64\n-----END RSA PRIVATE KEY-----\n", "does not parse"),
    ],
    ids=["empty", "pkcs8", "garbage"],
)
def test_a_secret_that_is_not_a_kuma_key_is_a_configuration_error(pem: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PemSigner.from_pem(pem, "secret x")


def test_a_short_rsa_key_is_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point
    short = weak.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    with pytest.raises(ConfigError, match="at least 2048 bits"):
        PemSigner.from_pem(short, "secret x")
