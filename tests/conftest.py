"""What every tier shares: a clock the test holds, and property tests without a speed target.

Nothing here reads the clock, picks a port or a path at import: a slow or loaded run (`make test-busy`)
must decide exactly as a quiet one. Time bounds in tests are generous "did not hang" ceilings; speed lives in
`make bench`.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from support.clock import ManualClock

# Hypothesis's default 200 ms deadline per example, and its health check on slow data generation, are speed
# targets: on a loaded machine they fail tests that are right. Tests may still set their own settings.
settings.register_profile("kuma-iam", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("kuma-iam")


@pytest.fixture
def clock() -> ManualClock:
    """A clock set to the wall clock when the test starts, that moves only when the test moves it."""
    return ManualClock()
