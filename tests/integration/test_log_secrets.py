"""No secret of an identity token, nor of the control plane's call, ever reaches a log.

Everything is captured: stdout and stderr, the Powertools Logger, EMF metrics and every std logging record at
DEBUG (botocore, urllib3, the gateway), over an allow, every deny, a 400 and a 503.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import urllib3
from botocore.credentials import Credentials

from kuma_iam.identity.token import SignedRequest, encode_compact, encode_vault
from kuma_iam_cli.local.seed import HOME_ACCOUNT, OUTSIDER_ACCOUNT, DemoWorld
from kuma_iam_cli.signer import sign_api_call, sign_identity_request
from support.captured_output import SIGNATURE, EverythingLogged
from support.fake_aws import FakeAws, PassThrough, StandInSts
from support.token_mutations import signing_time
from support.verifier_harness import Verifier, read_only_credentials

pytestmark = pytest.mark.integration


def claim(
    mesh: str | None = "default", *services: str, workload: str | None = None, **more: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {"mesh": mesh, "name": "dp-01", "workload": workload, **more}
    if services:
        spec["tags"] = {"kuma.io/service": list(services)}
    return spec


def secrets_of(credentials: dict[str, str], signed: SignedRequest) -> dict[str, str]:
    """What must never be logged, by name: credentials, the signature, and the token in either encoding."""
    headers = dict(signed.headers)
    compact = encode_compact(signed)
    secrets = {
        "secret access key": credentials["AWS_SECRET_ACCESS_KEY"],
        "Authorization header": headers["Authorization"],
        "SigV4 signature": SIGNATURE.findall(headers["Authorization"])[0],
        "compact token": compact,
        "compact token payload": compact.removeprefix("kuma-aws-v1."),
        "Vault headers (base64)": encode_vault(signed)["iam_request_headers"],
    }
    if session_token := credentials.get("AWS_SESSION_TOKEN"):
        secrets["session token"] = session_token
        secrets["session token, first 32 characters"] = session_token[:32]
    return secrets


def leaked(output: str, secrets: dict[str, str]) -> list[str]:
    return sorted(name for name, value in secrets.items() if value in output)


@dataclass(frozen=True)
class Scenario:
    name: str
    status: int
    reason: str | None
    signer: tuple[str, str] | str  # (account, role), "ci-user", or "deleted-role"
    dataplane: dict[str, Any] = field(default_factory=lambda: claim("default", "backend"))
    encoding: str = "compact"
    server_id: str | None = None
    forged: bool = False
    setup: str | None = None  # stale-role-id | late-clock | replay | sts-down


BACKEND = (HOME_ACCOUNT, "backend-task")
SCENARIOS = [
    Scenario("allowed", 200, None, BACKEND),
    Scenario("allowed-vault", 200, None, BACKEND, encoding="vault"),
    Scenario("sts-rejected", 200, "sts_rejected", BACKEND, forged=True),
    Scenario("unsupported-principal", 200, "unsupported_principal", "ci-user", claim()),
    Scenario("account-not-authorized", 200, "account_not_authorized", (OUTSIDER_ACCOUNT, "intruder-task")),
    Scenario("role-not-found", 200, "role_not_found", "deleted-role", claim()),
    Scenario("role-mismatch", 200, "role_mismatch", BACKEND, setup="stale-role-id"),
    Scenario("invalid-role-tags", 200, "invalid_role_tags", (HOME_ACCOUNT, "bad-type-task"), claim()),
    Scenario("type-mismatch", 200, "type_mismatch", (HOME_ACCOUNT, "ingress-task"), claim()),
    Scenario("mesh-mismatch", 200, "mesh_mismatch", BACKEND, claim("payments")),
    Scenario("service-mismatch", 200, "service_mismatch", BACKEND, claim("default", "backend", "web")),
    Scenario(
        "workload-mismatch",
        200,
        "workload_mismatch",
        (HOME_ACCOUNT, "worker-task"),
        claim("default", "worker", workload="x"),
    ),
    Scenario("token-expired", 200, "token_expired", BACKEND, setup="late-clock"),
    Scenario("replayed", 200, "replayed", BACKEND, setup="replay"),
    Scenario("invalid-request-server-id", 400, "invalid_request", BACKEND, server_id="another-control-plane"),
    Scenario("invalid-request-dataplane", 400, "invalid_request", BACKEND, {"name": "dp-01", "mesh": None}),
    Scenario("upstream-unavailable", 503, "upstream_unavailable", BACKEND, setup="sts-down"),
]
# The line each kind of answer logs: finding it proves the capture saw the handler's log at all.
LOG_LINE = {200: "identity denied", 400: "invalid request", 503: "upstream failure"}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.name)
def test_no_secret_of_the_token_reaches_any_log(
    scenario: Scenario,
    everything_logged: EverythingLogged,
    verify: Verifier,
    reconfigure: Callable[..., None],
    demo_world: DemoWorld,
    server_id: str,
    credentials_for: Callable[..., dict[str, str]],
    request: pytest.FixtureRequest,
) -> None:
    # Given real credentials for the scenario's signer, and a token they signed
    credentials, before_verify = _signer(scenario, demo_world, credentials_for, request)
    signing = {**credentials, "AWS_SECRET_ACCESS_KEY": "guessed-secret"} if scenario.forged else credentials
    signed = sign_identity_request(
        read_only_credentials(signing),
        server_id=scenario.server_id or server_id,
        region=demo_world.region,
    )
    token = encode_compact(signed) if scenario.encoding == "compact" else encode_vault(signed)
    secrets = secrets_of(credentials, signed)
    before_verify()
    _arrange(scenario, signed, reconfigure, request)
    everything_logged.discard()  # the test's own signing: botocore logs a signature at DEBUG

    # When the verifier decides on it (twice, for the replay)
    answer = verify(token, scenario.dataplane)
    if scenario.setup == "replay":
        answer = verify(token, scenario.dataplane)

    # Then the answer is the scenario's, the handler did log it, and no secret is anywhere in the output
    assert (answer.status, answer.reason) == (scenario.status, scenario.reason)
    output = everything_logged.text()
    expected_line = "identity allowed" if scenario.reason is None else LOG_LINE[scenario.status]
    assert expected_line in output
    assert leaked(output, secrets) == []


def _signer(
    scenario: Scenario,
    world: DemoWorld,
    credentials_for: Callable[..., dict[str, str]],
    request: pytest.FixtureRequest,
) -> tuple[dict[str, str], Callable[[], None]]:
    """The signer's credentials, and what to do once they signed (a deleted role is deleted only then)."""
    if scenario.signer == "ci-user":
        user = world.ci_user
        return {
            "AWS_ACCESS_KEY_ID": user.access_key_id,
            "AWS_SECRET_ACCESS_KEY": user.secret_access_key,
        }, _nothing
    if scenario.signer == "deleted-role":
        role = request.getfixturevalue("make_task_role")(
            HOME_ACCOUNT, "log-probe-task", {"kuma.io/type": "dataplane", "kuma.io/mesh": "default"}
        )
        admin_iam = request.getfixturevalue("admin_client")(HOME_ACCOUNT, "iam")
        return credentials_for(role.arn), lambda: admin_iam.delete_role(RoleName=role.name)
    assert isinstance(scenario.signer, tuple)
    account, role_name = scenario.signer
    return credentials_for(world.role_arn(account, role_name)), _nothing


