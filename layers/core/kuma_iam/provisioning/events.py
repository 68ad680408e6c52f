"""The events the provisioner takes, as Powertools Parser models: ECS task state changes (EventBridge, source
aws.ecs) and the schedule's sweep. Only which task, in which cluster, is read from an event: everything the
decision rests on is read again from ECS and IAM."""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from kuma_iam.eventbridge import SCHEDULED, AccountId, ScheduledEvent, parse_eventbridge_event

TASK_STATE_CHANGE = "ECS Task State Change"

EcsArn = Annotated[
    str, StringConstraints(pattern=r"^arn:[a-z-]{3,16}:ecs:[a-z0-9-]{1,32}:[0-9]{12}:[\x21-\x7e]{1,1024}$")
]
Status = Annotated[str, StringConstraints(max_length=64)]


class TaskStateChange(BaseModel):
    """The `detail` of an ECS Task State Change: ECS adds fields over time; what is read is checked."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    clusterArn: EcsArn  # noqa: N815 - ECS's names
    taskArn: EcsArn  # noqa: N815
    desiredStatus: Status | None = None  # noqa: N815
    lastStatus: Status | None = None  # noqa: N815


class TaskStateChangeEvent(EventBridgeModel):
    source: Literal["aws.ecs"]
    account: AccountId
    detail_type: Literal["ECS Task State Change"] = Field(alias="detail-type")
    detail: TaskStateChange


ProvisionerEvent = TaskStateChangeEvent | ScheduledEvent


def parse_provisioner_event(event: object) -> ProvisionerEvent:
    """The event as one of the two kinds, or InvalidRequest saying what is wrong with it."""
    models: dict[str, type[ProvisionerEvent]] = {
        TASK_STATE_CHANGE: TaskStateChangeEvent,
        SCHEDULED: ScheduledEvent,
    }
    return parse_eventbridge_event(
        event, models, f"{TASK_STATE_CHANGE!r} from aws.ecs, {SCHEDULED!r} from aws.events"
    )
