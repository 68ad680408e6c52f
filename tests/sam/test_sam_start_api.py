"""`sam local start-api`: one request per route of the built API, through SAM's local API Gateway.

SAM's local gateway does not check IAM (SigV4) authorization; tests/integration covers that with the
project's own gateway. Here the point is that the routes of the template reach the handler.
"""

from __future__ import annotations

import json
from pathlib import Path

import urllib3

from kuma_iam_cli.local.events import VERIFIER_CASES
from kuma_iam_cli.local.token_events import TOKEN_ISSUER_CASES
from support.sam_stack import SamStack


def _post(url: str, body: str) -> tuple[int, dict[str, object]]:
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=5, read=120), retries=False)
    response = http.request("POST", url, body=body.encode(), headers={"Content-Type": "application/json"})
    return response.status, json.loads(response.data or b"{}")


def test_start_api_serves_post_v1_verify(sam_stack: SamStack, tmp_path: Path) -> None:
    # Given the bodies the control plane would send, signed now: an allowed claim, and a malformed token
    cases = {case.name: case for case in VERIFIER_CASES}
    allowed = json.loads(sam_stack.signed_event(cases["allowed"], tmp_path).read_text())["body"]
    malformed = json.loads(sam_stack.signed_event(cases["malformed-token"], tmp_path).read_text())["body"]

    # When they are POSTed to /v1/verify on `sam local start-api`
    with sam_stack.start_api() as base_url:
        with sam_stack.timings.step("start-api: POST /v1/verify (allowed)"):
            allowed_answer = _post(f"{base_url}/v1/verify", allowed)
        with sam_stack.timings.step("start-api: POST /v1/verify (malformed token)"):
            malformed_answer = _post(f"{base_url}/v1/verify", malformed)

    # Then the route reaches the handler and its answers come back as HTTP
    assert allowed_answer[0] == 200, allowed_answer
    assert allowed_answer[1]["allowed"] is True, allowed_answer
    assert malformed_answer == (400, {**malformed_answer[1], "error": "invalid_request"}), malformed_answer


def test_start_api_serves_the_token_issuer_routes(sam_stack: SamStack, tmp_path: Path) -> None:
    # Given a task's body for POST /v1/tokens, signed now
    (allowed,) = [case for case in TOKEN_ISSUER_CASES if case.name == "allowed"]
    body = json.loads(sam_stack.signed_event(allowed, tmp_path).read_text())["body"]
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=5, read=120), retries=False)

    # When the keys are read and the body is POSTed on `sam local start-api`, run as the issuer's principal
    assert sam_stack.token_keys is not None
    with sam_stack.start_api(user=sam_stack.token_keys.issuer) as base_url:
        with sam_stack.timings.step("start-api: GET /v1/keys"):
            keys = http.request("GET", f"{base_url}/v1/keys")
        with sam_stack.timings.step("start-api: POST /v1/tokens (no IAM caller)"):
            tokens = _post(f"{base_url}/v1/tokens", body)

    # Then both routes reach the handler: the keys come back, and since SAM's gateway reports no IAM caller
    # (it does not check SigV4), the exchange is refused rather than handing a token to an unknown caller
    assert keys.status == 200, keys.data[:500]
    assert json.loads(keys.data)["signingKid"]["dataplane"] == "2"
    assert tokens[0] == 403, tokens
    assert tokens[1]["reason"] == "caller_mismatch", tokens
