"""An outside review, tried as an attacker: hostile input to the token issuer, tag compliance and the
configuration, through the real handlers on the embedded AWS (moto server, SigV4 checks on).

Each test is one attempt, or one class of attempts, with the answer a security engineer would expect: a
precise 400, a deny with its reason, never an allow beyond the role's tags and never a 500.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from kuma_iam_cli.local.gateway import GatewayCaller
from kuma_iam_cli.local.seed import HOME_ACCOUNT, OUTSIDER_ACCOUNT, DemoWorld, control_plane_caller
from kuma_iam_cli.local.token_keys import TokenKeys
from support.cli_runs import CliRun
from support.fake_aws import ByAction, FakeAws, PassThrough, StandInSts
from support.kuma_rules import dataplane_keys_for, parse_and_verify
from support.token_issuer_harness import BACKEND_CLAIM, IssuerAnswer, TokenIssuer
from support.verifier_harness import TokenFactory

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning"),
]

Session = Callable[..., tuple[dict[str, str], GatewayCaller]]


@pytest.fixture
def backend_exchange(
    issuer: TokenIssuer, task_session: Session, sign_with: TokenFactory
) -> Callable[..., IssuerAnswer]:
    """backend_exchange(dataplane=None, *, raw_body=None, **fields): the backend task's own exchange."""

    def run(dataplane: dict[str, Any] | None = None, **fields: Any) -> IssuerAnswer:
        credentials, caller = task_session(HOME_ACCOUNT, "backend-task")
        return issuer.exchange(sign_with(credentials), dataplane, caller=caller, **fields)

    return run


# --- the token issuer: lifetimes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("valid_for", "message"),
    [
        ("99999999999h", "validFor"),
        ("9999999999999999999999999999h", "validFor"),
        ("2562048h", "validFor"),
        ("99999999999999999999999999999s", "validFor"),
        ("٣h", "not a duration"),
        ("1h ", "not a duration"),
        (" 1h", "not a duration"),
        ("1e9h", "not a duration"),
        ("1.h", "not a duration"),
        ("0.000000001ns", "at least 1m"),
        ("59s", "at least 1m"),
        ("+1h", "no sign"),
        ("1d", "not a duration"),
        ("1H", "not a duration"),
        ("", "not a duration"),
    ],
)
def test_any_lifetime_out_of_bounds_is_a_precise_400(
    valid_for: str, message: str, backend_exchange: Callable[..., IssuerAnswer]
) -> None:
    answer = backend_exchange(BACKEND_CLAIM, validFor=valid_for)
    assert (answer.status, answer.reason) == (400, "invalid_request"), answer.body
    assert message in answer.body["message"], answer.body


@pytest.mark.parametrize("valid_for", [3600, 1.5, True, ["1h"], {"h": 1}])
def test_a_lifetime_that_is_no_string_is_a_400(
    valid_for: object, backend_exchange: Callable[..., IssuerAnswer]
) -> None:
    answer = backend_exchange(BACKEND_CLAIM, validFor=valid_for)
    assert (answer.status, answer.reason) == (400, "invalid_request"), answer.body
    assert "validFor" in answer.body["message"]


def test_go_style_repeated_units_add_up_and_stay_capped(
    backend_exchange: Callable[..., IssuerAnswer],
) -> None:
    # Go reads "12h12h" as 24h (allowed) and "12h12h1s" as past the 24h cap
    assert backend_exchange(BACKEND_CLAIM, validFor="12h12h").status == 200
    answer = backend_exchange(BACKEND_CLAIM, validFor="12h12h1s")
    assert (answer.status, answer.reason) == (400, "invalid_request"), answer.body


# --- the token issuer: request bodies ---------------------------------------------------------------------


def _body(token: object, dataplane: str) -> str:
    return '{"token": ' + json.dumps(token) + ', "dataplane": ' + dataplane + "}"


