"""AWS trouble meets the provisioner: ECS, Secrets Manager, KMS or IAM throttling or failing (5xx) fails
closed for the service it hit (no token, nothing half-written), is reported in the summary, a log line and the
UpstreamError metric, and never stops a sweep from serving the other services. An event whose service failed
raises once reported, so Lambda delivers it again. Faults come from a stand-in in front of moto, which cannot
throttle; everything else is moto's."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from kuma_iam.errors import UpstreamError
from kuma_iam_cli.local.provisioner_events import scheduled_sweep, task_state_change
from kuma_iam_cli.local.seed import HOME_ACCOUNT, DemoWorld
from support.aws_clients import TaskRole
from support.captured_output import EverythingLogged, upstream_errors
from support.fake_aws import (
    Answer,
    Behaviour,
    ByAction,
    Computed,
    FakeAws,
    PassThrough,
    json_error,
    query_error,
)
from support.provisioner_harness import EcsWorld, Provisioner, issued_services, reasons

pytestmark = pytest.mark.integration


@pytest.fixture
def faulty(demo_world: DemoWorld) -> Iterator[FakeAws]:
    """A stand-in in front of moto; each test scripts which calls fail."""
    with FakeAws(name="faulty-aws") as fake:
        fake.script(then=PassThrough(demo_world.endpoint_url))
        yield fake


@pytest.fixture
def two_services(ecs_world: EcsWorld, make_task_role: Callable[..., TaskRole]) -> dict[str, list[str]]:
    """Two tagged services of this test, two tasks each, empty secrets: service -> its tasks."""
    services: dict[str, list[str]] = {}
    for kind in ("first", "second"):
        service = ecs_world.new_service(kind)
        role = make_task_role(
            HOME_ACCOUNT,
            f"{service}-task",
            {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "kuma.io/service": service},
        )
        ecs_world.make_secret(service)
        services[service] = [ecs_world.start_task(service, role.arn) for _ in range(2)]
    return services


def only_for(name: str, fault: Answer, otherwise: Behaviour) -> Computed:
    """The fault for requests that name `name` (a secret of one service), `otherwise` for the rest."""
    return Computed(lambda request: fault if name.encode() in request.body else otherwise)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (json_error("ThrottlingException"), "upstream_throttled"),
        (json_error("InternalServiceError", 500), "upstream_unavailable"),
    ],
    ids=["throttled", "5xx"],
)
def test_secrets_manager_failing_one_service_fails_it_closed_and_the_sweep_serves_the_other(
    fault: Answer,
    reason: str,
    provisioner: Provisioner,
    ecs_world: EcsWorld,
    two_services: dict[str, list[str]],
    faulty: FakeAws,
    demo_world: DemoWorld,
    everything_logged: EverythingLogged,
) -> None:
    # Given Secrets Manager failing every call about the first service's secret
    first, second = two_services
    moto = PassThrough(demo_world.endpoint_url)
    faulty.script(then=only_for(ecs_world.secret_name(first), fault, moto))
    provisioner.configure(AWS_ENDPOINT_URL_SECRETS_MANAGER=faulty.url)
    everything_logged.discard()

    # When the sweep runs
    answer = provisioner(scheduled_sweep())

    # Then the second service got its token, the first none, and the summary says why and what failed
    assert second in issued_services(answer)
    assert first not in issued_services(answer)
    skipped = reasons(answer)
    assert {skipped[task] for task in two_services[first]} == {reason}
    failures = [failure for failure in answer["failed"] if failure.get("service") == first]
    assert len(failures) == 1
    assert failures[0]["upstream"] == "secretsmanager"
    assert ecs_world.document(first) == {}
    # And the failure is logged and counted
    output = everything_logged.text()
    assert "provisioning failed" in output
    assert upstream_errors(output)["secretsmanager"] >= 1


@pytest.mark.parametrize(
    ("service", "action", "upstream"),
    [
        ("KMS", "Sign", "kms"),
        ("IAM", "GetRole", "iam"),
        ("ECS", "DescribeTaskDefinition", "ecs"),
    ],
)
def test_a_throttled_signer_role_read_or_task_definition_fails_every_service_closed_and_is_reported(
    service: str,
    action: str,
    upstream: str,
    provisioner: Provisioner,
    ecs_world: EcsWorld,
    two_services: dict[str, list[str]],
    faulty: FakeAws,
    demo_world: DemoWorld,
) -> None:
    # Given the call failing for everyone (IAM speaks the Query protocol, the others JSON)
    throttled = (
        query_error("Throttling", "https://iam.amazonaws.com/doc/2010-05-08/")
        if service == "IAM"
        else json_error("ThrottlingException")
    )
    faulty.script(then=ByAction({action: throttled}, default=PassThrough(demo_world.endpoint_url)))
    provisioner.configure(**{f"AWS_ENDPOINT_URL_{service}": faulty.url})

    # When the sweep runs
    answer = provisioner(scheduled_sweep())

    # Then neither of the test's services got a token; both are reported as throttled; the sweep answered
    mine = set(two_services)
    assert not mine & set(issued_services(answer))
    skipped = reasons(answer)
    for tasks in two_services.values():
        assert {skipped[task] for task in tasks} == {"upstream_throttled"}
    failed = {failure["service"]: failure for failure in answer["failed"] if failure.get("service") in mine}
    assert set(failed) == mine
    assert {failure["upstream"] for failure in failed.values()} == {upstream}
    for name in mine:
        assert ecs_world.document(name) == {}


@pytest.mark.parametrize("fault", [json_error("ThrottlingException"), json_error("ServerException", 500)])
def test_a_cluster_ecs_cannot_list_is_reported_and_the_sweep_answers(
    fault: Answer, provisioner: Provisioner, faulty: FakeAws, demo_world: DemoWorld, ecs_world: EcsWorld
) -> None:
    faulty.script(then=ByAction({"ListTasks": fault}, default=PassThrough(demo_world.endpoint_url)))
    provisioner.configure(AWS_ENDPOINT_URL_ECS=faulty.url)

    answer = provisioner(scheduled_sweep())

    assert answer["tasks"] == 0
    assert answer["issued"] == []
    (failure,) = answer["failed"]
    assert (failure["cluster"], failure["upstream"]) == (ecs_world.cluster_arn, "ecs")


def test_an_event_whose_service_failed_raises_so_that_lambda_delivers_it_again(
    provisioner: Provisioner,
    ecs_world: EcsWorld,
    two_services: dict[str, list[str]],
    faulty: FakeAws,
    demo_world: DemoWorld,
) -> None:
    # Given Secrets Manager down for the first service
    first = next(iter(two_services))
    task = two_services[first][0]
    faulty.script(
        then=only_for(
            ecs_world.secret_name(first),
            json_error("InternalServiceError", 500),
            PassThrough(demo_world.endpoint_url),
        )
    )
    provisioner.configure(AWS_ENDPOINT_URL_SECRETS_MANAGER=faulty.url)

    # When its task's start is delivered, the invocation fails (Lambda retries it)
    with pytest.raises(UpstreamError) as raised:
        provisioner(task_state_change(ecs_world.cluster_arn, task))
    assert raised.value.service == "secretsmanager"

    # And when Secrets Manager is back, the retry issues the token
    faulty.script(then=PassThrough(demo_world.endpoint_url))
    assert issued_services(provisioner(task_state_change(ecs_world.cluster_arn, task))) == [first]


def test_a_put_secrets_manager_refuses_leaves_the_secret_as_it_was(
    provisioner: Provisioner,
    ecs_world: EcsWorld,
    two_services: dict[str, list[str]],
    faulty: FakeAws,
    demo_world: DemoWorld,
) -> None:
    # Given Secrets Manager refusing puts (its quota, say) but answering reads
    faulty.script(
        then=ByAction(
            {"PutSecretValue": json_error("ThrottlingException")},
            default=PassThrough(demo_world.endpoint_url),
        )
    )
    provisioner.configure(AWS_ENDPOINT_URL_SECRETS_MANAGER=faulty.url)
    first = next(iter(two_services))

    # When a task starts
    with pytest.raises(UpstreamError):
        provisioner(task_state_change(ecs_world.cluster_arn, two_services[first][0]))

    # Then the secret is as its stack made it, and the put was retried within the configured attempts only
    assert ecs_world.document(first) == {}
    puts = [request for request in faulty.requests if request.action == "PutSecretValue"]
    assert len(puts) == 2  # KUMA_IAM_UPSTREAM_ATTEMPTS=2 in the test environment
    tokens = {json.loads(request.body)["ClientRequestToken"] for request in puts}
    assert len(tokens) == 1  # a retry is the same version, never a second one
