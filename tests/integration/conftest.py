"""Integration tier: the real verifier handler against the embedded AWS (moto server, SigV4 checks on)."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
from botocore.credentials import ReadOnlyCredentials

from kuma_iam.identity.signer import sign_identity_request
from kuma_iam.identity.token import SignedRequest, encode_compact, encode_vault
from kuma_iam.local.embedded_aws import EmbeddedAws
from kuma_iam.local.events import VERIFY_ROUTE
from kuma_iam.local.gateway import (
    GatewayRequest,
    LocalGateway,
    LocalLambdaContext,
    build_event,
    load_handler,
)
from kuma_iam.local.seed import (
    DemoWorld,
    control_plane_caller,
    seed_demo_world,
    task_credentials,
    verifier_environment,
)
from kuma_iam.observability import logger as powertools_logger

SERVER_ID = "kuma-it"
REPO = Path(__file__).resolve().parents[2]
VERIFIER_HANDLER = REPO / "functions" / "verifier" / "app.py"

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def embedded_aws() -> Iterator[EmbeddedAws]:
    """One moto server for the whole run: moto's state is per process, so a second one is refused."""
    with EmbeddedAws() as aws:
        yield aws


@pytest.fixture(scope="session")
def demo_world(embedded_aws: EmbeddedAws) -> DemoWorld:
    world = seed_demo_world(embedded_aws)
    embedded_aws.enable_signature_checks()
    return world


@pytest.fixture(scope="session")
def verifier_module() -> ModuleType:
    load_handler(VERIFIER_HANDLER)
    import sys

    return sys.modules["verifier"]


@dataclass(frozen=True)
class VerifyAnswer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def reason(self) -> str | None:
        return self.body.get("reason") if self.status == 200 else self.body.get("error")


class Verifier:
    """Invokes the real handler the way API Gateway does, with a fresh verifier built from `environment`."""

    def __init__(self, module: ModuleType, world: DemoWorld) -> None:
        self.module = module
        self.world = world

    def __call__(
        self, token: object, dataplane: dict[str, Any] | None = None, *, raw_body: str | None = None
    ) -> VerifyAnswer:
        dataplane = dataplane if dataplane is not None else {"mesh": "default", "name": "backend-01"}
        body = raw_body if raw_body is not None else json.dumps({"token": token, "dataplane": dataplane})
        request = GatewayRequest(
            method="POST",
            raw_path="/v1/verify",
            raw_query="",
            headers=(("content-type", "application/json"),),
            body=body.encode(),
            source_ip="10.0.0.10",
        )
        event = build_event(
            request,
            route_key=VERIFY_ROUTE,
            caller=control_plane_caller(self.world),
            api_account_id=self.world.home_account,
            request_id=str(uuid.uuid4()),
            received_at=datetime.now(UTC),
        )
        context = LocalLambdaContext(
            function_name="VerifierFunction",
            aws_request_id=str(uuid.uuid4()),
            region=self.world.region,
            account_id=self.world.home_account,
        )
        result = self.module.lambda_handler(event, context)
        return VerifyAnswer(
            status=result["statusCode"],
            body=json.loads(result["body"]),
            headers={key.lower(): value for key, value in (result.get("headers") or {}).items()},
        )


@pytest.fixture
def verifier_environment_vars(demo_world: DemoWorld) -> dict[str, str]:
    """The verifier's environment; a test may change it before asking for `verify`."""
    return verifier_environment(demo_world, server_id=SERVER_ID)


@pytest.fixture
def verify(
    verifier_module: ModuleType,
    demo_world: DemoWorld,
    verifier_environment_vars: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Verifier]:
    """The handler with a verifier built for this test alone (fresh role cache, this test's environment)."""
    for name, value in verifier_environment_vars.items():
        monkeypatch.setenv(name, value)
    verifier_module.verifier.cache_clear()
    yield Verifier(verifier_module, demo_world)
    verifier_module.verifier.cache_clear()


