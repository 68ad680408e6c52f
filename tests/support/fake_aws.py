"""Stand-ins for AWS endpoints: a scripted fake for answers moto cannot give, and a recording pass-through.

Both are one small threaded stdlib HTTP server on 127.0.0.1 (`FakeAws`) that records every request it
receives, so a test can assert what reached "AWS" (and that nothing did) instead of trusting the code under
test to say so. In front of moto it passes requests on unchanged; a script can hold some back (`Delayed`),
answer the forwarded identity token itself (`StandInSts`), answer from the request (`Computed`), or fail
them (`Answer`, `Hang`, `Trickle`).
"""

from __future__ import annotations

import http.client
import io
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self
from urllib.parse import parse_qsl, urlsplit

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

    actions: Mapping[str, Behaviour]
    default: Behaviour

    def choose(self, request: ReceivedRequest) -> Behaviour:
        return self.actions.get(request.action, self.default)


@dataclass(frozen=True)
class Delayed:
    """Hold the request back `seconds`, then behave as `then`. With `until` (the test's sign that the race
    it widens is set up), hold it only until that is set; `seconds` is then a ceiling, and a race never set
    up within it is answered 599, so that the test fails instead of proving nothing."""

    seconds: float
    then: Behaviour
    until: threading.Event | None = None


@dataclass(frozen=True)
class StandInSts:
    """Answer the forwarded identity token (a GetCallerIdentity addressed to a real STS host, any partition or
    variant) as STS would,
    vouching for this caller; every other request, the verifier's own STS calls among them, meets `otherwise`.
    """

    account: str
    arn: str
    user_id: str
    otherwise: Behaviour

    def choose(self, request: ReceivedRequest) -> Behaviour:
        if request.action == "GetCallerIdentity" and request.host.startswith(("sts.", "sts-fips.")):
            return Answer(200, self.xml())
        return self.otherwise

    def xml(self) -> bytes:
        return (
            '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<GetCallerIdentityResult>"
            f"<Arn>{self.arn}</Arn><UserId>{self.user_id}</UserId><Account>{self.account}</Account>"
            "</GetCallerIdentityResult>"
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            "</GetCallerIdentityResponse>"
        ).encode()


@dataclass(frozen=True)
class Computed:
    """Decide per request with `choose(request) -> Behaviour` (a stand-in that answers from what was asked,
    such as an IAM listing that pages by Marker)."""

    choose: Callable[[ReceivedRequest], Behaviour]


Behaviour = Answer | Hang | Trickle | PassThrough | ByAction | Delayed | StandInSts | Computed


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    head: bytes = b""  # the request line and header lines exactly as they came off the socket

    @property
    def header_lines(self) -> list[bytes]:
        """Each header line as sent, without its CRLF: name, colon and value byte for byte (the parsed
        `headers` lose a value's leading whitespace)."""
        return [line for line in self.head.split(b"\r\n")[1:] if line]

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    @property
    def service(self) -> str:
        """The AWS service the request was signed for (sts, iam, dynamodb), or "unsigned"."""
        match = SCOPE_SERVICE.search(self.header("Authorization") or "")
        return match["service"] if match else "unsigned"

    @property
    def params(self) -> dict[str, str]:
        """The Query API parameters: the form body's, then the query string's."""
        form = dict(parse_qsl(self.body.decode("utf-8", "replace"))) if self.body else {}
        return form | dict(parse_qsl(urlsplit(self.path).query))

    @property
    def action(self) -> str:
        """The action: the Query API's (GetCallerIdentity, AssumeRole, GetRole...), or the JSON protocol's
        X-Amz-Target (TrentService.Sign -> Sign: KMS, Secrets Manager, DynamoDB), else "<method> <path>"."""
        target = self.header("X-Amz-Target")
        if target:
            return target.rsplit(".", 1)[-1]
        return self.params.get("Action", f"{self.method} {urlsplit(self.path).path}")

    @property
    def host(self) -> str:
        """The Host it named: a forwarded identity token keeps the real STS host it was signed for."""
        return self.header("Host") or ""


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
        self._answered: list[tuple[ReceivedRequest, Answer]] = []
        self.stopping = threading.Event()
        self._server: _FakeHttpServer | None = None
        self._thread: threading.Thread | None = None

    # scripting and observation

    def script(self, *steps: Behaviour, then: Behaviour | None = None) -> None:
        with self._lock:
            self._script = _Script(list(steps), then)
            self._received.clear()
            self._answered.clear()

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
            self._answered.clear()

    def record_answer(self, request: ReceivedRequest, answer: Answer) -> None:
        with self._lock:
            self._answered.append((request, answer))

    @property
    def answers(self) -> list[tuple[ReceivedRequest, Answer]]:
        """Each complete answer given (scripted or relayed from the target), with the request it answered:
        what AWS handed the code under test (issued credentials among them)."""
        with self._lock:
            return list(self._answered)

    def count_by_service(self) -> Counter[str]:
        return Counter(request.service for request in self.requests)

    def count_by_action(self) -> Counter[str]:
        return Counter(request.action for request in self.requests)

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


