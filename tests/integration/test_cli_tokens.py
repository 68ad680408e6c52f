"""The token commands as a sidecar and an operator run them: `kuma-iam dataplane-token` against the real
issuer behind the local IAM-checking gateway (and a stand-in issuer that fails on cue); `kuma-iam tokens`."""

from __future__ import annotations

import base64
import json
import re
import signal
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from kuma_iam_cli.local.expected import expected_answers, mismatches
from kuma_iam_cli.local.gateway import GatewayCaller, LocalGateway, LocalLambdaContext
from kuma_iam_cli.local.seed import HOME_ACCOUNT, DemoWorld, control_plane_caller, task_caller
from kuma_iam_cli.local.token_events import TOKEN_ISSUER_CASES, TokenIssuerCase, token_issuer_event
from kuma_iam_cli.local.token_keys import TokenKeys
from support.cli_runs import CEILING_SECONDS, KUMA_IAM, CliRun, isolated_environment, run_command
from support.fake_aws import Answer, Computed, FakeAws
from support.kuma_rules import (
    Rejected,
    dataplane_keys_for,
    validate_dataplane_token,
    validate_zone_token,
    zone_keys_for,
)
from support.project_files import REPO
from support.token_issuer_harness import KEYS_ROUTE, TOKENS_ROUTE, TokenIssuer
from support.verifier_harness import SERVER_ID

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning"),
]

BACKEND_TAGS = {"kuma.io/service": ["backend"]}


@dataclass(frozen=True)
class IssuerApi:
    url: str
    sessions: dict[str, dict[str, str]]  # role -> AWS_* environment of a task with that role
    operator: dict[str, str]  # the control plane's user: may read the keys

    def task(self, role: str) -> dict[str, str]:
        return self.sessions[role]


def environment_of(credentials: dict[str, str], world: DemoWorld) -> dict[str, str]:
    return {**credentials, "AWS_REGION": world.region, "KUMA_IAM_SERVER_ID": SERVER_ID}


@pytest.fixture
def issuer_api(issuer: TokenIssuer, issuer_module: ModuleType, demo_world: DemoWorld) -> Iterator[IssuerApi]:
    """The real issuer behind the local gateway; the callers it admits are task sessions and the operator."""
    sessions: dict[str, dict[str, str]] = {}
    callers: list[GatewayCaller] = [control_plane_caller(demo_world)]
    for role in ("backend-task", "frontend-task", "ingress-task"):
        credentials, caller = task_caller(demo_world, HOME_ACCOUNT, role)
        sessions[role] = environment_of(credentials, demo_world)
        callers.append(caller)
    routes = {TOKENS_ROUTE: issuer_module.lambda_handler, KEYS_ROUTE: issuer_module.lambda_handler}
    with LocalGateway(
        routes, callers, api_account_id=demo_world.home_account, region=demo_world.region
    ) as gw:
        user = demo_world.control_plane
        operator = {
            "AWS_ACCESS_KEY_ID": user.access_key_id,
            "AWS_SECRET_ACCESS_KEY": user.secret_access_key,
            "AWS_REGION": demo_world.region,
        }
        yield IssuerApi(gw.endpoint_url, sessions, operator)


def published_keys(api: IssuerApi) -> dict[str, Any]:
    done = run_command("tokens", "keys", "--url", f"{api.url}/v1/keys", "--format", "json", **api.operator)
    assert done.code == 0, done.err
    document: dict[str, Any] = json.loads(done.out)
    return document


def one_line(done: CliRun) -> str:
    """What a failed command says: one line, never a traceback."""
    assert "Traceback" not in done.err, done.err
    lines = done.err.strip().splitlines()
    assert len(lines) == 1, done.err
    return lines[0]


# --- dataplane-token ----------------------------------------------------------------------------------------


