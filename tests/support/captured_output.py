"""Read what a handler wrote: its EMF metric records, whether any secret leaked into the output, and
everything logged anywhere (stdout, stderr, every std logging record) while it ran."""

from __future__ import annotations

import base64
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from kuma_iam.identity.token import SignedRequest

SIGNATURE = re.compile(r"Signature=(?P<signature>[0-9a-f]{64})")


@dataclass(frozen=True)
class MetricPoint:
    name: str
    dimensions: Mapping[str, str]
    value: float


def emf_metrics(output: str) -> list[MetricPoint]:
    """Every metric value in the Embedded Metric Format records among the output's lines."""
    points: list[MetricPoint] = []
    for line in output.splitlines():
        record = _json_object(line)
        if record is None or "_aws" not in record:
            continue
        for directive in record["_aws"].get("CloudWatchMetrics", []):
            names = {key for dimension_set in directive.get("Dimensions", []) for key in dimension_set}
            dimensions = {key: str(record[key]) for key in names if key in record}
            for metric in directive.get("Metrics", []):
                values = record.get(metric["Name"], [])
                for value in values if isinstance(values, list) else [values]:
                    points.append(MetricPoint(metric["Name"], dimensions, float(value)))
    return points


def metric_count(output: str, name: str, **dimensions: str) -> float:
    return sum(
        point.value
        for point in emf_metrics(output)
        if point.name == name and all(point.dimensions.get(k) == v for k, v in dimensions.items())
    )


def upstream_errors(output: str) -> Counter[str]:
    """UpstreamError counts by their `upstream` dimension (sts, iam, dynamodb)."""
    counts: Counter[str] = Counter()
    for point in emf_metrics(output):
        if point.name == "UpstreamError":
            counts[point.dimensions.get("upstream", "?")] += int(point.value)
    return counts


def token_secrets(token: object, request: SignedRequest | None = None) -> list[str]:
    """What of a token must never be logged: itself, its signature, session token and Authorization."""
    found: list[str] = []
    if isinstance(token, str):
        found.append(token)
    elif isinstance(token, Mapping):
        found.extend(str(value) for value in token.values() if len(str(value)) >= 16)
    if request is not None:
        for name, value in request.headers:
            if name.lower() in {"authorization", "x-amz-security-token"} and value:
                found.append(value)
            if name.lower() == "authorization" and (match := SIGNATURE.search(value)):
                found.append(match["signature"])
        for name, value in request.headers:
            if name.lower() == "x-amz-security-token" and len(value) > 40:
                # a fragment too, in case something truncates or re-encodes the value
                found.extend([value[:40], base64.b64encode(value.encode()).decode()[:40]])
    return [secret for secret in found if len(secret) >= 16]


def header_secrets(requests: Iterable[Iterable[tuple[str, str]]]) -> list[str]:
    """Authorization and session-token values of requests the verifier itself sent (as a fake saw them)."""
    found: list[str] = []
    for headers in requests:
        for name, value in headers:
            if name.lower() in {"authorization", "x-amz-security-token"} and len(value) >= 16:
                found.append(value)
                if match := SIGNATURE.search(value):
                    found.append(match["signature"])
    return found


def assert_no_secrets(output: str, secrets: Iterable[str]) -> None:
    leaked = [secret[:12] + "…" for secret in secrets if secret and secret in output]
    assert not leaked, f"secrets reached the output: {leaked}"


def _json_object(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class LogRecordText(logging.Handler):
    """Every std logging record as text: its message and all its attributes, `extra` fields included.

    Records of the embedded AWS itself are left out: moto runs in this process but stands for AWS's own
    servers (its access control logs each request, signature and all, at DEBUG).
    """

    AWS_SIDE = ("moto", "werkzeug")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".", 1)[0] not in self.AWS_SIDE:
            self.lines.append(f"{record.getMessage()} {vars(record)!r}")


class EverythingLogged:
    """All output of this test: stdout and stderr (EMF metrics among them), the Powertools Logger's lines,
    and every std logging record at DEBUG, from any library and any thread."""

    def __init__(self, capfd: pytest.CaptureFixture[str], records: LogRecordText) -> None:
        self._capfd = capfd
        self._records = records
        self._captured: list[str] = []

    def discard(self) -> None:
        """Forget what was output so far (e.g. the test's own signing, which botocore logs at DEBUG)."""
        self._capfd.readouterr()
        self._captured.clear()
        self._records.lines.clear()

    def text(self) -> str:
        output = self._capfd.readouterr()
        self._captured.extend([output.out, output.err])
        return "".join(self._captured) + "\n".join(self._records.lines)
