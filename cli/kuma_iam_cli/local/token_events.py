"""The token issuer's sample events (events/token_issuer/): one table of cases, each a task asking for a token
(or the operator reading the keys), signed against a running embedded AWS on demand."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from botocore.credentials import ReadOnlyCredentials

from kuma_iam.identity.token import encode_compact
from kuma_iam_cli.local.gateway import GatewayCaller, GatewayRequest, build_event
from kuma_iam_cli.local.seed import (
    HOME_ACCOUNT,
    OUTSIDER_ACCOUNT,
    DemoWorld,
    control_plane_caller,
    task_caller,
)
from kuma_iam_cli.local.token_keys import DEMO_ZONE
from kuma_iam_cli.signer import sign_identity_request

TOKENS_ROUTE: Final = "POST /v1/tokens"
KEYS_ROUTE: Final = "GET /v1/keys"


@dataclass(frozen=True)
class TokenIssuerCase:
    """One sample request: who signs the identity token, who calls, and what it asks for. The answer it
    must get is in events/token_issuer/expected.json, beside the events written from these cases
    (local/expected.py)."""

    name: str
    route: Literal["POST /v1/tokens", "GET /v1/keys"] = TOKENS_ROUTE
    signer: tuple[str, str] = (HOME_ACCOUNT, "backend-task")
    caller: tuple[str, str] | Literal["signer", "control-plane"] = "signer"
    dataplane: dict[str, Any] = field(
        default_factory=lambda: {
            "type": "dataplane",
            "mesh": "default",
            "name": "backend-01",
            "tags": {"kuma.io/service": ["backend"]},
        }
    )
    fields: dict[str, Any] = field(default_factory=dict)  # more keys of the body: validFor, zone


def _dataplane(mesh: str, service: str | None = None, **more: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "dataplane", "mesh": mesh, "name": f"{service or 'dp'}-01", **more}
    if service is not None:
        spec["tags"] = {"kuma.io/service": [service]}
    return spec


TOKEN_ISSUER_CASES: tuple[TokenIssuerCase, ...] = (
    TokenIssuerCase("allowed", fields={"validFor": "1h"}),
    TokenIssuerCase(
        "allowed-zone-ingress",
        signer=(HOME_ACCOUNT, "ingress-task"),
        dataplane={"type": "ingress", "name": "ingress-01"},
        fields={"zone": DEMO_ZONE},
    ),
    TokenIssuerCase("keys", route=KEYS_ROUTE, caller="control-plane"),
    TokenIssuerCase("mesh-mismatch", dataplane=_dataplane("payments", "backend")),
    TokenIssuerCase("service-mismatch", dataplane=_dataplane("default", "frontend")),
    TokenIssuerCase(
        "type-mismatch", signer=(HOME_ACCOUNT, "ingress-task"), dataplane=_dataplane("default", "gateway")
    ),
    TokenIssuerCase(
        "workload-mismatch",
        signer=(HOME_ACCOUNT, "worker-task"),
        dataplane=_dataplane("default", "worker", workload="billing"),
    ),
    TokenIssuerCase(
        "invalid-role-tags", signer=(HOME_ACCOUNT, "bad-type-task"), dataplane=_dataplane("default")
    ),
    TokenIssuerCase("account-not-authorized", signer=(OUTSIDER_ACCOUNT, "intruder-task")),
    TokenIssuerCase("caller-mismatch", caller=(HOME_ACCOUNT, "frontend-task")),
    TokenIssuerCase(
        "zone-mismatch",
        signer=(HOME_ACCOUNT, "ingress-task"),
        dataplane={"type": "ingress", "name": "ingress-01"},
        fields={"zone": "zone-2"},
    ),
    TokenIssuerCase("malformed-request", fields={"validFor": "forever"}),
)


def token_issuer_event(world: DemoWorld, case: TokenIssuerCase, *, server_id: str) -> dict[str, Any]:
    """The API Gateway HTTP API event the token issuer receives for `case`, signed now."""
    if case.route == KEYS_ROUTE:
        return _event(world, "GET", "/v1/keys", b"", control_plane_caller(world))
    credentials, signer_caller = task_caller(world, *case.signer)
    identity = sign_identity_request(
        ReadOnlyCredentials(
            credentials["AWS_ACCESS_KEY_ID"],
            credentials["AWS_SECRET_ACCESS_KEY"],
            credentials["AWS_SESSION_TOKEN"],
        ),
        server_id=server_id,
        region=world.region,
    )
    if case.caller == "signer":
        caller = signer_caller
    elif case.caller == "control-plane":
        caller = control_plane_caller(world)
    else:
        caller = task_caller(world, *case.caller)[1]
    body = json.dumps({"token": encode_compact(identity), "dataplane": case.dataplane, **case.fields})
    return _event(world, "POST", "/v1/tokens", body.encode(), caller)


def write_token_issuer_events(world: DemoWorld, out_dir: Path, *, server_id: str) -> list[Path]:
    """Write out_dir/token_issuer/<case>.json for every case; returns the paths written."""
    folder = out_dir / "token_issuer"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for case in TOKEN_ISSUER_CASES:
        path = folder / f"{case.name}.json"
        path.write_text(json.dumps(token_issuer_event(world, case, server_id=server_id), indent=2) + "\n")
        written.append(path)
    return written


def _event(world: DemoWorld, method: str, path: str, body: bytes, caller: GatewayCaller) -> dict[str, Any]:
    request = GatewayRequest(
        method=method,
        raw_path=path,
        raw_query="",
        headers=(("content-type", "application/json"), ("host", "issuer.local")),
        body=body,
        source_ip="10.0.0.20",
    )
    return build_event(
        request,
        route_key=f"{method} {path}",
        caller=caller,
        api_account_id=world.home_account,
        request_id=str(uuid.uuid4()),
        received_at=datetime.now(UTC),
    )
