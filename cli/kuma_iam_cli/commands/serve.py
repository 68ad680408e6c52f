"""`kuma-iam serve`: the functions behind a local IAM-checking gateway, on the embedded AWS or a real one."""

from __future__ import annotations

import argparse

from kuma_iam_cli.arguments import port, server_id
from kuma_iam_cli.local.state import DEFAULT_MOTO_PORT, DEFAULT_STATE_ROOT

DESCRIPTION = """\
Run the verifier handler behind a local API gateway that checks SigV4 signatures as API Gateway's IAM
authorization does. By default on the embedded AWS (moto server) with a seeded demo world, printing
commands to try each answer, and with the tag-compliance handler behind a local EventBridge route (POST
/local/eventbridge) and demo roles that break its rules; with --aws, the verifier on the account of your own
credentials.

exit status: 0 after Ctrl-C; 2 if it cannot start (a port in use, no handler folder, no credentials)."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the verifier (and tag compliance) locally, on the embedded AWS or a real account",
        description=DESCRIPTION,
    )
    serve.add_argument("--aws", action="store_true", help="use the real AWS account of your credentials")
    serve.add_argument("--port", type=port, default=8080, help="port of the local HTTP gateway (0: any free)")
    serve.add_argument(
        "--moto-port", type=port, default=DEFAULT_MOTO_PORT, help="port of the embedded AWS (0: any free)"
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address the embedded AWS listens on (0.0.0.0 for containers)"
    )
    serve.add_argument(
        "--server-id", type=server_id, default="kuma-demo", help="the server id the local verifier expects"
    )
    serve.add_argument("--functions", default="functions", help="folder holding the handlers")
    serve.add_argument(
        "--state-dir",
        default=str(DEFAULT_STATE_ROOT),
        help="where this stack keeps its world, credential files and function log: <state-dir>/<moto-port>/",
    )
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kuma_iam_cli.local.serve import serve  # the local stack pulls in moto: load it only here

    return serve(args)
