"""The token provisioner, the real handler on the embedded AWS (ECS, Secrets Manager, IAM, KMS, DynamoDB on
moto server, SigV4 and IAM checks on), as its own least-privilege user: which tasks get a token in their
service's secret, which do not and why, and that what it puts is a token a stock control plane accepts."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kuma_iam.tokens.revocations import RevocationTable, mesh_scope
from kuma_iam_cli.local.provisioner_demo import ProvisionerDemo
from kuma_iam_cli.local.provisioner_events import scheduled_sweep, task_state_change
from kuma_iam_cli.local.seed import HOME_ACCOUNT, OUTSIDER_ACCOUNT, PARTNER_ACCOUNT, DemoWorld
from kuma_iam_cli.local.token_keys import TokenKeys
from support.aws_clients import ClientFactory, TaskRole
from support.captured_output import EverythingLogged
from support.compliance_harness import FindingsInbox
from support.kuma_rules import dataplane_keys_for, validate_dataplane_token
from support.provisioner_harness import EcsWorld, Provisioner, forged, issued_services, reasons

pytestmark = pytest.mark.integration

MakeRole = Callable[..., TaskRole]


def dataplane_role(service: str | None, mesh: str = "default", **more: str) -> dict[str, str]:
    tags = {"kuma.io/type": "dataplane", "kuma.io/mesh": mesh, **more}
    if service is not None:
        tags["kuma.io/service"] = service
    return tags


@pytest.fixture
def tagged_service(ecs_world: EcsWorld, make_task_role: MakeRole) -> tuple[str, TaskRole]:
    """A service of this test alone: its task role (tagged for it), and its empty secret."""
    service = ecs_world.new_service()
    role = make_task_role(HOME_ACCOUNT, f"{service}-task", dataplane_role(service))
    ecs_world.make_secret(service)
    return service, role


# --- a task starts -------------------------------------------------------------------------------------


def test_a_new_task_of_a_tagged_service_gets_a_token_a_control_plane_accepts(
    provisioner: Provisioner,
    ecs_world: EcsWorld,
    tagged_service: tuple[str, TaskRole],
    published: Callable[[], dict[str, Any]],
) -> None:
    # Given a service whose secret is `{}` and whose task role is tagged for it
    service, role = tagged_service
    task = ecs_world.start_task(service, role.arn)

    # When ECS reports the task's start
    started = time.monotonic()
    answer = provisioner(task_state_change(ecs_world.cluster_arn, task))
    elapsed = time.monotonic() - started

    # Then one token was issued for the service, and it is in the secret's `token`
    assert answer["tasks"] == 1
    assert answer["skipped"] == []
    (issued,) = answer["issued"]
    assert issued["service"] == service
    assert issued["mesh"] == "default"
    assert issued["secret"] == ecs_world.secret_name(service)
    token = ecs_world.document(service)["token"]
    # And a control plane configured from GET /v1/keys admits any task of the service with it, in its mesh
    keys = dataplane_keys_for(published(), "default")
    claims = validate_dataplane_token(
        token, keys, now=time.time(), mesh="default", name="backend-7f9c", tags={"kuma.io/service": [service]}
    )
    assert claims["jti"] == issued["jti"]
    assert datetime.fromtimestamp(claims["exp"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ") == issued["expiresAt"]
    assert claims["Name"] == ""
    assert claims["Tags"] == {"kuma.io/service": [service]}
    # And not for another service or mesh
    with pytest.raises(Exception, match=r"not allow|differs"):
        validate_dataplane_token(
            token, keys, now=time.time(), mesh="default", name="x", tags={"kuma.io/service": ["other"]}
        )
    assert elapsed < 300  # "did not hang": moto shares this process, and each call may wait 30 s for it


def test_the_secrets_other_keys_survive_and_keep_their_order(
    provisioner: Provisioner, ecs_world: EcsWorld, make_task_role: MakeRole
) -> None:
    # Given a secret its stack made with keys of its own (and a stale token key)
    service = ecs_world.new_service()
    role = make_task_role(HOME_ACCOUNT, f"{service}-task", dataplane_role(service))
    ecs_world.make_secret(service, json.dumps({"owner": "team-a", "token": "", "nested": {"a": [1, 2]}}))
    task = ecs_world.start_task(service, role.arn)

    # When the task starts
    answer = provisioner(task_state_change(ecs_world.cluster_arn, task))

    # Then only `token` changed
    assert issued_services(answer) == [service]
    document = ecs_world.document(service)
    assert list(document) == ["owner", "token", "nested"]
    assert document["owner"] == "team-a"
    assert document["nested"] == {"a": [1, 2]}
    assert document["token"].count(".") == 2


def test_a_role_allowing_any_service_gets_a_token_for_the_tasks_service_and_the_tasks_own_tags(
    provisioner: Provisioner, ecs_world: EcsWorld, make_task_role: MakeRole, published: Callable[[], Any]
) -> None:
    # Given a role for mesh payments that names no service and workload, and a task tagged with both
    service = ecs_world.new_service()
    role = make_task_role(HOME_ACCOUNT, f"{service}-task", dataplane_role(None, mesh="payments"))
    ecs_world.make_secret(service)
    task = ecs_world.start_task(
        service, role.arn, tags={"kuma.io/service": service, "kuma.io/workload": "payments-api"}
    )

    # When the task starts
    answer = provisioner(task_state_change(ecs_world.cluster_arn, task))

    # Then the token binds the task's service and workload in the role's mesh
    (issued,) = answer["issued"]
    assert issued["mesh"] == "payments"
    token = ecs_world.document(service)["token"]
    validate_dataplane_token(
        token,
        dataplane_keys_for(published(), "payments"),
        now=time.time(),
        mesh="payments",
        name="a",
        tags={"kuma.io/service": [service]},
        workload="payments-api",
    )


# --- tasks that get none -------------------------------------------------------------------------------


def test_a_task_of_an_untagged_service_gets_none_and_nothing_is_created(
    provisioner: Provisioner, ecs_world: EcsWorld, demo_world: DemoWorld
) -> None:
    # Given a task whose service carries no kuma.io/service tag
    task = ecs_world.start_task(None, demo_world.role_arn(HOME_ACCOUNT, "frontend-task"), tags={"team": "x"})

    # When it starts
    answer = provisioner(task_state_change(ecs_world.cluster_arn, task))

    # Then it is skipped as untagged
    assert answer == {"tasks": 1, "issued": [], "skipped": [{"task": task, "reason": "untagged"}]}


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("no-role", "no_task_role"),
        ("role-in-unauthorized-account", "account_not_authorized"),
        ("role-in-another-authorized-account", "invalid_task_role"),
        ("not-a-role-arn", "invalid_task_role"),
        ("role-gone", "role_not_found"),
        ("role-without-kuma-tags", "invalid_role_tags"),
        ("ingress-role", "type_mismatch"),
        ("invalid-service-tag", "invalid_task_tags"),
    ],
)
def test_each_task_that_cannot_have_a_token_is_skipped_with_its_reason(
    case: str,
    reason: str,
    everything_logged: EverythingLogged,
    provisioner: Provisioner,
    ecs_world: EcsWorld,
    demo_world: DemoWorld,
) -> None:
    # Given a tagged task whose role (or tag) is wrong in the case's way, and its service's secret
    service = ecs_world.new_service()
    ecs_world.make_secret(service)
    roles = {
        "no-role": None,
        "role-in-unauthorized-account": f"arn:aws:iam::{OUTSIDER_ACCOUNT}:role/intruder-task",
        "role-in-another-authorized-account": demo_world.role_arn(PARTNER_ACCOUNT, "payments-task"),
        "not-a-role-arn": f"arn:aws:iam::{HOME_ACCOUNT}:user/someone",
        "role-gone": f"arn:aws:iam::{HOME_ACCOUNT}:role/{service}-never-made",
        "role-without-kuma-tags": demo_world.role_arn(HOME_ACCOUNT, "untagged-task"),
        "ingress-role": demo_world.role_arn(HOME_ACCOUNT, "ingress-task"),
        "invalid-service-tag": demo_world.role_arn(HOME_ACCOUNT, "frontend-task"),
    }
    tags = {"kuma.io/service": "bad service!"} if case == "invalid-service-tag" else None
    task = ecs_world.start_task(service, roles[case], tags=tags)
    everything_logged.discard()

    # When it starts
    answer = provisioner(task_state_change(ecs_world.cluster_arn, task))

    # Then it gets no token, the reason is in the summary and in a log line, and the secret is untouched
    assert answer["issued"] == []
    assert reasons(answer) == {task: reason}
    assert ecs_world.document(service) == {}
    logged = everything_logged.text().splitlines()
    assert any(line.startswith("task skipped ") and f"'reason': '{reason}'" in line for line in logged)


def test_a_role_that_disagrees_with_the_tag_gets_no_token_and_a_finding(
    provisioner: Provisioner,
    ecs_world: EcsWorld,
    make_task_role: MakeRole,
    findings_inbox: FindingsInbox,
) -> None:
    # Given a role for service A, and two tasks tagged service B running with it
    service_a, service_b = ecs_world.new_service("a"), ecs_world.new_service("b")
    role = make_task_role(HOME_ACCOUNT, f"{service_a}-task", dataplane_role(service_a))
    ecs_world.make_secret(service_b)
    tasks = [ecs_world.start_task(service_b, role.arn) for _ in range(2)]
    findings_inbox.delivered()

    # When a sweep meets them
    answer = provisioner(scheduled_sweep())

    # Then neither gets a token: the verifier's own reason, and B's secret stays empty
    mine = {task: reason for task, reason in reasons(answer).items() if task in tasks}
    assert mine == dict.fromkeys(tasks, "service_mismatch")
    assert service_b not in issued_services(answer)
    assert ecs_world.document(service_b) == {}
    # And one finding (not one per task) went out in the compliance function's format
    delivered = findings_inbox.delivered()
    events = [
        event["detail"]
        for event in delivered.events
        if event["detail"]["roleName"] == role.name
        and event["detail"]["rule"] == "provisioner-identity-mismatch"
    ]
    assert len(events) == 1
    (detail,) = events
    assert (detail["severity"], detail["source"]) == ("HIGH", "token-provisioner")
    assert (detail["account"], detail["roleArn"]) == (HOME_ACCOUNT, role.arn)
    assert detail["tagKeys"] == ["kuma.io/service"]
    assert service_b in detail["message"]
    assert "service_mismatch" in detail["message"]
    assert any(role.name in notification["body"] for notification in delivered.notifications)


def test_a_task_mesh_tag_that_disagrees_with_the_role_gets_none(
    provisioner: Provisioner, ecs_world: EcsWorld, tagged_service: tuple[str, TaskRole]
) -> None:
    service, role = tagged_service
    task = ecs_world.start_task(
        service, role.arn, tags={"kuma.io/service": service, "kuma.io/mesh": "payments"}
    )
    answer = provisioner(task_state_change(ecs_world.cluster_arn, task))
    assert reasons(answer) == {task: "mesh_mismatch"}


def test_the_role_a_task_runs_with_is_its_override_not_its_task_definitions(
    provisioner: Provisioner,
    ecs_world: EcsWorld,
    tagged_service: tuple[str, TaskRole],
    make_task_role: MakeRole,
) -> None:
    # Given a task whose task definition names the service's role but whose RunTask overrides it with another
    service, role = tagged_service
    other = make_task_role(HOME_ACCOUNT, f"{service}-other", dataplane_role("someone-else"))
    task = ecs_world.start_task(service, role.arn, role_override=other.arn)

    # When it starts
    answer = provisioner(task_state_change(ecs_world.cluster_arn, task))

    # Then it is judged by the role it runs with
    assert reasons(answer) == {task: "service_mismatch"}


def test_a_task_of_a_cluster_not_served_is_ignored_without_reading_it(
    provisioner: Provisioner,
    ecs_world: EcsWorld,
    provisioner_demo: ProvisionerDemo,
    tagged_service: tuple[str, TaskRole],
    aws_proxy: Any,
) -> None:
    # Given a tagged task in a cluster the provisioner does not serve
    service, role = tagged_service
    task = ecs_world.start_task(service, role.arn, cluster=provisioner_demo.other_cluster_arn)
    provisioner.configure(AWS_ENDPOINT_URL_ECS=aws_proxy.url, AWS_ENDPOINT_URL_SECRETS_MANAGER=aws_proxy.url)

    # When its start is reported (and when the served cluster is swept)
    answer = provisioner(task_state_change(provisioner_demo.other_cluster_arn, task))

    # Then it is skipped, and neither ECS nor the secret was asked anything
    assert reasons(answer) == {task: "cluster_not_served"}
    assert aws_proxy.requests == []
    assert task not in reasons(provisioner(scheduled_sweep()))
    assert ecs_world.document(service) == {}


def test_a_stopping_task_and_one_ecs_no_longer_knows_get_none(
    provisioner: Provisioner, ecs_world: EcsWorld, tagged_service: tuple[str, TaskRole]
) -> None:
    service, role = tagged_service
    task = ecs_world.start_task(service, role.arn)
    ecs_world.stop_task(task)
    gone = f"{ecs_world.cluster_arn.replace(':cluster/', ':task/')}/{uuid.uuid4().hex}"

    assert reasons(provisioner(task_state_change(ecs_world.cluster_arn, task))) == {task: "task_stopping"}
    assert reasons(provisioner(task_state_change(ecs_world.cluster_arn, gone))) == {gone: "task_not_found"}
    assert ecs_world.document(service) == {}


def test_a_missing_secret_is_never_created_and_a_value_not_a_json_object_never_overwritten(
    provisioner: Provisioner, ecs_world: EcsWorld, make_task_role: MakeRole
) -> None:
    # Given one service without a secret, one whose secret holds plain text, one whose secret has no value
    missing, text, empty = (ecs_world.new_service(kind) for kind in ("missing", "text", "empty"))
    ecs_world.make_secret(text, "not json")
    ecs_world.make_secret(empty, None)
    tasks = {}
    for service in (missing, text, empty):
        role = make_task_role(HOME_ACCOUNT, f"{service}-task", dataplane_role(service))
        tasks[service] = ecs_world.start_task(service, role.arn)

    # When a sweep meets them
    answer = reasons(provisioner(scheduled_sweep()))

    # Then each is reported, and nothing is created or overwritten
    assert answer[tasks[missing]] == "secret_missing"
    assert answer[tasks[text]] == "secret_not_json_object"
    assert answer[tasks[empty]] == "secret_missing"
    assert not ecs_world.secret_exists(missing)
    assert ecs_world.raw_value(text) == "not json"


def test_tasks_of_one_service_that_disagree_on_the_mesh_get_none(
    provisioner: Provisioner, ecs_world: EcsWorld, make_task_role: MakeRole
) -> None:
    # Given two tasks of one service, each with a role that agrees with its own tags, in two meshes
    service = ecs_world.new_service()
    ecs_world.make_secret(service)
    in_default = make_task_role(HOME_ACCOUNT, f"{service}-d", dataplane_role(service))
    in_payments = make_task_role(HOME_ACCOUNT, f"{service}-p", dataplane_role(service, mesh="payments"))
    tasks = [ecs_world.start_task(service, in_default.arn), ecs_world.start_task(service, in_payments.arn)]

    # When a sweep meets both: one secret cannot hold a token for both
    answer = reasons(provisioner(scheduled_sweep()))

    # Then neither gets one
    assert {answer[task] for task in tasks} == {"conflicting_identities"}
    assert ecs_world.document(service) == {}


def test_a_mesh_the_stack_does_not_serve_gets_none(
    provisioner: Provisioner, ecs_world: EcsWorld, make_task_role: MakeRole
) -> None:
    service = ecs_world.new_service()
    ecs_world.make_secret(service)
    role = make_task_role(HOME_ACCOUNT, f"{service}-task", dataplane_role(service, mesh="edge"))
    task = ecs_world.start_task(service, role.arn)
    assert reasons(provisioner(task_state_change(ecs_world.cluster_arn, task))) == {task: "mesh_not_served"}


# --- a token already there -----------------------------------------------------------------------------


def test_a_second_delivery_of_the_same_event_does_not_reissue(
    provisioner: Provisioner, ecs_world: EcsWorld, tagged_service: tuple[str, TaskRole]
) -> None:
    # Given a task start that was handled
    service, role = tagged_service
    task = ecs_world.start_task(service, role.arn)
    event = task_state_change(ecs_world.cluster_arn, task)
    first = provisioner(event)
    token, versions = ecs_world.document(service)["token"], ecs_world.versions(service)

    # When EventBridge delivers the same event again (to a new container)
    again = provisioner(event)

    # Then nothing is issued or put: the secret already holds a good token
    assert len(first["issued"]) == 1
    assert again == {"tasks": 1, "issued": [], "skipped": [{"task": task, "reason": "token_valid"}]}
    assert ecs_world.document(service)["token"] == token
    assert ecs_world.versions(service) == versions


@pytest.mark.parametrize(
    "stale",
    ["expired", "expiring", "unknown-key", "other-service", "workload-added", "tampered", "garbage"],
)
def test_a_token_no_longer_good_is_replaced(
    stale: str,
    provisioner: Provisioner,
    ecs_world: EcsWorld,
    tagged_service: tuple[str, TaskRole],
    token_keys: TokenKeys,
    published: Callable[[], dict[str, Any]],
) -> None:
    # Given a service whose secret holds a token that is no longer good in the case's way
    service, role = tagged_service
    pem = token_keys.pem
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    good = forged(pem, service=service, expires_in=20 * 3600)
    old = {
        "expired": forged(pem, service=service, expires_in=-60),
        "expiring": forged(pem, service=service, expires_in=3600),  # under the 8 h margin
        "unknown-key": forged(other_key.decode(), kid="7", service=service, expires_in=20 * 3600),
        "other-service": forged(pem, service="someone-else", expires_in=20 * 3600),
        "workload-added": forged(pem, service=service, expires_in=20 * 3600, Workload="w"),
        "tampered": good[:-8] + ("A" * 8 if not good.endswith("A" * 8) else "B" * 8),
        "garbage": "not-a-token",
    }[stale]
    ecs_world.put_value(service, json.dumps({"token": old, "keep": 1}))
    task = ecs_world.start_task(service, role.arn)

    # When the task starts
    answer = provisioner(task_state_change(ecs_world.cluster_arn, task))

    # Then a new, good token replaces it, and the other keys stay
    assert issued_services(answer) == [service]
    document = ecs_world.document(service)
    assert document["keep"] == 1
    assert document["token"] != old
    validate_dataplane_token(
        document["token"],
        dataplane_keys_for(published(), "default"),
        now=time.time(),
        mesh="default",
        name="n",
        tags={"kuma.io/service": [service]},
    )


def test_a_good_token_signed_by_an_older_published_key_is_kept(
    provisioner: Provisioner, ecs_world: EcsWorld, tagged_service: tuple[str, TaskRole], token_keys: TokenKeys
) -> None:
    # Given a token signed by kid 1 (the PEM key, still published beside the KMS key that signs now)
    service, role = tagged_service
    old = forged(token_keys.pem, service=service, expires_in=20 * 3600)
    ecs_world.put_value(service, json.dumps({"token": old}))
    task = ecs_world.start_task(service, role.arn)

    # When the task starts, it is kept: a rotation does not re-issue every token
    answer = provisioner(task_state_change(ecs_world.cluster_arn, task))
    assert reasons(answer) == {task: "token_valid"}
    assert ecs_world.document(service)["token"] == old


def test_a_revoked_token_is_replaced(
    provisioner: Provisioner,
    ecs_world: EcsWorld,
    tagged_service: tuple[str, TaskRole],
    token_keys: TokenKeys,
    admin_client: ClientFactory,
) -> None:
    # Given a service whose token was issued, then revoked (kuma-iam tokens revoke)
    service, role = tagged_service
    task = ecs_world.start_task(service, role.arn)
    (first,) = provisioner(task_state_change(ecs_world.cluster_arn, task))["issued"]
    revocations = RevocationTable(admin_client(HOME_ACCOUNT, "dynamodb"), token_keys.revocation_table)
    revocations.revoke(mesh_scope("default"), [first["jti"]], revoked_by="test", now=datetime.now(UTC))

    # When the next task of the service starts
    answer = provisioner(task_state_change(ecs_world.cluster_arn, ecs_world.start_task(service, role.arn)))

    # Then the revoked token is replaced by a new one
    (second,) = answer["issued"]
    assert second["jti"] != first["jti"]
    assert ecs_world.document(service)["token"].count(".") == 2


def test_the_refresh_margin_and_lifetime_come_from_the_settings(
    provisioner: Provisioner, ecs_world: EcsWorld, tagged_service: tuple[str, TaskRole]
) -> None:
    # Given a token issued for 2 hours
    service, role = tagged_service
    task = ecs_world.start_task(service, role.arn)
    provisioner.configure(KUMA_IAM_TOKEN_VALID_FOR="2h", KUMA_IAM_TOKEN_REFRESH_MARGIN="30m")
    asked_at = datetime.now(UTC).replace(microsecond=0)
    (first,) = provisioner(task_state_change(ecs_world.cluster_arn, task))["issued"]
    answered_at = datetime.now(UTC)
    expires = datetime.strptime(first["expiresAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    # (2 hours from a moment while the invocation ran, however long a loaded machine made it)
    assert asked_at + timedelta(hours=2) <= expires <= answered_at + timedelta(hours=2)

    # When the margin grows past what it has left, the next event replaces it
    provisioner.configure(KUMA_IAM_TOKEN_VALID_FOR="4h", KUMA_IAM_TOKEN_REFRESH_MARGIN="3h")
    (second,) = provisioner(task_state_change(ecs_world.cluster_arn, task))["issued"]
    assert second["jti"] != first["jti"]


# --- many tasks, one service ---------------------------------------------------------------------------


def test_a_sweep_makes_one_put_for_many_tasks_of_one_service(
    provisioner: Provisioner,
    ecs_world: EcsWorld,
    tagged_service: tuple[str, TaskRole],
    aws_proxy: Any,
) -> None:
    # Given 50 tasks of one service, started at once
    service, role = tagged_service
    tasks = [ecs_world.start_task(service, role.arn) for _ in range(50)]
    provisioner.configure(
        **{f"AWS_ENDPOINT_URL_{name}": aws_proxy.url for name in ("ECS", "SECRETS_MANAGER", "KMS", "IAM")}
    )

    # When a sweep meets them
    answer = provisioner(scheduled_sweep())

    # Then the service got one token, with one put; the other 49 found it there
    assert issued_services(answer).count(service) == 1
    mine = {task: reason for task, reason in reasons(answer).items() if task in tasks}
    assert mine == {}  # its tasks are covered by the one token issued
    puts = [request for request in aws_proxy.requests if request.action == "PutSecretValue"]
    assert len([put for put in puts if ecs_world.secret_name(service) in put.body.decode()]) == 1
    assert len(ecs_world.versions(service)) == 2  # the stack's `{}` and the provisioner's
