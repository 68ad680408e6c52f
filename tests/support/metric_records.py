"""Metrics as CloudWatch sees them: the EMF records a function writes, and the queries operators run on them.

`emit_every_metric(environment)` runs, in a fresh interpreter with exactly that environment (a function's
own, from the template: POWERTOOLS_* included), a handler that emits every metric of the core's catalogue
with every declared dimension value, and returns the EMF records it printed. `metric_queries(template)`
lists every place the template names a metric: dashboard rows (explicit and SEARCH), and alarms.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from support.cfn_template import Template
from support.project_files import REPO

# A handler decorated as every function's is, emitting each declared metric with each declared value.
_EMIT_EVERYTHING = """
import itertools
from kuma_iam.observability import METRICS, metrics, record_metric

@metrics.log_metrics
def handler(event, context):
    for metric in METRICS:
        names = [dimension.name for dimension in metric.dimensions]
        for values in itertools.product(*(dimension.values for dimension in metric.dimensions)):
            record_metric(metric, 1, **dict(zip(names, values, strict=True)))

handler({}, None)
"""
_SEARCH = re.compile(r"SEARCH\(\s*'\{(?P<schema>[^}]*)\}(?P<terms>[^']*)'")
_SEARCH_TERM = re.compile(r'(?P<key>[\w.:-]+)\s*=\s*"(?P<value>[^"]*)"')


@dataclass(frozen=True)
class MetricRecord:
    """One metric value in one EMF record: what CloudWatch files it under."""

    namespace: str
    name: str
    dimension_sets: tuple[frozenset[str], ...]
    dimensions: Mapping[str, str]


@dataclass(frozen=True)
class MetricQuery:
    """A dashboard row or alarm metric: exact dimensions (a row, an alarm), or a SEARCH schema."""

    where: str
    namespace: str
    name: str
    dimension_names: frozenset[str]
    dimension_values: Mapping[str, str]


def emit_every_metric(environment: Mapping[str, str]) -> list[MetricRecord]:
    clean = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    completed = subprocess.run(
        [sys.executable, "-c", _EMIT_EVERYTHING],
        env={**clean, **environment},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return list(emf_records(completed.stdout))


def emf_records(output: str) -> Iterator[MetricRecord]:
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if "_aws" not in record:
            continue
        for directive in record["_aws"]["CloudWatchMetrics"]:
            sets = tuple(frozenset(names) for names in directive["Dimensions"])
            keys = set().union(*sets) if sets else set()
            for metric in directive["Metrics"]:
                yield MetricRecord(
                    namespace=directive["Namespace"],
                    name=metric["Name"],
                    dimension_sets=sets,
                    dimensions={key: str(record[key]) for key in keys},
                )


def metric_queries(template: Template) -> Iterator[MetricQuery]:
    for name in template.of_type("AWS::CloudWatch::Dashboard"):
        body = template.properties(name)["DashboardBody"]
        for widget in json.loads(body)["widgets"]:
            yield from _widget_queries(f"{name} '{widget.get('properties', {}).get('title')}'", widget)
    for name in template.of_type("AWS::CloudWatch::Alarm"):
        properties = template.properties(name)
        if "MetricName" in properties:
            yield _alarm_query(name, properties)
        for query in properties.get("Metrics", []):
            if "MetricStat" in query:
                yield _alarm_query(f"{name} {query['Id']}", query["MetricStat"]["Metric"])


def _alarm_query(where: str, metric: Mapping[str, Any]) -> MetricQuery:
    dimensions = {item["Name"]: item["Value"] for item in metric.get("Dimensions", [])}
    return MetricQuery(where, metric["Namespace"], metric["MetricName"], frozenset(dimensions), dimensions)


def _widget_queries(where: str, widget: Mapping[str, Any]) -> Iterator[MetricQuery]:
    previous: list[Any] = []
    for row in widget.get("properties", {}).get("metrics", []):
        fields = [item for item in row if not isinstance(item, dict)]
        options = next((item for item in row if isinstance(item, dict)), {})
        if "expression" in options:
            yield from _search_queries(where, options["expression"])
            continue
        if fields and fields[0] == "...":  # the previous row's metric with other options
            fields = previous
        elif fields and fields[0] == ".":
            raise AssertionError(f"{where}: '.' shorthand is not understood by this test; write the row out")
        previous = fields
        namespace, name, *pairs = fields
        dimensions = dict(zip(pairs[::2], pairs[1::2], strict=True))
        yield MetricQuery(where, namespace, name, frozenset(dimensions), dimensions)


def _search_queries(where: str, expression: str) -> Iterator[MetricQuery]:
    for match in _SEARCH.finditer(expression):
        namespace, *names = [part.strip().strip('"') for part in match["schema"].split(",")]
        terms = {term["key"]: term["value"] for term in _SEARCH_TERM.finditer(match["terms"])}
        metric_name = terms.pop("MetricName", None)
        assert metric_name, f'{where}: SEARCH without MetricName="...": {expression}'
        yield MetricQuery(f"{where} SEARCH", namespace, metric_name, frozenset(names), terms)
