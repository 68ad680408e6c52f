"""Stand-ins for AWS endpoints: a scripted fake for answers moto cannot give, and a counting pass-through.

Both are one small threaded stdlib HTTP server on 127.0.0.1 that records every request it receives, so a
test can assert what reached "AWS" (and that nothing did) instead of trusting the code under test to say so.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, parse_qsl, urlsplit

SCOPE_SERVICE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/(?P<service>[a-z0-9-]+)/aws4_request")
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}
)


# --- what the fake does with a request ---------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A complete HTTP answer."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "text/xml"),)


@dataclass(frozen=True)
class Hang:
    """Read the request, then say nothing for `seconds` and close: an answer that never starts."""

    seconds: float


@dataclass(frozen=True)
class Trickle:
    """Send a status line and headers, then a byte every `interval` for `seconds`: an answer never ending."""

    seconds: float
    interval: float = 0.05
    status: int = 200
    prefix: bytes = b'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'


@dataclass(frozen=True)
class PassThrough:
    """Forward the request unchanged (Host included, so signatures hold) and relay the answer."""

    target_url: str


@dataclass(frozen=True)
class ByAction:
    """Choose by the Query API action in the form body (GetCallerIdentity, AssumeRole, GetRole...)."""

    actions: Mapping[str, Answer | Hang | Trickle | PassThrough]
    default: Answer | Hang | Trickle | PassThrough

    def choose(self, request: ReceivedRequest) -> Answer | Hang | Trickle | PassThrough:
        action = parse_qs(request.body.decode("ascii", "replace")).get("Action", [""])[0]
        return self.actions.get(action, self.default)


Behaviour = Answer | Hang | Trickle | PassThrough | ByAction


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    @property
    def service(self) -> str:
        """The AWS service the request was signed for (sts, iam, dynamodb), or "unsigned"."""
        match = SCOPE_SERVICE.search(self.header("Authorization") or "")
        return match["service"] if match else "unsigned"


# --- the server --------------------------------------------------------------------------------------------


@dataclass
class _Script:
    steps: list[Behaviour] = field(default_factory=list)
    then: Behaviour | None = None

    def next(self) -> Behaviour:
        if self.steps:
            return self.steps.pop(0)
        if self.then is None:
            return Answer(599, b"fake AWS: no behaviour scripted for this request")
        return self.then


class FakeAws:
    """A scripted endpoint: `script(a, b, then=c)` answers with a, then b, then c for every later request."""

    def __init__(self, *, name: str = "fake-aws") -> None:
        self.name = name
        self._script = _Script()
        self._lock = threading.Lock()
        self._received: list[ReceivedRequest] = []
        self.stopping = threading.Event()
        self._server: _FakeHttpServer | None = None
        self._thread: threading.Thread | None = None

    # scripting and observation

    def script(self, *steps: Behaviour, then: Behaviour | None = None) -> None:
        with self._lock:
            self._script = _Script(list(steps), then)
            self._received.clear()

    def next_behaviour(self, request: ReceivedRequest) -> Behaviour:
        with self._lock:
            self._received.append(request)
            return self._script.next()

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._received)

    def reset_requests(self) -> None:
        with self._lock:
            self._received.clear()

    def count_by_service(self) -> Counter[str]:
        return Counter(request.service for request in self.requests)

    # lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        self.stopping.clear()
        self._server = _FakeHttpServer(("127.0.0.1", 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # ends any Hang or Trickle still holding a connection
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def counting_proxy(target_url: str, *, name: str = "counting-proxy") -> FakeAws:
    """A pass-through to `target_url` (moto) that counts what reaches it, by signed service."""
    proxy = FakeAws(name=name)
    proxy.script(then=PassThrough(target_url))
    return proxy


class _FakeHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a Hang must not hold up shutdown

    def __init__(self, address: tuple[str, int], fake: FakeAws) -> None:
        super().__init__(address, _FakeRequestHandler)
        self.fake = fake


class _FakeRequestHandler(BaseHTTPRequestHandler):
    server: _FakeHttpServer
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = ReceivedRequest(
            method=self.command, path=self.path, headers=tuple(self.headers.items()), body=body
        )
        behaviour = self.server.fake.next_behaviour(request)
        if isinstance(behaviour, ByAction):
            behaviour = behaviour.choose(request)
        match behaviour:
            case Answer():
                self._answer(behaviour)
            case Hang():
                self.server.fake.stopping.wait(behaviour.seconds)
                self.close_connection = True
            case Trickle():
                self._trickle(behaviour)
            case PassThrough():
                self._pass_through(behaviour.target_url, request)

    do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815 - BaseHTTPRequestHandler's names

    def _answer(self, answer: Answer) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def _trickle(self, trickle: Trickle) -> None:
        self.close_connection = True
        self.send_response(trickle.status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Connection", "close")  # no length: the body runs until the connection closes
        self.end_headers()
        self.wfile.write(trickle.prefix)
        self.wfile.flush()
        ends = time.monotonic() + trickle.seconds
        stopping = self.server.fake.stopping
        try:
            while time.monotonic() < ends and not stopping.wait(trickle.interval):
                self.wfile.write(b" ")
                self.wfile.flush()
        except OSError:  # the client gave up, as it should
            return

    def _pass_through(self, target_url: str, request: ReceivedRequest) -> None:
        target = urlsplit(target_url)
        connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=30)
        try:
            connection.putrequest(request.method, request.path, skip_host=True, skip_accept_encoding=True)
            for name, value in request.headers:
                if name.lower() not in _HOP_BY_HOP:
                    connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(request.body)))
            connection.endheaders(request.body)
            response = connection.getresponse()
            payload = response.read()
            headers = tuple((k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP)
        finally:
            connection.close()
        self._answer(Answer(response.status, payload, headers))

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a test reads `FakeAws.requests`, not a request log on stderr."""


