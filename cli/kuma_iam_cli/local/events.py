"""The sample events under events/: one table of cases, re-signed against a running embedded AWS on demand."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from botocore.credentials import ReadOnlyCredentials

from kuma_iam.identity.token import encode_compact, encode_vault
from kuma_iam_cli.local.compliance_events import COMPLIANCE_CASES
from kuma_iam_cli.local.gateway import GatewayRequest, build_event
from kuma_iam_cli.local.seed import (
    HOME_ACCOUNT,
    OUTSIDER_ACCOUNT,
    PARTNER_ACCOUNT,
    DemoWorld,
    UserCredentials,
    compliance_environment,
    control_plane_caller,
    task_credentials,
    verifier_environment,
)
from kuma_iam_cli.local.token_events import write_token_issuer_events
from kuma_iam_cli.local.token_keys import TokenKeys, token_settings
from kuma_iam_cli.signer import sign_identity_request

VERIFY_ROUTE = "POST /v1/verify"
# Lambda (and so `sam local`) sets these itself; an env-vars file cannot override them.
SAM_OWN_VARIABLES = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"}
)


@dataclass(frozen=True)
class VerifierCase:
    """One sample request to /v1/verify: who signs the token and what it claims. The answer it must get is
    in events/verifier/expected.json, beside the events written from these cases (local/expected.py)."""

    name: str
    dataplane: dict[str, Any]
    signer: (
        tuple[str, str] | Literal["ci-user"] | None
    )  # (account, task role), a plain IAM user, or a fixed token
    encoding: Literal["compact", "vault"] = "compact"
    fixed_token: str | None = None
    forge_signature: bool = False
    server_id: str | None = None  # None: the verifier's own
    extra: dict[str, Any] = field(default_factory=dict)


def _dataplane(mesh: str | None, service: str | None = None, **more: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "dataplane", "mesh": mesh, "name": f"{service or 'dp'}-01", **more}
    if service is not None:
        spec["tags"] = {"kuma.io/service": [service]}
    return spec


BACKEND = (HOME_ACCOUNT, "backend-task")
VERIFIER_CASES: tuple[VerifierCase, ...] = (
    VerifierCase("allowed", _dataplane("default", "backend"), BACKEND),
    VerifierCase("allowed-vault-encoding", _dataplane("default", "backend"), BACKEND, encoding="vault"),
    VerifierCase(
        "allowed-partner-account", _dataplane("payments", "payments"), (PARTNER_ACCOUNT, "payments-task")
    ),
    VerifierCase(
        "allowed-ingress",
        {"type": "ingress", "mesh": None, "name": "ingress-01"},
        (HOME_ACCOUNT, "ingress-task"),
    ),
    VerifierCase("mesh-mismatch", _dataplane("payments", "backend"), BACKEND),
    VerifierCase("service-mismatch", _dataplane("default", "frontend"), BACKEND),
    VerifierCase("type-mismatch", _dataplane("default", "gateway"), (HOME_ACCOUNT, "ingress-task")),
    VerifierCase(
        "workload-mismatch",
        _dataplane("default", "worker", workload="billing"),
        (HOME_ACCOUNT, "worker-task"),
    ),
    VerifierCase("invalid-role-tags", _dataplane("default"), (HOME_ACCOUNT, "bad-type-task")),
    VerifierCase(
        "account-not-authorized", _dataplane("default", "backend"), (OUTSIDER_ACCOUNT, "intruder-task")
    ),
    VerifierCase("unsupported-principal", _dataplane("default"), "ci-user"),
    VerifierCase("sts-rejected", _dataplane("default", "backend"), BACKEND, forge_signature=True),
    VerifierCase("wrong-server-id", _dataplane("default", "backend"), BACKEND, server_id="other-cp"),
    VerifierCase(
        "malformed-token",
        _dataplane("default", "backend"),
        None,
        fixed_token="kuma-aws-v1.not*base64",  # noqa: S106 - a malformed sample, not a secret
    ),
)


def sign_case_token(world: DemoWorld, case: VerifierCase, *, server_id: str) -> str | dict[str, str]:
    """A fresh token for `case`, signed with real credentials from the embedded AWS."""
    if case.fixed_token is not None:
        return case.fixed_token
    if case.signer == "ci-user":
        credentials = ReadOnlyCredentials(world.ci_user.access_key_id, world.ci_user.secret_access_key, None)
    elif case.signer is not None:
        issued = task_credentials(world, *case.signer)
        credentials = ReadOnlyCredentials(
            issued["AWS_ACCESS_KEY_ID"], issued["AWS_SECRET_ACCESS_KEY"], issued["AWS_SESSION_TOKEN"]
        )
    else:
        raise ValueError(f"case {case.name} has neither a signer nor a fixed token")
    if case.forge_signature:
        # Real key id and session token, wrong secret: only STS can tell, and it must say no.
        credentials = ReadOnlyCredentials(credentials.access_key, "forged-secret", credentials.token)
    signed = sign_identity_request(credentials, server_id=case.server_id or server_id, region=world.region)
    return encode_compact(signed) if case.encoding == "compact" else encode_vault(signed)


def verify_event(world: DemoWorld, case: VerifierCase, *, server_id: str) -> dict[str, Any]:
    """The API Gateway HTTP API event the verifier receives for `case`."""
    body = json.dumps(
        {"token": sign_case_token(world, case, server_id=server_id), "dataplane": case.dataplane}
    )
    request = GatewayRequest(
        method="POST",
        raw_path="/v1/verify",
        raw_query="",
        headers=(("content-type", "application/json"), ("host", "verifier.local")),
        body=body.encode(),
        source_ip="10.0.0.10",
    )
    return build_event(
        request,
        route_key=VERIFY_ROUTE,
        caller=control_plane_caller(world),
        api_account_id=world.home_account,
        request_id=str(uuid.uuid4()),
        received_at=datetime.now(UTC),
    )


def write_events(world: DemoWorld, out_dir: Path, *, server_id: str) -> list[Path]:
    """Write out_dir/<function>/<case>.json for every case of every function; returns the paths written.
    The verifier's and the token issuer's are signed afresh; tag compliance's are the same each time."""
    folder = out_dir / "verifier"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for case in VERIFIER_CASES:
        path = folder / f"{case.name}.json"
        path.write_text(json.dumps(verify_event(world, case, server_id=server_id), indent=2) + "\n")
        written.append(path)
    folder = out_dir / "tag_compliance"
    folder.mkdir(parents=True, exist_ok=True)
    for compliance_case in COMPLIANCE_CASES:
        path = folder / f"{compliance_case.name}.json"
        path.write_text(json.dumps(compliance_case.event(), indent=2) + "\n")
        written.append(path)
    return written + write_token_issuer_events(world, out_dir, server_id=server_id)


