"""The local stack's console: one readable line per request, and the functions' own output (Powertools JSON
logs, EMF metrics, warnings) in their log file instead of on the terminal."""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from kuma_iam.observability import logger as function_logger
from kuma_iam.tokens import jwt
from kuma_iam_cli.local.function_output import FunctionOutput
from kuma_iam_cli.local.gateway import GatewayCaller, GatewayExchange, GatewayRequest, GatewayResponse
from kuma_iam_cli.local.request_log import request_line

AT = datetime(2026, 1, 2, 12, 3, 4)
CONTROL_PLANE = GatewayCaller(
    access_key_id="AKIAEXAMPLE",
    secret_access_key="not-a-secret",
    account_id="111111111111",
    user_arn="arn:aws:iam::111111111111:user/control-plane",
    user_id="AIDAEXAMPLE",
)


def exchange(
    status: int,
    body: dict[str, Any],
    caller: GatewayCaller | None = CONTROL_PLANE,
    rejection: str | None = None,
    path: str = "/v1/verify",
    method: str = "POST",
) -> GatewayExchange:
    request = GatewayRequest(method, path, "", (), b"{}", "127.0.0.1")
    response = GatewayResponse(status, (), json.dumps(body).encode())
    return GatewayExchange(request, f"{method} {path}", caller, rejection, response, 12.4)


def delivered(summary: dict[str, Any]) -> GatewayExchange:
    """An event posted to the local EventBridge route (public: no caller), answered with tag compliance's
    summary."""
    return exchange(200, summary, caller=None, path="/local/eventbridge")


FINDING = {"rule": "kuma-type-invalid", "account": "111111111111", "roleName": "typo-task"}
BACKEND_TASK = GatewayCaller(
    access_key_id="ASIAEXAMPLE",
    secret_access_key="not-a-secret",
    account_id="111111111111",
    user_arn="arn:aws:sts::111111111111:assumed-role/backend-task/ecs-task",
    user_id="AROAEXAMPLE:ecs-task",
)


def issued(kid: str, claims: dict[str, Any]) -> dict[str, Any]:
    """The token issuer's 200 body for a token with `claims` (its signature a stand-in: only read here)."""
    token = jwt.compact(jwt.signing_input(kid, {**claims, "jti": "j-1"}), b"signature")
    return {"token": token, "kid": kid, "jti": "j-1", "expiresAt": "2026-01-02T13:03:04Z"}


DATAPLANE_TOKEN = issued(
    "2",
    {"Name": "backend-01", "Mesh": "default", "Tags": {"kuma.io/service": ["backend"]}, "Type": "dataplane"},
)
ZONE_TOKEN = issued("1", {"Zone": "zone-1", "Scope": ["ingress"]})


