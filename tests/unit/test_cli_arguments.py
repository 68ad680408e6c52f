"""Every `kuma-iam` subcommand, and every action of one (`tokens revoke`), as registered (so commands added
later are covered too): bad arguments are exit status 2 with one `kuma-iam:` line and no traceback; every
subcommand and option explains itself."""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Callable, Iterator

import pytest

from kuma_iam_cli.arguments import (
    account_id,
    go_duration,
    kubernetes_namespace,
    mesh_name,
    role_name,
    table_name,
    token_id,
)
from kuma_iam_cli.main import main, parser

# Candidates for a value an option's type refuses; each option gets the first its own type refuses.
_BAD_VALUES = ("", "not a valid value", "-1", "99999999", "\x7f")


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    """ "<name>" -> its parser, and "<name> <action>" for a subcommand with actions of its own."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(command: argparse.ArgumentParser, prefix: str) -> None:
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, subcommand in action.choices.items():
                    found[f"{prefix}{name}"] = subcommand
                    walk(subcommand, f"{prefix}{name} ")

    walk(parser(), "")
    return found


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
        words = name.split()
        yield f"{name}: unknown option", [*words, "--no-such-option"]
        yield f"{name}: stray argument", [*words, "stray-argument"]
        if any(action.required for action in _options(subcommand)):
            yield f"{name}: required options missing", words
        for action in _options(subcommand):
            if action.nargs == 0:
                continue
            option = action.option_strings[-1]
            refused = next((value for value in _BAD_VALUES if _refused(action, value)), None)
            if refused is not None:
                yield f"{name}: bad {option}", [*words, option, refused]
            yield f"{name}: {option} without its value", [*words, option]


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
    command = label.split(":")[0]
    assert f"kuma-iam {command} --help" in lines[0]
    assert "Traceback" not in err.getvalue()


def test_every_subcommand_is_covered() -> None:
    # Each registered subcommand has at least its unknown-option and stray-argument cases above
    covered = {label.split(":")[0] for label, _ in BAD_COMMAND_LINES}
    assert covered == set(_subcommands())
    assert {"token", "verify", "serve", "events", "sweep", "policy", "dataplane-token", "tokens"} <= covered
    assert {"tokens revoke", "tokens revocations", "tokens keys", "tokens validate"} <= covered


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


@pytest.mark.parametrize(
    ("name", "answers"),
    [
        ("verify", ["0 allowed", "1 denied"]),
        ("dataplane-token", ["0 a token was written", "1 denied"]),
        ("tokens validate", ["0 valid", "1 invalid"]),
        ("sweep", ["0 clean", "1 findings"]),
    ],
)
def test_a_command_that_answers_gives_its_exit_codes(name: str, answers: list[str]) -> None:
    text = " ".join(_subcommands()[name].format_help().split())

    for answer in answers:
        assert answer in text
    assert "2 error" in text


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
        (go_duration, ["1h", "90m", "1h30m", "0s"], ["", "1", "-1h", "1 h", "forever", "1d"]),
        (mesh_name, ["default", "zone-1", "m" * 63], ["", "Default", "-x", "a_b", "m" * 64, "default\n"]),
        (kubernetes_namespace, ["kuma-system"], ["", "Kuma", "kuma.system"]),
        (token_id, ["6f1c-4b2e.a_b", "j" * 128], ["", "a,b", "a b", "j" * 129, "jti\n"]),
        (table_name, ["kuma-iam-token-revocations", "a.b_c"], ["", "ab", "has space", "t" * 256]),
    ],
    ids=[
        "account_id",
        "role_name",
        "go_duration",
        "mesh_name",
        "kubernetes_namespace",
        "token_id",
        "table_name",
    ],
)
def test_argument_types_take_what_their_service_takes(
    parse: Callable[[str], str], good: list[str], bad: list[str]
) -> None:
    for value in good:
        assert parse(value) == value
    for value in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=r"\(e\.g\. "):
            parse(value)


DURATION_OPTIONS = [
    (name, action.option_strings[-1])
    for name, subcommand in _subcommands().items()
    for action in _options(subcommand)
    if action.type is go_duration
]


@pytest.mark.parametrize(("name", "option"), DURATION_OPTIONS)
def test_a_duration_past_gos_limit_is_a_usage_error_not_a_traceback(name: str, option: str) -> None:
    # Given a duration too long for a Go duration (and for Python's timedelta)
    out, err = io.StringIO(), io.StringIO()
    # When an option taking a duration is given it
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*name.split(), option, "99999999999h"])
    # Then it is refused as any bad argument is: exit 2, one line naming the limit
    assert code == 2, err.getvalue()
    assert err.getvalue().count("\n") == 1, err.getvalue()
    assert "at most 2562047h" in err.getvalue()
