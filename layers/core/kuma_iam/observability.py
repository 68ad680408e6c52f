"""The one Logger and Metrics of every function, and two small helpers to record what the core does."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

logger = Logger(service="kuma-iam")
metrics = Metrics(namespace="KumaIam", service="kuma-iam")

# At DEBUG botocore logs whole requests and answers, signatures included; AWS's answers carry secrets (a Kuma
# signing key from Secrets Manager, AssumeRole's credentials). Whatever level a function runs at, not those.
for _wire_logger in ("botocore", "boto3"):
    logging.getLogger(_wire_logger).setLevel(logging.INFO)


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
