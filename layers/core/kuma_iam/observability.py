"""The one Logger and metrics writer of every function, and the catalogue of every metric the core emits.

Each metric is declared here once, with its unit and its dimensions. Every record also carries `service`, the
Powertools service name (POWERTOOLS_SERVICE_NAME: the stack's name in template.yaml, so two stacks in one
region never mix). tests/unit/test_metric_dimensions.py emits every metric of this catalogue with each
function's environment from the template and holds the dashboard, the alarms and README to what it sees.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, get_args

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import RESERVED_LOG_ATTRS, LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import MetricUnit

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

# Powertools' default fields as its formatter fills them from a record: what the fast path knows to fill.
_DEFAULT_TEMPLATES = {
    "level": "%(levelname)s",
    "location": "%(funcName)s:%(lineno)d",
    "timestamp": "%(asctime)s",
}
_RESERVED = frozenset(RESERVED_LOG_ATTRS)
# The first character of any text json.loads would decode (Powertools decodes a message that is JSON).
_JSON_STARTS = frozenset('{["-0123456789tfnNI')


class JsonLogFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON log lines, field for field and in the same order, for less per line.

    Powertools' formatter copies each record's attributes, tries to decode every message as JSON (raising and
    catching an error for each plain-text one) and formats the time anew each line. The common record (a
    text message with `extra` fields, no exception, no %-arguments, the default time format) is formatted
    here directly, its time formatted once per second; every other record goes to Powertools' own code.
    tests/unit/test_observability.py holds both to the same output.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        head, _, tail = self.default_time_format.partition(self.custom_ms_time_directive)
        self._time_parts = (head, tail)
        self._second = -1
        self._second_text = ("", "")

    def format(self, record: logging.LogRecord) -> str:
        message = record.msg
        if (
            record.exc_info
            or record.args
            or record.stack_info
            or not isinstance(message, str)
            or self.datefmt
            or self.use_rfc3339_iso8601
            or self.thread_safe_get_current_keys()
        ):
            return super().format(record)
        line: dict[str, Any] = {}
        for key, value in self.log_format.items():
            if value and key in _RESERVED:
                if _DEFAULT_TEMPLATES.get(key) != value:
                    return super().format(record)  # a field set to a format of its own
                if key == "level":
                    line[key] = record.levelname
                elif key == "location":
                    line[key] = f"{record.funcName}:{record.lineno}"
                else:
                    line[key] = self._timestamp(record)
            else:
                line[key] = value
        for key, value in record.__dict__.items():
            if key not in _RESERVED:
                line[key] = value
        if message.lstrip()[:1] in _JSON_STARTS:
            message = self._extract_log_message(log_record=record)
        line["message"] = message
        line["xray_trace_id"] = self._get_latest_trace_id()
        return self.serialize(log={key: value for key, value in line.items() if value is not None})

    def _timestamp(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            moment = self.converter(record.created)
            head, tail = self._time_parts
            self._second_text = (time.strftime(head, moment), time.strftime(tail, moment))
            self._second = second
        head_text, tail_text = self._second_text
        return f"{head_text}{int(record.msecs):03d}{tail_text}"


# The service name comes from POWERTOOLS_SERVICE_NAME (Powertools' "service_undefined" when unset).
logger = Logger(logger_formatter=JsonLogFormatter())


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


# CloudWatch takes at most 100 values of one metric in one record.
MAX_VALUES_PER_RECORD = 100
Dimensions = tuple[tuple[str, str], ...]


class EmfMetrics:
    """The metrics of one invocation, written when it ends as CloudWatch Embedded Metric Format: one record
    per dimension set (the `service`-only metrics together, each Denied reason, each upstream its own), the
    very records Powertools' Metrics and single_metric wrote, in one write instead of one per dimensioned
    value and without Powertools' per-value validation and debug formatting.
    """

    def __init__(self, namespace: str, service: str) -> None:
        self.namespace = namespace
        self.service = service
        self._pending: dict[Dimensions, dict[MetricSpec, list[float]]] = {}
        self._directives: dict[tuple[tuple[str, ...], tuple[MetricSpec, ...]], str] = {}
        self._lock = threading.Lock()  # the local gateway calls handlers from several threads

    def add(self, metric: MetricSpec, value: float, dimensions: Dimensions = ()) -> None:
        with self._lock:
            values = self._pending.setdefault(dimensions, {}).setdefault(metric, [])
            values.append(float(value))
            if len(values) < MAX_VALUES_PER_RECORD:
                return
            full = {metric: self._pending[dimensions].pop(metric)}
        self._write([self._record(dimensions, full)])

    def flush(self) -> None:
        """Write what the invocation recorded (nothing when it recorded nothing)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        records = [self._record(dimensions, values) for dimensions, values in pending.items() if values]
        if records:
            self._write(records)

    def log_metrics[**P, R](self, handler: Callable[P, R]) -> Callable[P, R]:
        """Decorate a Lambda handler: its metrics are written when it returns or raises."""

        @functools.wraps(handler)
        def flushed(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return handler(*args, **kwargs)
            finally:
                self.flush()

        return flushed

    def _record(self, dimensions: Dimensions, values: Mapping[MetricSpec, list[float]]) -> str:
        # The directive (namespace, dimension set, metric names and units) repeats from one invocation to the
        # next: made once per shape, then only the timestamp and the values are new.
        names = tuple(name for name, _ in dimensions)
        shape = (names, tuple(values))
        directive = self._directives.get(shape)
        if directive is None:
            directive = self._directives[shape] = json.dumps(
                [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": [[SERVICE_DIMENSION, *names]],
                        "Metrics": [{"Name": metric.name, "Unit": metric.unit.value} for metric in values],
                    }
                ],
                separators=(",", ":"),
            )
        fields: dict[str, Any] = {SERVICE_DIMENSION: self.service, **dict(dimensions)}
        fields.update((metric.name, recorded) for metric, recorded in values.items())
        rest = json.dumps(fields, separators=(",", ":"))
        return (
            f'{{"_aws":{{"Timestamp":{int(time.time() * 1000)},"CloudWatchMetrics":{directive}}},{rest[1:]}'
        )

    @staticmethod
    def _write(records: list[str]) -> None:
        # sys.stdout as it is now (Lambda's, or a test's capture), flushed: the record is the invocation's.
        sys.stdout.write("\n".join(records) + "\n")
        sys.stdout.flush()


