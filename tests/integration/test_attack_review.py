"""An outside review, tried as an attacker: hostile input to the token issuer, tag compliance and the
configuration, through the real handlers on the embedded AWS (moto server, SigV4 checks on).

Each test is one attempt, or one class of attempts, with the answer a security engineer would expect: a
precise 400, a deny with its reason, never an allow beyond the role's tags and never a 500.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from kuma_iam.config import ComplianceSettings, TokenIssuerSettings, VerifierSettings
from kuma_iam.errors import ConfigError
from kuma_iam.rules import role_tags
from kuma_iam_cli.local.compliance_events import ADMIN, DEVELOPER, Caller, scheduled_event, tag_role
from kuma_iam_cli.local.gateway import GatewayCaller
from kuma_iam_cli.local.seed import (
    HOME_ACCOUNT,
    OUTSIDER_ACCOUNT,
    PARTNER_ACCOUNT,
    DemoWorld,
    control_plane_caller,
)
from kuma_iam_cli.local.token_keys import TokenKeys
from support.aws_clients import ClientFactory
from support.captured_output import EverythingLogged, assert_no_secrets, header_secrets
from support.cli_runs import CliRun
from support.compliance_harness import Compliance, finding_pairs
from support.fake_aws import Answer, ByAction, Computed, FakeAws, PassThrough, ReceivedRequest, StandInSts
from support.kuma_rules import dataplane_keys_for, parse_and_verify
from support.token_issuer_harness import BACKEND_CLAIM, IssuerAnswer, TokenIssuer
from support.verifier_harness import TokenFactory, Verifier

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
        (
            '{"mesh": "default", "mesh": "payments", "name": "dp-01", '
            '"tags": {"kuma.io/service": ["backend"]}}',
            "duplicate key",
        ),
        (
            '{"mesh": "default", "name": "dp-01", "tags": {"kuma.io/service": ["backend"], '
            '"kuma.io/service": ["frontend"]}}',
            "duplicate key",
        ),
        (
            '{"mesh": "default", "name": "dp-01", "tags": {"kuma.io/service": ["backend"], "team": ["a"]}}',
            "binds only the tag kuma.io/service",
        ),
        (
            '{"mesh": "default", "name": "dp-01", "tags": {"kuma.io/zone": ["zone-1"]}}',
            "binds only the tag kuma.io/service",
        ),
        ('{"mesh": "default", "name": "", "tags": {"kuma.io/service": ["backend"]}}', "dataplane.name"),
        (
            '{"mesh": "default", "name": "' + "n" * 254 + '", "tags": {"kuma.io/service": ["backend"]}}',
            "dataplane.name",
        ),
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
        (
            b'{"token": "x", "dataplane": {"mesh": "default", "name": "a"}, '
            b'"validFor": "1h", "validFor": "24h"}',
            "duplicate key",
        ),
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
    boto3.client(
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
        (
            SHAPED_TOKEN.encode(),
            _keys_document({"kid": "1", "mesh": "default", "key": 5}),
            "not a GET /v1/keys",
        ),
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


# --- tag compliance ---------------------------------------------------------------------------------------

ENFORCE = {"KUMA_IAM_COMPLIANCE_MODE": "enforce"}
DATAPLANE = {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "kuma.io/service": "web"}


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _tags_of(admin_client: ClientFactory, account: str, name: str) -> dict[str, str]:
    role = admin_client(account, "iam").get_role(RoleName=name)["Role"]
    return {tag["Key"]: tag["Value"] for tag in role.get("Tags", [])}


def _spoofed(identity: dict[str, Any]) -> Caller:
    """A caller whose CloudTrail userIdentity is exactly `identity`."""

    class Spoofed(Caller):
        def user_identity(self) -> dict[str, Any]:
            return identity

    return Spoofed(HOME_ACCOUNT, "AssumedRole", "x")


ADMIN_ROLE_ARN = f"arn:aws:iam::{HOME_ACCOUNT}:role/platform-admin"


@pytest.mark.parametrize(
    ("identity", "unauthorized"),
    [
        # the admin's role as the session's *name*, another role as its issuer
        (
            {
                "type": "AssumedRole",
                "arn": f"arn:aws:sts::{HOME_ACCOUNT}:assumed-role/developer-role/platform-admin",
                "sessionContext": {
                    "sessionIssuer": {
                        "type": "Role",
                        "arn": f"arn:aws:iam::{HOME_ACCOUNT}:role/developer-role",
                    }
                },
            },
            True,
        ),
        # an assumed role without its issuer: who answers for it is unknown
        ({"type": "AssumedRole", "arn": f"arn:aws:sts::{HOME_ACCOUNT}:assumed-role/platform-admin/x"}, True),
        # the admin's name in another account
        (
            {
                "type": "AssumedRole",
                "sessionContext": {
                    "sessionIssuer": {"arn": f"arn:aws:iam::{PARTNER_ACCOUNT}:role/platform-admin"}
                },
            },
            False,  # the demo's admins include the partner account's platform-admin
        ),
        (
            {
                "type": "AssumedRole",
                "sessionContext": {
                    "sessionIssuer": {"arn": f"arn:aws:iam::{OUTSIDER_ACCOUNT}:role/platform-admin"}
                },
            },
            True,
        ),
        # a longer name, a path, a user of the admin's name
        ({"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"arn": ADMIN_ROLE_ARN + "-2"}}}, True),
        (
            {
                "type": "AssumedRole",
                "sessionContext": {
                    "sessionIssuer": {"arn": f"arn:aws:iam::{HOME_ACCOUNT}:role/x/platform-admin"}
                },
            },
            True,
        ),
        ({"type": "IAMUser", "arn": f"arn:aws:iam::{HOME_ACCOUNT}:user/platform-admin"}, True),
        # IAM compares names without case: the admin role spelled otherwise is the admin
        (
            {"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"arn": ADMIN_ROLE_ARN.upper()}}},
            False,
        ),
        # an AWS service, the account's root, nothing at all
        ({"type": "AWSService", "invokedBy": "cloudformation.amazonaws.com"}, True),
        ({"type": "Root", "arn": f"arn:aws:iam::{HOME_ACCOUNT}:root"}, True),
        ({}, True),
        # a federated user whose IAM user is not an admin
        (
            {
                "type": "FederatedUser",
                "arn": f"arn:aws:sts::{HOME_ACCOUNT}:federated-user/platform-admin",
                "sessionContext": {
                    "sessionIssuer": {"type": "IAMUser", "arn": f"arn:aws:iam::{HOME_ACCOUNT}:user/developer"}
                },
            },
            True,
        ),
    ],
    ids=[
        "session-named-like-admin",
        "no-session-issuer",
        "admin-of-partner",
        "admin-name-in-outsider-account",
        "longer-name",
        "admin-name-under-a-path",
        "user-of-admin-name",
        "admin-in-upper-case",
        "aws-service",
        "root",
        "empty-identity",
        "federated-user",
    ],
)
def test_who_may_set_kuma_tags_is_the_accountable_principal_not_its_chosen_names(
    identity: dict[str, Any], unauthorized: bool, compliance: Compliance, make_role: Callable[..., str]
) -> None:
    name = _name("who")
    make_role(HOME_ACCOUNT, name, dict(DATAPLANE))
    answer = compliance(tag_role(_spoofed(identity), name, {"kuma.io/service": "web"}))
    assert (("kuma-tag-change-unauthorized", name) in finding_pairs(answer)) is unauthorized, answer


@pytest.mark.parametrize(
    "key",
    [
        "KUMA.IO/SERVICE",
        "Kuma.io/service",
        " kuma.io/service",
        "kuma.io/service ",
        "kuma.io/service\u00a0",  # NO-BREAK SPACE
        "\u212auma.io/service",  # KELVIN SIGN, which folds to k
    ],
    ids=["upper", "capitalised", "leading-space", "trailing-space", "nbsp", "kelvin"],
)
def test_a_kuma_key_in_any_spelling_set_by_a_developer_is_an_unauthorized_change(
    key: str, compliance: Compliance, make_role: Callable[..., str]
) -> None:
    name = _name("spelled")
    make_role(HOME_ACCOUNT, name, {"kuma.io/type": "dataplane", "kuma.io/mesh": "default"})
    answer = compliance(tag_role(DEVELOPER, name, {key: "web"}))
    assert ("kuma-tag-change-unauthorized", name) in finding_pairs(answer), answer


@pytest.mark.parametrize(
    "key",
    ["Kuma.io/Service", "kuma.io/service ", "\u212auma.io/service"],
    ids=["capitalised", "trailing-space", "kelvin"],
)
def test_enforce_leaves_a_role_with_a_noncanonical_restriction_with_no_identity(
    key: str,
    compliance: Compliance,
    make_role: Callable[..., str],
    admin_client: ClientFactory,
) -> None:
    # Given a dataplane role whose service restriction is spelled so that only people see it
    name = _name("nc")
    try:
        make_role(
            HOME_ACCOUNT,
            name,
            {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", key: "web", "team": "x"},
        )
    except admin_client(HOME_ACCOUNT, "iam").exceptions.InvalidInputException:
        pytest.skip("the embedded IAM refuses this key")
    compliance.configure(**ENFORCE)
    # When an admin's change on it arrives in enforce mode
    answer = compliance(tag_role(ADMIN, name, {"team": "x"}))
    # Then the finding is HIGH, whatever is left gives the role no identity (it never widens), and only
    # kuma.io keys were taken
    assert ("kuma-key-noncanonical", name) in finding_pairs(answer), answer
    left = _tags_of(admin_client, HOME_ACCOUNT, name)
    assert isinstance(role_tags(left), list), left
    assert left.get("team") == "x"


def test_an_event_for_a_role_deleted_since_reports_the_change_and_removes_nothing(
    compliance: Compliance, aws_proxy: FakeAws
) -> None:
    compliance.configure(AWS_ENDPOINT_URL_IAM=aws_proxy.url, **ENFORCE)
    name = _name("gone")
    answer = compliance(tag_role(DEVELOPER, name, {"kuma.io/type": "dataplane"}))
    assert "error" not in answer, answer
    assert answer["evaluated"] == 0
    assert finding_pairs(answer) == {("kuma-tag-change-unauthorized", name)}
    assert answer["remediations"] == []
    assert aws_proxy.count_by_action()["UntagRole"] == 0


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(lambda e: {**e, "source": "aws.iam "}, id="source-with-space"),
        pytest.param(lambda e: {**e, "source": "AWS.IAM"}, id="source-upper"),
        pytest.param(lambda e: {**e, "source": "custom.aws.iam"}, id="source-custom"),
        pytest.param(lambda e: {**e, "detail-type": "AWS API Call via CloudTrail "}, id="detail-type-space"),
        pytest.param(
            lambda e: {**e, "detail": {**e["detail"], "eventSource": "IAM.amazonaws.com"}},
            id="event-source-case",
        ),
        pytest.param(
            lambda e: {**e, "detail": {**e["detail"], "eventName": "tagRole"}}, id="event-name-case"
        ),
        pytest.param(
            lambda e: {
                **e,
                "account": OUTSIDER_ACCOUNT,
                "detail": {**e["detail"], "recipientAccountId": HOME_ACCOUNT},
            },
            id="forwarded-from-another-account",
        ),
        pytest.param(
            lambda e: {**e, "detail": {**e["detail"], "recipientAccountId": "111111111111\n"}},
            id="account-newline",
        ),
        pytest.param(
            lambda e: {**e, "detail": {**e["detail"], "requestParameters": {"roleName": "a\u0000b"}}},
            id="role-name-nul",
        ),
        pytest.param(
            lambda e: {
                **e,
                "detail": {**e["detail"], "requestParameters": {"roleName": "\u0431ackend-task"}},
            },
            id="role-name-cyrillic",
        ),
        pytest.param(
            lambda e: {
                **e,
                "detail": {
                    **e["detail"],
                    "requestParameters": {"roleName": "backend-task", "tags": [{"value": "x"}]},
                },
            },
            id="tag-without-key",
        ),
        pytest.param(lambda e: {**e, "detail": "{}"}, id="detail-a-string"),
        pytest.param(lambda e: {**e, "detail-type": None}, id="detail-type-null"),
    ],
)
def test_a_spoofed_or_malformed_event_is_refused_before_any_aws_call(
    event: Callable[[dict[str, Any]], dict[str, Any]], compliance: Compliance, aws_proxy: FakeAws
) -> None:
    compliance.configure(
        **dict.fromkeys(
            ("AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_DYNAMODB"), aws_proxy.url
        )
    )
    answer = compliance(event(tag_role(DEVELOPER, "backend-task", {"kuma.io/type": "dataplane"})))
    assert answer["error"]["code"] == "invalid_event", answer
    assert aws_proxy.requests == []


# --- the token issuer: what GET /v1/keys discloses, zone tokens -------------------------------------------


def _strings(document: object) -> list[str]:
    if isinstance(document, str):
        return [document]
    if isinstance(document, dict):
        return [*document, *(text for value in document.values() for text in _strings(value))]
    if isinstance(document, list):
        return [text for value in document for text in _strings(value)]
    return []


@pytest.mark.parametrize("signer", ["kms", "pem"])
def test_the_published_keys_hold_nothing_private(
    signer: str,
    issuer: TokenIssuer,
    reconfigure_issuer: Callable[..., None],
    token_keys: TokenKeys,
    demo_world: DemoWorld,
) -> None:
    # Given an issuer signing with the Kuma PEM key (its private half in Secrets Manager), or KMS
    location = token_keys.pem_secret_arn if signer == "pem" else token_keys.dataplane_key_alias
    reconfigure_issuer(KUMA_IAM_SIGNING_KEYS=f"1={location}")
    # When anyone allowed to call the API reads the keys (even with no IAM caller at all)
    for caller in (control_plane_caller(demo_world), None):
        body = issuer.keys(caller).body
        # Then no private exponent, prime or PEM private key is in it, nor where the keys live
        for jwk in body["jwks"]["keys"] + body["zoneJwks"]["keys"]:
            assert set(jwk) == {"kty", "use", "alg", "kid", "n", "e"}, jwk
        texts = _strings(body)
        assert not [text for text in texts if "PRIVATE" in text]
        assert not [text for text in texts if "arn:aws:" in text or "alias/" in text]
        pem_body = "".join(token_keys.pem.strip().splitlines()[1:-1])
        assert not [text for text in texts if pem_body[:40] in text.replace("\n", "")]


@pytest.mark.parametrize(
    ("role", "dataplane", "fields", "status", "reason"),
    [
        # a dataplane role asking for a zone token: its type decides, not the request
        ("backend-task", {"type": "ingress", "name": "in-01"}, {"zone": "zone-1"}, 403, "type_mismatch"),
        ("backend-task", {"type": "egress", "name": "eg-01", "mesh": "default"}, {}, 403, "type_mismatch"),
        # an ingress role asking for the egress scope, or a dataplane token
        ("ingress-task", {"type": "egress", "name": "eg-01"}, {}, 403, "type_mismatch"),
        ("ingress-task", {"type": "dataplane", "name": "in-01", "mesh": "default"}, {}, 403, "type_mismatch"),
        # another zone, in any spelling
        ("ingress-task", {"type": "ingress", "name": "in-01"}, {"zone": "Zone-1"}, 403, "zone_mismatch"),
        ("ingress-task", {"type": "ingress", "name": "in-01"}, {"zone": " zone-1"}, 403, "zone_mismatch"),
        ("ingress-task", {"type": "ingress", "name": "in-01"}, {"zone": None}, 200, None),
    ],
    ids=[
        "dataplane-role-zone-token",
        "dataplane-role-egress",
        "ingress-role-egress",
        "ingress-role-dataplane-token",
        "zone-in-upper-case",
        "zone-with-space",
        "zone-null-is-the-issuers",
    ],
)
def test_a_zone_token_only_for_the_roles_own_type_and_the_issuers_zone(
    role: str,
    dataplane: dict[str, Any],
    fields: dict[str, Any],
    status: int,
    reason: str | None,
    issuer: TokenIssuer,
    task_session: Session,
    sign_with: TokenFactory,
    token_keys: TokenKeys,
) -> None:
    assert token_keys.zone == "zone-1"
    credentials, caller = task_session(HOME_ACCOUNT, role)
    answer = issuer.exchange(sign_with(credentials), dataplane, caller=caller, **fields)
    assert (answer.status, answer.reason) == (status, reason), answer.body


# --- configuration that could widen who is authorized -----------------------------------------------------

VERIFIER_BASE = {"KUMA_IAM_SERVER_ID": "kuma-demo"}


@pytest.mark.parametrize(
    "accounts",
    [
        "*",
        "111111111111,*",
        "?",
        "all",
        "\u0661" * 12,  # ARABIC-INDIC DIGIT ONE: a digit to \d, not to IAM
        "\uff11" * 12,  # FULLWIDTH DIGIT ONE
        "111111111111\u200b",  # ZERO WIDTH SPACE
        "111111111111\u00a0,222222222222",  # NO-BREAK SPACE
        '["111111111111"]',
        "111111111111\n222222222222",
        "11111111111*",
        "arn:aws:iam::*:root",
        "",
        ",",
    ],
)
def test_no_authorized_accounts_setting_widens_to_more_than_the_ids_it_names(accounts: str) -> None:
    environment = {**VERIFIER_BASE, "KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS": accounts}
    if "\u00a0" in accounts:
        # Python's strip takes a NO-BREAK SPACE too: what is left is exactly the ids written
        parsed = VerifierSettings.from_env(environment)
        assert parsed.authorized_account_ids == {"111111111111", "222222222222"}
        return
    with pytest.raises(ConfigError, match="KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS"):
        VerifierSettings.from_env(environment)


@pytest.mark.parametrize(
    "admins",
    [
        "*",
        "arn:aws:iam::111111111111:role/admin, *",
        "role/platform-admin",
        "arn:aws:iam::111111111111:role/admin\u00a0x",
        "arn:aws:iam::111111111111:role/admin\nx",
        "arn:aws:iam::1111111111:role/admin",
    ],
)
def test_a_tag_admin_that_is_no_principal_arn_pattern_is_refused(admins: str) -> None:
    with pytest.raises(ConfigError, match="KUMA_IAM_TAG_ADMINS"):
        ComplianceSettings.from_env(
            {"KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS": "111111111111", "KUMA_IAM_TAG_ADMINS": admins}
        )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KUMA_IAM_MESHES", "*"),
        ("KUMA_IAM_MESHES", "default,*"),
        ("KUMA_IAM_MESHES", " , "),
        ("KUMA_IAM_TOKEN_MAX_VALID_FOR", "99999999999h"),
        ("KUMA_IAM_TOKEN_MAX_VALID_FOR", "30s"),
        ("KUMA_IAM_ZONE", "*"),
        ("KUMA_IAM_SIGNING_KEYS", "0=alias/kuma"),
        ("KUMA_IAM_SIGNING_KEYS", "01=alias/kuma"),
        ("KUMA_IAM_SIGNING_KEYS", "1=alias/kuma,1=alias/other"),
        ("KUMA_IAM_SIGNING_KEYS", "1=alias/kuma,2=alias/kuma"),
        ("KUMA_IAM_SIGNING_KEYS", "1=file:///etc/key.pem"),
    ],
)
def test_an_issuer_setting_out_of_bounds_fails_fast_naming_it(variable: str, value: str) -> None:
    environment = {
        **VERIFIER_BASE,
        "KMESH_AWSIAM_AUTHORIZEDACCOUNTIDS": "111111111111",
        "KUMA_IAM_SIGNING_KEYS": "1=alias/kuma-iam-dataplane-tokens",
        variable: value,
    }
    if variable == "KUMA_IAM_ZONE":
        environment["KUMA_IAM_ZONE_SIGNING_KEYS"] = "1=alias/zone"
    with pytest.raises(ConfigError, match=variable):
        TokenIssuerSettings.from_env(environment)


# --- the verifier: claims and events the token catalogue does not vary ------------------------------------

BACKEND = {"mesh": "default", "name": "backend-01", "tags": {"kuma.io/service": ["backend"]}}


@pytest.mark.parametrize(
    ("dataplane", "status", "reason"),
    [
        ({**BACKEND, "tags": {"kuma.io/service": ["backend"] * 64}}, 200, None),
        ({**BACKEND, "tags": {"kuma.io/service": ["backend"] * 65}}, 400, "invalid_request"),
        ({**BACKEND, "tags": {"kuma.io/service": ["backend", "Backend"]}}, 200, "service_mismatch"),
        ({**BACKEND, "tags": {"kuma.io/service": ["backend", "backend "]}}, 200, "service_mismatch"),
        ({**BACKEND, "tags": {"kuma.io/service": ["backend\u0000"]}}, 200, "service_mismatch"),
        ({**BACKEND, "tags": {"kuma.io/service": ["b\u0430ckend"]}}, 200, "service_mismatch"),  # Cyrillic a
        ({**BACKEND, "tags": {"KUMA.IO/SERVICE": ["frontend"]}}, 200, "service_mismatch"),
        ({**BACKEND, "mesh": "default "}, 200, "mesh_mismatch"),
        ({**BACKEND, "mesh": "Default"}, 200, "mesh_mismatch"),
        ({**BACKEND, "type": "Dataplane"}, 400, "invalid_request"),
        ({**BACKEND, "type": None}, 400, "invalid_request"),
        ({**BACKEND, "workload": ""}, 400, "invalid_request"),
        ({**BACKEND, "workload": "backend"}, 200, None),  # the role sets no workload: any
        ({**BACKEND, "tags": {f"t{i}": ["v"] for i in range(65)}}, 400, "invalid_request"),
        ({**BACKEND, "extra": True}, 400, "invalid_request"),
    ],
    ids=[
        "64-services-all-its-own",
        "65-services",
        "service-in-another-case",
        "service-with-space",
        "service-with-nul",
        "service-homoglyph",
        "service-key-in-upper-case",
        "mesh-with-space",
        "mesh-in-another-case",
        "type-capitalised",
        "type-null",
        "workload-empty",
        "workload-any",
        "65-tags",
        "extra-field",
    ],
)
def test_a_claim_is_held_to_the_roles_exact_values(
    dataplane: dict[str, Any],
    status: int,
    reason: str | None,
    verify: Verifier,
    sign_token: TokenFactory,
) -> None:
    answer = verify(sign_token(HOME_ACCOUNT, "backend-task"), dataplane)
    assert answer.status == status, answer.body
    if reason is None:
        assert answer.body["allowed"] is True, answer.body
    else:
        assert answer.reason == reason, answer.body
        assert answer.body.get("allowed") is not True


@pytest.mark.parametrize(
    ("change", "status"),
    [
        (lambda e: {**e, "isBase64Encoded": "true"}, 400),
        (lambda e: {**e, "isBase64Encoded": True, "body": "%%%"}, 400),
        (lambda e: {**e, "isBase64Encoded": True, "body": "\u00e9"}, 400),
        (lambda e: {**e, "headers": {"content-type": 5}}, 400),
        (lambda e: {**e, "body": "\ufeff" + e["body"]}, 400),
        (lambda e: {**e, "body": None}, 400),
        (lambda e: {**e, "rawPath": "/v1/verify/"}, 404),
        (lambda e: {**e, "rawPath": "/V1/VERIFY"}, 404),
        (lambda e: {**e, "rawPath": "/v1/verify%00"}, 404),
        (lambda e: {**e, "rawPath": 7}, 400),
        (
            lambda e: {
                **e,
                "requestContext": {**e["requestContext"], "http": {"method": "GET", "path": "/"}},
            },
            404,
        ),
        (lambda e: {**e, "requestContext": {**e["requestContext"], "stage": "prod"}}, 404),
        (lambda e: {**e, "requestContext": {**e["requestContext"], "stage": None}}, 400),
        (lambda e: {**e, "requestContext": "x"}, 400),
    ],
    ids=[
        "base64-flag-a-string",
        "base64-not-base64",
        "base64-not-ascii",
        "header-not-a-string",
        "body-with-bom",
        "body-null",
        "trailing-slash",
        "path-in-upper-case",
        "path-with-nul",
        "path-a-number",
        "get",
        "a-stage-eating-the-path",
        "stage-null",
        "context-a-string",
    ],
)
def test_a_hand_made_event_gets_a_precise_status_never_a_500(
    change: Callable[[dict[str, Any]], dict[str, Any]],
    status: int,
    verify: Verifier,
    sign_token: TokenFactory,
) -> None:
    event = verify.event(
        json.dumps({"token": sign_token(HOME_ACCOUNT, "backend-task"), "dataplane": BACKEND})
    )
    answer = verify.invoke(change(event))
    assert answer.status == status, answer.body
    assert answer.body.get("allowed") is not True


# --- logs: tag compliance at DEBUG, across accounts -------------------------------------------------------


def _assumed_role_secrets(proxy: FakeAws) -> list[str]:
    found = []
    for request, answer in proxy.answers:
        if request.action == "AssumeRole" and answer.status == 200:
            for element in ET.fromstring(answer.body).iter():  # noqa: S314 - moto's answer, in a test
                if element.tag.rsplit("}", 1)[-1] in ("SecretAccessKey", "SessionToken") and element.text:
                    found.append(element.text)
    return found


def test_no_credential_of_tag_compliance_reaches_a_debug_log(
    compliance: Compliance,
    aws_proxy: FakeAws,
    everything_logged: EverythingLogged,
    demo_world: DemoWorld,
) -> None:
    # Given the root logger at DEBUG, and every AWS call of the function recorded on its way
    compliance.configure(
        **{
            name: aws_proxy.url
            for name in compliance.environment
            if name.startswith("AWS_ENDPOINT_URL") and name != "AWS_ENDPOINT_URL_EVENTBRIDGE"
        },
    )
    everything_logged.discard()
    # When the schedule sweeps both accounts (the partner's through its compliance role)
    answer = compliance(scheduled_event())
    assert answer["evaluated"] > 0, answer
    assert "failedAccounts" not in answer, answer
    assumed = _assumed_role_secrets(aws_proxy)
    assert len(assumed) >= 2, "the sweep assumed the partner account's compliance role"
    # Then neither its own key, nor the assumed role's credentials, nor any signature it sent is logged
    secrets = [
        demo_world.compliance.secret_access_key,
        *assumed,
        *header_secrets(request.headers for request in aws_proxy.requests),
    ]
    assert_no_secrets(everything_logged.text(), secrets)


UNTAGGED = Answer(
    200,
    b'<UntagRoleResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><ResponseMetadata>'
    b"<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ResponseMetadata></UntagRoleResponse>",
)


@pytest.mark.parametrize("trigger", ["sweep", "event"])
def test_a_role_deleted_between_its_read_and_its_removal_is_no_failure(
    trigger: str,
    compliance: Compliance,
    aws_proxy: FakeAws,
    make_role: Callable[..., str],
    admin_client: ClientFactory,
    demo_world: DemoWorld,
) -> None:
    # Given a role with a bad kuma.io/type, in enforce mode, that is deleted just as its tags are removed
    # (every other role's removal is only pretended, so the demo world keeps its tags)
    name = _name("racing")
    make_role(HOME_ACCOUNT, name, {"kuma.io/type": "gateway", "kuma.io/mesh": "default"})
    moto = PassThrough(demo_world.endpoint_url)

    def untag(request: ReceivedRequest) -> PassThrough | Answer:
        if request.params.get("RoleName") != name:
            return UNTAGGED
        admin_client(HOME_ACCOUNT, "iam").delete_role(RoleName=name)
        return moto  # IAM answers NoSuchEntity

    aws_proxy.script(then=ByAction({"UntagRole": Computed(untag)}, default=moto))
    compliance.configure(
        AWS_ENDPOINT_URL_IAM=aws_proxy.url,
        AWS_ENDPOINT_URL_STS=aws_proxy.url,
        KUMA_IAM_COMPLIANCE_MODE="enforce",
    )
    # When the sweep (or an event about it) meets it
    event = scheduled_event() if trigger == "sweep" else tag_role(ADMIN, name, {"team": "x"})
    answer = compliance(event)
    # Then the role's finding stands, nothing is said removed from it, and no account is called failed
    assert ("kuma-type-invalid", name) in finding_pairs(answer), answer
    assert name not in [remediation["roleName"] for remediation in answer["remediations"]]
    assert "failedAccounts" not in answer, answer["failedAccounts"]
    assert [r.params.get("RoleName") for r in aws_proxy.requests if r.action == "UntagRole"].count(name) == 1


def test_an_admin_named_by_a_one_character_wildcard_keeps_its_change_in_enforce_mode(
    compliance: Compliance, make_role: Callable[..., str], admin_client: ClientFactory
) -> None:
    # Given the admins as the SCP names them (IAM's `?`: any one character), in enforce mode
    name = _name("admin-wild")
    make_role(HOME_ACCOUNT, name, dict(DATAPLANE))
    compliance.configure(KUMA_IAM_TAG_ADMINS=f"arn:aws:iam::{HOME_ACCOUNT}:role/platform-admi?", **ENFORCE)
    # When platform-admin changes the role's service, as the SCP let it
    answer = compliance(tag_role(ADMIN, name, {"kuma.io/service": "web"}))
    # Then it is no unauthorized change, and nothing is taken back
    assert finding_pairs(answer) == set(), answer
    assert answer["remediations"] == []
    assert _tags_of(admin_client, HOME_ACCOUNT, name) == DATAPLANE
