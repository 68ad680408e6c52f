"""The real token issuer handler, invoked as API Gateway invokes it, by a caller the IAM authorizer names."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from kuma_iam_cli.local.gateway import GatewayCaller, GatewayRequest, LocalLambdaContext, build_event
from kuma_iam_cli.local.seed import DemoWorld
from kuma_iam_cli.local.token_events import KEYS_ROUTE, TOKENS_ROUTE

__all__ = ["BACKEND_CLAIM", "KEYS_ROUTE", "TOKENS_ROUTE", "IssuerAnswer", "TokenIssuer"]
BACKEND_CLAIM = {"mesh": "default", "name": "backend-01", "tags": {"kuma.io/service": ["backend"]}}


@dataclass(frozen=True)
class IssuerAnswer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def reason(self) -> str | None:
        """The deny reason of a 403, else the error code (None for a 200)."""
        return self.body.get("reason") if self.status == 403 else self.body.get("error")


class TokenIssuer:
    """Invokes the handler the way API Gateway does; `caller` is what the IAM authorizer reports (None: a
    route without IAM authorization)."""

    def __init__(self, module: ModuleType, world: DemoWorld) -> None:
        self.module = module
        self.world = world

    def exchange(
        self,
        token: object,
        dataplane: dict[str, Any] | None = None,
        *,
        caller: GatewayCaller | None,
        raw_body: str | bytes | None = None,
        **fields: Any,
    ) -> IssuerAnswer:
        """`fields` become more keys of the body (validFor, zone)."""
        claim = dataplane if dataplane is not None else BACKEND_CLAIM
        document = {"token": token, "dataplane": claim, **fields}
        body = raw_body if raw_body is not None else json.dumps(document)
        return self._invoke("POST", "/v1/tokens", body.encode() if isinstance(body, str) else body, caller)

    def keys(self, caller: GatewayCaller | None) -> IssuerAnswer:
        return self._invoke("GET", "/v1/keys", b"", caller)

    def _invoke(self, method: str, path: str, body: bytes, caller: GatewayCaller | None) -> IssuerAnswer:
        request = GatewayRequest(
            method=method,
            raw_path=path,
            raw_query="",
            headers=(("content-type", "application/json"),),
            body=body,
            source_ip="10.0.0.20",
        )
        event = build_event(
            request,
            route_key=f"{method} {path}",
            caller=caller,
            api_account_id=self.world.home_account,
            request_id=str(uuid.uuid4()),
            received_at=datetime.now(UTC),
        )
        context = LocalLambdaContext(
            function_name="TokenIssuerFunction",
            aws_request_id=str(uuid.uuid4()),
            region=self.world.region,
            account_id=self.world.home_account,
        )
        result = self.module.lambda_handler(event, context)
        return IssuerAnswer(
            status=result["statusCode"],
            body=json.loads(result["body"]),
            headers={key.lower(): value for key, value in (result.get("headers") or {}).items()},
        )