TokenFactory = Callable[..., str | dict[str, str]]


@pytest.fixture
def sign_token(demo_world: DemoWorld) -> TokenFactory:
    """sign_token(account, role, *, server_id, encoding="compact"|"vault", region, session_name) -> token."""

    def sign(
        account: str,
        role: str,
        *,
        server_id: str = SERVER_ID,
        encoding: str = "compact",
        region: str | None = None,
        session_name: str = "ecs-task",
    ) -> str | dict[str, str]:
        request = signed_request(
            demo_world, account, role, server_id=server_id, region=region, session_name=session_name
        )
        return encode_compact(request) if encoding == "compact" else encode_vault(request)

    return sign


def signed_request(
    world: DemoWorld,
    account: str,
    role: str,
    *,
    server_id: str = SERVER_ID,
    region: str | None = None,
    session_name: str = "ecs-task",
) -> SignedRequest:
    """A GetCallerIdentity signed with real task-role credentials that the embedded AWS issued."""
    issued = task_credentials(world, account, role, session_name=session_name)
    credentials = ReadOnlyCredentials(
        issued["AWS_ACCESS_KEY_ID"], issued["AWS_SECRET_ACCESS_KEY"], issued["AWS_SESSION_TOKEN"]
    )
    return sign_identity_request(credentials, server_id=server_id, region=region or world.region)


# --- What the verifier sends to AWS, observed on the wire; roles and tables made for one test. ---


@dataclass(frozen=True)
class AwsCall:
    """One request that reached the proxy: the Query API action, its parameters and the Host it named."""

    action: str
    params: dict[str, str]
    host: str


@dataclass(frozen=True)
class StsIdentity:
    """What a stand-in STS says the caller of a forwarded GetCallerIdentity is."""

    account: str
    arn: str
    user_id: str

    def xml(self) -> bytes:
        return (
            '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<GetCallerIdentityResult>"
            f"<Arn>{self.arn}</Arn><UserId>{self.user_id}</UserId><Account>{self.account}</Account>"
            "</GetCallerIdentityResult>"
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            "</GetCallerIdentityResponse>"
        ).encode()


class AwsProxy:
    """A forwarding proxy in front of the embedded AWS that records every call passing through.

    Requests keep their Host header, so moto still checks their SigV4 signatures. `delays` holds an action
    back (to widen a race); `identity_answer`, when set, answers the forwarded identity token (the request
    addressed to a real STS host) itself, as a stand-in STS would, while the verifier's own calls still
    reach moto.
    """

    _HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.delays: dict[str, float] = {}
        self.identity_answer: StsIdentity | None = None
        self._calls: list[AwsCall] = []
        self._lock = threading.Lock()
        self._server = _ProxyServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def calls(self) -> list[AwsCall]:
        with self._lock:
            return list(self._calls)

    def actions(self) -> list[str]:
        return [call.action for call in self.calls]

    def count(self, action: str) -> int:
        return self.actions().count(action)

    def start(self) -> AwsProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handle(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        form = dict(parse_qsl(body.decode("utf-8", "replace"))) if body else {}
        form |= dict(parse_qsl(urlsplit(path).query))
        host = next((value for name, value in headers if name.lower() == "host"), "")
        action = form.get("Action", f"{method} {urlsplit(path).path}")
        with self._lock:
            self._calls.append(AwsCall(action=action, params=form, host=host))
        time.sleep(self.delays.get(action, 0.0))
        if (
            self.identity_answer is not None
            and action == "GetCallerIdentity"
            and host.endswith(".amazonaws.com")
        ):
            return 200, [("Content-Type", "text/xml")], self.identity_answer.xml()
        # A new connection per call: a pooled one that moto already closed would fail the verifier's call.
        target = urlsplit(self.upstream)
        connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=10)
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in self._HOP_HEADERS:
                    connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            upstream = connection.getresponse()
            payload = upstream.read()
        finally:
            connection.close()
        answer_headers = [
            (name, value) for name, value in upstream.getheaders() if name.lower() not in self._HOP_HEADERS
        ]
        return upstream.status, answer_headers, payload

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, payload = proxy._handle(self.command, self.path, self.headers.items(), body)
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # 16 verifications at once must not overflow the listen backlog


