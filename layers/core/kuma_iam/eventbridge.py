"""EventBridge events in, for every function they trigger: the envelope checked (a JSON object within
EventBridge's size), its detail-type mapped to a Powertools Parser model, and each refusal naming its
problem. The schedule's tick is one model shared by every function with a sweep."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, Field, StringConstraints, ValidationError

from kuma_iam.errors import InvalidRequest, first_problem
from kuma_iam.observability import INVALID_EVENT, logger, metrics_count

SCHEDULED = "Scheduled Event"
# EventBridge carries at most 256 KB per event: anything larger did not come from it.
MAX_EVENT_BYTES = 256 * 1024

AccountId = Annotated[str, StringConstraints(pattern=r"^[0-9]{12}$")]


class ScheduledEvent(EventBridgeModel):
    """A schedule's tick (an EventBridge Scheduled Event rule): sweep."""

    source: Literal["aws.events"]
    account: AccountId
    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")
    detail: dict[str, Any]


def parse_eventbridge_event[T: BaseModel](event: object, models: Mapping[str, type[T]], takes: str) -> T:
    """The event as the model of its detail-type, or InvalidRequest saying what is wrong with it; `takes`
    says what the function takes, for the refusal of anything else."""
    if not isinstance(event, dict):
        raise InvalidRequest(f"the event is a JSON {type(event).__name__}, not an EventBridge event object")
    try:
        size = len(json.dumps(event, default=str))
    except (TypeError, ValueError, RecursionError):
        raise InvalidRequest("the event is not JSON") from None
    if size > MAX_EVENT_BYTES:
        raise InvalidRequest(f"the event is {size} bytes; EventBridge events are at most {MAX_EVENT_BYTES}")
    detail_type = event.get("detail-type")
    model = models.get(detail_type) if isinstance(detail_type, str) else None
    if model is None:
        raise InvalidRequest(f"detail-type {repr(detail_type)[:80]} is not one this function takes ({takes})")
    try:
        parsed: T = parse(event=event, model=model)
    except ValidationError as error:
        raise InvalidRequest(first_problem(error, default_where="event")) from None
    return parsed


def refused_event(error: InvalidRequest, empty_summary: Mapping[str, Any]) -> dict[str, Any]:
    """A malformed event's answer, counted and logged: the function's summary with nothing done and an `error`
    naming the problem. It is returned, not raised: delivering the same event again cannot help."""
    metrics_count(INVALID_EVENT)
    logger.warning("event refused", extra={"detail": error.message})
    return {**empty_summary, "error": {"code": "invalid_event", "message": error.message}}
