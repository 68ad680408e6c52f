"""The kuma-iam command: sign an identity token, call the verifier, run the local stack."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

import boto3

from kuma_iam import __version__
from kuma_iam.identity.signer import sign_api_call, sign_identity_request
from kuma_iam.identity.token import encode_compact, encode_vault


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.run(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kuma-iam", description=__doc__)
    parser.add_argument("--version", action="version", version=f"kuma-iam {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    token = commands.add_parser(
        "token", help="print an identity token signed with the default AWS credentials"
    )
    token.add_argument("--server-id", required=True, help="the control plane's X-Kuma-AWS-IAM-Server-ID")
    token.add_argument("--region", help="STS region to sign for (default: the SDK's region, else us-east-1)")
    token.add_argument("--format", choices=("compact", "vault"), default="compact")
    token.set_defaults(run=_token)

    verify = commands.add_parser("verify", help="ask a verifier API (IAM-signed) to decide on a token")
    verify.add_argument("--url", required=True, help="the verify endpoint, e.g. https://…/v1/verify")
    verify.add_argument("--token", required=True, help="compact token, or a Vault login object as JSON")
    verify.add_argument("--type", choices=("dataplane", "ingress", "egress"), default="dataplane")
    verify.add_argument("--mesh", help="the claimed mesh (required for a dataplane)")
    verify.add_argument(
        "--service", action="append", default=[], help="a claimed kuma.io/service (repeatable)"
    )
    verify.add_argument("--workload")
    verify.add_argument("--name", default="cli-dataplane", help="the Dataplane's name")
    verify.add_argument("--region", help="region of the API, for the SigV4 signature")
    verify.set_defaults(run=_verify)

    serve = commands.add_parser(
        "serve", help="run the verifier locally, on the embedded AWS or a real account"
    )
    serve.add_argument("--aws", action="store_true", help="use the real AWS account of your credentials")
    serve.add_argument("--port", type=int, default=8080, help="port of the local HTTP gateway")
    serve.add_argument("--moto-port", type=int, default=5000, help="port of the embedded AWS")
    serve.add_argument("--host", default="127.0.0.1", help="address the embedded AWS listens on")
    serve.add_argument("--server-id", default="kuma-demo", help="the server id the local verifier expects")
    serve.add_argument("--functions", default="functions", help="folder holding the handlers")
    serve.set_defaults(run=_serve)

    events = commands.add_parser("events", help="re-sign the sample events against a running `serve`")
    events.add_argument("--world", default=".local/world.json", help="the state file `serve` wrote")
    events.add_argument(
        "--out", default="events", help="folder to write <function>/<case>.json and env.json into"
    )
    events.add_argument(
        "--container-endpoint",
        help="where a `sam local` container reaches the embedded AWS (default: host.docker.internal)",
    )
    events.add_argument("--server-id", default="kuma-demo")
    events.set_defaults(run=_events)
    return parser


def _token(args: argparse.Namespace) -> int:
    session = boto3.Session(region_name=args.region)
    credentials = session.get_credentials()
    if credentials is None:
        print(
            "kuma-iam: no AWS credentials found (environment, profile, ECS or EC2 metadata)", file=sys.stderr
        )
        return 2
    region = args.region or session.region_name or "us-east-1"
    try:
        signed = sign_identity_request(
            credentials.get_frozen_credentials(), server_id=args.server_id, region=region
        )
    except ValueError as error:
        print(f"kuma-iam: {error}", file=sys.stderr)
        return 2
    print(encode_compact(signed) if args.format == "compact" else json.dumps(encode_vault(signed)))
    return 0


def _verify(args: argparse.Namespace) -> int:
    token: object = json.loads(args.token) if args.token.lstrip().startswith("{") else args.token
    dataplane: dict[str, object] = {"type": args.type, "mesh": args.mesh, "name": args.name}
    if args.service:
        dataplane["tags"] = {"kuma.io/service": args.service}
    if args.workload:
        dataplane["workload"] = args.workload
    body = json.dumps({"token": token, "dataplane": dataplane}).encode()

    session = boto3.Session(region_name=args.region)
    credentials = session.get_credentials()
    if credentials is None:
        print("kuma-iam: no AWS credentials found to sign the call to the verifier", file=sys.stderr)
        return 2
    headers = sign_api_call(
        credentials.get_frozen_credentials(),
        url=args.url,
        body=body,
        region=session.region_name or "us-east-1",
    )
    http_request = urllib.request.Request(  # noqa: S310 - the operator names the URL
        args.url, data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(http_request, timeout=15) as response:  # noqa: S310
            status, payload = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read().decode()
    except urllib.error.URLError as error:
        print(f"kuma-iam: cannot reach {args.url}: {error.reason}", file=sys.stderr)
        return 2
    print(f"HTTP {status} {payload}")
    if status != 200:
        return 2
    return 0 if json.loads(payload).get("allowed") is True else 1


def _serve(args: argparse.Namespace) -> int:
    from kuma_iam.local.serve import serve  # the local stack pulls in moto: load it only here

    return serve(args)


def _events(args: argparse.Namespace) -> int:
    from pathlib import Path
    from urllib.parse import urlsplit

    from kuma_iam.local.events import sam_env_vars, write_events
    from kuma_iam.local.seed import DemoWorld

    world_file = Path(args.world)
    if not world_file.is_file():
        print(
            f"kuma-iam: {world_file} not found: start `kuma-iam serve --host 0.0.0.0` first", file=sys.stderr
        )
        return 2
    world = DemoWorld.from_json(world_file.read_text())
    out = Path(args.out)
    written = write_events(world, out, server_id=args.server_id)
    endpoint = args.container_endpoint or f"http://host.docker.internal:{urlsplit(world.endpoint_url).port}"
    env_file = out / "env.json"
    env_file.write_text(
        json.dumps(sam_env_vars(world, endpoint_url=endpoint, server_id=args.server_id), indent=2)
    )
    for path in [*written, env_file]:
        print(path)
    print('for sam itself: eval "$(tools/sam-local/sam-env.sh)"', file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
