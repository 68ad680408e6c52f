"""The HTTP edge: routing by method and path, and any malformed API Gateway event field is a 400 naming the
field, never a 500.

API Gateway always sends a well-formed payload 2.0 event; a hand-made one (`sam local invoke`, a direct
invoke) may carry anything. The routes here are the core's HttpRoutes with one route that reads the body as
every handler does.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from kuma_iam.errors import UpstreamThrottled
from kuma_iam.http import HttpAnswer, HttpRequest, HttpRoutes, json_response
from kuma_iam.observability import logger

app = HttpRoutes()


@app.post("/v1/echo")
def echo(request: HttpRequest) -> HttpAnswer:
    return json_response(200, {"body": request.body.decode("utf-8", "replace")})


@app.get("/v1/throttled")
def throttled(request: HttpRequest) -> HttpAnswer:
    raise UpstreamThrottled("sts", "STS is throttling", retry_after=2)


def event(**changes: Any) -> dict[str, Any]:
    """A payload 2.0 event as API Gateway sends it for POST /v1/echo, with top-level changes."""
    base: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "POST /v1/echo",
        "rawPath": "/v1/echo",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "api.local"},
        "requestContext": {
            "accountId": "111111111111",
            "apiId": "local",
            "http": {"method": "POST", "path": "/v1/echo", "protocol": "HTTP/1.1", "sourceIp": "10.0.0.1"},
            "requestId": "id-1",
            "routeKey": "POST /v1/echo",
            "stage": "$default",
        },
        "isBase64Encoded": False,
        "body": '{"a": 1}',
    }
    return {**base, **changes}


def in_context(**changes: Any) -> Callable[[dict[str, Any]], None]:
    def change(event: dict[str, Any]) -> None:
        event["requestContext"].update(changes)

    return change


def in_http(**changes: Any) -> Callable[[dict[str, Any]], None]:
    def change(event: dict[str, Any]) -> None:
        event["requestContext"]["http"].update(changes)

    return change


def without(*path: str) -> Callable[[dict[str, Any]], None]:
    def change(event: dict[str, Any]) -> None:
        parent = event
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]

    return change


def answer(raw_event: object) -> tuple[int, dict[str, Any]]:
    result = app.resolve(raw_event)
    return result["statusCode"], json.loads(result["body"])


def test_a_well_formed_event_is_routed() -> None:
    assert answer(event()) == (200, {"body": '{"a": 1}'})


@pytest.mark.parametrize(
    "body",
    ["é", "eyJhIjogMX0=é", "\u202eeyJhIjogMX0=", "\uff45\uff59\uff2a\uff48"],
    ids=["non-ascii", "non-ascii-suffix", "bidi-control", "fullwidth-letters"],
)
def test_non_ascii_base64_body_is_a_400(body: str) -> None:
    # Given a hand-made event that says its body is base64 but carries non-ASCII text
    # When it is routed / Then it is refused as bad base64, not a ValueError (a 500)
    assert answer(event(isBase64Encoded=True, body=body)) == (
        400,
        {"error": "invalid_request", "message": "request body is not valid base64"},
    )


def test_base64_body_is_decoded() -> None:
    encoded = base64.b64encode(b'{"a": 1}').decode()
    assert answer(event(isBase64Encoded=True, body=encoded)) == (200, {"body": '{"a": 1}'})


MALFORMED: list[tuple[str, Callable[[dict[str, Any]], None] | dict[str, Any], str]] = [
    ("body-a-number", {"body": 1}, "event body: Input should be a valid string"),
    ("body-an-object", {"body": {"token": "x"}}, "event body: Input should be a valid string"),
    ("body-a-list", {"body": ["x"]}, "event body: Input should be a valid string"),
    ("base64-flag-a-string", {"isBase64Encoded": "false"}, "event isBase64Encoded: Input should be a valid"),
    ("base64-flag-a-number", {"isBase64Encoded": 1}, "event isBase64Encoded: Input should be a valid"),
    ("base64-flag-null", {"isBase64Encoded": None}, "event isBase64Encoded: Input should be a valid"),
    ("raw-path-missing", without("rawPath"), "event rawPath: Field required"),
    ("raw-path-a-number", {"rawPath": 1}, "event rawPath: Input should be a valid string"),
    ("headers-a-string", {"headers": "content-type: application/json"}, "event headers: Input should be"),
    ("header-value-a-number", {"headers": {"content-length": 8}}, "event headers.content-length: Input"),
    ("cookies-a-string", {"cookies": "a=b"}, "event cookies: Input should be a valid list"),
    ("query-a-list", {"queryStringParameters": ["a"]}, "event queryStringParameters: Input should be"),
    ("request-context-missing", without("requestContext"), "event requestContext: Field required"),
    ("request-context-a-string", {"requestContext": "x"}, "event requestContext: Input should be"),
    ("http-missing", without("requestContext", "http"), "event requestContext.http: Field required"),
    (
        "method-missing",
        without("requestContext", "http", "method"),
        "event requestContext.http.method: Field",
    ),
    ("method-null", in_http(method=None), "event requestContext.http.method: Input should be a valid string"),
    ("method-a-list", in_http(method=["POST"]), "event requestContext.http.method: Input should be"),
    ("http-path-a-number", in_http(path=1), "event requestContext.http.path: Input should be a valid"),
    ("stage-missing", without("requestContext", "stage"), "event requestContext.stage: Field required"),
    ("stage-null", in_context(stage=None), "event requestContext.stage: Input should be a valid string"),
]


@pytest.mark.parametrize(
    ("change", "message"), [(c, m) for _, c, m in MALFORMED], ids=[i for i, _, _ in MALFORMED]
)
def test_malformed_event_field_is_a_400_naming_it(
    change: Callable[[dict[str, Any]], None] | dict[str, Any], message: str
) -> None:
    # Given an event with one field missing or of the wrong type
    malformed = copy.deepcopy(event())
    if callable(change):
        change(malformed)
    else:
        malformed.update(change)
    # When it is routed
    status, body = answer(malformed)
    # Then it is a 400 in the API's error shape, naming the field (never echoing its value)
    assert (status, body["error"]) == (400, "invalid_request"), body
    assert body["message"].startswith(message), body


@pytest.mark.parametrize(
    "raw_event", [None, [], "POST /v1/echo", 7], ids=["null", "list", "string", "number"]
)
def test_an_event_that_is_not_an_object_is_a_400(raw_event: object) -> None:
    status, body = answer(raw_event)
    assert (status, body["error"]) == (400, "invalid_request")
    assert body["message"].startswith("event itself: Input should be a valid dictionary")


def test_the_answer_is_what_api_gateway_takes() -> None:
    assert app.resolve(event()) == {
        "statusCode": 200,
        "body": '{"body":"{\\"a\\": 1}"}',
        "isBase64Encoded": False,
        "headers": {"Content-Type": "application/json"},
        "cookies": [],
    }


@pytest.mark.parametrize(
    "change",
    [{"rawPath": "/v1/other"}, in_http(method="GET"), in_http(method="DELETE")],
    ids=["other-path", "get", "delete"],
)
def test_a_route_the_function_does_not_have_is_404_as_powertools_answered(
    change: Callable[[dict[str, Any]], None] | dict[str, Any],
) -> None:
    changed = copy.deepcopy(event())
    if callable(change):
        change(changed)
    else:
        changed.update(change)
    assert answer(changed) == (404, {"statusCode": 404, "message": "Not found"})


def test_a_named_stage_is_not_part_of_the_route_and_the_method_any_case() -> None:
    staged = copy.deepcopy(event(rawPath="/prod/v1/echo"))
    staged["requestContext"].update(stage="prod")
    staged["requestContext"]["http"].update(method="post")
    assert answer(staged) == (200, {"body": '{"a": 1}'})


def test_an_upstream_error_is_answered_with_retry_after() -> None:
    changed = copy.deepcopy(event(rawPath="/v1/throttled"))
    changed["requestContext"]["http"].update(method="GET")
    result = app.resolve(changed)
    assert (result["statusCode"], result["headers"]["Retry-After"]) == (429, "2")
    assert json.loads(result["body"]) == {"error": "upstream_throttled", "message": "STS is throttling"}


def test_every_log_line_of_a_request_carries_its_request_id() -> None:
    app.resolve(event())
    assert logger.get_current_keys()["correlation_id"] == "id-1"
    app.resolve(event(requestContext={"http": {"method": "POST", "path": "/"}, "stage": "$default"}))
    assert logger.get_current_keys().get("correlation_id") is None
