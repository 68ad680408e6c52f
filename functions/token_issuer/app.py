"""TokenIssuerFunction: POST /v1/tokens exchanges a verified IAM identity for a Kuma token; GET /v1/keys
publishes the public keys that control planes validate those tokens with."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from kuma_iam.http import (
    api_caller,
    install_error_handlers,
    json_response,
    parse_body,
    raw_body,
    resolve_http_event,
)
from kuma_iam.observability import logger, metrics
from kuma_iam.tokens.issuer import TokenIssuer, TokenRequest, token_issuer_from_env

app = APIGatewayHttpResolver()
install_error_handlers(app)


@cache
def issuer() -> TokenIssuer:
    # Built on first use, not at import: tests and `sam local` set the environment first.
    return token_issuer_from_env(os.environ)


@app.post("/v1/tokens")
def tokens() -> Response[str]:
    request = parse_body(TokenRequest, raw_body(app.current_event))
    return json_response(200, issuer().exchange(request, api_caller(app.current_event)).body())


@app.get("/v1/keys")
def keys() -> Response[str]:
    return json_response(200, issuer().published_keys(), headers={"Cache-Control": "max-age=300"})


# log_event=False outright: POWERTOOLS_LOGGER_LOG_EVENT=true would otherwise log each body, token and all.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_http_event(app, event, context)
