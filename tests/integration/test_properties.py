"""Random mutations of genuine tokens through the real handler: never a 500, never an allow for someone else.

Hypothesis changes bytes of the compact text, bytes of the JSON inside it, single fields in either encoding,
the Vault fields, and splices two genuine tokens (two roles) together. Whatever comes out, the handler
answers 200 or 400 (or 429/503 if AWS fails), a 400 never cost a network call, and an allow names exactly
the role whose signature the token carries. Most mutations die before the network, so this stays fast;
the few that pass are forwarded to moto, which checks their signature for real.

The last property dresses genuine tokens as real clients might (header values, name case, order, which
optional headers are present) and follows every one that passes the local checks onto the wire: the
recording stand-in in front of moto must receive it exactly as signed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kuma_iam.errors import DenyReason
from kuma_iam.identity.checks import GET_CALLER_IDENTITY_BODIES
from kuma_iam.identity.token import SignedRequest, decode_token, encode_compact, encode_vault
from kuma_iam_cli.local.seed import DemoWorld
from support.botocore_tokens import botocore_signed
from support.fake_aws import FakeAws, ReceivedRequest
from support.token_mutations import compact_document, compact_raw, read_compact
from support.verifier_harness import Verifier, VerifyAnswer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning"),
]

# Fixed examples for CI (derandomize), few enough to keep the module to seconds; the verifier, its role
# cache and the proxy are shared by the examples of a test, which is what the health check warns about.
THROUGH_THE_HANDLER = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CLAIM = {"mesh": "default", "name": "backend-01", "tags": {"kuma.io/service": ["backend"]}}
KNOWN_REASONS = {reason.value for reason in DenyReason}


@dataclass(frozen=True)
class Genuine:
    """A genuine token and who signed it: what an allow for it, or for any change of it, must name."""

    request: SignedRequest
    account: str
    role: str

    @property
    def authorization(self) -> str:
        return dict(self.request.headers)["Authorization"]


@pytest.fixture
def backend(demo_world: DemoWorld, sign_token: Callable[..., object]) -> Genuine:
    """Signed with real task-role credentials by the integration tier's sign_token."""
    return Genuine(
        decode_token(sign_token(demo_world.home_account, "backend-task")),
        demo_world.home_account,
        "backend-task",
    )


@pytest.fixture
def frontend(demo_world: DemoWorld, sign_token: Callable[..., object]) -> Genuine:
    request = decode_token(sign_token(demo_world.home_account, "frontend-task"))
    return Genuine(request, demo_world.home_account, "frontend-task")


@pytest.fixture
def verifier_environment_vars(
    verifier_environment_vars: dict[str, str], aws_counter: FakeAws
) -> dict[str, str]:
    return {
        **verifier_environment_vars,
        "AWS_ENDPOINT_URL_STS": aws_counter.url,
        "AWS_ENDPOINT_URL_IAM": aws_counter.url,
    }


def ask(verify: Verifier, proxy: FakeAws, token: object) -> tuple[VerifyAnswer, int]:
    proxy.reset_requests()
    answer = verify(token, dict(CLAIM))
    return answer, len(proxy.requests)


def assert_safe(answer: VerifyAnswer, calls: int, *signers: Genuine, token: object) -> None:
    """The property: a known answer, no network for a 400, and an allow only for the token's own signer."""
    assert answer.status in (200, 400, 429, 503), answer.body
    if answer.status == 400:
        event("400 invalid_request")
        assert answer.body["error"] == "invalid_request"
        assert calls == 0, "a malformed token reached AWS"
        return
    if answer.status != 200:
        event(f"{answer.status} {answer.body['error']}")
        return
    if not answer.body["allowed"]:
        event(f"denied {answer.body['reason']}")
        assert answer.body["reason"] in KNOWN_REASONS
        return
    event("allowed")
    identity = answer.body["identity"]
    carried = _authorization_of(token)
    signer = next((s for s in signers if s.authorization == carried), None)
    assert signer is not None, f"allowed a token whose signature none of {[s.role for s in signers]} made"
    assert (identity["account"], identity["roleName"]) == (signer.account, signer.role)
    assert identity["sessionArn"] == f"arn:aws:sts::{signer.account}:assumed-role/{signer.role}/ecs-task"


