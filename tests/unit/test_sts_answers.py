"""Reading STS's answer strictly; accepting only an assumed role whose parts agree. No network."""

from __future__ import annotations

import pytest

from kuma_iam.errors import Denied, DenyReason, UpstreamThrottled, UpstreamUnavailable
from kuma_iam.identity.caller import AssumedRoleCaller, StsAnswer, assumed_role_caller
from kuma_iam.identity.sts import _interpret

NS = "https://sts.amazonaws.com/doc/2011-06-15/"
ACCOUNT = "123456789012"
SESSION_ARN = f"arn:aws:sts::{ACCOUNT}:assumed-role/backend-task/ecs-task-1"
USER_ID = "AROAEXAMPLEROLEID1234:ecs-task-1"


def result(arn: str = SESSION_ARN, user_id: str = USER_ID, account: str = ACCOUNT, *, extra: str = "") -> str:
    return (
        f"<GetCallerIdentityResult><Arn>{arn}</Arn><UserId>{user_id}</UserId>"
        f"<Account>{account}</Account>{extra}</GetCallerIdentityResult>"
    )


def response(*results: str, root: str = "GetCallerIdentityResponse", ns: str = NS) -> bytes:
    body = "".join(results)
    return (
        f'<{root} xmlns="{ns}">{body}'
        "<ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata>"
        f"</{root}>"
    ).encode()


def error_document(code: str, *, ns: str | None = NS) -> bytes:
    xmlns = f' xmlns="{ns}"' if ns else ""
    return (
        f"<ErrorResponse{xmlns}><Error><Type>Sender</Type><Code>{code}</Code>"
        "<Message>The request was refused.</Message></Error>"
        "<RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ErrorResponse>"
    ).encode()


REAL_ANSWER = b"""<?xml version="1.0" encoding="UTF-8"?>
<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:sts::123456789012:assumed-role/backend-task/ecs-task-1</Arn>
    <UserId>AROAEXAMPLEROLEID1234:ecs-task-1</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata>
    <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>
  </ResponseMetadata>
</GetCallerIdentityResponse>
"""


# --- _interpret: the answer document --------------------------------------------------------------------


def test_real_get_caller_identity_answer_is_read() -> None:
    # Given the document STS really sends, declaration, indentation and metadata included
    # When a 200 carrying it is interpreted
    answer = _interpret(200, REAL_ANSWER)
    # Then the three fields come out trimmed
    assert answer == StsAnswer(account=ACCOUNT, arn=SESSION_ARN, user_id=USER_ID)


def test_unknown_extra_fields_in_the_result_are_ignored() -> None:
    answer = _interpret(200, response(result(extra="<Future>1</Future>")))
    assert answer.arn == SESSION_ARN


