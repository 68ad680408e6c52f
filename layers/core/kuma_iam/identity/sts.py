"""Forward a checked GetCallerIdentity to our own STS endpoint and read its answer strictly."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import urllib3
from urllib3.util import SKIP_HEADER

from kuma_iam.aws import THROTTLING
from kuma_iam.errors import Denied, DenyReason, KumaIamError, UpstreamThrottled, UpstreamUnavailable
from kuma_iam.identity.caller import StsAnswer
from kuma_iam.identity.checks import StsCall

NAMESPACE = "{https://sts.amazonaws.com/doc/2011-06-15/}"
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class StsForwarder:
    """Sends the signed request to our STS endpoint; the URL and Host the client named never route it."""

    timeout_seconds: float
    endpoint_url: str | None = None  # AWS_ENDPOINT_URL_STS: a local stand-in; Host stays the signed one
    pool: urllib3.PoolManager = field(default_factory=lambda: urllib3.PoolManager(num_pools=4, maxsize=16))
    timeouts: urllib3.Timeout = field(init=False)

    def __post_init__(self) -> None:
        # Made once per container, not per call.
        timeouts = urllib3.Timeout(connect=min(1.0, self.timeout_seconds), read=self.timeout_seconds)
        object.__setattr__(self, "timeouts", timeouts)

    def get_caller_identity(self, call: StsCall) -> StsAnswer:
        url = (self.endpoint_url or f"https://{call.endpoint.host}").rstrip("/") + "/"
        headers = wire_headers(call.headers)
        deadline = time.monotonic() + self.timeout_seconds
        try:
            response = self.pool.request(
                "POST",
                url,
                body=call.body,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                timeout=self.timeouts,
            )
            try:
                payload = _read_bounded(response, deadline)
            except BaseException:
                response.close()  # left mid-answer: its connection must never carry another request
                raise
            response.release_conn()
        except KumaIamError:
            raise  # our own verdict on the answer (too large, too slow) keeps its words
        except Exception as error:  # noqa: BLE001 - the HTTP library is the boundary: whatever it raises while
            # sending or reading, STS did not answer, and that fails closed as a 503, never a 500. Only the
            # type is kept: a library's message may quote a header, and headers carry the session token.
            raise UpstreamUnavailable("sts", f"STS did not answer: {type(error).__name__}") from None
        return _interpret(response.status, payload)


def wire_headers(signed: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """The signed headers, and nothing urllib3 or http.client would add of their own accord: SKIP_HEADER
    keeps out their User-Agent and Accept-Encoding (only Content-Length, which frames the body, is added)."""
    present = {name.lower() for name, _ in signed}
    defaults = ("User-Agent", "Accept-Encoding")
    suppressed = {name: SKIP_HEADER for name in defaults if name.lower() not in present}
    return {**dict(signed), **suppressed}


def _read_bounded(response: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
    """Read at most MAX_ANSWER_BYTES before the deadline: a reply that never ends must not hold us."""
    chunks: list[bytes] = []
    size = 0
    # read1 returns what has arrived; read(n) would wait for all n bytes of a reply that trickles.
    while chunk := response.read1(8192):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise UpstreamUnavailable("sts", "STS answer is too large")
        if time.monotonic() > deadline:
            raise UpstreamUnavailable("sts", "STS answer did not complete in time")
        chunks.append(chunk)
        if response.length_remaining == 0:
            break  # all of a Content-Length answer: no read just to learn there is no more
    return b"".join(chunks)


def _interpret(status: int, payload: bytes) -> StsAnswer:
    if 300 <= status < 400:
        raise UpstreamUnavailable("sts", f"STS answered with a redirect ({status}), which is never followed")
    if status == 200:
        return _parse_answer(payload)
    code = _error_code(payload)
    if status == 429 or code in THROTTLING:
        raise UpstreamThrottled("sts", "STS is throttling", retry_after=2)
    if status >= 500:
        raise UpstreamUnavailable("sts", f"STS failed with status {status}")
    if status in (400, 403) and code is not None:
        raise Denied(DenyReason.STS_REJECTED, f"STS rejected the signed request: {code}")
    # Anything else (a proxy's page, no STS error document) says nothing about the caller.
    raise UpstreamUnavailable("sts", f"STS answered status {status} without an STS error")


def _parse_document(payload: bytes) -> ET.Element:
    # Decoded here, so the parser never follows a declared encoding (UTF-16 would hide the screen below).
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise UpstreamUnavailable("sts", "STS answer is not UTF-8") from None
    # No DTDs, entities, comments or CDATA occur in a real STS answer; refusing them refuses entity tricks.
    if "<!" in text:
        raise UpstreamUnavailable("sts", "STS answer carries a DTD or markup declaration")
    try:
        return ET.fromstring(text)  # noqa: S314 - screened above
    except (ET.ParseError, ValueError, LookupError):
        raise UpstreamUnavailable("sts", "STS answer is not well-formed XML") from None


def _parse_answer(payload: bytes) -> StsAnswer:
    root = _parse_document(payload)
    if root.tag != f"{NAMESPACE}GetCallerIdentityResponse":
        raise UpstreamUnavailable("sts", "STS answer is not a GetCallerIdentityResponse")
    results = root.findall(f"{NAMESPACE}GetCallerIdentityResult")
    if len(results) != 1:
        raise UpstreamUnavailable("sts", f"STS answer has {len(results)} results, not exactly one")
    fields = {name: _only_text(results[0], name) for name in ("Account", "Arn", "UserId")}
    return StsAnswer(account=fields["Account"], arn=fields["Arn"], user_id=fields["UserId"])


def _only_text(parent: ET.Element, name: str) -> str:
    found = parent.findall(f"{NAMESPACE}{name}")
    text = (found[0].text or "").strip() if len(found) == 1 else ""
    if not text:
        raise UpstreamUnavailable("sts", f"STS answer must carry exactly one {name}")
    return text


def _error_code(payload: bytes) -> str | None:
    try:
        root = _parse_document(payload)
    except UpstreamUnavailable:
        return None
    # Error documents come in more than one namespace (or none): match on local names.
    for error in root.iter():
        if error.tag.rsplit("}", 1)[-1] == "Error":
            for child in error:
                if child.tag.rsplit("}", 1)[-1] == "Code":
                    return (child.text or "").strip()[:64] or None
    return None
