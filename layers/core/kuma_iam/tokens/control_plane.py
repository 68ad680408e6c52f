"""The control plane as the token issuer, the way Kong Mesh's ECS token controller asked it: `POST
/tokens/dataplane` on its API with an admin user token (`Authorization: Bearer …`), over TLS to a given CA.

Kuma's request is `{"name", "mesh", "tags", "type", "workload", "validFor"}` (kumahq/kuma
pkg/tokens/builtin/server/types); the answer is the token itself as text. Behind the `Minter` interface,
so the provisioner does not care who signs. The control plane keeps its signing keys (`verification_keys`
is None).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import urllib3
from botocore.exceptions import ClientError

from kuma_iam.aws import aws_errors
from kuma_iam.errors import (
    ConfigError,
    InvalidRequest,
    UpstreamError,
    UpstreamThrottled,
    UpstreamUnavailable,
)
from kuma_iam.rules import SERVICE_TAG, ProxyType
from kuma_iam.tokens import jwt
from kuma_iam.tokens.claims import DataplaneIdentity, TokenIdentity
from kuma_iam.tokens.duration import format_go_duration
from kuma_iam.tokens.mint import IssuedToken
from kuma_iam.tokens.references import KID

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

DATAPLANE_TOKEN_PATH: Final = "/tokens/dataplane"  # noqa: S105 - a path
# A token is a few KB; a larger answer is not one.
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "kuma-iam-token-provisioner"


class SecretText:
    """One secret's string, read from Secrets Manager on first use and kept until `forget`."""

    def __init__(self, secrets: SecretsManagerClient, secret_arn: str, what: str) -> None:
        self._secrets = secrets
        self._secret_arn = secret_arn
        self._what = what
        self._value: str | None = None
        self._lock = threading.Lock()

    def get(self) -> str:
        with self._lock:
            if self._value is None:
                self._value = self._read()
            return self._value

    def forget(self) -> None:
        """The value was refused (an admin token rotated since it was read): the next `get` reads it again."""
        with self._lock:
            self._value = None

    def _read(self) -> str:
        with aws_errors("secretsmanager", f"cannot read the {self._what} in {self._secret_arn}"):
            try:
                answer = self._secrets.get_secret_value(SecretId=self._secret_arn)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    raise ConfigError(f"the {self._what} secret {self._secret_arn} does not exist") from None
                raise
            text = answer.get("SecretString")
        if not text or not text.strip():
            raise ConfigError(f"the {self._what} secret {self._secret_arn} holds no text (SecretString)")
        return text.strip()


def tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """TLS 1.2 or later, the host name checked, and only the given CA trusted (the system's when None)."""
    try:
        context = ssl.create_default_context(cadata=ca_bundle) if ca_bundle else ssl.create_default_context()
    except (ssl.SSLError, ValueError):
        raise ConfigError("KUMA_IAM_CP_CA_SECRET holds no PEM certificate") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes


