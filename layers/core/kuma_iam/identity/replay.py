"""One-time use of identity tokens: a conditional put per signature, kept until the token expires."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from kuma_iam.aws import aws_errors
from kuma_iam.errors import Denied, DenyReason, UpstreamUnavailable
from kuma_iam.identity.checks import StsCall

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class ReplayGuard:
    def __init__(self, dynamodb: DynamoDBClient, table_name: str, max_age: timedelta) -> None:
        self._dynamodb = dynamodb
        self._table_name = table_name
        self._max_age = max_age

    def claim(self, call: StsCall) -> None:
        """Record the token's first use; a second use of the same signature is Denied(replayed)."""
        # Only a hash is stored: the table never holds anything that helps rebuild a request.
        digest = hashlib.sha256(call.signature.encode()).hexdigest()
        expires = int((call.signed_at + self._max_age).timestamp())
        with aws_errors("dynamodb", "cannot record the token's use"):
            try:
                answer = self._dynamodb.put_item(
                    TableName=self._table_name,
                    Item={"pk": {"S": digest}, "expiresAt": {"N": str(expires)}},
                    ConditionExpression="attribute_not_exists(pk)",
                    ReturnConsumedCapacity="TOTAL",
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                    raise Denied(DenyReason.REPLAYED, "this identity token was already used") from None
                raise
        # A 200 that is not DynamoDB's (a proxy's page) must not pass for "recorded": that would fail open.
        if "ConsumedCapacity" not in answer:
            raise UpstreamUnavailable("dynamodb", "the replay table's answer is not DynamoDB's")