UNTRUSTWORTHY_200 = [
    pytest.param(response(result(), result()), "2 results, not exactly one", id="two-results"),
    pytest.param(response(), "0 results, not exactly one", id="zero-results"),
    pytest.param(response(f"<Wrapper>{result()}</Wrapper>"), "0 results", id="result-nested-one-level-down"),
    pytest.param(
        response(result(extra=f"<Arn>arn:aws:sts::{ACCOUNT}:assumed-role/admin/x</Arn>")),
        "exactly one Arn",
        id="duplicate-arn",
    ),
    pytest.param(
        response(
            f"<GetCallerIdentityResult><Arn>{SESSION_ARN}</Arn><UserId>{USER_ID}</UserId>"
            "</GetCallerIdentityResult>"
        ),
        "exactly one Account",
        id="missing-account",
    ),
    pytest.param(response(result(account="")), "exactly one Account", id="empty-account"),
    pytest.param(response(result(account="  ")), "exactly one Account", id="blank-account"),
    pytest.param(
        response(result().replace("<UserId>", '<UserId xmlns="">')),
        "exactly one UserId",
        id="userid-no-namespace",
    ),
    pytest.param(
        b"<html><body><h1>Welcome to nginx!</h1></body></html>", "not a GetCallerIdentityResponse", id="html"
    ),
    pytest.param(
        b"<!DOCTYPE html><html><body>Hi</body></html>", "DTD or markup declaration", id="html-doctype"
    ),
    pytest.param(
        b'{"GetCallerIdentityResponse": {"GetCallerIdentityResult": {"Account": "123456789012"}}}',
        "not well-formed XML",
        id="json",
    ),
    pytest.param(
        b'<!DOCTYPE r [<!ENTITY arn "arn:aws:sts::123456789012:assumed-role/admin/x">]>'
        + response(result(arn="&arn;")),
        "DTD or markup declaration",
        id="doctype-entity",
    ),
    pytest.param(
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b"<lolz>&lol2;</lolz>",
        "DTD or markup declaration",
        id="entity-expansion",
    ),
    pytest.param(response(result(arn=f"<![CDATA[{SESSION_ARN}]]>")), "DTD or markup declaration", id="cdata"),
    pytest.param(response(result(extra="<!-- injected -->")), "DTD or markup declaration", id="comment"),
    pytest.param(response(result())[:-10], "not well-formed XML", id="truncated"),
    pytest.param(b"", "not well-formed XML", id="empty"),
    pytest.param(b"\x00\x01\x02", "not well-formed XML", id="binary"),
    pytest.param(
        response(result(), root="AssumeRoleResponse"), "not a GetCallerIdentityResponse", id="wrong-root"
    ),
    pytest.param(
        response(result(), ns="https://sts.amazonaws.com/doc/2099-01-01/"),
        "not a GetCallerIdentityResponse",
        id="wrong-namespace",
    ),
    pytest.param(
        response(result()).replace(f' xmlns="{NS}"'.encode(), b""),
        "not a GetCallerIdentityResponse",
        id="no-namespace",
    ),
    pytest.param(
        error_document("InvalidClientTokenId"), "not a GetCallerIdentityResponse", id="error-document"
    ),
]


@pytest.mark.parametrize(("payload", "message"), UNTRUSTWORTHY_200)
def test_a_200_that_is_not_exactly_one_well_formed_result_is_not_trusted(
    payload: bytes, message: str
) -> None:
    # Given a 200 whose document is not one clean GetCallerIdentityResult
    # When it is interpreted
    with pytest.raises(UpstreamUnavailable) as unavailable:
        _interpret(200, payload)
    # Then it is a 503 (retry later), never an identity
    assert message in unavailable.value.message
    assert (unavailable.value.status, unavailable.value.code, unavailable.value.service) == (
        503,
        "upstream_unavailable",
        "sts",
    )


# --- _interpret: the status ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed(status: int) -> None:
    with pytest.raises(UpstreamUnavailable, match=rf"redirect \({status}\)"):
        _interpret(status, REAL_ANSWER)


@pytest.mark.parametrize(
    ("status", "payload"),
    [
        (500, error_document("InternalFailure")),
        (502, b"<html>Bad Gateway</html>"),
        (503, error_document("ServiceUnavailable")),
        (503, b""),
        (504, b"upstream timed out"),
    ],
)
def test_a_server_error_is_unavailable(status: int, payload: bytes) -> None:
    with pytest.raises(UpstreamUnavailable, match=f"STS failed with status {status}") as unavailable:
        _interpret(status, payload)
    assert not isinstance(unavailable.value, UpstreamThrottled)


@pytest.mark.parametrize(
    ("status", "payload"),
    [
        (400, error_document("Throttling")),
        (400, error_document("Throttling", ns=None)),
        (400, error_document("RequestLimitExceeded")),
        (400, error_document("ThrottlingException")),
        (429, b""),
        (429, error_document("TooManyRequests")),
    ],
    ids=[
        "throttling",
        "throttling-no-namespace",
        "request-limit",
        "throttling-exception",
        "429-empty",
        "429-doc",
    ],
)
def test_throttling_is_reported_as_throttled_with_a_retry_hint(status: int, payload: bytes) -> None:
    with pytest.raises(UpstreamThrottled) as throttled:
        _interpret(status, payload)
    assert (throttled.value.status, throttled.value.code) == (429, "upstream_throttled")
    assert throttled.value.retry_after >= 1


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (403, "InvalidClientTokenId"),
        (403, "SignatureDoesNotMatch"),
        (403, "ExpiredToken"),
        (403, "AccessDenied"),
        (400, "IncompleteSignature"),
        (400, "InvalidAction"),
    ],
)
def test_sts_refusing_the_signature_is_a_deny_naming_its_code(status: int, code: str) -> None:
    # Given STS's own error document refusing the request
    # When it is interpreted
    with pytest.raises(Denied) as denied:
        _interpret(status, error_document(code))
    # Then it is a decision: sts_rejected, with STS's code for the operator
    assert denied.value.reason is DenyReason.STS_REJECTED
    assert denied.value.message == f"STS rejected the signed request: {code}"


