"""One signer interface for RS256 (RSASSA-PKCS1-v1_5 with SHA-256), two keys behind it: an AWS KMS key
whose private half never leaves KMS, and a Kuma signing key (PKCS#1 `RSA PRIVATE KEY` PEM) held in Secrets
Manager."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

from botocore.exceptions import ClientError
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from kuma_iam.aws import aws_errors
from kuma_iam.errors import ConfigError, Upstream, UpstreamUnavailable
from kuma_iam.observability import KMS_SIGN_LATENCY, timed

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

KMS_SIGNING_ALGORITHM: Final = "RSASSA_PKCS1_V1_5_SHA_256"
RSA_KEY_SPECS = frozenset({"RSA_2048", "RSA_3072", "RSA_4096"})
MIN_RSA_BITS = 2048
# KMS signs a RAW message of at most 4096 bytes; every signer keeps the same bound so that a token that one
# signer accepts never fails on the other.
MAX_MESSAGE_BYTES = 4096
PRIVATE_PEM_HEADER = b"-----BEGIN RSA PRIVATE KEY-----"


class Signer(Protocol):
    """Signs JWT signing input with RS256; `public_key` is what validators are given."""

    @property
    def public_key(self) -> RSAPublicKey: ...

    @property
    def service(self) -> Upstream:
        """The AWS service the signature comes from (kms, secretsmanager): for errors and metrics."""
        ...

    def sign(self, message: bytes) -> bytes: ...


class KmsSigner:
    """An asymmetric KMS key (RSA, SIGN_VERIFY): each signature is one kms:Sign call with MessageType RAW."""

    service: Upstream = "kms"

    def __init__(self, kms: KMSClient, key: str, public_key: RSAPublicKey, key_id: str) -> None:
        self._kms = kms
        self._key = key
        self._public_key = public_key
        self._key_id = key_id

    @property
    def public_key(self) -> RSAPublicKey:
        return self._public_key

    @classmethod
    def load(cls, kms: KMSClient, key: str) -> KmsSigner:
        """Read the key's public half (kms:GetPublicKey) and check it can sign RS256."""
        with aws_errors("kms", f"cannot read the public key of {key}"):
            answer = kms.get_public_key(KeyId=key)
            der, key_id = answer["PublicKey"], answer["KeyId"]
            spec = answer.get("KeySpec") or answer.get("CustomerMasterKeySpec")
            usage, algorithms = answer.get("KeyUsage"), answer.get("SigningAlgorithms", [])
        if spec not in RSA_KEY_SPECS or usage != "SIGN_VERIFY" or KMS_SIGNING_ALGORITHM not in algorithms:
            raise ConfigError(
                f"KMS key {key} is {spec} for {usage}; a signing key must be RSA (2048 bits or more) for "
                f"SIGN_VERIFY with {KMS_SIGNING_ALGORITHM}"
            )
        public_key = _rsa_public_key(der, f"KMS key {key}")
        return cls(kms, key, public_key, _bare_key_id(key_id))

    def sign(self, message: bytes) -> bytes:
        _check_size(message)
        with aws_errors("kms", f"cannot sign with {self._key}"), timed(KMS_SIGN_LATENCY):
            answer = self._kms.sign(
                KeyId=self._key,
                Message=message,
                # RAW: KMS hashes the message itself (and moto's DIGEST mode signs the wrong bytes).
                MessageType="RAW",
                SigningAlgorithm=KMS_SIGNING_ALGORITHM,
            )
            signature, signed_by = answer["Signature"], _bare_key_id(answer["KeyId"])
        if signed_by != self._key_id:
            # An alias moved to another key since the public key was read: that token would not validate.
            raise UpstreamUnavailable(
                "kms", f"{self._key} now signs with another KMS key than the one published; restart to reload"
            )
        return signature


class PemSigner:
    """A Kuma signing key (PKCS#1 `RSA PRIVATE KEY` PEM, as kumactl and the control plane write them)."""

    def __init__(self, private_key: RSAPrivateKey, *, service: Upstream = "secretsmanager") -> None:
        self._private_key = private_key
        self._public_key = private_key.public_key()
        self.service = service

    @property
    def public_key(self) -> RSAPublicKey:
        return self._public_key

    @classmethod
    def from_pem(cls, pem: bytes, what: str, *, service: Upstream = "secretsmanager") -> PemSigner:
        pem = pem.strip()
        if not pem.startswith(PRIVATE_PEM_HEADER):
            raise ConfigError(f"{what} is not a Kuma signing key (a PKCS#1 'RSA PRIVATE KEY' PEM)")
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise ConfigError(f"{what} holds an 'RSA PRIVATE KEY' PEM that does not parse") from None
        if not isinstance(key, RSAPrivateKey) or key.key_size < MIN_RSA_BITS:
            raise ConfigError(f"{what} must be an RSA key of at least {MIN_RSA_BITS} bits")
        return cls(key, service=service)

    @classmethod
    def load(cls, secrets: SecretsManagerClient, secret_arn: str) -> PemSigner:
        """Read the PEM from the secret's string (or binary) value."""
        with aws_errors("secretsmanager", f"cannot read the signing key in {secret_arn}"):
            try:
                answer = secrets.get_secret_value(SecretId=secret_arn)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    raise ConfigError(f"signing key secret {secret_arn} does not exist") from None
                raise
            text = answer.get("SecretString")
            pem = text.encode() if text is not None else answer.get("SecretBinary", b"")
        return cls.from_pem(pem, f"secret {secret_arn}")

    def sign(self, message: bytes) -> bytes:
        _check_size(message)
        return self._private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def _check_size(message: bytes) -> None:
    if len(message) > MAX_MESSAGE_BYTES:
        # Callers bound the claims long before this; reaching it is a bug, not input.
        raise ValueError(f"signing input of {len(message)} bytes exceeds {MAX_MESSAGE_BYTES}")


def _rsa_public_key(der: bytes, what: str) -> RSAPublicKey:
    """KMS hands out PKIX (SubjectPublicKeyInfo) DER; validators get it re-encoded as PKCS#1."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        raise UpstreamUnavailable("kms", f"{what}: the public key KMS returned does not parse") from None
    if not isinstance(key, RSAPublicKey) or key.key_size < MIN_RSA_BITS:
        raise ConfigError(f"{what} is not an RSA key of at least {MIN_RSA_BITS} bits")
    return key


def _bare_key_id(key_id: str) -> str:
    """`arn:…:key/<id>` and `<id>` name the same key: KMS answers with either, depending on the call."""
    return key_id.rsplit("key/", 1)[-1]
