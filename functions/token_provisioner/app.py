"""TokenProvisionerFunction: ECS task state changes (EventBridge) and a scheduled sweep -> a good dataplane
token in each tagged service's secret, findings for tasks whose role disagrees, and the summary of it all."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kuma_iam.container import per_container
from kuma_iam.observability import logger, metrics
from kuma_iam.provisioning.service import ProvisionerFunction, provisioner_function_from_env


@per_container
def provisioner() -> ProvisionerFunction:
    # Built on first use, not at import: tests and `sam local` set the environment first.
    return provisioner_function_from_env(os.environ)


# log_event=False outright: the event names tasks only, but nothing an event carries is logged whole.
@logger.inject_lambda_context(correlation_id_path="id", log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return provisioner().handle(event, context)
