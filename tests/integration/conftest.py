"""Integration tier: the real verifier handler against the embedded AWS (moto server, SigV4 checks on)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from kuma_iam.identity.token import encode_compact, encode_vault
from kuma_iam.observability import logger as powertools_logger
from kuma_iam_cli.local.compliance_demo import ecs_trust
from kuma_iam_cli.local.embedded_aws import EmbeddedAws
from kuma_iam_cli.local.events import VERIFY_ROUTE
from kuma_iam_cli.local.gateway import GatewayCaller, LocalGateway, load_handler
from kuma_iam_cli.local.provisioner_demo import ProvisionerDemo
from kuma_iam_cli.local.seed import (
    DemoWorld,
    compliance_environment,
    control_plane_caller,
    seed_demo_world,
    task_caller,
    verifier_environment,
)
from kuma_iam_cli.local.token_keys import (
    TokenKeys,
    seed_token_keys,
    token_issuer_environment,
    token_provisioner_environment,
)
from kuma_iam_cli.main import main
from kuma_iam_cli.signer import sign_identity_request
from support.aws_clients import ClientFactory, TaskRole, client_as
from support.captured_output import EverythingLogged, LogRecordText
from support.cli_runs import ISOLATED, CliRun
from support.clock import ManualClock
from support.compliance_harness import Compliance, FindingsInbox
from support.control_plane import CertificateAuthority, StandInControlPlane
from support.fake_aws import FakeAws, counting_proxy
from support.local_ports import refusing_port
from support.project_files import (
    COMPLIANCE_HANDLER,
    TOKEN_ISSUER_HANDLER,
    TOKEN_PROVISIONER_HANDLER,
    VERIFIER_HANDLER,
)
from support.provisioner_harness import EcsWorld, Provisioner
from support.token_issuer_harness import TokenIssuer
from support.upstream_timeouts import (
    PATIENT_SECONDS,
    TIMEOUT_VARIABLE,
    patient_provisioner_function_from_env,
    patient_token_issuer_from_env,
    patient_verifier_from_env,
)
from support.verifier_harness import SERVER_ID, TokenFactory, Verifier, read_only_credentials, signed_request

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
def seeded(embedded_aws: EmbeddedAws) -> tuple[DemoWorld, TokenKeys]:
    world = seed_demo_world(embedded_aws)
    keys = seed_token_keys(embedded_aws, world)
    embedded_aws.enable_signature_checks()
    return world, keys


@pytest.fixture(scope="session")
def demo_world(seeded: tuple[DemoWorld, TokenKeys]) -> DemoWorld:
    return seeded[0]


@pytest.fixture(scope="session")
def token_keys(seeded: tuple[DemoWorld, TokenKeys]) -> TokenKeys:
    """The issuer's signing keys (two KMS keys, a PEM key in Secrets Manager), revocations table and user."""
    return seeded[1]


@pytest.fixture(scope="session")
def provisioner_demo(demo_world: DemoWorld) -> ProvisionerDemo:
    """The served ECS cluster (and one not served), the demo tasks and their services' secrets."""
    return demo_world.provisioning


@pytest.fixture(scope="session")
def verifier_module() -> ModuleType:
    load_handler(VERIFIER_HANDLER)
    import sys

    return sys.modules["verifier"]


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
    """The handler with a verifier built for this test alone (fresh role cache, this test's environment).

    Its AWS calls wait 30 s unless the environment sets KUMA_IAM_UPSTREAM_TIMEOUT_SECONDS: moto shares this
    process, which a loaded machine stalls for seconds (support.upstream_timeouts)."""
    for name, value in verifier_environment_vars.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(verifier_module, "verifier_from_env", patient_verifier_from_env)
    verifier_module.verifier.cache_clear()
    yield Verifier(verifier_module, demo_world)
    verifier_module.verifier.cache_clear()


