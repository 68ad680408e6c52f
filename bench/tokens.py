"""The token issuer's figures (issue 9), taken as soon as `kuma_iam.tokens` is on the branch: tokens minted
with a local Kuma PEM key against raw RS256 signing of the same claims, and the KMS path against one bare
kms:Sign of the same message, interleaved call by call.

Until the issuer lands the section says so and the scoreboard carries no token rows.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.sampling import interleaved
from bench.scoreboard import Figure, at_least, at_most
from bench.world import SERVER_ID
from kuma_iam_cli.local.embedded_aws import EmbeddedAws
from kuma_iam_cli.local.seed import DemoWorld

TOKEN_PAIRS = 150


def issuer_available() -> bool:
    return importlib.util.find_spec("kuma_iam.tokens") is not None


def seed_keys(aws: EmbeddedAws, world: DemoWorld) -> Any:
    """The issuer's keys on the embedded AWS (before the signature checks go on)."""
    from kuma_iam_cli.local.token_keys import seed_token_keys

    return seed_token_keys(aws, world)


def measure_tokens(world: DemoWorld, keys: Any) -> list[Figure]:
    import boto3
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from kuma_iam.config import TokenIssuerSettings
    from kuma_iam.tokens import jwt
    from kuma_iam.tokens.claims import DataplaneIdentity, RegisteredClaims, token_claims
    from kuma_iam.tokens.issuer import build_minter
    from kuma_iam_cli.local.token_keys import token_issuer_environment

    environment = token_issuer_environment(world, keys, server_id=SERVER_ID)
    session = boto3.Session(
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        region_name=environment["AWS_REGION"],
    )
    identity = DataplaneIdentity(name="backend-01", mesh="default", services=("backend",))
    one_hour = timedelta(hours=1)

    def minter(signing_keys: str) -> Callable[[], object]:
        settings = TokenIssuerSettings.from_env({**environment, "KUMA_IAM_SIGNING_KEYS": signing_keys})
        built = build_minter(settings, session, timeout_seconds=2.5, dynamodb_endpoint_url=world.endpoint_url)
        built.mint(identity, one_hour)  # keys loaded: a warm container
        return lambda: built.mint(identity, one_hour)

    message = jwt.signing_input(
        "1", token_claims(identity, RegisteredClaims.starting("bench", datetime.now(UTC), one_hour))
    )
    private_key = serialization.load_pem_private_key(keys.pem.encode(), password=None)
    if not isinstance(private_key, RSAPrivateKey):
        raise AssertionError("the seeded Kuma signing key is not RSA")
    kms = session.client("kms", endpoint_url=world.endpoint_url)

    def raw_sign() -> None:
        private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())

    def bare_kms_sign() -> None:
        kms.sign(
            KeyId=keys.dataplane_key_alias,
            Message=message,
            MessageType="RAW",
            SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256",
        )

    pem, raw = interleaved(minter(f"1={keys.pem_secret_arn}"), raw_sign, pairs=TOKEN_PAIRS)
    via_kms, bare = interleaved(minter(f"1={keys.dataplane_key_alias}"), bare_kms_sign, pairs=TOKEN_PAIRS)
    return [
        Figure(
            "tokens",
            "tokens/s, local PEM key (median call)",
            1 / pem.p50,
            "tokens/s",
            "raw RS256 signatures/s, same claims",
            1 / raw.p50,
            at_least(0.70),
            {"mint": pem.summary(), "raw_sign": raw.summary()},
        ),
        Figure(
            "tokens",
            "token via KMS (median call)",
            via_kms.p50 * 1e3,
            "ms",
            "one bare kms:Sign",
            bare.p50 * 1e3,
            at_most(1.20),
            {"mint": via_kms.summary(), "kms_sign": bare.summary()},
        ),
    ]
