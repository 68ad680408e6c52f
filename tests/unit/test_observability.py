"""The core's logging and metrics: libraries that log the wire stay above DEBUG whatever the root level is;
an invocation's metrics are written once, as CloudWatch takes them."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

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
