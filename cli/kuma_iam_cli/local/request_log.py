"""The local stack's console: one readable line per request (time, method, path, caller, status, decision,
findings or token, latency); the functions' own JSON logs go to their log file instead (function_output.py).
No token is ever printed: an issued one is told by its kid and whom it is for."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from kuma_iam.tokens import jwt
from kuma_iam_cli.local.expected import describe
from kuma_iam_cli.local.gateway import GatewayExchange

_MESSAGE_LIMIT = 100


def request_line(exchange: GatewayExchange, at: datetime) -> str:
    """E.g. `12:03:04 POST /v1/verify user/control-plane -> 200 deny mesh_mismatch (9 ms)`, for the local
    EventBridge route `12:03:05 POST /local/eventbridge unsigned -> 200 kuma-type-invalid on typo-task
    (41 ms)`, for the token issuer `12:03:06 POST /v1/tokens assumed-role/backend-task/ecs-task -> 200 token
    kid 2 for backend (120 ms)`."""
    request, response = exchange.request, exchange.response
    caller = exchange.caller.user_arn.split(":", 5)[-1] if exchange.caller is not None else "unsigned"
    outcome = _outcome(exchange)
    return (
        f"{at:%H:%M:%S} {request.method} {request.raw_path} {caller} -> {response.status}"
        f"{' ' + outcome if outcome else ''} ({exchange.duration_ms:.0f} ms)"
    )


def _outcome(exchange: GatewayExchange) -> str:
    body = _json_object(exchange.response.body)
    if exchange.rejection is not None:
        return f"{body.get('message', 'Forbidden')} ({exchange.rejection})"
    if body.get("allowed") is True:
        identity = body.get("identity")
        role = identity.get("roleName") if isinstance(identity, dict) else None
        return f"allow {role}" if role else "allow"
    if body.get("allowed") is False:
        return f"deny {body.get('reason')}"
    if isinstance(body.get("findings"), list):  # tag compliance's summary
        return describe(body)
    if isinstance(body.get("token"), str):  # the token issuer's 200
        return f"token kid {body.get('kid')} for {_token_subject(body['token'])}"
    if body.get("error") == "denied":  # the token issuer's 403
        return f"denied {body.get('reason')}"
    if "signingKid" in body:  # the token issuer's GET /v1/keys
        return "keys"
    if "error" in body:
        message = str(body.get("message", ""))
        if len(message) > _MESSAGE_LIMIT:
            message = message[: _MESSAGE_LIMIT - 3] + "..."
        return f"{body['error']}: {message}" if message else str(body["error"])
    return str(body.get("message", ""))


def _token_subject(token: str) -> str:
    """Whom an issued token admits, from its claims (read, not verified; the token itself stays unprinted):
    the services of a dataplane token (else its Dataplane's name), or a zone token's scope and zone."""
    try:
        claims = jwt.parse(token).claims
    except jwt.MalformedToken:
        return "?"
    if "Zone" in claims:
        scope = claims.get("Scope")
        scopes = ",".join(map(str, scope)) if isinstance(scope, list) else "?"
        return f"{scopes} in zone {claims['Zone']}"
    tags = claims.get("Tags")
    services = tags.get("kuma.io/service") if isinstance(tags, dict) else None
    if isinstance(services, list) and services:
        return ",".join(map(str, services))
    return str(claims.get("Name", "?"))


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
