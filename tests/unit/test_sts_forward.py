"""The STS forward is total: whatever the HTTP library raises is a 503; and it adds nothing to the request.

The pool and response here are stand-ins for faults urllib3 and http.client raise only on rare wire states
(a reset mid-read, a malformed chunk); the integration tier drives the real library against a fake STS.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
import urllib3

from kuma_iam.errors import UpstreamUnavailable
from kuma_iam.identity.checks import StsCall, TokenPolicy, check_signed_request
from kuma_iam.identity.sts import MAX_ANSWER_BYTES, StsForwarder, wire_headers
from kuma_iam.identity.token import SignedRequest
from support.token_mutations import with_header

# Each message carries something secret-looking: the forward must report the type, never the text.
LEAK = "X-Amz-Security-Token: FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
LIBRARY_FAULTS = [
    ValueError(LEAK),
    OSError(LEAK),
    ConnectionResetError(LEAK),
    TimeoutError(LEAK),
    http.client.IncompleteRead(LEAK.encode()),
    http.client.HTTPException(LEAK),
    urllib3.exceptions.ProtocolError(LEAK),
    urllib3.exceptions.DecodeError(LEAK),
    LookupError(LEAK),
    TypeError(LEAK),
    UnicodeEncodeError("latin-1", LEAK, 0, 1, "ordinal not in range"),
    RuntimeError(LEAK),
]


@dataclass
class StubResponse:
    chunks: Iterator[bytes | BaseException]
    status: int = 200
    released: bool = False
    closed: bool = False
    length_remaining: int | None = None  # no Content-Length: read until the answer ends

    def read1(self, amount: int) -> bytes:
        chunk = next(self.chunks, b"")
        if isinstance(chunk, BaseException):
            raise chunk
        return chunk

    def release_conn(self) -> None:
        self.released = True

    def close(self) -> None:
        self.closed = True


@dataclass
class StubPool:
    """Raises `fault` on request, or hands back `response`; records the headers it was given."""

    fault: BaseException | None = None
    response: StubResponse | None = None
    headers: list[dict[str, str]] = field(default_factory=list)

    def request(self, method: str, url: str, **options: Any) -> StubResponse:
        self.headers.append(options["headers"])
        if self.fault is not None:
            raise self.fault
        assert self.response is not None
        return self.response


@pytest.fixture
def call(signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime) -> StsCall:
    return check_signed_request(signed_request, policy, signed_at)


def forward(pool: StubPool, call: StsCall) -> None:
    StsForwarder(1.0, pool=pool).get_caller_identity(call)  # type: ignore[arg-type]


@pytest.mark.parametrize("fault", LIBRARY_FAULTS, ids=lambda fault: type(fault).__name__)
def test_anything_the_library_raises_while_sending_is_a_503_naming_only_its_type(
    fault: BaseException, call: StsCall
) -> None:
    # Given an HTTP library that raises this while sending
    # When the checked token is forwarded
    with pytest.raises(UpstreamUnavailable) as unavailable:
        forward(StubPool(fault=fault), call)
    # Then it fails closed, and the library's own words (which may quote a header) are not repeated
    assert unavailable.value.message == f"STS did not answer: {type(fault).__name__}"
    assert unavailable.value.service == "sts"


@pytest.mark.parametrize("fault", LIBRARY_FAULTS, ids=lambda fault: type(fault).__name__)
def test_anything_the_library_raises_while_reading_is_a_503_and_the_connection_is_closed(
    fault: BaseException, call: StsCall
) -> None:
    # Given an answer that starts, then fails mid-read
    response = StubResponse(iter([b"<GetCallerIdentityResponse", fault]))
    # When the checked token is forwarded
    with pytest.raises(UpstreamUnavailable, match=f"STS did not answer: {type(fault).__name__}$"):
        forward(StubPool(response=response), call)
    # Then the half-read connection is closed, never handed back to the pool for another request
    assert (response.closed, response.released) == (True, False)


def test_our_own_verdict_on_the_answer_keeps_its_words(call: StsCall) -> None:
    # Given an answer larger than we read
    response = StubResponse(iter([b"x" * 8192] * (MAX_ANSWER_BYTES // 8192 + 2)))
    # When it is forwarded / Then the 503 says why, not "did not answer"
    with pytest.raises(UpstreamUnavailable, match="STS answer is too large"):
        forward(StubPool(response=response), call)
    assert response.closed


def test_a_complete_answer_hands_the_connection_back(call: StsCall) -> None:
    response = StubResponse(iter([b"<html/>"]), status=502)
    with pytest.raises(UpstreamUnavailable, match="STS failed with status 502"):
        forward(StubPool(response=response), call)
    assert (response.released, response.closed) == (True, False)


def test_keyboard_interrupt_and_system_exit_are_not_swallowed(call: StsCall) -> None:
    with pytest.raises(KeyboardInterrupt):
        forward(StubPool(fault=KeyboardInterrupt()), call)


# --- what goes on the wire --------------------------------------------------------------------------------


def test_the_library_is_told_to_add_no_user_agent_nor_accept_encoding_of_its_own(call: StsCall) -> None:
    # Given a token without User-Agent or Accept-Encoding (our signer sends neither)
    assert not {"user-agent", "accept-encoding"} & {name.lower() for name, _ in call.headers}
    # When its wire headers are made
    headers = wire_headers(call.headers)
    # Then they are the signed ones in order, and urllib3's SKIP_HEADER keeps its defaults out
    assert list(headers.items())[: len(call.headers)] == list(call.headers)
    assert {k: v for k, v in headers.items() if (k, v) not in call.headers} == {
        "User-Agent": urllib3.util.SKIP_HEADER,
        "Accept-Encoding": urllib3.util.SKIP_HEADER,
    }


def test_a_signer_s_own_user_agent_and_accept_encoding_go_out_as_they_are(
    signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime
) -> None:
    request = with_header(signed_request, "Content-Type", "application/x-www-form-urlencoded")
    request = type(request)(
        request.method,
        request.url,
        (*request.headers, ("user-agent", " kuma-dp/2.9  (linux) "), ("ACCEPT-ENCODING", "identity")),
        request.body,
    )
    call = check_signed_request(request, policy, signed_at)
    assert wire_headers(call.headers) == dict(call.headers)