def test_dataplane_token_writes_a_token_kuma_accepts(issuer_api: IssuerApi, tmp_path: Path) -> None:
    # When the backend task runs the command as its init container would
    output = tmp_path / "token"
    asked_at = int(time.time())
    done = run_command(
        "dataplane-token",
        *("--url", f"{issuer_api.url}/v1/tokens", "--mesh", "default", "--name", "backend-01"),
        *("--service", "backend", "--valid-for", "30m", "--output", str(output)),
        **issuer_api.task("backend-task"),
    )
    answered_at = int(time.time()) + 1
    # Then it exits 0 having written a token only its user may read, and says so without the token
    assert done.code == 0, done.err
    token = output.read_text()
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert token not in done.err + done.out
    assert "wrote" in one_line(done)
    # And a control plane configured from `kuma-iam tokens keys` admits backend-01 with it, for 30 minutes
    keys = dataplane_keys_for(published_keys(issuer_api), "default")
    claims = validate_dataplane_token(
        token, keys, now=time.time(), mesh="default", name="backend-01", tags=BACKEND_TAGS
    )
    # (counted from a moment while the command ran, however long a loaded machine made that)
    assert asked_at + 1800 <= claims["exp"] <= answered_at + 1800


def test_a_zone_ingress_gets_a_zone_token(
    issuer_api: IssuerApi, tmp_path: Path, token_keys: TokenKeys
) -> None:
    output = tmp_path / "token"
    done = run_command(
        "dataplane-token",
        *("--url", f"{issuer_api.url}/v1/tokens", "--type", "ingress", "--name", "ingress-01"),
        *("--zone", token_keys.zone, "--output", str(output)),
        **issuer_api.task("ingress-task"),
    )
    assert done.code == 0, done.err
    zone_keys = zone_keys_for(published_keys(issuer_api))
    validate_zone_token(output.read_text(), zone_keys, now=time.time(), zone=token_keys.zone, scope="ingress")


@pytest.mark.parametrize(
    ("flags", "code", "message"),
    [
        (("--mesh", "payments", "--service", "backend"), 1, "denied (mesh_mismatch)"),
        (("--mesh", "default", "--service", "admin"), 1, "denied (service_mismatch)"),
        (
            ("--mesh", "default", "--service", "backend", "--valid-for", "48h"),
            2,
            "longer than this issuer's maximum",
        ),
        (("--mesh", "default", "--service", "backend", "--valid-for", "soon"), 2, "not a duration"),
        (("--service", "backend"), 2, "--mesh is required for a dataplane"),
    ],
    ids=["denied-mesh", "denied-service", "too-long", "bad-duration", "no-mesh"],
)
def test_dataplane_token_exits_1_when_denied_and_2_on_error(
    flags: tuple[str, ...], code: int, message: str, issuer_api: IssuerApi, tmp_path: Path
) -> None:
    output = tmp_path / "token"
    done = run_command(
        "dataplane-token",
        *("--url", f"{issuer_api.url}/v1/tokens", "--name", "backend-01", "--output", str(output), *flags),
        **issuer_api.task("backend-task"),
    )
    assert done.code == code, done.err
    assert message in one_line(done)
    assert not output.exists()


def test_a_caller_without_execute_api_rights_is_told_so(issuer_api: IssuerApi, tmp_path: Path) -> None:
    # Given credentials the gateway does not admit (the IAM authorizer's 403, not the issuer's)
    stranger = {**issuer_api.task("backend-task"), "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    done = run_command(
        "dataplane-token",
        *(
            "--url",
            f"{issuer_api.url}/v1/tokens",
            "--mesh",
            "default",
            "--name",
            "b",
            "--output",
            str(tmp_path / "t"),
        ),
        **stranger,
    )
    assert done.code == 2
    assert "execute-api:Invoke" in one_line(done)


def test_without_credentials_or_server_id_it_exits_2(issuer_api: IssuerApi, tmp_path: Path) -> None:
    argv = ("dataplane-token", "--url", f"{issuer_api.url}/v1/tokens", "--mesh", "default", "--name", "b")
    no_credentials = run_command(*argv, "--output", str(tmp_path / "t"), KUMA_IAM_SERVER_ID=SERVER_ID)
    assert no_credentials.code == 2
    assert "no AWS credentials" in one_line(no_credentials)
    no_server_id = run_command(*argv, "--output", str(tmp_path / "t"), AWS_REGION="us-east-1")
    assert no_server_id.code == 2
    assert "--server-id" in one_line(no_server_id)


