"""Shared fixtures for the pure unit tier: requests signed the way a sidecar signs them, and the policy."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from botocore.credentials import ReadOnlyCredentials

from kuma_iam.identity.checks import TokenPolicy
from kuma_iam.identity.token import SignedRequest
from kuma_iam_cli.signer import sign_identity_request
from support.token_mutations import signing_time

SERVER_ID = "cp-unit-test"
ACCESS_KEY_ID = "ASIAEXAMPLEEXAMPLE01"


def _sign(region: str) -> SignedRequest:
    credentials = ReadOnlyCredentials(ACCESS_KEY_ID, "secret", "session-token")
    return sign_identity_request(credentials, server_id=SERVER_ID, region=region)


@pytest.fixture(scope="session")
def sign() -> Callable[[str], SignedRequest]:
    """Sign a GetCallerIdentity for a region with session (task-role-like) credentials, via our signer."""
    return _sign


@pytest.fixture(scope="session")
def signed_request() -> SignedRequest:
    # Session scope, so hypothesis tests may use it; checks take `now` from `signed_at`, not the clock.
    return _sign("us-east-1")


@pytest.fixture(scope="session")
def signed_at(signed_request: SignedRequest) -> datetime:
    """The instant the request says it was signed: token age is measured from here, never the wall clock."""
    return signing_time(signed_request)


@pytest.fixture(scope="session")
def policy() -> TokenPolicy:
    return TokenPolicy(server_id=SERVER_ID, max_age=timedelta(seconds=900), max_skew=timedelta(seconds=300))


@pytest.fixture(scope="session")
def kuma_signing_keys() -> list[str]:
    """Three Kuma signing keys (PKCS#1 PEM, 2048 bits), made once: RSA key generation is the slow part."""
    from kuma_iam_cli.local.token_keys import new_kuma_signing_key

    return [new_kuma_signing_key() for _ in range(3)]
