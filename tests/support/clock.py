"""Time in tests, read when it is used: never once at import or collection, where a slow run would age it.

A table row says "signed 6 minutes ahead" as an offset (`ahead(minutes=6)`), resolved against a clock when
its test runs. A `ManualClock` is a clock the test holds: hand it to code that takes `clock: Callable[[],
datetime]` (the verifier's `IdentityVerifier.clock`) and a decision about time is exact however slow the
machine; the `clock` fixture (tests/conftest.py) makes one per test, the integration tier's
`verifier_clock` gives it to the handler's verifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


def utc_now() -> datetime:
    """The wall clock, now: call it where the time is used."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class FromNow:
    """A time as an offset from whatever "now" it is resolved against: a row's "16 minutes ago" stays true
    however late in the run the row comes."""

    offset: timedelta

    def of(self, now: datetime) -> datetime:
        return now + self.offset


def ago(**units: float) -> FromNow:
    """`ago(minutes=16)`: that long before the moment it is resolved against."""
    return FromNow(-timedelta(**units))


def ahead(**units: float) -> FromNow:
    """`ahead(minutes=6)`: that long after the moment it is resolved against."""
    return FromNow(timedelta(**units))


class ManualClock:
    """A clock that reads the wall clock once, when it is made (in a test, not at import), and then moves
    only when the test moves it. Calling it gives the time, as `datetime.now(UTC)` would."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start if start is not None else utc_now()

    def __call__(self) -> datetime:
        return self._now

    def set(self, at: datetime) -> None:
        self._now = at

    def advance(self, by: timedelta) -> None:
        self._now += by

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"
