"""The local stand-in for EventBridge: an HTTP route of the local gateway that hands the posted event to the
tag-compliance handler as EventBridge would, and answers its summary, so `make run` can show an
event-triggered finding without CloudTrail."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from kuma_iam.errors import KumaIamError, UpstreamError
from kuma_iam_cli.local.gateway import Handler

EVENTBRIDGE_ROUTE = "POST /local/eventbridge"


def deliver_to(handler: Handler) -> Handler:
    """A gateway handler: the request body is the EventBridge event; the answer is the function's summary."""

    def deliver(api_event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        body = api_event.get("body") or ""
        try:
            raw = base64.b64decode(body, validate=True) if api_event.get("isBase64Encoded") else body.encode()
            event = json.loads(raw)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return _answer(400, {"error": "the body is not a JSON EventBridge event"})
        try:
            return _answer(200, handler(event, context))
        except UpstreamError as error:  # Lambda would fail the invocation, and EventBridge retry it
            return _answer(503, {"error": error.code, "message": error.message})
        except KumaIamError as error:
            return _answer(500, {"error": "function_error", "message": error.message})

    return deliver


def _answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