def _authorization_of(token: object) -> str | None:
    """The Authorization header the token carries, read as leniently as possible (it was accepted)."""
    try:
        if isinstance(token, str):
            headers = read_compact(token)["headers"]
        else:
            assert isinstance(token, dict)
            headers = json.loads(base64.b64decode(token["iam_request_headers"]))
        values = [v for k, v in headers.items() if k.lower() == "authorization"]
        value = values[0]
        return value[0] if isinstance(value, list) else value
    except (ValueError, KeyError, IndexError, TypeError):
        return None


# --- strategies ---------------------------------------------------------------------------------------

TEXT_NOISE = st.sampled_from(
    [
        *"AZaz09-_=+/. ",
        "\n",
        "\r",
        "\t",
        "\x00",
        "é",
        "\u202e",
        '"',
        "\\",
        "{",
        "}",
        ":",
        ",",
        "?",
        "#",
        "@",
        "%",
    ]
)
BYTE_NOISE = st.one_of(st.integers(0, 255), st.sampled_from(list(b'"{}[],:\\ \n\r\t\x00?#@%&=;')))


@st.composite
def mutated_text(draw: st.DrawFn, original: str) -> str:
    text = original
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(text)))
        operation = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "case"]))
        if operation == "replace" and position < len(text):
            text = text[:position] + draw(TEXT_NOISE) + text[position + 1 :]
        elif operation == "insert":
            text = text[:position] + draw(TEXT_NOISE) + text[position:]
        elif operation == "delete":
            text = text[:position] + text[position + 1 :]
        elif operation == "truncate":
            text = text[:position]
        elif position < len(text):
            text = text[:position] + text[position].swapcase() + text[position + 1 :]
    return text


@st.composite
def mutated_bytes(draw: st.DrawFn, original: bytes) -> bytes:
    raw = bytearray(original)
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(raw)))
        operation = draw(st.sampled_from(["replace", "insert", "delete"]))
        if operation == "replace" and position < len(raw):
            raw[position] = draw(BYTE_NOISE)
        elif operation == "insert":
            raw.insert(position, draw(BYTE_NOISE))
        elif position < len(raw):
            del raw[position]
    return bytes(raw)


@st.composite
def one_field_changed(draw: st.DrawFn, request: SignedRequest) -> SignedRequest:
    """Change the method, URL, body, or one header's name or value; or add, drop or repeat a header."""
    headers = list(request.headers)
    index = draw(st.integers(0, len(headers) - 1))
    name, value = headers[index]
    field = draw(st.sampled_from(["method", "url", "body", "name", "value", "add", "drop", "repeat"]))
    if field == "method":
        return replace(request, method=draw(mutated_text(request.method)))
    if field == "url":
        return replace(request, url=draw(mutated_text(request.url)))
    if field == "body":
        return replace(request, body=draw(mutated_text(request.body)))
    if field == "name":
        headers[index] = (draw(mutated_text(name)), value)
    elif field == "value":
        headers[index] = (name, draw(mutated_text(value)))
    elif field == "add":
        headers.append(
            (draw(st.sampled_from([n for n, _ in headers] + ["User-Agent", "X-Amz-Target"])), value)
        )
    elif field == "drop":
        del headers[index]
    else:
        headers.insert(index + 1, (draw(st.sampled_from([name, name.lower(), name.upper()])), value))
    return replace(request, headers=tuple(headers))


# --- the properties -------------------------------------------------------------------------------------


@THROUGH_THE_HANDLER
@given(data=st.data())
def test_any_change_to_the_compact_text_is_refused_or_still_the_signer(
    data: st.DataObject, backend: Genuine, verify: Verifier, aws_counter: FakeAws
) -> None:
    token = data.draw(mutated_text(encode_compact(backend.request)), label="token")
    answer, calls = ask(verify, aws_counter, token)
    assert_safe(answer, calls, backend, token=token)


@THROUGH_THE_HANDLER
@given(data=st.data())
def test_any_change_to_the_json_inside_is_refused_or_still_the_signer(
    data: st.DataObject, backend: Genuine, verify: Verifier, aws_counter: FakeAws
) -> None:
    raw = data.draw(mutated_bytes(json.dumps(compact_document(backend.request)).encode()), label="json")
    token = compact_raw(raw)
    answer, calls = ask(verify, aws_counter, token)
    assert_safe(answer, calls, backend, token=token)