@pytest.fixture
def aws_proxy(demo_world: DemoWorld) -> Iterator[AwsProxy]:
    """A recording proxy to the embedded AWS; point AWS_ENDPOINT_URL_* at its `endpoint_url`."""
    proxy = AwsProxy(demo_world.endpoint_url).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on: connections to it are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


ClientFactory = Callable[[str, str], Any]


@pytest.fixture
def admin_client(demo_world: DemoWorld) -> ClientFactory:
    """admin_client(account, service): a client signed by the account's embedded-admin (every right)."""

    def make(account: str, service: str) -> Any:
        admin = demo_world.admins[account]
        return boto3.client(  # type: ignore[call-overload]
            service,
            region_name=demo_world.region,
            endpoint_url=demo_world.endpoint_url,
            aws_access_key_id=admin.access_key_id,
            aws_secret_access_key=admin.secret_access_key,
        )

    return make


@dataclass(frozen=True)
class TaskRole:
    account: str
    name: str
    arn: str
    role_id: str


@pytest.fixture
def make_task_role(demo_world: DemoWorld, admin_client: ClientFactory) -> Iterator[Callable[..., TaskRole]]:
    """make_task_role(account, name, tags, path="/"): a role the account's ECS agent may assume, for this
    test only (deleted afterwards if still there); the seeded roles stay as other tests expect them."""
    made: list[TaskRole] = []

    def make(account: str, name: str, tags: dict[str, str], path: str = "/") -> TaskRole:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "sts:AssumeRole",
                    "Principal": {
                        "Service": "ecs-tasks.amazonaws.com",
                        "AWS": [f"arn:aws:iam::{account}:root", f"arn:aws:iam::{account}:user/ecs-agent"],
                    },
                }
            ],
        }
        role = admin_client(account, "iam").create_role(
            RoleName=name,
            Path=path,
            AssumeRolePolicyDocument=json.dumps(trust),
            Tags=[{"Key": key, "Value": value} for key, value in tags.items()],
        )["Role"]
        made.append(TaskRole(account, name, role["Arn"], role["RoleId"]))
        return made[-1]

    yield make
    for role in made:
        with contextlib.suppress(admin_client(role.account, "iam").exceptions.NoSuchEntityException):
            admin_client(role.account, "iam").delete_role(RoleName=role.name)


