"""Write a token for `kuma-dp run --dataplane-token-file`: mode 0600, and atomically, so that the proxy reads
the old token or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_token_file(path: Path, token: str) -> None:
    """A temporary file beside `path` (same filesystem), written and synced, then renamed over it."""
    folder = path.parent
    temporary = folder / f".{path.name}.{os.getpid()}.tmp"
    # O_EXCL: never write through a file (or a planted symlink) that already has that name.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(token)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    _sync_folder(folder)


def _sync_folder(folder: Path) -> None:
    """The rename itself survives a crash only once the folder is synced."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
