"""Revoked token ids (`jti`): a DynamoDB table, and the Kuma secret that carries them to the control plane.

Kuma reads revocations from a secret per mesh, `dataplane-token-revocations-<mesh>` (zone tokens:
the global secret `zone-token-revocations`), whose data is the revoked ids separated by commas. The table is
the record of what was revoked, by whom and when, and the ECS provisioner reads it to replace revoked tokens.
Table: partition key `jti`, sort key `scope` (`mesh/<mesh>` or `zone`), index `scope-index` on
(`scope`, `jti`).
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from kuma_iam.aws import aws_errors
from kuma_iam.errors import UpstreamUnavailable
from kuma_iam.rules import DNS_LABEL

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SCOPE_INDEX = "scope-index"
ZONE_SCOPE = "zone"
# A jti travels comma-separated in the secret: anything beyond this could split or join entries.
JTI = re.compile(r"[A-Za-z0-9._-]{1,128}", re.ASCII)


def mesh_scope(mesh: str) -> str:
    if not DNS_LABEL.fullmatch(mesh):
        raise ValueError(f"{mesh[:64]!r} is not a mesh name")
    return f"mesh/{mesh}"


def secret_name(scope: str) -> str:
    """The name Kuma looks the revocations up by."""
    if scope == ZONE_SCOPE:
        return "zone-token-revocations"
    return f"dataplane-token-revocations-{scope.removeprefix('mesh/')}"


class RevocationTable:
    """The revocations table, behind an injected DynamoDB client."""

    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table_name = table_name

    def is_revoked(self, jti: str) -> bool:
        """Strongly consistent: an id revoked a moment ago is already revoked here."""
        with aws_errors("dynamodb", "cannot read the revocations table"):
            answer = self._dynamodb.query(
                TableName=self._table_name,
                KeyConditionExpression="jti = :jti",
                ExpressionAttributeValues={":jti": {"S": jti}},
                ConsistentRead=True,
                Limit=1,
                ProjectionExpression="jti",
            )
            # A 200 that is not DynamoDB's (a proxy's page) must not pass for "not revoked".
            if "Count" not in answer:
                raise UpstreamUnavailable("dynamodb", "the revocations table's answer is not DynamoDB's")
            return int(answer["Count"]) > 0

    def revoke(self, scope: str, jtis: Iterable[str], *, revoked_by: str, now: datetime) -> None:
        """Record each id as revoked in `scope`; revoking one twice keeps the first record."""
        for jti in jtis:
            if not JTI.fullmatch(jti):
                raise ValueError(f"{jti[:64]!r} is not a token id (letters, digits, '.', '_', '-')")
            already = self._dynamodb.exceptions.ConditionalCheckFailedException
            # Revoking one twice keeps the first record (who, when).
            with aws_errors("dynamodb", "cannot write the revocations table"), contextlib.suppress(already):
                self._dynamodb.put_item(
                    TableName=self._table_name,
                    Item={
                        "jti": {"S": jti},
                        "scope": {"S": scope},
                        "revokedAt": {"S": now.isoformat()},
                        "revokedBy": {"S": revoked_by},
                    },
                    ConditionExpression="attribute_not_exists(jti)",
                )

    def revoked(self, scope: str) -> list[str]:
        """Every id revoked in `scope`, sorted (the index is eventually consistent: a write may lag)."""
        jtis: list[str] = []
        with aws_errors("dynamodb", "cannot read the revocations table"):
            paginator = self._dynamodb.get_paginator("query")
            for page in paginator.paginate(
                TableName=self._table_name,
                IndexName=SCOPE_INDEX,
                KeyConditionExpression="#scope = :scope",
                ExpressionAttributeNames={"#scope": "scope"},
                ExpressionAttributeValues={":scope": {"S": scope}},
            ):
                jtis.extend(item["jti"]["S"] for item in page["Items"])
        return sorted(set(jtis))


def revocation_secret(scope: str, jtis: Iterable[str], *, kubernetes_namespace: str | None = None) -> str:
    """The secret as `kumactl apply -f -` (Universal) or `kubectl apply -f -` (with a namespace) take it."""
    value = base64.b64encode(",".join(sorted(set(jtis))).encode()).decode()
    name = secret_name(scope)
    mesh = None if scope == ZONE_SCOPE else scope.removeprefix("mesh/")
    if kubernetes_namespace is None:
        kind = "GlobalSecret" if mesh is None else "Secret"
        mesh_line = "" if mesh is None else f"mesh: {mesh}\n"
        return f"type: {kind}\nname: {name}\n{mesh_line}data: {value}\n"
    secret_type = "system.kuma.io/global-secret" if mesh is None else "system.kuma.io/secret"
    labels = "" if mesh is None else f"  labels:\n    kuma.io/mesh: {mesh}\n"
    return (
        "apiVersion: v1\nkind: Secret\nmetadata:\n"
        f"  name: {name}\n  namespace: {kubernetes_namespace}\n{labels}"
        f"type: {secret_type}\ndata:\n  value: {value}\n"
    )
