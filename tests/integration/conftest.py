"""Integration tier: the real verifier handler against the embedded AWS (moto server, SigV4 checks on)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from botocore.credentials import ReadOnlyCredentials

from kuma_iam.identity.signer import sign_identity_request
from kuma_iam.identity.token import SignedRequest, encode_compact, encode_vault
from kuma_iam.local.embedded_aws import EmbeddedAws
from kuma_iam.local.events import VERIFY_ROUTE
from kuma_iam.local.gateway import GatewayRequest, LocalLambdaContext, build_event, load_handler
from kuma_iam.local.seed import (
    DemoWorld,
    control_plane_caller,
    seed_demo_world,
    task_credentials,
    verifier_environment,
)

SERVER_ID = "kuma-it"
REPO = Path(__file__).resolve().parents[2]
VERIFIER_HANDLER = REPO / "functions" / "verifier" / "app.py"

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def embedded_aws() -> Iterator[EmbeddedAws]:
    """One moto server for the whole run: moto's state is per process, so a second one is refused."""
    with EmbeddedAws() as aws:
        yield aws


@pytest.fixture(scope="session")
def demo_world(embedded_aws: EmbeddedAws) -> DemoWorld:
    world = seed_demo_world(embedded_aws)
    embedded_aws.enable_signature_checks()
    return world


@pytest.fixture(scope="session")
def verifier_module() -> ModuleType:
    load_handler(VERIFIER_HANDLER)
    import sys

    return sys.modules["verifier"]


@dataclass(frozen=True)
class VerifyAnswer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def reason(self) -> str | None:
        return self.body.get("reason") if self.status == 200 else self.body.get("error")


class Verifier:
    """Invokes the real handler the way API Gateway does, with a fresh verifier built from `environment`."""

    def __init__(self, module: ModuleType, world: DemoWorld) -> None:
        self.module = module
        self.world = world

    def __call__(
        self, token: object, dataplane: dict[str, Any] | None = None, *, raw_body: str | None = None
    ) -> VerifyAnswer:
        dataplane = dataplane if dataplane is not None else {"mesh": "default", "name": "backend-01"}
        body = raw_body if raw_body is not None else json.dumps({"token": token, "dataplane": dataplane})
        request = GatewayRequest(
            method="POST",
            raw_path="/v1/verify",
            raw_query="",
            headers=(("content-type", "application/json"),),
            body=body.encode(),
            source_ip="10.0.0.10",
        )
        event = build_event(
            request,
            route_key=VERIFY_ROUTE,
            caller=control_plane_caller(self.world),
            api_account_id=self.world.home_account,
            request_id=str(uuid.uuid4()),
            received_at=datetime.now(UTC),
        )
        context = LocalLambdaContext(
            function_name="VerifierFunction",
            aws_request_id=str(uuid.uuid4()),
            region=self.world.region,
            account_id=self.world.home_account,
        )
        result = self.module.lambda_handler(event, context)
        return VerifyAnswer(
            status=result["statusCode"],
            body=json.loads(result["body"]),
            headers={key.lower(): value for key, value in (result.get("headers") or {}).items()},
        )


@pytest.fixture
def verifier_environment_vars(demo_world: DemoWorld) -> dict[str, str]:
    """The verifier's environment; a test may change it before asking for `verify`."""
    return verifier_environment(demo_world, server_id=SERVER_ID)


@pytest.fixture
def verify(
    verifier_module: ModuleType,
    demo_world: DemoWorld,
    verifier_environment_vars: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Verifier]:
    """The handler with a verifier built for this test alone (fresh role cache, this test's environment)."""
    for name, value in verifier_environment_vars.items():
        monkeypatch.setenv(name, value)
    verifier_module.verifier.cache_clear()
    yield Verifier(verifier_module, demo_world)
    verifier_module.verifier.cache_clear()


TokenFactory = Callable[..., str | dict[str, str]]


@pytest.fixture
def sign_token(demo_world: DemoWorld) -> TokenFactory:
    """sign_token(account, role, *, server_id, encoding="compact"|"vault", region, session_name) -> token."""

    def sign(
        account: str,
        role: str,
        *,
        server_id: str = SERVER_ID,
        encoding: str = "compact",
        region: str | None = None,
        session_name: str = "ecs-task",
    ) -> str | dict[str, str]:
        request = signed_request(
            demo_world, account, role, server_id=server_id, region=region, session_name=session_name
        )
        return encode_compact(request) if encoding == "compact" else encode_vault(request)

    return sign


def signed_request(
    world: DemoWorld,
    account: str,
    role: str,
    *,
    server_id: str = SERVER_ID,
    region: str | None = None,
    session_name: str = "ecs-task",
) -> SignedRequest:
    """A GetCallerIdentity signed with real task-role credentials that the embedded AWS issued."""
    issued = task_credentials(world, account, role, session_name=session_name)
    credentials = ReadOnlyCredentials(
        issued["AWS_ACCESS_KEY_ID"], issued["AWS_SECRET_ACCESS_KEY"], issued["AWS_SESSION_TOKEN"]
    )
    return sign_identity_request(credentials, server_id=server_id, region=region or world.region)