class ControlPlaneMinter:
    """Dataplane tokens from the control plane's API. One attempt per token: a POST whose answer was lost
    is not repeated (the control plane may have issued it); the caller's next run asks again."""

    def __init__(
        self,
        url: str,
        admin_token: SecretText,
        http: Callable[[], urllib3.PoolManager],
        *,
        timeout_seconds: float,
    ) -> None:
        self._endpoint = url.rstrip("/") + DATAPLANE_TOKEN_PATH
        self._admin_token = admin_token
        self._http = http
        self._timeout = urllib3.Timeout(connect=min(2.0, timeout_seconds), read=timeout_seconds)
        # The whole answer, however slowly it trickles in: each read also waits at most `read` above.
        self._answer_seconds = 2 * timeout_seconds

    def verification_keys(self) -> None:
        return None

    def mint(self, identity: TokenIdentity, valid_for: timedelta) -> IssuedToken:
        """Raise UpstreamError (the control plane refused, failed or could not be reached) or return the
        token the control plane signed, checked to be the one asked for."""
        if not isinstance(identity, DataplaneIdentity):
            raise InvalidRequest("the control plane's API signs dataplane tokens here, not zone tokens")
        request = {
            "name": identity.name,
            "mesh": identity.mesh,
            "tags": {SERVICE_TAG: list(identity.services)} if identity.services else {},
            "type": ProxyType.DATAPLANE.value,
            "workload": identity.workload or "",
            "validFor": format_go_duration(valid_for),
        }
        answer = self._post(request)
        if answer.status == 401:
            # The admin token may have been rotated since this container read it: read it once more.
            self._admin_token.forget()
            answer = self._post(request)
        if answer.status != 200:
            raise _refusal(answer, self._admin_token.get())
        return _issued(answer.body, identity)

    def _post(self, request: dict[str, Any]) -> _Answer:
        headers = {
            "Authorization": f"Bearer {self._admin_token.get()}",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        deadline = time.monotonic() + self._answer_seconds
        try:
            response = self._http().request(
                "POST",
                self._endpoint,
                body=json.dumps(request).encode(),
                headers=headers,
                timeout=self._timeout,
                retries=False,
                redirect=False,  # a redirect is an answer: the admin token goes nowhere else
                preload_content=False,
            )
            try:
                body = _read_answer(response, deadline)
            except BaseException:
                response.close()  # what was left unread must not meet the next request on this connection
                raise
            finally:
                response.release_conn()
        except urllib3.exceptions.SSLError as error:
            raise UpstreamUnavailable("kuma-cp", _tls_problem(error)) from None
        except urllib3.exceptions.HTTPError as error:
            raise UpstreamUnavailable(
                "kuma-cp", f"cannot reach the control plane: {type(error).__name__}"
            ) from None
        return _Answer(response.status, body)


def _read_answer(response: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
    """At most MAX_ANSWER_BYTES, before `deadline`: a control plane that trickles or floods is failing."""
    body = bytearray()
    while chunk := response.read1(MAX_ANSWER_BYTES + 1 - len(body)):
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise UpstreamUnavailable(
                "kuma-cp", f"the control plane answered more than {MAX_ANSWER_BYTES} bytes"
            )
        if time.monotonic() > deadline:
            raise UpstreamUnavailable("kuma-cp", "the control plane's answer did not arrive in time")
    return bytes(body)


def _tls_problem(error: urllib3.exceptions.SSLError) -> str:
    """Which of TLS's failures: a certificate the CA did not sign (or for another host), or no TLS at all."""
    cause = next((arg for arg in error.args if isinstance(arg, ssl.SSLError)), error.__context__)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return (
            "the control plane's TLS certificate is not signed by the configured CA (KUMA_IAM_CP_CA_SECRET) "
            f"or does not name its host: {str(cause.verify_message)[:120]}"
        )
    reason = getattr(cause, "reason", None) or type(cause).__name__
    return f"no TLS session with the control plane (is KUMA_IAM_CP_URL its API's https port?): {reason}"[:300]


def _refusal(answer: _Answer, admin_token: str) -> UpstreamError:
    """What the control plane's answer says went wrong: Kuma's error document's title and detail, bounded, and
    never the admin token (a proxy in front of the API may echo the request it refused into the log)."""
    said = ""
    try:
        document = json.loads(answer.body)
        if isinstance(document, dict):
            said = ": " + " - ".join(
                document[key].replace(admin_token, "<the admin token>")[:200]
                for key in ("title", "detail")
                if isinstance(document.get(key), str)
            )
    except (UnicodeDecodeError, ValueError):
        pass
    if answer.status == 429:
        return UpstreamThrottled("kuma-cp", "the control plane is throttling token requests", retry_after=2)
    meaning = {
        401: "refused the admin user token (is KUMA_IAM_CP_TOKEN_SECRET current?)",
        403: "does not let the admin token's user generate dataplane tokens",
    }.get(answer.status, "refused the token request")
    return UpstreamUnavailable("kuma-cp", f"the control plane {meaning} ({answer.status}){said}"[:400])


def _issued(body: bytes, identity: DataplaneIdentity) -> IssuedToken:
    """The token, if it is a Kuma dataplane token for exactly what was asked; the control plane's answer is
    trusted no further than that."""
    try:
        token = body.decode("ascii").strip()
        parsed = jwt.parse(token)
    except (UnicodeDecodeError, jwt.MalformedToken):
        raise UpstreamUnavailable("kuma-cp", "the control plane's answer is not a token") from None
    kid, claims = parsed.header.get("kid"), parsed.claims
    expires, jti = claims.get("exp"), claims.get("jti")
    if (
        parsed.header.get("alg") != jwt.ALGORITHM
        or not isinstance(kid, str)
        or not KID.fullmatch(kid)
        or not isinstance(jti, str)
        or not jti
        or isinstance(expires, bool)
        or not isinstance(expires, int | float)
        or not identity.bound_by(claims)
    ):
        raise UpstreamUnavailable(
            "kuma-cp", "the control plane answered a token for something else than asked"
        )
    return IssuedToken(token, kid, jti, datetime.fromtimestamp(expires, UTC))


def control_plane_http(ca_bundle: Callable[[], str | None]) -> Callable[[], urllib3.PoolManager]:
    """A connection pool made on first use (the CA is read from Secrets Manager then) and kept."""
    made: list[urllib3.PoolManager] = []
    lock = threading.Lock()

    def pool() -> urllib3.PoolManager:
        with lock:
            if not made:
                made.append(urllib3.PoolManager(ssl_context=tls_context(ca_bundle()), num_pools=2, maxsize=4))
            return made[0]

    return pool