@pytest.mark.parametrize(
    ("dataplane", "message"),
    [
        # a second mesh key after the role's own: pydantic alone would let the last one win
        ('{"mesh": "default", "mesh": "payments", "name": "dp-01", "tags": {"kuma.io/service": ["backend"]}}',
         "duplicate key"),
        ('{"mesh": "default", "name": "dp-01", "tags": {"kuma.io/service": ["backend"], '
         '"kuma.io/service": ["frontend"]}}', "duplicate key"),
        ('{"mesh": "default", "name": "dp-01", "tags": {"kuma.io/service": ["backend"], "team": ["a"]}}',
         "binds only the tag kuma.io/service"),
        ('{"mesh": "default", "name": "dp-01", "tags": {"kuma.io/zone": ["zone-1"]}}',
         "binds only the tag kuma.io/service"),
        ('{"mesh": "default", "name": "", "tags": {"kuma.io/service": ["backend"]}}', "dataplane.name"),
        ('{"mesh": "default", "name": "' + "n" * 254 + '", "tags": {"kuma.io/service": ["backend"]}}',
         "dataplane.name"),
        ('{"mesh": "default", "name": "dp-01", "tags": {"kuma.io/service": [""]}}', "dataplane.tags"),
        ('{"mesh": "default", "name": "dp-01", "tags": {"kuma.io/service": "backend"}}', "dataplane.tags"),
        ('{"type": "DATAPLANE", "mesh": "default", "name": "dp-01"}', "dataplane.type"),
        ('{"type": "dataplane", "name": "dp-01"}', "mesh is required"),
        ('{"mesh": "default", "name": "dp-01", "Name": "other"}', "dataplane.Name"),
        ('{"mesh": null, "name": "dp-01"}', "mesh is required"),
        ('{"mesh": ["default"], "name": "dp-01"}', "dataplane.mesh"),
    ],
)
def test_a_hostile_dataplane_is_a_precise_400_before_any_aws_call(
    dataplane: str,
    message: str,
    issuer: TokenIssuer,
    task_session: Session,
    sign_with: TokenFactory,
) -> None:
    credentials, caller = task_session(HOME_ACCOUNT, "backend-task")
    answer = issuer.exchange(None, caller=caller, raw_body=_body(sign_with(credentials), dataplane))
    assert (answer.status, answer.reason) == (400, "invalid_request"), answer.body
    assert message in answer.body["message"], answer.body


@pytest.mark.parametrize(
    ("raw_body", "message"),
    [
        (b"", "empty"),
        (b"[]", "body"),
        (b"null", "body"),
        (b'"token"', "body"),
        (b"{", "JSON"),
        (b"\xff\xfe{}", "UTF-8"),
        (b'{"token": "x", "dataplane": {"mesh": "default", "name": "a"}, "validFor": "1h", "validFor": "24h"}',
         "duplicate key"),
        (b'{"token": "x", "dataplane": {"mesh": "default", "name": "a"}, "valid_for": "1h"}', "valid_for"),
        (b'{"token": "x", "dataplane": {"mesh": "default", "name": "a"}, "zone": ""}', "zone"),
        (b'{"token": ' + b"[" * 5000 + b"]" * 5000 + b', "dataplane": {}}', ""),
        (b'{"token": "' + b"a" * (70 * 1024) + b'", "dataplane": {}}', "larger than"),
        (b'{"token": 1e999999, "dataplane": {"mesh": "default", "name": "a"}}', "token"),
        (b'{"token": NaN, "dataplane": {"mesh": "default", "name": "a"}}', ""),
    ],
    ids=[
        "empty",
        "array",
        "null",
        "string",
        "truncated",
        "utf16-bom",
        "duplicate-validfor",
        "snake-case-validfor",
        "empty-zone",
        "deep-nesting",
        "oversized",
        "huge-number",
        "nan",
    ],
)
def test_a_hostile_body_is_a_precise_400(
    raw_body: bytes, message: str, issuer: TokenIssuer, task_session: Session
) -> None:
    _, caller = task_session(HOME_ACCOUNT, "backend-task")
    answer = issuer.exchange(None, caller=caller, raw_body=raw_body)
    assert (answer.status, answer.reason) == (400, "invalid_request"), answer.body
    assert message in answer.body["message"], answer.body


def test_a_dataplane_name_with_control_characters_binds_exactly_that_name(
    backend_exchange: Callable[..., IssuerAnswer], issuer: TokenIssuer, demo_world: DemoWorld
) -> None:
    # A name no Kuma Dataplane can have gives a token no Dataplane can use: never a wider one
    name = "backend-01\u0000\n\u202e"
    answer = backend_exchange({"mesh": "default", "name": name, "tags": {"kuma.io/service": ["backend"]}})
    assert answer.status == 200, answer.body
    keys = dataplane_keys_for(issuer.keys(control_plane_caller(demo_world)).body, "default")
    claims = parse_and_verify(answer.body["token"], keys, now=time.time())
    assert claims["Name"] == name
    assert claims["Tags"] == {"kuma.io/service": ["backend"]}


