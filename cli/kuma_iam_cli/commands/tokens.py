"""`kuma-iam tokens`: the operator's side of issued tokens: revoke them (and print the secret Kuma reads
revocations from), show the public keys as kuma-cp settings, and validate a token as a control plane would."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from kuma_iam.errors import UpstreamError
from kuma_iam.tokens import jwt
from kuma_iam.tokens.revocations import (
    JTI,
    ZONE_SCOPE,
    RevocationTable,
    mesh_scope,
    revocation_secret,
    secret_name,
)
from kuma_iam.tokens.validator import InvalidToken, validate_token
from kuma_iam_cli.aws_session import aws_session
from kuma_iam_cli.issuer_client import IssuerClient
from kuma_iam_cli.signer import sign_api_call

EXIT_OK, EXIT_INVALID, EXIT_ERROR = 0, 1, 2


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tokens = commands.add_parser(
        "tokens", help="revoke issued tokens, show the public keys, validate a token"
    )
    actions = tokens.add_subparsers(required=True, metavar="ACTION")

    revoke = actions.add_parser("revoke", help="revoke tokens by jti and print the revocations secret")
    _scope_arguments(revoke)
    revoke.add_argument("--jti", action="append", required=True, help="a token id to revoke (repeatable)")
    revoke.set_defaults(run=run_revoke)

    listing = actions.add_parser(
        "revocations", help="print the revocations secret of a mesh (or zone tokens)"
    )
    _scope_arguments(listing)
    listing.set_defaults(run=run_revocations)

    keys = actions.add_parser("keys", help="GET /v1/keys and print them as kuma-cp settings (or JSON)")
    keys.add_argument("--url", required=True, help="the keys endpoint, e.g. https://…/v1/keys")
    keys.add_argument("--format", choices=("kuma-cp", "json"), default="kuma-cp")
    keys.add_argument("--region", help="region of the API (default: from an execute-api URL, else the SDK's)")
    keys.set_defaults(run=run_keys)

    validate = actions.add_parser("validate", help="check a token with the published keys, as kuma-cp does")
    validate.add_argument("--token-file", required=True, type=Path)
    source = validate.add_mutually_exclusive_group(required=True)
    source.add_argument("--keys-url", help="the keys endpoint (IAM-signed GET)")
    source.add_argument("--keys-file", type=Path, help="a saved GET /v1/keys answer (JSON)")
    source.add_argument("--public-key", type=Path, help="one public key (PKCS#1 PEM), with --kid")
    validate.add_argument("--kid", help="the kid of --public-key")
    validate.add_argument("--mesh", help="the Dataplane's mesh (default: the token's own Mesh claim)")
    validate.add_argument("--region", help="region of the API, for --keys-url")
    validate.set_defaults(run=run_validate)


def _scope_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--mesh", help="dataplane tokens of this mesh")
    scope.add_argument("--zone-tokens", action="store_true", help="zone tokens (zone ingress and egress)")
    parser.add_argument(
        "--table",
        default=os.environ.get("KUMA_IAM_REVOCATION_TABLE"),
        help="the revocations table (stack output RevocationTableName; default: $KUMA_IAM_REVOCATION_TABLE)",
    )
    parser.add_argument(
        "--kubernetes-namespace", help="print a Kubernetes Secret in this namespace instead of Universal YAML"
    )
    parser.add_argument("--region", help="region of the table (default: $AWS_REGION, else the SDK's)")


def run_revoke(args: argparse.Namespace) -> int:
    scope = _scope(args)
    if scope is None or not args.table:
        return _fail("--table (or KUMA_IAM_REVOCATION_TABLE) and a valid --mesh are required")
    bad = [jti for jti in args.jti if not JTI.fullmatch(jti)]
    if bad:
        return _fail(f"{bad[0][:64]!r} is not a token id (letters, digits, '.', '_', '-')")
    session = aws_session(args.region)
    try:
        operator = session.client("sts").get_caller_identity()["Arn"]
        table = RevocationTable(session.client("dynamodb"), args.table)
        table.revoke(scope, args.jti, revoked_by=operator, now=datetime.now(UTC))
        # The index may lag the writes just made: the ids revoked now are added in any case.
        revoked = set(table.revoked(scope)) | set(args.jti)
    except (UpstreamError, ClientError, BotoCoreError) as error:
        return _fail(_aws_message(error))
    _report(f"revoked {len(args.jti)} token id(s) in {args.table}; {len(revoked)} revoked in all")
    print(revocation_secret(scope, revoked, kubernetes_namespace=args.kubernetes_namespace), end="")
    _report(f"apply it so the control plane refuses them: {_apply_hint(args, scope)}")
    return EXIT_OK


def run_revocations(args: argparse.Namespace) -> int:
    scope = _scope(args)
    if scope is None or not args.table:
        return _fail("--table (or KUMA_IAM_REVOCATION_TABLE) and a valid --mesh are required")
    try:
        revoked = RevocationTable(aws_session(args.region).client("dynamodb"), args.table).revoked(scope)
    except (UpstreamError, ClientError, BotoCoreError) as error:
        return _fail(_aws_message(error))
    _report(f"{len(revoked)} token id(s) revoked for {secret_name(scope)}")
    print(revocation_secret(scope, revoked, kubernetes_namespace=args.kubernetes_namespace), end="")
    return EXIT_OK


def run_keys(args: argparse.Namespace) -> int:
    try:
        published = fetch_keys(args.url, args.region)
    except KeysUnavailable as error:
        return _fail(str(error))
    print(json.dumps(published, indent=2) if args.format == "json" else kuma_cp_settings(published), end="\n")
    return EXIT_OK


def run_validate(args: argparse.Namespace) -> int:
    try:
        token = args.token_file.read_text().strip()
    except OSError as error:
        return _fail(f"cannot read {args.token_file}: {error.strerror or error}")
    if args.public_key is not None and not args.kid:
        return _fail("--public-key needs --kid")
    try:
        if args.public_key is not None:
            keys = {args.kid: _public_key(args.public_key.read_bytes())}
        else:
            published = (
                fetch_keys(args.keys_url, args.region)
                if args.keys_url
                else json.loads(args.keys_file.read_text())
            )
            keys = _keys_for_token(published, token, args.mesh)
    except (KeysUnavailable, OSError, ValueError) as error:
        return _fail(f"cannot read the keys: {error}")
    except (KeyError, TypeError):
        return _fail("the keys document is not a GET /v1/keys answer")
    try:
        valid = validate_token(token, keys, now=datetime.now(UTC))
    except InvalidToken as invalid:
        print(f"kuma-iam: invalid: {invalid}", file=sys.stderr)
        return EXIT_INVALID
    print(json.dumps({"valid": True, "kind": valid.kind, "kid": valid.kid, "claims": valid.claims}, indent=2))
    return EXIT_OK


class KeysUnavailable(Exception):
    pass


def fetch_keys(url: str, region: str | None) -> dict[str, Any]:
    """GET /v1/keys, IAM-signed with the default credentials."""
    session = aws_session(region)
    credentials = session.get_credentials()
    if credentials is None:
        raise KeysUnavailable("no AWS credentials found to sign the call")
    api_region = IssuerClient(session, api_region=region).api_region(url)
    headers = sign_api_call(
        credentials.get_frozen_credentials(), url=url, body=b"", region=api_region, method="GET"
    )
    request = urllib.request.Request(url, headers=headers, method="GET")  # noqa: S310 - the operator's URL
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            document = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise KeysUnavailable(f"GET {url}: HTTP {error.code}") from None
    except (urllib.error.URLError, TimeoutError, ValueError) as error:
        raise KeysUnavailable(f"GET {url}: {getattr(error, 'reason', error)}") from None
    if not isinstance(document, dict) or "dpServer" not in document:
        raise KeysUnavailable(f"GET {url}: not a kuma-iam keys document")
    return document


def kuma_cp_settings(published: dict[str, Any]) -> str:
    """The validator settings as kuma-cp's YAML configuration takes them (merge into kuma-cp.yaml)."""
    authn = published["dpServer"]["authn"]
    dataplane = authn["dpProxy"]["dpToken"]["validator"]["publicKeys"]
    zone = authn["zoneProxy"]["zoneToken"]["validator"]["publicKeys"]
    lines = ["dpServer:", "  authn:", "    dpProxy:", "      dpToken:", "        validator:"]
    lines += _public_keys(dataplane, indent=10)
    if zone:
        lines += ["    zoneProxy:", "      zoneToken:", "        validator:"]
        lines += _public_keys(zone, indent=10)
    return "\n".join(lines)


