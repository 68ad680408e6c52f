"""One-time use of identity tokens (KUMA_IAM_REPLAY_TABLE) through the real handler, on a moto DynamoDB table.

A second use of a token is denied `replayed`; other tokens of the same role still pass; the table holds only
a hash and an expiry; two simultaneous uses yield exactly one allow; replay protection is off unless the
table is configured; and a DynamoDB that cannot answer fails closed, never open.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kuma_iam.identity.token import SignedRequest, decode_token, encode_compact, encode_vault
from kuma_iam.verify import Decision, VerifyRequest, verifier_from_env
from kuma_iam_cli.local.embedded_aws import EmbeddedAws
from kuma_iam_cli.local.seed import DemoWorld
from support.aws_clients import ClientFactory
from support.captured_output import assert_no_secrets, header_secrets, token_secrets, upstream_errors
from support.fake_aws import Answer, Behaviour, FakeAws, Hang, PassThrough
from support.token_mutations import signature_of, signing_time
from support.upstream_timeouts import (
    CEILING_SECONDS,
    DEFAULT_SECONDS,
    HANG_SECONDS,
    TIMEOUT_VARIABLE,
    patient_verifier_from_env,
    without_collection_pauses,
)
from support.verifier_harness import TokenFactory, Verifier, VerifyAnswer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning"),
]

HOME = "111111111111"
ROLE = "backend-task"
CLAIM = {"mesh": "default", "name": "backend-01", "tags": {"kuma.io/service": ["backend"]}}
MAX_AGE_SECONDS = 900  # the verifier's default KUMA_IAM_MAX_TOKEN_AGE_SECONDS
IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"


def dynamodb_error(type_: str, message: str = "try again") -> Answer:
    return Answer(
        400,
        json.dumps({"__type": type_, "message": message}).encode(),
        (("Content-Type", "application/x-amz-json-1.0"),),
    )


def scan(admin_dynamodb: Any, table: str) -> list[dict[str, Any]]:
    return list(admin_dynamodb.scan(TableName=table, ConsistentRead=True)["Items"])


def backend_token(sign_token: TokenFactory, *, session_name: str = "ecs-task") -> tuple[SignedRequest, str]:
    """backend-task's token, signed with fresh task-role credentials (the integration tier's sign_token)."""
    request = decode_token(sign_token(HOME, ROLE, session_name=session_name))
    return request, encode_compact(request)


# --- replay protection on -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iam_fake(embedded_aws: EmbeddedAws) -> Iterator[FakeAws]:
    """IAM as moto answers it, unless a test scripts otherwise."""
    with FakeAws(name="fake-iam") as server:
        yield server


class TestReplayTable:
    @pytest.fixture
    def verifier_environment_vars(
        self,
        verifier_environment_vars: dict[str, str],
        replay_table: str,
        iam_fake: FakeAws,
        embedded_aws: EmbeddedAws,
    ) -> dict[str, str]:
        iam_fake.script(then=PassThrough(embedded_aws.endpoint_url))
        return {
            **verifier_environment_vars,
            "KUMA_IAM_REPLAY_TABLE": replay_table,
            "AWS_ENDPOINT_URL_IAM": iam_fake.url,
        }

    @pytest.mark.parametrize("encoding", ["compact", "vault"])
    def test_second_use_of_a_token_is_denied_as_replayed(
        self,
        encoding: str,
        sign_token: TokenFactory,
        verify: Verifier,
        demo_world: DemoWorld,
        capfd: pytest.CaptureFixture[str],
    ) -> None:
        # Given a token that was used once
        request, _ = backend_token(sign_token)
        token = encode_compact(request) if encoding == "compact" else encode_vault(request)
        first = verify(token, dict(CLAIM))
        assert first.body["allowed"] is True, first.body
        # When it is presented again
        second = verify(token, dict(CLAIM))
        # Then it is a decision: replayed
        assert second.status == 200
        assert second.body == {
            "allowed": False,
            "reason": "replayed",
            "message": "this identity token was already used",
        }
        output = capfd.readouterr()
        secrets = [*token_secrets(token, request), demo_world.verifier.secret_access_key]
        assert_no_secrets(output.out + output.err, secrets)

    def test_replay_is_judged_on_the_signature_not_the_encoding(
        self, sign_token: TokenFactory, verify: Verifier
    ) -> None:
        # The same signed request, once compact and once as Vault login data, is one token
        request, compact = backend_token(sign_token)
        assert verify(compact, dict(CLAIM)).body["allowed"] is True
        assert verify(encode_vault(request), dict(CLAIM)).reason == "replayed"

    def test_another_token_of_the_same_role_is_allowed(
        self, sign_token: TokenFactory, verify: Verifier
    ) -> None:
        # Given one token of the role already used
        _, first = backend_token(sign_token)
        assert verify(first, dict(CLAIM)).body["allowed"] is True
        # When the same role signs a new token (new task credentials, so a new signature)
        _, second = backend_token(sign_token, session_name="ecs-task-2")
        answer = verify(second, dict(CLAIM))
        # Then it is allowed
        assert answer.body["allowed"] is True, answer.body
        assert answer.body["identity"]["roleName"] == ROLE

    def test_the_table_holds_only_a_hash_and_the_expiry(
        self, sign_token: TokenFactory, verify: Verifier, replay_table: str, admin_client: ClientFactory
    ) -> None:
        # Given a token used once
        request, token = backend_token(sign_token)
        assert verify(token, dict(CLAIM)).body["allowed"] is True
        # When the table is read, as the home account's admin (the verifier itself may only put items)
        items = scan(admin_client(HOME, "dynamodb"), replay_table)
        # Then it holds one item: the SHA-256 of the signature, and when the token stops mattering
        assert len(items) == 1
        item = items[0]
        assert set(item) == {"pk", "expiresAt"}
        assert item["pk"] == {"S": hashlib.sha256(signature_of(request).encode()).hexdigest()}
        expected_expiry = int(signing_time(request).timestamp()) + MAX_AGE_SECONDS
        assert item["expiresAt"] == {"N": str(expected_expiry)}
        # And nothing from which a request could be rebuilt
        stored = json.dumps(items)
        headers = dict(request.headers)
        for secret in (
            signature_of(request),
            headers["X-Amz-Security-Token"],
            headers["Authorization"],
            token,
        ):
            assert secret not in stored

    def test_two_simultaneous_uses_yield_exactly_one_allow(
        self, sign_token: TokenFactory, verify: Verifier, verifier_environment_vars: dict[str, str]
    ) -> None:
        # Given two verifiers that share nothing but the table, as two Lambda containers would
        for attempt in range(5):
            _, token = backend_token(sign_token, session_name=f"race-{attempt}")
            verifiers = [patient_verifier_from_env(os.environ) for _ in range(2)]
            request = VerifyRequest.model_validate({"token": token, "dataplane": CLAIM})
            start = threading.Barrier(2)
            decisions: list[Decision] = []

            def use(
                verifier: Any, request: VerifyRequest, start: threading.Barrier, decisions: list[Decision]
            ) -> None:
                start.wait()
                decisions.append(verifier.verify(request))

            threads = [threading.Thread(target=use, args=(v, request, start, decisions)) for v in verifiers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=300)  # "did not hang": a loaded machine is slow, never stuck
            # When both present the same token at once
            # Then exactly one is allowed, the other is replayed
            assert sorted(str(d.reason) for d in decisions) == ["None", "replayed"], decisions
            assert sum(d.allowed for d in decisions) == 1

    def test_a_denied_use_does_not_burn_the_token(self, sign_token: TokenFactory, verify: Verifier) -> None:
        # Given a token first presented for a claim its role does not fit
        _, token = backend_token(sign_token)
        assert verify(token, {**CLAIM, "mesh": "payments"}).reason == "mesh_mismatch"
        # When it is presented for the claim it fits, then once more
        answers = [verify(token, dict(CLAIM)) for _ in range(2)]
        # Then the deny did not use it up; the allow did
        assert answers[0].body["allowed"] is True, answers[0].body
        assert answers[1].reason == "replayed"

    def test_a_use_that_failed_upstream_does_not_burn_the_token(
        self, sign_token: TokenFactory, verify: Verifier, iam_fake: FakeAws, embedded_aws: EmbeddedAws
    ) -> None:
        # Given the first use met a throttled IAM (both attempts), the second a working one
        throttled = Answer(
            400,
            f'<ErrorResponse xmlns="{IAM_NS}"><Error><Type>Sender</Type><Code>Throttling</Code>'
            "<Message>Rate exceeded</Message></Error><RequestId>1</RequestId></ErrorResponse>".encode(),
            (("Content-Type", "text/xml"),),
        )
        iam_fake.script(throttled, throttled, then=PassThrough(embedded_aws.endpoint_url))
        _, token = backend_token(sign_token)
        assert verify(token, dict(CLAIM)).status == 429
        # When the control plane retries the verification, as a 429 tells it to
        answer = verify(token, dict(CLAIM))
        # Then the token is judged, not refused as replayed
        assert answer.body["allowed"] is True, answer.body


# --- replay protection off (the default) ---------------------------------------------------------------


def test_replay_protection_is_off_by_default(
    sign_token: TokenFactory, verify: Verifier, verifier_environment_vars: dict[str, str]
) -> None:
    # Given the verifier's default environment: no replay table
    assert "KUMA_IAM_REPLAY_TABLE" not in verifier_environment_vars
    _, token = backend_token(sign_token)
    # When the same token is used twice
    answers = [verify(token, dict(CLAIM)) for _ in range(2)]
    # Then both are allowed (the token's age alone bounds its reuse)
    assert [a.body["allowed"] for a in answers] == [True, True]


def test_an_empty_replay_table_setting_means_off(
    verifier_environment_vars: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # CloudFormation writes "" when ReplayProtection is Disabled
    monkeypatch.setitem(verifier_environment_vars, "KUMA_IAM_REPLAY_TABLE", "")
    verifier = verifier_from_env({**verifier_environment_vars})
    assert verifier.replay is None


# --- DynamoDB failing --------------------------------------------------------------------------------------

RECORD = "cannot record the token's use"
NOT_DYNAMODB = "the replay table's answer is not DynamoDB's"
DYNAMODB_FAULTS = [
    pytest.param(
        Answer(500, b'{"__type":"InternalServerError"}'), 503, "upstream_unavailable", RECORD, id="status-500"
    ),
    pytest.param(
        dynamodb_error("com.amazon.coral.availability#ThrottlingException"),
        429,
        "upstream_throttled",
        RECORD,
        id="throttling-exception",
    ),
    pytest.param(
        dynamodb_error("com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"),
        429,
        "upstream_throttled",
        RECORD,
        id="provisioned-throughput-exceeded",
    ),
    pytest.param(
        dynamodb_error("com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", "table not found"),
        503,
        "upstream_unavailable",
        RECORD,
        id="table-missing",
    ),
    pytest.param(
        dynamodb_error("com.amazon.coral.service#AccessDeniedException", "not authorized"),
        503,
        "upstream_unavailable",
        RECORD,
        id="access-denied",
    ),
    pytest.param(Hang(seconds=HANG_SECONDS), 503, "upstream_unavailable", RECORD, id="never-starts"),
    # A 200 that is not DynamoDB's must not pass for "recorded": replay protection would fail open.
    pytest.param(
        Answer(200, b"<html>maintenance</html>", (("Content-Type", "text/html"),)),
        503,
        "upstream_unavailable",
        NOT_DYNAMODB,
        id="html-200",
    ),
    pytest.param(
        Answer(200, b"{}", (("Content-Type", "application/x-amz-json-1.0"),)),
        503,
        "upstream_unavailable",
        NOT_DYNAMODB,
        id="empty-json-200",
    ),
]


@pytest.fixture(scope="module")
def dynamodb_fake() -> Iterator[FakeAws]:
    with FakeAws(name="fake-dynamodb") as server:
        yield server


class TestReplayTableUnavailable:
    @pytest.fixture
    def verifier_environment_vars(
        self, verifier_environment_vars: dict[str, str], dynamodb_fake: FakeAws
    ) -> dict[str, str]:
        return {
            **verifier_environment_vars,
            "KUMA_IAM_REPLAY_TABLE": "kuma-iam-replay",
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_fake.url,
            TIMEOUT_VARIABLE: str(DEFAULT_SECONDS),  # the verifier's own, not the tier's patient one
        }

    @pytest.mark.parametrize(("behaviour", "status", "code", "message"), DYNAMODB_FAULTS)
    def test_fault_fails_closed(
        self,
        behaviour: Behaviour,
        status: int,
        code: str,
        message: str,
        demo_world: DemoWorld,
        sign_token: TokenFactory,
        dynamodb_fake: FakeAws,
        verify: Verifier,
        capfd: pytest.CaptureFixture[str],
    ) -> None:
        # Given the replay table cannot record the use
        dynamodb_fake.script(then=behaviour)
        request, token = backend_token(sign_token)
        # When a genuine token is verified (nothing else in this process pausing the stand-ins meanwhile)
        verify.module.verifier()
        with without_collection_pauses():
            started = time.monotonic()
            answer: VerifyAnswer = verify(token, dict(CLAIM))
            elapsed = time.monotonic() - started
        # Then the answer is a retryable failure, never an allow, and it came without waiting out a hang
        assert elapsed < CEILING_SECONDS, f"took {elapsed:.2f}s"
        assert answer.status == status, answer.body
        assert answer.body["error"] == code
        assert message in answer.body["message"]
        assert answer.headers.get("retry-after", "").isdigit()
        # One attempt: a retried conditional put could meet its own first write and call the use a replay
        assert len(dynamodb_fake.requests) == 1
        assert all(r.header("X-Amz-Target") == "DynamoDB_20120810.PutItem" for r in dynamodb_fake.requests)
        output = capfd.readouterr()
        assert upstream_errors(output.out) == {"dynamodb": 1}
        secrets = [
            *token_secrets(token, request),
            *header_secrets(r.headers for r in dynamodb_fake.requests),
            demo_world.verifier.secret_access_key,
        ]
        assert_no_secrets(output.out + output.err, secrets)
