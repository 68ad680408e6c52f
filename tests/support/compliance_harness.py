"""The real tag-compliance handler, invoked as EventBridge invokes it, and what its outputs delivered.

`Compliance` runs `functions/tag_compliance/app.py` with a function built for the call's environment (a new
container, as far as caches go). `FindingsInbox` subscribes SQS queues to the findings topic and to an
EventBridge rule for finding events, so a test reads what SNS and EventBridge really delivered.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

from kuma_iam.compliance.outputs import EVENT_DETAIL_TYPE, EVENT_SOURCE
from kuma_iam_cli.local.gateway import LocalLambdaContext
from kuma_iam_cli.local.seed import DemoWorld, findings_topic_arn
from support.aws_clients import client_as


class Compliance:
    """compliance(event) -> the handler's answer; compliance.configure(NAME=value or None) changes the
    environment of the next calls."""

    def __init__(
        self, module: ModuleType, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.module = module
        self.environment = dict(environment)
        self._monkeypatch = monkeypatch

    def configure(self, **environment: str | None) -> None:
        for name, value in environment.items():
            if value is None:
                self.environment.pop(name, None)
            else:
                self.environment[name] = value

    def __call__(self, event: Any, *, fresh: bool = True) -> dict[str, Any]:
        for name, value in self.environment.items():
            self._monkeypatch.setenv(name, value)
        for name in ("KUMA_IAM_SECURITY_HUB", "KUMA_IAM_IDEMPOTENCY_TABLE", "KUMA_IAM_FINDINGS_TOPIC_ARN"):
            if name not in self.environment:
                self._monkeypatch.delenv(name, raising=False)
        if fresh:
            self.module.compliance.cache_clear()
        context = LocalLambdaContext(
            function_name="TagComplianceFunction",
            aws_request_id=str(uuid.uuid4()),
            region=self.environment.get("AWS_REGION", "us-east-1"),
            account_id=self.environment.get("KUMA_IAM_HOME_ACCOUNT_ID", "111111111111"),
            timeout_seconds=300,
        )
        answer: dict[str, Any] = self.module.lambda_handler(event, context)
        return answer


def finding_pairs(answer: dict[str, Any]) -> set[tuple[str, str]]:
    return {(finding["rule"], finding["roleName"]) for finding in answer["findings"]}


@dataclass
class Delivered:
    notifications: list[dict[str, Any]]
    events: list[dict[str, Any]]


class FindingsInbox:
    """SQS queues behind the findings topic and behind a rule for finding events on the default bus."""

    def __init__(self, world: DemoWorld) -> None:
        admin = world.admins[world.home_account]
        self.sqs = client_as(world, "sqs", admin)
        self.sns = client_as(world, "sns", admin)
        self.events = client_as(world, "events", admin)
        self.world = world

    @contextmanager
    def open(self) -> Iterator[FindingsInbox]:
        name = f"inbox-{uuid.uuid4().hex[:8]}"
        self.topic_queue = self.sqs.create_queue(QueueName=f"{name}-sns")["QueueUrl"]
        self.event_queue = self.sqs.create_queue(QueueName=f"{name}-events")["QueueUrl"]
        topic_queue_arn = self._arn(self.topic_queue)
        subscription = self.sns.subscribe(
            TopicArn=findings_topic_arn(self.world), Protocol="sqs", Endpoint=topic_queue_arn,
            Attributes={"RawMessageDelivery": "true"}, ReturnSubscriptionArn=True,
        )["SubscriptionArn"]  # fmt: skip
        self.rule = name
        self.events.put_rule(
            Name=name, EventPattern=json.dumps({"source": [EVENT_SOURCE], "detail-type": [EVENT_DETAIL_TYPE]})
        )
        self.events.put_targets(Rule=name, Targets=[{"Id": "inbox", "Arn": self._arn(self.event_queue)}])
        try:
            yield self
        finally:
            self.events.remove_targets(Rule=name, Ids=["inbox"])
            self.events.delete_rule(Name=name)
            self.sns.unsubscribe(SubscriptionArn=subscription)
            self.sqs.delete_queue(QueueUrl=self.topic_queue)
            self.sqs.delete_queue(QueueUrl=self.event_queue)

    def delivered(self) -> Delivered:
        return Delivered(
            notifications=[{"body": body} for body in self._drain(self.topic_queue)],
            events=[json.loads(body) for body in self._drain(self.event_queue)],
        )

    def _drain(self, queue_url: str) -> list[str]:
        bodies: list[str] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return bodies
            for message in messages:
                bodies.append(message["Body"])
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _arn(self, queue_url: str) -> str:
        return str(
            self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
        )
