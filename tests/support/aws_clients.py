"""Clients on the embedded AWS as one of the demo world's principals, and the task roles a test makes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ClientFactory = Callable[[str, str], Any]


@dataclass(frozen=True)
class TaskRole:
    account: str
    name: str
    arn: str
    role_id: str
