"""The one Logger and Metrics of every function, and the catalogue of every metric the core emits.

Each metric is declared here once, with its unit and its dimensions. Every record also carries `service`, the
Powertools service name (POWERTOOLS_SERVICE_NAME: the stack's name in template.yaml, so two stacks in one
region never mix). tests/unit/test_metric_dimensions.py emits every metric of this catalogue with each
function's environment from the template and holds the dashboard, the alarms and README to what it sees.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import get_args

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from kuma_iam.errors import DenyReason, Upstream
from kuma_iam.rules import RULES

NAMESPACE = "KumaIam"
# Powertools adds it to every record; a metric's own dimension may never take this name.
SERVICE_DIMENSION = "service"

# Libraries that log the wire at DEBUG: botocore writes request headers (the function's X-Amz-Security-Token,
# signatures) and response bodies (AssumeRole's SecretAccessKey and SessionToken, a Kuma signing key from
# Secrets Manager); boto3 and urllib3 their calls. Lambda puts the root logger at DEBUG with
# ApplicationLogLevel=DEBUG, and these loggers follow the root unless they have a level of their own:
# WARNING keeps them quiet whatever the root says.
WIRE_LOGGERS = ("botocore", "boto3", "urllib3")
for _name in WIRE_LOGGERS:
    logging.getLogger(_name).setLevel(logging.WARNING)

# The service name comes from POWERTOOLS_SERVICE_NAME (Powertools' "service_undefined" when unset).
logger = Logger()
metrics = Metrics(namespace=NAMESPACE, service=logger.service)


@dataclass(frozen=True)
class Dimension:
    """A metric dimension and every value it may take: each value is a metric of its own (billed), so the
    set is closed and never comes from a caller's input."""

    name: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class MetricSpec:
    """A metric the core emits: its name, unit, meaning (README's metrics table) and own dimensions."""

    name: str
    unit: MetricUnit
    meaning: str
    dimensions: tuple[Dimension, ...] = ()

    def __post_init__(self) -> None:
        names = [dimension.name for dimension in self.dimensions]
        if SERVICE_DIMENSION in names or len(set(names)) != len(names):
            raise ValueError(f"metric {self.name}: dimensions {names} repeat or shadow '{SERVICE_DIMENSION}'")

    @property
    def dimension_names(self) -> frozenset[str]:
        """The dimension set of every record of this metric, as a dashboard query or an alarm must name it."""
        return frozenset({SERVICE_DIMENSION, *(dimension.name for dimension in self.dimensions)})


ALLOWED = MetricSpec("Allowed", MetricUnit.Count, "identities allowed")
DENIED = MetricSpec(
    "Denied",
    MetricUnit.Count,
    "identities denied, by deny reason (`sts_rejected` and `account_not_authorized` in bursts are attacks)",
    (Dimension("reason", tuple(reason.value for reason in DenyReason)),),
)
INVALID_REQUEST = MetricSpec(
    "InvalidRequest", MetricUnit.Count, "malformed requests answered 400 (a rising rate is someone probing)"
)
UPSTREAM_ERROR = MetricSpec(
    "UpstreamError",
    MetricUnit.Count,
    "AWS calls that failed (answered 429/503), by the AWS service that failed",
    (Dimension("upstream", get_args(Upstream)),),
)
ROLE_CACHE_HIT = MetricSpec("RoleCacheHit", MetricUnit.Count, "role reads answered from the cache")
ROLE_CACHE_MISS = MetricSpec("RoleCacheMiss", MetricUnit.Count, "role reads that went to IAM")
STS_LATENCY = MetricSpec("StsLatency", MetricUnit.Milliseconds, "time of each forwarded GetCallerIdentity")
IAM_LATENCY = MetricSpec("IamLatency", MetricUnit.Milliseconds, "time of each iam:GetRole")
TOKEN_ISSUED = MetricSpec(
    "TokenIssued", MetricUnit.Count, "Kuma tokens the token issuer signed and handed out"
)
TOKEN_DENIED = MetricSpec(
    "TokenDenied",
    MetricUnit.Count,
    "token requests refused (403), by deny reason (`caller_mismatch`: someone else's identity token)",
    (Dimension("reason", tuple(reason.value for reason in DenyReason)),),
)
KMS_SIGN_LATENCY = MetricSpec("KmsSignLatency", MetricUnit.Milliseconds, "time of each kms:Sign of a token")
IAM_LATENCY = MetricSpec(
    "IamLatency", MetricUnit.Milliseconds, "time of each IAM read (GetRole, a listing page)"
)

