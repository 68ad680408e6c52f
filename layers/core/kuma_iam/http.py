"""The one place where API Gateway events are routed, core errors become HTTP answers, and request bodies
become models.

A function's HTTP API sends it only the routes the template gives it (payload 2.0), so routing is a lookup by
method and path: Powertools' resolver (with its route regexes, middleware and a dozen event types imported at
every cold start) is more than these routes need, and cost a warm verification a tenth of its own time.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, StrictBool, ValidationError

from kuma_iam.errors import Denied, InvalidRequest, KumaIamError, UpstreamError, first_problem
from kuma_iam.observability import INVALID_REQUEST, UPSTREAM_ERROR, logger, metrics_count
from kuma_iam.strict_json import load_strict_json

if TYPE_CHECKING:
    from kuma_iam.tokens.binding import ApiCaller

MAX_BODY_BYTES = 64 * 1024
JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A JSON answer: its status, body and any headers besides Content-Type."""

    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)

    def result(self) -> dict[str, Any]:
        """The Lambda result API Gateway turns into the HTTP response."""
        return {
            "statusCode": self.status,
            "body": json.dumps(self.body, separators=(",", ":")),
            "isBase64Encoded": False,
            "headers": {"Content-Type": JSON_CONTENT_TYPE, **self.headers},
            "cookies": [],
        }