@pytest.fixture
def verifier_clock(
    verify: Verifier, verifier_module: ModuleType, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> ManualClock:
    """The handler's verifier reads the time from `clock`, which the test holds and moves: a decision on a
    token's age or skew is then exact however slow the run. (`reconfigure` builds a verifier on the wall
    clock again.)"""
    monkeypatch.setattr(verifier_module.verifier(), "clock", clock)
    return clock


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


# --- What the verifier sends to AWS, observed on the wire; roles and tables made for one test. ---


@pytest.fixture
def aws_proxy(demo_world: DemoWorld) -> Iterator[FakeAws]:
    """A recording pass-through to the embedded AWS for this test alone; point AWS_ENDPOINT_URL_* at its
    `url`. A test may script it again (Delayed, StandInSts) to change what some calls meet."""
    with counting_proxy(demo_world.endpoint_url, name="aws-proxy") as proxy:
        yield proxy


@pytest.fixture(scope="module")
def aws_counter(embedded_aws: EmbeddedAws) -> Iterator[FakeAws]:
    """The same pass-through, one per module, for suites of many cases: each resets its requests first."""
    with counting_proxy(embedded_aws.endpoint_url, name="aws-counter") as proxy:
        yield proxy


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port nothing listens on: connections to it are refused at once, for the whole test."""
    with refusing_port() as port:
        yield port


@pytest.fixture
def admin_client(demo_world: DemoWorld) -> ClientFactory:
    """admin_client(account, service): a client signed by the account's embedded-admin (every right)."""

    def make(account: str, service: str) -> Any:
        return client_as(demo_world, service, demo_world.admins[account])

    return make


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
        sts = client_as(demo_world, "sts", demo_world.ecs_agents[role_arn.split(":")[4]])
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
            read_only_credentials(credentials), server_id=server_id, region=region
        )
        return encode_compact(request) if encoding == "compact" else encode_vault(request)

    return sign


@pytest.fixture
def replay_table(demo_world: DemoWorld, admin_client: ClientFactory) -> Iterator[str]:
    """A fresh replay table in the home account, shaped like the template's ReplayTable (key `pk`, a string;
    TTL on expiresAt); its name for KUMA_IAM_REPLAY_TABLE."""
    name = f"kuma-iam-replay-{uuid.uuid4().hex[:8]}"
    dynamodb = admin_client(demo_world.home_account, "dynamodb")
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"}
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


class _CurrentStdout:
    """sys.stdout as it is at each write (a stream object kept from the fixture's setup would be closed)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def everything_logged(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[EverythingLogged]:
    """What the code under test logged, wherever it went.

    The Powertools handler keeps the stream it found at import (pytest's global capture, not capfd), so it
    is pointed at this test's captured stdout: whichever that is when a line is written, since pytest closes
    the capture it made for the fixtures' setup and makes another for the test itself.
    """
    monkeypatch.setattr(powertools_logger.registered_handler, "stream", _CurrentStdout())
    records = LogRecordText()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(records)
    root.setLevel(logging.DEBUG)
    yield EverythingLogged(capfd, records)
    root.removeHandler(records)
    root.setLevel(previous_level)


# --- Tag compliance: the real handler on the demo world, its outputs read back from SQS ---


@pytest.fixture(scope="session")
def compliance_module() -> ModuleType:
    load_handler(COMPLIANCE_HANDLER)
    return sys.modules["tag_compliance"]


@pytest.fixture
def idempotency_table(demo_world: DemoWorld, admin_client: ClientFactory) -> Iterator[str]:
    """A fresh idempotency table for one test, shaped like the template's (key `id`, TTL on `expiration`)."""
    name = f"kuma-iam-idempotency-{uuid.uuid4().hex[:8]}"
    dynamodb = admin_client(demo_world.home_account, "dynamodb")
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield name
    dynamodb.delete_table(TableName=name)


@pytest.fixture
def compliance(
    compliance_module: ModuleType,
    demo_world: DemoWorld,
    idempotency_table: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Compliance]:
    """compliance(event): the handler as EventBridge calls it, report mode, its own idempotency table; two
    attempts per AWS call (the deployed default is five) so that fault tests do not wait out the backoff, each
    waiting patiently for moto, which shares this process (support.upstream_timeouts); a test about a hang
    sets a short timeout itself."""
    environment = compliance_environment(demo_world) | {
        "KUMA_IAM_IDEMPOTENCY_TABLE": idempotency_table,
        "KUMA_IAM_UPSTREAM_ATTEMPTS": "2",
        TIMEOUT_VARIABLE: str(PATIENT_SECONDS),
    }
    yield Compliance(compliance_module, environment, monkeypatch)
    compliance_module.compliance.cache_clear()


@pytest.fixture
def findings_inbox(demo_world: DemoWorld) -> Iterator[FindingsInbox]:
    with FindingsInbox(demo_world).open() as inbox:
        yield inbox


@pytest.fixture
def make_role(demo_world: DemoWorld, admin_client: ClientFactory) -> Iterator[Callable[..., str]]:
    """make_role(account, name, tags, trust=None): a role for this test only (an ECS trust with the source
    condition unless given), deleted afterwards; returns its ARN."""
    made: list[tuple[str, str]] = []

    def make(account: str, name: str, tags: dict[str, str], trust: dict[str, Any] | None = None) -> str:
        role = admin_client(account, "iam").create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust if trust is not None else ecs_trust(account)),
            Tags=[{"Key": key, "Value": value} for key, value in tags.items()],
        )["Role"]
        made.append((account, name))
        return str(role["Arn"])

    yield make
    for account, name in made:
        with contextlib.suppress(admin_client(account, "iam").exceptions.NoSuchEntityException):
            admin_client(account, "iam").delete_role(RoleName=name)


