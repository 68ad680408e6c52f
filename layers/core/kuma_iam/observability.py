"""The one Logger and Metrics of every function, and two small helpers to record what the core does."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

# Libraries that log the wire at DEBUG: botocore writes request headers (the function's X-Amz-Security-Token,
# signatures) and response bodies (AssumeRole's SecretAccessKey and SessionToken); boto3 and urllib3 their
# calls. Lambda puts the root logger at DEBUG with ApplicationLogLevel=DEBUG, and these loggers follow the
# root unless they have a level of their own: WARNING keeps them quiet whatever the root says.
WIRE_LOGGERS = ("botocore", "boto3", "urllib3")
for _name in WIRE_LOGGERS:
    logging.getLogger(_name).setLevel(logging.WARNING)

logger = Logger(service="kuma-iam")
metrics = Metrics(namespace="KumaIam", service="kuma-iam")


def metrics_count(name: str, **dimensions: str) -> None:
    """Count one event; with dimensions it goes out at once as its own EMF record (e.g. denies by reason)."""
    if not dimensions:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
        for key, value in dimensions.items():
            metric.add_dimension(name=key, value=value)


@contextmanager
def timed(name: str) -> Iterator[None]:
    """Record how long the block took, in milliseconds, whether it succeeded or not."""
    started = time.perf_counter()
    try:
        yield
    finally:
        metrics.add_metric(
            name=name, unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000
        )
