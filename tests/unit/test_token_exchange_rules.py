"""The exchange's own rules, before and after the verifier's: the POST /v1/tokens body, the issuer's limits
(meshes, zone, lifetime), and the binding of the token to the role that signed the API call."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from kuma_iam.errors import Denied, DenyReason, InvalidRequest
from kuma_iam.http import HttpRequest, api_caller, parse_body
from kuma_iam.identity.caller import AssumedRoleCaller
from kuma_iam.roles import RoleRecord
from kuma_iam.rules import ProxyType, RoleTags
from kuma_iam.tokens.binding import ApiCaller, CallerRole, caller_role, check_bound
from kuma_iam.tokens.issuer import IssuerLimits, TokenRequest
from kuma_iam.verify import AuthenticatedRole

TOKEN = "kuma-aws-v1.eyJ9"
DATAPLANE = {"mesh": "default", "name": "backend-01", "tags": {"kuma.io/service": ["backend"]}}
ROLE_ID = "AROAEXAMPLEROLEID0001"
ROLE_ARN = "arn:aws:sts::111111111111:assumed-role/backend-task/ecs-task"


def request(**fields: Any) -> str:
    return json.dumps({"token": TOKEN, "dataplane": DATAPLANE, **fields})


def refusal(raw: str) -> str:
    with pytest.raises(InvalidRequest) as refused:
        parse_body(TokenRequest, raw)
    return refused.value.message


# --- the body --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("valid_for", "expected"),
    [(None, None), ("1h", timedelta(hours=1)), ("90m", timedelta(minutes=90)), ("1m", timedelta(minutes=1))],
)
def test_valid_for_is_a_go_duration(valid_for: str | None, expected: timedelta | None) -> None:
    fields = {} if valid_for is None else {"validFor": valid_for}
    assert parse_body(TokenRequest, request(**fields)).validFor == expected


@pytest.mark.parametrize(
    ("valid_for", "message"),
    [
        ("0s", "validFor: validFor must be at least 1m"),
        ("59s", "validFor must be at least 1m"),
        ("-1h", "validFor: a duration has no sign"),
        ("1d", "validFor: not a duration like 1h"),
        ("", "validFor: not a duration like 1h"),
        ("1 h", "not a duration"),
        (3600, 'validFor: validFor must be a duration string like "1h"'),
        (1.5, "must be a duration string"),
        (True, "must be a duration string"),
        (["1h"], "must be a duration string"),
        ("9" * 40 + "h", "at most 32 characters"),
    ],
)
def test_a_bad_valid_for_is_a_precise_400(valid_for: object, message: str) -> None:
    assert message in refusal(request(validFor=valid_for))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (request(valid_for="1h"), "valid_for: Extra inputs are not permitted"),
        (request(ttl="1h"), "ttl: Extra inputs are not permitted"),
        (request(zone=""), "zone: String should have at least 1 character"),
        (request(zone=5), "zone: Input should be a valid string"),
        (
            json.dumps({"token": TOKEN, "dataplane": {**DATAPLANE, "tags": {"version": ["v1"]}}}),
            "dataplane: a token binds only the tag kuma.io/service, not 'version'",
        ),
        (
            json.dumps(
                {
                    "token": TOKEN,
                    "dataplane": {**DATAPLANE, "tags": {"kuma.io/service": ["b"], "Kuma.io/Service": ["a"]}},
                }
            ),
            "a token binds only the tag kuma.io/service, not 'Kuma.io/Service'",
        ),
        (json.dumps({"token": TOKEN}), "dataplane: Field required"),
        (json.dumps({"dataplane": DATAPLANE}), "token: Field required"),
        ('{"token": "a", "token": "b", "dataplane": {}}', "duplicate key"),
    ],
    ids=[
        "snake-case-valid-for",
        "unknown-key",
        "empty-zone",
        "zone-not-string",
        "other-tag",
        "tag-case",
        "no-dataplane",
        "no-token",
        "duplicate",
    ],
)
def test_a_malformed_body_is_a_precise_400(raw: str, message: str) -> None:
    assert message in refusal(raw)


def test_the_documented_body_parses() -> None:
    parsed = parse_body(TokenRequest, request(validFor="2h", zone="zone-1"))
    assert (parsed.validFor, parsed.zone, parsed.dataplane.name) == (
        timedelta(hours=2),
        "zone-1",
        "backend-01",
    )


# --- the issuer's limits ------------------------------------------------------------------------------------

LIMITS = IssuerLimits(meshes=("default", "payments"), zone="zone-1", max_valid_for=timedelta(hours=24))


def test_lifetime_defaults_to_an_hour_and_is_capped() -> None:
    assert LIMITS.valid_for(None) == timedelta(hours=1)
    assert LIMITS.valid_for(timedelta(hours=24)) == timedelta(hours=24)
    with pytest.raises(InvalidRequest, match="validFor 24h1s is longer than this issuer's maximum 24h"):
        LIMITS.valid_for(timedelta(hours=24, seconds=1))
    short = IssuerLimits(meshes=("default",), zone=None, max_valid_for=timedelta(minutes=30))
    assert short.valid_for(None) == timedelta(minutes=30)


@pytest.mark.parametrize(
    ("fields", "limits", "reason", "message"),
    [
        (
            {"dataplane": {**DATAPLANE, "mesh": "billing"}},
            LIMITS,
            DenyReason.MESH_MISMATCH,
            "signs for meshes default, payments; not 'billing'",
        ),
        (
            {"zone": "zone-2"},
            LIMITS,
            DenyReason.ZONE_MISMATCH,
            "signs for zone 'zone-1', the request names 'zone-2'",
        ),
        (
            {"zone": "zone-1"},
            IssuerLimits(("default",), None, timedelta(hours=1)),
            DenyReason.ZONE_MISMATCH,
            "signs no zone tokens",
        ),
    ],
    ids=["mesh-not-served", "other-zone", "no-zone-here"],
)
def test_what_the_issuer_does_not_serve_is_refused_before_any_network_call(
    fields: dict[str, Any], limits: IssuerLimits, reason: DenyReason, message: str
) -> None:
    parsed = parse_body(TokenRequest, json.dumps({"token": TOKEN, "dataplane": DATAPLANE, **fields}))
    with pytest.raises(Denied) as denied:
        limits.check(parsed)
    assert denied.value.reason is reason
    assert message in denied.value.message


def test_a_zone_proxy_needs_an_issuer_with_a_zone() -> None:
    parsed = parse_body(
        TokenRequest, json.dumps({"token": TOKEN, "dataplane": {"type": "ingress", "name": "in-1"}})
    )
    LIMITS.check(parsed)
    with pytest.raises(InvalidRequest, match="signs no zone tokens, so none for a zone ingress"):
        IssuerLimits(("default",), None, timedelta(hours=1)).check(parsed)


# --- the caller ---------------------------------------------------------------------------------------------


def test_a_task_role_session_is_a_caller_role() -> None:
    caller = caller_role(ApiCaller("111111111111", ROLE_ARN, f"{ROLE_ID}:ecs-task"))
    assert caller == CallerRole("aws", "111111111111", "backend-task", ROLE_ID)


@pytest.mark.parametrize(
    ("caller", "message"),
    [
        (None, "carries no IAM caller"),
        (
            ApiCaller("111111111111", "arn:aws:iam::111111111111:user/ci-user", "AIDAEXAMPLEUSERID0001"),
            "not by 'arn:aws:iam::111111111111:user/ci-user'",
        ),
        (
            ApiCaller("111111111111", "arn:aws:iam::111111111111:root", "111111111111"),
            "must be signed by the task role",
        ),
        (
            ApiCaller("111111111111", "arn:aws:sts::111111111111:federated-user/bob", "111111111111:bob"),
            "must be signed by the task role",
        ),
        (ApiCaller("222222222222", ROLE_ARN, f"{ROLE_ID}:ecs-task"), "account disagrees with its ARN"),
        (ApiCaller("111111111111", ROLE_ARN, f"{ROLE_ID}:other-session"), "user id is not its session's"),
        (ApiCaller("111111111111", ROLE_ARN, "AIDAEXAMPLEUSERID0001"), "must be signed by the task role"),
        (
            ApiCaller("111111111111", ROLE_ARN + "\n", f"{ROLE_ID}:ecs-task"),
            "must be signed by the task role",
        ),
    ],
    ids=[
        "no-authorizer",
        "iam-user",
        "root",
        "federated-user",
        "account-disagrees",
        "other-session",
        "user-id-not-a-role",
        "trailing-newline",
    ],
)
def test_anything_but_a_role_session_is_refused_before_any_network_call(
    caller: ApiCaller | None, message: str
) -> None:
    with pytest.raises(Denied) as denied:
        caller_role(caller)
    assert denied.value.reason is DenyReason.CALLER_MISMATCH
    assert message in denied.value.message


def authenticated(
    account: str = "111111111111", role_id: str = ROLE_ID, name: str = "backend-task", partition: str = "aws"
) -> AuthenticatedRole:
    return AuthenticatedRole(
        caller=AssumedRoleCaller(partition, account, name, role_id, "ecs-task", ROLE_ARN),
        role=RoleRecord(
            account, name, f"arn:{partition}:iam::{account}:role/ecs/{name}", role_id, "/ecs/", {}
        ),
        tags=RoleTags(ProxyType.DATAPLANE, "default", "backend", None),
    )


def test_the_identity_of_the_caller_itself_is_bound() -> None:
    check_bound(CallerRole("aws", "111111111111", "backend-task", ROLE_ID), authenticated())


@pytest.mark.parametrize("spelling", ["Backend-Task", "BACKEND-TASK"])
def test_a_session_spelling_the_role_name_in_another_case_is_the_same_caller(spelling: str) -> None:
    # IAM names compare without case; the session ARN keeps the spelling its AssumeRole used, IAM its own
    check_bound(CallerRole("aws", "111111111111", spelling, ROLE_ID), authenticated())


@pytest.mark.parametrize(
    "identity",
    [
        authenticated(role_id="AROAEXAMPLEROLEID0002"),
        authenticated(name="frontend-task", role_id="AROAEXAMPLEROLEID0002"),
        authenticated(account="222222222222"),
        authenticated(partition="aws-cn"),
        authenticated(name="backend-task2"),
    ],
    ids=["re-created-role", "another-role", "same-name-other-account", "other-partition", "name-differs"],
)
def test_an_identity_of_any_other_role_is_refused(identity: AuthenticatedRole) -> None:
    with pytest.raises(Denied) as denied:
        check_bound(CallerRole("aws", "111111111111", "backend-task", ROLE_ID), identity)
    assert denied.value.reason is DenyReason.CALLER_MISMATCH
    assert "not by the identity token's role" in denied.value.message


# --- the caller as the event reports it ---------------------------------------------------------------------

IAM_AUTHORIZER = {"accountId": "111111111111", "userArn": ROLE_ARN, "userId": f"{ROLE_ID}:ecs-task"}


@pytest.mark.parametrize(
    ("request_context", "expected"),
    [
        ({"authorizer": {"iam": IAM_AUTHORIZER}}, ApiCaller("111111111111", ROLE_ARN, f"{ROLE_ID}:ecs-task")),
        ({}, None),
        ({"authorizer": None}, None),
        ({"authorizer": {"jwt": {"claims": {}}}}, None),
        ({"authorizer": {"iam": "arn:aws:iam::111111111111:root"}}, None),
        ({"authorizer": {"iam": {**IAM_AUTHORIZER, "userArn": 7}}}, None),
        ({"authorizer": {"iam": {**IAM_AUTHORIZER, "userId": None}}}, None),
        ({"authorizer": {"iam": {"accountId": "111111111111"}}}, None),
    ],
    ids=[
        "iam",
        "no-authorizer",
        "authorizer-null",
        "jwt-authorizer",
        "iam-a-string",
        "arn-a-number",
        "user-id-null",
        "fields-missing",
    ],
)
def test_the_api_caller_is_read_from_the_iam_authorizer_or_is_none(
    request_context: dict[str, Any], expected: ApiCaller | None
) -> None:
    # Given an event whose authorizer context is well-formed, absent, or of another shape
    request = HttpRequest(
        "POST", "/v1/tokens", b"", {"requestContext": {"requestId": "r", **request_context}}
    )
    # Then the caller is exactly the IAM authorizer's, or None (which the exchange refuses as caller_mismatch)
    assert api_caller(request) == expected
