"""The real verifier handler, invoked as API Gateway invokes it, and tokens signed by real task-role keys."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any
from unittest import mock

from botocore.credentials import ReadOnlyCredentials

from kuma_iam.identity.token import SignedRequest
from kuma_iam_cli.local.events import VERIFY_ROUTE
from kuma_iam_cli.local.gateway import GatewayRequest, LocalLambdaContext, build_event
from kuma_iam_cli.local.seed import DemoWorld, control_plane_caller, task_credentials
from kuma_iam_cli.signer import sign_identity_request

SERVER_ID = "kuma-it"

TokenFactory = Callable[..., str | dict[str, str]]


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
        self, token: object, dataplane: dict[str, Any] | None = None, *, raw_body: str | bytes | None = None
    ) -> VerifyAnswer:
        """`raw_body` replaces the JSON body; bytes that are not UTF-8 arrive base64-encoded, as API
        Gateway sends them."""
        dataplane = dataplane if dataplane is not None else {"mesh": "default", "name": "backend-01"}
        body = raw_body if raw_body is not None else json.dumps({"token": token, "dataplane": dataplane})
        return self.invoke(self.event(body))

    def event(self, body: str | bytes) -> dict[str, Any]:
        """The payload 2.0 event API Gateway would send for POST /v1/verify with this body."""
        request = GatewayRequest(
            method="POST",
            raw_path="/v1/verify",
            raw_query="",
            headers=(("content-type", "application/json"),),
            body=body.encode() if isinstance(body, str) else body,
            source_ip="10.0.0.10",
        )
        return build_event(
            request,
            route_key=VERIFY_ROUTE,
            caller=control_plane_caller(self.world),
            api_account_id=self.world.home_account,
            request_id=str(uuid.uuid4()),
            received_at=datetime.now(UTC),
        )

    def invoke(self, event: object) -> VerifyAnswer:
        """The handler's answer to any event, well-formed or not."""
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


def signed_request(
    world: DemoWorld,
    account: str,
    role: str,
    *,
    server_id: str = SERVER_ID,
    region: str | None = None,
    session_name: str = "ecs-task",
    at: datetime | None = None,
) -> SignedRequest:
    """A GetCallerIdentity signed with real task-role credentials that the embedded AWS issued; `at` sets
    the signing clock (an old or future token), else it is signed now."""
    credentials = read_only_credentials(task_credentials(world, account, role, session_name=session_name))
    if at is None:
        return sign_identity_request(credentials, server_id=server_id, region=region or world.region)
    with mock.patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None)):
        return sign_identity_request(credentials, server_id=server_id, region=region or world.region)


def read_only_credentials(issued: Mapping[str, str]) -> ReadOnlyCredentials:
    """Issued AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), as botocore signs with."""
    return ReadOnlyCredentials(
        issued["AWS_ACCESS_KEY_ID"], issued["AWS_SECRET_ACCESS_KEY"], issued.get("AWS_SESSION_TOKEN")
    )