@THROUGH_THE_HANDLER
@given(data=st.data(), encoding=st.sampled_from(["compact", "vault"]))
def test_any_change_to_one_field_is_refused_or_still_the_signer(
    data: st.DataObject, encoding: str, backend: Genuine, verify: Verifier, aws_counter: FakeAws
) -> None:
    changed = data.draw(one_field_changed(backend.request), label="request")
    token = encode_compact(changed) if encoding == "compact" else encode_vault(changed)
    answer, calls = ask(verify, aws_counter, token)
    assert_safe(answer, calls, backend, token=token)


@THROUGH_THE_HANDLER
@given(data=st.data(), field=st.sampled_from(["iam_request_url", "iam_request_body", "iam_request_headers"]))
def test_any_change_to_a_vault_field_is_refused_or_still_the_signer(
    data: st.DataObject, field: str, backend: Genuine, verify: Verifier, aws_counter: FakeAws
) -> None:
    login: dict[str, Any] = encode_vault(backend.request)
    if data.draw(st.booleans(), label="in base64 text"):
        login[field] = data.draw(mutated_text(login[field]), label=field)
    else:
        decoded = base64.b64decode(login[field])
        login[field] = base64.b64encode(data.draw(mutated_bytes(decoded), label=field)).decode()
    answer, calls = ask(verify, aws_counter, login)
    assert_safe(answer, calls, backend, token=login)


@THROUGH_THE_HANDLER
@given(data=st.data(), encoding=st.sampled_from(["compact", "vault"]))
def test_a_splice_of_two_roles_tokens_is_refused_or_exactly_one_of_them(
    data: st.DataObject,
    encoding: str,
    backend: Genuine,
    frontend: Genuine,
    verify: Verifier,
    aws_counter: FakeAws,
) -> None:
    # Each header (and the URL and body) comes from either role's genuine token
    sources = {"backend": dict(backend.request.headers), "frontend": dict(frontend.request.headers)}
    headers = tuple(
        (name, sources[data.draw(st.sampled_from(["backend", "frontend"]), label=name)][name])
        for name in sources["backend"]
    )
    spliced = replace(backend.request, headers=headers)
    token = encode_compact(spliced) if encoding == "compact" else encode_vault(spliced)
    answer, calls = ask(verify, aws_counter, token)
    assert_safe(answer, calls, backend, frontend, token=token)


# --- any token that passes the local checks reaches STS exactly as it was signed ---------------------------


@pytest.fixture
def sdk_backend(
    demo_world: DemoWorld, credentials_for: Callable[..., dict[str, str]], server_id: str
) -> Genuine:
    """Signed by a real botocore STS client: User-Agent, amz-sdk-* and Content-Length included."""
    role = "backend-task"
    credentials = credentials_for(demo_world.role_arn(demo_world.home_account, role))
    request = botocore_signed(credentials, server_id=server_id, region=demo_world.region)
    return Genuine(request, demo_world.home_account, role)


# Headers real clients send and may leave unsigned; the value of each is the client's own business.
DRESSABLE = (
    "User-Agent",
    "X-Amz-User-Agent",
    "Amz-Sdk-Request",
    "Amz-Sdk-Invocation-Id",
    "X-Amz-Content-Sha256",
    "Accept",
    "Accept-Encoding",
    "Content-Length",
)
HEADER_VALUE = st.one_of(
    st.text(st.sampled_from([chr(c) for c in range(0x20, 0x7F)] + ["\t"]), max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "\t",
            "  leading and trailing  ",
            "inner  double  spaces",
            "\ttabbed\t",
            "@@@SKIP_HEADER@@@",
            "identity",
            "*/*",
            "text/xml",
            "43",
            "attempt=1; max=3",
            "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64",
        ]
    ),
)


