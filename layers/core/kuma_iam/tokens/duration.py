"""Go-style durations ("1h", "90m", "1h30m", "1.5h"), as Kuma and kumactl write token lifetimes."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

# One or more <number><unit> with no sign, space or exponent; Go's own units, µs in both spellings.
_PART = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<unit>ns|us|µs|μs|ms|s|m|h)", re.ASCII)
_WHOLE = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|μs|ms|s|m|h))+")
_NANOSECONDS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
MAX_TEXT = 32
# Go's limit (an int64 of nanoseconds, about 2562047h): Go refuses anything longer, and so do we, rather
# than overflow timedelta (an OverflowError would be a 500, not a message).
MAX_NANOSECONDS = 2**63 - 1


def parse_go_duration(text: str) -> timedelta:
    """The duration `text` names; ValueError naming the problem for anything else (a sign, a bare number,
    an unknown unit, spaces). Zero is a valid duration here: callers decide what is too short."""
    if len(text) > MAX_TEXT:
        raise ValueError(f"a duration is at most {MAX_TEXT} characters")
    if text.startswith(("-", "+")):
        raise ValueError("a duration has no sign: it must be positive, like 1h or 90m")
    if not _WHOLE.fullmatch(text):
        raise ValueError("not a duration like 1h, 90m or 1h30m (units ns, us, ms, s, m, h)")
    nanoseconds = sum(Decimal(part["number"]) * _NANOSECONDS[part["unit"]] for part in _PART.finditer(text))
    if nanoseconds > MAX_NANOSECONDS:
        raise ValueError("a duration is at most 2562047h (Go's limit)")
    # Whole microseconds: timedelta's resolution; a token's lifetime is counted in seconds anyway.
    return timedelta(microseconds=int(nanoseconds // 1000))


def format_go_duration(duration: timedelta) -> str:
    """The shortest Go-style spelling of a whole number of seconds: 3600 s -> "1h", 5400 s -> "1h30m"."""
    seconds = int(duration.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (
        (f"{hours}h" if hours else "")
        + (f"{minutes}m" if minutes else "")
        + (f"{seconds}s" if seconds else "")
    )
    return text or "0s"
