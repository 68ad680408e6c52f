"""The one place where core errors become HTTP answers, and where request bodies become models."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
from pydantic import BaseModel, ValidationError

from kuma_iam.errors import InvalidRequest, UpstreamError
from kuma_iam.observability import INVALID_REQUEST, UPSTREAM_ERROR, logger, metrics_count
from kuma_iam.strict_json import load_strict_json

MAX_BODY_BYTES = 64 * 1024


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body, separators=(",", ":")),
        headers=headers or {},
    )


def raw_body(event: BaseProxyEvent) -> bytes:
    """The request body as sent; API Gateway base64-encodes bodies it does not take for text."""
    body = event.body or ""
    if not event.is_base64_encoded:
        return body.encode()
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error:
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
        first = error.errors(include_input=False, include_url=False)[0]
        # Field names can be the caller's own (extra keys, tag names): echo at most a little of each.
        where = ".".join(str(part)[:64] for part in first["loc"]) or "body"
        raise InvalidRequest(f"{where}: {first['msg']}") from None


def install_error_handlers(app: APIGatewayHttpResolver) -> None:
    @app.exception_handler(InvalidRequest)  # type: ignore[untyped-decorator]
    def invalid_request(error: InvalidRequest) -> Response[str]:
        metrics_count(INVALID_REQUEST)  # a rising rate is someone probing the verifier
        logger.info("invalid request", extra={"detail": error.message})
        return json_response(400, {"error": "invalid_request", "message": error.message})

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