def json_error(code: str, status: int = 400) -> Answer:
    """An error as AWS's JSON protocols (KMS, Secrets Manager, DynamoDB, ECS) send it."""
    body = json.dumps({"__type": code, "message": f"{code} (stand-in)"}).encode()
    return Answer(status, body, (("Content-Type", "application/x-amz-json-1.1"),))


def query_error(code: str, namespace: str, status: int = 400) -> Answer:
    """An error as AWS's Query protocol (IAM, STS) sends it."""
    body = (
        f'<ErrorResponse xmlns="{namespace}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{code} (stand-in)</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    ).encode()
    return Answer(status, body)


def counting_proxy(target_url: str, *, name: str = "counting-proxy") -> FakeAws:
    """A pass-through to `target_url` (moto) that records what reaches it, to count by service or action.

    Script it again to change what some requests meet: `then=ByAction({"GetRole": Delayed(20, moto,
    until=ready)}, default=moto)`, or `then=StandInSts(..., otherwise=moto)`, where `moto =
    PassThrough(target_url)`.
    """
    proxy = FakeAws(name=name)
    proxy.script(then=PassThrough(target_url))
    return proxy


def forward(target_url: str, request: ReceivedRequest) -> Answer:
    """Send the request on unchanged (Host included, so signatures hold) and return the answer."""
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
    return Answer(response.status, payload, headers)


def _after_delay(delayed: Delayed, stopping: threading.Event) -> Behaviour:
    if delayed.until is None:
        stopping.wait(delayed.seconds)
        return delayed.then
    if delayed.until.wait(delayed.seconds):
        return delayed.then
    return Answer(599, f"fake AWS: held {delayed.seconds}s for a race that was never set up".encode())


class _FakeHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a Hang must not hold up shutdown
    request_queue_size = 64  # 16 verifications at once must not overflow the listen backlog

    def __init__(self, address: tuple[str, int], fake: FakeAws) -> None:
        super().__init__(address, _FakeRequestHandler)
        self.fake = fake


class _HeadRecorder(io.BufferedIOBase):
    """The connection's reader, keeping the lines the server reads (a request's head) as raw bytes."""

    def __init__(self, raw: io.BufferedIOBase) -> None:
        super().__init__()
        self._raw = raw
        self._lines: list[bytes] = []

    def readline(self, limit: int | None = -1) -> bytes:
        line = self._raw.readline(-1 if limit is None else limit)
        self._lines.append(line)
        return line

    def read(self, size: int | None = -1) -> bytes:
        return self._raw.read(-1 if size is None else size)

    def close(self) -> None:
        self._raw.close()
        super().close()

    def take_head(self) -> bytes:
        """The lines read since the last call: this request's line and headers (keep-alive reuses us)."""
        head, self._lines = b"".join(self._lines), []
        return head


class _FakeRequestHandler(BaseHTTPRequestHandler):
    server: _FakeHttpServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.rfile = _HeadRecorder(self.rfile)

    def _serve(self) -> None:
        assert isinstance(self.rfile, _HeadRecorder)
        head = self.rfile.take_head()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = ReceivedRequest(
            method=self.command, path=self.path, headers=tuple(self.headers.items()), body=body, head=head
        )
        behaviour = self.server.fake.next_behaviour(request)
        while isinstance(behaviour, ByAction | StandInSts | Delayed | Computed):
            if isinstance(behaviour, Delayed):
                behaviour = _after_delay(behaviour, self.server.fake.stopping)
            else:
                behaviour = behaviour.choose(request)
        match behaviour:
            case Answer():
                self._answer(behaviour, request)
            case Hang():
                self.server.fake.stopping.wait(behaviour.seconds)
                self.close_connection = True
            case Trickle():
                self._trickle(behaviour)
            case PassThrough():
                self._pass_through(behaviour.target_url, request)

    do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815 - BaseHTTPRequestHandler's names

    def _answer(self, answer: Answer, request: ReceivedRequest) -> None:
        self.server.fake.record_answer(request, answer)
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
        self._answer(forward(target_url, request), request)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a test reads `FakeAws.requests`, not a request log on stderr."""
