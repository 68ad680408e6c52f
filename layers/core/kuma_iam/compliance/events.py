"""The events the compliance function takes, as Powertools Parser models: IAM calls that CloudTrail delivers
through EventBridge, and the schedule's sweep. Anything else is refused with a message naming the problem."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from kuma_iam.compliance.changes import RoleChange
from kuma_iam.config import ROLE_NAME
from kuma_iam.errors import InvalidRequest, first_problem

IAM_CALL = "AWS API Call via CloudTrail"
SCHEDULED = "Scheduled Event"
WATCHED_CALLS = ("CreateRole", "TagRole", "UntagRole", "UpdateAssumeRolePolicy")
# EventBridge carries at most 256 KB per event: anything larger did not come from it.
MAX_EVENT_BYTES = 256 * 1024

AccountId = Annotated[str, StringConstraints(pattern=r"^[0-9]{12}$")]
RoleName = Annotated[str, StringConstraints(pattern=f"^{ROLE_NAME.pattern}$")]
Text = Annotated[str, StringConstraints(max_length=2048)]
# IAM's own bounds: keys up to 128 characters, values up to 256, at most 50 tags on a role.
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]
TagValue = Annotated[str, StringConstraints(max_length=256)]


class _CloudTrailPart(BaseModel):
    # CloudTrail adds fields over time; what we read is checked, the rest ignored.
    model_config = ConfigDict(extra="ignore", frozen=True)


class SessionIssuer(_CloudTrailPart):
    type: Text | None = None
    arn: Text | None = None


class SessionContext(_CloudTrailPart):
    sessionIssuer: SessionIssuer | None = None  # noqa: N815 - CloudTrail's names


class UserIdentity(_CloudTrailPart):
    type: Text | None = None
    arn: Text | None = None
    invokedBy: Text | None = None  # noqa: N815
    sessionContext: SessionContext | None = None  # noqa: N815

    def principal_arn(self) -> str | None:
        """The principal accountable for the call: an assumed role's role, not its session (whose name the
        caller picks); a federated user's IAM user; else the caller's ARN. None for AWS services."""
        issuer = self.sessionContext.sessionIssuer if self.sessionContext else None
        if self.type in ("AssumedRole", "FederatedUser"):
            return issuer.arn if issuer is not None else None
        return self.arn

    def described(self) -> str:
        if arn := self.principal_arn():
            return arn
        return f"{self.type or 'an unknown principal'}" + (f" {self.invokedBy}" if self.invokedBy else "")


class TagParameter(_CloudTrailPart):
    key: TagKey
    value: TagValue = ""


class IamRequestParameters(_CloudTrailPart):
    roleName: RoleName  # noqa: N815
    tags: Annotated[list[TagParameter], Field(max_length=50)] = []
    tagKeys: Annotated[list[TagKey], Field(max_length=50)] = []  # noqa: N815


class CloudTrailIamCall(_CloudTrailPart):
    """The CloudTrail record of one IAM call (the `detail` of the EventBridge event)."""

    eventSource: Literal["iam.amazonaws.com"]  # noqa: N815
    eventName: Literal["CreateRole", "TagRole", "UntagRole", "UpdateAssumeRolePolicy"]  # noqa: N815
    eventID: Text  # noqa: N815
    eventTime: datetime  # noqa: N815
    userIdentity: UserIdentity  # noqa: N815
    recipientAccountId: AccountId  # noqa: N815
    # Null when a call failed before IAM read it; the role is then unknown and nothing changed.
    requestParameters: IamRequestParameters | None = None  # noqa: N815
    errorCode: Text | None = None  # noqa: N815


class IamCallEvent(EventBridgeModel):
    """EventBridge's envelope of a CloudTrail IAM call, from the account's default bus or the central bus."""

    source: Literal["aws.iam"]
    account: AccountId
    detail_type: Literal["AWS API Call via CloudTrail"] = Field(alias="detail-type")
    detail: CloudTrailIamCall

    def change(self) -> RoleChange | None:
        """Who changed what; None for a failed call that named no role."""
        call = self.detail
        if call.requestParameters is None:
            return None
        return RoleChange(
            account=call.recipientAccountId,
            role_name=call.requestParameters.roleName,
            event_name=call.eventName,
            event_id=self.id,
            principal_arn=call.userIdentity.principal_arn(),
            principal=call.userIdentity.described(),
            set_tags={tag.key: tag.value for tag in call.requestParameters.tags},
            removed_keys=tuple(call.requestParameters.tagKeys),
            failed=call.errorCode,
        )


class ScheduledSweepEvent(EventBridgeModel):
    """The schedule's tick: sweep every role of every authorized account."""

    source: Literal["aws.events"]
    account: AccountId
    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")
    detail: dict[str, Any]


ComplianceEvent = IamCallEvent | ScheduledSweepEvent


def parse_compliance_event(event: object) -> ComplianceEvent:
    """The event as one of the two kinds, or InvalidRequest saying what is wrong with it."""
    if not isinstance(event, dict):
        raise InvalidRequest(f"the event is a JSON {type(event).__name__}, not an EventBridge event object")
    try:
        size = len(json.dumps(event, default=str))
    except (TypeError, ValueError, RecursionError):
        raise InvalidRequest("the event is not JSON") from None
    if size > MAX_EVENT_BYTES:
        raise InvalidRequest(f"the event is {size} bytes; EventBridge events are at most {MAX_EVENT_BYTES}")
    detail_type = event.get("detail-type")
    model: type[ComplianceEvent]
    if detail_type == IAM_CALL:
        model = IamCallEvent
    elif detail_type == SCHEDULED:
        model = ScheduledSweepEvent
    else:
        raise InvalidRequest(
            f"detail-type {_bounded(detail_type)} is not one this function takes ({IAM_CALL!r} from aws.iam, "
            f"{SCHEDULED!r} from aws.events)"
        )
    try:
        parsed: ComplianceEvent = parse(event=event, model=model)
    except ValidationError as error:
        raise InvalidRequest(first_problem(error, default_where="event")) from None
    if isinstance(parsed, IamCallEvent) and parsed.account != parsed.detail.recipientAccountId:
        raise InvalidRequest(
            f"the event comes from account {parsed.account} about IAM in account "
            f"{parsed.detail.recipientAccountId}: CloudTrail reports IAM calls only to their own account"
        )
    return parsed


def _bounded(value: object) -> str:
    return repr(value)[:80]