# --- the token issuer: the caller binding -------------------------------------------------------------------


def test_a_same_named_role_in_another_account_is_another_caller(
    issuer: TokenIssuer,
    task_session: Session,
    sign_with: TokenFactory,
    make_task_role: Callable[..., Any],
    credentials_for: Callable[..., dict[str, str]],
    demo_world: DemoWorld,
) -> None:
    # Given the outsider account holding a role of the backend's name with the backend's tags
    twin = make_task_role(
        OUTSIDER_ACCOUNT,
        "backend-task",
        {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "kuma.io/service": "backend"},
    )
    twin_credentials = credentials_for(twin.arn)
    twin_caller = _caller_of(demo_world, twin_credentials)
    home_credentials, home_caller = task_session(HOME_ACCOUNT, "backend-task")
    # When either uses the other's identity token
    stolen = issuer.exchange(sign_with(home_credentials), BACKEND_CLAIM, caller=twin_caller)
    own_by_twin = issuer.exchange(sign_with(twin_credentials), BACKEND_CLAIM, caller=home_caller)
    # Then the home role's token is worth nothing to the twin, and the twin's account is not authorized
    assert (stolen.status, stolen.reason) == (403, "caller_mismatch"), stolen.body
    assert "in account 333333333333" in stolen.body["message"]
    assert (own_by_twin.status, own_by_twin.reason) == (403, "account_not_authorized"), own_by_twin.body


def _caller_of(world: DemoWorld, credentials: dict[str, str]) -> GatewayCaller:
    identity = boto3.client(
        "sts",
        region_name=world.region,
        endpoint_url=world.endpoint_url,
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=credentials["AWS_SESSION_TOKEN"],
    ).get_caller_identity()
    return GatewayCaller(
        access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        account_id=identity["Account"],
        user_arn=identity["Arn"],
        user_id=identity["UserId"],
        session_token=credentials["AWS_SESSION_TOKEN"],
    )


@pytest.mark.parametrize(
    "forged",
    [
        # what API Gateway's authorizer never reports together, should a hand-made event try it
        {"account_id": "222222222222"},
        {"user_id": "AROAEXAMPLEEXAMPLE0:other-session"},
        {"user_id": "AIDAEXAMPLEEXAMPLE01"},
        {"user_arn": "arn:aws:iam::111111111111:role/backend-task"},
        {"user_arn": "arn:aws:sts::111111111111:federated-user/backend-task"},
        {"user_arn": "arn:aws:iam::111111111111:root"},
        {"user_arn": "arn:aws:sts::111111111111:assumed-role/backend-task/ecs-task/extra"},
        {"user_arn": ""},
    ],
)
def test_a_caller_whose_fields_disagree_is_refused(
    forged: dict[str, str], issuer: TokenIssuer, task_session: Session, sign_with: TokenFactory
) -> None:
    credentials, caller = task_session(HOME_ACCOUNT, "backend-task")
    fields = {
        "account_id": caller.account_id,
        "user_arn": caller.user_arn,
        "user_id": caller.user_id,
        **forged,
    }
    odd = GatewayCaller(
        access_key_id=caller.access_key_id,
        secret_access_key=caller.secret_access_key,
        session_token=caller.session_token,
        **fields,
    )
    answer = issuer.exchange(sign_with(credentials), BACKEND_CLAIM, caller=odd)
    assert (answer.status, answer.reason) == (403, "caller_mismatch"), answer.body


