"""Listening sockets for the local servers, taken before anything starts: a busy port is an error at once,
naming the option that moves it, and no other program can take the port between the check and the start."""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from kuma_iam_cli.errors import CommandError

_BACKLOG = 128
_SUGGESTION_RANGE = 50


@dataclass(frozen=True)
class WantedPort:
    host: str
    port: int
    option: str  # the command-line option that picks another, e.g. "--moto-port"
    serves: str  # what listens there, for the message, e.g. "the embedded AWS"


def listen_on(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) and listening; port 0 takes any free one. Raises OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As every Python server does: a port whose old connections linger in TIME_WAIT is free to reuse.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(_BACKLOG)
    except OSError:
        listener.close()
        raise
    return listener


def take_ports(wanted: Sequence[WantedPort]) -> list[socket.socket]:
    """A listening socket for each wanted port, or none at all and a CommandError naming every problem."""
    taken: list[socket.socket] = []
    problems: list[str] = []
    for port in wanted:
        try:
            taken.append(listen_on(port.host, port.port))
        except OSError as error:
            problems.append(_problem(port, error, wanted))
    if problems:
        for listener in taken:
            listener.close()
        raise CommandError("; ".join(problems))
    return taken


def _problem(port: WantedPort, error: OSError, wanted: Sequence[WantedPort]) -> str:
    if error.errno == errno.EADDRINUSE:
        spare = _free_port_after(port, {other.port for other in wanted})
        hint = f", e.g. {port.option} {spare}" if spare is not None else ""
        return f"port {port.port} ({port.serves}) is in use: pick another with {port.option}{hint}"
    reason = error.strerror or error
    return f"cannot listen on {port.host}:{port.port} ({port.serves}, {port.option}): {reason}"


def _free_port_after(port: WantedPort, avoid: set[int]) -> int | None:
    for candidate in range(port.port + 1, min(port.port + _SUGGESTION_RANGE, 65535) + 1):
        if candidate in avoid:
            continue
        with contextlib.suppress(OSError), listen_on(port.host, candidate):
            return candidate
    return None