def test_an_oversized_error_code_is_cut_short_in_the_message() -> None:
    with pytest.raises(Denied) as denied:
        _interpret(403, error_document("X" * 5000))
    assert len(denied.value.message) < 200


@pytest.mark.parametrize(
    ("status", "payload"),
    [
        (404, b"<html><body>Not Found</body></html>"),
        (204, b""),
        (201, REAL_ANSWER),
        (400, b'{"message": "Bad Request"}'),
        (403, b"<html><body>Request blocked by WAF</body></html>"),
    ],
    ids=["404-html", "204-empty", "201-answer", "400-json", "403-waf-html"],
)
def test_a_non_200_answer_that_is_not_an_sts_error_is_unavailable(status: int, payload: bytes) -> None:
    with pytest.raises(UpstreamUnavailable):
        _interpret(status, payload)


# --- assumed_role_caller ---------------------------------------------------------------------------------


def test_assumed_role_caller_is_accepted_with_its_parts() -> None:
    # Given STS vouching for an ECS task's assumed role
    answer = StsAnswer(account=ACCOUNT, arn=SESSION_ARN, user_id=USER_ID)
    # When it is read as a caller for an endpoint of the same partition
    caller = assumed_role_caller(answer, "aws")
    # Then role, session and RoleId (from UserId) come out
    assert caller == AssumedRoleCaller(
        partition="aws",
        account=ACCOUNT,
        role_name="backend-task",
        role_id="AROAEXAMPLEROLEID1234",
        session_name="ecs-task-1",
        session_arn=SESSION_ARN,
    )


@pytest.mark.parametrize(
    ("partition", "arn", "user_id", "role", "session"),
    [
        ("aws-cn", f"arn:aws-cn:sts::{ACCOUNT}:assumed-role/svc/s", "AROAEXAMPLEROLEID1234:s", "svc", "s"),
        (
            "aws-us-gov",
            f"arn:aws-us-gov:sts::{ACCOUNT}:assumed-role/svc/s",
            "AROAEXAMPLEROLEID1234:s",
            "svc",
            "s",
        ),
        (
            "aws",
            f"arn:aws:sts::{ACCOUNT}:assumed-role/a+b=c,d.e@f-g_h/x+y=z,w.v@u-t_s",
            "AROAEXAMPLEROLEID1234:x+y=z,w.v@u-t_s",
            "a+b=c,d.e@f-g_h",
            "x+y=z,w.v@u-t_s",
        ),
    ],
    ids=["aws-cn", "aws-us-gov", "every-allowed-name-character"],
)
def test_assumed_roles_of_every_partition_and_name_character_are_accepted(
    partition: str, arn: str, user_id: str, role: str, session: str
) -> None:
    caller = assumed_role_caller(StsAnswer(ACCOUNT, arn, user_id), partition)
    assert (caller.role_name, caller.session_name, caller.partition) == (role, session, partition)


