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

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from kuma_iam.tokens import jwt
from kuma_iam.tokens.revocations import (
    ZONE_SCOPE,
    RevocationTable,
    mesh_scope,
    revocation_secret,
    secret_name,
)
from kuma_iam.tokens.validator import InvalidToken, validate_token
from kuma_iam_cli.arguments import api_url, kubernetes_namespace, mesh_name, table_name, token_id
from kuma_iam_cli.aws_credentials import DEFAULT_REGION, aws_session, default_credentials
from kuma_iam_cli.errors import CommandError
from kuma_iam_cli.issuer_client import api_region
from kuma_iam_cli.signer import sign_api_call

EXIT_VALID, EXIT_INVALID = 0, 1
TIMEOUT_SECONDS = 15
# In a running local stack's credentials folder: the control plane's, which may read the keys.
LOCAL_STACK_OPERATOR_CREDENTIALS = "control-plane.env"
_API_REGION_HELP = (
    f"region of the API (default: from an execute-api URL, else the SDK's, else {DEFAULT_REGION})"
)
DESCRIPTION = """\
The operator's side of issued tokens: revoke them and print the secret a control plane reads revocations
from (revoke, revocations), print the issuer's public keys as kuma-cp settings (keys), and check a token
as a control plane would (validate). `kuma-iam tokens ACTION --help` for each."""
REVOKE_DESCRIPTION = """\
Record token ids (jti) as revoked in the issuer's revocations table, so the issuer never hands them out
again, and print the secret that makes a control plane refuse them (apply it with kumactl, or kubectl with
--kubernetes-namespace): dataplane-token-revocations-<mesh>, or zone-token-revocations with --zone-tokens.
Uses the default AWS credentials (an operator who may write the table).

exit status: 0 revoked, the secret printed; 2 error (bad arguments, no credentials, the table refused)."""
REVOCATIONS_DESCRIPTION = """\
Print the revocations secret of a mesh (or of zone tokens) again, from the revocations table, as `revoke`
prints it. Uses the default AWS credentials (an operator who may read the table).

exit status: 0 printed; 2 error (bad arguments, no credentials, the table could not be read)."""
KEYS_DESCRIPTION = """\
GET the issuer's /v1/keys (SigV4-signed for execute-api with the default AWS credentials, e.g. the control
plane's) and print them as kuma-cp settings to merge into kuma-cp.yaml
(dpServer.authn.dpProxy.dpToken.validator.publicKeys per mesh, and zoneProxy's for zone tokens), or as the
issuer's JSON.

exit status: 0 printed; 2 error (no credentials, the API refused the call or could not be reached)."""
VALIDATE_DESCRIPTION = """\
Check a token as a control plane configured with the issuer's keys would: RS256 with a published key of its
kid, Kuma's claims present and typed, nbf and exp honoured. Prints the claims as JSON when valid. The keys
come from the issuer (--keys-url, IAM-signed with the default AWS credentials), a saved GET /v1/keys answer
(--keys-file) or one PKCS#1 public key (--public-key with --kid).

exit status:
  0  valid
  1  invalid (the line on stderr says why)
  2  error: the token or the keys could not be read"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tokens = commands.add_parser(
        "tokens", help="revoke issued tokens, show the public keys, validate a token", description=DESCRIPTION
    )
    actions = tokens.add_subparsers(required=True, dest="action", metavar="ACTION", title="actions")

    revoke = actions.add_parser(
        "revoke",
        help="revoke tokens by jti and print the revocations secret",
        description=REVOKE_DESCRIPTION,
    )
    _scope_arguments(revoke)
    revoke.add_argument(
        "--jti", action="append", required=True, type=token_id, help="a token id to revoke (repeatable)"
    )
    revoke.set_defaults(run=run_revoke)

    listing = actions.add_parser(
        "revocations",
        help="print the revocations secret of a mesh (or zone tokens)",
        description=REVOCATIONS_DESCRIPTION,
    )
    _scope_arguments(listing)
    listing.set_defaults(run=run_revocations)

    keys = actions.add_parser(
        "keys", help="GET /v1/keys and print them as kuma-cp settings (or JSON)", description=KEYS_DESCRIPTION
    )
    keys.add_argument(
        "--url", required=True, type=api_url("/v1/keys"), help="the keys endpoint, e.g. https://…/v1/keys"
    )
    keys.add_argument(
        "--format",
        choices=("kuma-cp", "json"),
        default="kuma-cp",
        help="kuma-cp: YAML settings for kuma-cp.yaml; json: the issuer's answer as it is",
    )
    keys.add_argument("--region", help=_API_REGION_HELP)
    keys.set_defaults(run=run_keys)

    validate = actions.add_parser(
        "validate",
        help="check a token with the published keys, as kuma-cp does",
        description=VALIDATE_DESCRIPTION,
    )
    validate.add_argument("--token-file", required=True, type=Path, help="the token, e.g. dataplane-token's")
    source = validate.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--keys-url",
        type=api_url("/v1/keys"),
        help="the keys endpoint (IAM-signed GET), e.g. https://…/v1/keys",
    )
    source.add_argument("--keys-file", type=Path, help="a saved GET /v1/keys answer (JSON)")
    source.add_argument("--public-key", type=Path, help="one public key (PKCS#1 PEM), with --kid")
    validate.add_argument("--kid", help="the kid of --public-key")
    validate.add_argument(
        "--mesh", type=mesh_name, help="the Dataplane's mesh (default: the token's own Mesh claim)"
    )
    validate.add_argument("--region", help=f"for --keys-url: {_API_REGION_HELP}")
    validate.set_defaults(run=run_validate)


def _scope_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--mesh", type=mesh_name, help="dataplane tokens of this mesh")
    scope.add_argument("--zone-tokens", action="store_true", help="zone tokens (zone ingress and egress)")
    parser.add_argument(
        "--table",
        type=table_name,
        default=os.environ.get("KUMA_IAM_REVOCATION_TABLE"),
        help="the revocations table (the stack output RevocationTableName); $KUMA_IAM_REVOCATION_TABLE if "
        "not given",
    )
    parser.add_argument(
        "--kubernetes-namespace",
        type=kubernetes_namespace,
        help="print a Kubernetes Secret in this namespace instead of Universal YAML",
    )
    parser.add_argument("--region", help="region of the table (default: $AWS_REGION, else the SDK's)")


def run_revoke(args: argparse.Namespace) -> int:
    scope, table = _scope(args), _table(args)
    default_credentials(args.region, purpose="write the revocations table", local_file=None)
    session = aws_session(args.region)
    operator = session.client("sts").get_caller_identity()["Arn"]
    revocations = RevocationTable(session.client("dynamodb"), table)
    revocations.revoke(scope, args.jti, revoked_by=operator, now=datetime.now(UTC))
    # The index may lag the writes just made: the ids revoked now are added in any case.
    revoked = set(revocations.revoked(scope)) | set(args.jti)
    _report(f"revoked {len(args.jti)} token id(s) in {table}; {len(revoked)} revoked in all")
    print(revocation_secret(scope, revoked, kubernetes_namespace=args.kubernetes_namespace), end="")
    _report(f"apply it so the control plane refuses them: {_apply_hint(args, scope)}")
    return 0


def run_revocations(args: argparse.Namespace) -> int:
    scope, table = _scope(args), _table(args)
    default_credentials(args.region, purpose="read the revocations table", local_file=None)
    revoked = RevocationTable(aws_session(args.region).client("dynamodb"), table).revoked(scope)
    _report(f"{len(revoked)} token id(s) revoked for {secret_name(scope)}")
    print(revocation_secret(scope, revoked, kubernetes_namespace=args.kubernetes_namespace), end="")
    return 0


def run_keys(args: argparse.Namespace) -> int:
    published = fetch_keys(args.url, args.region)
    print(json.dumps(published, indent=2) if args.format == "json" else kuma_cp_settings(published))
    return 0


def run_validate(args: argparse.Namespace) -> int:
    if args.public_key is not None and not args.kid:
        raise CommandError("--public-key needs --kid: the kid the token's header must name")
    try:
        token = args.token_file.read_text().strip()
    except OSError as error:
        raise CommandError(f"cannot read {args.token_file}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise CommandError(
            f"{args.token_file} is not text: a token is base64url parts joined by dots"
        ) from None
    try:
        valid = validate_token(token, _validation_keys(args, token), now=datetime.now(UTC))
    except InvalidToken as invalid:  # an answer, not an error
        _report(f"invalid: {invalid}")
        return EXIT_INVALID
    print(json.dumps({"valid": True, "kind": valid.kind, "kid": valid.kid, "claims": valid.claims}, indent=2))
    return EXIT_VALID


def _validation_keys(args: argparse.Namespace, token: str) -> dict[str, RSAPublicKey]:
    try:
        if args.public_key is not None:
            return {args.kid: _public_key(args.public_key.read_bytes())}
        published = (
            fetch_keys(args.keys_url, args.region)
            if args.keys_url
            else json.loads(args.keys_file.read_text())
        )
        return _keys_for_token(published, token, args.mesh)
    except InvalidToken:  # the token itself, not the keys: an answer
        raise
    except (OSError, ValueError) as error:
        raise CommandError(f"cannot read the keys: {error}") from None
    except (KeyError, TypeError, AttributeError):  # a field missing, or of another type than JSON's own
        raise CommandError("the keys document is not a GET /v1/keys answer") from None


def fetch_keys(url: str, region: str | None) -> dict[str, Any]:
    """GET /v1/keys, IAM-signed with the default credentials."""
    credentials, sdk_region = default_credentials(
        None, purpose="sign the call for the keys", local_file=LOCAL_STACK_OPERATOR_CREDENTIALS
    )
    headers = sign_api_call(
        credentials, url=url, body=b"", region=api_region(url, given=region, default=sdk_region), method="GET"
    )
    request = urllib.request.Request(url, headers=headers, method="GET")  # noqa: S310 - the operator's URL
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            document = json.loads(response.read())
    except urllib.error.HTTPError as error:
        hint = ": may these credentials execute-api:Invoke it?" if error.code == 403 else ""
        raise CommandError(f"GET {url}: HTTP {error.code}{hint}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise CommandError(f"cannot reach {url}: {getattr(error, 'reason', error)}") from None
    except ValueError:
        raise CommandError(f"GET {url}: the answer is not JSON: is it the issuer's /v1/keys?") from None
    if not isinstance(document, dict) or "dpServer" not in document:
        raise CommandError(f"GET {url}: not a kuma-iam keys document: is it the issuer's /v1/keys?")
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


def _scope(args: argparse.Namespace) -> str:
    """The revocation scope: zone tokens, or a mesh's dataplane tokens (the mesh checked at parse time)."""
    return ZONE_SCOPE if args.zone_tokens else mesh_scope(args.mesh)


def _table(args: argparse.Namespace) -> str:
    if not args.table:
        raise CommandError(
            "--table (or KUMA_IAM_REVOCATION_TABLE) is required: the stack output RevocationTableName"
        )
    return str(args.table)


def _apply_hint(args: argparse.Namespace, scope: str) -> str:
    if args.kubernetes_namespace:
        return "kubectl apply -f -"
    return "kumactl apply -f -" + (
        "" if scope == ZONE_SCOPE else " (on the global control plane, or the zone's)"
    )


def _report(message: str) -> None:
    """What the command did, beside its output (the secret, the claims): one `kuma-iam:` line on stderr."""
    print(f"kuma-iam: {message}", file=sys.stderr)