def _nothing() -> None:
    pass


def _arrange(
    scenario: Scenario,
    signed: SignedRequest,
    reconfigure: Callable[..., None],
    request: pytest.FixtureRequest,
) -> None:
    if scenario.setup == "stale-role-id":
        proxy: FakeAws = request.getfixturevalue("aws_proxy")
        proxy.script(
            then=StandInSts(
                HOME_ACCOUNT,
                f"arn:aws:sts::{HOME_ACCOUNT}:assumed-role/backend-task/ecs-task",
                "AROASTALEROLEID0000001:ecs-task",
                otherwise=PassThrough(request.getfixturevalue("demo_world").endpoint_url),
            )
        )
        reconfigure(AWS_ENDPOINT_URL_STS=proxy.url)
    elif scenario.setup == "replay":
        reconfigure(KUMA_IAM_REPLAY_TABLE=request.getfixturevalue("replay_table"))
    elif scenario.setup == "sts-down":
        reconfigure(AWS_ENDPOINT_URL_STS=f"http://127.0.0.1:{request.getfixturevalue('closed_port')}")
    elif scenario.setup == "late-clock":
        request.getfixturevalue("verifier_clock").set(signing_time(signed) + timedelta(hours=1))


# --- The local gateway's own log ---------------------------------------------------------------------------


def test_gateway_log_carries_no_authorization_value_nor_the_body(
    verifier_gateway: str,
    everything_logged: EverythingLogged,
    demo_world: DemoWorld,
    credentials_for: Callable[..., dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given the control plane's signed call carrying a real identity token, the same with a wrong secret,
    # and an unsigned one
    caplog.set_level(logging.DEBUG, logger="kuma_iam_cli.local.gateway")
    credentials = credentials_for(demo_world.role_arn(HOME_ACCOUNT, "backend-task"))
    signed = sign_identity_request(
        read_only_credentials(credentials),
        server_id="kuma-it",
        region=demo_world.region,
    )
    body = json.dumps({"token": encode_compact(signed), "dataplane": claim("default", "backend")}).encode()
    user = demo_world.control_plane
    calls = {
        "signed": _signed_headers(verifier_gateway, body, user.access_key_id, user.secret_access_key),
        "wrong-secret": _signed_headers(
            verifier_gateway, body, user.access_key_id, "not-the-secret-" + "y" * 25
        ),
        "unsigned": {"Content-Type": "application/json"},
    }

    everything_logged.discard()

    # When each is sent to the gateway
    statuses = {
        name: urllib3.request("POST", verifier_gateway, body=body, headers=headers).status
        for name, headers in calls.items()
    }

    # Then the gateway logged each request, and no Authorization value, signature or token secret
    assert statuses == {"signed": 200, "wrong-secret": 403, "unsigned": 403}
    gateway_records = [record for record in caplog.records if record.name == "kuma_iam_cli.local.gateway"]
    assert [record.getMessage() for record in gateway_records].count("gateway request") == 3
    assert "request not authorized" in [record.getMessage() for record in gateway_records]
    output = everything_logged.text()
    secrets = secrets_of(credentials, signed)
    for name in ("signed", "wrong-secret"):
        secrets[f"{name} call's Authorization"] = calls[name]["Authorization"]
        secrets[f"{name} call's signature"] = SIGNATURE.findall(calls[name]["Authorization"])[0]
    secrets["control plane's secret access key"] = user.secret_access_key
    secrets["request body"] = base64.b64encode(body).decode()
    assert leaked(output, secrets) == []
    assert "identity allowed" in output


def _signed_headers(url: str, body: bytes, access_key_id: str, secret_access_key: str) -> dict[str, str]:
    return sign_api_call(
        Credentials(access_key_id, secret_access_key), url=url, body=body, region="us-east-1"
    )
