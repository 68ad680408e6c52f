"""Every metric reaches the dashboard and the alarms with exactly the dimensions they ask for.

A CloudWatch query names a metric by its whole dimension set: `SEARCH('{KumaIam,reason} ...')` finds nothing
of a metric filed under {reason, service}, and an alarm on {service: sts} never sees {service, upstream}. So
for each function of each template, a handler emits every metric the core declares
(kuma_iam/observability.py, METRICS) in a fresh interpreter with the function's own environment from the
template, POWERTOOLS_* included (the sam tier strips those, which is how the empty "denied" line hid), and
each EMF record is held to its declaration, to every dashboard query and alarm that names its metric, and to
README's table of metrics. Metric filters on access logs are the template's other source of KumaIam metrics.
A new function, a new metric or a new widget is covered without touching this file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cache

import pytest

from kuma_iam.observability import METRICS, NAMESPACE, SERVICE_DIMENSION
from support.cfn_template import STACK_NAME, Template, cloudformation_templates, placeholder
from support.metric_records import MetricQuery, MetricRecord, emit_every_metric, metric_queries
from support.project_files import REPO

_CONTEXT_VARIABLE = re.compile(r"\$context\.[\w.]+")
_README_TABLE = re.compile(
    r"^\| metric \| unit \| dimensions \|.*\n\|[-| ]+\|\n(?P<rows>(?:\|.*\n)+)", re.MULTILINE
)
_README_ROW = re.compile(r"^\|(?P<names>[^|]*)\|\s*(?P<unit>\w+)\s*\|(?P<dimensions>[^|]*)\|", re.MULTILINE)


def _functions() -> list[tuple[str, str]]:
    return [
        (str(path.relative_to(REPO)), name)
        for path in cloudformation_templates()
        for name in Template.load(path).of_type("AWS::Serverless::Function")
    ]


@cache
def _template(relative: str) -> Template:
    return Template.load(REPO / relative)


@cache
def _records(relative: str, function: str) -> tuple[MetricRecord, ...]:
    return tuple(emit_every_metric(_template(relative).function_environment(function)))


def _metric_filter_metrics(template: Template) -> dict[str, MetricRecord]:
    """KumaIam metrics the template's metric filters make of log lines, as CloudWatch files them."""
    found = {}
    for name in template.of_type("AWS::Logs::MetricFilter"):
        properties = template.properties(name)
        constants = _access_log_constants(template, properties["LogGroupName"])
        for transformation in properties["MetricTransformations"]:
            dimensions = {
                item["Key"]: constants.get(item["Value"].removeprefix("$."), item["Value"])
                for item in transformation.get("Dimensions", [])
            }
            found[transformation["MetricName"]] = MetricRecord(
                namespace=transformation["MetricNamespace"],
                name=transformation["MetricName"],
                dimension_sets=(frozenset(dimensions),),
                dimensions=dimensions,
            )
    return found


def _access_log_constants(template: Template, log_group: str) -> dict[str, str]:
    """The fixed fields of the access log written to `log_group` (its $context variables left out)."""
    for api in template.of_type("AWS::Serverless::HttpApi"):
        settings = template.properties(api).get("AccessLogSettings", {})
        if settings.get("DestinationArn") == log_group.removesuffix(">") + ".Arn>":
            fields = json.loads(_CONTEXT_VARIABLE.sub("variable", settings["Format"]))
            return {key: value for key, value in fields.items() if value != "variable"}
    return {}


def _mismatch(query: MetricQuery, records: Iterable[MetricRecord]) -> str | None:
    """Why `query` would find none of `records` (of its metric), or None when it finds them."""
    candidates = [record for record in records if record.name == query.name]
    if not candidates:
        return f"{query.where}: {query.namespace}/{query.name} is neither emitted nor made by a metric filter"
    for record in candidates:
        if record.namespace != query.namespace:
            continue
        if frozenset(record.dimensions) != query.dimension_names:
            continue
        if all(record.dimensions.get(key) == value for key, value in query.dimension_values.items()):
            return None
    emitted = sorted({tuple(sorted(record.dimensions.items())) for record in candidates})
    return (
        f"{query.where}: asks {query.namespace}/{query.name} for dimensions {sorted(query.dimension_names)} "
        f"= {dict(query.dimension_values)}, but it is filed under {emitted[:3]}"
    )