@pytest.fixture
def credentials_for(demo_world: DemoWorld) -> Callable[..., dict[str, str]]:
    """credentials_for(role_arn, session_name="ecs-task"): task-role credentials, issued by the ECS agent."""

    def issue(role_arn: str, session_name: str = "ecs-task") -> dict[str, str]:
        account = role_arn.split(":")[4]
        agent = demo_world.ecs_agents[account]
        sts = boto3.client(
            "sts",
            region_name=demo_world.region,
            endpoint_url=demo_world.endpoint_url,
            aws_access_key_id=agent.access_key_id,
            aws_secret_access_key=agent.secret_access_key,
        )
        issued = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
        return {
            "AWS_ACCESS_KEY_ID": issued["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": issued["SecretAccessKey"],
            "AWS_SESSION_TOKEN": issued["SessionToken"],
        }

    return issue


@pytest.fixture
def sign_with() -> TokenFactory:
    """sign_with(credentials, *, server_id, encoding="compact"|"vault", region="us-east-1") -> token."""

    def sign(
        credentials: dict[str, str],
        *,
        server_id: str = SERVER_ID,
        encoding: str = "compact",
        region: str = "us-east-1",
    ) -> str | dict[str, str]:
        request = sign_identity_request(
            ReadOnlyCredentials(
                credentials["AWS_ACCESS_KEY_ID"],
                credentials["AWS_SECRET_ACCESS_KEY"],
                credentials.get("AWS_SESSION_TOKEN"),
            ),
            server_id=server_id,
            region=region,
        )
        return encode_compact(request) if encoding == "compact" else encode_vault(request)

    return sign


@pytest.fixture
def replay_table(demo_world: DemoWorld, admin_client: ClientFactory) -> Iterator[str]:
    """A fresh replay table (key `pk`, a string) in the home account; its name for KUMA_IAM_REPLAY_TABLE."""
    name = f"kuma-iam-replay-{uuid.uuid4().hex[:8]}"
    dynamodb = admin_client(demo_world.home_account, "dynamodb")
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield name
    dynamodb.delete_table(TableName=name)


@pytest.fixture
def verifier_gateway(verify: Verifier, verifier_module: ModuleType, demo_world: DemoWorld) -> Iterator[str]:
    """The real verifier handler behind the local IAM-checking gateway; yields the /v1/verify URL.

    Only the control plane's key may call it, as with the template's AWS_IAM route authorization.
    """
    with LocalGateway(
        {VERIFY_ROUTE: verifier_module.lambda_handler},
        [control_plane_caller(demo_world)],
        api_account_id=demo_world.home_account,
        region=demo_world.region,
    ) as gateway:
        yield f"{gateway.endpoint_url}/v1/verify"


@pytest.fixture
def reconfigure(
    verify: Verifier, verifier_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., None]:
    """reconfigure(NAME=value, OTHER=None): change the verifier's environment (None unsets) mid-test; the
    next call builds a fresh verifier from it, with empty caches, as a new Lambda container would."""

    def apply(**environment: str | None) -> None:
        for name, value in environment.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        verifier_module.verifier.cache_clear()

    return apply


@pytest.fixture
def server_id(verifier_environment_vars: dict[str, str]) -> str:
    """The X-Kuma-AWS-IAM-Server-ID the verifier under test expects."""
    return verifier_environment_vars["KUMA_IAM_SERVER_ID"]


class _RecordText(logging.Handler):
    """Every std logging record as text: its message and all its attributes, `extra` fields included.

    Records of the embedded AWS itself are left out: moto runs in this process but stands for AWS's own
    servers (its access control logs each request, signature and all, at DEBUG).
    """

    AWS_SIDE = ("moto", "werkzeug")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".", 1)[0] not in self.AWS_SIDE:
            self.lines.append(f"{record.getMessage()} {vars(record)!r}")


class EverythingLogged:
    """All output of this test: stdout and stderr (EMF metrics among them), the Powertools Logger's lines,
    and every std logging record at DEBUG, from any library and any thread."""

    def __init__(self, capfd: pytest.CaptureFixture[str], records: _RecordText) -> None:
        self._capfd = capfd
        self._records = records
        self._captured: list[str] = []

    def discard(self) -> None:
        """Forget what was output so far (e.g. the test's own signing, which botocore logs at DEBUG)."""
        self._capfd.readouterr()
        self._captured.clear()
        self._records.lines.clear()

    def text(self) -> str:
        output = self._capfd.readouterr()
        self._captured.extend([output.out, output.err])
        return "".join(self._captured) + "\n".join(self._records.lines)


@pytest.fixture
def everything_logged(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[EverythingLogged]:
    """What the code under test logged, wherever it went.

    The Powertools handler keeps the stream it found at import (pytest's global capture, not capfd), so it
    is pointed at this test's captured stdout; without that, capfd would see no log line at all.
    """
    monkeypatch.setattr(powertools_logger.registered_handler, "stream", sys.stdout)
    records = _RecordText()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(records)
    root.setLevel(logging.DEBUG)
    yield EverythingLogged(capfd, records)
    root.removeHandler(records)
    root.setLevel(previous_level)
