"""The operator side of template.yaml: a valid dashboard, watching metrics the core really emits."""

from __future__ import annotations

import json
import re
from typing import Any

from cfnlint.decode import decode_str

from support.project_files import REPO

NAMESPACE = "KumaIam"
_SUB_REFERENCE = re.compile(r"\$\{([A-Za-z0-9:]+)(?:\.[A-Za-z]+)?\}")
_SEARCH_METRIC = re.compile(r'\{KumaIam,[a-z,]+\} MetricName=\\?"(\w+)\\?"')
_EMITTED = re.compile(r'\b(?:metrics_count|metrics_total|timed)\(\s*"(\w+)"')


def _template() -> dict[str, Any]:
    decoded, problems = decode_str((REPO / "template.yaml").read_text())
    assert not problems, problems
    return json.loads(json.dumps(decoded))


def _dashboard(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    body = template["Resources"]["OperatorDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    return body, json.loads(_SUB_REFERENCE.sub("placeholder", body))


def _emitted_metrics() -> set[str]:
    sources = (REPO / "layers" / "core" / "kuma_iam").rglob("*.py")
    return {name for path in sources for name in _EMITTED.findall(path.read_text())}


def test_dashboard_body_is_json_and_references_only_what_exists() -> None:
    # Given the dashboard body, its ${...} references replaced
    template = _template()
    body, dashboard = _dashboard(template)

    # Then it parses, every widget sits on the 24-column grid, and each reference names a resource
    assert dashboard["widgets"]
    for widget in dashboard["widgets"]:
        assert widget["x"] + widget["width"] <= 24, widget
    for name in _SUB_REFERENCE.findall(body):
        assert name.startswith("AWS::") or name in template["Resources"], name


def test_dashboard_and_alarms_watch_metrics_the_core_emits() -> None:
    # Given every KumaIam metric the dashboard and the alarms name
    template = _template()
    body, dashboard = _dashboard(template)
    watched = set(_SEARCH_METRIC.findall(body))
    for widget in dashboard["widgets"]:
        for metric in widget.get("properties", {}).get("metrics", []):
            if metric and metric[0] == NAMESPACE:
                watched.add(metric[1])
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            for query in resource["Properties"].get("Metrics", []):
                metric = query.get("MetricStat", {}).get("Metric", {})
                if metric.get("Namespace") == NAMESPACE:
                    watched.add(metric["MetricName"])

    # Then each is one the core emits (a renamed metric would leave a silent, empty widget or alarm)
    assert watched
    assert watched <= _emitted_metrics(), watched - _emitted_metrics()