def test_an_unreachable_issuer_is_retried_then_reported(
    issuer_api: IssuerApi, closed_port: int, tmp_path: Path
) -> None:
    # (10 s to retry in: the first attempt, signing included, must leave room for one back-off of at most
    # 1 s, however slowly a loaded machine makes it)
    started = time.monotonic()
    done = run_command(
        "dataplane-token",
        *("--url", f"http://127.0.0.1:{closed_port}/v1/tokens", "--mesh", "default", "--name", "b"),
        *("--output", str(tmp_path / "t"), "--retry-for", "10s"),
        **issuer_api.task("backend-task"),
    )
    assert done.code == 2
    lines = done.err.strip().splitlines()
    assert "Traceback" not in done.err
    assert all("cannot reach http://127.0.0.1" in line for line in lines), lines
    assert len(lines) >= 2, "at least one retry was announced before giving up"
    assert time.monotonic() - started < CEILING_SECONDS  # gave up, did not retry for ever


# --- --refresh against a stand-in issuer that fails on cue --------------------------------------------------


def issued_answer(jti: str, expires_in: float) -> Computed:
    """The issuer's answer, its expiry counted from the moment it is served (a loaded machine may take many
    seconds to start the command: counted from the script, a 4 s token could arrive expired)."""
    return Computed(lambda _: _issued(jti, expires_in))


