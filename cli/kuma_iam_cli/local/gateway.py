"""A local API Gateway HTTP API: SigV4 checks like AWS_IAM auth, real handlers on payload 2.0 events."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import importlib.util
import json
import logging
import secrets
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import parse_qsl

from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

logger = logging.getLogger(__name__)

type Handler = Callable[[dict[str, Any], LambdaContext], Any]

MAX_BODY_BYTES = 1024 * 1024
# API Gateway refuses a signature whose X-Amz-Date is more than five minutes off its clock.
SIGNATURE_MAX_SKEW = timedelta(minutes=5)
DEFAULT_REGION = "us-east-1"
INVOCATION_TIMEOUT_SECONDS = 30.0  # the longest API Gateway waits for an integration

_SIGV4_ALGORITHM = "AWS4-HMAC-SHA256"
_SIGV4_SERVICE = "execute-api"
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Framing headers belong to this hop; the gateway writes its own.
_DRAIN_LIMIT_BYTES = 16 * 1024 * 1024
_HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


@dataclass(frozen=True)
class GatewayCaller:
    """A principal whose long-term access key the gateway accepts, and what the authorizer reports of it."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    account_id: str
    user_arn: str
    user_id: str
    # Set for temporary credentials (e.g. `serve --aws` with an SSO session): the request must carry it.
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class GatewayRequest:
    """An HTTP request as received: headers keep their order, case and repeats."""

    method: str
    raw_path: str
    raw_query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    source_ip: str
    protocol: str = "HTTP/1.1"

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]


@dataclass(frozen=True)
class GatewayResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class GatewayExchange:
    """One request as the gateway handled it: who called (if signed), what came back, how long it took."""

    request: GatewayRequest
    route_key: str | None
    caller: GatewayCaller | None
    rejection: str | None  # why the signature was refused (the caller saw only 403 Forbidden)
    response: GatewayResponse
    duration_ms: float


