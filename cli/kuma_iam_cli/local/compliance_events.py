"""Sample events for TagComplianceFunction, in the shapes EventBridge delivers them: CloudTrail IAM calls
("AWS API Call via CloudTrail", source aws.iam) and the schedule's tick, written to events/tag_compliance/
(the summary each must give on the demo world: its expected.json). The same builders make tests' events."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kuma_iam_cli.local.compliance_demo import COMPLIANCE_DEMO_ROLES, HOME_ACCOUNT, PARTNER_ACCOUNT, ecs_trust

REGION = "us-east-1"
SAMPLE_TIME = "2025-06-02T09:30:00Z"


@dataclass(frozen=True)
class Caller:
    """Who made an IAM call, as CloudTrail's userIdentity tells it."""

    account: str
    kind: str  # AssumedRole | IAMUser
    name: str  # the role (of an assumed role) or the user
    session: str = "cli"

    def user_identity(self) -> dict[str, Any]:
        if self.kind == "IAMUser":
            return {
                "type": "IAMUser",
                "principalId": "AIDAEXAMPLEDEVELOPER",
                "arn": f"arn:aws:iam::{self.account}:user/{self.name}",
                "accountId": self.account,
                "accessKeyId": "AKIAEXAMPLEEXAMPLE00",
                "userName": self.name,
            }
        return {
            "type": "AssumedRole",
            "principalId": f"AROAEXAMPLEPLATFORM0:{self.session}",
            "arn": f"arn:aws:sts::{self.account}:assumed-role/{self.name}/{self.session}",
            "accountId": self.account,
            "accessKeyId": "ASIAEXAMPLEEXAMPLE00",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": "AROAEXAMPLEPLATFORM0",
                    "arn": f"arn:aws:iam::{self.account}:role/{self.name}",
                    "accountId": self.account,
                    "userName": self.name,
                },
                "attributes": {"creationDate": SAMPLE_TIME, "mfaAuthenticated": "false"},
            },
        }


ADMIN = Caller(HOME_ACCOUNT, "AssumedRole", "platform-admin", "alice")
DEVELOPER = Caller(HOME_ACCOUNT, "IAMUser", "developer")
PARTNER_DEVELOPER = Caller(PARTNER_ACCOUNT, "IAMUser", "developer")


def iam_call_event(
    caller: Caller,
    event_name: str,
    request_parameters: Mapping[str, Any] | None,
    *,
    account: str | None = None,
    event_id: str | None = None,
    time: str = SAMPLE_TIME,
    error_code: str | None = None,
    response_elements: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One IAM call as CloudTrail hands it to EventBridge (IAM's events arrive in us-east-1)."""
    account = account or caller.account
    event_id = event_id or str(uuid.uuid4())
    detail: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": caller.user_identity(),
        "eventTime": time,
        "eventSource": "iam.amazonaws.com",
        "eventName": event_name,
        "awsRegion": REGION,
        "sourceIPAddress": "203.0.113.10",
        "userAgent": "aws-cli/2.17.0 md/Botocore#1.35.0 ua/2.0 os/linux#6.8 md/arch#x86_64",
        "requestParameters": dict(request_parameters) if request_parameters is not None else None,
        "responseElements": dict(response_elements) if response_elements is not None else None,
        "requestID": str(uuid.uuid5(uuid.NAMESPACE_URL, event_id)),
        "eventID": str(uuid.uuid5(uuid.NAMESPACE_DNS, event_id)),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": "iam.amazonaws.com",
        },
    }
    if error_code is not None:
        detail["errorCode"] = error_code
        detail["errorMessage"] = f"User is not authorized to perform iam:{event_name}"
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.iam",
        "account": account,
        "time": time,
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


def tag_role(caller: Caller, role: str, tags: Mapping[str, str], **kw: Any) -> dict[str, Any]:
    parameters = {"roleName": role, "tags": [{"key": key, "value": value} for key, value in tags.items()]}
    return iam_call_event(caller, "TagRole", parameters, **kw)


def untag_role(caller: Caller, role: str, keys: list[str], **kw: Any) -> dict[str, Any]:
    return iam_call_event(caller, "UntagRole", {"roleName": role, "tagKeys": keys}, **kw)