metrics = EmfMetrics(NAMESPACE, logger.service)


def metrics_count(metric: MetricSpec, **dimensions: str) -> None:
    """Count one event of `metric`, e.g. metrics_count(DENIED, reason="sts_rejected")."""
    record_metric(metric, 1, **dimensions)


def record_metric(metric: MetricSpec, value: float, **dimensions: str) -> None:
    """One value of a declared metric, written with the invocation's others when the handler returns."""
    if dimensions or metric.dimensions:
        _check_dimensions(metric, dimensions)
    metrics.add(metric, value, tuple(dimensions.items()))


class _Timed:
    __slots__ = ("_metric", "_started")

    def __init__(self, metric: MetricSpec) -> None:
        self._metric = metric
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        record_metric(self._metric, (time.perf_counter() - self._started) * 1000)


def timed(metric: MetricSpec) -> _Timed:
    """Record how long the block took, in milliseconds, whether it succeeded or not."""
    return _Timed(metric)


def _check_dimensions(metric: MetricSpec, given: Mapping[str, str]) -> None:
    # A programming error (types stop most of them first): a record outside the catalogue would be a metric
    # no dashboard or alarm watches.
    declared = {dimension.name: dimension.values for dimension in metric.dimensions}
    if set(given) != set(declared):
        raise ValueError(f"metric {metric.name} takes dimensions {sorted(declared)}, not {sorted(given)}")
    for name, value in given.items():
        if value not in declared[name]:
            raise ValueError(f"metric {metric.name}: {value!r} is not a declared value of {name}")
