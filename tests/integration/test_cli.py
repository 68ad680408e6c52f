"""The kuma-iam command on the embedded AWS: tokens the verifier allows, verify through the IAM gateway, and
the sample events it re-signs. The local stack: test_serve.py; errors of every command: test_cli_errors.py."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kuma_iam_cli.local.compliance_events import COMPLIANCE_CASES
from kuma_iam_cli.local.events import VERIFIER_CASES, VerifierCase
from kuma_iam_cli.local.expected import expected_answers, mismatches
from kuma_iam_cli.local.gateway import LocalLambdaContext
from kuma_iam_cli.local.provisioner_events import PROVISIONER_CASES
from kuma_iam_cli.local.seed import HOME_ACCOUNT, DemoWorld, task_credentials
from kuma_iam_cli.local.token_events import TOKEN_ISSUER_CASES
from kuma_iam_cli.local.token_keys import TokenKeys
from kuma_iam_cli.main import main
from support.cli_runs import CliRun, printed_decision, run_command, user_environment
from support.clock import ManualClock, utc_now
from support.project_files import REPO
from support.token_mutations import read_compact
from support.verifier_harness import SERVER_ID, TokenFactory, Verifier

pytestmark = pytest.mark.integration

BACKEND_CLAIM = {
    "type": "dataplane",
    "mesh": "default",
    "name": "backend-01",
    "tags": {"kuma.io/service": ["backend"]},
}

# --- kuma-iam token: the sidecar's side ------------------------------------------------------------------


def test_token_signed_from_environment_credentials_is_allowed(
    verify: Verifier, demo_world: DemoWorld, server_id: str, run_cli: Callable[..., CliRun]
) -> None:
    # Given a task's role credentials in the environment, as ECS hands them to a container
    credentials = task_credentials(demo_world, HOME_ACCOUNT, "backend-task")

    # When the sidecar side prints a token
    run = run_cli("token", "--server-id", server_id, AWS_REGION=demo_world.region, **credentials)

    # Then it is one compact token line, and the verifier allows it
    assert (run.code, run.err) == (0, "")
    token = run.out.strip()
    assert run.out == token + "\n"
    assert token.startswith("kuma-aws-v1.")
    answer = verify(token, BACKEND_CLAIM)
    assert (answer.status, answer.reason) == (200, None)
    assert answer.body["identity"]["roleName"] == "backend-task"


def test_installed_command_prints_a_token_the_verifier_allows(
    verify: Verifier, demo_world: DemoWorld, server_id: str
) -> None:
    credentials = task_credentials(demo_world, HOME_ACCOUNT, "backend-task")

    run = run_command("token", "--server-id", server_id, AWS_REGION=demo_world.region, **credentials)

    assert (run.code, run.err) == (0, "")
    answer = verify(run.out.strip(), BACKEND_CLAIM)
    assert (answer.status, answer.reason) == (200, None)


def test_vault_format_prints_vault_login_data_the_verifier_allows(
    verify: Verifier, demo_world: DemoWorld, server_id: str, run_cli: Callable[..., CliRun]
) -> None:
    credentials = task_credentials(demo_world, HOME_ACCOUNT, "backend-task")

    run = run_cli(
        "token", "--server-id", server_id, "--format", "vault", AWS_REGION=demo_world.region, **credentials
    )

    assert run.code == 0
    login = json.loads(run.out)
    assert set(login) == {
        "iam_http_request_method",
        "iam_request_url",
        "iam_request_body",
        "iam_request_headers",
    }
    assert base64.b64decode(login["iam_request_url"]) == b"https://sts.us-east-1.amazonaws.com/"
    answer = verify(login, BACKEND_CLAIM)
    assert (answer.status, answer.reason) == (200, None)


def test_region_flag_signs_for_that_regions_sts_endpoint(
    verify: Verifier, demo_world: DemoWorld, server_id: str, run_cli: Callable[..., CliRun]
) -> None:
    # Given credentials whose SDK region is us-east-1
    credentials = task_credentials(demo_world, HOME_ACCOUNT, "backend-task")

    # When the token is asked for eu-west-1
    run = run_cli(
        "token", "--server-id", server_id, "--region", "eu-west-1", AWS_REGION="us-east-1", **credentials
    )

    # Then URL, Host and the credential scope all name eu-west-1's STS, and the verifier still allows it
    assert run.code == 0
    document = read_compact(run.out.strip())
    assert document["url"] == "https://sts.eu-west-1.amazonaws.com/"
    assert document["headers"]["Host"] == "sts.eu-west-1.amazonaws.com"
    assert document["headers"]["X-Kuma-AWS-IAM-Server-ID"] == server_id
    scope = re.search(
        r"Credential=[A-Z0-9]+/(\d{8})/([a-z0-9-]+)/([a-z]+)/aws4_request",
        document["headers"]["Authorization"],
    )
    assert scope is not None
    assert (scope[2], scope[3]) == ("eu-west-1", "sts")
    answer = verify(run.out.strip(), BACKEND_CLAIM)
    assert (answer.status, answer.reason) == (200, None)


@pytest.mark.parametrize(
    ("setting", "host"),
    [
        ({"AWS_USE_FIPS_ENDPOINT": "true"}, "sts-fips.us-east-1.amazonaws.com"),
        ({"AWS_USE_DUALSTACK_ENDPOINT": "true"}, "sts.us-east-1.api.aws"),
        (
            {"AWS_USE_FIPS_ENDPOINT": "true", "AWS_USE_DUALSTACK_ENDPOINT": "true"},
            "sts-fips.us-east-1.api.aws",
        ),
        (
            {"profile": "use_fips_endpoint = true\nuse_dualstack_endpoint = true"},
            "sts-fips.us-east-1.api.aws",
        ),
        ({"AWS_USE_FIPS_ENDPOINT": "false"}, "sts.us-east-1.amazonaws.com"),
    ],
    ids=["fips-env", "dualstack-env", "both-env", "both-in-the-profile", "fips-off"],
)
def test_token_signs_for_the_endpoint_variant_the_sdk_is_set_to(
    setting: dict[str, str],
    host: str,
    verify: Verifier,
    demo_world: DemoWorld,
    server_id: str,
    run_cli: Callable[..., CliRun],
    tmp_path: Path,
) -> None:
    # Given a sidecar whose SDK is set to a FIPS or dual-stack endpoint, by environment or in its profile
    credentials = task_credentials(demo_world, HOME_ACCOUNT, "backend-task")
    environment = {name: value for name, value in setting.items() if name != "profile"}
    if "profile" in setting:
        config = tmp_path / "config"
        config.write_text("[default]\n" + setting["profile"] + "\n")
        environment["AWS_CONFIG_FILE"] = str(config)

    # When it prints a token
    run = run_cli("token", "--server-id", server_id, AWS_REGION="us-east-1", **credentials, **environment)

    # Then the token is signed for that variant's host, as botocore would send to it, and is allowed
    assert run.code == 0, run.err
    document = read_compact(run.out.strip())
    assert (document["url"], document["headers"]["Host"]) == (f"https://{host}/", host)
    answer = verify(run.out.strip(), BACKEND_CLAIM)
    assert (answer.status, answer.reason) == (200, None), answer.body


@contextlib.contextmanager
def container_credentials_endpoint(credentials: dict[str, str]) -> Iterator[tuple[str, list[str | None]]]:
    """A stand-in for the ECS agent's task credentials endpoint; yields its URL and the Authorization values
    it was asked with."""
    asked_with: list[str | None] = []
    document = json.dumps(
        {
            "AccessKeyId": credentials["AWS_ACCESS_KEY_ID"],
            "SecretAccessKey": credentials["AWS_SECRET_ACCESS_KEY"],
            "Token": credentials["AWS_SESSION_TOKEN"],
            "Expiration": (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    ).encode()

    class Agent(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked_with.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Agent)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v2/credentials/task-1", asked_with
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_token_on_ecs_uses_the_task_roles_container_credentials(
    verify: Verifier, demo_world: DemoWorld, server_id: str
) -> None:
    # Given no credentials but the container credentials endpoint, as ECS sets it up for a task
    credentials = task_credentials(demo_world, HOME_ACCOUNT, "backend-task")
    with container_credentials_endpoint(credentials) as (url, asked_with):
        # When the sidecar's init step runs the installed command
        run = run_command(
            "token",
            "--server-id",
            server_id,
            AWS_CONTAINER_CREDENTIALS_FULL_URI=url,
            AWS_CONTAINER_AUTHORIZATION_TOKEN="ecs-agent-token",
            AWS_REGION=demo_world.region,
        )

    # Then it fetched the task role's credentials from the agent, and the token it printed is allowed
    assert (run.code, run.err) == (0, "")
    assert asked_with == ["ecs-agent-token"]
    answer = verify(run.out.strip(), BACKEND_CLAIM)
    assert (answer.status, answer.reason) == (200, None)
    assert answer.body["identity"]["roleName"] == "backend-task"


def test_token_without_any_credentials_exits_2_saying_so(run_cli: Callable[..., CliRun]) -> None:
    run = run_cli("token", "--server-id", "kuma-it", AWS_REGION="us-east-1")

    assert (run.code, run.out) == (2, "")
    assert run.err.startswith("kuma-iam: no AWS credentials found")


def test_token_for_an_unknown_region_exits_2_naming_it(
    demo_world: DemoWorld, run_cli: Callable[..., CliRun]
) -> None:
    credentials = task_credentials(demo_world, HOME_ACCOUNT, "backend-task")

    run = run_cli("token", "--server-id", "kuma-it", "--region", "mars-north-1", **credentials)

    assert (run.code, run.out) == (2, "")
    assert "'mars-north-1'" in run.err


# --- kuma-iam verify: the control plane's side, through the IAM-checking gateway -------------------------


@dataclass(frozen=True)
class VerifyCall:
    name: str
    role: str | None  # the task role whose credentials sign the token; None: a malformed token
    flags: tuple[str, ...]
    token_format: str = "compact"


VERIFY_CALLS = [
    # (call, exit code, HTTP status, reason or error code; None: allowed)
    (VerifyCall("allowed", "backend-task", ("--mesh", "default", "--service", "backend")), 0, 200, None),
    (
        VerifyCall("allowed-vault", "backend-task", ("--mesh", "default", "--service", "backend"), "vault"),
        0,
        200,
        None,
    ),
    (VerifyCall("allowed-ingress", "ingress-task", ("--type", "ingress")), 0, 200, None),
    (VerifyCall("denied", "backend-task", ("--mesh", "payments")), 1, 200, "mesh_mismatch"),
    (
        VerifyCall(
            "denied-service",
            "backend-task",
            ("--mesh", "default", "--service", "backend", "--service", "web"),
        ),
        1,
        200,
        "service_mismatch",
    ),
    (VerifyCall("bad-request", None, ("--mesh", "default")), 2, 400, "invalid_request"),
]


@pytest.mark.parametrize(
    ("call", "exit_code", "status", "reason"), VERIFY_CALLS, ids=[c[0].name for c in VERIFY_CALLS]
)
def test_verify_exits_by_the_decision_and_prints_it(
    verifier_gateway: str,
    demo_world: DemoWorld,
    sign_token: TokenFactory,
    call: VerifyCall,
    exit_code: int,
    status: int,
    reason: str | None,
) -> None:
    # Given a token (or a malformed one) and the control plane's credentials
    token = "kuma-aws-v1.not*base64"
    if call.role is not None:
        signed = sign_token(HOME_ACCOUNT, call.role, encoding=call.token_format)
        token = signed if isinstance(signed, str) else json.dumps(signed)

    # When the reference client asks the verifier API
    run = run_command(
        "verify",
        "--url",
        verifier_gateway,
        "--token",
        token,
        *call.flags,
        **user_environment(demo_world.control_plane),
    )

    # Then its exit code follows the decision, and it prints the API's answer
    assert run.code == exit_code, run.err
    printed_status, body = printed_decision(run.out)
    assert printed_status == status
    if status == 200:
        assert (body["allowed"], body.get("reason")) == (reason is None, reason)
    else:
        assert body["error"] == reason


@pytest.mark.parametrize(
    "signer",
    ["wrong-secret", "ci-user"],
    ids=["control-plane-key-wrong-secret", "real-user-not-allowed-to-call"],
)
def test_verify_signed_by_anyone_but_the_control_plane_is_forbidden(
    verifier_gateway: str, demo_world: DemoWorld, sign_token: TokenFactory, signer: str
) -> None:
    environment = user_environment(
        demo_world.control_plane if signer == "wrong-secret" else demo_world.ci_user
    )
    if signer == "wrong-secret":
        environment["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"

    run = run_command(
        "verify",
        "--url",
        verifier_gateway,
        "--token",
        str(sign_token(HOME_ACCOUNT, "backend-task")),
        "--mesh",
        "default",
        **environment,
    )

    assert run.code == 2
    assert printed_decision(run.out) == (403, {"message": "Forbidden"})


def test_unsigned_call_to_the_gateway_is_forbidden(verifier_gateway: str, sign_token: TokenFactory) -> None:
    body = json.dumps({"token": sign_token(HOME_ACCOUNT, "backend-task"), "dataplane": BACKEND_CLAIM})

    response = urllib3.request(
        "POST", verifier_gateway, body=body, headers={"Content-Type": "application/json"}
    )

    assert (response.status, json.loads(response.data)) == (403, {"message": "Forbidden"})


def test_signed_call_to_the_gateway_reaches_the_handler(
    verifier_gateway: str, demo_world: DemoWorld, sign_token: TokenFactory
) -> None:
    # The control plane's own signer (not our CLI): what the gateway checks is plain SigV4 for execute-api.
    body = json.dumps(
        {"token": sign_token(HOME_ACCOUNT, "backend-task"), "dataplane": BACKEND_CLAIM}
    ).encode()
    request = AWSRequest(
        method="POST", url=verifier_gateway, data=body, headers={"Content-Type": "application/json"}
    )
    user = demo_world.control_plane
    SigV4Auth(Credentials(user.access_key_id, user.secret_access_key), "execute-api", "us-east-1").add_auth(
        request
    )

    response = urllib3.request("POST", verifier_gateway, body=body, headers=dict(request.headers.items()))

    assert response.status == 200
    assert json.loads(response.data)["allowed"] is True


# --- kuma-iam events: sample events re-signed against the running world ---------------------------------


@dataclass(frozen=True)
class WrittenEvents:
    folder: Path
    code: int
    printed: list[str]
    written_at: datetime  # just before: every token in them is signed at or after it


@pytest.fixture(scope="module")
def written_events(
    demo_world: DemoWorld, token_keys: TokenKeys, tmp_path_factory: pytest.TempPathFactory
) -> WrittenEvents:
    """`kuma-iam events` run once against the session's world, as after `serve --host 0.0.0.0` (the token
    issuer's keys beside the world file, as serve writes them)."""
    folder = tmp_path_factory.mktemp("events")
    world_file = folder / "world.json"
    world_file.write_text(demo_world.to_json())
    (folder / "tokens.json").write_text(token_keys.to_json())
    printed = io.StringIO()
    written_at = utc_now()
    with contextlib.redirect_stdout(printed):
        code = main(
            ["events", "--world", str(world_file), "--out", str(folder / "out"), "--server-id", SERVER_ID]
        )
    return WrittenEvents(folder / "out", code, printed.getvalue().splitlines(), written_at)