class SignatureRejected(Exception):
    """The request is not signed by a known caller; the reason is for the log, the caller sees 403."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LocalLambdaContext(LambdaContext):
    """The parts of a Lambda context that handlers and Powertools read."""

    def __init__(
        self,
        *,
        function_name: str,
        aws_request_id: str,
        region: str,
        account_id: str,
        memory_limit_in_mb: int = 256,
        timeout_seconds: float = INVOCATION_TIMEOUT_SECONDS,
    ) -> None:
        self._function_name = function_name
        self._function_version = "$LATEST"
        self._invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self._memory_limit_in_mb = memory_limit_in_mb
        self._aws_request_id = aws_request_id
        self._log_group_name = f"/aws/lambda/{function_name}"
        self._log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def verify_signature(
    request: GatewayRequest,
    callers: Mapping[str, GatewayCaller],
    *,
    region: str,
    now: datetime,
) -> GatewayCaller:
    """The caller whose key signed `request` (SigV4, service execute-api), or SignatureRejected."""
    authorization = _single_header(request, "authorization")
    if authorization is None:
        raise SignatureRejected("no single Authorization header")
    algorithm, _, parameters = authorization.partition(" ")
    if algorithm != _SIGV4_ALGORITHM:
        raise SignatureRejected("not a SigV4 Authorization header")
    fields = _authorization_fields(parameters)

    credential = fields["Credential"].split("/")
    if len(credential) != 5:
        raise SignatureRejected("malformed credential scope")
    access_key_id, scope_date, scope_region, scope_service, terminator = credential
    if (scope_region, scope_service, terminator) != (region, _SIGV4_SERVICE, "aws4_request"):
        raise SignatureRejected("credential scope is not this API's region and service")

    amz_date = _single_header(request, "x-amz-date")
    if amz_date is None:
        raise SignatureRejected("no single X-Amz-Date header")
    try:
        signed_at = datetime.strptime(amz_date, _AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureRejected("malformed X-Amz-Date") from None
    if scope_date != amz_date[:8]:
        raise SignatureRejected("credential scope date differs from X-Amz-Date")
    if abs(now - signed_at) > SIGNATURE_MAX_SKEW:
        raise SignatureRejected("signature expired or from the future")

    caller = callers.get(access_key_id)
    if caller is None:
        raise SignatureRejected("unknown access key")
    session_tokens = request.header_values("x-amz-security-token")
    if session_tokens != ([caller.session_token] if caller.session_token else []):
        raise SignatureRejected("session token missing, unexpected or wrong")
    content_sha256 = _single_header(request, "x-amz-content-sha256")
    if content_sha256 is not None and content_sha256 != hashlib.sha256(request.body).hexdigest():
        raise SignatureRejected("X-Amz-Content-SHA256 does not match the body")

    signed_names = fields["SignedHeaders"].split(";")
    if not {"host", "x-amz-date"} <= set(signed_names):
        raise SignatureRejected("Host and X-Amz-Date must be signed")
    signed_headers: dict[str, str] = {}
    for name in signed_names:
        values = request.header_values(name)
        if not values:
            raise SignatureRejected("a signed header is missing")
        signed_headers[name] = ",".join(value.strip() for value in values)

    query = f"?{request.raw_query}" if request.raw_query else ""
    aws_request = AWSRequest(
        method=request.method,
        url=f"https://{signed_headers['host']}{request.raw_path}{query}",
        data=request.body,
        headers=signed_headers,
    )
    aws_request.context["timestamp"] = amz_date
    signer = SigV4Auth(
        Credentials(caller.access_key_id, caller.secret_access_key, caller.session_token),
        _SIGV4_SERVICE,
        region,
    )
    headers_to_sign = signer.headers_to_sign(aws_request)
    if signer.signed_headers(headers_to_sign) != fields["SignedHeaders"]:
        # Not canonical, or it names a header botocore never signs: the two sides would hash different text.
        raise SignatureRejected("SignedHeaders is not in canonical form")
    canonical_request = signer.canonical_request(aws_request)
    expected = signer.signature(signer.string_to_sign(aws_request, canonical_request), aws_request)
    if not hmac.compare_digest(expected.encode(), fields["Signature"].encode()):
        raise SignatureRejected("signature does not match")
    return caller


def build_event(
    request: GatewayRequest,
    *,
    route_key: str,
    caller: GatewayCaller | None,
    api_account_id: str,
    request_id: str,
    received_at: datetime,
    api_id: str = "local",
) -> dict[str, Any]:
    """The API Gateway HTTP API payload 2.0 event for `request`, as the integration would receive it."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        lowered = name.lower()
        if lowered == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[lowered] = f"{headers[lowered]},{value}" if lowered in headers else value

    host = headers.get("host", "localhost")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": api_account_id,
            "apiId": api_id,
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0],
            "http": {
                "method": request.method,
                "path": request.raw_path,
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": _request_time(received_at),
            "timeEpoch": int(received_at.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if request.raw_query:
        parameters: dict[str, str] = {}
        for key, value in parse_qsl(request.raw_query, keep_blank_values=True):
            parameters[key] = f"{parameters[key]},{value}" if key in parameters else value
        event["queryStringParameters"] = parameters
    if caller is not None:
        event["requestContext"]["authorizer"] = {
            "iam": {
                "accessKey": caller.access_key_id,
                "accountId": caller.account_id,
                "callerId": caller.user_id,
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": caller.user_arn,
                "userId": caller.user_id,
            }
        }
    if request.body:
        try:
            event["body"] = request.body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(request.body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


def response_from_result(result: object, *, request_id: str) -> GatewayResponse:
    """What API Gateway sends back for a handler's return value (payload 2.0 rules)."""
    trace = ("apigw-requestid", request_id)
    if not (isinstance(result, dict) and "statusCode" in result):
        # A bare value is the JSON body of a 200.
        body = json.dumps(result).encode()
        return GatewayResponse(200, (("content-type", "application/json"), trace), body)

    status = result["statusCode"]
    raw_headers = result.get("headers") or {}
    raw_cookies = result.get("cookies") or []
    raw_body = result.get("body")
    if (
        isinstance(status, bool)
        or not isinstance(status, int)
        or not 100 <= status <= 599
        or not isinstance(raw_headers, dict)
        or not isinstance(raw_cookies, list)
        or not isinstance(raw_body, str | None)
    ):
        logger.error("handler returned a malformed response", extra={"request_id": request_id})
        return _message_response(500, "Internal Server Error", request_id)
    body = (raw_body or "").encode()
    if result.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body, validate=True)
        except binascii.Error:
            logger.error("handler returned a body that is not base64", extra={"request_id": request_id})
            return _message_response(500, "Internal Server Error", request_id)

    headers = [
        (str(name), str(value)) for name, value in raw_headers.items() if name.lower() not in _HOP_HEADERS
    ]
    headers.extend(("set-cookie", str(cookie)) for cookie in raw_cookies)
    headers.append(trace)
    return GatewayResponse(status, tuple(headers), body)


def load_handler(path: Path, attribute: str = "lambda_handler") -> Handler:
    """Import a handler file (e.g. functions/verifier/app.py) as a module named after its folder."""
    path = path.resolve()
    module_name = path.parent.name
    existing = sys.modules.get(module_name)
    if existing is not None and Path(getattr(existing, "__file__", "") or "").resolve() != path:
        raise ImportError(f"a different module named {module_name!r} is already imported")
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load a Python module from {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered before running, as a normal import would: dataclasses and pydantic look the module up.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise ImportError(f"{path} has no callable {attribute!r}")
    return cast(Handler, handler)


class LocalGateway:
    """Routes keyed like "POST /v1/verify" (or "$default"), each IAM-authorized unless named public.

    Like one warm Lambda container per function, a handler never runs concurrently with itself.
    """

    def __init__(
        self,
        routes: Mapping[str, Handler],
        callers: Iterable[GatewayCaller],
        *,
        api_account_id: str,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = DEFAULT_REGION,
        public_routes: Collection[str] = frozenset(),
        max_body_bytes: int = MAX_BODY_BYTES,
        clock: Callable[[], datetime] | None = None,
        listener: socket.socket | None = None,
        on_exchange: Callable[[GatewayExchange], None] | None = None,
    ) -> None:
        """listener: a socket already bound and listening (local/listeners.py) to serve on instead of
        binding (host, port) here. on_exchange: called after each request, e.g. to print an access line."""
        unknown_public = set(public_routes) - set(routes)
        if unknown_public:
            raise ValueError(f"public routes without a handler: {sorted(unknown_public)}")
        self._routes = dict(routes)
        self._route_locks = {route_key: threading.Lock() for route_key in self._routes}
        self._callers = {caller.access_key_id: caller for caller in callers}
        self._public_routes = frozenset(public_routes)
        self._api_account_id = api_account_id
        self._host = host
        self._requested_port = port
        self._region = region
        self.max_body_bytes = max_body_bytes
        self._clock = clock or _utc_now
        self._listener = listener
        self._on_exchange = on_exchange
        self._server: _GatewayHttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the gateway is not running")
        return int(self._server.server_address[1])

    @property
    def endpoint_url(self) -> str:
        reachable_host = "127.0.0.1" if self._host in {"0.0.0.0", ""} else self._host  # noqa: S104
        return f"http://{reachable_host}:{self.port}"

    def handle(self, request: GatewayRequest) -> GatewayResponse:
        """Answer one request as API Gateway would: route, authorize, invoke, translate."""
        started = time.perf_counter()
        request_id = base64.b64encode(secrets.token_bytes(12)).decode("ascii")
        route_key: str | None = f"{request.method} {request.raw_path}"
        if route_key not in self._routes:
            route_key = "$default" if "$default" in self._routes else None
        response, caller, rejection = self._route(request, route_key, request_id)
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        logger.info(
            "gateway request",
            extra={
                "method": request.method,
                "path": request.raw_path,
                "route_key": route_key,
                "status": response.status,
                "request_id": request_id,
                "duration_ms": duration_ms,
            },
        )
        if self._on_exchange is not None:
            self._on_exchange(GatewayExchange(request, route_key, caller, rejection, response, duration_ms))
        return response

    def start(self) -> Self:
        server = _GatewayHttpServer((self._host, self._requested_port), self, self._listener)
        self._listener = None  # the server owns it now, and closes it on stop
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="kuma-iam-gateway", daemon=True
        )
        self._thread.start()
        logger.info("local gateway started", extra={"endpoint_url": self.endpoint_url})
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
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

    def _route(
        self, request: GatewayRequest, route_key: str | None, request_id: str
    ) -> tuple[GatewayResponse, GatewayCaller | None, str | None]:
        """The response, the caller whose signature was accepted, and why a signature was refused."""
        if route_key is None:
            return _message_response(404, "Not Found", request_id), None, None
        handler = self._routes[route_key]
        if len(request.body) > self.max_body_bytes:
            return _message_response(413, "Request Entity Too Large", request_id), None, None
        caller: GatewayCaller | None = None
        if route_key not in self._public_routes:
            try:
                caller = verify_signature(request, self._callers, region=self._region, now=self._clock())
            except SignatureRejected as rejection:
                logger.info(
                    "request not authorized", extra={"reason": rejection.reason, "request_id": request_id}
                )
                return _message_response(403, "Forbidden", request_id), None, rejection.reason
        event = build_event(
            request,
            route_key=route_key,
            caller=caller,
            api_account_id=self._api_account_id,
            request_id=request_id,
            received_at=self._clock(),
        )
        function_name = str(getattr(handler, "__module__", None) or "handler")
        context = LocalLambdaContext(
            function_name=function_name,
            aws_request_id=str(uuid.uuid4()),
            region=self._region,
            account_id=self._api_account_id,
        )
        with self._route_locks[route_key]:
            try:
                result = handler(event, context)
            except Exception:  # a crashing handler is a 500 to the caller, as behind API Gateway
                logger.exception("handler failed", extra={"route_key": route_key, "request_id": request_id})
                return _message_response(500, "Internal Server Error", request_id), caller, None
        return response_from_result(result, request_id=request_id), caller, None


class _GatewayHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], gateway: LocalGateway, listener: socket.socket | None = None
    ) -> None:
        super().__init__(address, _GatewayRequestHandler, bind_and_activate=listener is None)
        if listener is not None:
            self.socket.close()
            self.socket = listener
            self.server_address = listener.getsockname()[:2]
        self.gateway = gateway


