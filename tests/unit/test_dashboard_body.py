"""`streamline dashboard`'s pure part: DashboardBody parsing and the queries built from it.

BODY has the shape `cdk deploy` leaves in CloudWatch for our monitoring stack (resolved names,
CDK's metric options, a right axis, a single value, a metric without a period), plus the
console's shorthand and metric math. No AWS: the one reading test uses a scripted client.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from streamline.ops.dashboard import server
from streamline.ops.dashboard.body import (
    DashboardError,
    alarm_names,
    effective_period,
    expand_metric_rows,
    fallback_stat,
    metric_queries,
    parse_body,
    time_window,
)
from streamline.ops.dashboard.server import find_chart_js
from streamline.ops.dashboard.source import DashboardSource
from streamline.ops.target import Target

ALARM_ARN = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:"
INGEST = "streamline-dev-ingest-IngestFunction83726A21-U2QFHPEJCV8M"
QUEUE = "streamline-dev-processing-FulfilmentQueue26A1FA60-1"
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:Recovery"

BODY: dict[str, Any] = {
    "widgets": [
        {
            "type": "text",
            "width": 12,
            "height": 6,
            "x": 0,
            "y": 0,
            "properties": {"markdown": "# Streamline dev\nDrained by the `recovery` workflow."},
        },
        {
            "type": "alarm",
            "width": 12,
            "height": 6,
            "x": 12,
            "y": 0,
            "properties": {
                "title": "Alarms",
                "alarms": [f"{ALARM_ARN}IngestIteratorAge-4Y4J", f"{ALARM_ARN}IngestErrors-I0IQ"],
            },
        },
        {
            "type": "metric",
            "width": 5,
            "height": 6,
            "x": 0,
            "y": 6,
            "properties": {
                "view": "timeSeries",
                "title": "Ingest (Kinesis): duration",
                "region": "us-east-1",
                "metrics": [
                    [
                        "AWS/Lambda",
                        "Duration",
                        "FunctionName",
                        INGEST,
                        {"period": 60, "stat": "p99"},
                    ]
                ],
                "yAxis": {},
            },
        },
        {
            "type": "metric",
            "width": 5,
            "height": 6,
            "x": 5,
            "y": 6,
            "properties": {
                "view": "timeSeries",
                "title": "Fulfilment (SQS FIFO): queue depth / oldest message (s)",
                "region": "us-east-1",
                "metrics": [
                    [
                        "AWS/SQS",
                        "ApproximateNumberOfMessagesVisible",
                        "QueueName",
                        QUEUE,
                        {"period": 60, "stat": "Maximum"},
                    ],
                    [
                        "AWS/SQS",
                        "ApproximateAgeOfOldestMessage",
                        "QueueName",
                        QUEUE,
                        {"period": 60, "stat": "Maximum", "yAxis": "right"},
                    ],
                ],
                "yAxis": {},
            },
        },
        {
            "type": "metric",
            "width": 4,
            "height": 6,
            "x": 20,
            "y": 6,
            "properties": {
                "view": "singleValue",
                "title": "Fulfilment (SQS FIFO): dead letters",
                "region": "us-east-1",
                "metrics": [
                    [
                        "AWS/SQS",
                        "ApproximateNumberOfMessagesVisible",
                        "QueueName",
                        "dlq",
                        {"label": "Fulfilment DLQ", "period": 60, "stat": "Maximum"},
                    ]
                ],
            },
        },
        {
            "type": "metric",
            "width": 5,
            "height": 6,
            "x": 0,
            "y": 12,
            "properties": {
                "view": "timeSeries",
                "title": "Recovery workflow: throughput",
                "region": "us-east-1",
                # CDK leaves the period out when it is the default (5 minutes)
                "metrics": [
                    ["AWS/States", "ExecutionsStarted", "StateMachineArn", MACHINE, {"stat": "Sum"}]
                ],
                "yAxis": {},
            },
        },
    ]
}


def test_a_deployed_body_parses_into_widgets_in_place_with_their_titles() -> None:
    parsed = parse_body(json.dumps(BODY))

    assert [w.type for w in parsed.widgets] == [
        "text",
        "alarm",
        "metric",
        "metric",
        "metric",
        "metric",
    ]
    assert [(w.x, w.y, w.width, w.height) for w in parsed.widgets][:3] == [
        (0, 0, 12, 6),
        (12, 0, 12, 6),
        (0, 6, 5, 6),
    ]
    assert parsed.widgets[1].title == "Alarms"
    assert parsed.widgets[4].view == "singleValue"
    assert parsed.since_seconds is None


def test_each_metric_keeps_its_statistic_period_label_and_axis() -> None:
    widgets = parse_body(BODY).widgets

    (duration,) = widgets[2].metrics
    assert (duration.namespace, duration.name, duration.dimensions) == (
        "AWS/Lambda",
        "Duration",
        (("FunctionName", INGEST),),
    )
    assert (duration.stat, duration.period, duration.label, duration.extended) == (
        "p99",
        60,
        "Duration",
        True,
    )
    depth, age = widgets[3].metrics
    assert (depth.y_axis, age.y_axis) == ("left", "right")
    assert (depth.id, age.id) == ("m1", "m2")
    assert widgets[4].metrics[0].label == "Fulfilment DLQ"
    (started,) = widgets[5].metrics
    assert (started.stat, started.period) == ("Sum", 300)  # the console's default period


def test_widget_level_stat_and_period_apply_to_metrics_without_their_own() -> None:
    widget = {
        "type": "metric",
        "properties": {
            "period": 120,
            "stat": "Maximum",
            "metrics": [["NS", "A"], ["NS", "B", {"stat": "Minimum"}]],
        },
    }
    a, b = parse_body({"widgets": [widget]}).widgets[0].metrics

    assert (a.stat, a.period, b.stat, b.period) == ("Maximum", 120, "Minimum", 120)


def test_a_widget_without_stat_or_period_uses_the_consoles_defaults() -> None:
    widget = {"type": "metric", "properties": {"metrics": [["NS", "A"]]}}

    (a,) = parse_body({"widgets": [widget]}).widgets[0].metrics
    assert (a.stat, a.period) == ("Average", 300)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (  # "..." repeats the previous metric up to the fields written after it
            [["AWS/EC2", "CPUUtilization", "InstanceId", "i-1"], ["...", "i-2"]],
            ["AWS/EC2", "CPUUtilization", "InstanceId", "i-2"],
        ),
        (  # "..." with an options object after it
            [["AWS/SQS", "NumberOfMessagesSent", "QueueName", "a"], ["...", "b", {"stat": "Sum"}]],
            ["AWS/SQS", "NumberOfMessagesSent", "QueueName", "b"],
        ),
        (  # "..." at the end: the rest of the previous metric
            [["AWS/Lambda", "Errors", "FunctionName", "f"], ["AWS/Lambda", "Throttles", "..."]],
            ["AWS/Lambda", "Throttles", "FunctionName", "f"],
        ),
        (  # "." repeats the field at the same position
            [["AWS/EC2", "NetworkIn", "InstanceId", "i-1"], [".", "NetworkOut", ".", "."]],
            ["AWS/EC2", "NetworkOut", "InstanceId", "i-1"],
        ),
    ],
)
def test_the_consoles_shorthand_expands_from_the_previous_metric(
    rows: list[list[Any]], expected: list[str]
) -> None:
    assert [fields for fields, _ in expand_metric_rows(rows)][-1] == expected


def test_an_expression_between_metrics_does_not_break_the_shorthand() -> None:
    rows = [
        ["NS", "Errors", "FunctionName", "f", {"id": "errors", "visible": False}],
        [{"expression": "100 * errors / invocations", "label": "Error rate", "id": "rate"}],
        ["...", "g"],
    ]

    assert [fields for fields, _ in expand_metric_rows(rows)] == [
        ["NS", "Errors", "FunctionName", "f"],
        [],
        ["NS", "Errors", "FunctionName", "g"],
    ]


@pytest.mark.parametrize(
    "rows",
    [[["...", "x"]], [[".", "Name"]], [["NS", "A", "B", "b"], ["...", "1", "2", "3", "4", "5"]]],
)
def test_shorthand_without_a_metric_to_repeat_is_an_error(rows: list[list[Any]]) -> None:
    with pytest.raises(ValueError, match=r"previous|above"):
        list(expand_metric_rows(rows))


def test_metric_math_becomes_expression_queries_and_hidden_metrics_return_no_data() -> None:
    widget = {
        "type": "metric",
        "properties": {
            "period": 60,
            "stat": "Sum",
            "metrics": [
                [{"expression": "100 * m1 / m2", "label": "Error rate", "id": "e1"}],
                ["AWS/Lambda", "Errors", "FunctionName", "f", {"id": "m1", "visible": False}],
                ["AWS/Lambda", "Invocations", "FunctionName", "f", {"visible": False}],
            ],
        },
    }
    specs = parse_body({"widgets": [widget]}).widgets[0].metrics

    # the unnamed metric is numbered like the console, skipping the ids already taken
    assert [s.id for s in specs] == ["e1", "m1", "m2"]
    queries = metric_queries(specs, 3 * 3600)
    assert queries[0] == {
        "Id": "e1",
        "Expression": "100 * m1 / m2",
        "Period": 60,
        "ReturnData": True,
    }
    assert queries[1] == {
        "Id": "m1",
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/Lambda",
                "MetricName": "Errors",
                "Dimensions": [{"Name": "FunctionName", "Value": "f"}],
            },
            "Period": 60,
            "Stat": "Sum",
        },
        "ReturnData": False,
    }
    assert specs[0].label == "Error rate" and not specs[0].extended


def test_dynamic_prop_labels_are_filled_in() -> None:
    widget = {
        "type": "metric",
        "properties": {
            "metrics": [
                [
                    "NS",
                    "Errors",
                    "FunctionName",
                    "f",
                    {"label": "${PROP('Dim.FunctionName')} ${PROP('MetricName')}"},
                ]
            ]
        },
    }

    assert parse_body({"widgets": [widget]}).widgets[0].metrics[0].label == "f Errors"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "not JSON"),
        ("{}", "no widgets"),
        ({"widgets": ["x"]}, "not an object"),
        ({"widgets": [{"type": "metric", "properties": {"metrics": [["NS"]]}}]}, "namespace"),
        (
            {"widgets": [{"type": "metric", "properties": {"metrics": [["NS", "A", "D"]]}}]},
            "namespace",
        ),
    ],
)
def test_a_body_that_cannot_be_drawn_is_a_one_line_error(body: Any, message: str) -> None:
    with pytest.raises(DashboardError, match=message):
        parse_body(body)


@pytest.mark.parametrize(
    ("start", "seconds"),
    [("-PT6H", 21600), ("-PT15M", 900), ("-P7D", 604800), ("2024-01-01T00:00:00Z", None)],
)
def test_a_bodys_relative_start_is_its_default_range(start: str, seconds: int | None) -> None:
    assert parse_body({"start": start, "widgets": []}).since_seconds == seconds


def test_long_ranges_widen_the_period_like_the_consoles_automatic_period() -> None:
    assert effective_period(60, 3 * 3600) == 60
    assert effective_period(300, 3 * 3600) == 300
    assert effective_period(60, 7 * 86400) == 900
    assert effective_period(60, 455 * 86400) == 86400


def test_the_window_falls_on_period_boundaries_and_includes_the_current_period() -> None:
    now = datetime(2025, 1, 1, 12, 34, 56, tzinfo=UTC).timestamp()

    start, end = time_window(now, 3600, 60)
    assert datetime.fromtimestamp(start, UTC) == datetime(2025, 1, 1, 11, 34, tzinfo=UTC)
    assert datetime.fromtimestamp(end, UTC) == datetime(2025, 1, 1, 12, 35, tzinfo=UTC)
    start, end = time_window(now, 3600, 300)
    assert (start % 300, end % 300, end > now) == (0, 0, True)


def test_alarm_names_come_from_the_alarm_widgets_arns() -> None:
    arns = parse_body(BODY).widgets[1].alarm_arns

    assert alarm_names(arns) == ["IngestIteratorAge-4Y4J", "IngestErrors-I0IQ"]
    assert alarm_names(["plain-name"]) == ["plain-name"]


def test_percentiles_fall_back_to_maximum_and_other_extended_statistics_to_average() -> None:
    assert (fallback_stat("p99"), fallback_stat("p50"), fallback_stat("tm90")) == (
        "Maximum",
        "Maximum",
        "Average",
    )


class _CloudWatch:
    """A scripted CloudWatch client: refuses extended statistics the way moto's server does."""

    def __init__(self, code: str = "500") -> None:
        self.code = code
        self.requests: list[list[dict[str, Any]]] = []

    def get_dashboard(self, DashboardName: str) -> dict[str, Any]:
        return {"DashboardBody": json.dumps({"widgets": [BODY["widgets"][2]]})}

    def get_metric_data(self, **request: Any) -> dict[str, Any]:
        queries = request["MetricDataQueries"]
        self.requests.append(queries)
        if any(q["MetricStat"]["Stat"] == "p99" for q in queries):
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": self.code, "Message": ""}}, "GetMetricData")
        stamp = datetime.fromtimestamp(request["StartTime"].timestamp() + 60, UTC)
        return {
            "MetricDataResults": [
                {"Id": q["Id"], "Timestamps": [stamp], "Values": [412.5]} for q in queries
            ]
        }