@st.composite
def dressed(draw: st.DrawFn, request: SignedRequest) -> SignedRequest:
    """Some optional headers set, added or dropped; names re-cased; order shuffled; Host kept or left out (as
    Go and botocore do); sometimes the session token or the body changed, which only STS can judge."""
    headers = dict(request.headers)
    for name in draw(st.lists(st.sampled_from(DRESSABLE), unique=True, max_size=4), label="dressed"):
        present = next((key for key in headers if key.lower() == name.lower()), None)
        if present is not None and draw(st.booleans(), label=f"drop {name}"):
            del headers[present]
        else:
            headers[present or name] = draw(HEADER_VALUE, label=name)
    if draw(st.booleans(), label="change the session token"):
        token_name = next(key for key in headers if key.lower() == "x-amz-security-token")
        headers[token_name] = draw(HEADER_VALUE, label="session token")
    if draw(st.booleans(), label="leave Host out"):
        headers = {key: value for key, value in headers.items() if key.lower() != "host"}
    cased = [(draw(st.sampled_from([n, n.lower(), n.upper()]), label="case"), v) for n, v in headers.items()]
    order = draw(st.permutations(cased), label="order")
    body = draw(st.sampled_from([request.body, *sorted(GET_CALLER_IDENTITY_BODIES)]), label="body")
    return replace(request, headers=tuple(order), body=body)


def forwarded_token(proxy: FakeAws) -> list[ReceivedRequest]:
    """What reached the stand-in addressed to a real STS host: the forwarded token (the verifier's own calls
    name the stand-in's address as their Host)."""
    return [r for r in proxy.requests if r.action == "GetCallerIdentity" and r.host.startswith("sts")]


def assert_reached_sts_as_signed(wire: ReceivedRequest, token: SignedRequest, host: str) -> None:
    """The method, path and body; every header line `Name: value` byte for byte, in the token's order; and
    nothing else but the Host a Host-less token implies and the Content-Length that frames the body."""
    assert (wire.method, wire.path, wire.body) == ("POST", "/", token.body.encode())
    expected = [f"{name}: {value}".encode() for name, value in token.headers]
    if not any(name.lower() == "host" for name, _ in token.headers):
        expected.insert(0, f"Host: {host}".encode())
    assert [line for line in wire.header_lines if line in expected] == expected, wire.header_lines
    added = [line for line in wire.header_lines if line not in expected]
    framing = [] if any(n.lower() == "content-length" for n, _ in token.headers) else [b"Content-Length: 43"]
    assert added == framing, added


def signed_facts(request: SignedRequest) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The body and the values of the headers the signature covers: change any, and STS must refuse."""
    signed = {"content-type", "host", "x-amz-date", "x-amz-security-token", "x-kuma-aws-iam-server-id"}
    values = tuple(sorted((n.lower(), v) for n, v in request.headers if n.lower() in signed - {"host"}))
    return request.body, values


FORWARDED_AS_SIGNED = settings(THROUGH_THE_HANDLER, max_examples=60)


@FORWARDED_AS_SIGNED
@given(data=st.data(), signer=st.sampled_from(["our-signer", "botocore-client"]))
def test_any_token_that_passes_the_checks_reaches_sts_exactly_as_signed(
    data: st.DataObject,
    signer: str,
    backend: Genuine,
    sdk_backend: Genuine,
    verify: Verifier,
    aws_counter: FakeAws,
) -> None:
    # Given a genuine token, dressed as some client might have sent it, in either encoding
    genuine = backend if signer == "our-signer" else sdk_backend
    token_request = data.draw(dressed(genuine.request), label="token")
    encoding = data.draw(st.sampled_from(["compact", "vault"]), label="encoding")
    token = encode_compact(token_request) if encoding == "compact" else encode_vault(token_request)
    # When the verifier is asked about it
    answer, calls = ask(verify, aws_counter, token)
    # Then the answer is a known one, and an allow is only ever the signer's
    assert_safe(answer, calls, genuine, token=token)
    if answer.status == 400:
        return
    # And what reached STS is the token exactly as the client wrote it
    (wire,) = forwarded_token(aws_counter)
    assert_reached_sts_as_signed(wire, decode_token(token), "sts.us-east-1.amazonaws.com")
    # And when nothing the signature covers was changed, moto's signature check agrees: it is allowed
    if signed_facts(token_request) == signed_facts(genuine.request):
        assert answer.body.get("allowed") is True, answer.body