# Whose keys each function runs with under `sam local` (sam hands a function the credentials of its own
# environment): the demo world's stand-in for the function's execution role; the issuer's is in tokens.json
# beside the world file (local/token_keys.py). tools/sam-local/sam-env.sh maps the same
# (tests/integration/test_sam_local_scripts.py holds it to this).
FUNCTION_PRINCIPALS = {
    "VerifierFunction": "verifier",
    "TagComplianceFunction": "compliance",
    "TokenIssuerFunction": "issuer",
}


def function_principal(
    world: DemoWorld, function: str, token_keys: TokenKeys | None = None
) -> UserCredentials:
    """The demo world's principal standing in for `function`'s execution role."""
    by_name = {"verifier": world.verifier, "compliance": world.compliance}
    if token_keys is not None:
        by_name["issuer"] = token_keys.issuer
    principal = FUNCTION_PRINCIPALS[function]
    if principal not in by_name:
        raise ValueError(f"{function} runs as the token issuer's principal: give the world's token keys")
    return by_name[principal]


def sam_env_vars(
    world: DemoWorld, *, endpoint_url: str, server_id: str, token_keys: TokenKeys | None = None
) -> dict[str, dict[str, str]]:
    """`sam local invoke --env-vars` content: the functions reach the embedded AWS at `endpoint_url`
    (TokenIssuerFunction's entry only with the world's `token_keys`).

    SAM overrides only variables the template declares; credentials and region come from sam's own
    environment instead (tools/sam-local/sam-env.sh exports them).
    """

    def for_containers(environment: dict[str, str]) -> dict[str, str]:
        return {
            name: endpoint_url if name.startswith("AWS_ENDPOINT_URL") else value
            for name, value in environment.items()
            if name not in SAM_OWN_VARIABLES
        }

    verifier = for_containers(verifier_environment(world, server_id=server_id))
    verifier["KUMA_IAM_HOME_ACCOUNT_ID"] = world.home_account
    compliance = for_containers(compliance_environment(world))
    functions = {"VerifierFunction": verifier, "TagComplianceFunction": compliance}
    if token_keys is not None:
        functions["TokenIssuerFunction"] = for_containers({**verifier, **token_settings(world, token_keys)})
    return functions
