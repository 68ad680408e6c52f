"""The /v1/verify body: parsed into VerifyRequest at the edge, refused with a precise message otherwise."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kuma_iam.errors import InvalidRequest
from kuma_iam.http import MAX_BODY_BYTES, parse_body
from kuma_iam.rules import DataplaneClaim, ProxyType
from kuma_iam.verify import VerifyRequest

SECRET_TOKEN = "kuma-aws-v1.eyJTRUNSRVQiOiJkby1ub3QtZWNobyJ9SECRETSECRET"
SECRET_FRAGMENT = "SECRETSECRET"
VAULT_TOKEN = {
    "iam_http_request_method": "POST",
    "iam_request_url": "aHR0cHM6Ly9zdHMudXMtZWFzdC0xLmFtYXpvbmF3cy5jb20v",
    "iam_request_body": "QWN0aW9uPUdldENhbGxlcklkZW50aXR5JlZlcnNpb249MjAxMS0wNi0xNQ==",
    "iam_request_headers": "e30=",
}


def dataplane(**changes: Any) -> dict[str, Any]:
    """The documented Dataplane with changes; a change to `...` leaves that field out."""
    spec: dict[str, Any] = {
        "type": "dataplane",
        "mesh": "default",
        "name": "backend-01",
        "tags": {"kuma.io/service": ["backend"], "version": ["v1"]},
        "workload": None,
    }
    spec.update(changes)
    return {key: value for key, value in spec.items() if value is not ...}


def body(token: Any = SECRET_TOKEN, **dataplane_changes: Any) -> str:
    return json.dumps({"token": token, "dataplane": dataplane(**dataplane_changes)})


def refusal(raw: str | None) -> str:
    with pytest.raises(InvalidRequest) as refused:
        parse_body(VerifyRequest, raw)
    return refused.value.message


# --- accepted ----------------------------------------------------------------------------------------------


def test_documented_example_body_is_accepted_and_becomes_a_claim() -> None:
    # Given the body the design documents
    # When it is parsed
    request = parse_body(VerifyRequest, body())
    # Then the token is kept as sent and the Dataplane becomes the claim the rules judge
    assert request.token == SECRET_TOKEN
    assert request.dataplane.name == "backend-01"
    assert request.dataplane.claim() == DataplaneClaim(
        type=ProxyType.DATAPLANE, mesh="default", services=("backend",), workload=None
    )


def test_vault_object_token_is_accepted() -> None:
    assert parse_body(VerifyRequest, body(token=VAULT_TOKEN)).token == VAULT_TOKEN


def test_type_defaults_to_dataplane_and_tags_to_empty() -> None:
    request = parse_body(VerifyRequest, body(type=..., tags=..., workload=...))
    assert request.dataplane.type is ProxyType.DATAPLANE
    assert request.dataplane.claim().services == ()


@pytest.mark.parametrize("proxy_type", ["ingress", "egress"])
@pytest.mark.parametrize("mesh", [None, ...], ids=["null", "absent"])
def test_ingress_and_egress_need_no_mesh(proxy_type: str, mesh: Any) -> None:
    request = parse_body(VerifyRequest, body(type=proxy_type, mesh=mesh, tags={}))
    assert request.dataplane.claim().mesh is None
    assert request.dataplane.type == proxy_type


def test_multiple_service_tag_values_are_all_claimed() -> None:
    request = parse_body(VerifyRequest, body(tags={"kuma.io/service": ["backend", "backend-admin"]}))
    assert request.dataplane.claim().services == ("backend", "backend-admin")


# --- refused -----------------------------------------------------------------------------------------------

REFUSALS = [
    pytest.param(None, "request body is empty", id="none"),
    pytest.param("", "request body is empty", id="empty"),
    pytest.param(
        body(name="n" * 200) + " " * MAX_BODY_BYTES, "request body is larger than 65536 bytes", id="oversized"
    ),
    pytest.param("{", "request body is not valid JSON", id="truncated-json"),
    pytest.param("token=x&dataplane=y", "request body is not valid JSON", id="form-encoded"),
    pytest.param(body()[:-1] + ",}", "request body is not valid JSON", id="trailing-comma"),
    pytest.param("[]", "body: Input should be an object", id="array"),
    pytest.param('"token"', "body: Input should be an object", id="string"),
    pytest.param("null", "body: Input should be an object", id="null"),
    pytest.param(json.dumps({"dataplane": dataplane()}), "token: Field required", id="no-token"),
    pytest.param(json.dumps({"token": SECRET_TOKEN}), "dataplane: Field required", id="no-dataplane"),
    pytest.param(
        body()[:-1] + ', "role": "admin"}', "role: Extra inputs are not permitted", id="extra-field"
    ),
    pytest.param(
        body(zone="east"), "dataplane.zone: Extra inputs are not permitted", id="extra-dataplane-field"
    ),
    pytest.param(body(mesh=None), "dataplane: mesh is required for a dataplane", id="dataplane-mesh-null"),
    pytest.param(body(mesh=...), "mesh is required for a dataplane", id="dataplane-mesh-absent"),
    pytest.param(body(mesh=""), "dataplane.mesh: String should have at least 1 character", id="mesh-empty"),
    pytest.param(body(mesh=7), "dataplane.mesh: Input should be a valid string", id="mesh-number"),
    pytest.param(
        body(type="gateway"),
        "dataplane.type: Input should be 'dataplane', 'ingress' or 'egress'",
        id="type-gateway",
    ),
    pytest.param(body(type="Dataplane"), "dataplane.type: Input should be", id="type-case"),
    pytest.param(body(type=None), "dataplane.type: Input should be", id="type-null"),
    pytest.param(body(name=...), "dataplane.name: Field required", id="name-absent"),
    pytest.param(body(name=""), "dataplane.name: String should have at least 1 character", id="name-empty"),
    pytest.param(
        body(name="n" * 254), "dataplane.name: String should have at most 253 characters", id="name-long"
    ),
    pytest.param(
        body(tags={"kuma.io/service": "backend"}),
        "dataplane.tags.kuma.io/service: Input should be a valid array",
        id="tag-value-string",
    ),
    pytest.param(
        body(tags=[["kuma.io/service", "backend"]]),
        "dataplane.tags: Input should be an object",
        id="tags-list",
    ),
    pytest.param(
        body(tags={"kuma.io/service": [1]}),
        "dataplane.tags.kuma.io/service.0: Input should be a valid string",
        id="tag-number",
    ),
    pytest.param(
        body(tags={"kuma.io/service": [["backend"]]}),
        "dataplane.tags.kuma.io/service.0: Input should be",
        id="tag-nested",
    ),
    pytest.param(body(tags={"kuma.io/service": [""]}), "at least 1 character", id="tag-value-empty"),
    pytest.param(body(tags={f"k{i}": ["v"] for i in range(65)}), "dataplane.tags: ", id="65-tags"),
    pytest.param(
        body(tags={"kuma.io/service": ["v"] * 65}), "dataplane.tags.kuma.io/service: ", id="65-values"
    ),
    pytest.param(
        body(workload=""), "dataplane.workload: String should have at least 1 character", id="workload-empty"
    ),
]


@pytest.mark.parametrize(("raw", "message"), REFUSALS)
def test_malformed_body_is_refused_naming_the_field(raw: str | None, message: str) -> None:
    assert message in refusal(raw)
    assert "Value error" not in refusal(raw)  # pydantic's prefix before our own validators' words


@pytest.mark.parametrize(
    "raw",
    [
        body(type="gateway"),
        body(mesh=None),
        body()[:-1] + ', "extra": 1}',
        body(tags={"kuma.io/service": SECRET_TOKEN}),
        json.dumps({"token": [SECRET_TOKEN], "dataplane": dataplane()}),
        json.dumps({"token": {"nested": SECRET_TOKEN}, "dataplane": SECRET_TOKEN}),
        json.dumps({"token": SECRET_TOKEN}),
        json.dumps({"token": SECRET_TOKEN, "dataplane": dataplane()})[:-3],
        json.dumps({"token": SECRET_TOKEN + "\u0000", "dataplane": dataplane(type=SECRET_TOKEN)}),
        '{"token": "' + SECRET_TOKEN + '\x01", "dataplane": {}}',
        json.dumps([SECRET_TOKEN]),
    ],
    ids=[
        "bad-type",
        "no-mesh",
        "extra-field",
        "token-in-tag",
        "token-in-list",
        "token-as-dataplane",
        "no-dataplane",
        "truncated",
        "token-as-type",
        "raw-control-character",
        "array-body",
    ],
)
def test_message_never_echoes_the_token(raw: str) -> None:
    assert SECRET_FRAGMENT not in refusal(raw)


@pytest.mark.parametrize("token", [42, [SECRET_TOKEN], None, True], ids=["number", "list", "null", "bool"])
def test_token_of_the_wrong_type_is_named_for_both_accepted_forms(token: Any) -> None:
    message = refusal(body(token=token))
    assert message.startswith("token: ")
    assert "compact string" in message
    assert "Vault" in message


def test_body_over_the_limit_in_utf8_bytes_is_refused_as_oversized() -> None:
    raw = json.dumps({"token": "t", "dataplane": dataplane(name="€" * 30_000)}, ensure_ascii=False)
    assert len(raw) <= MAX_BODY_BYTES < len(raw.encode())
    assert refusal(raw) == f"request body is larger than {MAX_BODY_BYTES} bytes"


def test_body_with_a_duplicate_key_is_refused_rather_than_last_one_wins() -> None:
    # Given a body naming the token twice, as a parser-differential attempt would
    raw = (
        '{"token": "kuma-aws-v1.first", "token": "kuma-aws-v1.second",'
        ' "dataplane": {"mesh": "default", "name": "a"}}'
    )

    # When it is parsed / Then it is refused as malformed JSON, without picking either token
    message = refusal(raw)
    assert "duplicate key" in message
    assert "kuma-aws-v1" not in message


def test_a_field_name_of_the_callers_is_echoed_only_in_part() -> None:
    # Given an extra field whose name is 60,000 characters
    raw = json.dumps(
        {"token": "kuma-aws-v1.x", "dataplane": {"mesh": "default", "name": "a"}, "x" * 60_000: 1}
    )
    # Then the 400 names it, bounded
    message = refusal(raw)
    assert "Extra inputs are not permitted" in message
    assert len(message) < 200
