"""A stand-in for a Kuma control plane's token API, over HTTPS with a CA made here: `POST /tokens/dataplane`
checked as the control plane checks it, written from Kuma's API (kumahq/kuma pkg/tokens/builtin/server and
pkg/plugins/authn/api-server/tokens), not from our code.

What it checks: the admin user token as `Authorization: Bearer <token>` (401 with Kuma's error document
otherwise), a JSON body (`Content-Type: application/json`) decoding into Kuma's DataplaneTokenRequest (`name`,
`mesh`, `tags` as a map of string lists, `type`, `workload`, `validFor`; unknown fields ignored as Go does), a
mesh, a valid Go duration, a type that is empty or dataplane (400 with Kuma's validation error otherwise). It
answers the token as text/plain, signed with its own RSA key under kid "1", every claim of Kuma's struct
written (an unset Workload as ""). `answer_with` scripts a different answer for a test.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import re
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

_GO_DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+")
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA and a server certificate it signed for 127.0.0.1 and localhost, as PEM."""

    ca_pem: str
    cert_pem: str
    key_pem: str

    @classmethod
    def make(cls, common_name: str = "kuma-cp test CA") -> CertificateAuthority:
        now = datetime.datetime.now(datetime.UTC)
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                    key_encipherment=False, data_encipherment=False, key_agreement=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kuma-cp")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            # Python 3.13 verifies strictly (VERIFY_X509_STRICT): a leaf names its issuer's key, as Go's do.
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return cls(
            ca_pem=ca.public_bytes(serialization.Encoding.PEM).decode(),
            cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
            key_pem=key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode(),
        )


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Reply:
    """An answer; the last fields script a control plane that misbehaves: waits before answering, sends
    its body a few bytes at a time, adds headers, or sends `raw` bytes that are no HTTP at all."""

    status: int
    body: bytes
    content_type: str = "application/json"
    pause_seconds: float = 0.0
    drip_seconds: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    raw: bytes | None = None


class _QuietWhenHungUpOn(ThreadingHTTPServer):
    """A client that hangs up (as the provisioner must on a flood or a trickle) is no error of the stand-in:
    socketserver would print it from its thread, late on a loaded machine, after pytest closed the output."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exception(), ConnectionError):
            super().handle_error(request, client_address)


def kuma_error(status: int, title: str, detail: str = "") -> Reply:
    """Kuma's REST error document (pkg/core/rest/errors/types)."""
    document = {"type": "/std-errors", "status": status, "title": title, "detail": detail}
    return Reply(status, json.dumps(document).encode())


@dataclass
class StandInControlPlane:
    """The token API on https://127.0.0.1:<port>; `url` once started."""

    admin_token: str
    authority: CertificateAuthority
    workdir: Path
    signing_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    requests: list[SeenRequest] = field(default_factory=list)
    # A test may answer otherwise: given the checked request, a Reply (or None for the normal answer).
    answer_with: Callable[[dict[str, Any]], Reply | None] | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # lets go of a reply still pausing when the stand-in stops
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def public_key_pem(self) -> str:
        """As kuma-cp's publicKeys entries hold it: PKCS#1."""
        return (
            self.signing_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
            .decode()
        )

    def start(self) -> Self:
        cert, key = self.workdir / "cp.crt", self.workdir / "cp.key"
        cert.write_text(self.authority.cert_pem)
        key.write_text(self.authority.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        plane = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                seen = SeenRequest(self.command, self.path, dict(self.headers.items()), body)
                with plane._lock:
                    plane.requests.append(seen)
                self._reply(plane.handle(seen))

            def do_GET(self) -> None:
                self._reply(kuma_error(405, "Method not allowed"))

            def _reply(self, reply: Reply) -> None:
                if plane._stopping.wait(reply.pause_seconds):
                    return  # stopped while pausing: the client gave up long ago
                if reply.raw is not None:
                    self.wfile.write(reply.raw)
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.end_headers()
                if not reply.drip_seconds:
                    self.wfile.write(reply.body)
                    return
                for start in range(0, len(reply.body), 8):
                    try:
                        self.wfile.write(reply.body[start : start + 8])
                        self.wfile.flush()
                    except OSError:
                        return  # the client stopped listening, as it should
                    time.sleep(reply.drip_seconds)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        server = _QuietWhenHungUpOn(("127.0.0.1", 0), Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- the API ---

    def handle(self, request: SeenRequest) -> Reply:
        if request.path != "/tokens/dataplane":
            return kuma_error(404, "Not found")
        if request.headers.get("Authorization") != f"Bearer {self.admin_token}":
            return kuma_error(401, "Unauthenticated", "Invalid authentication data")
        if (request.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return kuma_error(415, "Unsupported media type")
        try:
            document = json.loads(request.body)
        except ValueError:
            return Reply(400, b"")  # Kuma answers a body it cannot read with a bare 400
        problem = _request_problem(document)
        if problem is not None:
            return kuma_error(400, "Invalid request", problem)
        if self.answer_with is not None and (scripted := self.answer_with(document)) is not None:
            return scripted
        return Reply(200, self.token(document).encode(), "text/plain")

    def token(self, request: dict[str, Any], **override: Any) -> str:
        now = int(time.time())
        seconds = _duration_seconds(request["validFor"])
        claims = {
            "Name": request.get("name", ""),
            "Mesh": request["mesh"],
            "Tags": request.get("tags") or {},
            "Type": request.get("type") or "",
            "Workload": request.get("workload", ""),
            "jti": str(uuid.uuid4()),
            "iat": now,
            "nbf": now - 300,
            "exp": now + int(seconds),
            **override,
        }

        def part(value: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        signing_input = f"{part({'alg': 'RS256', 'kid': '1', 'typ': 'JWT'})}.{part(claims)}"
        signature = self.signing_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _request_problem(document: Any) -> str | None:
    """What Kuma's decoder or its handler's validation would refuse."""
    if not isinstance(document, dict):
        return "not an object"
    for name in ("name", "mesh", "type", "workload", "validFor"):
        if name in document and not isinstance(document[name], str):
            return f"{name}: not a string"
    tags = document.get("tags", {})
    if tags is not None and not (
        isinstance(tags, dict)
        and all(
            isinstance(values, list) and all(isinstance(v, str) for v in values) for values in tags.values()
        )
    ):
        return "tags: not a map of string lists"
    if not document.get("mesh"):
        return "mesh: cannot be empty"
    if document.get("type", "") not in ("", "dataplane"):
        return f"type: {document['type']} is not a valid proxy type"
    if not _GO_DURATION.fullmatch(document.get("validFor", "")):
        return "validFor: is invalid"
    return None


def _duration_seconds(text: str) -> float:
    return sum(
        float(number) * _SECONDS[unit]
        for number, unit in re.findall(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)", text)
    )