def _public_keys(entries: list[dict[str, str]], *, indent: int) -> list[str]:
    pad = " " * indent
    lines = [f"{pad}publicKeys:"]
    for entry in entries:
        lines.append(f'{pad}  - kid: "{entry["kid"]}"')
        if "mesh" in entry:
            lines.append(f"{pad}    mesh: {entry['mesh']}")
        lines.append(f"{pad}    key: |")
        lines += [f"{pad}      {line}" for line in entry["key"].strip().splitlines()]
    return lines


def _keys_for_token(published: dict[str, Any], token: str, mesh: str | None) -> dict[str, RSAPublicKey]:
    """The keys a control plane would try: the zone-token keys for a zone token, else the mesh's."""
    try:
        claims = jwt.parse(token).claims
    except jwt.MalformedToken as error:
        raise InvalidToken(str(error)) from None
    authn = published["dpServer"]["authn"]
    if "Zone" in claims:
        entries = authn["zoneProxy"]["zoneToken"]["validator"]["publicKeys"]
    else:
        wanted = mesh or claims.get("Mesh")
        entries = [e for e in authn["dpProxy"]["dpToken"]["validator"]["publicKeys"] if e["mesh"] == wanted]
    return {entry["kid"]: _public_key(entry["key"].encode()) for entry in entries}


def _public_key(pem: bytes) -> RSAPublicKey:
    """As older control planes read them: a PKCS#1 `RSA PUBLIC KEY` PEM and nothing else."""
    if not pem.lstrip().startswith(b"-----BEGIN RSA PUBLIC KEY-----"):
        raise ValueError("not a PKCS#1 RSA PUBLIC KEY PEM")
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def _scope(args: argparse.Namespace) -> str | None:
    if args.zone_tokens:
        return ZONE_SCOPE
    try:
        return mesh_scope(args.mesh)
    except ValueError:
        return None


def _apply_hint(args: argparse.Namespace, scope: str) -> str:
    if args.kubernetes_namespace:
        return "kubectl apply -f -"
    return "kumactl apply -f -" + (
        "" if scope == ZONE_SCOPE else " (on the global control plane, or the zone's)"
    )


def _aws_message(error: Exception) -> str:
    if isinstance(error, UpstreamError):
        return error.message
    if isinstance(error, ClientError):
        return f"AWS refused: {error.response.get('Error', {}).get('Code', 'error')}"
    return f"AWS unreachable: {type(error).__name__}"


def _report(message: str) -> None:
    print(f"kuma-iam: {message}", file=sys.stderr)


def _fail(message: str) -> int:
    _report(message)
    return EXIT_ERROR
