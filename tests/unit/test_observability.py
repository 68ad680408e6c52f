"""The core's logging and metrics: libraries that log the wire stay above DEBUG whatever the root level is;
an invocation's metrics are written once, as CloudWatch takes them."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from kuma_iam import observability


@pytest.fixture
def root_at_debug() -> Iterator[None]:
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.DEBUG)  # what Lambda does with ApplicationLogLevel=DEBUG
    yield
    root.setLevel(previous)


@pytest.mark.parametrize(
    "name",
    [
        "botocore.endpoint",  # request headers: the function's X-Amz-Security-Token, signatures
        "botocore.parsers",  # response bodies: AssumeRole's SecretAccessKey and SessionToken
        "botocore.auth",  # canonical request and string to sign
        "botocore.hooks",
        "boto3.resources.action",
        "urllib3.connectionpool",
    ],
)
def test_wire_loggers_do_not_log_debug_with_the_root_at_debug(name: str, root_at_debug: None) -> None:
    assert name.split(".")[0] in observability.WIRE_LOGGERS
    assert not logging.getLogger(name).isEnabledFor(logging.DEBUG)
    assert logging.getLogger(name).isEnabledFor(logging.WARNING)


def _records(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


@pytest.fixture(autouse=True)
def no_pending_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    """What earlier tests recorded outside a handler is written and dropped before each test."""
    observability.metrics.flush()
    capsys.readouterr()


def test_an_invocation_writes_its_metrics_once_whether_it_returns_or_raises(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a handler that counts a deny and then fails
    @observability.metrics.log_metrics
    def failing(event: object, context: object) -> None:
        observability.metrics_count(observability.DENIED, reason="sts_rejected")
        raise RuntimeError("boom")

    # When it runs
    with pytest.raises(RuntimeError):
        failing({}, None)

    # Then the deny was still written, once, in its own record; a second invocation writes nothing more
    (record,) = _records(capsys.readouterr().out)
    assert record["Denied"] == [1.0]
    assert record["reason"] == "sts_rejected"

    @observability.metrics.log_metrics
    def quiet(event: object, context: object) -> None:
        pass

    quiet({}, None)
    assert _records(capsys.readouterr().out) == []


def test_a_sweep_of_many_findings_writes_records_of_at_most_100_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an invocation that counts 250 findings of one rule (CloudWatch takes 100 values per record)
    @observability.metrics.log_metrics
    def sweep(event: object, context: object) -> None:
        for _ in range(250):
            observability.metrics_count(observability.COMPLIANCE_FINDING, rule="kuma-type-missing")

    sweep({}, None)

    # Then every value is written, in records of at most 100 values, each with the rule's dimension set
    records = _records(capsys.readouterr().out)
    assert [len(record["ComplianceFinding"]) for record in records] == [100, 100, 50]  # type: ignore[arg-type]
    for record in records:
        assert record["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "rule"]]  # type: ignore[index]


# --- the log formatter: Powertools' lines, field for field ------------------------------------------------

_CONTEXT_KEYS: dict[str, Any] = {
    "service": "kuma-iam",
    "sampling_rate": None,
    "cold_start": True,
    "function_name": "VerifierFunction",
    "function_memory_size": 512,
    "function_arn": "arn:aws:lambda:us-east-1:111111111111:function:VerifierFunction",
    "function_request_id": "r-1",
    "correlation_id": "c-1",
}


def _record(
    message: object, *args: object, created: float = 1_795_000_000.25, **extra: Any
) -> logging.LogRecord:
    record = logging.getLogger("kuma-iam").makeRecord(
        "kuma-iam", logging.INFO, "verify.py", 180, message, args, None, "verify", extra
    )
    record.created = created
    record.msecs = (created - int(created)) * 1000
    return record


def _failing_record() -> logging.LogRecord:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("kuma-iam").makeRecord(
            "kuma-iam", logging.WARNING, "http.py", 9, "failed", (), sys.exc_info(), "f", {"detail": "x"}
        )
    return record


RECORDS = {
    "decision-with-fields": lambda: _record(
        "identity allowed", account="111111111111", roleArn="arn:aws:iam::1:role/x", mesh=None, dataplane="dp"
    ),
    "deny-with-list": lambda: _record("identity denied", reason="mesh_mismatch", failedAccounts=["2", "3"]),
    "percent-args": lambda: _record("evaluated %d roles", 3),
    "dict-message": lambda: _record({"event": "x", "n": 1}),
    "json-text-message": lambda: _record('{"a": 1}'),
    "number-text-message": lambda: _record("42"),
    "spaced-json-message": lambda: _record("  [1, 2]"),
    "nan-message": lambda: _record("NaN"),
    "extra-overrides-a-key": lambda: _record("x", service="another", correlation_id=None),
    "last-millisecond": lambda: _record("x", created=1_795_000_000.9996),
    "next-second": lambda: _record("x", created=1_795_000_001.001),
    "exception": _failing_record,
}


@pytest.mark.parametrize("make", RECORDS.values(), ids=RECORDS.keys())
@pytest.mark.parametrize("trace", [None, "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8"])
def test_json_log_formatter_writes_what_powertools_writes(
    make: Callable[[], logging.LogRecord], trace: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Powertools' formatter and ours, with the keys a Lambda invocation appends
    if trace:
        monkeypatch.setenv("_X_AMZN_TRACE_ID", trace)
    ours, theirs = observability.JsonLogFormatter(), LambdaPowertoolsFormatter()
    for formatter in (ours, theirs):
        formatter.append_keys(**_CONTEXT_KEYS)

    # Then each record becomes the same line, byte for byte (after an earlier line, for the time cache)
    ours.format(_record("warm-up", created=1_795_000_000.5))
    record = make()
    assert ours.format(logging.makeLogRecord(record.__dict__)) == theirs.format(record)


def test_json_log_formatter_leaves_unusual_settings_to_powertools() -> None:
    # Given fields set to formats of their own, and thread-safe keys
    ours, theirs = observability.JsonLogFormatter(), LambdaPowertoolsFormatter()
    for formatter in (ours, theirs):
        formatter.append_keys(**_CONTEXT_KEYS, location="%(module)s")
    assert ours.format(_record("x", a=1)) == theirs.format(_record("x", a=1))
    ours.thread_safe_append_keys(tenant="t-1")
    try:
        assert '"tenant":"t-1"' in ours.format(_record("x"))
    finally:
        ours.thread_safe_clear_keys()
