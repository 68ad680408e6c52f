"""The world every section measures in: the embedded AWS (moto server on loopback, SigV4 checks on) with the
demo accounts and roles, tokens signed by real task-role credentials, and events as API Gateway sends them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.credentials import ReadOnlyCredentials

from kuma_iam.identity.token import SignedRequest, encode_compact
from kuma_iam_cli.local.events import VERIFY_ROUTE
from kuma_iam_cli.local.gateway import GatewayRequest, LocalLambdaContext, build_event
from kuma_iam_cli.local.seed import DemoWorld, control_plane_caller, task_credentials, verifier_environment
from kuma_iam_cli.signer import sign_identity_request
from support.aws_clients import client_as

REPO = Path(__file__).resolve().parents[1]
FUNCTIONS = REPO / "functions"
VERIFIER_HANDLER = FUNCTIONS / "verifier" / "app.py"
COMPLIANCE_HANDLER = FUNCTIONS / "tag_compliance" / "app.py"
SERVER_ID = "kuma-bench"
CLAIM: dict[str, Any] = {"mesh": "default", "name": "backend-01", "tags": {"kuma.io/service": ["backend"]}}


def bench_verifier_environment(world: DemoWorld) -> dict[str, str]:
    """The verifier's environment; a role stays cached for the whole run however slow the machine, so that
    "warm" means warm (the deployed default is 60 s)."""
    return {**verifier_environment(world, server_id=SERVER_ID), "KUMA_IAM_ROLE_CACHE_TTL_SECONDS": "3600"}


def credentials_of(issued: dict[str, str]) -> ReadOnlyCredentials:
    return ReadOnlyCredentials(
        issued["AWS_ACCESS_KEY_ID"], issued["AWS_SECRET_ACCESS_KEY"], issued.get("AWS_SESSION_TOKEN")
    )


def signed_now(world: DemoWorld, role: str = "backend-task", *, session: str = "bench") -> SignedRequest:
    """A GetCallerIdentity signed now by the role's task credentials: each section signs its own, so a slow
    run never measures a token that has grown too old."""
    issued = task_credentials(world, world.home_account, role, session_name=session)
    return sign_identity_request(credentials_of(issued), server_id=SERVER_ID, region=world.region)


def signed_by_role_arn(world: DemoWorld, role_arn: str, *, session: str = "bench") -> SignedRequest:
    """The same for a role the bench made (not a demo world's): the account's ECS agent assumes it."""
    account = role_arn.split(":")[4]
    sts = client_as(world, "sts", world.ecs_agents[account])
    issued = sts.assume_role(RoleArn=role_arn, RoleSessionName=session)["Credentials"]
    credentials = ReadOnlyCredentials(
        issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"]
    )
    return sign_identity_request(credentials, server_id=SERVER_ID, region=world.region)


def verify_event(world: DemoWorld, token: object, claim: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST /v1/verify as API Gateway hands it to the function (payload 2.0), from the control plane."""
    body = json.dumps({"token": token, "dataplane": CLAIM if claim is None else claim})
    request = GatewayRequest(
        method="POST",
        raw_path="/v1/verify",
        raw_query="",
        headers=(("content-type", "application/json"),),
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


def lambda_context(world: DemoWorld, function_name: str) -> LocalLambdaContext:
    return LocalLambdaContext(
        function_name=function_name,
        aws_request_id=str(uuid.uuid4()),
        region=world.region,
        account_id=world.home_account,
    )


def compact(signed: SignedRequest) -> str:
    return encode_compact(signed)
