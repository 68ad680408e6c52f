"""Every decision of the real verifier handler on the embedded AWS, from tokens signed by real credentials.

Given/When/Then: a token signed with task-role credentials that moto issued (SigV4 and IAM policies checked),
a claimed Dataplane, then the handler's answer — its status and reason code, never just "not allowed".
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import timedelta
from types import ModuleType
from typing import Any

import boto3
import pytest

from kuma_iam.errors import ConfigError
from kuma_iam.identity.token import decode_token
from kuma_iam.verify import VerifyRequest
from kuma_iam_cli.local.events import VERIFIER_CASES, VerifierCase, sign_case_token
from kuma_iam_cli.local.expected import expected_answers, mismatches
from kuma_iam_cli.local.seed import HOME_ACCOUNT, OUTSIDER_ACCOUNT, PARTNER_ACCOUNT, DemoWorld, recreate_role
from support.aws_clients import ClientFactory
from support.clock import ManualClock
from support.fake_aws import ByAction, Delayed, FakeAws, PassThrough, StandInSts
from support.project_files import REPO
from support.token_mutations import signing_time
from support.verifier_harness import TokenFactory, Verifier

pytestmark = pytest.mark.integration


def claim(
    mesh: str | None = "default",
    *services: str,
    type: str = "dataplane",
    workload: str | None = None,
    name: str = "dp-01",
) -> dict[str, Any]:
    """The Dataplane a control plane asks about."""
    spec: dict[str, Any] = {"type": type, "mesh": mesh, "name": name, "workload": workload}
    if services:
        spec["tags"] = {"kuma.io/service": list(services)}
    return spec


BACKEND_CLAIM = claim("default", "backend", name="backend-01")


def role_id(admin_client: ClientFactory, account: str, name: str) -> str:
    return str(admin_client(account, "iam").get_role(RoleName=name)["Role"]["RoleId"])


# --- The sample cases (events/verifier/*.json, the commands `serve` prints) ------------------------------


@pytest.mark.parametrize("case", VERIFIER_CASES, ids=lambda case: case.name)
def test_each_sample_case_gets_its_documented_answer(
    verify: Verifier, demo_world: DemoWorld, server_id: str, case: VerifierCase
) -> None:
    # Given a token signed as the case says (a forged one: real key id and session token, wrong secret)
    token = sign_case_token(demo_world, case, server_id=server_id)

    # When the control plane asks about the case's Dataplane
    answer = verify(token, case.dataplane)

    # Then the answer is the one events/verifier/expected.json gives
    expected = expected_answers(REPO / "events")[f"verifier/{case.name}"]
    assert not mismatches(expected, {"statusCode": answer.status, "body": answer.body}), answer.body


# --- Allowed: who the caller is, as IAM and STS say ------------------------------------------------------


def test_allow_reports_the_role_as_iam_knows_it_with_its_path_and_role_id(
    verify: Verifier, sign_token: TokenFactory, admin_client: ClientFactory
) -> None:
    # Given a backend task's token (its role lives under the IAM path /ecs/)
    token = sign_token(HOME_ACCOUNT, "backend-task")

    # When it claims to be a backend Dataplane in the default mesh
    answer = verify(token, BACKEND_CLAIM)

    # Then the whole identity comes back: the ARN with its path and the RoleId from IAM, nulls included
    assert answer.status == 200
    assert answer.body == {
        "allowed": True,
        "identity": {
            "account": HOME_ACCOUNT,
            "arn": f"arn:aws:iam::{HOME_ACCOUNT}:role/ecs/backend-task",
            "roleId": role_id(admin_client, HOME_ACCOUNT, "backend-task"),
            "roleName": "backend-task",
            "sessionArn": f"arn:aws:sts::{HOME_ACCOUNT}:assumed-role/backend-task/ecs-task",
            "sessionName": "ecs-task",
            "type": "dataplane",
            "mesh": "default",
            "service": "backend",
            "workload": None,
        },
    }


def test_vault_encoded_token_is_allowed_like_the_compact_one(
    verify: Verifier, sign_token: TokenFactory
) -> None:
    compact = verify(sign_token(HOME_ACCOUNT, "backend-task"), BACKEND_CLAIM)

    vault = verify(sign_token(HOME_ACCOUNT, "backend-task", encoding="vault"), BACKEND_CLAIM)

    assert (vault.status, vault.reason) == (200, None)
    assert vault.body == compact.body


def test_second_authorized_account_is_read_through_its_reader_role(
    verify: Verifier,
    reconfigure: Callable[..., None],
    aws_proxy: FakeAws,
    sign_token: TokenFactory,
    admin_client: ClientFactory,
) -> None:
    # Given the verifier's AWS calls pass a recording proxy, and a partner account's payments task
    reconfigure(AWS_ENDPOINT_URL_STS=aws_proxy.url, AWS_ENDPOINT_URL_IAM=aws_proxy.url)
    token = sign_token(PARTNER_ACCOUNT, "payments-task")

    # When it claims to be payments in the payments mesh
    answer = verify(token, claim("payments", "payments"))

    # Then it is allowed with the partner's role, path and RoleId...
    assert (answer.status, answer.reason) == (200, None)
    identity = answer.body["identity"]
    assert identity["account"] == PARTNER_ACCOUNT
    assert identity["arn"] == f"arn:aws:iam::{PARTNER_ACCOUNT}:role/ecs/payments/payments-task"
    assert identity["roleId"] == role_id(admin_client, PARTNER_ACCOUNT, "payments-task")
    assert (identity["mesh"], identity["service"]) == ("payments", "payments")
    # ...read with the partner's read-only role, which the verifier assumed
    assume = [call for call in aws_proxy.requests if call.action == "AssumeRole"]
    assert [call.params["RoleArn"] for call in assume] == [
        f"arn:aws:iam::{PARTNER_ACCOUNT}:role/kuma-iam-reader"
    ]
    assert aws_proxy.count_by_action()["GetRole"] == 1


@pytest.mark.parametrize("proxy_type", ["ingress", "egress"])
def test_ingress_and_egress_roles_are_allowed_without_a_mesh(
    verify: Verifier, sign_token: TokenFactory, proxy_type: str
) -> None:
    token = sign_token(HOME_ACCOUNT, f"{proxy_type}-task")

    answer = verify(token, claim(None, type=proxy_type, name=f"{proxy_type}-01"))

    assert (answer.status, answer.reason) == (200, None)
    identity = answer.body["identity"]
    assert (identity["type"], identity["mesh"], identity["service"]) == (proxy_type, None, None)


def test_workload_tagged_role_is_allowed_as_its_workload(verify: Verifier, sign_token: TokenFactory) -> None:
    answer = verify(sign_token(HOME_ACCOUNT, "worker-task"), claim("default", "worker", workload="worker"))

    assert (answer.status, answer.reason) == (200, None)
    assert answer.body["identity"]["workload"] == "worker"


def test_role_without_a_service_tag_may_claim_any_service(verify: Verifier, sign_token: TokenFactory) -> None:
    answer = verify(sign_token(HOME_ACCOUNT, "frontend-task"), claim("default", "frontend", "web"))

    assert (answer.status, answer.reason) == (200, None)
    assert answer.body["identity"]["service"] is None


def test_role_without_a_workload_tag_may_claim_any_workload(
    verify: Verifier, sign_token: TokenFactory
) -> None:
    answer = verify(sign_token(HOME_ACCOUNT, "backend-task"), claim("default", "backend", workload="nightly"))

    assert (answer.status, answer.reason) == (200, None)
    assert answer.body["identity"]["workload"] is None


@pytest.mark.parametrize(
    ("role", "reason"),
    [("frontend-task", None), ("ingress-task", "type_mismatch")],
    ids=["dataplane-role", "ingress-role"],
)
def test_claim_without_a_type_is_taken_as_a_dataplane(
    verify: Verifier, sign_token: TokenFactory, role: str, reason: str | None
) -> None:
    untyped = {"mesh": "default", "name": "dp-01"}

    answer = verify(sign_token(HOME_ACCOUNT, role), untyped)

    assert (answer.status, answer.reason) == (200, reason)


def test_dataplane_claim_without_a_mesh_is_an_invalid_request(
    verify: Verifier, sign_token: TokenFactory
) -> None:
    answer = verify(sign_token(HOME_ACCOUNT, "backend-task"), claim(None, "backend"))

    assert (answer.status, answer.reason) == (400, "invalid_request")
    assert "mesh is required for a dataplane" in answer.body["message"]


def test_token_signed_for_another_region_goes_to_that_regions_sts(
    verify: Verifier, reconfigure: Callable[..., None], aws_proxy: FakeAws, sign_token: TokenFactory
) -> None:
    # Given a token signed for STS in eu-west-1
    reconfigure(AWS_ENDPOINT_URL_STS=aws_proxy.url)
    token = sign_token(HOME_ACCOUNT, "backend-task", region="eu-west-1")

    answer = verify(token, BACKEND_CLAIM)

    # Then it is forwarded under the Host it was signed for, and allowed
    assert (answer.status, answer.reason) == (200, None)
    forwarded = [call.host for call in aws_proxy.requests if call.host.endswith(".amazonaws.com")]
    assert forwarded == ["sts.eu-west-1.amazonaws.com"]


# --- The session name is the caller's choice: reported, never identity -----------------------------------


def test_session_name_is_reported_but_never_changes_the_identity(
    verify: Verifier, sign_token: TokenFactory
) -> None:
    # Given two sessions of one role, one of them named after another role
    plain = verify(sign_token(HOME_ACCOUNT, "backend-task", session_name="ecs-task"), BACKEND_CLAIM)
    posing = verify(sign_token(HOME_ACCOUNT, "backend-task", session_name="payments-task"), BACKEND_CLAIM)

    # Then both get the same decision and identity; only the session fields differ
    assert (plain.status, plain.reason, posing.status, posing.reason) == (200, None, 200, None)
    session_fields = {"sessionName", "sessionArn"}
    assert {k: v for k, v in posing.body["identity"].items() if k not in session_fields} == {
        k: v for k, v in plain.body["identity"].items() if k not in session_fields
    }
    assert posing.body["identity"]["sessionName"] == "payments-task"
    assert posing.body["identity"]["sessionArn"].endswith(":assumed-role/backend-task/payments-task")


def test_session_named_like_the_claimed_service_does_not_grant_it(
    verify: Verifier, sign_token: TokenFactory
) -> None:
    token = sign_token(HOME_ACCOUNT, "worker-task", session_name="backend")

    answer = verify(token, claim("default", "backend", workload="worker"))

    assert (answer.status, answer.reason) == (200, "service_mismatch")


# --- Denied: one reason code per rule --------------------------------------------------------------------


def test_signature_made_with_a_wrong_secret_is_sts_rejected(
    verify: Verifier,
    sign_with: TokenFactory,
    credentials_for: Callable[..., dict[str, str]],
    demo_world: DemoWorld,
) -> None:
    # Given real task-role key id and session token, signed with a guessed secret
    issued = credentials_for(demo_world.role_arn(HOME_ACCOUNT, "backend-task"))
    token = sign_with({**issued, "AWS_SECRET_ACCESS_KEY": "guessed-secret"})

    answer = verify(token, BACKEND_CLAIM)

    assert (answer.status, answer.reason) == (200, "sts_rejected")
    assert "SignatureDoesNotMatch" in answer.body["message"]


def test_plain_iam_user_is_an_unsupported_principal(
    verify: Verifier, sign_with: TokenFactory, demo_world: DemoWorld
) -> None:
    user = demo_world.ci_user
    token = sign_with(
        {"AWS_ACCESS_KEY_ID": user.access_key_id, "AWS_SECRET_ACCESS_KEY": user.secret_access_key}
    )

    answer = verify(token, claim("default"))

    assert (answer.status, answer.reason) == (200, "unsupported_principal")
    assert "'user'" in answer.body["message"]


def test_unauthorized_account_is_denied_without_any_call_into_it(
    verify: Verifier, reconfigure: Callable[..., None], aws_proxy: FakeAws, sign_token: TokenFactory
) -> None:
    # Given a correctly tagged role in the outsider account (which has no reader role for us at all)
    reconfigure(AWS_ENDPOINT_URL_STS=aws_proxy.url, AWS_ENDPOINT_URL_IAM=aws_proxy.url)
    token = sign_token(OUTSIDER_ACCOUNT, "intruder-task")

    answer = verify(token, BACKEND_CLAIM)

    # Then it is denied on the account alone: only the identity token itself reached AWS
    assert (answer.status, answer.reason) == (200, "account_not_authorized")
    assert OUTSIDER_ACCOUNT in answer.body["message"]
    assert [(call.action, call.host) for call in aws_proxy.requests] == [
        ("GetCallerIdentity", "sts.us-east-1.amazonaws.com")
    ]


def test_role_deleted_after_its_credentials_were_issued_is_role_not_found(
    verify: Verifier,
    make_task_role: Callable[..., Any],
    credentials_for: Callable[..., dict[str, str]],
    sign_with: TokenFactory,
    admin_client: ClientFactory,
) -> None:
    # Given a task's credentials, and then its role deleted (moto still answers for the old session)
    role = make_task_role(
        HOME_ACCOUNT, "short-lived-task", {"kuma.io/type": "dataplane", "kuma.io/mesh": "default"}
    )
    token = sign_with(credentials_for(role.arn))
    admin_client(HOME_ACCOUNT, "iam").delete_role(RoleName=role.name)

    answer = verify(token, claim("default"))

    assert (answer.status, answer.reason) == (200, "role_not_found")
    assert "short-lived-task" in answer.body["message"]


@pytest.mark.parametrize(
    "restriction",
    [
        {"Kuma.io/Service": "backend", "KUMA.IO/WORKLOAD": "backend"},
        {"kuma.io/service ": "backend"},
        {"Kuma.io/Type": "dataplane"},
    ],
    ids=["restrictions-in-other-case", "trailing-space", "type-in-other-case"],
)
def test_role_with_a_kuma_key_in_another_spelling_gets_no_identity(
    verify: Verifier,
    make_task_role: Callable[..., Any],
    credentials_for: Callable[..., dict[str, str]],
    sign_with: TokenFactory,
    restriction: dict[str, str],
) -> None:
    # Given a role that IAM reads as restricted (tag keys are case-insensitive there) but whose restriction
    # is not spelled as the exact lowercase kuma.io key
    tags = {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", **restriction}
    if "Kuma.io/Type" in restriction:
        del tags["kuma.io/type"]
    role = make_task_role(HOME_ACCOUNT, "miscased-task", tags)

    # When its task claims any service and workload
    answer = verify(sign_with(credentials_for(role.arn)), claim("default", "anything", workload="anything"))

    # Then it gets no identity at all, and the message names the offending key
    assert (answer.status, answer.reason) == (200, "invalid_role_tags")
    assert "kuma-key-noncanonical" in answer.body["message"]
    assert repr(next(iter(restriction)))[:20] in answer.body["message"]


def test_role_restricted_to_a_service_refuses_a_claim_without_one(
    verify: Verifier, sign_token: TokenFactory
) -> None:
    answer = verify(sign_token(HOME_ACCOUNT, "backend-task"), {"mesh": "default", "name": "dp-01"})

    assert (answer.status, answer.reason) == (200, "service_mismatch")
    assert "must carry kuma.io/service" in answer.body["message"]


@pytest.fixture
def sts_vouching_for(
    aws_proxy: FakeAws, demo_world: DemoWorld, reconfigure: Callable[..., None]
) -> Callable[[str, str], None]:
    """sts_vouching_for(role, role_id): STS vouches for an ecs-task session of that role with that RoleId,
    as AWS does for credentials issued before the role was deleted or re-created (moto cannot: it reports
    the current RoleId, or a new random one for a deleted role). IAM stays moto, behind `aws_proxy`."""

    def vouch(role: str, role_id: str) -> None:
        aws_proxy.script(
            then=StandInSts(
                account=HOME_ACCOUNT,
                arn=f"arn:aws:sts::{HOME_ACCOUNT}:assumed-role/{role}/ecs-task",
                user_id=f"{role_id}:ecs-task",
                otherwise=PassThrough(demo_world.endpoint_url),
            )
        )
        reconfigure(AWS_ENDPOINT_URL_STS=aws_proxy.url, AWS_ENDPOINT_URL_IAM=aws_proxy.url)

    return vouch


def test_session_of_a_since_recreated_role_is_role_mismatch(
    verify: Verifier,
    sts_vouching_for: Callable[[str, str], None],
    aws_proxy: FakeAws,
    sign_token: TokenFactory,
    admin_client: ClientFactory,
) -> None:
    # Given STS vouching for a backend-task session whose RoleId is not the role's current one
    stale = "AROASTALEROLEID0000001"
    assert stale != role_id(admin_client, HOME_ACCOUNT, "backend-task")
    sts_vouching_for("backend-task", stale)

    answer = verify(sign_token(HOME_ACCOUNT, "backend-task"), BACKEND_CLAIM)

    # Then IAM was asked (the cache holds nothing to compare) and the RoleIds disagree
    assert (answer.status, answer.reason) == (200, "role_mismatch")
    assert aws_proxy.count_by_action()["GetRole"] == 1


@pytest.mark.parametrize(
    ("role", "stale_role_id", "reason"),
    [
        ("backend-task", "AROASTALEROLEID0000001", "role_mismatch"),
        ("deleted-task", "AROADELETEDROLE000001", "role_not_found"),
    ],
    ids=["recreated-role", "deleted-role"],
)
def test_old_sessions_are_denied_from_the_cache_after_iam_contradicted_them(
    role: str,
    stale_role_id: str,
    reason: str,
    verify: Verifier,
    sts_vouching_for: Callable[[str, str], None],
    aws_proxy: FakeAws,
    sign_token: TokenFactory,
) -> None:
    # Given STS vouching for sessions with a RoleId IAM does not have (re-created role, or no role at all)
    sts_vouching_for(role, stale_role_id)

    # When three such tokens arrive within the cache TTL
    answers = [verify(sign_token(HOME_ACCOUNT, "backend-task"), BACKEND_CLAIM) for _ in range(3)]

    # Then all are denied alike, and IAM was asked once: a stream of them cannot spend the IAM quota
    assert [(answer.status, answer.reason) for answer in answers] == [(200, reason)] * 3
    assert aws_proxy.count_by_action()["GetRole"] == 1


def test_session_arn_spelling_the_role_name_in_another_case_is_that_role(
    verify: Verifier,
    aws_proxy: FakeAws,
    demo_world: DemoWorld,
    reconfigure: Callable[..., None],
    sign_token: TokenFactory,
) -> None:
    # Given IAM's own answer for backend-task (moto's, recorded: moto matches names by exact case, IAM does
    # not and answers any spelling with the role's own)
    reconfigure(AWS_ENDPOINT_URL_STS=aws_proxy.url, AWS_ENDPOINT_URL_IAM=aws_proxy.url)
    admin = demo_world.admins[HOME_ACCOUNT]
    admin_via_proxy = boto3.client(  # type: ignore[call-overload]
        "iam",
        region_name=demo_world.region,
        endpoint_url=aws_proxy.url,
        aws_access_key_id=admin.access_key_id,
        aws_secret_access_key=admin.secret_access_key,
    )
    real_id = admin_via_proxy.get_role(RoleName="backend-task")["Role"]["RoleId"]
    (iam_answer,) = [answer for request, answer in aws_proxy.answers if request.action == "GetRole"]
    moto = PassThrough(demo_world.endpoint_url)

    decisions = []
    for spelling in ("BACKEND-TASK", "Backend-Task"):
        # And STS vouching for a session whose ARN spells the role name so
        aws_proxy.script(
            then=StandInSts(
                account=HOME_ACCOUNT,
                arn=f"arn:aws:sts::{HOME_ACCOUNT}:assumed-role/{spelling}/ecs-task",
                user_id=f"{real_id}:ecs-task",
                otherwise=ByAction({"GetRole": iam_answer}, default=moto),
            )
        )
        # When its token is verified
        answer = verify(sign_token(HOME_ACCOUNT, "backend-task"), BACKEND_CLAIM)
        asked = [
            request.params.get("RoleName") for request in aws_proxy.requests if request.action == "GetRole"
        ]
        decisions.append((answer, asked))

    # Then it is that role (the RoleId agrees), reported in IAM's spelling, with the session as STS named it
    first, second = decisions
    assert first[0].body.get("allowed") is True, first[0].body
    assert first[0].body["identity"]["roleName"] == "backend-task"
    assert first[0].body["identity"]["roleId"] == real_id
    assert first[0].body["identity"]["sessionArn"].endswith(":assumed-role/BACKEND-TASK/ecs-task")
    assert first[1] == ["BACKEND-TASK"]
    # And another spelling of the same name is answered from the same cache entry, without asking IAM
    assert second[0].body.get("allowed") is True, second[0].body
    assert second[0].body["identity"]["roleName"] == "backend-task"
    assert second[1] == []


@pytest.mark.parametrize(
    ("role", "rule"),
    [
        ("bad-type-task", "kuma-type-invalid"),
        ("no-mesh-task", "kuma-mesh-missing"),
        ("untagged-task", "kuma-type-missing"),
    ],
)
def test_role_with_invalid_kuma_tags_is_denied_naming_the_rule(
    verify: Verifier, sign_token: TokenFactory, role: str, rule: str
) -> None:
    answer = verify(sign_token(HOME_ACCOUNT, role), claim("default"))

    assert (answer.status, answer.reason) == (200, "invalid_role_tags")
    assert rule in answer.body["message"]


CLAIM_MISMATCHES = [
    # (test id, signer (account, role), claimed Dataplane, reason)
    ("ingress-role-claims-dataplane", (HOME_ACCOUNT, "ingress-task"), claim("default"), "type_mismatch"),
    (
        "dataplane-role-claims-ingress",
        (HOME_ACCOUNT, "backend-task"),
        claim(None, type="ingress"),
        "type_mismatch",
    ),
    (
        "egress-role-claims-ingress",
        (HOME_ACCOUNT, "egress-task"),
        claim(None, type="ingress"),
        "type_mismatch",
    ),
    ("other-mesh", (HOME_ACCOUNT, "backend-task"), claim("payments", "backend"), "mesh_mismatch"),
    ("partner-role-claims-home-mesh", (PARTNER_ACCOUNT, "payments-task"), claim("default"), "mesh_mismatch"),
    ("other-service", (HOME_ACCOUNT, "backend-task"), claim("default", "frontend"), "service_mismatch"),
    (
        "one-of-two-services-differs",
        (HOME_ACCOUNT, "backend-task"),
        claim("default", "backend", "frontend"),
        "service_mismatch",
    ),
    (
        "differing-service-first",
        (HOME_ACCOUNT, "backend-task"),
        claim("default", "admin", "backend"),
        "service_mismatch",
    ),
    (
        "other-workload",
        (HOME_ACCOUNT, "worker-task"),
        claim("default", "worker", workload="billing"),
        "workload_mismatch",
    ),
    ("no-workload-claimed", (HOME_ACCOUNT, "worker-task"), claim("default", "worker"), "workload_mismatch"),
]


@pytest.mark.parametrize(
    ("signer", "dataplane", "reason"),
    [case[1:] for case in CLAIM_MISMATCHES],
    ids=[case[0] for case in CLAIM_MISMATCHES],
)
def test_claim_beyond_the_roles_tags_is_denied_with_its_reason(
    verify: Verifier,
    sign_token: TokenFactory,
    signer: tuple[str, str],
    dataplane: dict[str, Any],
    reason: str,
) -> None:
    answer = verify(sign_token(*signer), dataplane)

    assert (answer.status, answer.reason) == (200, reason)
    assert answer.body["allowed"] is False
    assert "identity" not in answer.body


def test_same_service_claimed_twice_is_allowed(verify: Verifier, sign_token: TokenFactory) -> None:
    answer = verify(sign_token(HOME_ACCOUNT, "backend-task"), claim("default", "backend", "backend"))

    assert (answer.status, answer.reason) == (200, None)


@pytest.mark.parametrize(
    ("verifier_time", "reason"),
    [
        (timedelta(seconds=900), None),  # exactly the 900 s default maximum age
        (timedelta(seconds=901), "token_expired"),
        (timedelta(seconds=-300), None),  # signed exactly the 300 s default clock skew ahead
        (timedelta(seconds=-301), "token_expired"),
    ],
    ids=["at-max-age", "past-max-age", "at-max-skew", "beyond-max-skew"],
)
def test_token_is_honoured_exactly_within_its_time_window(
    verify: Verifier,
    verifier_clock: ManualClock,
    sign_token: TokenFactory,
    verifier_time: timedelta,
    reason: str | None,
) -> None:
    # Given a token, and a verifier whose clock reads its signing time (X-Amz-Date) moved by `verifier_time`
    token = sign_token(HOME_ACCOUNT, "backend-task")
    verifier_clock.set(signing_time(decode_token(token)) + verifier_time)

    answer = verify(token, BACKEND_CLAIM)

    assert (answer.status, answer.reason) == (200, reason)


def test_second_use_of_a_token_is_replayed_when_the_replay_table_is_on(
    verify: Verifier, reconfigure: Callable[..., None], replay_table: str, sign_token: TokenFactory
) -> None:
    # Given the replay table is on, and one token
    reconfigure(KUMA_IAM_REPLAY_TABLE=replay_table)
    token = sign_token(HOME_ACCOUNT, "backend-task")

    first = verify(token, BACKEND_CLAIM)
    second = verify(token, BACKEND_CLAIM)
    fresh = verify(sign_token(HOME_ACCOUNT, "backend-task"), BACKEND_CLAIM)

    # Then the first use is allowed, the same token again is replayed, a newly signed one is allowed
    assert (first.status, first.reason) == (200, None)
    assert (second.status, second.reason) == (200, "replayed")
    assert (fresh.status, fresh.reason) == (200, None)


# --- The role cache --------------------------------------------------------------------------------------


def test_second_verification_of_a_role_is_answered_from_the_cache(
    verify: Verifier, reconfigure: Callable[..., None], aws_proxy: FakeAws, sign_token: TokenFactory
) -> None:
    reconfigure(AWS_ENDPOINT_URL_STS=aws_proxy.url, AWS_ENDPOINT_URL_IAM=aws_proxy.url)

    first = verify(sign_token(HOME_ACCOUNT, "backend-task", session_name="task-1"), BACKEND_CLAIM)
    second = verify(sign_token(HOME_ACCOUNT, "backend-task", session_name="task-2"), BACKEND_CLAIM)

    # Then both are allowed, and IAM was read once (each token still went to STS)
    assert (first.status, first.reason, second.status, second.reason) == (200, None, 200, None)
    assert aws_proxy.count_by_action()["GetRole"] == 1
    assert [call.host for call in aws_proxy.requests if call.action == "GetCallerIdentity"].count(
        "sts.us-east-1.amazonaws.com"
    ) == 2


def test_concurrent_misses_for_one_role_make_exactly_one_iam_call(
    verify: Verifier,
    reconfigure: Callable[..., None],
    aws_proxy: FakeAws,
    demo_world: DemoWorld,
    sign_token: TokenFactory,
    verifier_module: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a fresh verifier, 16 sessions of one role, and IAM holding its answer until all 16 threads ask
    # the verifier's role directory for the role (a fixed delay would assume how fast a machine gets there)
    reconfigure(AWS_ENDPOINT_URL_STS=aws_proxy.url, AWS_ENDPOINT_URL_IAM=aws_proxy.url)
    moto = PassThrough(demo_world.endpoint_url)
    all_asking = threading.Event()
    aws_proxy.script(then=ByAction({"GetRole": Delayed(20, moto, until=all_asking)}, default=moto))
    requests = [
        VerifyRequest.model_validate(
            {
                "token": sign_token(HOME_ACCOUNT, "backend-task", session_name=f"task-{n}"),
                "dataplane": BACKEND_CLAIM,
            }
        )
        for n in range(16)
    ]
    verifier = verifier_module.verifier()
    arrivals = itertools.count(1)
    read_role = verifier.roles.get

    def asking(*args: Any, **kwargs: Any) -> Any:
        if next(arrivals) == len(requests):
            all_asking.set()
        return read_role(*args, **kwargs)

    monkeypatch.setattr(verifier.roles, "get", asking)
    start = threading.Barrier(len(requests))
    decisions: list[Any] = [None] * len(requests)

    def run(index: int) -> None:
        start.wait()
        decisions[index] = verifier.verify(requests[index])

    # When all 16 verify at once
    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)  # "did not hang": a loaded machine is slow, never stuck

    # Then all are allowed (IAM answered only once all 16 were asking: else it answers 599), on one GetRole
    assert [decision.allowed for decision in decisions] == [True] * 16
    assert aws_proxy.count_by_action()["GetRole"] == 1


def test_cache_keeps_same_named_roles_of_two_accounts_apart(
    verify: Verifier,
    reconfigure: Callable[..., None],
    aws_proxy: FakeAws,
    make_task_role: Callable[..., Any],
    credentials_for: Callable[..., dict[str, str]],
    sign_with: TokenFactory,
    sign_token: TokenFactory,
) -> None:
    # Given a role in the partner account named like the home account's backend-task, tagged otherwise
    reconfigure(AWS_ENDPOINT_URL_STS=aws_proxy.url, AWS_ENDPOINT_URL_IAM=aws_proxy.url)
    twin = make_task_role(
        PARTNER_ACCOUNT,
        "backend-task",
        {"kuma.io/type": "dataplane", "kuma.io/mesh": "payments", "kuma.io/service": "ledger"},
    )
    partner_token = sign_with(credentials_for(twin.arn))

    # When the home role is verified (and cached) first, then the partner's twin
    home = verify(sign_token(HOME_ACCOUNT, "backend-task"), BACKEND_CLAIM)
    partner_as_home = verify(partner_token, BACKEND_CLAIM)
    partner = verify(partner_token, claim("payments", "ledger"))

    # Then each account's role answers with its own tags
    assert (home.status, home.reason) == (200, None)
    assert (partner_as_home.status, partner_as_home.reason) == (200, "mesh_mismatch")
    assert (partner.status, partner.reason) == (200, None)
    assert partner.body["identity"]["arn"] == f"arn:aws:iam::{PARTNER_ACCOUNT}:role/backend-task"
    assert partner.body["identity"]["roleId"] == twin.role_id
    assert aws_proxy.count_by_action()["GetRole"] == 2


@pytest.mark.parametrize(
    ("cache_ttl_seconds", "reason_after_the_change"),
    # An hour for the fresh entry, not a minute: on a loaded machine the IAM calls in between may take one
    [("0", "mesh_mismatch"), ("3600", None)],
    ids=["expired-entry-reads-the-new-tags", "fresh-entry-answers-with-the-cached-tags"],
)
def test_role_tag_change_is_seen_once_its_cache_entry_expires(
    verify: Verifier,
    reconfigure: Callable[..., None],
    make_task_role: Callable[..., Any],
    credentials_for: Callable[..., dict[str, str]],
    sign_with: TokenFactory,
    admin_client: ClientFactory,
    cache_ttl_seconds: str,
    reason_after_the_change: str | None,
) -> None:
    # Given a role allowed in the default mesh, verified once
    reconfigure(KUMA_IAM_ROLE_CACHE_TTL_SECONDS=cache_ttl_seconds)
    role = make_task_role(
        HOME_ACCOUNT, "retagged-task", {"kuma.io/type": "dataplane", "kuma.io/mesh": "default"}
    )
    before = verify(sign_with(credentials_for(role.arn)), claim("default"))

    # When an administrator moves it to another mesh
    admin_client(HOME_ACCOUNT, "iam").tag_role(
        RoleName=role.name, Tags=[{"Key": "kuma.io/mesh", "Value": "payments"}]
    )
    after = verify(sign_with(credentials_for(role.arn)), claim("default"))

    # Then the change decides as soon as the cached entry has expired, and not before
    assert (before.status, before.reason) == (200, None)
    assert (after.status, after.reason) == (200, reason_after_the_change)


def test_recreated_roles_new_sessions_are_allowed_at_once_despite_the_cache(
    verify: Verifier,
    demo_world: DemoWorld,
    make_task_role: Callable[..., Any],
    credentials_for: Callable[..., dict[str, str]],
    sign_with: TokenFactory,
) -> None:
    # Given a role verified once (so its first RoleId is cached), then deleted and created again
    role = make_task_role(
        HOME_ACCOUNT, "phoenix-task", {"kuma.io/type": "dataplane", "kuma.io/mesh": "default"}
    )
    before = verify(sign_with(credentials_for(role.arn)), claim("default"))
    new_role_id = recreate_role(demo_world, HOME_ACCOUNT, role.name)

    # When a task of the new role verifies
    after = verify(sign_with(credentials_for(role.arn)), claim("default"))

    # Then it is allowed with the new RoleId: a differing RoleId makes the cache read IAM again
    assert (before.status, before.reason, after.status, after.reason) == (200, None, 200, None)
    assert before.body["identity"]["roleId"] == role.role_id != new_role_id
    assert after.body["identity"]["roleId"] == new_role_id


# --- Configuration and upstream failures ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"KUMA_IAM_SERVER_ID": None}, "KUMA_IAM_SERVER_ID"),
        ({"KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS": "1111,222222222222"}, "KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS"),
    ],
    ids=["server-id-missing", "account-id-malformed"],
)
def test_unusable_configuration_fails_fast_naming_the_variable(
    verify: Verifier,
    reconfigure: Callable[..., None],
    sign_token: TokenFactory,
    environment: dict[str, str | None],
    named: str,
) -> None:
    reconfigure(**environment)
    token = sign_token(HOME_ACCOUNT, "backend-task")

    with pytest.raises(ConfigError, match=named) as error:
        verify(token, BACKEND_CLAIM)

    assert error.value.message.startswith("invalid configuration: ")


def test_unreachable_sts_is_503_upstream_unavailable_with_retry_after(
    verify: Verifier, reconfigure: Callable[..., None], closed_port: int, sign_token: TokenFactory
) -> None:
    # Given STS cannot be reached at all
    reconfigure(AWS_ENDPOINT_URL_STS=f"http://127.0.0.1:{closed_port}")

    answer = verify(sign_token(HOME_ACCOUNT, "backend-task"), BACKEND_CLAIM)

    # Then the control plane is told to retry later, and nothing is allowed
    assert (answer.status, answer.reason) == (503, "upstream_unavailable")
    assert "allowed" not in answer.body
    assert int(answer.headers["retry-after"]) >= 1


def test_body_that_is_not_utf8_is_a_400_not_a_500(verify: Verifier) -> None:
    # Given a body of bytes that are not UTF-8 (API Gateway passes it base64-encoded)
    answer = verify(None, raw_body=b'{"token": "\xff\xfe"}')

    # Then it is refused as malformed, by name
    assert (answer.status, answer.reason) == (400, "invalid_request")
    assert answer.body["message"] == "request body is not valid UTF-8"


def test_base64_body_with_non_ascii_text_is_a_400_not_a_500(verify: Verifier) -> None:
    # Given a hand-made event that says its body is base64 but carries non-ASCII text
    event = {**verify.event("{}"), "isBase64Encoded": True, "body": "eyJ0b2tlbiI6ICJ4In0=\u00e9"}

    # When the handler gets it
    answer = verify.invoke(event)

    # Then it is refused as bad base64 (base64 decoding raised ValueError, a 500)
    assert (answer.status, answer.reason) == (400, "invalid_request")
    assert answer.body["message"] == "request body is not valid base64"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("body", {"token": "x"}, "event body: Input should be a valid string"),
        ("isBase64Encoded", "false", "event isBase64Encoded: Input should be a valid boolean"),
        ("requestContext", None, "event requestContext: Input should be a valid dictionary"),
        ("headers", "content-type: application/json", "event headers: Input should be a valid dictionary"),
    ],
)
def test_malformed_event_field_is_a_400_naming_it_not_a_500(
    verify: Verifier, field: str, value: object, message: str
) -> None:
    answer = verify.invoke({**verify.event("{}"), field: value})

    assert (answer.status, answer.reason) == (400, "invalid_request")
    assert answer.body["message"].startswith(message), answer.body