# --- a recording proxy in front of the embedded AWS ---------------------------------------------------


@dataclass(frozen=True)
class AwsCall:
    """One request that reached the proxy: the Query API action, its parameters and the Host it named."""

    action: str
    params: dict[str, str]
    host: str


@dataclass(frozen=True)
class StsIdentity:
    """What a stand-in STS says the caller of a forwarded GetCallerIdentity is."""

    account: str
    arn: str
    user_id: str

    def xml(self) -> bytes:
        return (
            '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<GetCallerIdentityResult>"
            f"<Arn>{self.arn}</Arn><UserId>{self.user_id}</UserId><Account>{self.account}</Account>"
            "</GetCallerIdentityResult>"
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            "</GetCallerIdentityResponse>"
        ).encode()


class AwsProxy:
    """A forwarding proxy in front of the embedded AWS that records every call passing through.

    Requests keep their Host header, so moto still checks their SigV4 signatures. `delays` holds an action
    back (to widen a race); `identity_answer`, when set, answers the forwarded identity token (the request
    addressed to a real STS host) itself, as a stand-in STS would, while the verifier's own calls still
    reach moto.
    """

    _HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.delays: dict[str, float] = {}
        self.identity_answer: StsIdentity | None = None
        self._calls: list[AwsCall] = []
        self._lock = threading.Lock()
        self._server = _ProxyServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def calls(self) -> list[AwsCall]:
        with self._lock:
            return list(self._calls)

    def actions(self) -> list[str]:
        return [call.action for call in self.calls]

    def count(self, action: str) -> int:
        return self.actions().count(action)

    def start(self) -> AwsProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handle(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        form = dict(parse_qsl(body.decode("utf-8", "replace"))) if body else {}
        form |= dict(parse_qsl(urlsplit(path).query))
        host = next((value for name, value in headers if name.lower() == "host"), "")
        action = form.get("Action", f"{method} {urlsplit(path).path}")
        with self._lock:
            self._calls.append(AwsCall(action=action, params=form, host=host))
        time.sleep(self.delays.get(action, 0.0))
        if (
            self.identity_answer is not None
            and action == "GetCallerIdentity"
            and host.endswith(".amazonaws.com")
        ):
            return 200, [("Content-Type", "text/xml")], self.identity_answer.xml()
        # A new connection per call: a pooled one that moto already closed would fail the verifier's call.
        target = urlsplit(self.upstream)
        connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=10)
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in self._HOP_HEADERS:
                    connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            upstream = connection.getresponse()
            payload = upstream.read()
        finally:
            connection.close()
        answer_headers = [
            (name, value) for name, value in upstream.getheaders() if name.lower() not in self._HOP_HEADERS
        ]
        return upstream.status, answer_headers, payload

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, payload = proxy._handle(self.command, self.path, self.headers.items(), body)
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # 16 verifications at once must not overflow the listen backlog
