"""Local TCP ports for servers a test starts, and for calls that must find nobody listening."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now, for a server the test starts at once.

    Call it where the server starts, never at import: another process may take the port in between.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def refusing_port() -> Iterator[int]:
    """A port on 127.0.0.1 held bound but never listening while the block runs: a connection to it is
    refused at once, and no other process (a parallel test run) can start listening on it meanwhile."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])