def _issued(jti: str, expires_in: float) -> Answer:
    expires = datetime.now(UTC) + timedelta(seconds=expires_in)
    body = {
        "token": f"eyJhbGciOiJSUzI1NiJ9.{jti}.c2ln",
        "kid": "1",
        "jti": jti,
        "expiresAt": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return Answer(200, json.dumps(body).encode(), (("Content-Type", "application/json"),))


def held_jti(token_file: Path) -> str | None:
    """The jti (the stand-in's middle part) of the token the file holds now, if any."""
    return token_file.read_text().split(".")[1] if token_file.exists() else None


def test_refresh_renews_rides_out_503_and_429_and_stops_on_sigterm(
    issuer_api: IssuerApi, tmp_path: Path
) -> None:
    # Given a stand-in issuer: unavailable, a short-lived token, throttling, then a long-lived token
    output = tmp_path / "token"
    with FakeAws(name="stand-in-issuer") as stand_in:
        stand_in.script(
            Answer(503, b'{"error":"upstream_unavailable","message":"KMS"}', (("Retry-After", "1"),)),
            issued_answer("first", expires_in=4),
            Answer(429, b'{"error":"upstream_throttled","message":"slow down"}', (("Retry-After", "1"),)),
            issued_answer("second", expires_in=3600),
            then=Answer(599, b"no more expected"),
        )
        # When the sidecar keeps its token fresh
        process = subprocess.Popen(
            [
                KUMA_IAM,
                *("dataplane-token", "--url", f"{stand_in.url}/v1/tokens", "--mesh", "default"),
                *("--name", "backend-01", "--output", str(output), "--refresh"),
            ],
            env=isolated_environment(**issuer_api.task("backend-task")),
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # (waits for the renewed token in the file; which tokens were written, and in what order, the
            # command's own report says: a poll of the file can miss one while a loaded machine stalls it)
            deadline = time.monotonic() + CEILING_SECONDS
            while time.monotonic() < deadline and process.poll() is None and held_jti(output) != "second":
                time.sleep(0.05)
            # Then the token was renewed (past a 429), only its user may read it
            assert held_jti(output) == "second"
            assert stat.S_IMODE(output.stat().st_mode) == 0o600
            # And SIGTERM ends it cleanly, the last token in place and nothing half-written beside it
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=CEILING_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
        stderr = process.stderr.read() if process.stderr else ""
        assert code == 0, stderr
        assert "Traceback" not in stderr
        # And the first token was written, then the second, each reported once without the token itself
        assert re.findall(r"^kuma-iam: wrote .*, jti (\w+), expires", stderr, re.MULTILINE) == [
            "first",
            "second",
        ], stderr
        assert "HTTP 503" in stderr
        assert "HTTP 429" in stderr
        assert [p.name for p in tmp_path.iterdir()] == ["token"]
        assert [request.path for request in stand_in.requests] == ["/v1/tokens"] * 4
        assert all(request.header("Authorization") for request in stand_in.requests), (
            "every call is SigV4-signed"
        )


# --- tokens: revoke, revocations, keys, validate ------------------------------------------------------------


@pytest.fixture
def operator_environment(demo_world: DemoWorld, token_keys: TokenKeys) -> dict[str, str]:
    """An operator of the home account (its admin), with the revocations table named."""
    admin = demo_world.admins[HOME_ACCOUNT]
    return {
        "AWS_ACCESS_KEY_ID": admin.access_key_id,
        "AWS_SECRET_ACCESS_KEY": admin.secret_access_key,
        "AWS_REGION": demo_world.region,
        "AWS_ENDPOINT_URL": demo_world.endpoint_url,
        "KUMA_IAM_REVOCATION_TABLE": token_keys.revocation_table,
    }


def secret_data(printed: str) -> list[str]:
    """The ids in a printed Universal secret (`data: <base64 of comma-separated ids>`)."""
    (line,) = [line for line in printed.splitlines() if line.startswith("data:")]
    return base64.b64decode(line.removeprefix("data:").strip()).decode().split(",")


def test_a_revoked_token_is_refused_by_a_control_plane_given_the_printed_secret(
    issuer_api: IssuerApi, operator_environment: dict[str, str], tmp_path: Path
) -> None:
    # Given a token the backend task got, in a mesh of this test alone
    output = tmp_path / "token"
    got = run_command(
        "dataplane-token",
        *("--url", f"{issuer_api.url}/v1/tokens", "--mesh", "default", "--name", "backend-01"),
        *("--service", "backend", "--output", str(output)),
        **issuer_api.task("backend-task"),
    )
    assert got.code == 0, got.err
    jti = json.loads(base64.urlsafe_b64decode(output.read_text().split(".")[1] + "=="))["jti"]
    # When the operator revokes it (and another id)
    other = str(uuid.uuid4())
    revoked = run_command(
        "tokens", "revoke", "--mesh", "default", "--jti", jti, "--jti", other, **operator_environment
    )
    # Then the command prints the secret kumactl applies, holding both ids
    assert revoked.code == 0, revoked.err
    assert "type: Secret\nname: dataplane-token-revocations-default\nmesh: default\n" in revoked.out
    assert {jti, other} <= set(secret_data(revoked.out))
    # And a control plane holding that secret refuses the token
    keys = dataplane_keys_for(published_keys(issuer_api), "default")
    with pytest.raises(Rejected, match="revoked"):
        validate_dataplane_token(
            output.read_text(),
            keys,
            now=time.time(),
            mesh="default",
            name="backend-01",
            tags=BACKEND_TAGS,
            revoked=secret_data(revoked.out),
        )
    # And `tokens revocations` prints the same list again, also as a Kubernetes secret
    listed = run_command("tokens", "revocations", "--mesh", "default", **operator_environment)
    assert listed.code == 0, listed.err
    assert {jti, other} <= set(secret_data(listed.out))
    kubernetes = run_command(
        "tokens",
        "revocations",
        "--mesh",
        "default",
        "--kubernetes-namespace",
        "kuma-system",
        **operator_environment,
    )
    assert "kind: Secret" in kubernetes.out
    assert "kuma.io/mesh: default" in kubernetes.out
    assert "type: system.kuma.io/secret" in kubernetes.out


def test_zone_token_revocations_are_the_global_secret(operator_environment: dict[str, str]) -> None:
    jti = str(uuid.uuid4())
    done = run_command("tokens", "revoke", "--zone-tokens", "--jti", jti, **operator_environment)
    assert done.code == 0, done.err
    assert done.out.startswith("type: GlobalSecret\nname: zone-token-revocations\ndata: ")
    assert jti in secret_data(done.out)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("tokens", "revoke", "--mesh", "default", "--jti", "a,b"), "is not a token id"),
        (("tokens", "revoke", "--mesh", "Not_A_Mesh", "--jti", "a"), "is not a mesh or zone name"),
        (
            ("tokens", "revoke", "--mesh", "default", "--jti", "a", "--table", "no-such-table"),
            "ResourceNotFound",
        ),
    ],
    ids=["comma-in-jti", "bad-mesh", "no-table"],
)
def test_a_bad_revocation_exits_2_with_one_line(
    argv: tuple[str, ...], message: str, operator_environment: dict[str, str]
) -> None:
    done = run_command(*argv, **operator_environment)
    assert done.code == 2
    assert message in one_line(done)