LINES = [
    (
        exchange(200, {"allowed": True, "identity": {"roleName": "backend-task"}}),
        "12:03:04 POST /v1/verify user/control-plane -> 200 allow backend-task (12 ms)",
    ),
    (
        exchange(200, {"allowed": False, "reason": "mesh_mismatch", "message": "..."}),
        "12:03:04 POST /v1/verify user/control-plane -> 200 deny mesh_mismatch (12 ms)",
    ),
    (
        exchange(400, {"error": "invalid_request", "message": "dataplane: mesh is required for a dataplane"}),
        "12:03:04 POST /v1/verify user/control-plane -> 400 invalid_request: "
        "dataplane: mesh is required for a dataplane (12 ms)",
    ),
    (
        exchange(503, {"error": "upstream_unavailable", "message": "x" * 300}),
        f"12:03:04 POST /v1/verify user/control-plane -> 503 upstream_unavailable: {'x' * 97}... (12 ms)",
    ),
    (
        exchange(403, {"message": "Forbidden"}, caller=None, rejection="signature does not match"),
        "12:03:04 POST /v1/verify unsigned -> 403 Forbidden (signature does not match) (12 ms)",
    ),
    (
        delivered({"evaluated": 1, "findings": [FINDING], "remediations": []}),
        "12:03:04 POST /local/eventbridge unsigned -> 200 kuma-type-invalid on typo-task (12 ms)",
    ),
    (
        delivered({"evaluated": 1, "findings": [], "remediations": []}),
        "12:03:04 POST /local/eventbridge unsigned -> 200 no findings (12 ms)",
    ),
    (
        delivered({"evaluated": 18, "findings": [FINDING] * 24, "remediations": []}),
        "12:03:04 POST /local/eventbridge unsigned -> 200 24 findings (12 ms)",
    ),
    (
        delivered(
            {
                "evaluated": 0,
                "findings": [],
                "remediations": [],
                "error": {"code": "invalid_event", "message": "detail-type 'x' is not one it takes"},
            }
        ),
        "12:03:04 POST /local/eventbridge unsigned -> 200 error invalid_event (12 ms)",
    ),
    (
        exchange(200, DATAPLANE_TOKEN, caller=BACKEND_TASK, path="/v1/tokens"),
        "12:03:04 POST /v1/tokens assumed-role/backend-task/ecs-task -> 200 token kid 2 for backend (12 ms)",
    ),
    (
        exchange(200, ZONE_TOKEN, caller=BACKEND_TASK, path="/v1/tokens"),
        "12:03:04 POST /v1/tokens assumed-role/backend-task/ecs-task -> 200 token kid 1 for ingress in zone "
        "zone-1 (12 ms)",
    ),
    (
        exchange(
            403,
            {"error": "denied", "reason": "caller_mismatch", "message": "the caller is not the token's role"},
            caller=BACKEND_TASK,
            path="/v1/tokens",
        ),
        "12:03:04 POST /v1/tokens assumed-role/backend-task/ecs-task -> 403 denied caller_mismatch (12 ms)",
    ),
    (
        exchange(
            200,
            {"signingKid": {"dataplane": "2", "zone": "1"}, "jwks": {"keys": []}},
            path="/v1/keys",
            method="GET",
        ),
        "12:03:04 GET /v1/keys user/control-plane -> 200 keys (12 ms)",
    ),
]

IDS = [
    "allow",
    "deny",
    "400",
    "503-long",
    "403",
    "finding",
    "no-findings",
    "many-findings",
    "invalid-event",
    "token",
    "zone-token",
    "token-denied",
    "keys",
]


@pytest.mark.parametrize(("handled", "line"), LINES, ids=IDS)
def test_one_readable_line_per_request(handled: GatewayExchange, line: str) -> None:
    assert request_line(handled, AT) == line


def test_an_issued_token_is_never_printed() -> None:
    line = request_line(exchange(200, DATAPLANE_TOKEN, caller=BACKEND_TASK, path="/v1/tokens"), AT)

    assert DATAPLANE_TOKEN["token"] not in line
    assert DATAPLANE_TOKEN["token"].split(".")[1] not in line


def test_a_handlers_output_goes_to_the_function_log_and_the_rest_to_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a handler that logs JSON, prints an EMF-like line and writes a warning, as the verifier does
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        function_logger.info("identity denied", extra={"reason": "mesh_mismatch"})
        print('{"_aws": {"CloudWatchMetrics": []}}')
        print("UserWarning: No application metrics to publish", file=sys.stderr)
        return {"statusCode": 200}

    log_file = tmp_path / "lambda.log"
    with FunctionOutput(log_file) as output:
        invoke = output.invoking(handler)
        # When it is invoked in a request thread while the console prints its own line
        thread = threading.Thread(target=invoke, args=({}, None))
        thread.start()
        thread.join()
        print("12:03:04 POST /v1/verify user/control-plane -> 200 deny mesh_mismatch (12 ms)")

    # Then the terminal has only the console line, and the log file all the handler wrote
    terminal = capsys.readouterr()
    assert terminal.out == "12:03:04 POST /v1/verify user/control-plane -> 200 deny mesh_mismatch (12 ms)\n"
    assert terminal.err == ""
    logged = log_file.read_text().splitlines()
    assert json.loads(logged[0])["message"] == "identity denied"
    assert logged[1:] == [
        '{"_aws": {"CloudWatchMetrics": []}}',
        "UserWarning: No application metrics to publish",
    ]
    # And afterwards the process prints where it did before
    assert sys.stdout is not None
    assert invoke.__name__ == "handler"
