"""The kuma-iam command: sign an identity token, call the verifier, sweep roles for compliance, run the local
stack."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from kuma_iam import __version__
from kuma_iam_cli.commands import dataplane_token, events, policy, serve, sweep, token, tokens, verify

# Each subcommand is a module of kuma_iam_cli.commands with `register(subparsers)`.
COMMANDS = (token, verify, dataplane_token, tokens, serve, events, sweep, policy)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(args))


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="kuma-iam", description=__doc__)
    root.add_argument("--version", action="version", version=f"kuma-iam {__version__}")
    subcommands = root.add_subparsers(required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subcommands)
    return root


if __name__ == "__main__":
    raise SystemExit(main())
