"""`kuma-iam verify`: the control plane's side, a SigV4-signed call to the verifier API."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request

import boto3

from kuma_iam_cli.signer import sign_api_call


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    verify.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
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
