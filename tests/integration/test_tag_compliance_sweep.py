"""The scheduled sweep at scale and under faults, and events that are not what they claim: pages not roles,
a partial sweep that says which account failed, and never a crash or an AWS call for a malformed event."""

from __future__ import annotations

import copy
import json
import math
import time
from typing import Any

import pytest

from kuma_iam_cli.local.compliance_demo import HOME_ACCOUNT, PARTNER_ACCOUNT, ecs_trust
from kuma_iam_cli.local.compliance_events import DEVELOPER, scheduled_event, tag_role
from kuma_iam_cli.local.seed import DemoWorld
from support.compliance_harness import Compliance, finding_pairs
from support.fake_aws import Answer, Behaviour, Computed, FakeAws, Hang, PassThrough
from support.iam_listing import ListedRole, PagedRoles, PagingProxy
from support.upstream_timeouts import CEILING_SECONDS, HANG_SECONDS, without_collection_pauses

GOOD = {"kuma.io/type": "dataplane", "kuma.io/mesh": "default", "team": "x"}
BAD = {"kuma.io/type": "dataplnae", "kuma.io/mesh": "default"}
THROTTLING = Answer(
    400,
    b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
    b"<Message>Rate exceeded</Message></Error></ErrorResponse>",
)
INTERNAL = Answer(
    500,
    b"<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceFailure</Code><Message>x</Message></Error>"
    b"</ErrorResponse>",
)


def synthetic_roles(count: int, *, bad_every: int = 100) -> list[ListedRole]:
    """`count` roles; every `bad_every`-th carries an invalid kuma.io/type, half have no kuma.io tags."""
    roles = []
    for index in range(count):
        if index % bad_every == 0:
            tags = BAD
        elif index % 2:
            tags = GOOD
        else:
            tags = {"team": "y"}
        roles.append(ListedRole(HOME_ACCOUNT, f"swept-{index:05d}", tags, ecs_trust(HOME_ACCOUNT)))
    return roles


def through(proxy: FakeAws) -> dict[str, str]:
    return {name: proxy.url for name in ("AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL_STS")}


@pytest.fixture
def iam_stand_in(demo_world: DemoWorld) -> Any:
    with FakeAws(name="iam-stand-in") as fake:
        yield fake


def listing_of(fake: FakeAws, roles: list[ListedRole], demo_world: DemoWorld, **kw: Any) -> PagedRoles:
    """The home account's listing from `roles`, a page per call; the partner account and STS go to moto."""
    paged = PagedRoles(
        roles, PassThrough(demo_world.endpoint_url), only_key=demo_world.compliance.access_key_id, **kw
    )
    fake.script(then=Computed(paged.choose))
    return paged


# --- pages, not roles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [2_000, 2_500])
def test_a_large_sweep_costs_a_listing_call_per_thousand_roles(
    count: int, compliance: Compliance, iam_stand_in: FakeAws, demo_world: DemoWorld
) -> None:
    # Given an account of `count` roles, listed by an IAM stand-in that pages as IAM does
    roles = synthetic_roles(count)
    paged = listing_of(iam_stand_in, roles, demo_world)
    compliance.configure(**through(iam_stand_in))

    # When the schedule sweeps
    answer = compliance(scheduled_event())

    # Then every role was evaluated with one listing call per 1,000 roles, and no call per role
    home_calls = paged.calls
    assert home_calls == math.ceil(count / 1000)
    actions = iam_stand_in.count_by_action()
    assert actions["GetRole"] == 0
    assert (
        actions["GetAccountAuthorizationDetails"] == home_calls + 1
    )  # + the partner account's (moto: 1 page)
    partner = sum(1 for f in answer["findings"] if f["account"] == PARTNER_ACCOUNT) >= 1
    assert partner
    bad = {role.name for role in roles if role.tags is BAD}
    home_findings = {name for rule, name in finding_pairs(answer) if name.startswith("swept-")}
    assert home_findings == bad
    assert answer["evaluated"] >= count
    assert "failedAccounts" not in answer


