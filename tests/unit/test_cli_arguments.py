"""Every `kuma-iam` subcommand, as registered (so commands added later are covered too): bad arguments are
exit status 2 with one `kuma-iam:` line and no traceback; every subcommand and option explains itself."""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Callable, Iterator

import pytest

from kuma_iam_cli.arguments import account_id, role_name
from kuma_iam_cli.main import main, parser

# Candidates for a value an option's type refuses; each option gets the first its own type refuses.
_BAD_VALUES = ("", "not a valid value", "-1", "99999999", "\x7f")


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    (subparsers,) = [action for action in parser()._actions if isinstance(action, argparse._SubParsersAction)]
    return dict(subparsers.choices)


def _options(subcommand: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        action
        for action in subcommand._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction)
    ]


def _refused(action: argparse.Action, value: str) -> bool:
    if action.choices is not None:
        return value not in action.choices
    if action.type is None:
        return False
    try:
        action.type(value)  # type: ignore[operator]
    except (argparse.ArgumentTypeError, ValueError, TypeError):
        return True
    return False


def _bad_command_lines() -> Iterator[tuple[str, list[str]]]:
    for name, subcommand in _subcommands().items():
        yield f"{name}: unknown option", [name, "--no-such-option"]
        yield f"{name}: stray argument", [name, "stray-argument"]
        if any(action.required for action in _options(subcommand)):
            yield f"{name}: required options missing", [name]
        for action in _options(subcommand):
            if action.nargs == 0:
                continue
            refused = next((value for value in _BAD_VALUES if _refused(action, value)), None)
            if refused is not None:
                yield f"{name}: bad {action.option_strings[-1]}", [name, action.option_strings[-1], refused]
            yield f"{name}: {action.option_strings[-1]} without its value", [name, action.option_strings[-1]]


BAD_COMMAND_LINES = list(_bad_command_lines())


@pytest.mark.parametrize(("label", "argv"), BAD_COMMAND_LINES, ids=[label for label, _ in BAD_COMMAND_LINES])
def test_bad_arguments_exit_2_with_one_line_and_no_traceback(label: str, argv: list[str]) -> None:
    # Given a subcommand line with a bad argument
    out, err = io.StringIO(), io.StringIO()

    # When kuma-iam runs it
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)

    # Then it is an error (2, never the deny code 1), told in one line that says where to look
    assert code == 2, (label, err.getvalue())
    assert out.getvalue() == ""
    lines = err.getvalue().splitlines()
    assert len(lines) == 1, err.getvalue()
    assert lines[0].startswith("kuma-iam: ")
    assert f"kuma-iam {argv[0]} --help" in lines[0]
    assert "Traceback" not in err.getvalue()


def test_every_subcommand_is_covered() -> None:
    # Each registered subcommand has at least its unknown-option and stray-argument cases above
    covered = {argv[0] for _, argv in BAD_COMMAND_LINES}
    assert covered == set(_subcommands())
    assert {"token", "verify", "serve", "events", "sweep", "policy"} <= covered


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_subcommand_and_option_explains_itself(name: str) -> None:
    # Given a subcommand's parser and its --help text
    subcommand = _subcommands()[name]
    text = subcommand.format_help()

    # Then it has a description, every option has help, and every option with a default shows it
    assert subcommand.description, f"kuma-iam {name} has no description"
    for action in _options(subcommand):
        option = action.option_strings[-1]
        assert action.help, f"kuma-iam {name} {option} has no help"
        assert action.help != argparse.SUPPRESS, f"kuma-iam {name} {option} hides its help"
        if action.default not in (None, False, [], argparse.SUPPRESS):
            assert f"(default: {action.default})" in " ".join(text.split()), f"{name} {option}"


def test_help_and_version_exit_0() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--help"]) == 0
        assert main(["--version"]) == 0
        assert main(["verify", "--help"]) == 0
    assert "exit status" in out.getvalue()


def test_verify_help_gives_the_exit_codes_and_whose_credentials_it_needs() -> None:
    text = " ".join(_subcommands()["verify"].format_help().split())

    assert "0 allowed" in text
    assert "1 denied" in text
    assert "2 error" in text
    assert "AWS credentials" in text
    assert "control plane's" in text


@pytest.mark.parametrize(
    ("parse", "good", "bad"),
    [
        (account_id, ["111111111111"], ["", "12", "1111111111111", "11111111111a", "111111111111\n"]),
        (
            role_name,
            ["kuma-iam-compliance", "a+b=c,d.e@f_g", "r" * 64],
            ["", "no/such", "r" * 65, "has space", "kuma-iam\n"],
        ),
    ],
    ids=["account_id", "role_name"],
)
def test_account_and_role_arguments_take_what_iam_takes(
    parse: Callable[[str], str], good: list[str], bad: list[str]
) -> None:
    for value in good:
        assert parse(value) == value
    for value in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=r"\(e\.g\. "):
            parse(value)
