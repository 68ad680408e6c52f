"""What a command says when it cannot give an answer: one line on stderr and exit status 2 (main.py)."""

from __future__ import annotations


class CommandError(Exception):
    """The command could not do what was asked; `str(error)` tells the user what happened and what to do."""


class UsageError(CommandError):
    """The command line itself is wrong (unknown option, missing or malformed value)."""