@pytest.mark.parametrize(("template", "function"), _functions())
def test_every_declared_metric_is_emitted_with_its_declared_dimensions(template: str, function: str) -> None:
    # Given every metric of the catalogue, emitted with the function's environment from the template
    records = _records(template, function)
    environment = _template(template).function_environment(function)

    # Then each lands once per declared value, in the namespace, with exactly its declared dimension set,
    # `service` being the stack's name (so one stack's dashboard never counts another's metrics)
    assert environment.get("POWERTOOLS_SERVICE_NAME") == STACK_NAME, environment
    for metric in METRICS:
        mine = [record for record in records if record.name == metric.name]
        expected = 1
        for dimension in metric.dimensions:
            expected *= len(dimension.values)
        assert len(mine) == expected, f"{metric.name}: {len(mine)} records, declared {expected}"
        for record in mine:
            assert record.namespace == NAMESPACE
            assert record.dimension_sets == (metric.dimension_names,), (metric.name, record.dimension_sets)
            assert record.dimensions[SERVICE_DIMENSION] == STACK_NAME
    assert {record.name for record in records} == {metric.name for metric in METRICS}


@pytest.mark.parametrize(("template", "function"), _functions())
def test_every_dashboard_query_and_alarm_finds_what_is_emitted(template: str, function: str) -> None:
    # Given what the function emits, what the template's metric filters make, and every query naming a metric
    loaded = _template(template)
    filtered = _metric_filter_metrics(loaded)
    assert not set(filtered) & {metric.name for metric in METRICS}, (
        "a metric filter reuses a core metric's name"
    )
    sources = [*_records(template, function), *filtered.values()]
    queries = [query for query in metric_queries(loaded) if query.namespace == NAMESPACE]
    assert queries

    # Then each query asks for exactly the dimension set (and values) of records that exist
    problems = [problem for query in queries if (problem := _mismatch(query, sources))]
    assert not problems, "\n".join(problems)


def test_metric_filters_file_their_metrics_like_the_core() -> None:
    # Given the metric filters of every template
    for path in cloudformation_templates():
        for metric in _metric_filter_metrics(Template.load(path)).values():
            # Then they too carry service=<stack name>, and nothing a log line's writer chooses
            assert metric.namespace == NAMESPACE
            assert metric.dimensions == {SERVICE_DIMENSION: STACK_NAME}, (metric.name, metric.dimensions)


def test_the_comparison_sees_the_bug_it_exists_for() -> None:
    # Given a record as Powertools files Denied, and the search the dashboard had before
    record = MetricRecord(
        NAMESPACE, "Denied", (frozenset({"reason", "service"}),), {"reason": "x", "service": "s"}
    )
    old = MetricQuery("old", NAMESPACE, "Denied", frozenset({"reason"}), {})
    fixed = MetricQuery("new", NAMESPACE, "Denied", frozenset({"reason", "service"}), {"service": "s"})

    # Then the old one is a mismatch and the fixed one is not
    assert _mismatch(old, [record])
    assert _mismatch(fixed, [record]) is None


def test_readme_table_of_metrics_says_what_is_emitted() -> None:
    # Given README's table of metrics, and every KumaIam metric: the core's and the metric filters'
    table = _README_TABLE.search((REPO / "README.md").read_text())
    assert table, "README has no table headed | metric | unit | dimensions |"
    rows = {
        name: (row["unit"], frozenset(re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", row["dimensions"]))))
        for row in _README_ROW.finditer(table["rows"])
        for name in re.findall(r"`(\w+)`", row["names"])
    }
    declared = {metric.name: (metric.unit.value, metric.dimension_names) for metric in METRICS}
    for path in cloudformation_templates():
        for name, metric in _metric_filter_metrics(Template.load(path)).items():
            declared[name] = ("Count", frozenset(metric.dimensions))

    # Then README has a row for each, with its unit and its whole dimension set, and none for a metric that
    # does not exist
    assert set(rows) == set(declared), set(rows) ^ set(declared)
    for name, unit_and_dimensions in declared.items():
        assert rows[name] == unit_and_dimensions, (name, rows[name], unit_and_dimensions)


def test_dashboard_bodies_are_json_on_the_grid_and_reference_what_exists() -> None:
    for path in cloudformation_templates():
        template = Template.load(path)
        for name in template.of_type("AWS::CloudWatch::Dashboard"):
            # Given the dashboard body, its ${...} references resolved
            body = template.properties(name)["DashboardBody"]
            dashboard = json.loads(body)

            # Then every widget sits on the 24-column grid, and each reference names a resource
            assert dashboard["widgets"]
            for widget in dashboard["widgets"]:
                assert widget["x"] + widget["width"] <= 24, widget
            for reference in re.findall(r"<([A-Za-z0-9]+)(?:\.[A-Za-z]+)?>", body):
                assert reference in template.resources, reference
            assert placeholder("AWS::StackName") not in body
