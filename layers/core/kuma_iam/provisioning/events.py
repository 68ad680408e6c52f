"""The events the provisioner takes, as Powertools Parser models: ECS task state changes (EventBridge, source
aws.ecs) and the schedule's sweep. Only which task, in which cluster, is read from an event: everything the
decision rests on is read again from ECS and IAM."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from kuma_iam.eventbridge import SCHEDULED, AccountId, ScheduledEvent, parse_eventbridge_event
from kuma_iam.provisioning.clusters import CLUSTER_ARN
from kuma_iam.rules import shown

TASK_STATE_CHANGE = "ECS Task State Change"

# arn:<partition>:ecs:<region>:<account>:task/<cluster name>/<task id> (the id: 32 hex digits, or a UUID in
# older accounts and moto; the long format's cluster part is absent from the oldest ARNs).
TASK_ARN = re.compile(
    r"arn:(?P<partition>[a-z-]{3,16}):ecs:(?P<region>[a-z0-9-]{1,32}):(?P<account>[0-9]{12}):"
    r"task/(?:(?P<cluster>[A-Za-z0-9_-]{1,255})/)?(?P<id>[0-9a-f]{32}|[0-9a-f-]{36})",
    re.ASCII,
)
Status = Annotated[str, StringConstraints(max_length=64)]


class TaskStateChange(BaseModel):
    """The `detail` of an ECS Task State Change: ECS adds fields over time; what is read is checked."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    clusterArn: Annotated[str, StringConstraints(max_length=2048)]  # noqa: N815 - ECS's names
    taskArn: Annotated[str, StringConstraints(max_length=2048)]  # noqa: N815
    desiredStatus: Status | None = None  # noqa: N815
    lastStatus: Status | None = None  # noqa: N815

    @field_validator("clusterArn")
    @classmethod
    def _cluster_arn(cls, value: str) -> str:
        if not CLUSTER_ARN.fullmatch(value):
            raise ValueError(
                f"{shown(value)} is not an ECS cluster ARN (arn:aws:ecs:<region>:<account>:cluster/<name>)"
            )
        return value

    @field_validator("taskArn")
    @classmethod
    def _task_arn(cls, value: str) -> str:
        if not TASK_ARN.fullmatch(value):
            raise ValueError(
                f"{shown(value)} is not an ECS task ARN (arn:aws:ecs:<region>:<account>:task/<cluster>/<id>)"
            )
        return value

    @model_validator(mode="after")
    def _task_of_the_cluster(self) -> TaskStateChange:
        # ECS names a task after its cluster: an event that pairs a served cluster with another's task is
        # not ECS's (and must not make the provisioner read that task as the served cluster's).
        cluster = CLUSTER_ARN.fullmatch(self.clusterArn)
        task = TASK_ARN.fullmatch(self.taskArn)
        assert cluster is not None  # the fields' own checks ran first
        assert task is not None
        same_place = all(cluster[part] == task[part] for part in ("partition", "region", "account"))
        if not same_place or task["cluster"] not in (None, cluster["name"]):
            raise ValueError("taskArn is not a task of clusterArn: ECS names each task after its cluster")
        return self


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