def test_a_session_arn_spelling_the_role_in_another_case_is_still_its_own_caller(
    issuer: TokenIssuer,
    reconfigure_issuer: Callable[..., None],
    aws_proxy: FakeAws,
    demo_world: DemoWorld,
    task_session: Session,
    sign_with: TokenFactory,
) -> None:
    """IAM role names are case-insensitive: ECS may assume `Backend-Task` for the role IAM calls
    `backend-task`, and STS then names the session with that spelling, in the identity token's answer and in
    API Gateway's authorizer alike. The verifier accepts it (RoleId is the identity); so must the binding."""
    # Given IAM's own answer for backend-task (moto matches names by exact case, IAM does not)
    reconfigure_issuer(AWS_ENDPOINT_URL_STS=aws_proxy.url, AWS_ENDPOINT_URL_IAM=aws_proxy.url)
    admin = demo_world.admins[HOME_ACCOUNT]
    boto3.client(  # type: ignore[call-overload]
        "iam",
        region_name=demo_world.region,
        endpoint_url=aws_proxy.url,
        aws_access_key_id=admin.access_key_id,
        aws_secret_access_key=admin.secret_access_key,
    ).get_role(RoleName="backend-task")
    (iam_answer,) = [answer for request, answer in aws_proxy.answers if request.action == "GetRole"]
    credentials, own = task_session(HOME_ACCOUNT, "backend-task")
    role_id = own.user_id.split(":")[0]
    spelled = f"arn:aws:sts::{HOME_ACCOUNT}:assumed-role/Backend-Task/ecs-task"
    # And STS vouching for the session under that spelling, as the authorizer reports the caller
    aws_proxy.script(
        then=StandInSts(
            account=HOME_ACCOUNT,
            arn=spelled,
            user_id=f"{role_id}:ecs-task",
            otherwise=ByAction({"GetRole": iam_answer}, default=PassThrough(demo_world.endpoint_url)),
        )
    )
    caller = GatewayCaller(
        access_key_id=own.access_key_id,
        secret_access_key=own.secret_access_key,
        session_token=own.session_token,
        account_id=HOME_ACCOUNT,
        user_arn=spelled,
        user_id=own.user_id,
    )
    # When the task exchanges its own identity
    answer = issuer.exchange(sign_with(credentials), BACKEND_CLAIM, caller=caller)
    # Then it gets its token: the same role (RoleId), whatever the spelling
    assert answer.status == 200, answer.body


# --- the command line: files a user may hand it by mistake ------------------------------------------------


def _segment(document: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()


SHAPED_TOKEN = f"{_segment({'alg': 'RS256', 'kid': '1', 'typ': 'JWT'})}.{_segment({'Mesh': 'default'})}.AAAA"


def _keys_document(entry: object) -> dict[str, Any]:
    return {
        "dpServer": {
            "authn": {
                "dpProxy": {"dpToken": {"validator": {"publicKeys": [entry]}}},
                "zoneProxy": {"zoneToken": {"validator": {"publicKeys": []}}},
            }
        }
    }


@pytest.mark.parametrize(
    ("token", "keys", "message"),
    [
        (b"\xff\xfe\x00not a token", _keys_document({"kid": "1", "mesh": "default", "key": "x"}), "not text"),
        (SHAPED_TOKEN.encode(), _keys_document({"kid": "1", "mesh": "default", "key": 5}), "not a GET /v1/keys"),
        (SHAPED_TOKEN.encode(), _keys_document({"kid": "1", "mesh": "default", "key": None}), "not a GET"),
        (SHAPED_TOKEN.encode(), _keys_document(["1", "default"]), "not a GET /v1/keys"),
        (SHAPED_TOKEN.encode(), {"dpServer": []}, "not a GET /v1/keys"),
        (SHAPED_TOKEN.encode(), [], "not a GET /v1/keys"),
        (
            SHAPED_TOKEN.encode(),
            _keys_document({"kid": "1", "mesh": "default", "key": "-----BEGIN RSA PUBLIC KEY-----\nxx\n"}),
            "cannot read the keys",
        ),
    ],
    ids=["binary-token", "key-a-number", "key-null", "entry-a-list", "dpserver-a-list", "a-list", "bad-pem"],
)
def test_validate_with_a_file_that_is_not_what_it_should_be_exits_2_with_one_line(
    token: bytes,
    keys: object,
    message: str,
    run_cli: Callable[..., CliRun],
    tmp_path: Path,
) -> None:
    token_file, keys_file = tmp_path / "token", tmp_path / "keys.json"
    token_file.write_bytes(token)
    keys_file.write_text(json.dumps(keys))
    done = run_cli("tokens", "validate", "--token-file", str(token_file), "--keys-file", str(keys_file))
    assert done.code == 2, done.err
    assert done.err.count("\n") == 1, done.err
    assert message in done.err
    assert "unexpected" not in done.err