def json_response(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> HttpAnswer:
    return HttpAnswer(status, body, headers or {})


class _Http(BaseModel):
    method: str
    path: str


class _RequestContext(BaseModel):
    http: _Http
    stage: str


class HttpApiEvent(BaseModel):
    """The fields of an API Gateway payload 2.0 event that routing and the body read, with their types.

    API Gateway always sends them so; a hand-made event (`sam local invoke`, a direct invoke, a test) may not,
    and reading it would fail with a TypeError or KeyError: a 500 instead of a 400 naming the field.
    """

    model_config = ConfigDict(extra="allow")

    rawPath: str  # noqa: N815 - the event's names
    requestContext: _RequestContext  # noqa: N815
    headers: dict[str, str] | None = None
    cookies: list[str] | None = None
    queryStringParameters: dict[str, str] | None = None  # noqa: N815
    pathParameters: dict[str, str] | None = None  # noqa: N815
    body: str | None = None
    isBase64Encoded: StrictBool = False  # noqa: N815 - "false" in quotes would read as true


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A well-formed event as a route reads it: its method, its path without the stage, the body as sent."""

    method: str
    path: str
    body: bytes
    raw_event: Mapping[str, Any]  # the whole event, for what only some routes read (the IAM caller)


def http_request(event: object) -> HttpRequest:
    """Check the fields routing reads; InvalidRequest names the first bad one (its value never echoed)."""
    try:
        parsed = HttpApiEvent.model_validate(event)
    except ValidationError as error:
        raise InvalidRequest(f"event {first_problem(error, default_where='itself')}") from None
    assert isinstance(event, Mapping)  # the model validates nothing else
    context = parsed.requestContext
    path = parsed.rawPath
    if context.stage != "$default":  # a named stage prefixes the path: /prod/v1/verify
        path = path[len(context.stage) + 1 :]
    return HttpRequest(context.http.method.upper(), path, raw_body(parsed), event)


def api_caller(request: HttpRequest) -> ApiCaller | None:
    """Who signed the call, as API Gateway's IAM authorizer says (`requestContext.authorizer.iam`); None on a
    route without IAM authorization."""
    from kuma_iam.tokens.binding import ApiCaller  # here: the verifier's cold start never loads the tokens

    context = request.raw_event.get("requestContext")
    authorizer = context.get("authorizer") if isinstance(context, dict) else None
    iam = authorizer.get("iam") if isinstance(authorizer, dict) else None
    if not isinstance(iam, dict):
        return None
    fields = (iam.get("accountId"), iam.get("userArn"), iam.get("userId"))
    if not all(isinstance(value, str) for value in fields):
        return None
    account_id, user_arn, user_id = (str(value) for value in fields)
    return ApiCaller(account_id=account_id, user_arn=user_arn, user_id=user_id)


def raw_body(event: HttpApiEvent) -> bytes:
    """The request body as sent; API Gateway base64-encodes bodies it does not take for text."""
    body = event.body or ""
    if not event.isBase64Encoded:
        return body.encode()
    try:
        return base64.b64decode(body, validate=True)
    except ValueError:  # binascii.Error, and the ValueError a non-ASCII string raises
        raise InvalidRequest("request body is not valid base64") from None


def parse_body[T: BaseModel](model: type[T], body: bytes | str | None) -> T:
    """Validate a JSON body into `model`; the first problem is named precisely, its value never echoed."""
    if not body:
        raise InvalidRequest("request body is empty")
    if len(body.encode() if isinstance(body, str) else body) > MAX_BODY_BYTES:
        raise InvalidRequest(f"request body is larger than {MAX_BODY_BYTES} bytes")
    load_strict_json(body, "request body")  # refuses duplicate keys, which pydantic would let the last win
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise InvalidRequest(first_problem(error)) from None


Route = Callable[[HttpRequest], HttpAnswer]
ErrorAnswer = Callable[[Any], HttpAnswer]
# What Powertools' resolver answered for a route the function does not have (API Gateway never sends one).
NOT_FOUND = HttpAnswer(404, {"statusCode": 404, "message": "Not found"})


def _invalid_request(error: InvalidRequest) -> HttpAnswer:
    metrics_count(INVALID_REQUEST)  # a rising rate is someone probing the verifier
    logger.info("invalid request", extra={"detail": error.message})
    return json_response(400, {"error": "invalid_request", "message": error.message})


def _denied(error: Denied) -> HttpAnswer:
    # Where a refusal is not itself the answer (the verifier's is a 200 decision): the token issuer's.
    return json_response(403, {"error": "denied", "reason": error.reason.value, "message": error.message})


def _upstream(error: UpstreamError) -> HttpAnswer:
    # Counted here, the one place every upstream failure passes, whichever check raised it.
    metrics_count(UPSTREAM_ERROR, upstream=error.service)
    logger.warning("upstream failure", extra={"upstream": error.service, "detail": error.message})
    return json_response(
        error.status, {"error": error.code, "message": error.message}, {"Retry-After": str(error.retry_after)}
    )


class HttpRoutes:
    """A function's routes, by method and path, and how each typed error is answered: InvalidRequest 400,
    Denied 403 (the token issuer's refusals), UpstreamError 429/503 with Retry-After (a function may answer
    more kinds: `answer_errors`)."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], Route] = {}
        self._errors: dict[type[KumaIamError], ErrorAnswer] = {
            InvalidRequest: _invalid_request,
            Denied: _denied,
            UpstreamError: _upstream,
        }

    def post(self, path: str) -> Callable[[Route], Route]:
        return self._route("POST", path)

    def get(self, path: str) -> Callable[[Route], Route]:
        return self._route("GET", path)

    def answer_errors[E: KumaIamError](self, kind: type[E], answer: Callable[[E], HttpAnswer]) -> None:
        self._errors[kind] = answer

    def resolve(self, event: object) -> dict[str, Any]:
        """The Lambda result for any event: a route's answer, a typed error's, or 404 for no such route."""
        _correlate(event)
        try:
            request = http_request(event)
            route = self._routes.get((request.method, request.path))
            answer = NOT_FOUND if route is None else route(request)
        except KumaIamError as error:
            answer = self._answer(error)
        return answer.result()

    def _route(self, method: str, path: str) -> Callable[[Route], Route]:
        def register(route: Route) -> Route:
            self._routes[(method, path)] = route
            return route

        return register

    def _answer(self, error: KumaIamError) -> HttpAnswer:
        for kind in type(error).__mro__:
            if answer := self._errors.get(kind):
                return answer(error)
        raise error  # an error no route should let out: Lambda reports it, and nothing is answered


def _correlate(event: object) -> None:
    """API Gateway's request id on each log line of the request (as Powertools' correlation_id_path did)."""
    context = event.get("requestContext") if isinstance(event, Mapping) else None
    request_id = context.get("requestId") if isinstance(context, Mapping) else None
    logger.set_correlation_id(request_id if isinstance(request_id, str) else None)