def test_events_writes_every_case_and_the_sam_env_file(
    written_events: WrittenEvents, demo_world: DemoWorld, token_keys: TokenKeys
) -> None:
    out = written_events.folder
    expected = [
        *(out / "verifier" / f"{case.name}.json" for case in VERIFIER_CASES),
        *(out / "tag_compliance" / f"{case.name}.json" for case in COMPLIANCE_CASES),
        *(out / "token_issuer" / f"{case.name}.json" for case in TOKEN_ISSUER_CASES),
        *(out / "token_provisioner" / f"{case.name}.json" for case in PROVISIONER_CASES),
        out / "env.json",
    ]

    assert written_events.code == 0
    assert written_events.printed == [str(path) for path in expected]
    assert all(path.is_file() for path in expected)
    environment = json.loads((out / "env.json").read_text())["VerifierFunction"]
    moto_port = demo_world.endpoint_url.rsplit(":", 1)[1]
    assert environment["AWS_ENDPOINT_URL_STS"] == f"http://host.docker.internal:{moto_port}"
    assert environment["AWS_ENDPOINT_URL_IAM"] == f"http://host.docker.internal:{moto_port}"
    assert environment["KUMA_IAM_SERVER_ID"] == SERVER_ID
    assert environment["KUMA_IAM_HOME_ACCOUNT_ID"] == demo_world.home_account
    assert "AWS_ACCESS_KEY_ID" not in environment  # sam passes its own credentials; see sam-env.sh
    compliance = json.loads((out / "env.json").read_text())["TagComplianceFunction"]
    assert compliance["AWS_ENDPOINT_URL_IAM"] == f"http://host.docker.internal:{moto_port}"
    assert compliance["KUMA_IAM_IDEMPOTENCY_TABLE"]
    assert "AWS_ACCESS_KEY_ID" not in compliance
    issuer = json.loads((out / "env.json").read_text())["TokenIssuerFunction"]
    assert issuer["AWS_ENDPOINT_URL_KMS"] == f"http://host.docker.internal:{moto_port}"
    assert issuer["KUMA_IAM_SIGNING_KEYS"] == token_keys.signing_keys
    assert issuer["KUMA_IAM_SERVER_ID"] == SERVER_ID
    assert "AWS_ACCESS_KEY_ID" not in issuer
    provisioner = json.loads((out / "env.json").read_text())["TokenProvisionerFunction"]
    assert provisioner["AWS_ENDPOINT_URL_ECS"] == f"http://host.docker.internal:{moto_port}"
    assert provisioner["KUMA_IAM_ECS_CLUSTERS"] == demo_world.provisioning.cluster_arn
    assert provisioner["KUMA_IAM_SIGNING_KEYS"] == token_keys.signing_keys
    assert provisioner["KUMA_IAM_REVOCATION_TABLE"] == token_keys.revocation_table
    assert "AWS_ACCESS_KEY_ID" not in provisioner
    # And the task events name the world's own tasks (ECS numbers them)
    started = json.loads((out / "token_provisioner" / "new-tagged-task.json").read_text())
    assert started["detail"]["taskArn"] == demo_world.provisioning.task_arns["backend"]


@pytest.mark.parametrize("case", VERIFIER_CASES, ids=lambda case: case.name)
def test_each_written_event_gets_its_case_answer_from_the_handler(
    written_events: WrittenEvents,
    verify: Verifier,
    verifier_clock: ManualClock,
    verifier_module: ModuleType,
    case: VerifierCase,
) -> None:
    # Given the event file, exactly as `sam local invoke -e` would pass it, judged when it was written (the
    # module's events are written once: the later cases of a slow run must not find them aged)
    verifier_clock.set(written_events.written_at)
    event = json.loads((written_events.folder / "verifier" / f"{case.name}.json").read_text())
    context = LocalLambdaContext(
        function_name="VerifierFunction",
        aws_request_id=str(uuid.uuid4()),
        region="us-east-1",
        account_id=HOME_ACCOUNT,
    )

    result = verifier_module.lambda_handler(event, context)

    # Then the answer is the one events/verifier/expected.json gives
    assert not mismatches(expected_answers(REPO / "events")[f"verifier/{case.name}"], result)
