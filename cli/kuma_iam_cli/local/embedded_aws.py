"""AWS in this process: moto in server mode, with SigV4 and IAM checks switched on after seeding."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

import boto3
import urllib3
from botocore.awsrequest import AWSPreparedRequest
from botocore.client import BaseClient
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from kuma_iam_cli.local.listeners import listen_on

logger = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
# Any keys do before the checks are on: moto answers unsigned-but-labelled requests while seeding.
_SEEDING_ACCESS_KEY_ID = "AKIAEMBEDDEDSEEDING0"
_SEEDING_SECRET_ACCESS_KEY = "embedded-aws-seeding-only"  # noqa: S105 - not a secret, moto ignores it
# Listening on every interface is opt-in (for containers); local clients still use the loopback.
_LOOPBACK_FOR_WILDCARD = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}  # noqa: S104
_MOTO_API_TIMEOUT = urllib3.Timeout(connect=2.0, read=10.0)


class EmbeddedAwsError(RuntimeError):
    """The embedded AWS could not be started, or its control API refused a command."""


class EmbeddedAws:
    """moto in server mode on a local port, as a context manager.

    moto keeps its accounts in module globals, so one process holds one embedded AWS at a time: a second
    start while one runs is refused rather than silently sharing (and later resetting) the same state.
    """

    _running_lock = threading.Lock()

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = DEFAULT_REGION,
        listener: socket.socket | None = None,
    ) -> None:
        """listener: a socket already bound to (host, port) and listening (see local/listeners.py)."""
        self._host = host
        self._requested_port = port
        self._region = region
        self._listener = listener
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._http = urllib3.PoolManager(timeout=_MOTO_API_TIMEOUT, retries=False)
        self._previous_no_auth_count: str | None = None

    @property
    def region(self) -> str:
        return self._region

    @property
    def port(self) -> int:
        if self._port is None:
            raise EmbeddedAwsError("the embedded AWS is not running")
        return self._port

    @property
    def endpoint_url(self) -> str:
        """Where clients in this host reach it; a container reaches the same port through its host gateway."""
        reachable_host = _LOOPBACK_FOR_WILDCARD.get(self._host, self._host)
        if ":" in reachable_host:
            reachable_host = f"[{reachable_host}]"
        return f"http://{reachable_host}:{self.port}"

    @property
    def signature_checks_enabled(self) -> bool:
        return self._previous_no_auth_count is not None

    def start(self) -> Self:
        if not EmbeddedAws._running_lock.acquire(blocking=False):
            raise EmbeddedAwsError("another EmbeddedAws already runs in this process (moto state is global)")
        try:
            _quiet_request_log()
            self._start_server()
            # Begin from an empty world even if an earlier moto mock in this process left state behind.
            self._moto_api("/moto-api/reset", b"")
        except BaseException:
            self._shutdown_server()
            EmbeddedAws._running_lock.release()
            raise
        logger.info("embedded AWS started", extra={"endpoint_url": self.endpoint_url})
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        try:
            # Give later in-process moto users (mock_aws) the unauthenticated moto they expect.
            if self._previous_no_auth_count is not None:
                self._moto_api("/moto-api/reset-auth", self._previous_no_auth_count.encode())
                self._previous_no_auth_count = None
            self._moto_api("/moto-api/reset", b"")
        finally:
            self._shutdown_server()
            EmbeddedAws._running_lock.release()
            logger.info("embedded AWS stopped")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def enable_signature_checks(self) -> None:
        """From now on moto verifies every SigV4 signature and evaluates the caller's IAM policies.

        Do this after seeding: seeding runs as no one in particular, which moto only allows while the
        checks are off.
        """
        if self.signature_checks_enabled:
            return
        answer = self._moto_api("/moto-api/reset-auth", b"0")
        self._previous_no_auth_count = str(answer["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"])
        logger.info("embedded AWS checks signatures and IAM policies")

    @contextmanager
    def signature_checks_paused(self) -> Iterator[None]:
        """Seed more once the checks are on (another partition, say): off inside the block, on again after."""
        if not self.signature_checks_enabled:
            yield
            return
        self._moto_api("/moto-api/reset-auth", b"inf")
        try:
            yield
        finally:
            self._moto_api("/moto-api/reset-auth", b"0")

    def client_in_account(self, service: str, account_id: str, *, region: str | None = None) -> BaseClient:
        """A client that acts in `account_id` (and, through `region`, in that region's partition), for seeding
        (works only while the signature checks are off)."""

        def label_account(request: AWSPreparedRequest, **_: Any) -> None:
            request.headers["x-moto-account-id"] = account_id

        client: BaseClient = boto3.client(  # type: ignore[call-overload]
            service,
            region_name=region or self._region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=_SEEDING_ACCESS_KEY_ID,
            aws_secret_access_key=_SEEDING_SECRET_ACCESS_KEY,
        )
        # before-send sees the final request; a header added there is not part of the signature.
        client.meta.events.register("before-send", label_account)
        return client

    def client_with_keys(
        self, service: str, access_key_id: str, secret_access_key: str, session_token: str | None = None
    ) -> BaseClient:
        """A client that signs with real credentials of the embedded AWS (works with the checks on)."""
        client: BaseClient = boto3.client(  # type: ignore[call-overload]
            service,
            region_name=self._region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
        )
        return client

    def _moto_api(self, path: str, body: bytes) -> dict[str, Any]:
        # text/plain, because a form content type makes the server parse the body away and moto then
        # answers 500.
        response = self._http.request(
            "POST", self.endpoint_url + path, body=body, headers={"Content-Type": "text/plain"}
        )
        if response.status != 200:
            raise EmbeddedAwsError(f"moto refused {path}: HTTP {response.status}")
        try:
            answer = json.loads(response.data or b"{}")
        except json.JSONDecodeError:
            answer = {}
        return answer if isinstance(answer, dict) else {}

    def _start_server(self) -> None:
        # moto's server on a socket we bound: a busy port is an OSError here, where moto's own
        # ThreadedMotoServer would print "Port ... is in use" in its thread and wait for it forever.
        try:
            listener = self._listener or listen_on(self._host, self._requested_port)
        except OSError as error:
            raise EmbeddedAwsError(f"cannot listen on {self._host}:{self._requested_port}: {error}") from None
        self._listener = None  # the server takes it over (and closes it on stop)
        try:
            server = make_server(
                self._host,
                listener.getsockname()[1],
                DomainDispatcherApplication(create_backend_app),
                threaded=True,
                request_handler=MotoRequestHandler,
                fd=listener.fileno(),
            )
        finally:
            listener.close()  # werkzeug serves on its own duplicate of the descriptor
        self._server = server
        self._port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, name="kuma-iam-embedded-aws", daemon=True
        )
        self._thread.start()

    def _shutdown_server(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None
        self._port = None


def _quiet_request_log() -> None:
    """werkzeug logs every request at INFO; keep that out of the way unless the operator asked for it."""
    request_log = logging.getLogger("werkzeug")
    if request_log.level == logging.NOTSET:
        request_log.setLevel(logging.WARNING)
