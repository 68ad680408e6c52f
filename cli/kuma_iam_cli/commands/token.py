"""`kuma-iam token`: the sidecar's side, an identity token signed with the default AWS credentials."""

from __future__ import annotations

import argparse
import json
import sys

import boto3
import botocore.session

from kuma_iam.identity.token import encode_compact, encode_vault
from kuma_iam_cli.signer import sign_identity_request


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = commands.add_parser(
        "token", help="print an identity token signed with the default AWS credentials"
    )
    token.add_argument("--server-id", required=True, help="the control plane's X-Kuma-AWS-IAM-Server-ID")
    token.add_argument("--region", help="STS region to sign for (default: the SDK's region, else us-east-1)")
    token.add_argument("--format", choices=("compact", "vault"), default="compact")
    token.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    sdk = botocore.session.Session()
    session = boto3.Session(botocore_session=sdk, region_name=args.region)
    credentials = session.get_credentials()
    if credentials is None:
        print(
            "kuma-iam: no AWS credentials found (environment, profile, ECS or EC2 metadata)", file=sys.stderr
        )
        return 2
    region = args.region or session.region_name or "us-east-1"
    try:
        signed = sign_identity_request(
            credentials.get_frozen_credentials(),
            server_id=args.server_id,
            region=region,
            # The SDK's own settings (AWS_USE_FIPS_ENDPOINT, use_dualstack_endpoint in the profile...).
            fips=bool(sdk.get_config_variable("use_fips_endpoint")),
            dualstack=bool(sdk.get_config_variable("use_dualstack_endpoint")),
        )
    except ValueError as error:
        print(f"kuma-iam: {error}", file=sys.stderr)
        return 2
    print(encode_compact(signed) if args.format == "compact" else json.dumps(encode_vault(signed)))
    return 0
