"""What provisioning costs, counted on the wire (a recording pass-through in front of the embedded AWS): AWS
calls for a service's first task in a new container and for its next tasks in a warm one, for a sweep, and
the time from a task's start event to its token in the secret. Bounds are generous ceilings; the numbers are
printed for README and the closing note."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from kuma_iam_cli.local.provisioner_events import scheduled_sweep, task_state_change
from kuma_iam_cli.local.seed import HOME_ACCOUNT
from support.aws_clients import TaskRole
from support.fake_aws import FakeAws
from support.provisioner_harness import EcsWorld, Provisioner, issued_services, reasons

pytestmark = pytest.mark.integration

ENDPOINTS = ("ECS", "SECRETS_MANAGER", "KMS", "IAM", "DYNAMODB", "STS", "SNS", "EVENTBRIDGE")


@pytest.fixture
def counted(provisioner: Provisioner, aws_proxy: FakeAws) -> Provisioner:
    provisioner.configure(**{f"AWS_ENDPOINT_URL_{name}": aws_proxy.url for name in ENDPOINTS})
    return provisioner


def start_more(ecs_world: EcsWorld, first_task: str, service: str, count: int) -> list[str]:
    """More tasks of the same task definition revision, as an ECS service scales out."""
    described = ecs_world.ecs.describe_tasks(cluster=ecs_world.cluster_arn, tasks=[first_task])
    definition = described["tasks"][0]["taskDefinitionArn"]
    arns = []
    for _ in range(count):
        arn = ecs_world.ecs.run_task(
            cluster=ecs_world.cluster_arn,
            taskDefinition=definition,
            launchType="FARGATE",
            tags=[{"key": "kuma.io/service", "value": service}],
        )["tasks"][0]["taskArn"]
        ecs_world.started.append((ecs_world.cluster_arn, arn))
        arns.append(arn)
    return arns


def test_calls_per_task_cold_and_warm_and_time_to_token(
    counted: Provisioner,
    aws_proxy: FakeAws,
    ecs_world: EcsWorld,
    make_task_role: Callable[..., TaskRole],
) -> None:
    # Given a tagged service with an empty secret and one task starting
    service = ecs_world.new_service("cost")
    role = make_task_role(
        HOME_ACCOUNT,
        f"{service}-task",
        {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "kuma.io/service": service},
    )
    ecs_world.make_secret(service)
    first = ecs_world.start_task(service, role.arn)
    aws_proxy.reset_requests()

    # When its start event reaches a new container
    began = time.perf_counter()
    answer = counted(task_state_change(ecs_world.cluster_arn, first))
    to_token = time.perf_counter() - began
    cold = aws_proxy.count_by_action()
    assert issued_services(answer) == [service]
    assert "token" in ecs_world.document(service)

    # And the service's next tasks start (their events reach the same, now warm, container)
    more = start_more(ecs_world, first, service, 3)
    aws_proxy.reset_requests()
    for task in more:
        assert reasons(counted(task_state_change(ecs_world.cluster_arn, task), fresh=False)) == {
            task: "token_valid"
        }
    warm = aws_proxy.count_by_action()

    # Then a cold first task costs one read of each thing it must know and one sign and put; a warm next task
    # costs its description, the secret and the revocation list
    assert cold["PutSecretValue"] == 1
    assert cold["Sign"] + cold.get("GetSecretValue", 0) >= 1
    assert sum(cold.values()) <= 10, cold
    assert warm == Counter({"DescribeTasks": 3, "GetSecretValue": 3, "Query": 3}), warm
    assert to_token < 300  # "did not hang": moto shares this process, and each call may wait 30 s for it
    print(
        f"\ncold first task: {sum(cold.values())} AWS calls {dict(cold)}; "
        f"event to token {to_token * 1000:.0f} ms"
        f"\nwarm next task: {sum(warm.values()) / 3:.1f} AWS calls each {dict(warm)}"
    )


def test_calls_of_a_sweep(
    counted: Provisioner,
    aws_proxy: FakeAws,
    ecs_world: EcsWorld,
    make_task_role: Callable[..., TaskRole],
) -> None:
    # Given three services of four tasks each, their secrets already holding good tokens (a steady state)
    services = []
    for _ in range(3):
        service = ecs_world.new_service("sweep")
        role = make_task_role(
            HOME_ACCOUNT,
            f"{service}-task",
            {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "kuma.io/service": service},
        )
        ecs_world.make_secret(service)
        first = ecs_world.start_task(service, role.arn)
        start_more(ecs_world, first, service, 3)
        services.append(service)
    counted(scheduled_sweep())
    aws_proxy.reset_requests()

    # When the next sweep runs in a warm container
    began = time.perf_counter()
    answer: dict[str, Any] = counted(scheduled_sweep(), fresh=False)
    elapsed = time.perf_counter() - began
    calls = aws_proxy.count_by_action()

    # Then the cluster is listed (running, pending) and described in batches of 100, and each service's secret
    # read once, whatever its number of tasks; the revocation list once per mesh
    assert answer["issued"] == []
    assert calls["ListTasks"] == 2
    assert calls["DescribeTasks"] == -(-answer["tasks"] // 100)
    assert calls["GetSecretValue"] >= len(services)
    assert calls["Query"] <= len({"default", "payments"})
    print(
        f"\nsweep of {answer['tasks']} tasks: {sum(calls.values())} AWS calls {dict(calls)}; "
        f"{elapsed * 1000:.0f} ms"
    )
