"""The control plane as the provisioner's signer, as Kong Mesh's ECS token controller used it: POST
/tokens/dataplane with an admin user token from Secrets Manager, over TLS to the CA in Secrets Manager.
Against a stand-in that checks requests as the control plane does (support/control_plane.py);
everything else is the embedded AWS."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kuma_iam.errors import UpstreamError
from kuma_iam_cli.local.provisioner_events import task_state_change
from kuma_iam_cli.local.seed import HOME_ACCOUNT
from support.aws_clients import ClientFactory, TaskRole
from support.captured_output import EverythingLogged
from support.control_plane import CertificateAuthority, Reply, StandInControlPlane, kuma_error
from support.kuma_rules import validate_dataplane_token
from support.provisioner_harness import EcsWorld, Provisioner, issued_services, reasons
from support.upstream_timeouts import HANG_SECONDS

pytestmark = pytest.mark.integration


@pytest.fixture
def service_task(ecs_world: EcsWorld, make_task_role: Callable[..., TaskRole]) -> tuple[str, str]:
    service = ecs_world.new_service("cp")
    role = make_task_role(
        HOME_ACCOUNT,
        f"{service}-task",
        {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "kuma.io/service": service},
    )
    ecs_world.make_secret(service)
    return service, ecs_world.start_task(service, role.arn)


def test_the_control_plane_signs_the_token_the_provisioner_puts(
    via_control_plane: Provisioner,
    control_plane: StandInControlPlane,
    ecs_world: EcsWorld,
    service_task: tuple[str, str],
) -> None:
    # Given a tagged task whose service's secret is empty
    service, task = service_task

    # When its start is reported
    answer = via_control_plane(task_state_change(ecs_world.cluster_arn, task))

    # Then the control plane was asked once, as its API expects, by the admin user
    (request,) = control_plane.requests
    assert request.method == "POST"
    assert request.path == "/tokens/dataplane"
    assert request.headers["Authorization"] == f"Bearer {control_plane.admin_token}"
    assert json.loads(request.body) == {
        "name": "",
        "mesh": "default",
        "tags": {"kuma.io/service": [service]},
        "type": "dataplane",
        "workload": "",
        "validFor": "24h",
    }
    # And its token is in the secret, and the control plane's own key admits the service's tasks with it
    (issued,) = answer["issued"]
    token = ecs_world.document(service)["token"]
    claims = validate_dataplane_token(
        token,
        {"1": control_plane.public_key_pem()},
        now=time.time(),
        mesh="default",
        name="any-task",
        tags={"kuma.io/service": [service]},
    )
    assert claims["jti"] == issued["jti"]


def test_a_good_token_from_the_control_plane_is_not_asked_for_again(
    via_control_plane: Provisioner,
    control_plane: StandInControlPlane,
    ecs_world: EcsWorld,
    service_task: tuple[str, str],
) -> None:
    # Given a token the control plane signed (whose key the provisioner does not have)
    _service, task = service_task
    event = task_state_change(ecs_world.cluster_arn, task)
    via_control_plane(event)

    # When the same event comes again: the token is judged on all but its signature, and kept
    again = via_control_plane(event)

    # Then the control plane was asked once in all
    assert reasons(again) == {task: "token_valid"}
    assert len(control_plane.requests) == 1


def test_a_control_plane_whose_certificate_the_ca_does_not_sign_is_refused(
    via_control_plane: Provisioner,
    control_plane: StandInControlPlane,
    ecs_world: EcsWorld,
    service_task: tuple[str, str],
    admin_client: ClientFactory,
    cp_secrets: dict[str, str],
    everything_logged: EverythingLogged,
) -> None:
    # Given the configured CA bundle is another CA's
    admin_client(HOME_ACCOUNT, "secretsmanager").put_secret_value(
        SecretId=cp_secrets["ca"], SecretString=CertificateAuthority.make("someone else's CA").ca_pem
    )
    service, task = service_task
    everything_logged.discard()

    # When a task starts, the invocation fails (Lambda will deliver it again), naming the CA
    with pytest.raises(UpstreamError, match="not signed by the configured CA") as raised:
        via_control_plane(task_state_change(ecs_world.cluster_arn, task))

    # Then nothing reached the API (the TLS handshake failed first) and the secret is untouched
    assert raised.value.service == "kuma-cp"
    assert control_plane.requests == []
    assert ecs_world.document(service) == {}
    # And the admin token went nowhere, logs included
    assert control_plane.admin_token not in everything_logged.text()


def test_a_rotated_admin_token_is_read_again_once_the_control_plane_refuses_the_old(
    via_control_plane: Provisioner,
    control_plane: StandInControlPlane,
    ecs_world: EcsWorld,
    service_task: tuple[str, str],
    admin_client: ClientFactory,
    cp_secrets: dict[str, str],
    make_task_role: Callable[..., TaskRole],
) -> None:
    # Given a warm container that read the admin token, which the operator then rotates
    _service, task = service_task
    via_control_plane(task_state_change(ecs_world.cluster_arn, task))
    rotated = secrets.token_urlsafe(48)
    admin_client(HOME_ACCOUNT, "secretsmanager").put_secret_value(
        SecretId=cp_secrets["token"], SecretString=rotated
    )
    control_plane.admin_token = rotated
    other = ecs_world.new_service("cp")
    role = make_task_role(
        HOME_ACCOUNT,
        f"{other}-task",
        {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "kuma.io/service": other},
    )
    ecs_world.make_secret(other)

    # When another service's task starts in the same container
    answer = via_control_plane(
        task_state_change(ecs_world.cluster_arn, ecs_world.start_task(other, role.arn)), fresh=False
    )

    # Then the refused old token was replaced by the rotated one, and the token issued
    assert issued_services(answer) == [other]
    statuses = [request.headers["Authorization"] for request in control_plane.requests[1:]]
    assert statuses[-1] == f"Bearer {rotated}"
    assert len(statuses) == 2  # the refused attempt, and the one with the rotated token


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            lambda cp, request: kuma_error(403, "Access denied", "user cannot generate dataplane tokens"),
            "403",
        ),
        (lambda cp, request: kuma_error(500, "Internal server error"), "500"),
        (lambda cp, request: Reply(200, b"<html>a proxy's page</html>", "text/html"), "not a token"),
        (
            lambda cp, request: Reply(200, cp.token(request, Mesh="payments").encode(), "text/plain"),
            "something else than asked",
        ),
        (
            lambda cp, request: Reply(
                200, cp.token(request, Tags={"kuma.io/service": ["*"]}).encode(), "text/plain"
            ),
            "something else than asked",
        ),
    ],
    ids=["forbidden", "5xx", "not-a-token", "another-mesh", "another-service"],
)
def test_a_refusal_or_a_wrong_token_from_the_control_plane_puts_nothing(
    reply: Callable[[StandInControlPlane, dict[str, Any]], Reply],
    message: str,
    via_control_plane: Provisioner,
    control_plane: StandInControlPlane,
    ecs_world: EcsWorld,
    service_task: tuple[str, str],
) -> None:
    # Given the control plane answering in the case's way
    control_plane.answer_with = lambda request: reply(control_plane, request)
    service, task = service_task

    # When a task starts, the invocation fails closed, saying why
    with pytest.raises(UpstreamError, match=message) as raised:
        via_control_plane(task_state_change(ecs_world.cluster_arn, task))

    # Then nothing was put
    assert raised.value.service == "kuma-cp"
    assert ecs_world.document(service) == {}


def test_a_throttling_control_plane_is_reported_as_throttled(
    via_control_plane: Provisioner,
    control_plane: StandInControlPlane,
    ecs_world: EcsWorld,
    service_task: tuple[str, str],
) -> None:
    control_plane.answer_with = lambda request: kuma_error(429, "Too many requests")
    _, task = service_task
    with pytest.raises(UpstreamError) as raised:
        via_control_plane(task_state_change(ecs_world.cluster_arn, task))
    assert raised.value.status == 429


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("KUMA_IAM_CP_URL", "http://127.0.0.1:5681", "https://"),
        ("KUMA_IAM_CP_URL", "https://admin:secret@kuma-cp:5682", "credentials"),
        ("KUMA_IAM_CP_TOKEN_SECRET", "kuma-cp/admin-token", "not a Secrets Manager secret ARN"),
    ],
)
def test_a_control_plane_misconfigured_fails_at_start_naming_the_variable(
    variable: str, value: str, problem: str, via_control_plane: Provisioner, ecs_world: EcsWorld
) -> None:
    from kuma_iam.errors import ConfigError

    via_control_plane.configure(**{variable: value})
    with pytest.raises(ConfigError, match=f"{variable}.*{problem}"):
        via_control_plane(task_state_change(ecs_world.cluster_arn, f"{ecs_world.cluster_arn}/x"))


# --- a control plane that misbehaves: each fails the invocation closed, naming what went wrong -------------


def _unsigned(cp: StandInControlPlane, request: dict[str, Any]) -> Reply:
    claims = cp.token(request).split(".")[1]
    none = base64.urlsafe_b64encode(b'{"alg":"none","kid":"1"}').rstrip(b"=").decode()
    return Reply(200, f"{none}.{claims}.".encode(), "text/plain")


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (
            # (it holds far past the ceiling below: an answer in time can only be the function giving up)
            lambda cp, request: Reply(200, b"", pause_seconds=HANG_SECONDS),
            "cannot reach the control plane: ReadTimeout",
        ),
        (
            lambda cp, request: Reply(200, cp.token(request).encode(), "text/plain", drip_seconds=0.4),
            "did not arrive in time",
        ),
        (lambda cp, request: Reply(200, b"e30." * 50_000, "text/plain"), "more than 65536 bytes"),
        (lambda cp, request: Reply(200, bytes(range(256)) * 4, "application/octet-stream"), "not a token"),
        (lambda cp, request: Reply(0, b"", raw=b"\x16\x03\x01 no HTTP here\r\n\r\n"), "cannot reach"),
        (_unsigned, "something else than asked"),
        (
            lambda cp, request: Reply(200, cp.token(request, Name="someone-else").encode(), "text/plain"),
            "something else than asked",
        ),
    ],
    ids=["hangs", "trickles", "floods", "binary", "not-http", "alg-none", "another-name"],
)
def test_a_control_plane_that_hangs_trickles_floods_or_answers_garbage_fails_closed_in_time(
    reply: Callable[[StandInControlPlane, dict[str, Any]], Reply],
    problem: str,
    via_control_plane: Provisioner,
    control_plane: StandInControlPlane,
    ecs_world: EcsWorld,
    service_task: tuple[str, str],
    everything_logged: EverythingLogged,
) -> None:
    # Given the control plane misbehaving in the case's way, and a 1 s read timeout
    control_plane.answer_with = lambda request: reply(control_plane, request)
    via_control_plane.configure(KUMA_IAM_UPSTREAM_TIMEOUT_SECONDS="1")
    service, task = service_task

    # When a task starts
    began = time.monotonic()
    with pytest.raises(UpstreamError, match=problem) as raised:
        via_control_plane(task_state_change(ecs_world.cluster_arn, task))

    # Then the invocation failed closed (Lambda delivers the event again), well inside the function's
    # timeout, asked once, and nothing was put
    assert time.monotonic() - began < 60  # a ceiling for "did not hang", not a speed target
    assert raised.value.service == "kuma-cp"
    assert len(control_plane.requests) == 1
    assert ecs_world.document(service) == {}
    # And the admin token went nowhere, logs included
    assert control_plane.admin_token not in everything_logged.text()


def test_a_redirect_is_an_answer_and_the_admin_token_follows_it_nowhere(
    via_control_plane: Provisioner,
    control_plane: StandInControlPlane,
    authority: CertificateAuthority,
    tmp_path: Path,
    ecs_world: EcsWorld,
    service_task: tuple[str, str],
) -> None:
    # Given the control plane redirecting token requests to another server the CA vouches for
    with StandInControlPlane(admin_token="elsewhere", authority=authority, workdir=tmp_path) as elsewhere:
        control_plane.answer_with = lambda request: Reply(
            307, b"", headers=(("Location", f"{elsewhere.url}/tokens/dataplane"),)
        )
        service, task = service_task

        # When a task starts
        with pytest.raises(UpstreamError, match=r"refused the token request \(307\)"):
            via_control_plane(task_state_change(ecs_world.cluster_arn, task))

        # Then the other server was never asked, and nothing was put
        assert elsewhere.requests == []
    assert ecs_world.document(service) == {}


def test_a_control_plane_url_that_speaks_no_tls_is_named_as_such(
    via_control_plane: Provisioner, ecs_world: EcsWorld, service_task: tuple[str, str]
) -> None:
    # Given KUMA_IAM_CP_URL pointing at a plain-HTTP port (the API's 5681 instead of its 5682)
    with plain_http_server() as port:
        via_control_plane.configure(KUMA_IAM_CP_URL=f"https://127.0.0.1:{port}")
        service, task = service_task

        # When a task starts, the invocation fails closed, naming TLS, not the CA
        with pytest.raises(UpstreamError, match="no TLS session with the control plane") as raised:
            via_control_plane(task_state_change(ecs_world.cluster_arn, task))

    assert "not signed by the configured CA" not in raised.value.message
    assert ecs_world.document(service) == {}


@contextlib.contextmanager
def plain_http_server() -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_an_error_that_echoes_the_admin_token_never_puts_it_in_a_log(
    via_control_plane: Provisioner,
    control_plane: StandInControlPlane,
    ecs_world: EcsWorld,
    service_task: tuple[str, str],
    everything_logged: EverythingLogged,
) -> None:
    # Given a control plane (or a proxy in front of it) whose error repeats the request's Authorization header
    control_plane.answer_with = lambda request: kuma_error(
        502, "Bad gateway", f"upstream refused Authorization: Bearer {control_plane.admin_token}"
    )
    _, task = service_task
    everything_logged.discard()

    # When a task starts, the invocation fails closed with the control plane's words
    with pytest.raises(UpstreamError, match="Bad gateway - upstream refused") as raised:
        via_control_plane(task_state_change(ecs_world.cluster_arn, task))

    # Then the admin token is in neither the error nor any log line
    assert control_plane.admin_token not in raised.value.message
    assert "<the admin token>" in raised.value.message
    assert control_plane.admin_token not in everything_logged.text()
