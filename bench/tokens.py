"""The token issuer's figures: tokens minted with a local Kuma PEM key against raw RS256 signing of the same
claims, a token through KMS against one bare kms:Sign of the same message (interleaved call by call), a
warm exchange against a warm verification of the same identity, and the handler's memory over 2,000
exchanges."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from bench.sampling import ChildPython, interleaved, spec_file
from bench.scoreboard import Figure, at_least, at_most
from bench.verifier import CHILD, MEMORY_REQUESTS, memory_figures
from bench.world import CLAIM, FUNCTIONS, SERVER_ID, compact, credentials_of
from kuma_iam.config import TokenIssuerSettings
from kuma_iam.tokens import jwt
from kuma_iam.tokens.binding import ApiCaller
from kuma_iam.tokens.claims import DataplaneIdentity, RegisteredClaims, token_claims
from kuma_iam.tokens.issuer import TokenRequest, build_minter, build_token_issuer
from kuma_iam.verify import VerifyRequest
from kuma_iam_cli.local.embedded_aws import EmbeddedAws
from kuma_iam_cli.local.gateway import GatewayCaller, GatewayRequest, build_event
from kuma_iam_cli.local.seed import DemoWorld, task_caller
from kuma_iam_cli.local.token_events import TOKENS_ROUTE
from kuma_iam_cli.local.token_keys import TokenKeys, seed_token_keys, token_issuer_environment
from kuma_iam_cli.signer import sign_identity_request

TOKEN_PAIRS = 150


def seed_keys(aws: EmbeddedAws, world: DemoWorld) -> TokenKeys:
    """The issuer's keys on the embedded AWS (before the signature checks go on)."""
    return seed_token_keys(aws, world)


def _session(environment: dict[str, str]) -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        region_name=environment["AWS_REGION"],
    )


def measure_signers(world: DemoWorld, keys: TokenKeys) -> list[Figure]:
    """Each signer's mint (claims, signature, its check against the public key) against the
    signature alone, over the very same signing input."""
    environment = token_issuer_environment(world, keys, server_id=SERVER_ID)
    session = _session(environment)
    identity = DataplaneIdentity(name="backend-01", mesh="default", services=("backend",))
    one_hour = timedelta(hours=1)

    def minter(signing_keys: str) -> Callable[[], object]:
        settings = TokenIssuerSettings.from_env({**environment, "KUMA_IAM_SIGNING_KEYS": signing_keys})
        built = build_minter(settings, session, timeout_seconds=2.5)
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
            "token through KMS (median call)",
            via_kms.p50 * 1e3,
            "ms",
            "one bare kms:Sign, same message",
            bare.p50 * 1e3,
            at_most(1.20),
            {"mint": via_kms.summary(), "kms_sign": bare.summary()},
        ),
    ]


def measure_exchange(world: DemoWorld, keys: TokenKeys) -> list[Figure]:
    """The whole exchange on a warm issuer (STS forward, role cached, PEM signer) against a
    warm verification of the same identity, for the record."""
    environment = token_issuer_environment(world, keys, server_id=SERVER_ID)
    settings = TokenIssuerSettings.from_env(
        {**environment, "KUMA_IAM_SIGNING_KEYS": f"1={keys.pem_secret_arn}"}
    )
    issuer = build_token_issuer(settings, _session(environment))
    credentials, caller = task_caller(world, world.home_account, "backend-task", "bench-exchange")
    api_caller = ApiCaller(caller.account_id, caller.user_arn, caller.user_id)
    token = compact(
        sign_identity_request(credentials_of(credentials), server_id=SERVER_ID, region=world.region)
    )
    token_request = TokenRequest.model_validate({"token": token, "dataplane": CLAIM})
    verify_request = VerifyRequest.model_validate({"token": token, "dataplane": CLAIM})
    verifier = issuer.verifier
    exchanged, verified = interleaved(
        lambda: issuer.exchange(token_request, api_caller), lambda: verifier.verify(verify_request), pairs=60
    )
    return [
        Figure(
            "tokens",
            "exchange, warm (PEM signer, median)",
            exchanged.p50 * 1e3,
            "ms",
            "warm verification, same identity",
            verified.p50 * 1e3,
            details={"exchange": exchanged.summary(), "verification": verified.summary()},
        )
    ]


def exchange_event(world: DemoWorld, token: str, caller: GatewayCaller) -> dict[str, Any]:
    body = json.dumps({"token": token, "dataplane": CLAIM}).encode()
    request = GatewayRequest(
        method="POST",
        raw_path="/v1/tokens",
        raw_query="",
        headers=(("content-type", "application/json"),),
        body=body,
        source_ip="10.0.0.20",
    )
    return build_event(
        request,
        route_key=TOKENS_ROUTE,
        caller=caller,
        api_account_id=world.home_account,
        request_id=str(uuid.uuid4()),
        received_at=datetime.now(UTC),
    )


def measure_issuer_memory(world: DemoWorld, keys: TokenKeys, child: ChildPython) -> list[Figure]:
    """RSS of a container after 1,000 exchanges (PEM signer), and what the next 1,000 add."""
    credentials, caller = task_caller(world, world.home_account, "backend-task", "bench-memory")
    token = compact(
        sign_identity_request(credentials_of(credentials), server_id=SERVER_ID, region=world.region)
    )
    environment = {
        **token_issuer_environment(world, keys, server_id=SERVER_ID),
        "KUMA_IAM_SIGNING_KEYS": f"1={keys.pem_secret_arn}",
        "KUMA_IAM_HOME_ACCOUNT_ID": world.home_account,
        "KUMA_IAM_ROLE_CACHE_TTL_SECONDS": "3600",
    }
    spec = spec_file(
        {
            "folder": str(FUNCTIONS / "token_issuer"),
            "events": [exchange_event(world, token, caller)],
            "expect": "token",
            "requests": MEMORY_REQUESTS,
        }
    )
    try:
        measured = child.run(CHILD, "memory", str(spec), environment=environment, timeout=900)
    finally:
        spec.unlink(missing_ok=True)
    return memory_figures("token issuer", measured, None, "")
