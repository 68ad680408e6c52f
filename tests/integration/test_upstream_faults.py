"""AWS answering badly, slowly or not at all: the verifier fails closed, in time, counted, and never allows.

A scripted fake (support.fake_aws.FakeAws) stands in for STS or IAM where moto cannot misbehave: answers
with two results, an account that disagrees with the ARN, HTML or JSON, XML with entities, redirects, 5xx,
throttling, a reply that never starts and one that never ends. Everything else still runs on the embedded
AWS.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from kuma_iam.identity import checks
from kuma_iam.identity.token import SignedRequest, decode_token, encode_compact
from kuma_iam_cli.local.embedded_aws import EmbeddedAws
from kuma_iam_cli.local.gateway import GatewayCaller
from kuma_iam_cli.local.seed import DemoWorld
from kuma_iam_cli.local.token_keys import TokenKeys
from support.captured_output import (
    assert_no_secrets,
    header_secrets,
    metric_count,
    token_secrets,
    upstream_errors,
)
from support.fake_aws import (
    Answer,
    Behaviour,
    ByAction,
    FakeAws,
    Hang,
    PassThrough,
    Trickle,
    counting_proxy,
    json_error,
)
from support.token_issuer_harness import TokenIssuer
from support.token_mutations import adding
from support.upstream_timeouts import (
    CEILING_SECONDS,
    DEFAULT_SECONDS,
    HANG_SECONDS,
    TIMEOUT_VARIABLE,
    without_collection_pauses,
)
from support.verifier_harness import Verifier, VerifyAnswer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning"),
]

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"
HOME = "111111111111"
ROLE = "backend-task"
CLAIM = {"mesh": "default", "name": "backend-01", "tags": {"kuma.io/service": ["backend"]}}
SESSION_ARN = f"arn:aws:sts::{HOME}:assumed-role/{ROLE}/ecs-task"
USER_ID = "AROAFAKEROLEID0000001:ecs-task"


# --- what STS and IAM would say, and what they must never be believed to say -------------------------------


def sts_result(arn: str = SESSION_ARN, user_id: str = USER_ID, account: str = HOME) -> str:
    return (
        f"<GetCallerIdentityResult><Arn>{arn}</Arn><UserId>{user_id}</UserId>"
        f"<Account>{account}</Account></GetCallerIdentityResult>"
    )


def sts_answer(*results: str) -> bytes:
    return (
        f'<GetCallerIdentityResponse xmlns="{STS_NS}">{"".join(results)}'
        "<ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>"
        "</GetCallerIdentityResponse>"
    ).encode()


def get_role_answer(account: str, name: str) -> bytes:
    """A well-formed IAM GetRole answer, for a role that may not be the one asked for."""
    return (
        f'<GetRoleResponse xmlns="{IAM_NS}"><GetRoleResult><Role><Path>/</Path><RoleName>{name}</RoleName>'
        f"<RoleId>AROAOTHERROLE00000001</RoleId><Arn>arn:aws:iam::{account}:role/{name}</Arn>"
        "<CreateDate>2026-01-01T00:00:00Z</CreateDate><Tags><member><Key>kuma.io/type</Key>"
        "<Value>dataplane</Value></member><member><Key>kuma.io/mesh</Key><Value>default</Value></member>"
        "</Tags></Role></GetRoleResult></GetRoleResponse>"
    ).encode()


def aws_error(code: str, *, namespace: str = STS_NS, kind: str = "Sender") -> bytes:
    return (
        f'<ErrorResponse xmlns="{namespace}"><Error><Type>{kind}</Type><Code>{code}</Code>'
        f"<Message>{code}</Message></Error><RequestId>0d8c5a7a-0000-4000-8000-000000000000</RequestId>"
        "</ErrorResponse>"
    ).encode()


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">'.encode() for i in range(1, 10)
    )
    + b"]>"
    + sts_answer(sts_result(arn="&lol9;"))
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY arn SYSTEM "file:///etc/hostname">]>'
    + sts_answer(sts_result(arn="&arn;"))
)
HTML = b"<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"


@dataclass(frozen=True)
class Fault:
    id: str
    behaviour: Behaviour
    status: int
    code: str  # error code, or for a 200 the deny reason
    message: str
    xfail: str | None = None


def fault_params(faults: list[Fault]) -> list[Any]:
    return [
        pytest.param(
            fault,
            id=fault.id,
            marks=[pytest.mark.xfail(strict=True, reason=fault.xfail)] if fault.xfail else [],
        )
        for fault in faults
    ]


STS_FAULTS = [
    Fault(
        "two-results",
        Answer(200, sts_answer(sts_result(), sts_result())),
        503,
        "upstream_unavailable",
        "2 results",
    ),
    Fault(
        "two-results-second-is-admin",
        Answer(200, sts_answer(sts_result(), sts_result(arn=f"arn:aws:sts::{HOME}:assumed-role/admin/x"))),
        503,
        "upstream_unavailable",
        "not exactly one",
    ),
    Fault("no-result", Answer(200, sts_answer()), 503, "upstream_unavailable", "0 results"),
    Fault(
        "account-disagrees-with-arn",
        Answer(200, sts_answer(sts_result(account="222222222222"))),
        503,
        "upstream_unavailable",
        "account that disagrees with the ARN",
    ),
    # Not an assumed role, and not even STS's own account: an untrustworthy answer (503), not a deny
    Fault(
        "user-arn-of-another-account",
        Answer(200, sts_answer(sts_result(arn="arn:aws:iam::222222222222:user/admin", user_id="AIDAFAKE"))),
        503,
        "upstream_unavailable",
        "account that disagrees with the ARN",
    ),
    Fault(
        "account-not-twelve-digits",
        Answer(200, sts_answer(sts_result(account="11111111111"))),
        503,
        "upstream_unavailable",
        "account that disagrees with the ARN",
    ),
    Fault(
        "userid-of-another-session",
        Answer(200, sts_answer(sts_result(user_id="AROAFAKEROLEID0000001:other-session"))),
        503,
        "upstream_unavailable",
        "UserId that does not belong to the assumed role",
    ),
    Fault(
        "html-200",
        Answer(200, HTML, (("Content-Type", "text/html"),)),
        503,
        "upstream_unavailable",
        "not a GetCallerIdentityResponse",
    ),
    Fault(
        "html-502", Answer(502, HTML, (("Content-Type", "text/html"),)), 503, "upstream_unavailable", "502"
    ),
    Fault(
        "json-200",
        Answer(
            200,
            b'{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"111111111111"}}}',
            (("Content-Type", "application/json"),),
        ),
        503,
        "upstream_unavailable",
        "not well-formed XML",
    ),
    Fault("billion-laughs", Answer(200, BILLION_LAUGHS), 503, "upstream_unavailable", "DTD"),
    Fault("external-entity", Answer(200, EXTERNAL_ENTITY), 503, "upstream_unavailable", "DTD"),
    Fault(
        "oversized-answer",
        Answer(200, b"<a>" + b" " * 70_000 + b"</a>"),
        503,
        "upstream_unavailable",
        "too large",
    ),
    Fault(
        "status-500",
        Answer(500, aws_error("InternalFailure", kind="Receiver")),
        503,
        "upstream_unavailable",
        "500",
    ),
    Fault(
        "status-503",
        Answer(503, aws_error("ServiceUnavailable", kind="Receiver")),
        503,
        "upstream_unavailable",
        "503",
    ),
    Fault(
        "status-404-proxy-page",
        Answer(404, HTML, (("Content-Type", "text/html"),)),
        503,
        "upstream_unavailable",
        "404",
    ),
    Fault("throttling-400", Answer(400, aws_error("Throttling")), 429, "upstream_throttled", "throttling"),
    Fault("status-429", Answer(429, b""), 429, "upstream_throttled", "throttling"),
    Fault("never-starts", Hang(seconds=HANG_SECONDS), 503, "upstream_unavailable", "did not answer"),
    Fault("never-ends", Trickle(seconds=HANG_SECONDS), 503, "upstream_unavailable", "in time"),
]

# Well-formed answers for principals that are not an assumed role: a deny, never an allow.
FORGED_PRINCIPALS = [
    (
        "federated-user",
        sts_result(arn=f"arn:aws:sts::{HOME}:federated-user/{ROLE}", user_id=f"{HOME}:{ROLE}"),
        "unsupported_principal",
    ),
    (
        "iam-user",
        sts_result(arn=f"arn:aws:iam::{HOME}:user/{ROLE}", user_id="AIDAFAKEUSERID0000001"),
        "unsupported_principal",
    ),
    ("account-root", sts_result(arn=f"arn:aws:iam::{HOME}:root", user_id=HOME), "unsupported_principal"),
    (
        "china-partition-arn-from-a-commercial-endpoint",
        sts_result(arn=SESSION_ARN.replace("arn:aws:", "arn:aws-cn:")),
        "unsupported_principal",
    ),
    # a well-formed answer naming the role, but with a RoleId IAM does not know for it: someone else
    ("role-id-not-the-roles", sts_result(), "role_mismatch"),
]


# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAws]:
    with FakeAws(name="fake-aws") as server:
        yield server


@pytest.fixture(scope="module")
def redirect_target(embedded_aws: EmbeddedAws) -> Iterator[FakeAws]:
    """Where a redirect points: a pass-through to moto that would count a followed redirect."""
    with counting_proxy(embedded_aws.endpoint_url, name="redirect-target") as proxy:
        yield proxy


@pytest.fixture
def genuine(sign_token: Callable[..., object]) -> SignedRequest:
    """A GetCallerIdentity signed with real task-role credentials (the integration tier's sign_token)."""
    return decode_token(sign_token(HOME, ROLE))


ELAPSED: dict[str, tuple[int, float]] = {}


@pytest.fixture(scope="module", autouse=True)
def elapsed_report(request: pytest.FixtureRequest) -> Iterator[None]:
    """At the end of the module, the status and time of every fault, for the closing note."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not ELAPSED:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"\nupstream faults (timeout {DEFAULT_SECONDS}s): status, elapsed")
        for name, (status, seconds) in ELAPSED.items():
            reporter.write_line(f"  {name:<80} {status}  {seconds:5.2f}s")


def timed_verify(
    verify: Verifier, token: object, claim: dict[str, Any] | None = None
) -> tuple[float, VerifyAnswer]:
    # Given a warm container: the verifier and its clients are built before the clock starts, and nothing
    # else in this process pauses the stand-ins while the verifier's own timeout is what is measured
    verify.module.verifier()
    with without_collection_pauses():
        started = time.monotonic()
        answer = verify(token, dict(claim or CLAIM))
        elapsed = time.monotonic() - started
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split("::", 1)[-1].removesuffix(" (call)")
    ELAPSED[test] = (answer.status, elapsed)
    return elapsed, answer


def clean_output(
    capfd: pytest.CaptureFixture[str], world: DemoWorld, token: object, *servers: FakeAws
) -> str:
    """What the handler wrote, once it is shown to hold no secret: the token's, or the verifier's own
    credentials and signatures as the fakes received them. Returns stdout, where the metrics are."""
    output = capfd.readouterr()
    secrets = [
        *token_secrets(token, decode_token(token)),
        *header_secrets(request.headers for server in servers for request in server.requests),
        world.verifier.secret_access_key,
    ]
    assert_no_secrets(output.out + output.err, secrets)
    return output.out


def upstream_at(environment: dict[str, str], endpoint_variable: str, url: str) -> dict[str, str]:
    """The verifier's environment with one AWS endpoint at `url`, and its own default upstream timeout (the
    integration tier's is a patient one): this module is about AWS answering badly or not at all."""
    return {**environment, endpoint_variable: url, TIMEOUT_VARIABLE: str(DEFAULT_SECONDS)}


def assert_failed_closed(answer: VerifyAnswer, status: int, code: str, message: str) -> None:
    assert answer.status == status, answer.body
    assert answer.body.get("allowed") is not True
    assert answer.body["error"] == code, answer.body
    assert message in answer.body["message"], answer.body
    retry_after = answer.headers.get("retry-after")
    assert retry_after is not None
    assert retry_after.isdigit()
    assert int(retry_after) >= 1


# --- STS: the forward of the token ------------------------------------------------------------------------


class TestStsForward:
    @pytest.fixture
    def verifier_environment_vars(
        self, verifier_environment_vars: dict[str, str], fake: FakeAws
    ) -> dict[str, str]:
        fake.script(then=Answer(599, b"unscripted"))
        return upstream_at(verifier_environment_vars, "AWS_ENDPOINT_URL_STS", fake.url)

    @pytest.mark.parametrize("fault", fault_params(STS_FAULTS))
    def test_fault_fails_closed_in_time_and_is_counted(
        self,
        fault: Fault,
        genuine: SignedRequest,
        fake: FakeAws,
        verify: Verifier,
        demo_world: DemoWorld,
        capfd: pytest.CaptureFixture[str],
    ) -> None:
        # Given STS answers the forwarded token with this fault
        fake.script(fault.behaviour, then=Answer(599, b"only one call expected"))
        token = encode_compact(genuine)
        # When the verifier is asked
        elapsed, answer = timed_verify(verify, token)
        # Then it fails closed with the documented status, without waiting for a hang to end
        assert_failed_closed(answer, fault.status, fault.code, fault.message)
        assert elapsed < CEILING_SECONDS, f"took {elapsed:.2f}s"
        # And the forward was the only call: a failed STS answer stops everything after it
        assert [request.service for request in fake.requests] == ["sts"]
        # And the failure is counted, by service, and nothing secret was written
        output = clean_output(capfd, demo_world, token, fake)
        assert upstream_errors(output) == {"sts": 1}
        assert metric_count(output, "Allowed") == 0

    @pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
    def test_redirect_is_never_followed(
        self,
        status: int,
        genuine: SignedRequest,
        fake: FakeAws,
        redirect_target: FakeAws,
        verify: Verifier,
        demo_world: DemoWorld,
        capfd: pytest.CaptureFixture[str],
    ) -> None:
        # Given STS answers with a redirect to a real, working STS (moto behind a counting proxy)
        redirect_target.reset_requests()
        fake.script(Answer(status, b"", (("Location", redirect_target.url + "/"),)))
        token = encode_compact(genuine)
        # When the verifier is asked
        elapsed, answer = timed_verify(verify, token)
        # Then it fails closed, and the redirect's target never heard from us
        assert_failed_closed(answer, 503, "upstream_unavailable", f"redirect ({status})")
        assert elapsed < CEILING_SECONDS
        assert redirect_target.requests == []
        assert upstream_errors(clean_output(capfd, demo_world, token, fake)) == {"sts": 1}

    @pytest.mark.parametrize(
        ("result", "reason"),
        [(r, reason) for _, r, reason in FORGED_PRINCIPALS],
        ids=[i for i, _, _ in FORGED_PRINCIPALS],
    )
    def test_well_formed_answer_for_another_kind_of_principal_is_denied(
        self,
        result: str,
        reason: str,
        genuine: SignedRequest,
        fake: FakeAws,
        verify: Verifier,
        embedded_aws: EmbeddedAws,
        demo_world: DemoWorld,
        capfd: pytest.CaptureFixture[str],
    ) -> None:
        # Given STS (the fake) vouches for something that is not this assumed role; later calls reach moto
        fake.script(Answer(200, sts_answer(result)), then=PassThrough(embedded_aws.endpoint_url))
        token = encode_compact(genuine)
        # When the verifier is asked
        _, answer = timed_verify(verify, token)
        # Then it is a deny with the precise reason, never an allow
        assert answer.status == 200
        assert answer.body["allowed"] is False
        assert answer.reason == reason, answer.body
        assert metric_count(clean_output(capfd, demo_world, token, fake), "Allowed") == 0

    def test_what_the_http_library_raises_past_a_gap_in_the_checks_fails_closed(
        self,
        genuine: SignedRequest,
        fake: FakeAws,
        verify: Verifier,
        demo_world: DemoWorld,
        capfd: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # Given the pre-network check for urllib3's sentinel switched off (a gap a future header could open),
        # and a token carrying the sentinel in a header urllib3 refuses to send with it
        monkeypatch.setattr(checks, "RESERVED_VALUE", "\x00 no such value")
        token = encode_compact(adding(genuine, ("X-Amz-User-Agent", "@@@SKIP_HEADER@@@")))
        # When the verifier is asked, and urllib3 raises ValueError inside the forward
        _, answer = timed_verify(verify, token)
        # Then it is a 503 naming only the exception's type, counted, and nothing reached STS
        assert_failed_closed(answer, 503, "upstream_unavailable", "STS did not answer: ValueError")
        assert fake.requests == []
        assert upstream_errors(clean_output(capfd, demo_world, token, fake)) == {"sts": 1}


class TestStsUnreachable:
    @pytest.fixture
    def verifier_environment_vars(
        self, verifier_environment_vars: dict[str, str], closed_port: int
    ) -> dict[str, str]:
        return upstream_at(
            verifier_environment_vars, "AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{closed_port}"
        )

    def test_refused_connection_fails_closed(
        self,
        genuine: SignedRequest,
        verify: Verifier,
        demo_world: DemoWorld,
        capfd: pytest.CaptureFixture[str],
    ) -> None:
        token = encode_compact(genuine)
        elapsed, answer = timed_verify(verify, token)
        assert_failed_closed(answer, 503, "upstream_unavailable", "STS did not answer")
        assert elapsed < CEILING_SECONDS
        assert upstream_errors(clean_output(capfd, demo_world, token)) == {"sts": 1}


# --- IAM: reading the role --------------------------------------------------------------------------------


IAM_FAULTS = [
    Fault(
        "throttling",
        Answer(400, aws_error("Throttling", namespace=IAM_NS)),
        429,
        "upstream_throttled",
        "throttling",
    ),
    Fault(
        "internal-failure-500",
        Answer(500, aws_error("InternalFailure", namespace=IAM_NS, kind="Receiver")),
        503,
        "upstream_unavailable",
        "InternalFailure",
    ),
    Fault(
        "service-unavailable-503",
        Answer(503, aws_error("ServiceUnavailable", namespace=IAM_NS, kind="Receiver")),
        503,
        "upstream_unavailable",
        "ServiceUnavailable",
    ),
    Fault(
        "access-denied",
        Answer(403, aws_error("AccessDenied", namespace=IAM_NS)),
        503,
        "upstream_unavailable",
        "AccessDenied",
    ),
    Fault(
        "html-200",
        Answer(200, HTML, (("Content-Type", "text/html"),)),
        503,
        "upstream_unavailable",
        "cannot read role",
    ),
    Fault(
        "json-200",
        Answer(200, b'{"Role": {"RoleName": "backend-task"}}', (("Content-Type", "application/json"),)),
        503,
        "upstream_unavailable",
        "cannot read role",
    ),
    Fault(
        "answer-for-another-role",
        Answer(200, get_role_answer(HOME, "admin-task")),
        503,
        "upstream_unavailable",
        "IAM answered for another role",
    ),
    Fault(
        "answer-from-another-account",
        Answer(200, get_role_answer("999999999999", ROLE)),
        503,
        "upstream_unavailable",
        "IAM answered for another role",
    ),
    Fault(
        "truncated-xml-200",
        Answer(200, f'<GetRoleResponse xmlns="{IAM_NS}"><GetRoleResult><Role>'.encode()),
        503,
        "upstream_unavailable",
        "cannot read role",
    ),
    Fault("never-starts", Hang(seconds=HANG_SECONDS), 503, "upstream_unavailable", "cannot read role"),
]


class TestIamRoleRead:
    @pytest.fixture
    def verifier_environment_vars(
        self, verifier_environment_vars: dict[str, str], fake: FakeAws
    ) -> dict[str, str]:
        fake.script(then=Answer(599, b"unscripted"))
        return upstream_at(verifier_environment_vars, "AWS_ENDPOINT_URL_IAM", fake.url)

    @pytest.mark.parametrize("fault", fault_params(IAM_FAULTS))
    def test_fault_fails_closed_in_time_and_is_counted(
        self,
        fault: Fault,
        genuine: SignedRequest,
        fake: FakeAws,
        verify: Verifier,
        demo_world: DemoWorld,
        capfd: pytest.CaptureFixture[str],
    ) -> None:
        # Given STS (moto) vouches for the caller, but IAM answers GetRole with this fault
        fake.script(then=fault.behaviour)
        token = encode_compact(genuine)
        # When the verifier is asked
        elapsed, answer = timed_verify(verify, token)
        # Then it fails closed, without waiting for a hang to end
        assert_failed_closed(answer, fault.status, fault.code, fault.message)
        assert elapsed < CEILING_SECONDS, f"took {elapsed:.2f}s"
        # And retries are bounded: at most the one retry botocore's standard mode makes
        calls = [request for request in fake.requests if request.service == "iam"]
        assert 1 <= len(calls) <= 2, len(calls)
        assert all(b"Action=GetRole" in request.body for request in calls)
        output = clean_output(capfd, demo_world, token, fake)
        assert upstream_errors(output) == {"iam": 1}
        assert metric_count(output, "Allowed") == 0

    def test_a_throttled_read_is_not_cached(
        self, genuine: SignedRequest, fake: FakeAws, verify: Verifier, embedded_aws: EmbeddedAws
    ) -> None:
        # Given IAM throttles once, then answers (moto behind the fake)
        fake.script(
            Answer(400, aws_error("Throttling", namespace=IAM_NS)),
            Answer(400, aws_error("Throttling", namespace=IAM_NS)),
            then=PassThrough(embedded_aws.endpoint_url),
        )
        assert timed_verify(verify, encode_compact(genuine))[1].status == 429
        # When the sidecar retries with the same token
        _, answer = timed_verify(verify, encode_compact(genuine))
        # Then the role is read again and the answer is the real one
        assert answer.body["allowed"] is True, answer.body
        assert answer.body["identity"]["roleName"] == ROLE


# --- STS: assuming the read-only role in another account -----------------------------------------------

PARTNER = "222222222222"
PARTNER_ROLE = "payments-task"
PARTNER_CLAIM = {"mesh": "payments", "name": "payments-01", "tags": {"kuma.io/service": ["payments"]}}


class TestCrossAccountReader:
    @pytest.fixture
    def verifier_environment_vars(
        self, verifier_environment_vars: dict[str, str], fake: FakeAws
    ) -> dict[str, str]:
        fake.script(then=Answer(599, b"unscripted"))
        return upstream_at(verifier_environment_vars, "AWS_ENDPOINT_URL_STS", fake.url)

    @pytest.mark.parametrize(
        ("assume_role", "status", "code"),
        [
            (Answer(400, aws_error("Throttling")), 429, "upstream_throttled"),
            (Answer(500, aws_error("InternalFailure", kind="Receiver")), 503, "upstream_unavailable"),
            (Hang(seconds=HANG_SECONDS), 503, "upstream_unavailable"),
        ],
        ids=["throttling", "status-500", "never-starts"],
    )
    def test_reader_role_fault_fails_closed(
        self,
        assume_role: Behaviour,
        status: int,
        code: str,
        demo_world: DemoWorld,
        sign_token: Callable[..., object],
        fake: FakeAws,
        embedded_aws: EmbeddedAws,
        verify: Verifier,
        capfd: pytest.CaptureFixture[str],
    ) -> None:
        # Given a partner-account token: STS vouches for it, but assuming the reader role there fails
        fake.script(
            then=ByAction({"AssumeRole": assume_role}, default=PassThrough(embedded_aws.endpoint_url))
        )
        token = encode_compact(decode_token(sign_token(PARTNER, PARTNER_ROLE)))
        # When the verifier is asked
        elapsed, answer = timed_verify(verify, token, PARTNER_CLAIM)
        # Then it fails closed in time, counted against STS
        assert_failed_closed(answer, status, code, f"cannot assume kuma-iam-reader in account {PARTNER}")
        assert elapsed < CEILING_SECONDS, f"took {elapsed:.2f}s"
        assume_calls = [r for r in fake.requests if b"Action=AssumeRole" in r.body]
        assert 1 <= len(assume_calls) <= 2
        assert upstream_errors(clean_output(capfd, demo_world, token, fake)) == {"sts": 1}


# --- the token issuer: KMS and Secrets Manager ----------------------------------------------------------


def json_answer(document: dict[str, Any]) -> Answer:
    return Answer(200, json.dumps(document).encode(), (("Content-Type", "application/x-amz-json-1.1"),))


@dataclass(frozen=True)
class IssuerFault:
    id: str
    endpoint: str  # the AWS_ENDPOINT_URL_* the fake stands behind
    action: str  # the one action it spoils; every other call passes through to moto
    behaviour: Behaviour
    status: int
    service: str  # the UpstreamError dimension counted
    message: str


KMS_SIGNATURE_OF_NOTHING = base64.b64encode(b"\x00" * 256).decode()
ISSUER_FAULTS = [
    IssuerFault(
        "kms-sign-throttled", "KMS", "Sign", json_error("ThrottlingException"), 429, "kms", "throttling"
    ),
    IssuerFault(
        "kms-sign-internal", "KMS", "Sign", json_error("KMSInternalException", 500), 503, "kms", "cannot sign"
    ),
    IssuerFault(
        "kms-sign-access-denied",
        "KMS",
        "Sign",
        json_error("AccessDeniedException"),
        503,
        "kms",
        "AccessDenied",
    ),
    IssuerFault("kms-sign-disabled", "KMS", "Sign", json_error("DisabledException"), 503, "kms", "Disabled"),
    IssuerFault("kms-sign-hangs", "KMS", "Sign", Hang(seconds=HANG_SECONDS), 503, "kms", "cannot sign"),
    IssuerFault(
        "kms-sign-html",
        "KMS",
        "Sign",
        Answer(200, HTML, (("Content-Type", "text/html"),)),
        503,
        "kms",
        "cannot sign",
    ),
    IssuerFault(
        "kms-signature-that-does-not-verify",
        "KMS",
        "Sign",
        json_answer(
            {
                "KeyId": "arn:aws:kms:us-east-1:111111111111:key/placeholder",
                "Signature": KMS_SIGNATURE_OF_NOTHING,
                "SigningAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256",
            }
        ),
        503,
        "kms",
        "another KMS key",
    ),
    IssuerFault(
        "kms-public-key-throttled",
        "KMS",
        "GetPublicKey",
        json_error("ThrottlingException"),
        429,
        "kms",
        "cannot read the public key",
    ),
    IssuerFault(
        "kms-public-key-not-found",
        "KMS",
        "GetPublicKey",
        json_error("NotFoundException"),
        503,
        "kms",
        "NotFoundException",
    ),
    IssuerFault(
        "kms-public-key-garbage",
        "KMS",
        "GetPublicKey",
        json_answer(
            {
                "KeyId": "k",
                "PublicKey": base64.b64encode(b"not DER").decode(),
                "KeySpec": "RSA_2048",
                "KeyUsage": "SIGN_VERIFY",
                "SigningAlgorithms": ["RSASSA_PKCS1_V1_5_SHA_256"],
            }
        ),
        503,
        "kms",
        "does not parse",
    ),
    IssuerFault(
        "secret-throttled",
        "SECRETS_MANAGER",
        "GetSecretValue",
        json_error("ThrottlingException"),
        429,
        "secretsmanager",
        "throttling",
    ),
    IssuerFault(
        "secret-internal",
        "SECRETS_MANAGER",
        "GetSecretValue",
        json_error("InternalServiceError", 500),
        503,
        "secretsmanager",
        "cannot read the signing key",
    ),
    IssuerFault(
        "secret-hangs",
        "SECRETS_MANAGER",
        "GetSecretValue",
        Hang(seconds=HANG_SECONDS),
        503,
        "secretsmanager",
        "cannot read the signing key",
    ),
]


class TestTokenIssuerUpstreams:
    """The token issuer fails closed on KMS and Secrets Manager as on STS and IAM:
    no token, 429/503 with Retry-After, in time, counted, nothing secret written (no PEM key, no token)."""

    @pytest.mark.parametrize("fault", ISSUER_FAULTS, ids=lambda fault: fault.id)
    def test_fault_fails_closed_in_time_and_is_counted(
        self,
        fault: IssuerFault,
        fake: FakeAws,
        embedded_aws: EmbeddedAws,
        issuer: TokenIssuer,
        reconfigure_issuer: Callable[..., None],
        task_session: Callable[..., tuple[dict[str, str], GatewayCaller]],
        sign_with: Callable[..., object],
        demo_world: DemoWorld,
        token_keys: TokenKeys,
        capfd: pytest.CaptureFixture[str],
    ) -> None:
        # Given one action of one service spoiled; everything else answers from the embedded AWS
        fake.script(
            then=ByAction({fault.action: fault.behaviour}, default=PassThrough(embedded_aws.endpoint_url))
        )
        # (with the issuer's own default timeout, not the integration tier's patient one)
        spoiled = f"AWS_ENDPOINT_URL_{fault.endpoint}"
        reconfigure_issuer(**{spoiled: fake.url, TIMEOUT_VARIABLE: str(DEFAULT_SECONDS)})
        credentials, caller = task_session(HOME, ROLE)
        token = sign_with(credentials)
        # When the backend task asks for a token (on a warm container for faults after the keys are loaded)
        if fault.action not in ("GetPublicKey", "GetSecretValue"):
            issuer.module.issuer().published_keys()
        capfd.readouterr()
        with without_collection_pauses():  # nothing else in this process pauses the stand-ins meanwhile
            started = time.monotonic()
            answer = issuer.exchange(token, dict(CLAIM), caller=caller)
            elapsed = time.monotonic() - started
        # Then no token: the documented status with Retry-After, without waiting out a hang
        assert answer.status == fault.status, answer.body
        assert "token" not in answer.body
        assert answer.body["error"] == (
            "upstream_throttled" if fault.status == 429 else "upstream_unavailable"
        )
        assert fault.message in answer.body["message"], answer.body
        assert int(answer.headers["retry-after"]) >= 1
        assert elapsed < CEILING_SECONDS, f"took {elapsed:.2f}s"
        # And the failure is counted once, by service, and no secret was written
        output = capfd.readouterr()
        secrets = [
            *token_secrets(token, decode_token(token)),
            *header_secrets(request.headers for request in fake.requests),
            token_keys.issuer.secret_access_key,
            token_keys.pem.split("\n")[1],  # a line of the private key
        ]
        assert_no_secrets(output.out + output.err, secrets)
        assert upstream_errors(output.out) == {fault.service: 1}
        assert metric_count(output.out, "TokenIssued") == 0

    def test_a_failed_key_load_is_tried_again_by_the_next_request(
        self,
        fake: FakeAws,
        embedded_aws: EmbeddedAws,
        issuer: TokenIssuer,
        reconfigure_issuer: Callable[..., None],
        task_session: Callable[..., tuple[dict[str, str], GatewayCaller]],
        sign_with: Callable[..., object],
    ) -> None:
        # Given KMS throttling the first reads of the public key, then answering
        moto = PassThrough(embedded_aws.endpoint_url)
        fake.script(json_error("ThrottlingException"), json_error("ThrottlingException"), then=moto)
        reconfigure_issuer(AWS_ENDPOINT_URL_KMS=fake.url)
        credentials, caller = task_session(HOME, ROLE)
        assert issuer.exchange(sign_with(credentials), dict(CLAIM), caller=caller).status == 429
        # When the sidecar retries
        answer = issuer.exchange(sign_with(credentials), dict(CLAIM), caller=caller)
        # Then the keys are loaded and the token issued
        assert answer.status == 200, answer.body

    def test_a_token_costs_no_revocations_read(
        self,
        fake: FakeAws,
        embedded_aws: EmbeddedAws,
        issuer: TokenIssuer,
        reconfigure_issuer: Callable[..., None],
        task_session: Callable[..., tuple[dict[str, str], GatewayCaller]],
        sign_with: Callable[..., object],
    ) -> None:
        # Given DynamoDB hanging on every Query (the revocations table's read), answering everything else
        fake.script(
            then=ByAction(
                {"Query": Hang(seconds=HANG_SECONDS)}, default=PassThrough(embedded_aws.endpoint_url)
            )
        )
        reconfigure_issuer(AWS_ENDPOINT_URL_DYNAMODB=fake.url)
        credentials, caller = task_session(HOME, ROLE)
        # When a token is asked for
        answer = issuer.exchange(sign_with(credentials), dict(CLAIM), caller=caller)
        # Then it is issued without a Query: the random jti needs no table to be fresh
        assert answer.status == 200, answer.body
        assert "Query" not in [request.action for request in fake.requests]

    def test_a_kms_signature_that_does_not_verify_is_never_handed_out(
        self,
        fake: FakeAws,
        embedded_aws: EmbeddedAws,
        issuer: TokenIssuer,
        reconfigure_issuer: Callable[..., None],
        task_session: Callable[..., tuple[dict[str, str], GatewayCaller]],
        sign_with: Callable[..., object],
        token_keys: TokenKeys,
    ) -> None:
        # Given KMS answering Sign for the right key with bytes that are not its signature
        forged = json_answer(
            {
                "KeyId": token_keys.dataplane_key_arn,
                "Signature": KMS_SIGNATURE_OF_NOTHING,
                "SigningAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256",
            }
        )
        fake.script(then=ByAction({"Sign": forged}, default=PassThrough(embedded_aws.endpoint_url)))
        reconfigure_issuer(AWS_ENDPOINT_URL_KMS=fake.url)
        credentials, caller = task_session(HOME, ROLE)
        # When a token is asked for
        answer = issuer.exchange(sign_with(credentials), dict(CLAIM), caller=caller)
        # Then none is handed out: the signature is checked against the published key first
        assert answer.status == 503, answer.body
        assert "does not verify with its published public key" in answer.body["message"]
