"""`kuma-iam serve`: the functions behind a local IAM-checking gateway, on the embedded AWS or a real one."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve", help="run the verifier locally, on the embedded AWS or a real account"
    )
    serve.add_argument("--aws", action="store_true", help="use the real AWS account of your credentials")
    serve.add_argument("--port", type=int, default=8080, help="port of the local HTTP gateway")
    serve.add_argument("--moto-port", type=int, default=5000, help="port of the embedded AWS")
    serve.add_argument("--host", default="127.0.0.1", help="address the embedded AWS listens on")
    serve.add_argument("--server-id", default="kuma-demo", help="the server id the local verifier expects")
    serve.add_argument("--functions", default="functions", help="folder holding the handlers")
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kuma_iam_cli.local.serve import serve  # the local stack pulls in moto: load it only here

    return serve(args)
