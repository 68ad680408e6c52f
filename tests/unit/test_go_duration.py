"""validFor and KUMA_IAM_TOKEN_MAX_VALID_FOR are Go durations, parsed strictly: what Go takes, no more."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kuma_iam.tokens.duration import format_go_duration, parse_go_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", timedelta(hours=1)),
        ("90m", timedelta(minutes=90)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(minutes=90)),
        ("24h", timedelta(days=1)),
        ("3600s", timedelta(hours=1)),
        ("1h0m0s", timedelta(hours=1)),
        ("2h45m30s", timedelta(hours=2, minutes=45, seconds=30)),
        ("1500ms", timedelta(seconds=1.5)),
        ("1000000us", timedelta(seconds=1)),
        ("1000000µs", timedelta(seconds=1)),
        ("60000000000ns", timedelta(minutes=1)),
        ("0s", timedelta(0)),
        ("8760h", timedelta(days=365)),
        ("2562047h", timedelta(hours=2562047)),  # Go's largest whole hour
        ("12h12h", timedelta(days=1)),  # Go adds repeated units up
    ],
)
def test_go_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_go_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-1h", "no sign"),
        ("+1h", "no sign"),
        ("3600", "not a duration"),
        ("", "not a duration"),
        ("1d", "not a duration"),
        ("1H", "not a duration"),
        ("1 h", "not a duration"),
        (" 1h", "not a duration"),
        ("1h ", "not a duration"),
        ("1.h", "not a duration"),
        (".5h", "not a duration"),
        ("1e3s", "not a duration"),
        ("0x10m", "not a duration"),
        ("1h-30m", "not a duration"),
        ("h", "not a duration"),
        ("\u0661h", "not a duration"),  # an Arabic-Indic digit one: Go reads ASCII digits only
        ("1" * 40 + "h", "at most 32 characters"),
        ("inf h", "not a duration"),
        ("NaNh", "not a duration"),
        # Past Go's int64 of nanoseconds: refused as Go refuses it, not an OverflowError (a 500)
        ("2562048h", "at most 2562047h"),
        ("99999999999h", "at most 2562047h"),
        ("9999999999999999999999999999h", "at most 2562047h"),
        ("2562047h47m16.854775808s", "at most 2562047h"),
    ],
)
def test_anything_else_is_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(3600, "1h"), (5400, "1h30m"), (86400, "24h"), (61, "1m1s"), (0, "0s")]
)
def test_format_is_the_short_go_spelling(seconds: int, text: str) -> None:
    assert format_go_duration(timedelta(seconds=seconds)) == text
    assert parse_go_duration(text) == timedelta(seconds=seconds)
