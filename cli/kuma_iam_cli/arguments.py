"""Argument types the subcommands share: each refuses a bad value at parse time with a message that says
what a good one looks like (argparse turns it into `kuma-iam: argument --x: ...`, exit status 2)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from kuma_iam.aws import ACCOUNT_ID
from kuma_iam.config import ROLE_NAME, TABLE_NAME
from kuma_iam.identity.checks import SERVER_ID
from kuma_iam.rules import DNS_LABEL
from kuma_iam.tokens.duration import parse_go_duration
from kuma_iam.tokens.revocations import JTI

_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}|[0-9A-Fa-f:.]{2,45}")  # a name, an IPv4 or an IPv6 address


def server_id(value: str) -> str:
    """A server id the verifier accepts (its KUMA_IAM_SERVER_ID rule); a token for any other is void."""
    if not SERVER_ID.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a server id the verifier accepts: 1 to 256 printable ASCII characters, "
            "no spaces (e.g. kuma-demo)"
        )
    return value


def api_url(route: str) -> Callable[[str], str]:
    """The type of an option taking an absolute http(s) URL with a host; its messages give `route` (e.g.
    /v1/tokens) as the example, the path the option expects."""
    example = f"e.g. http://127.0.0.1:8080{route}"

    def url(value: str) -> str:
        parts = urlsplit(value)
        if not value:
            raise argparse.ArgumentTypeError(f"is empty: give the API's URL, {example}")
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise argparse.ArgumentTypeError(f"{value!r} needs http:// or https:// and a host, {example}")
        try:
            parts.port  # noqa: B018 - urlsplit checks the port only when asked
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} has an invalid port, {example}") from None
        if not _HOST.fullmatch(parts.hostname or ""):
            raise argparse.ArgumentTypeError(f"{value!r} has no valid host, {example}")
        return value

    return url


# The verifier's POST /v1/verify, e.g. http://127.0.0.1:8080/v1/verify.
http_url = api_url("/v1/verify")


def port(value: str) -> int:
    """A TCP port number; 0 lets the system pick a free one."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (0-65535)") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{number} is not a port number (0-65535)")
    return number


def account_id(value: str) -> str:
    """A 12-digit AWS account id."""
    if not ACCOUNT_ID.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a 12-digit AWS account id (e.g. 111111111111)")
    return value


def role_name(value: str) -> str:
    """An IAM role name, as IAM allows it (the functions' settings use the same rule)."""
    if not ROLE_NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an IAM role name: 1 to 64 letters, digits and +=,.@_- "
            "(e.g. kuma-iam-compliance)"
        )
    return value


def go_duration(value: str) -> str:
    """A duration as Kuma and Go write them (1h, 90m, 1h30m), kept as written: it may go on the wire."""
    try:
        parse_go_duration(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{value[:40]!r}: {error} (e.g. 1h, 30m)") from None
    return value


def dns_label(what: str, example: str) -> Callable[[str], str]:
    """The type of an option taking a DNS label (a-z, 0-9 and '-', at most 63 characters): `what` it names
    and an `example`, for the message."""

    def label(value: str) -> str:
        if not DNS_LABEL.fullmatch(value):
            raise argparse.ArgumentTypeError(
                f"{value[:64]!r} is not a {what}: a DNS label, a-z, 0-9 and '-', at most 63 characters "
                f"(e.g. {example})"
            )
        return value

    return label


# A Kuma mesh or zone name, as the token issuer requires them.
mesh_name = dns_label("mesh or zone name", "default")
kubernetes_namespace = dns_label("Kubernetes namespace", "kuma-system")


def token_id(value: str) -> str:
    """A token's jti as the issuer writes them; nothing that could split or join entries of Kuma's
    comma-separated revocation secret."""
    if not JTI.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value[:64]!r} is not a token id: 1 to 128 letters, digits, '.', '_' or '-' "
            "(e.g. the jti `dataplane-token` reports)"
        )
    return value


def table_name(value: str) -> str:
    """A DynamoDB table name, as DynamoDB allows it (the functions' settings use the same rule)."""
    if not TABLE_NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value[:64]!r} is not a DynamoDB table name: 3 to 255 letters, digits, '.', '_' or '-' "
            "(e.g. the stack output RevocationTableName)"
        )
    return value
