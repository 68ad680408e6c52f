"""TagComplianceFunction: IAM tag and trust changes (CloudTrail via EventBridge) and a scheduled sweep ->
findings, removals in enforce mode, and the summary of what happened."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kuma_iam.compliance.service import ComplianceFunction, compliance_function_from_env
from kuma_iam.container import per_container
from kuma_iam.observability import logger, metrics


@per_container
def compliance() -> ComplianceFunction:
    # Built on first use, not at import: tests and `sam local` set the environment first.
    return compliance_function_from_env(os.environ)


@logger.inject_lambda_context(correlation_id_path="id")
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return compliance().handle(event, context)
