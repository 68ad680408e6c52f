"""`kuma-iam token`: the sidecar's side, an identity token signed with the default AWS credentials."""

from __future__ import annotations

import argparse
import json

import botocore.session

from kuma_iam.identity.token import encode_compact, encode_vault
from kuma_iam_cli.arguments import server_id
from kuma_iam_cli.aws_credentials import DEFAULT_REGION, default_credentials
from kuma_iam_cli.errors import CommandError
from kuma_iam_cli.signer import sign_identity_request

# In a running local stack's credentials folder: the demo's backend task role, to suggest when none are set.
LOCAL_STACK_TASK_CREDENTIALS = "111111111111-backend-task.env"
DESCRIPTION = """\
The sidecar's side: sign an sts:GetCallerIdentity request with the default AWS credentials (on ECS, the
task role's) for one control plane's server id, and print it as a token for `kuma-iam verify` or the
control plane. Nothing is sent anywhere. The STS host follows the SDK's settings, as botocore's would:
AWS_USE_FIPS_ENDPOINT and AWS_USE_DUALSTACK_ENDPOINT (or use_fips_endpoint / use_dualstack_endpoint in the
profile).

exit status: 0 a token was printed; 2 error (no credentials, a server id or region the verifier refuses)."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = commands.add_parser(
        "token",
        help="print an identity token signed with the default AWS credentials",
        description=DESCRIPTION,
    )
    token.add_argument(
        "--server-id",
        required=True,
        type=server_id,
        help="the control plane's X-Kuma-AWS-IAM-Server-ID (the verifier's KUMA_IAM_SERVER_ID)",
    )
    token.add_argument(
        "--region", help=f"STS region to sign for (default: the SDK's region, else {DEFAULT_REGION})"
    )
    token.add_argument(
        "--format",
        choices=("compact", "vault"),
        default="compact",
        help="compact: one kuma-aws-v1.<base64url> line; vault: Vault-style login data as JSON",
    )
    token.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    sdk = botocore.session.Session()
    credentials, region = default_credentials(
        args.region, purpose="sign the token", local_file=LOCAL_STACK_TASK_CREDENTIALS, sdk=sdk
    )
    try:
        signed = sign_identity_request(
            credentials,
            server_id=args.server_id,
            region=region,
            # The SDK's own settings (AWS_USE_FIPS_ENDPOINT, use_dualstack_endpoint in the profile...).
            fips=bool(sdk.get_config_variable("use_fips_endpoint")),
            dualstack=bool(sdk.get_config_variable("use_dualstack_endpoint")),
        )
    except ValueError as error:
        raise CommandError(f"{error} (--region, or the SDK's AWS_REGION)") from None
    print(encode_compact(signed) if args.format == "compact" else json.dumps(encode_vault(signed)))
    return 0