def test_keys_print_as_kuma_cp_settings(issuer_api: IssuerApi) -> None:
    done = run_command("tokens", "keys", "--url", f"{issuer_api.url}/v1/keys", **issuer_api.operator)
    assert done.code == 0, done.err
    assert done.out.startswith("dpServer:\n  authn:\n    dpProxy:\n      dpToken:\n        validator:\n")
    assert (
        '          publicKeys:\n            - kid: "1"\n              mesh: default\n              key: |\n'
        in done.out
    )
    assert "                -----BEGIN RSA PUBLIC KEY-----" in done.out
    assert "    zoneProxy:\n      zoneToken:\n        validator:\n          publicKeys:\n" in done.out


def test_validate_says_whether_a_token_is_valid(issuer_api: IssuerApi, tmp_path: Path) -> None:
    # Given a token and the published keys saved to files
    output = tmp_path / "token"
    got = run_command(
        "dataplane-token",
        *("--url", f"{issuer_api.url}/v1/tokens", "--mesh", "default", "--name", "backend-01"),
        *("--service", "backend", "--output", str(output)),
        **issuer_api.task("backend-task"),
    )
    assert got.code == 0, got.err
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(published_keys(issuer_api)))
    # When it is validated with the keys file, then with the one public key of its kid
    valid = run_command("tokens", "validate", "--token-file", str(output), "--keys-file", str(keys))
    assert valid.code == 0, valid.err
    report = json.loads(valid.out)
    assert (report["valid"], report["kind"], report["claims"]["Name"]) == (True, "dataplane", "backend-01")
    entry = next(
        e
        for e in json.loads(keys.read_text())["dpServer"]["authn"]["dpProxy"]["dpToken"]["validator"][
            "publicKeys"
        ]
        if e["kid"] == report["kid"]
    )
    pem = tmp_path / "public.pem"
    pem.write_text(entry["key"])
    one_key = run_command(
        "tokens", "validate", "--token-file", str(output), "--public-key", str(pem), "--kid", report["kid"]
    )
    assert one_key.code == 0, one_key.err
    # And a token changed by one character is invalid (exit 1)
    token = output.read_text()
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    forged = base64.urlsafe_b64encode(json.dumps({**payload, "Name": "admin"}).encode()).rstrip(b"=").decode()
    output.write_text(".".join([token.split(".")[0], forged, token.split(".")[2]]))
    invalid = run_command("tokens", "validate", "--token-file", str(output), "--keys-file", str(keys))
    assert invalid.code == 1
    assert "signature does not verify" in one_line(invalid)


# --- the sample events under events/token_issuer ----------------------------------------------------------


@pytest.mark.parametrize("case", TOKEN_ISSUER_CASES, ids=lambda case: case.name)
def test_each_sample_event_gets_its_expected_answer_from_the_handler(
    case: TokenIssuerCase,
    issuer: TokenIssuer,
    issuer_module: ModuleType,
    demo_world: DemoWorld,
    server_id: str,
    token_keys: TokenKeys,
) -> None:
    # Given the case's event, as `sam local invoke -e` would pass it
    event = token_issuer_event(demo_world, case, server_id=server_id)
    context = LocalLambdaContext(
        function_name="TokenIssuerFunction",
        aws_request_id=str(uuid.uuid4()),
        region=demo_world.region,
        account_id=demo_world.home_account,
    )
    # When the handler answers it
    result = issuer_module.lambda_handler(event, context)
    body = json.loads(result["body"])
    # Then the answer is the one events/token_issuer/expected.json gives
    assert not mismatches(expected_answers(REPO / "events")[f"token_issuer/{case.name}"], result), body
    # And a token it hands out is one a control plane admits the asking proxy with, under the published keys
    if "token" not in body:
        return
    if "zone" in case.fields:
        validate_zone_token(
            body["token"],
            zone_keys_for(issuer.keys(None).body),
            now=time.time(),
            zone=token_keys.zone,
            scope="ingress",
        )
    else:
        spec = case.dataplane
        validate_dataplane_token(
            body["token"],
            dataplane_keys_for(issuer.keys(None).body, spec["mesh"]),
            now=time.time(),
            mesh=spec["mesh"],
            name=spec["name"],
            tags=spec["tags"],
        )
