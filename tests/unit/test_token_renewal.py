"""`kuma-iam dataplane-token`: the token file is replaced whole with mode 0600, renewals come at two thirds
of each lifetime, and an issuer that throttles or is down is retried with capped back-off, never given up on
while --refresh runs."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kuma_iam_cli.issuer_client import Denied, Issued, Unavailable
from kuma_iam_cli.renewal import MAX_BACKOFF_SECONDS, Renewal, renew_after
from kuma_iam_cli.token_file import write_token_file

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


# --- the file ---------------------------------------------------------------------------------------------


def test_the_token_file_is_written_whole_with_mode_0600(tmp_path: Path) -> None:
    # Given an older token file, readable by everyone
    path = tmp_path / "token"
    path.write_text("old-token")
    path.chmod(0o644)
    # When a new token is written
    write_token_file(path, "new.token.value")
    # Then the file holds exactly the new token, only its owner may read it, and nothing is left beside it
    assert path.read_text() == "new.token.value"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["token"]


def test_a_write_that_fails_leaves_the_old_token_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a good token in place, and a disk that fails while the next one is synced
    path = tmp_path / "token"
    write_token_file(path, "good.token.1")

    def full_disk(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    # When the next token is written
    with pytest.raises(OSError, match="No space left"):
        write_token_file(path, "next.token.2")
    # Then the reader still finds the whole old token, and no half-written file remains
    assert path.read_text() == "good.token.1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["token"]


def test_a_planted_temporary_name_is_never_written_through(tmp_path: Path) -> None:
    # Given a symlink planted where the temporary file will be made, pointing elsewhere
    target = tmp_path / "elsewhere"
    target.write_text("untouched")
    (tmp_path / f".token.{os.getpid()}.tmp").symlink_to(target)
    # When the token is written
    with pytest.raises(FileExistsError):
        write_token_file(tmp_path / "token", "a.b.c")
    # Then the symlink's target is untouched
    assert target.read_text() == "untouched"


# --- the schedule ----------------------------------------------------------------------------------------


def issued(expires_in: timedelta, jti: str = "j1") -> Issued:
    return Issued(token=f"h.{jti}.s", kid="1", jti=jti, expires_at=NOW + expires_in)


@pytest.mark.parametrize(
    ("lifetime", "renew_in"),
    [
        (timedelta(hours=1), 2400.0),
        (timedelta(minutes=90), 3600.0),
        (timedelta(hours=24), 57600.0),
        (timedelta(seconds=1), 1.0),
    ],
)
def test_renewal_comes_at_two_thirds_of_the_lifetime(lifetime: timedelta, renew_in: float) -> None:
    assert renew_after(issued(lifetime), NOW) == pytest.approx(renew_in)


class Script:
    """fetch() answers in turn; every wait is recorded and returns at once (True ends the run)."""

    def __init__(self, *answers: Issued | Exception, stop_after_waits: int = 100) -> None:
        self.answers = list(answers)
        self.waits: list[float] = []
        self.written: list[str] = []
        self.reports: list[str] = []
        self.stop_after_waits = stop_after_waits
        self.elapsed = 0.0

    def fetch(self) -> Issued:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.elapsed += seconds
        return len(self.waits) >= self.stop_after_waits

    def renewal(self, jitter: Callable[[], float] = lambda: 0.5) -> Renewal:
        return Renewal(
            fetch=self.fetch,
            write=lambda token: self.written.append(token.jti),
            wait=self.wait,
            report=self.reports.append,
            clock=lambda: NOW,
            monotonic=lambda: self.elapsed,
            jitter=jitter,
        )


def test_refresh_renews_before_each_expiry_and_rides_out_an_unavailable_issuer() -> None:
    # Given an issuer that answers, then throttles (Retry-After 5), is down, and answers again
    script = Script(
        issued(timedelta(hours=1), "j1"),
        Unavailable("HTTP 429", retry_after=5),
        Unavailable("cannot reach"),
        issued(timedelta(hours=1), "j2"),
        issued(timedelta(hours=1), "j3"),
        stop_after_waits=5,
    )
    renewal = script.renewal()
    # When the first token is written and kept fresh until stopped
    first = renewal.once(retry_for=60)
    assert first is not None
    renewal.keep_fresh(first)
    # Then each renewal waited two thirds of the hour, the throttled try its Retry-After, the next a back-off
    assert script.written == ["j1", "j2", "j3"]
    assert script.waits == [2400.0, 5.0, 1.5, 2400.0, 2400.0]
    assert [line.split(";")[0] for line in script.reports] == ["HTTP 429", "cannot reach"]


def test_back_off_doubles_to_a_cap_with_jitter() -> None:
    renewal = Script().renewal(jitter=lambda: 1.0)
    assert [renewal.backoff(n, None) for n in (1, 2, 3, 4, 5, 6, 7, 8, 20)] == [
        1,
        2,
        4,
        8,
        16,
        32,
        60,
        60,
        60,
    ]
    low = Script().renewal(jitter=lambda: 0.0)
    assert [low.backoff(n, None) for n in (1, 3, 20)] == [0.5, 2, MAX_BACKOFF_SECONDS / 2]


def test_the_first_token_gives_up_after_retry_for() -> None:
    # Given an issuer that stays down
    script = Script(*[Unavailable("HTTP 503") for _ in range(20)])
    # Then the first token is given up on once the next wait would pass 10 s, with the last reason
    with pytest.raises(Unavailable, match="HTTP 503"):
        script.renewal().once(retry_for=10)
    assert sum(script.waits) <= 10
    assert script.written == []


def test_a_denial_ends_the_refresh_at_once() -> None:
    # Given a role that lost its right between two renewals
    script = Script(issued(timedelta(hours=1)), Denied("denied (mesh_mismatch): no"), stop_after_waits=3)
    renewal = script.renewal()
    first = renewal.once(retry_for=60)
    assert first is not None
    # Then the refresh stops with the denial, not retrying it, the last good token left in place
    with pytest.raises(Denied):
        renewal.keep_fresh(first)
    assert script.written == ["j1"]
    assert script.waits == [2400.0]


def test_a_stop_while_waiting_ends_quietly() -> None:
    script = Script(Unavailable("HTTP 503"), stop_after_waits=1)
    assert script.renewal().once(retry_for=60) is None
    assert script.written == []
