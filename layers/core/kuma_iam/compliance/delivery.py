"""At-least-once delivery made exactly-once in effect: Powertools Idempotency on a DynamoDB table keyed by the
EventBridge event id. A duplicate gets the first delivery's summary back, with no second notification,
event or removal; a delivery that failed leaves no record, so its retry runs in full."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from kuma_iam.errors import UpstreamUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# EventBridge retries a delivery for up to 24 hours, and Lambda's asynchronous retries add up to 6 more:
# remember each event a while longer than either.
REMEMBER_SECONDS = 2 * 24 * 3600
KEY_PREFIX = "kuma-iam-compliance"


class OncePerEvent:
    """Runs `work` once per event id; later deliveries of the same id answer with the stored result."""

    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        self.table_name = table_name
        self._config = IdempotencyConfig(
            event_key_jmespath="id", raise_on_no_idempotency_key=True, expires_after_seconds=REMEMBER_SECONDS
        )
        self._store = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=dynamodb)

    def run(
        self, event: dict[str, Any], work: Callable[[], dict[str, Any]], context: LambdaContext | None = None
    ) -> dict[str, Any]:
        if context is not None:
            # Lets an invocation that timed out mid-way be retried before the record's expiry.
            self._config.register_lambda_context(context)

        @idempotent_function(  # type: ignore[untyped-decorator]
            data_keyword_argument="event",
            persistence_store=self._store,
            config=self._config,
            key_prefix=KEY_PREFIX,
        )
        def once(event: dict[str, Any]) -> dict[str, Any]:
            return work()

        try:
            result: dict[str, Any] = once(event=event)
        except IdempotencyAlreadyInProgressError:
            raise UpstreamUnavailable(
                "dynamodb", f"event {event.get('id')!r} is being handled by another invocation; retry later"
            ) from None
        except IdempotencyPersistenceLayerError as error:
            raise UpstreamUnavailable(
                "dynamodb",
                f"the idempotency table {self.table_name} cannot be used: {type(error.__cause__).__name__}",
            ) from None
        return result