def test_pages_come_from_moto_itself_through_a_paging_proxy(
    compliance: Compliance, iam_stand_in: FakeAws, demo_world: DemoWorld
) -> None:
    # Given moto's own roles served a page at a time (IAM's page is at most 1,000 roles; we ask for 1,000)
    proxy = PagingProxy(demo_world.endpoint_url)
    iam_stand_in.script(then=Computed(proxy.choose))
    compliance.configure(**through(iam_stand_in))
    baseline = compliance(scheduled_event())
    assert proxy.calls == 2  # one page per account: the demo world is small
    # When the pages are made small (as a real IAM may cut pages short)
    compliance.configure(KUMA_IAM_SWEEP_PAGE_SIZE="3")
    proxy.calls = 0
    paged = compliance(scheduled_event())
    # Then the same roles and findings come out of several pages
    assert proxy.calls > 2
    assert paged["evaluated"] == baseline["evaluated"]
    assert finding_pairs(paged) == finding_pairs(baseline)


# --- partial sweeps: which account failed, and nothing unread called clean ---------------------------------

FAULTS = [
    pytest.param([THROTTLING, THROTTLING], "AWS is throttling", id="throttled-past-retries"),
    pytest.param([INTERNAL, INTERNAL], "ServiceFailure", id="service-failure"),
    pytest.param([Answer(200, b"<not-xml")], "", id="malformed-answer"),
    pytest.param([Answer(200, b"<GetAccountAuthorizationDetailsResponse/>")], "", id="empty-answer"),
]


@pytest.mark.parametrize(("fault", "says"), FAULTS)
def test_a_fault_on_the_second_page_makes_a_partial_sweep_naming_the_account(
    fault: list[Behaviour], says: str, compliance: Compliance, iam_stand_in: FakeAws, demo_world: DemoWorld
) -> None:
    # Given 2,500 roles in the home account, and IAM failing the second page (both attempts)
    roles = synthetic_roles(2_500)
    listing_of(iam_stand_in, roles, demo_world, faults={1: list(fault)})
    compliance.configure(**through(iam_stand_in))

    # When the schedule sweeps
    answer = compliance(scheduled_event())

    # Then the home account is named as failed, after its first 1,000 roles
    (failure,) = answer["failedAccounts"]
    assert failure["account"] == HOME_ACCOUNT
    assert "1000 roles were read" in failure["message"]
    assert says in failure["message"]
    # And only roles of the first page are reported: a bad role of a later page is neither reported nor clean
    first_page = {role.name for role in roles[:1000] if role.tags is BAD}
    reported = {name for rule, name in finding_pairs(answer) if name.startswith("swept-")}
    assert reported == first_page
    # And the partner account was still swept in full
    assert ("kuma-value-malformed", "ledger-task") in finding_pairs(answer)


def test_a_transient_throttle_is_retried_and_the_sweep_completes(
    compliance: Compliance, iam_stand_in: FakeAws, demo_world: DemoWorld
) -> None:
    roles = synthetic_roles(2_000)
    listing_of(iam_stand_in, roles, demo_world, faults={1: [THROTTLING]})
    compliance.configure(**through(iam_stand_in))
    answer = compliance(scheduled_event())
    assert "failedAccounts" not in answer
    assert {name for _, name in finding_pairs(answer) if name.startswith("swept-")} == {
        role.name for role in roles if role.tags is BAD
    }


def test_a_hanging_iam_fails_the_account_in_bounded_time(
    compliance: Compliance, iam_stand_in: FakeAws, demo_world: DemoWorld
) -> None:
    hang = Hang(HANG_SECONDS)
    listing_of(iam_stand_in, synthetic_roles(1_500), demo_world, faults={0: [hang, hang]})
    compliance.configure(**through(iam_stand_in), KUMA_IAM_UPSTREAM_TIMEOUT_SECONDS="1")
    # nothing else in this process pauses the stand-ins while the function's own timeout is what is measured
    with without_collection_pauses():
        started = time.monotonic()
        answer = compliance(scheduled_event())
        elapsed = time.monotonic() - started
    assert elapsed < CEILING_SECONDS, f"took {elapsed:.2f}s"  # "did not hang": the stand-in holds 120 s
    assert [failure["account"] for failure in answer["failedAccounts"]] == [HOME_ACCOUNT]
    assert "0 roles were read" in answer["failedAccounts"][0]["message"]