def create_role(
    caller: Caller, role: str, tags: Mapping[str, str], trust: Mapping[str, Any], **kw: Any
) -> dict[str, Any]:
    document = json.dumps(trust)
    parameters = {
        "roleName": role,
        "assumeRolePolicyDocument": document,
        "tags": [{"key": key, "value": value} for key, value in tags.items()],
    }
    role_arn = f"arn:aws:iam::{kw.get('account') or caller.account}:role/{role}"
    response = {
        "role": {
            "path": "/",
            "roleName": role,
            "roleId": "AROAEXAMPLENEWROLE00",
            "arn": role_arn,
            "createDate": "Jun 2, 2025, 9:30:00 AM",
            "assumeRolePolicyDocument": document,
            "tags": parameters["tags"],
        }
    }
    return iam_call_event(caller, "CreateRole", parameters, response_elements=response, **kw)


def update_trust(caller: Caller, role: str, trust: Mapping[str, Any], **kw: Any) -> dict[str, Any]:
    return iam_call_event(
        caller, "UpdateAssumeRolePolicy", {"roleName": role, "policyDocument": json.dumps(trust)}, **kw
    )


def scheduled_event(
    *, account: str = HOME_ACCOUNT, event_id: str | None = None, time: str = SAMPLE_TIME
) -> dict[str, Any]:
    """The schedule's tick (an EventBridge rule with a schedule expression)."""
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": time,
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{account}:rule/kuma-iam-TagComplianceSweep"],
        "detail": {},
    }


@dataclass(frozen=True)
class ComplianceCase:
    """One sample event for TagComplianceFunction. The summary it must give on the demo world (report
    mode) is in events/tag_compliance/expected.json, beside the events written from these cases."""

    name: str
    event: Callable[[], dict[str, Any]]


def _fixed(name: str) -> str:
    # Stable ids, so that the committed files do not change each time they are written.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kuma-iam/events/tag_compliance/{name}"))


COMPLIANCE_CASES: tuple[ComplianceCase, ...] = (
    ComplianceCase(
        "tag-role-by-admin",
        lambda: tag_role(
            ADMIN, "orders-task", {"kuma.io/service": "orders"}, event_id=_fixed("tag-role-by-admin")
        ),
    ),
    ComplianceCase(
        "tag-role-by-other",
        lambda: tag_role(
            DEVELOPER, "orders-task", {"kuma.io/mesh": "default"}, event_id=_fixed("tag-role-by-other")
        ),
    ),
    ComplianceCase(
        "untag-mesh-by-other",
        lambda: untag_role(
            DEVELOPER, "mesh-dropped-task", ["kuma.io/mesh"], event_id=_fixed("untag-mesh-by-other")
        ),
    ),
    ComplianceCase(
        "create-role-with-tags",
        lambda: create_role(
            ADMIN,
            "typo-task",
            {"kuma.io/type": "dataplnae", "kuma.io/mesh": "default", "team": "billing"},
            ecs_trust(HOME_ACCOUNT),
            event_id=_fixed("create-role-with-tags"),
        ),
    ),
    ComplianceCase(
        "trust-policy-change",
        lambda: update_trust(
            ADMIN,
            "open-trust-task",
            next(spec.trust for spec in COMPLIANCE_DEMO_ROLES if spec.name == "open-trust-task"),
            event_id=_fixed("trust-policy-change"),
        ),
    ),
    ComplianceCase(
        "tag-role-in-partner-account",
        lambda: tag_role(
            PARTNER_DEVELOPER,
            "ledger-task",
            {"kuma.io/mesh": "Payments!"},
            event_id=_fixed("tag-role-in-partner"),
        ),
    ),
    ComplianceCase(
        "tag-deleted-role",
        lambda: tag_role(
            DEVELOPER, "gone-task", {"kuma.io/type": "dataplane"}, event_id=_fixed("tag-deleted-role")
        ),
    ),
    ComplianceCase(
        "scheduled-sweep",
        lambda: scheduled_event(event_id=_fixed("scheduled-sweep")),
    ),
    ComplianceCase(
        "not-an-iam-event",
        lambda: {
            **scheduled_event(event_id=_fixed("not-an-iam-event")),
            "detail-type": "EC2 Instance State-change Notification",
            "source": "aws.ec2",
            "detail": {"instance-id": "i-0123456789abcdef0", "state": "running"},
        },
    ),
)
