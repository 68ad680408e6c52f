"""main()'s error discipline: whatever a subcommand raises becomes exit status 2 and one `kuma-iam:` line,
never a traceback and never 1 (the deny code); --debug adds the traceback."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from kuma_iam.errors import InvalidRequest
from kuma_iam_cli.commands import token
from kuma_iam_cli.errors import CommandError
from kuma_iam_cli.main import main

RAISED = [
    (CommandError("no world here"), "kuma-iam: no world here"),
    (InvalidRequest("token is not base64"), "kuma-iam: token is not base64"),
    (NoCredentialsError(), "kuma-iam: no AWS credentials found"),
    (
        ClientError({"Error": {"Code": "AccessDenied", "Message": "not you"}}, "GetRole"),
        "kuma-iam: AWS refused GetRole: AccessDenied: not you",
    ),
    (
        EndpointConnectionError(endpoint_url="https://iam.amazonaws.com/"),
        'kuma-iam: AWS SDK: Could not connect to the endpoint URL: "https://iam.amazonaws.com/"',
    ),
    (
        FileNotFoundError(2, "No such file or directory", "/tmp/nowhere"),
        "kuma-iam: /tmp/nowhere: No such file",
    ),
    (json.JSONDecodeError("Expecting value", '{"a": ', 6), "kuma-iam: unexpected JSONDecodeError"),
    (AttributeError("'NoneType' object has no attribute 'split'"), "kuma-iam: unexpected AttributeError"),
    (SystemExit(1), "kuma-iam: stopped with status 1"),
    (CommandError("first line\nsecond line"), "kuma-iam: first line second line"),
]


def _run_raising(error: BaseException, monkeypatch: pytest.MonkeyPatch, *flags: str) -> tuple[int, str, str]:
    def run(_: object) -> int:
        raise error

    monkeypatch.setattr(token, "run", run)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*flags, "token", "--server-id", "kuma-demo"])
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(("error", "message"), RAISED, ids=[type(error).__name__ for error, _ in RAISED])
def test_any_error_is_exit_2_and_one_line(
    error: BaseException, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a subcommand that fails with `error`
    # When kuma-iam runs it
    code, out, err = _run_raising(error, monkeypatch)

    # Then the exit status is 2, stderr is one line naming the problem, and there is no traceback
    assert (code, out) == (2, "")
    assert err.count("\n") == 1, err
    assert err.startswith(message), err
    assert "Traceback" not in err


def test_an_unexpected_error_says_it_is_a_bug_and_how_to_see_more(monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = _run_raising(AttributeError("boom"), monkeypatch)

    assert code == 2
    assert "a bug: run with --debug" in err


def test_debug_adds_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = _run_raising(AttributeError("boom"), monkeypatch, "--debug")

    assert code == 2
    assert err.startswith("Traceback")
    assert err.splitlines()[-1].startswith("kuma-iam: unexpected AttributeError: boom")


def test_ctrl_c_is_neither_an_answer_nor_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = _run_raising(KeyboardInterrupt(), monkeypatch)

    assert (code, out, err.strip()) == (130, "", "")