def test_a_refused_percentile_is_drawn_as_maximum_labelled_and_not_asked_again() -> None:
    client = _CloudWatch()
    target = Target(None, None, None, "dev", _factory=lambda service: client)
    source = DashboardSource(
        target, "streamline-dev", since_seconds=3600, clock=lambda: 1_700_000_000.0
    )

    (widget,) = source.snapshot()["widgets"]
    (series,) = widget["series"]
    assert (series["stat"], series["values"]) == ("Maximum", [412.5])
    assert series["label"] == "Duration (Maximum, not p99)"
    assert "p99 unavailable here" in series["note"]
    assert [q[0]["MetricStat"]["Stat"] for q in client.requests] == ["p99", "Maximum"]

    source.snapshot(max_age=0)
    assert [q[0]["MetricStat"]["Stat"] for q in client.requests][2:] == ["Maximum"]


def test_a_throttle_is_not_a_refusal_and_shows_in_the_widget_without_a_fallback() -> None:
    client = _CloudWatch(code="Throttling")
    target = Target(None, None, None, "dev", _factory=lambda service: client)
    source = DashboardSource(target, "streamline-dev", clock=lambda: 1_700_000_000.0)

    (widget,) = source.snapshot()["widgets"]
    assert "Throttling" in widget["error"] and "series" not in widget
    assert [q[0]["MetricStat"]["Stat"] for q in client.requests] == ["p99"]


def test_an_alarm_graph_says_it_is_not_drawn_rather_than_showing_no_data() -> None:
    alarm_graph = {"type": "metric", "properties": {"annotations": {"alarms": ["arn:a"]}}}
    client = _CloudWatch()
    client.get_dashboard = lambda DashboardName: {  # type: ignore[method-assign]
        "DashboardBody": json.dumps({"widgets": [alarm_graph]})
    }
    target = Target(None, None, None, "dev", _factory=lambda service: client)

    (widget,) = DashboardSource(target, "d").snapshot()["widgets"]
    assert "not drawn" in widget["unsupported"] and not client.requests


def test_a_missing_chart_library_names_make_setup(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    assert find_chart_js().name == "chart.umd.min.js"  # installed by make setup (npm ci)
    monkeypatch.setattr(server, "CHART_JS", tmp_path / "absent.js")
    with pytest.raises(DashboardError, match="make setup"):
        find_chart_js(tmp_path)
