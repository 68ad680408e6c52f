"""The local stack's console: one readable line per request (time, method, path, caller, status, decision or
findings, latency); the functions' own JSON logs go to their log file instead (function_output.py)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from kuma_iam_cli.local.expected import describe
from kuma_iam_cli.local.gateway import GatewayExchange

_MESSAGE_LIMIT = 100


def request_line(exchange: GatewayExchange, at: datetime) -> str:
    """E.g. `12:03:04 POST /v1/verify user/control-plane -> 200 deny mesh_mismatch (9 ms)`, or for the
    local EventBridge route `12:03:05 POST /local/eventbridge unsigned -> 200 kuma-type-invalid on typo-task
    (41 ms)`."""
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
    if "error" in body:
        message = str(body.get("message", ""))
        if len(message) > _MESSAGE_LIMIT:
            message = message[: _MESSAGE_LIMIT - 3] + "..."
        return f"{body['error']}: {message}" if message else str(body["error"])
    return str(body.get("message", ""))


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
