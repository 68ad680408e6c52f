"""TokenIssuerFunction: POST /v1/tokens exchanges a verified IAM identity for a Kuma token; GET /v1/keys
publishes the public keys that control planes validate those tokens with."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kuma_iam.container import per_container
from kuma_iam.http import HttpAnswer, HttpRequest, HttpRoutes, api_caller, json_response, parse_body
from kuma_iam.observability import logger, metrics
from kuma_iam.tokens.issuer import TokenIssuer, TokenRequest, token_issuer_from_env

routes = HttpRoutes()


@per_container
def issuer() -> TokenIssuer:
    # Built on first use, not at import: tests and `sam local` set the environment first.
    return token_issuer_from_env(os.environ)


@routes.post("/v1/tokens")
def tokens(request: HttpRequest) -> HttpAnswer:
    token_request = parse_body(TokenRequest, request.body)
    return json_response(200, issuer().exchange(token_request, api_caller(request)).body())


@routes.get("/v1/keys")
def keys(request: HttpRequest) -> HttpAnswer:
    return json_response(200, issuer().published_keys(), headers={"Cache-Control": "max-age=300"})


# log_event=False outright: POWERTOOLS_LOGGER_LOG_EVENT=true would otherwise log each body, token and all.
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return routes.resolve(event)
