"""The one place where core errors become HTTP answers, and where request bodies become models."""

from __future__ import annotations

import base64
import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, StrictBool, ValidationError

from kuma_iam.errors import Denied, InvalidRequest, UpstreamError, first_problem
from kuma_iam.observability import INVALID_REQUEST, UPSTREAM_ERROR, logger, metrics_count
from kuma_iam.strict_json import load_strict_json
from kuma_iam.tokens.binding import ApiCaller

MAX_BODY_BYTES = 64 * 1024


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body, separators=(",", ":")),
        headers=headers or {},
    )


class _Http(BaseModel):
    method: str
    path: str


class _RequestContext(BaseModel):
    http: _Http
    stage: str


class HttpApiEvent(BaseModel):
    """The fields of an API Gateway payload 2.0 event that routing and `raw_body` read, with their types.

    API Gateway always sends them so; a hand-made event (`sam local invoke`, a direct invoke, a test) may not,
    and the resolver would fail on it with a TypeError or KeyError: a 500 instead of a 400 naming the field.
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


def resolve_http_event(app: APIGatewayHttpResolver, event: Any, context: LambdaContext) -> dict[str, Any]:
    """Route a well-formed HTTP API event; anything else is answered 400 naming the first bad field."""
    try:
        HttpApiEvent.model_validate(event)
    except ValidationError as error:
        first = error.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(part)[:64] for part in first["loc"])
        answer = _invalid_request(InvalidRequest(f"event {where or 'itself'}: {first['msg']}"))
        return {
            "statusCode": answer.status_code,
            "headers": {"Content-Type": content_types.APPLICATION_JSON},
            "body": answer.body,
            "isBase64Encoded": False,
        }
    return app.resolve(event, context)


def raw_body(event: BaseProxyEvent) -> bytes:
    """The request body as sent; API Gateway base64-encodes bodies it does not take for text."""
    body = event.body or ""
    if not event.is_base64_encoded:
        return body.encode()
    try:
        return base64.b64decode(body, validate=True)
    except ValueError:  # binascii.Error, and the ValueError a non-ASCII string raises
        raise InvalidRequest("request body is not valid base64") from None


def api_caller(event: BaseProxyEvent) -> ApiCaller | None:
    """Who signed the call, as API Gateway's IAM authorizer says (`requestContext.authorizer.iam`); None on a
    route without IAM authorization."""
    context = event.raw_event.get("requestContext")
    authorizer = context.get("authorizer") if isinstance(context, dict) else None
    iam = authorizer.get("iam") if isinstance(authorizer, dict) else None
    if not isinstance(iam, dict):
        return None
    fields = (iam.get("accountId"), iam.get("userArn"), iam.get("userId"))
    if not all(isinstance(value, str) for value in fields):
        return None
    account_id, user_arn, user_id = (str(value) for value in fields)
    return ApiCaller(account_id=account_id, user_arn=user_arn, user_id=user_id)


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


def _invalid_request(error: InvalidRequest) -> Response[str]:
    metrics_count(INVALID_REQUEST)  # a rising rate is someone probing the verifier
    logger.info("invalid request", extra={"detail": error.message})
    return json_response(400, {"error": "invalid_request", "message": error.message})


def install_error_handlers(app: APIGatewayHttpResolver) -> None:
    app.exception_handler(InvalidRequest)(_invalid_request)

    @app.exception_handler(Denied)  # type: ignore[untyped-decorator]
    def denied(error: Denied) -> Response[str]:
        # Where a refusal is not itself the answer (the verifier's is a 200 decision): the token issuer's.
        return json_response(403, {"error": "denied", "reason": error.reason.value, "message": error.message})

    @app.exception_handler(UpstreamError)  # type: ignore[untyped-decorator]
    def upstream(error: UpstreamError) -> Response[str]:
        # Counted here, the one place every upstream failure passes, whichever check raised it.
        metrics_count(UPSTREAM_ERROR, upstream=error.service)
        logger.warning("upstream failure", extra={"upstream": error.service, "detail": error.message})
        return json_response(
            error.status,
            {"error": error.code, "message": error.message},
            headers={"Retry-After": str(error.retry_after)},
        )
