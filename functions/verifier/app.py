"""VerifierFunction: POST /v1/verify — allow or deny the Dataplane identity a sidecar claims."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kuma_iam.container import per_container
from kuma_iam.http import HttpAnswer, HttpRequest, HttpRoutes, json_response, parse_body
from kuma_iam.observability import logger, metrics
from kuma_iam.verify import IdentityVerifier, VerifyRequest, verifier_from_env

routes = HttpRoutes()


@per_container
def verifier() -> IdentityVerifier:
    # Built on first use, not at import: tests and `sam local` set the environment first.
    return verifier_from_env(os.environ)


@routes.post("/v1/verify")
def verify(request: HttpRequest) -> HttpAnswer:
    return json_response(200, verifier().verify(parse_body(VerifyRequest, request.body)).body())


# log_event=False outright: POWERTOOLS_LOGGER_LOG_EVENT=true would otherwise log each body, token and all.
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return routes.resolve(event)
