"""The local gateway without sockets: payload 2.0 events, SigV4 checks, routing and responses."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kuma_iam_cli.local.gateway import (
    GatewayCaller,
    GatewayRequest,
    LocalGateway,
    LocalLambdaContext,
    SignatureRejected,
    build_event,
    load_handler,
    response_from_result,
    verify_signature,
)

REGION = "us-east-1"
HOST = "127.0.0.1:8080"
CONTROL_PLANE = GatewayCaller(
    access_key_id="AKIACONTROLPLANE0001",
    secret_access_key="control-plane-secret",
    account_id="111111111111",
    user_arn="arn:aws:iam::111111111111:user/control-plane",
    user_id="AIDACONTROLPLANE0001",
)
CALLERS = {CONTROL_PLANE.access_key_id: CONTROL_PLANE}
RECEIVED_AT = datetime(2026, 3, 12, 19, 3, 58, 390000, tzinfo=UTC)


def signed_request(
    *,
    method: str = "POST",
    path: str = "/v1/verify",
    query: str = "",
    body: bytes = b'{"token": "kuma-aws-v1.x"}',
    secret: str = CONTROL_PLANE.secret_access_key,
    session_token: str | None = None,
    service: str = "execute-api",
    region: str = REGION,
) -> GatewayRequest:
    """A request as botocore signs it and the wire delivers it (the HTTP client adds Host)."""
    url = f"http://{HOST}{path}" + (f"?{query}" if query else "")
    aws_request = AWSRequest(method=method, url=url, data=body, headers={"Content-Type": "application/json"})
    credentials = Credentials(CONTROL_PLANE.access_key_id, secret, session_token)
    SigV4Auth(credentials, service, region).add_auth(aws_request)
    headers = (("Host", HOST), *((name, str(value)) for name, value in aws_request.headers.items()))
    return GatewayRequest(
        method=method, raw_path=path, raw_query=query, headers=headers, body=body, source_ip="127.0.0.1"
    )


def with_header(request: GatewayRequest, name: str, value: str) -> GatewayRequest:
    kept = tuple((key, old) for key, old in request.headers if key.lower() != name.lower())
    return replace(request, headers=(*kept, (name, value)))


def now() -> datetime:
    return datetime.now(UTC)


class TestBuildEvent:
    def test_payload_2_0_shape(self) -> None:
        request = GatewayRequest(
            method="POST",
            raw_path="/v1/verify",
            raw_query="a=1&b=2&a=3",
            headers=(
                ("Host", HOST),
                ("Content-Type", "application/json"),
                ("X-Repeated", "one"),
                ("x-repeated", "two"),
                ("User-Agent", "kuma-cp/2.9"),
            ),
            body=b'{"token": "t"}',
            source_ip="10.0.0.7",
        )

        event = build_event(
            request,
            route_key="POST /v1/verify",
            caller=CONTROL_PLANE,
            api_account_id="111111111111",
            request_id="req-1",
            received_at=RECEIVED_AT,
        )

        assert event["version"] == "2.0"
        assert event["routeKey"] == "POST /v1/verify"
        assert event["rawPath"] == "/v1/verify"
        assert event["rawQueryString"] == "a=1&b=2&a=3"
        assert event["queryStringParameters"] == {"a": "1,3", "b": "2"}
        assert event["headers"] == {
            "host": HOST,
            "content-type": "application/json",
            "x-repeated": "one,two",
            "user-agent": "kuma-cp/2.9",
        }
        assert event["body"] == '{"token": "t"}'
        assert event["isBase64Encoded"] is False
        context = event["requestContext"]
        assert context["http"] == {
            "method": "POST",
            "path": "/v1/verify",
            "protocol": "HTTP/1.1",
            "sourceIp": "10.0.0.7",
            "userAgent": "kuma-cp/2.9",
        }
        assert context["requestId"] == "req-1"
        assert context["accountId"] == "111111111111"
        assert context["stage"] == "$default"
        assert context["routeKey"] == "POST /v1/verify"
        assert context["time"] == "12/Mar/2026:19:03:58 +0000"
        assert context["timeEpoch"] == 1773342238390
        assert context["authorizer"]["iam"] == {
            "accessKey": CONTROL_PLANE.access_key_id,
            "accountId": "111111111111",
            "callerId": CONTROL_PLANE.user_id,
            "cognitoIdentity": None,
            "principalOrgId": None,
            "userArn": CONTROL_PLANE.user_arn,
            "userId": CONTROL_PLANE.user_id,
        }

    def test_binary_body_is_base64(self) -> None:
        request = GatewayRequest("POST", "/upload", "", (("Host", HOST),), b"\xff\x00\xfe", "127.0.0.1")

        event = build_event(
            request,
            route_key="POST /upload",
            caller=None,
            api_account_id="111111111111",
            request_id="r",
            received_at=RECEIVED_AT,
        )

        assert event["isBase64Encoded"] is True
        assert base64.b64decode(event["body"]) == b"\xff\x00\xfe"
        assert "authorizer" not in event["requestContext"]

    def test_no_body_no_query_and_cookies_apart(self) -> None:
        request = GatewayRequest(
            "GET", "/v1/keys", "", (("Host", HOST), ("Cookie", "a=1; b=2")), b"", "127.0.0.1"
        )

        event = build_event(
            request,
            route_key="GET /v1/keys",
            caller=None,
            api_account_id="111111111111",
            request_id="r",
            received_at=RECEIVED_AT,
        )

        assert "body" not in event
        assert "queryStringParameters" not in event
        assert event["cookies"] == ["a=1", "b=2"]
        assert "cookie" not in event["headers"]


class TestVerifySignature:
    def test_accepts_a_botocore_signed_request(self) -> None:
        assert verify_signature(signed_request(), CALLERS, region=REGION, now=now()) == CONTROL_PLANE

    def test_accepts_a_signed_query_string(self) -> None:
        request = signed_request(method="GET", path="/v1/keys", query="mesh=default&kid=1", body=b"")

        assert verify_signature(request, CALLERS, region=REGION, now=now()) == CONTROL_PLANE

    @pytest.mark.parametrize(
        ("tamper", "reason"),
        [
            pytest.param(lambda r: replace(r, body=r.body + b" "), "signature does not match", id="body"),
            pytest.param(lambda r: replace(r, raw_path="/v1/tokens"), "signature does not match", id="path"),
            pytest.param(lambda r: replace(r, raw_query="x=1"), "signature does not match", id="query"),
            pytest.param(lambda r: replace(r, method="PUT"), "signature does not match", id="method"),
            pytest.param(
                lambda r: with_header(r, "Content-Type", "text/plain"),
                "signature does not match",
                id="header",
            ),
            pytest.param(
                lambda r: with_header(r, "Host", "evil.example:8080"), "signature does not match", id="host"
            ),
            pytest.param(
                lambda r: replace(r, headers=(*r.headers, ("X-Amz-Date", "20260101T000000Z"))),
                "no single X-Amz-Date",
                id="second-date",
            ),
            pytest.param(
                lambda r: replace(r, headers=tuple(h for h in r.headers if h[0] != "Authorization")),
                "no single Authorization",
                id="unsigned",
            ),
            pytest.param(
                lambda r: with_header(r, "X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD"),
                "X-Amz-Content-SHA256",
                id="unsigned-payload",
            ),
        ],
    )
    def test_rejects_a_tampered_request(self, tamper: Any, reason: str) -> None:
        with pytest.raises(SignatureRejected, match=reason):
            verify_signature(tamper(signed_request()), CALLERS, region=REGION, now=now())

    def test_rejects_a_wrong_secret(self) -> None:
        with pytest.raises(SignatureRejected, match="signature does not match"):
            verify_signature(signed_request(secret="guessed"), CALLERS, region=REGION, now=now())

    def test_rejects_an_unknown_key(self) -> None:
        with pytest.raises(SignatureRejected, match="unknown access key"):
            verify_signature(signed_request(), {}, region=REGION, now=now())

    def test_rejects_a_session_token_for_long_term_keys(self) -> None:
        with pytest.raises(SignatureRejected, match="session token"):
            verify_signature(signed_request(session_token="token"), CALLERS, region=REGION, now=now())

    def test_accepts_temporary_credentials_only_with_their_session_token(self) -> None:
        temporary = {CONTROL_PLANE.access_key_id: replace(CONTROL_PLANE, session_token="session-token")}
        request = signed_request(session_token="session-token")

        assert verify_signature(request, temporary, region=REGION, now=now()).session_token == "session-token"
        with pytest.raises(SignatureRejected, match="session token"):
            verify_signature(signed_request(), temporary, region=REGION, now=now())
        with pytest.raises(SignatureRejected, match="session token"):
            verify_signature(signed_request(session_token="other"), temporary, region=REGION, now=now())

    @pytest.mark.parametrize(
        ("service", "region"), [("sts", REGION), ("execute-api", "eu-west-1")], ids=["service", "region"]
    )
    def test_rejects_another_scope(self, service: str, region: str) -> None:
        with pytest.raises(SignatureRejected, match="credential scope"):
            verify_signature(
                signed_request(service=service, region=region), CALLERS, region=REGION, now=now()
            )

    @pytest.mark.parametrize("offset", [timedelta(minutes=6), timedelta(minutes=-6)], ids=["old", "future"])
    def test_rejects_a_signature_out_of_time(self, offset: timedelta) -> None:
        with pytest.raises(SignatureRejected, match="expired"):
            verify_signature(signed_request(), CALLERS, region=REGION, now=now() + offset)

    def test_rejects_a_malformed_authorization(self) -> None:
        request = with_header(signed_request(), "Authorization", "AWS4-HMAC-SHA256 Credential=x")

        with pytest.raises(SignatureRejected, match=r"malformed|lacks"):
            verify_signature(request, CALLERS, region=REGION, now=now())


def echo_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(
            {
                "route": event["routeKey"],
                "caller": event["requestContext"].get("authorizer", {}).get("iam", {}).get("userArn"),
                "function": context.function_name,
                "remaining": context.get_remaining_time_in_millis() > 0,
            }
        ),
    }


def failing_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise RuntimeError("boom")


@pytest.fixture
def gateway() -> LocalGateway:
    return LocalGateway(
        {"POST /v1/verify": echo_handler, "POST /v1/fail": failing_handler, "GET /v1/keys": echo_handler},
        [CONTROL_PLANE],
        api_account_id="111111111111",
        public_routes={"GET /v1/keys"},
        max_body_bytes=64,
    )


class TestGatewayHandle:
    def test_signed_request_reaches_the_handler(self, gateway: LocalGateway) -> None:
        response = gateway.handle(signed_request())

        assert response.status == 200
        assert json.loads(response.body) == {
            "route": "POST /v1/verify",
            "caller": CONTROL_PLANE.user_arn,
            "function": __name__,
            "remaining": True,
        }
        assert ("content-type", "application/json") in response.headers

    def test_unsigned_request_is_forbidden(self, gateway: LocalGateway) -> None:
        request = GatewayRequest("POST", "/v1/verify", "", (("Host", HOST),), b"{}", "127.0.0.1")

        response = gateway.handle(request)

        assert (response.status, json.loads(response.body)) == (403, {"message": "Forbidden"})

    def test_unknown_route_is_not_found(self, gateway: LocalGateway) -> None:
        response = gateway.handle(signed_request(path="/v1/nothing"))

        assert (response.status, json.loads(response.body)) == (404, {"message": "Not Found"})

    def test_public_route_needs_no_signature(self, gateway: LocalGateway) -> None:
        request = GatewayRequest("GET", "/v1/keys", "", (("Host", HOST),), b"", "127.0.0.1")

        response = gateway.handle(request)

        assert response.status == 200
        assert json.loads(response.body)["caller"] is None

    def test_oversized_body_is_refused(self, gateway: LocalGateway) -> None:
        response = gateway.handle(signed_request(body=b"x" * 65))

        assert response.status == 413

    def test_crashing_handler_is_a_500(self, gateway: LocalGateway) -> None:
        response = gateway.handle(signed_request(path="/v1/fail"))

        assert (response.status, json.loads(response.body)) == (500, {"message": "Internal Server Error"})


class TestResponseFromResult:
    def test_bare_value_is_a_json_200(self) -> None:
        response = response_from_result({"allowed": True}, request_id="r")

        assert response.status == 200
        assert json.loads(response.body) == {"allowed": True}

    def test_base64_body_and_cookies(self) -> None:
        result = {
            "statusCode": 201,
            "headers": {"content-type": "application/octet-stream", "content-length": "999"},
            "cookies": ["session=1"],
            "body": base64.b64encode(b"\x00\x01").decode(),
            "isBase64Encoded": True,
        }

        response = response_from_result(result, request_id="r")

        assert (response.status, response.body) == (201, b"\x00\x01")
        assert ("set-cookie", "session=1") in response.headers
        assert all(name != "content-length" for name, _ in response.headers)

    @pytest.mark.parametrize(
        "result",
        [{"statusCode": "200"}, {"statusCode": 99}, {"statusCode": 200, "body": 5}],
        ids=["string-status", "bad-status", "non-string-body"],
    )
    def test_malformed_result_is_a_500(self, result: dict[str, Any]) -> None:
        assert response_from_result(result, request_id="r").status == 500


def test_lambda_context_fields() -> None:
    context = LocalLambdaContext(
        function_name="verifier", aws_request_id="id-1", region=REGION, account_id="111111111111"
    )

    assert context.invoked_function_arn == "arn:aws:lambda:us-east-1:111111111111:function:verifier"
    assert context.memory_limit_in_mb == 256
    assert 0 < context.get_remaining_time_in_millis() <= 30_000


@pytest.fixture
def handler_folder(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "kuma_iam_gateway_test_function"
    folder.mkdir()
    yield folder
    sys.modules.pop(folder.name, None)


def test_load_handler_names_the_module_after_its_folder(handler_folder: Path) -> None:
    app = handler_folder / "app.py"
    app.write_text("def lambda_handler(event, context):\n    return {'statusCode': 204}\n")

    handler = load_handler(app)

    assert handler.__module__ == handler_folder.name
    assert handler({}, None) == {"statusCode": 204}  # type: ignore[arg-type]


def test_load_handler_without_a_handler_fails(handler_folder: Path) -> None:
    app = handler_folder / "app.py"
    app.write_text("VALUE = 1\n")

    with pytest.raises(ImportError, match="lambda_handler"):
        load_handler(app)