# --- The kuma-iam command in this process. ---


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., CliRun]:
    """run_cli(*argv, **environment): main() in this process, with only `environment` for AWS settings."""

    def run(*argv: str, **environment: str) -> CliRun:
        with monkeypatch.context() as patch:
            for name in list(os.environ):
                if name.startswith("AWS_"):
                    patch.delenv(name)
            for name, value in {**ISOLATED, **environment}.items():
                patch.setenv(name, value)
            capsys.readouterr()
            code = main(list(argv))
            out, err = capsys.readouterr()
        return CliRun(code, out, err)

    return run


# --- the token issuer ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def issuer_module() -> ModuleType:
    load_handler(TOKEN_ISSUER_HANDLER)
    return sys.modules["token_issuer"]


@pytest.fixture
def issuer_environment_vars(demo_world: DemoWorld, token_keys: TokenKeys, server_id: str) -> dict[str, str]:
    """The issuer's environment; a test may change it before asking for `issuer`."""
    return token_issuer_environment(demo_world, token_keys, server_id=server_id)


@pytest.fixture
def issuer(
    issuer_module: ModuleType,
    demo_world: DemoWorld,
    issuer_environment_vars: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[TokenIssuer]:
    """The handler with an issuer built for this test alone (fresh caches, keys loaded anew), patient with
    moto unless the environment sets KUMA_IAM_UPSTREAM_TIMEOUT_SECONDS (support.upstream_timeouts)."""
    for name, value in issuer_environment_vars.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(issuer_module, "token_issuer_from_env", patient_token_issuer_from_env)
    issuer_module.issuer.cache_clear()
    yield TokenIssuer(issuer_module, demo_world)
    issuer_module.issuer.cache_clear()


@pytest.fixture
def issuer_clock(
    issuer: TokenIssuer, issuer_module: ModuleType, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> ManualClock:
    """The issuer's identity check reads the time from `clock`, as `verifier_clock` does for the verifier.
    (`reconfigure_issuer` builds an issuer on the wall clock again.)"""
    monkeypatch.setattr(issuer_module.issuer().verifier, "clock", clock)
    return clock


@pytest.fixture
def reconfigure_issuer(
    issuer: TokenIssuer, issuer_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., None]:
    """reconfigure_issuer(NAME=value, OTHER=None): a new container with this environment."""

    def apply(**environment: str | None) -> None:
        for name, value in environment.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        issuer_module.issuer.cache_clear()

    return apply


@pytest.fixture
def task_session(demo_world: DemoWorld) -> Callable[..., tuple[dict[str, str], GatewayCaller]]:
    """task_session(account, role, session="ecs-task") -> (credentials, the API caller they make)."""

    def issue(account: str, role: str, session: str = "ecs-task") -> tuple[dict[str, str], GatewayCaller]:
        return task_caller(demo_world, account, role, session)

    return issue


@pytest.fixture
def published(issuer: TokenIssuer, demo_world: DemoWorld) -> Callable[[], dict[str, Any]]:
    """GET /v1/keys as the control plane's operator would call it."""

    def read() -> dict[str, Any]:
        answer = issuer.keys(control_plane_caller(demo_world))
        assert answer.status == 200, answer.body
        return answer.body

    return read


# --- the token provisioner -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def provisioner_module() -> ModuleType:
    load_handler(TOKEN_PROVISIONER_HANDLER)
    return sys.modules["token_provisioner"]


@pytest.fixture
def provisioner(
    provisioner_module: ModuleType,
    demo_world: DemoWorld,
    token_keys: TokenKeys,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Provisioner]:
    """provisioner(event): the handler as EventBridge calls it, as its own least-privilege user; two
    attempts per AWS call so that fault tests do not wait out the backoff, each waiting patiently for moto,
    which shares this process, unless a test about a hang sets KUMA_IAM_UPSTREAM_TIMEOUT_SECONDS itself
    (support.upstream_timeouts: in the builder, not the environment, which the other handlers share)."""
    environment = token_provisioner_environment(demo_world, token_keys) | {
        "KUMA_IAM_UPSTREAM_ATTEMPTS": "2",
    }
    monkeypatch.setattr(
        provisioner_module, "provisioner_function_from_env", patient_provisioner_function_from_env
    )
    yield Provisioner(provisioner_module, environment, monkeypatch)
    provisioner_module.provisioner.cache_clear()


@pytest.fixture
def ecs_world(demo_world: DemoWorld, provisioner_demo: ProvisionerDemo) -> Iterator[EcsWorld]:
    """The served cluster as its administrator sees it; the tasks a test starts are stopped after it."""
    world = EcsWorld(demo_world, provisioner_demo)
    yield world
    world.stop_started()


# --- the control plane as the provisioner's signer ------------------------------------------------------


@pytest.fixture(scope="session")
def authority() -> CertificateAuthority:
    """A CA made for the session, and a certificate it signed for 127.0.0.1."""
    return CertificateAuthority.make()


@pytest.fixture
def control_plane(authority: CertificateAuthority, tmp_path: Path) -> Iterator[StandInControlPlane]:
    """A stand-in control plane token API over HTTPS (support/control_plane.py), its own admin token."""
    with StandInControlPlane(
        admin_token=secrets.token_urlsafe(48), authority=authority, workdir=tmp_path
    ) as cp:
        yield cp


@pytest.fixture
def cp_secrets(
    demo_world: DemoWorld, admin_client: ClientFactory, control_plane: StandInControlPlane
) -> dict[str, str]:
    """The admin token and the CA bundle, as the operator stores them: secret name -> ARN."""
    manager = admin_client(demo_world.home_account, "secretsmanager")
    suffix = uuid.uuid4().hex[:8]
    return {
        "token": manager.create_secret(
            Name=f"kuma-cp/admin-token-{suffix}", SecretString=control_plane.admin_token
        )["ARN"],
        "ca": manager.create_secret(Name=f"kuma-cp/ca-{suffix}", SecretString=control_plane.authority.ca_pem)[
            "ARN"
        ],
    }


@pytest.fixture
def via_control_plane(
    provisioner: Provisioner, control_plane: StandInControlPlane, cp_secrets: dict[str, str]
) -> Provisioner:
    """The provisioner with the control plane as its signer (no signing keys of its own)."""
    provisioner.configure(
        KUMA_IAM_TOKEN_SIGNER="control-plane",
        KUMA_IAM_CP_URL=control_plane.url,
        KUMA_IAM_CP_TOKEN_SECRET=cp_secrets["token"],
        KUMA_IAM_CP_CA_SECRET=cp_secrets["ca"],
        KUMA_IAM_SIGNING_KEYS=None,
    )
    return provisioner
