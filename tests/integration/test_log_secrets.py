"""No secret of an identity token, of the control plane's call, or of the verifier's own credentials, nor a
Kuma token or signing key the token issuer holds, ever reaches a log.

Everything is captured: stdout and stderr, the Powertools Logger, EMF metrics and every std logging record at
DEBUG (botocore, urllib3, the gateway), over an allow, every deny, a 400 and a 503. The root logger is at
DEBUG, as Lambda sets it with ApplicationLogLevel=DEBUG (AWS_LAMBDA_LOG_LEVEL=DEBUG).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from types import ModuleType
from typing import Any

import pytest
import urllib3
from botocore.credentials import Credentials

from kuma_iam.errors import UpstreamError
from kuma_iam.identity.token import SignedRequest, encode_compact, encode_vault
from kuma_iam_cli.local.gateway import GatewayCaller
from kuma_iam_cli.local.provisioner_events import scheduled_sweep, task_state_change
from kuma_iam_cli.local.seed import (
    HOME_ACCOUNT,
    OUTSIDER_ACCOUNT,
    PARTNER_ACCOUNT,
    READER_ROLE_NAME,
    DemoWorld,
)
from kuma_iam_cli.local.token_keys import TokenKeys
from kuma_iam_cli.signer import sign_api_call, sign_identity_request
from support.aws_clients import ClientFactory, TaskRole
from support.captured_output import SIGNATURE, EverythingLogged, header_secrets
from support.fake_aws import FakeAws, PassThrough, StandInSts
from support.project_files import VERIFIER_HANDLER
from support.provisioner_harness import EcsWorld, Provisioner, forged
from support.token_issuer_harness import TokenIssuer
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


# --- The verifier's own credentials, and those it is issued ------------------------------------------------

FUNCTION_ROLE = "kuma-iam-verifier-function"
# What the template grants the function (and the demo world the verifier user), on a role: on Lambda the
# function runs on its execution role's session credentials, X-Amz-Security-Token included.
FUNCTION_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["iam:GetRole", "iam:ListRoleTags"], "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": f"arn:aws:iam::*:role/{READER_ROLE_NAME}",
        },
        {"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"},
    ],
}
PAYMENTS = (PARTNER_ACCOUNT, "payments-task")


@pytest.fixture
def function_credentials(
    make_task_role: Callable[..., TaskRole],
    admin_client: ClientFactory,
    credentials_for: Callable[..., dict[str, str]],
) -> Iterator[dict[str, str]]:
    """Session credentials of a role shaped like the function's execution role."""
    role = make_task_role(HOME_ACCOUNT, FUNCTION_ROLE, {})
    iam = admin_client(HOME_ACCOUNT, "iam")
    iam.put_role_policy(RoleName=role.name, PolicyName="verifier", PolicyDocument=json.dumps(FUNCTION_POLICY))
    yield credentials_for(role.arn, session_name="kuma-iam-verifier")
    iam.delete_role_policy(RoleName=role.name, PolicyName="verifier")  # so that make_task_role can delete it


def issued_by_assume_role(proxy: FakeAws) -> dict[str, str]:
    """The reader role's credentials as STS handed them to the verifier (read off the recording proxy)."""
    secrets: dict[str, str] = {}
    for request, answer in proxy.answers:
        if request.action == "AssumeRole" and answer.status == 200:
            for element in ET.fromstring(answer.body).iter():  # noqa: S314 - moto's answer, in a test
                name = element.tag.rsplit("}", 1)[-1]
                if name in ("SecretAccessKey", "SessionToken") and element.text:
                    secrets[f"reader role's {name}"] = element.text
    return secrets


def credential_secrets(function: dict[str, str], proxy: FakeAws) -> dict[str, str]:
    """The function's own secret key and session token, the reader role's issued ones, and every
    Authorization, signature and session token the verifier sent (as the proxy received them)."""
    secrets = {
        "function's secret access key": function["AWS_SECRET_ACCESS_KEY"],
        "function's session token": function["AWS_SESSION_TOKEN"],
        "function's session token, first 32 characters": function["AWS_SESSION_TOKEN"][:32],
        **issued_by_assume_role(proxy),
    }
    for index, value in enumerate(header_secrets(request.headers for request in proxy.requests)):
        secrets[f"header or signature #{index} the verifier sent"] = value
    return secrets


