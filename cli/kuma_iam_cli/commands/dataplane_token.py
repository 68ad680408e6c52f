"""`kuma-iam dataplane-token`: the sidecar's side of the exchange, a Kuma token in a file for
`kuma-dp run --dataplane-token-file`, renewed before it expires with `--refresh`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from kuma_iam.tokens.duration import parse_go_duration
from kuma_iam_cli.aws_session import aws_session
from kuma_iam_cli.issuer_client import Denied, Issued, IssuerClient, Refused, TokenAsk, Unavailable
from kuma_iam_cli.renewal import Renewal
from kuma_iam_cli.token_file import write_token_file

EXIT_OK, EXIT_DENIED, EXIT_ERROR = 0, 1, 2


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "dataplane-token",
        help="exchange the task role's identity for a Kuma token and write it to a file",
        description=__doc__,
    )
    command.add_argument("--url", required=True, help="the issuer's endpoint, e.g. https://…/v1/tokens")
    command.add_argument("--mesh", help="the Dataplane's mesh (required for a dataplane)")
    command.add_argument("--name", required=True, help="the Dataplane's name")
    command.add_argument("--service", action="append", default=[], help="its kuma.io/service (repeatable)")
    command.add_argument("--workload")
    command.add_argument("--type", choices=("dataplane", "ingress", "egress"), default="dataplane")
    command.add_argument("--zone", help="for a zone ingress or egress: the zone the issuer signs for")
    command.add_argument("--valid-for", help="token lifetime as a Go duration (default: the issuer's, 1h)")
    command.add_argument("--output", required=True, type=Path, help="the token file (written with mode 0600)")
    command.add_argument(
        "--refresh", action="store_true", help="keep running; renew at two thirds of each token's lifetime"
    )
    command.add_argument(
        "--server-id",
        default=os.environ.get("KUMA_IAM_SERVER_ID"),
        help="the issuer's X-Kuma-AWS-IAM-Server-ID (default: $KUMA_IAM_SERVER_ID)",
    )
    command.add_argument(
        "--region", help="region of the API (default: from an execute-api URL, else the SDK's)"
    )
    command.add_argument(
        "--retry-for",
        default="1m",
        help="how long to retry a throttled or unavailable issuer for the first token (Go duration)",
    )
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.server_id:
        return _fail("--server-id (or KUMA_IAM_SERVER_ID) is required: the issuer's server id")
    if args.type == "dataplane" and not args.mesh:
        return _fail("--mesh is required for a dataplane")
    if not args.output.parent.is_dir():
        return _fail(f"{args.output.parent} is not a folder")
    try:
        retry_for = parse_go_duration(args.retry_for).total_seconds()
    except ValueError as error:
        return _fail(f"--retry-for: {error}")
    ask = TokenAsk(
        url=args.url,
        server_id=args.server_id,
        mesh=args.mesh,
        name=args.name,
        services=tuple(args.service),
        workload=args.workload,
        proxy_type=args.type,
        zone=args.zone,
        valid_for=args.valid_for,
    )
    client = IssuerClient(aws_session(), api_region=args.region)
    stop = threading.Event()
    _stop_on_signals(stop)
    renewal = Renewal(
        fetch=lambda: client.fetch(ask),
        write=lambda issued: _write(args.output, issued),
        wait=stop.wait,
        report=_report,
    )
    try:
        first = renewal.once(retry_for=retry_for)
        if first is None:
            return _fail("stopped before the first token came")
        if args.refresh:
            renewal.keep_fresh(first)
    except Denied as denied:
        return _fail(str(denied), EXIT_DENIED)
    except (Refused, Unavailable) as error:
        return _fail(str(error))
    except OSError as error:
        return _fail(f"cannot write {args.output}: {error.strerror or error}")
    return EXIT_OK


def _write(path: Path, issued: Issued) -> None:
    write_token_file(path, issued.token)
    expires = issued.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    _report(f"wrote {path}: kid {issued.kid}, jti {issued.jti}, expires {expires}")


def _stop_on_signals(stop: threading.Event) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handle)


def _report(message: str) -> None:
    print(f"kuma-iam: {message}", file=sys.stderr, flush=True)


def _fail(message: str, code: int = EXIT_ERROR) -> int:
    _report(message)
    return code