class _GatewayRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        gateway = cast(_GatewayHttpServer, self.server).gateway
        if self.headers.get("Transfer-Encoding"):
            self._reject(411, "Length Required")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._reject(400, "Bad Request")
            return
        if length > gateway.max_body_bytes:
            # Refused unread, so an oversized body never sits in memory; a moderate one is drained so the
            # client, still sending, gets the 413 instead of a reset connection.
            if length <= _DRAIN_LIMIT_BYTES:
                self._discard(length)
            self._reject(413, "Request Entity Too Large")
            return
        body = self.rfile.read(length)
        raw_path, _, raw_query = self.path.partition("?")
        request = GatewayRequest(
            method=self.command,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=tuple((name, value) for name, value in self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )
        self._write(gateway.handle(request))

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def _discard(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 64 * 1024))
            if not chunk:
                return
            length -= len(chunk)

    def _reject(self, status: int, message: str) -> None:
        # The unread body would be taken for the next request: end the connection after answering.
        self.close_connection = True
        response = _message_response(status, message, request_id="")
        self._write(
            GatewayResponse(response.status, (*response.headers, ("connection", "close")), response.body)
        )

    def _write(self, response: GatewayResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        # Requests are logged once, with fields, by LocalGateway.handle; this keeps stderr quiet.
        pass


def _message_response(status: int, message: str, request_id: str) -> GatewayResponse:
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)
    if request_id:
        headers = (*headers, ("apigw-requestid", request_id))
    return GatewayResponse(status, headers, json.dumps({"message": message}).encode())


def _authorization_fields(parameters: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in parameters.split(","):
        name, separator, value = part.strip().partition("=")
        if not separator or name in fields:
            raise SignatureRejected("malformed Authorization header")
        fields[name] = value
    if set(fields) != {"Credential", "SignedHeaders", "Signature"}:
        raise SignatureRejected("Authorization header lacks Credential, SignedHeaders or Signature")
    return fields


def _single_header(request: GatewayRequest, name: str) -> str | None:
    values = request.header_values(name)
    return values[0] if len(values) == 1 else None


def _request_time(moment: datetime) -> str:
    # API Gateway's format, e.g. "12/Mar/2020:19:03:58 +0000"; month names spelled out to avoid the locale.
    moment = moment.astimezone(UTC)
    return f"{moment:%d}/{_MONTHS[moment.month - 1]}/{moment:%Y:%H:%M:%S} +0000"


def _utc_now() -> datetime:
    return datetime.now(UTC)
