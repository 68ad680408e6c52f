"""The kuma-iam command: sign an identity token, call the verifier, exchange the identity for a Kuma token and
manage issued tokens, sweep roles for compliance, run the local stack.

Exit status, for every subcommand: 0 and 1 are answers (for `verify`: allowed, denied; for `dataplane-token`:
token written, denied; for `tokens validate`: valid, invalid; for `sweep`: clean, findings); 2 is an error,
told in one line on stderr that starts with `kuma-iam:`. No error ends in a traceback (`--debug` adds it):
a script that reads the exit status must never take a crash for an answer.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from kuma_iam import __version__
from kuma_iam.errors import KumaIamError
from kuma_iam_cli.commands import dataplane_token, events, policy, serve, sweep, token, tokens, verify
from kuma_iam_cli.errors import CommandError, UsageError

# Each subcommand is a module of kuma_iam_cli.commands with `register(subparsers)`; its parser's `run`
# returns 0 or 1 for an answer and raises CommandError (or lets any other error out) for everything else.
COMMANDS = (token, verify, dataplane_token, tokens, serve, events, sweep, policy)

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl-C


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions keep their line breaks; every option with a default says which."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if text is None or "%(default)" in text or action.default in (None, False, [], argparse.SUPPRESS):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)"
        return text


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors become a UsageError, so main() reports them like any error."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def parser() -> argparse.ArgumentParser:
    root = CommandParser(prog="kuma-iam", description=__doc__)
    root.add_argument("--version", action="version", version=f"kuma-iam {__version__}")
    root.add_argument("--debug", action="store_true", help="on an error, print the Python traceback too")
    subcommands = root.add_subparsers(
        required=True, dest="command", metavar="COMMAND", parser_class=CommandParser, title="commands"
    )
    for command in COMMANDS:
        command.register(subcommands)
    _finish(subcommands)
    return root


def _finish[P: argparse.ArgumentParser](subcommands: argparse._SubParsersAction[P]) -> None:
    """Every subcommand, and every action of one (`tokens revoke`), explains itself and knows its name."""
    summaries = {choice.dest: choice.help for choice in subcommands._choices_actions}
    for name, subparser in subcommands.choices.items():
        # A subcommand registered without a description still explains itself in `kuma-iam <name> --help`.
        subparser.description = subparser.description or summaries.get(name)
        # The innermost one's default wins: a usage error names `kuma-iam tokens revoke`, not `tokens`.
        subparser.set_defaults(command_prog=subparser.prog)
        for action in subparser._actions:
            if isinstance(action, argparse._SubParsersAction):
                _finish(action)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parse(parser(), argv)
    except UsageError as error:
        return _report(error)
    except SystemExit as done:  # --help and --version end here, having printed what was asked
        return 0 if done.code is None else int(done.code) if isinstance(done.code, int) else EXIT_ERROR
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CommandError, KumaIamError) as error:
        return _report(error, debug=args.debug)
    except NoCredentialsError as error:
        return _report(error, "no AWS credentials found", debug=args.debug)
    except ClientError as error:
        details = error.response.get("Error", {})
        message = f"AWS refused {error.operation_name}: {details.get('Code')}: {details.get('Message')}"
        return _report(error, message, debug=args.debug)
    except BotoCoreError as error:
        return _report(error, f"AWS SDK: {error}", debug=args.debug)
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        return _report(error, f"{where}{error.strerror or error}", debug=args.debug)
    except SystemExit as stopped:  # a library gave up (werkzeug does on a busy port): still not an answer
        if stopped.code in (None, 0):
            return 0
        return _report(stopped, f"stopped with status {stopped.code}", debug=args.debug)
    # The last line of defence: an uncaught exception would exit 1, which scripts read as a deny.
    except Exception as error:  # noqa: BLE001
        message = f"unexpected {type(error).__name__}: {error} (a bug: run with --debug and report it)"
        return _report(error, message, debug=args.debug)


def _parse(root: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args, unrecognized = root.parse_known_args(argv)
    if unrecognized:  # named against the subcommand, whose --help lists what it takes
        raise UsageError(
            f"unrecognized arguments: {' '.join(unrecognized)} (see '{args.command_prog} --help')"
        )
    return args


def _report(error: BaseException, message: str | None = None, *, debug: bool = False) -> int:
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    text = " ".join((message or str(error)).split())  # one line, whatever the message held
    print(f"kuma-iam: {text}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
