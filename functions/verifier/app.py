"""VerifierFunction: POST /v1/verify — allow or deny the Dataplane identity a sidecar claims."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from kuma_iam.http import install_error_handlers, json_response, parse_body, raw_body, resolve_http_event
from kuma_iam.observability import logger, metrics
from kuma_iam.verify import IdentityVerifier, VerifyRequest, verifier_from_env

app = APIGatewayHttpResolver()
install_error_handlers(app)


@cache
def verifier() -> IdentityVerifier:
    # Built on first use, not at import: tests and `sam local` set the environment first.
    return verifier_from_env(os.environ)


@app.post("/v1/verify")
def verify() -> Response[str]:
    request = parse_body(VerifyRequest, raw_body(app.current_event))
    return json_response(200, verifier().verify(request).body())


# log_event=False outright: POWERTOOLS_LOGGER_LOG_EVENT=true would otherwise log each body, token and all.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve_http_event(app, event, context)
