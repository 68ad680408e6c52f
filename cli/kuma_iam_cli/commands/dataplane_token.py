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

from botocore.credentials import ReadOnlyCredentials

from kuma_iam.tokens.duration import parse_go_duration
from kuma_iam_cli.arguments import api_url, go_duration, mesh_name, server_id
from kuma_iam_cli.aws_credentials import DEFAULT_REGION, default_credentials
from kuma_iam_cli.errors import CommandError
from kuma_iam_cli.issuer_client import Denied, Issued, IssuerClient, TokenAsk
from kuma_iam_cli.renewal import Renewal
from kuma_iam_cli.token_file import write_token_file

EXIT_OK, EXIT_DENIED = 0, 1
# In a running local stack's credentials folder: the backend task's session the local gateway admits as a
# caller (serve writes it), to suggest when no credentials are set.
ISSUER_CALLER_CREDENTIALS = "111111111111-backend-task-caller.env"
DESCRIPTION = """\
The sidecar's side of the token exchange: sign an identity token with the default AWS credentials (on ECS,
the task role's), send it to the token issuer (POST /v1/tokens, SigV4-signed for execute-api with the same
credentials: the issuer refuses a caller other than the identity's role) and write the Kuma token it
answers to --output, atomically and with mode 0600, for `kuma-dp run --dataplane-token-file`.

With --refresh it keeps running and renews the token at two thirds of each lifetime, riding out a throttled
or unavailable issuer with capped, jittered back-off (the last good token stays in place meanwhile), for
control planes with reloadable tokens; SIGTERM or Ctrl-C ends it cleanly, exit status 0.

exit status:
  0  a token was written (with --refresh: stopped by a signal)
  1  denied: the role's tags do not allow the token asked for (the line on stderr names the reason)
  2  error: bad arguments, no credentials, the issuer refused the request or could not be reached in
     --retry-for, the file could not be written; one line on stderr says which"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "dataplane-token",
        help="exchange the task role's identity for a Kuma token and write it to a file",
        description=DESCRIPTION,
    )
    command.add_argument(
        "--url",
        required=True,
        type=api_url("/v1/tokens"),
        help="the issuer's endpoint, e.g. https://…/v1/tokens",
    )
    command.add_argument("--mesh", type=mesh_name, help="the Dataplane's mesh (required for a dataplane)")
    command.add_argument("--name", required=True, help="the Dataplane's name")
    command.add_argument("--service", action="append", default=[], help="its kuma.io/service (repeatable)")
    command.add_argument("--workload", help="its workload (the role's kuma.io/workload must allow it)")
    command.add_argument(
        "--type",
        choices=("dataplane", "ingress", "egress"),
        default="dataplane",
        help="the proxy's type: a dataplane gets a dataplane token, a zone ingress or egress a zone token",
    )
    command.add_argument(
        "--zone", type=mesh_name, help="for a zone ingress or egress: the zone the issuer signs for"
    )
    command.add_argument(
        "--valid-for", type=go_duration, help="token lifetime as a Go duration (default: the issuer's, 1h)"
    )
    command.add_argument("--output", required=True, type=Path, help="the token file (written with mode 0600)")
    command.add_argument(
        "--refresh", action="store_true", help="keep running; renew at two thirds of each token's lifetime"
    )
    command.add_argument(
        "--server-id",
        type=server_id,
        default=os.environ.get("KUMA_IAM_SERVER_ID"),
        help="the issuer's X-Kuma-AWS-IAM-Server-ID (its KUMA_IAM_SERVER_ID); "
        "$KUMA_IAM_SERVER_ID if not given",
    )
    command.add_argument(
        "--region",
        help=f"region of the API (default: from an execute-api URL, else the SDK's, else {DEFAULT_REGION})",
    )
    command.add_argument(
        "--retry-for",
        type=go_duration,
        default="1m",
        help="how long to retry a throttled or unavailable issuer for the first token (Go duration)",
    )
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.server_id:
        raise CommandError("--server-id (or KUMA_IAM_SERVER_ID) is required: the issuer's server id")
    if args.type == "dataplane" and not args.mesh:
        raise CommandError("--mesh is required for a dataplane")
    if not args.output.parent.is_dir():
        raise CommandError(f"{args.output.parent.absolute()} is not a folder: --output names the token file")
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
    client = IssuerClient(_task_credentials, api_region=args.region)
    stop = threading.Event()
    _stop_on_signals(stop)
    renewal = Renewal(
        fetch=lambda: client.fetch(ask),
        write=lambda issued: _write(args.output, issued),
        wait=stop.wait,
        report=_report,
    )
    try:
        first = renewal.once(retry_for=parse_go_duration(args.retry_for).total_seconds())
        if first is None:
            raise CommandError("stopped before the first token came")
        if args.refresh:
            renewal.keep_fresh(first)
    except Denied as denied:  # an answer, not an error: the role may not have this token
        _report(str(denied))
        return EXIT_DENIED
    return EXIT_OK


def _task_credentials() -> tuple[ReadOnlyCredentials, str]:
    """Read anew for every call: on ECS the task role's credentials rotate while --refresh runs."""
    return default_credentials(
        None, purpose="sign the identity and the call to the issuer", local_file=ISSUER_CALLER_CREDENTIALS
    )


def _write(path: Path, issued: Issued) -> None:
    try:
        write_token_file(path, issued.token)
    except OSError as error:  # named by the file asked for, not by its temporary neighbour
        raise CommandError(f"cannot write {path}: {error.strerror or error}") from None
    expires = issued.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    _report(f"wrote {path}: kid {issued.kid}, jti {issued.jti}, expires {expires}")


def _stop_on_signals(stop: threading.Event) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handle)


def _report(message: str) -> None:
    """Progress and the denial, as one `kuma-iam:` line each on stderr (the token never leaves the file)."""
    print(f"kuma-iam: {message}", file=sys.stderr, flush=True)
