"""Keep a token file fresh: renew at two thirds of each token's lifetime, and ride out an issuer that
throttles or is down with capped, jittered back-off, the last good token staying in place meanwhile."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kuma_iam_cli.issuer_client import Issued, Unavailable

RENEW_AT = 2 / 3
MAX_BACKOFF_SECONDS = 60.0
MIN_WAIT_SECONDS = 1.0


def renew_after(issued: Issued, received_at: datetime) -> float:
    """Seconds from `received_at` until the renewal: two thirds of the lifetime left at that moment."""
    lifetime = (issued.expires_at - received_at).total_seconds()
    return max(MIN_WAIT_SECONDS, lifetime * RENEW_AT)


@dataclass
class Renewal:
    """`fetch` asks the issuer; `write` puts the token in place; `wait(seconds)` sleeps and says True when
    asked to stop. Denied and Refused from `fetch` end it; Unavailable is retried."""

    fetch: Callable[[], Issued]
    write: Callable[[Issued], None]
    wait: Callable[[float], bool]
    report: Callable[[str], None]
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    monotonic: Callable[[], float] = field(default=time.monotonic)
    jitter: Callable[[], float] = field(default=random.random)

    def obtain(self, *, retry_for: float | None) -> Issued | None:
        """A token, retrying for at most `retry_for` seconds (None: until stopped); None when stopped."""
        give_up_at = None if retry_for is None else self.monotonic() + retry_for
        failures = 0
        while True:
            try:
                return self.fetch()
            except Unavailable as unavailable:
                failures += 1
                delay = self.backoff(failures, unavailable.retry_after)
                if give_up_at is not None and self.monotonic() + delay > give_up_at:
                    raise
                self.report(f"{unavailable}; trying again in {delay:.1f}s")
                if self.wait(delay):
                    return None

    def backoff(self, failures: int, retry_after: float | None) -> float:
        ceiling = min(MAX_BACKOFF_SECONDS, 2.0 ** (failures - 1))
        # Half fixed, half random: many tasks started together do not retry in step.
        delay = ceiling / 2 + self.jitter() * ceiling / 2
        return max(delay, retry_after or 0.0)

    def once(self, *, retry_for: float) -> Issued | None:
        """The first token, written; None when stopped while waiting to retry."""
        issued = self.obtain(retry_for=retry_for)
        if issued is not None:
            self.write(issued)
        return issued

    def keep_fresh(self, first: Issued) -> None:
        """Renew `first` and every token after it until stopped."""
        issued, received_at = first, self.clock()
        while True:
            if self.wait(renew_after(issued, received_at)):
                return
            renewed = self.obtain(retry_for=None)
            if renewed is None:
                return
            self.write(renewed)
            issued, received_at = renewed, self.clock()
