"""An outside review, tried as an attacker: hostile input to the token issuer, tag compliance and the
configuration, through the real handlers on the embedded AWS (moto server, SigV4 checks on).

Each test is one attempt, or one class of attempts, with the answer a security engineer would expect: a
precise 400, a deny with its reason, never an allow beyond the role's tags and never a 500.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from kuma_iam_cli.local.gateway import GatewayCaller
from kuma_iam_cli.local.seed import HOME_ACCOUNT, OUTSIDER_ACCOUNT, DemoWorld, control_plane_caller
from kuma_iam_cli.local.token_keys import TokenKeys
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