@pytest.mark.parametrize("signer", [BACKEND, PAYMENTS], ids=["home-account", "cross-account"])
@pytest.mark.parametrize("wire_loggers", ["as-configured", "forced-to-debug"])
def test_no_credential_of_the_verifier_reaches_a_debug_log(
    signer: tuple[str, str],
    wire_loggers: str,
    everything_logged: EverythingLogged,
    function_credentials: dict[str, str],
    aws_proxy: FakeAws,
    verify: Verifier,
    reconfigure: Callable[..., None],
    demo_world: DemoWorld,
    credentials_for: Callable[..., dict[str, str]],
    server_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the root logger at DEBUG, the verifier on its role's session credentials, and its STS and IAM
    # calls recorded on the way to the embedded AWS (across accounts: assuming the reader role there)
    reconfigure(
        **{name: function_credentials[name] for name in function_credentials},
        KUMA_IAM_HOME_ACCOUNT_ID=None,
        AWS_ENDPOINT_URL_STS=aws_proxy.url,
        AWS_ENDPOINT_URL_IAM=aws_proxy.url,
    )
    if wire_loggers == "forced-to-debug":
        # The control: with botocore and urllib3 left to the root level, the capture does see the leak
        for name in ("botocore", "urllib3"):
            monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
            logging.getLogger(name).manager._clear_cache()  # type: ignore[attr-defined]
    account, role = signer
    credentials = credentials_for(demo_world.role_arn(account, role))
    signed = sign_identity_request(
        read_only_credentials(credentials), server_id=server_id, region=demo_world.region
    )
    everything_logged.discard()

    # When the verifier decides on a token
    mesh, service = ("default", "backend") if signer == BACKEND else ("payments", "payments")
    answer = verify(encode_compact(signed), claim(mesh, service))

    # Then it is allowed, having called STS and IAM with those credentials
    assert answer.body.get("allowed") is True, answer.body
    assert {"GetCallerIdentity", "GetRole"} <= set(aws_proxy.count_by_action())
    secrets = credential_secrets(function_credentials, aws_proxy)
    if signer == PAYMENTS:
        assert {"reader role's SecretAccessKey", "reader role's SessionToken"} <= set(secrets)
    # And none of them is in any log line, unless the wire loggers were forced down to DEBUG
    found = leaked(everything_logged.text(), {**secrets, **secrets_of(credentials, signed)})
    if wire_loggers == "as-configured":
        assert found == []
    else:
        assert "function's session token" in found
        if signer == PAYMENTS:
            assert "reader role's SecretAccessKey" in found


@pytest.fixture
def handler_loaded_with_event_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The verifier handler imported afresh with POWERTOOLS_LOGGER_LOG_EVENT=true, Powertools' switch to log
    every event (the token is in the body): the decorator reads it when the module is imported."""
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    spec = importlib.util.spec_from_file_location("verifier_logging_events", VERIFIER_HANDLER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name)


def test_switching_on_event_logging_by_environment_logs_no_token(
    handler_loaded_with_event_logging: ModuleType,
    verify: Verifier,
    everything_logged: EverythingLogged,
    demo_world: DemoWorld,
    credentials_for: Callable[..., dict[str, str]],
    server_id: str,
) -> None:
    # Given a handler imported with POWERTOOLS_LOGGER_LOG_EVENT=true, and a genuine token
    credentials = credentials_for(demo_world.role_arn(*BACKEND))
    signed = sign_identity_request(
        read_only_credentials(credentials), server_id=server_id, region=demo_world.region
    )
    everything_logged.discard()
    # When it decides on the token
    answer = Verifier(handler_loaded_with_event_logging, demo_world)(
        encode_compact(signed), claim("default", "backend")
    )
    # Then the event (and with it the token) was not logged: the handler says so itself, whatever the env
    assert answer.body.get("allowed") is True, answer.body
    output = everything_logged.text()
    assert "identity allowed" in output
    assert leaked(output, secrets_of(credentials, signed)) == []


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


# --- The token issuer ------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuerScenario:
    name: str
    status: int
    reason: str | None
    signer: str = "backend-task"
    caller: str = "backend-task"
    dataplane: dict[str, Any] = field(default_factory=lambda: claim("default", "backend"))
    keys: str | None = None  # "pem": the PEM key signs
    setup: str | None = None  # sts-down


ISSUER_SCENARIOS = [
    IssuerScenario("issued-by-kms", 200, None),
    IssuerScenario("issued-by-pem", 200, None, keys="pem"),
    IssuerScenario("caller-mismatch", 403, "caller_mismatch", caller="frontend-task"),
    IssuerScenario("mesh-mismatch", 403, "mesh_mismatch", dataplane=claim("payments", "backend")),
    IssuerScenario("invalid-request", 400, "invalid_request", dataplane={"name": "dp-01", "mesh": None}),
    IssuerScenario("upstream-unavailable", 503, "upstream_unavailable", setup="sts-down"),
]
ISSUER_LOG_LINE = {200: "token issued", 403: "token denied", 400: "invalid request", 503: "upstream failure"}


@pytest.mark.parametrize("scenario", ISSUER_SCENARIOS, ids=lambda scenario: scenario.name)
def test_no_token_key_or_credential_reaches_any_log_of_the_issuer(
    scenario: IssuerScenario,
    everything_logged: EverythingLogged,
    issuer: TokenIssuer,
    reconfigure_issuer: Callable[..., None],
    task_session: Callable[..., tuple[dict[str, str], GatewayCaller]],
    token_keys: TokenKeys,
    demo_world: DemoWorld,
    server_id: str,
    request: pytest.FixtureRequest,
) -> None:
    # Given the scenario's signer, caller and keys; every logger at DEBUG (botocore's too)
    credentials, _ = task_session(HOME_ACCOUNT, scenario.signer)
    _, caller = task_session(HOME_ACCOUNT, scenario.caller)
    signed = sign_identity_request(
        read_only_credentials(credentials), server_id=server_id, region=demo_world.region
    )
    if scenario.keys == "pem":
        reconfigure_issuer(KUMA_IAM_SIGNING_KEYS=f"1={token_keys.pem_secret_arn}")
    if scenario.setup == "sts-down":
        reconfigure_issuer(AWS_ENDPOINT_URL_STS=f"http://127.0.0.1:{request.getfixturevalue('closed_port')}")
    secrets = secrets_of(credentials, signed)
    secrets["issuer's secret access key"] = token_keys.issuer.secret_access_key
    for number, line in enumerate(token_keys.pem.strip().splitlines()[1:-1]):
        secrets[f"PEM private key, line {number}"] = line
    everything_logged.discard()

    # When the caller exchanges the token, and the keys are read
    answer = issuer.exchange(encode_compact(signed), scenario.dataplane, caller=caller)
    issuer.keys(caller)

    # Then the answer is the scenario's, the handler logged it, and nothing secret is anywhere in the output:
    # not the identity token, the issuer's own credentials, the PEM key, nor the Kuma token handed out
    assert (answer.status, answer.reason) == (scenario.status, scenario.reason)
    if answer.status == 200:
        secrets["issued token"] = answer.body["token"]
        secrets["issued token's claims part"] = answer.body["token"].split(".")[1]
        secrets["issued token's signature"] = answer.body["token"].split(".")[2]
    output = everything_logged.text()
    assert ISSUER_LOG_LINE[scenario.status] in output
    assert leaked(output, secrets) == []


# --- The token provisioner -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProvisionerScenario:
    name: str
    signer: str = "keys"  # keys (KMS signs, the PEM key is published), pem, control-plane
    role_service: str | None = None  # None: the role is for the task's service
    secrets_manager_down: bool = False


PROVISIONER_SCENARIOS = [
    ProvisionerScenario("replaced-by-kms"),
    ProvisionerScenario("replaced-by-pem", signer="pem"),
    ProvisionerScenario("replaced-by-the-control-plane", signer="control-plane"),
    ProvisionerScenario("identity-mismatch", role_service="someone-else"),
    ProvisionerScenario("secrets-manager-down", secrets_manager_down=True),
]


@pytest.mark.parametrize("scenario", PROVISIONER_SCENARIOS, ids=lambda scenario: scenario.name)
def test_no_token_key_or_credential_reaches_any_log_of_the_provisioner(
    scenario: ProvisionerScenario,
    everything_logged: EverythingLogged,
    provisioner: Provisioner,
    ecs_world: EcsWorld,
    make_task_role: Callable[..., TaskRole],
    token_keys: TokenKeys,
    demo_world: DemoWorld,
    request: pytest.FixtureRequest,
) -> None:
    # Given a service whose secret holds an expiring token, a task of it, and the scenario's signer; every
    # logger at DEBUG (botocore's too)
    service = ecs_world.new_service("logs")
    tags = {"kuma.io/type": "dataplane", "kuma.io/mesh": "default"}
    role_tags = tags | {"kuma.io/service": scenario.role_service or service}
    role = make_task_role(HOME_ACCOUNT, f"{service}-task", role_tags)
    old_token = forged(token_keys.pem, service=service, expires_in=600)
    ecs_world.make_secret(service, json.dumps({"token": old_token, "owner": "team"}))
    task = ecs_world.start_task(service, role.arn)
    secrets = {
        "expiring token in the secret": old_token,
        "its signature": old_token.split(".")[2],
        "provisioner's secret access key": demo_world.provisioner.secret_access_key,
    }
    for number, line in enumerate(token_keys.pem.strip().splitlines()[1:-1]):
        secrets[f"PEM private key, line {number}"] = line
    if scenario.signer == "pem":
        provisioner.configure(KUMA_IAM_SIGNING_KEYS=f"1={token_keys.pem_secret_arn}")
    if scenario.signer == "control-plane":
        control_plane = request.getfixturevalue("control_plane")
        cp_secrets = request.getfixturevalue("cp_secrets")
        provisioner.configure(
            KUMA_IAM_TOKEN_SIGNER="control-plane",
            KUMA_IAM_CP_URL=control_plane.url,
            KUMA_IAM_CP_TOKEN_SECRET=cp_secrets["token"],
            KUMA_IAM_CP_CA_SECRET=cp_secrets["ca"],
            KUMA_IAM_SIGNING_KEYS=None,
        )
        secrets["control plane admin token"] = control_plane.admin_token
    if scenario.secrets_manager_down:
        port = request.getfixturevalue("closed_port")
        provisioner.configure(AWS_ENDPOINT_URL_SECRETS_MANAGER=f"http://127.0.0.1:{port}")
    everything_logged.discard()

    # When the task's start is handled, and a sweep runs
    try:
        provisioner(task_state_change(ecs_world.cluster_arn, task))
    except UpstreamError:
        assert scenario.secrets_manager_down
    provisioner(scheduled_sweep())

    # Then the scenario happened, and nothing secret is anywhere in the output: not the token handed out,
    # the one replaced, a signing key, the admin token, nor the provisioner's own credentials
    output = everything_logged.text()
    if scenario.role_service is None and not scenario.secrets_manager_down:
        new_token = ecs_world.document(service)["token"]
        assert new_token != old_token
        secrets["token put"] = new_token
        secrets["token put, claims part"] = new_token.split(".")[1]
        secrets["token put, signature"] = new_token.split(".")[2]
        assert "token provisioned" in output
    elif scenario.role_service is not None:
        assert "task identity mismatch" in output
    else:
        assert "provisioning failed" in output
    assert leaked(output, secrets) == []