COMPLIANCE_FINDING = MetricSpec(
    "ComplianceFinding",
    MetricUnit.Count,
    "tag-compliance findings, by rule (kuma_iam/rules.py; HighSeverityFindingsAlarm watches the HIGH ones)",
    (Dimension("rule", tuple(RULES)),),
)
COMPLIANCE_REMEDIATION = MetricSpec(
    "ComplianceRemediation", MetricUnit.Count, "roles whose kuma.io tags enforce mode removed"
)
COMPLIANCE_OUTPUT_ERROR = MetricSpec(
    "ComplianceOutputError",
    MetricUnit.Count,
    "findings an output refused (the invocation fails and is retried), by output",
    (Dimension("output", ("sns", "events", "securityhub")),),
)
INVALID_EVENT = MetricSpec(
    "InvalidEvent", MetricUnit.Count, "events tag compliance refused as malformed (never retried)"
)
SWEEP_DURATION = MetricSpec("SweepDuration", MetricUnit.Milliseconds, "time of each scheduled sweep")
ROLES_EVALUATED = MetricSpec("RolesEvaluated", MetricUnit.Count, "roles each scheduled sweep evaluated")

# Every metric the functions emit. A new one is declared here, and only what is declared can be emitted.
METRICS: tuple[MetricSpec, ...] = (
    ALLOWED,
    DENIED,
    INVALID_REQUEST,
    UPSTREAM_ERROR,
    ROLE_CACHE_HIT,
    ROLE_CACHE_MISS,
    STS_LATENCY,
    IAM_LATENCY,
    TOKEN_ISSUED,
    TOKEN_DENIED,
    KMS_SIGN_LATENCY,
    COMPLIANCE_FINDING,
    COMPLIANCE_REMEDIATION,
    COMPLIANCE_OUTPUT_ERROR,
    INVALID_EVENT,
    SWEEP_DURATION,
    ROLES_EVALUATED,
)


def metrics_count(metric: MetricSpec, **dimensions: str) -> None:
    """Count one event of `metric`, e.g. metrics_count(DENIED, reason="sts_rejected")."""
    record_metric(metric, 1, **dimensions)


def record_metric(metric: MetricSpec, value: float, **dimensions: str) -> None:
    """One value of a declared metric; one with dimensions of its own goes out at once, as its own record."""
    _check_dimensions(metric, dimensions)
    if not metric.dimensions:
        metrics.add_metric(name=metric.name, unit=metric.unit, value=value)
        return
    # `service` set here, as on the aggregated records: never left to single_metric's own reading of the env.
    with single_metric(
        name=metric.name,
        unit=metric.unit,
        value=value,
        namespace=NAMESPACE,
        default_dimensions={SERVICE_DIMENSION: logger.service},
    ) as single:
        for name, dimension_value in dimensions.items():
            single.add_dimension(name=name, value=dimension_value)


@contextmanager
def timed(metric: MetricSpec) -> Iterator[None]:
    """Record how long the block took, in milliseconds, whether it succeeded or not."""
    started = time.perf_counter()
    try:
        yield
    finally:
        record_metric(metric, (time.perf_counter() - started) * 1000)


def _check_dimensions(metric: MetricSpec, given: Mapping[str, str]) -> None:
    # A programming error (types stop most of them first): a record outside the catalogue would be a metric
    # no dashboard or alarm watches.
    declared = {dimension.name: dimension.values for dimension in metric.dimensions}
    if set(given) != set(declared):
        raise ValueError(f"metric {metric.name} takes dimensions {sorted(declared)}, not {sorted(given)}")
    for name, value in given.items():
        if value not in declared[name]:
            raise ValueError(f"metric {metric.name}: {value!r} is not a declared value of {name}")
