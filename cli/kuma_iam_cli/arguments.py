"""Argument types the subcommands share: each refuses a bad value at parse time with a message that says
what a good one looks like (argparse turns it into `kuma-iam: argument --x: ...`, exit status 2)."""

from __future__ import annotations

import argparse
import re
from urllib.parse import urlsplit

from kuma_iam.aws import ACCOUNT_ID
from kuma_iam.config import ROLE_NAME
from kuma_iam.identity.checks import SERVER_ID

_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}|[0-9A-Fa-f:.]{2,45}")  # a name, an IPv4 or an IPv6 address


def server_id(value: str) -> str:
    """A server id the verifier accepts (its KUMA_IAM_SERVER_ID rule); a token for any other is void."""
    if not SERVER_ID.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a server id the verifier accepts: 1 to 256 printable ASCII characters, "
            "no spaces (e.g. kuma-demo)"
        )
    return value


def http_url(value: str) -> str:
    """An absolute http(s) URL with a host, e.g. http://127.0.0.1:8080/v1/verify."""
    parts = urlsplit(value)
    example = "e.g. http://127.0.0.1:8080/v1/verify"
    if not value:
        raise argparse.ArgumentTypeError(f"is empty: give the verifier's URL, {example}")
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise argparse.ArgumentTypeError(f"{value!r} needs http:// or https:// and a host, {example}")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} has an invalid port, {example}") from None
    if not _HOST.fullmatch(parts.hostname or ""):
        raise argparse.ArgumentTypeError(f"{value!r} has no valid host, {example}")
    return value


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