def test_an_account_whose_compliance_role_cannot_be_assumed_fails_alone(compliance: Compliance) -> None:
    compliance.configure(KUMA_IAM_COMPLIANCE_ROLE_NAME="no-such-compliance-role")
    answer = compliance(scheduled_event())
    (failure,) = answer["failedAccounts"]
    assert failure["account"] == PARTNER_ACCOUNT
    assert "cannot assume no-such-compliance-role" in failure["message"]
    assert ("kuma-type-invalid", "typo-task") in finding_pairs(answer)  # the home account was swept


# --- hostile events ---------------------------------------------------------------------------------------


def _good() -> dict[str, Any]:
    return tag_role(DEVELOPER, "orders-task", {"kuma.io/mesh": "default"})


def _with(path: str, value: Any) -> dict[str, Any]:
    event = copy.deepcopy(_good())
    target = event
    *parents, last = path.split(".")
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return event


_DELETE = object()


def _deep(depth: int) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for _ in range(depth):
        nested = {"x": nested}
    return {**_good(), "detail": nested}


HOSTILE = [
    pytest.param([], "JSON list", id="a-list"),
    pytest.param("TagRole", "JSON str", id="a-string"),
    pytest.param(None, "JSON NoneType", id="null"),
    pytest.param({}, "detail-type None", id="empty-object"),
    pytest.param(_with("source", "aws.ec2"), "source", id="wrong-source"),
    pytest.param(
        _with("detail-type", "AWS Console Sign In via CloudTrail"), "detail-type", id="wrong-detail-type"
    ),
    pytest.param(_with("detail.eventSource", "sts.amazonaws.com"), "eventSource", id="wrong-event-source"),
    pytest.param(_with("detail.eventName", "DeleteRole"), "eventName", id="unwatched-call"),
    pytest.param(_with("detail", _DELETE), "detail", id="no-detail"),
    pytest.param(_with("detail.userIdentity", _DELETE), "userIdentity", id="no-user-identity"),
    pytest.param(_with("detail.requestParameters.roleName", "a/b"), "roleName", id="role-name-with-slash"),
    pytest.param(_with("detail.requestParameters.roleName", "r" * 65), "roleName", id="role-name-too-long"),
    pytest.param(
        _with("detail.requestParameters.tags", "kuma.io/type=dataplane"), "tags", id="tags-not-a-list"
    ),
    pytest.param(
        _with("detail.requestParameters.tags", [{"key": f"k{i}", "value": "v"} for i in range(51)]),
        "tags",
        id="51-tags",
    ),
    pytest.param(
        _with("detail.requestParameters.tags", [{"key": "k" * 129, "value": "v"}]), "key", id="long-key"
    ),
    pytest.param(
        _with("detail.recipientAccountId", "222222222222"),
        "IAM in account 222222222222",
        id="account-mismatch",
    ),
    pytest.param(_with("account", "1234"), "account", id="bad-account"),
    pytest.param(_with("detail.eventTime", "yesterday"), "eventTime", id="bad-time"),
    pytest.param(_with("id", 42), "id", id="id-not-a-string"),
    pytest.param(_with("detail.userAgent", "x" * 300_000), "bytes", id="huge"),
    pytest.param(_deep(5_000), "", id="deeply-nested"),
]


@pytest.mark.parametrize(("event", "named"), HOSTILE)
def test_a_hostile_event_gets_a_precise_error_and_no_aws_call(
    event: Any, named: str, compliance: Compliance, aws_proxy: FakeAws
) -> None:
    compliance.configure(
        **{
            name: aws_proxy.url
            for name in ("AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_DYNAMODB")
        }
    )
    answer = compliance(event)
    assert answer["error"]["code"] == "invalid_event", answer
    assert named in answer["error"]["message"]
    assert len(answer["error"]["message"]) < 400
    assert (answer["evaluated"], answer["findings"], answer["remediations"]) == (0, [], [])
    assert aws_proxy.requests == []
    assert json.dumps(answer)


def test_a_failed_call_without_parameters_is_not_an_error(compliance: Compliance) -> None:
    event = _with("detail.requestParameters", None)
    event["detail"]["errorCode"] = "AccessDenied"
    answer = compliance(event)
    assert answer == {"evaluated": 0, "findings": [], "remediations": []}


def test_a_denied_tag_attempt_changes_nothing_so_is_not_unauthorized(compliance: Compliance) -> None:
    event = _good()
    event["detail"]["errorCode"] = "AccessDenied"
    answer = compliance(event)
    assert answer["evaluated"] == 1
    assert finding_pairs(answer) == set()
