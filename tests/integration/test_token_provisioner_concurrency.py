"""Many tasks of one service start at once and share one secret: concurrent invocations, each its own
container (its own clients, keys and caches, as Lambda runs them), make one new version of the secret.

Secrets Manager takes a version's ClientRequestToken as its VersionId and refuses a second, different value
under it (ResourceExistsException); the provisioner names each put after the version it replaces, so every
invocation that read the same version races for the same VersionId and exactly one wins. moto enforces that
rule (a reused ClientRequestToken with another value is refused) but not atomically: its check and its write
are two steps without a lock, so two puts landing in the same instant could both pass the check. A stand-in in
front of moto serializes PutSecretValue, as Secrets Manager's own write is atomic; the test then counts what
reached it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from kuma_iam_cli.local.provisioner_events import task_state_change
from kuma_iam_cli.local.seed import HOME_ACCOUNT, DemoWorld
from support.aws_clients import TaskRole
from support.fake_aws import Answer, Computed, FakeAws, PassThrough, ReceivedRequest, forward
from support.kuma_rules import dataplane_keys_for, validate_dataplane_token
from support.provisioner_harness import EcsWorld, Provisioner
from support.upstream_timeouts import patient_provisioner_function_from_env

pytestmark = pytest.mark.integration

BURST = 50


@pytest.fixture
def atomic_secrets(demo_world: DemoWorld) -> Iterator[FakeAws]:
    """moto behind a stand-in that lets one PutSecretValue through at a time (Secrets Manager's write is
    atomic, moto's check-then-write is not) and records every request and answer."""
    one_put_at_a_time = threading.Lock()
    moto = PassThrough(demo_world.endpoint_url)

    def choose(request: ReceivedRequest) -> Answer | PassThrough:
        if request.action != "PutSecretValue":
            return moto
        with one_put_at_a_time:
            return forward(demo_world.endpoint_url, request)

    with FakeAws(name="atomic-secrets") as fake:
        fake.script(then=Computed(choose))
        yield fake


@pytest.mark.parametrize("stagger", [0.0, 0.05], ids=["all-at-once", "over-2.5-s"])
def test_a_burst_of_task_starts_of_one_service_makes_one_new_version(
    stagger: float,
    provisioner: Provisioner,
    ecs_world: EcsWorld,
    make_task_role: Callable[..., TaskRole],
    atomic_secrets: FakeAws,
    published: Callable[[], dict[str, Any]],
) -> None:
    # Given 50 tasks of one service, started at once, and its empty secret
    service = ecs_world.new_service("burst")
    role = make_task_role(
        HOME_ACCOUNT,
        f"{service}-task",
        {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "kuma.io/service": service},
    )
    ecs_world.make_secret(service)
    tasks = [ecs_world.start_task(service, role.arn) for _ in range(BURST)]
    environment = provisioner.environment | {"AWS_ENDPOINT_URL_SECRETS_MANAGER": atomic_secrets.url}
    provisioner.apply()
    # (each patient with moto, which shares this process and 50 threads: support.upstream_timeouts)
    containers = [patient_provisioner_function_from_env(environment) for _ in range(BURST)]
    atomic_secrets.reset_requests()
    start = threading.Barrier(BURST)

    def invoke(index: int) -> dict[str, Any]:
        start.wait(timeout=300)  # "did not hang": 50 threads on a loaded machine take a while to start
        time.sleep(index * stagger)  # ECS reports a service's task starts over a moment, not in one instant
        return containers[index].handle(task_state_change(ecs_world.cluster_arn, tasks[index]))

    # When ECS reports every start at once, each to its own container
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=BURST) as pool:
        answers = list(pool.map(invoke, range(BURST)))
    elapsed = time.monotonic() - began

    # Then exactly one invocation issued a token and exactly one new version exists
    issued = [entry for answer in answers for entry in answer["issued"]]
    assert len(issued) == 1, issued
    assert len(ecs_world.versions(service)) == 2  # the stack's `{}`, and one token
    # And every other task was told its service is served (already, or by the winner of the race)
    outcomes = Counter(entry["reason"] for answer in answers for entry in answer["skipped"])
    assert set(outcomes) <= {"token_valid", "refreshed_concurrently"}
    assert sum(outcomes.values()) == BURST - 1
    # And the secret holds the winner's token, which a control plane accepts
    token = ecs_world.document(service)["token"]
    validate_dataplane_token(
        token,
        dataplane_keys_for(published(), "default"),
        now=time.time(),
        mesh="default",
        name="t",
        tags={"kuma.io/service": [service]},
    )
    assert issued[0]["jti"] in _claims_jti(token)
    # And what Secrets Manager was asked: every racer that read the empty secret tried its put under the same
    # VersionId, and it accepted one (staggered, the later invocations find the token and put nothing)
    puts = [
        (request, answer) for request, answer in atomic_secrets.answers if request.action == "PutSecretValue"
    ]
    accepted = [answer for _, answer in puts if answer.status == 200]
    assert len(accepted) == 1
    assert all(b"ResourceExistsException" in answer.body for _, answer in puts if answer.status != 200)
    assert len({_request_token(request) for request, _ in puts}) == 1
    print(
        f"\nburst of {BURST} ({stagger * 1000:.0f} ms apart): {len(puts)} PutSecretValue tried, 1 accepted; "
        f"outcomes {dict(outcomes)}; "
        f"{elapsed:.2f} s"
    )


def _request_token(request: ReceivedRequest) -> str:
    import json

    return str(json.loads(request.body)["ClientRequestToken"])


def _claims_jti(token: str) -> str:
    import base64
    import json

    claims = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["jti"])