@pytest.mark.parametrize(
    ("arn", "user_id", "kind"),
    [
        (f"arn:aws:iam::{ACCOUNT}:user/alice", "AIDAEXAMPLEUSERID1234", "'user'"),
        (f"arn:aws:iam::{ACCOUNT}:user/ops/alice", "AIDAEXAMPLEUSERID1234", "'user'"),
        (f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT, "'root'"),
        (f"arn:aws:sts::{ACCOUNT}:federated-user/bob", f"{ACCOUNT}:bob", "'federated-user'"),
        (f"arn:aws:iam::{ACCOUNT}:role/backend-task", "AROAEXAMPLEROLEID1234", "'role'"),
        (f"arn:aws:sts::{ACCOUNT}:assumed-role/backend-task", USER_ID, "'assumed-role'"),
        (f"arn:aws:sts::{ACCOUNT}:assumed-role/backend-task/s/extra", USER_ID, "'assumed-role'"),
    ],
    ids=[
        "iam-user",
        "iam-user-with-path",
        "root",
        "federated-user",
        "role-arn",
        "no-session",
        "extra-segment",
    ],
)
def test_principals_other_than_an_assumed_role_are_denied(arn: str, user_id: str, kind: str) -> None:
    with pytest.raises(Denied) as denied:
        assumed_role_caller(StsAnswer(ACCOUNT, arn, user_id), "aws")
    assert denied.value.reason is DenyReason.UNSUPPORTED_PRINCIPAL
    assert f"not a {kind} principal" in denied.value.message


@pytest.mark.parametrize(
    ("account", "arn"),
    [
        ("111111111111", SESSION_ARN),
        ("12345", SESSION_ARN),
        ("", SESSION_ARN),
        ("12345678901a", SESSION_ARN),
        ("111111111111", f"arn:aws:iam::{ACCOUNT}:user/alice"),
    ],
    ids=["other-account", "short-account", "empty-account", "non-digit-account", "user-in-other-account"],
)
def test_account_field_disagreeing_with_the_arn_is_not_trusted(account: str, arn: str) -> None:
    with pytest.raises(UpstreamUnavailable, match="account that disagrees with the ARN"):
        assumed_role_caller(StsAnswer(account, arn, USER_ID), "aws")


@pytest.mark.parametrize(
    ("arn_partition", "endpoint_partition"),
    [("aws-cn", "aws"), ("aws", "aws-cn"), ("aws-us-gov", "aws")],
)
def test_caller_from_another_partition_than_the_endpoint_is_denied(
    arn_partition: str, endpoint_partition: str
) -> None:
    arn = f"arn:{arn_partition}:sts::{ACCOUNT}:assumed-role/backend-task/ecs-task-1"
    with pytest.raises(Denied) as denied:
        assumed_role_caller(StsAnswer(ACCOUNT, arn, USER_ID), endpoint_partition)
    assert denied.value.reason is DenyReason.UNSUPPORTED_PRINCIPAL
    assert "partition" in denied.value.message


@pytest.mark.parametrize(
    "user_id",
    [
        "AROAEXAMPLEROLEID1234:other-session",
        "AROAEXAMPLEROLEID1234",
        "AIDAEXAMPLEUSERID1234:ecs-task-1",
        "AROA:ecs-task-1",
        "aroaexampleroleid1234:ecs-task-1",
        ":ecs-task-1",
        "",
    ],
    ids=[
        "other-session",
        "no-session",
        "user-id-prefix",
        "role-id-too-short",
        "lowercase",
        "no-role-id",
        "empty",
    ],
)
def test_user_id_that_does_not_belong_to_the_assumed_role_is_not_trusted(user_id: str) -> None:
    with pytest.raises(UpstreamUnavailable, match="UserId that does not belong to the assumed role"):
        assumed_role_caller(StsAnswer(ACCOUNT, SESSION_ARN, user_id), "aws")


@pytest.mark.parametrize(
    "payload",
    [
        b'<?xml version="1.0" encoding="x-unknown"?><GetCallerIdentityResponse/>',
        '<?xml version="1.0" encoding="utf-16"?><!DOCTYPE a [<!ENTITY a "x">]><a>&a;</a>'.encode("utf-16"),
        b"\xff\xfe<not utf-8/>",
    ],
    ids=["unknown-declared-encoding", "utf16-hiding-a-dtd", "not-utf8"],
)
def test_an_answer_in_another_encoding_is_unavailable_never_a_crash(payload: bytes) -> None:
    # Given a 200 (and the same as an error answer) whose bytes are not the UTF-8 XML STS sends
    for status in (200, 403):
        # Then it is upstream_unavailable: the parser never follows a declared encoding past our DTD screen
        with pytest.raises(UpstreamUnavailable):
            _interpret(status, payload)
