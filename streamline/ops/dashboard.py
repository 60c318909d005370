"""`streamline dashboard`: the deployed CloudWatch dashboard as a local web page.

The page draws the dashboard's own DashboardBody, read with GetDashboard and used unchanged:
every widget at its place on CloudWatch's 24-column grid, graphs and single values from
GetMetricData with each metric's period and statistic, alarm status from DescribeAlarms, text
widgets' markdown. It refreshes itself (every 10 s by default), so it follows a pipeline while it
runs. The same code reads the local cloud or an AWS account (the target flags every ops command
takes). The page and Chart.js (from ``node_modules``, installed by ``make setup``) are served by
this process: nothing is fetched from the internet.

The parsing and query building (:func:`parse_body`, :func:`metric_queries`, :func:`time_window`)
are pure and need no AWS; :class:`DashboardSource` reads a target; :func:`make_server` serves it.

Example::

    streamline dashboard                          # the stage's dashboard on http://127.0.0.1:8501/
    streamline dashboard --since 1h --port 0 --open
    streamline dashboard --dashboard my-app --profile prod --region eu-west-1
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import threading
import time
import webbrowser
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from streamline.ops.logs import LogsError, parse_since
from streamline.ops.target import (
    Target,
    add_target_arguments,
    command_error,
    is_aws_error,
    one_line,
)

__all__ = [
    "Dashboard",
    "DashboardError",
    "DashboardServer",
    "DashboardSource",
    "MetricSpec",
    "Widget",
    "alarm_names",
    "effective_period",
    "expand_metric_rows",
    "fallback_stat",
    "find_chart_js",
    "make_server",
    "metric_queries",
    "metric_specs",
    "parse_body",
    "register",
    "run",
    "time_window",
]

#: What the console uses when neither the widget nor the metric sets a period or a statistic.
DEFAULT_PERIOD = 300
DEFAULT_STAT = "Average"
#: The console's default time range.
DEFAULT_SINCE_SECONDS = 3 * 3600
DEFAULT_PORT = 8501
DEFAULT_REFRESH_SECONDS = 10
#: Statistics every CloudWatch answers; the rest (p99, tm90, ...) are extended statistics.
STANDARD_STATS = frozenset({"SampleCount", "Average", "Sum", "Minimum", "Maximum"})
#: A graph draws at most this many periods per line; longer ranges widen the period the way
#: the console's automatic period does, so a week at 1-minute periods stays readable (and cheap).
MAX_POINTS = 1440
_WIDER_PERIODS = (60, 300, 900, 3600, 21600, 86400)
#: DescribeAlarms takes at most 100 names; GetMetricData at most 500 queries.
_ALARM_NAMES_PER_CALL = 100
_QUERIES_PER_CALL = 500
#: Error codes with which a CloudWatch refuses a query it cannot answer (moto: a bare 500).
_REFUSAL_CODES = frozenset(
    {"500", "InternalFailure", "InvalidParameterValue", "InvalidParameterCombination"}
)
#: A snapshot is reused for this long, so several open tabs cost one read of the target.
_SNAPSHOT_TTL_SECONDS = 1.0

PAGE_DIR = Path(__file__).resolve().parent / "dashboard_page"
CHART_JS = Path("node_modules") / "chart.js" / "dist" / "chart.umd.min.js"

_PROP = re.compile(r"\$\{PROP\('([^']+)'\)\}")
_ISO_RELATIVE = re.compile(r"^-P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


class DashboardError(Exception):
    """A dashboard that cannot be read or drawn: a one-line error for the command line."""


# -- the dashboard body (pure) -------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    """One line of a metric widget: a metric with its statistic and period, or an expression."""

    id: str
    label: str
    stat: str
    period: int
    namespace: str = ""
    name: str = ""
    dimensions: tuple[tuple[str, str], ...] = ()
    expression: str | None = None
    y_axis: str = "left"
    color: str | None = None
    visible: bool = True

    @property
    def extended(self) -> bool:
        """Whether the statistic is an extended one (a percentile, a trimmed mean, ...)."""
        return self.expression is None and self.stat not in STANDARD_STATS


@dataclass(frozen=True)
class Widget:
    """One widget of the body, with its grid place and its parsed metrics (metric widgets)."""

    type: str
    x: int
    y: int
    width: int
    height: int
    properties: Mapping[str, Any] = field(default_factory=dict, compare=False)
    metrics: tuple[MetricSpec, ...] = ()

    @property
    def title(self) -> str:
        return str(self.properties.get("title", ""))

    @property
    def view(self) -> str:
        return str(self.properties.get("view", "timeSeries"))

    @property
    def alarm_arns(self) -> tuple[str, ...]:
        return tuple(str(arn) for arn in self.properties.get("alarms", ()))


@dataclass(frozen=True)
class Dashboard:
    """A parsed DashboardBody: its widgets in body order, and its default range if it has one."""

    widgets: tuple[Widget, ...]
    since_seconds: int | None = None


def parse_body(body: str | Mapping[str, Any]) -> Dashboard:
    """Parse a DashboardBody (the JSON string GetDashboard returns, or its decoded object).

    Example::

        >>> body = '{"widgets": [{"type": "text", "properties": {"markdown": "# Hi"}}]}'
        >>> parse_body(body).widgets[0].type, parse_body(body).widgets[0].width
        ('text', 6)
    """
    try:
        data = json.loads(body) if isinstance(body, str) else body
    except ValueError as exc:
        raise DashboardError(f"the dashboard body is not JSON: {exc}") from None
    raw_widgets = data.get("widgets") if isinstance(data, Mapping) else None
    if not isinstance(raw_widgets, list):
        raise DashboardError("the dashboard body has no widgets array")
    widgets = []
    for index, raw in enumerate(raw_widgets):
        if not isinstance(raw, Mapping):
            raise DashboardError(f"widget {index} is not an object")
        kind = str(raw.get("type", ""))
        properties = raw.get("properties") or {}
        if not isinstance(properties, Mapping):
            raise DashboardError(f"widget {index} has properties that are not an object")
        try:
            # The console's defaults for a widget without a size: 6 wide, 6 high.
            x, y = int(raw.get("x", 0)), int(raw.get("y", 0))
            width, height = int(raw.get("width", 6)), int(raw.get("height", 6))
            metrics = metric_specs(properties) if kind == "metric" else ()
        except (TypeError, ValueError) as exc:
            raise DashboardError(f"widget {index} ({kind or 'no type'}): {exc}") from None
        widgets.append(Widget(kind, x, y, width, height, properties, metrics))
    start = data.get("start")
    return Dashboard(tuple(widgets), _relative_seconds(start) if isinstance(start, str) else None)


def expand_metric_rows(rows: Sequence[Any]) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """Each metric row as ``(fields, options)`` with the console's shorthand resolved.

    ``"."`` repeats the field at the same position of the previous row; ``"..."`` stands for the
    previous row's fields from its position up to the ones written after it. Expression rows
    (``[{"expression": ...}]``) have no fields.

    Example::

        >>> rows = [["AWS/SQS", "NumberOfMessagesSent", "QueueName", "a"], ["...", "b"]]
        >>> [fields for fields, _ in expand_metric_rows(rows)][1]
        ['AWS/SQS', 'NumberOfMessagesSent', 'QueueName', 'b']
    """
    previous: list[str] = []
    for index, row in enumerate(rows):
        if not isinstance(row, list) or not row:
            raise ValueError(f"metric {index} is not a non-empty array")
        has_options = isinstance(row[-1], Mapping)
        options = dict(row[-1]) if has_options else {}
        fields = [str(item) for item in (row[:-1] if has_options else row)]
        if "..." in fields:
            at = fields.index("...")
            after = fields[at + 1 :]
            if len(previous) < at + len(after):
                raise ValueError(f'metric {index}: "..." has no previous metric to repeat')
            fields = fields[:at] + previous[at : len(previous) - len(after)] + after
        for position, item in enumerate(fields):
            if item == ".":
                if position >= len(previous):
                    raise ValueError(f'metric {index}: "." has nothing above it to repeat')
                fields[position] = previous[position]
        if fields:  # an expression row between two metrics does not break the shorthand
            previous = fields
        yield fields, options


def metric_specs(properties: Mapping[str, Any]) -> tuple[MetricSpec, ...]:
    """The metric widget's lines with their effective statistic, period, label and axis."""
    widget_period = int(properties.get("period", DEFAULT_PERIOD))
    widget_stat = str(properties.get("stat", DEFAULT_STAT))
    expanded = list(expand_metric_rows(properties.get("metrics") or []))
    taken = {str(options["id"]) for _, options in expanded if "id" in options}
    numbers = (f"m{n}" for n in range(1, 10_000))
    specs: list[MetricSpec] = []
    for index, (fields, options) in enumerate(expanded):
        # GetMetricData needs an id on every query; the console numbers unnamed ones m1, m2, ...
        spec_id = (
            str(options["id"]) if "id" in options else next(n for n in numbers if n not in taken)
        )
        taken.add(spec_id)
        common: dict[str, Any] = {
            "id": spec_id,
            "stat": str(options.get("stat", widget_stat)),
            "period": int(options.get("period", widget_period)),
            "y_axis": "right" if options.get("yAxis") == "right" else "left",
            "color": str(options["color"]) if options.get("color") else None,
            "visible": options.get("visible", True) is not False,
        }
        if "expression" in options:
            expression = str(options["expression"])
            specs.append(
                MetricSpec(
                    label=str(options.get("label", expression)), expression=expression, **common
                )
            )
            continue
        if len(fields) < 2 or len(fields) % 2:
            raise ValueError(
                f"metric {index} must be [namespace, name, dimension, value, ...], got {fields}"
            )
        dimensions = tuple(zip(fields[2::2], fields[3::2], strict=True))
        label = str(options.get("label", fields[1]))
        spec = MetricSpec(
            label=label, namespace=fields[0], name=fields[1], dimensions=dimensions, **common
        )
        specs.append(replace(spec, label=_expand_label(spec)))
    return tuple(specs)


def _expand_label(spec: MetricSpec) -> str:
    """The label with the console's ``${PROP('...')}`` dynamic labels filled in."""
    values = {
        "Namespace": spec.namespace,
        "MetricName": spec.name,
        "Stat": spec.stat,
        "Period": str(spec.period),
        **{f"Dim.{name}": value for name, value in spec.dimensions},
    }
    return _PROP.sub(lambda match: values.get(match.group(1), match.group(0)), spec.label)


def _relative_seconds(start: str) -> int | None:
    """Seconds in a body's relative ``start`` (``-PT3H``, ``-P7D``); None for anything else."""
    match = _ISO_RELATIVE.match(start.strip().upper())
    if not match or not any(match.groups()):
        return None
    weeks, days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = (((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + seconds
    return total or None


def effective_period(period: int, range_seconds: float) -> int:
    """``period``, widened to a standard one when the range would hold more than MAX_POINTS.

    Example::

        >>> effective_period(60, 3 * 3600), effective_period(60, 7 * 86400)
        (60, 900)
    """
    if range_seconds / max(period, 1) <= MAX_POINTS:
        return period
    for wider in _WIDER_PERIODS:
        if wider > period and range_seconds / wider <= MAX_POINTS:
            return wider
    return max(period, _WIDER_PERIODS[-1])


def time_window(now: float, since_seconds: int, period: int) -> tuple[float, float]:
    """``(start, end)`` in epoch seconds for the last ``since_seconds`` up to ``now``.

    Both ends fall on a multiple of ``period``, as CloudWatch aligns its periods, and the end is
    the close of the current (still filling) period so the newest data point is drawn.
    """
    period = max(int(period), 1)
    start = math.floor((now - since_seconds) / period) * period
    end = math.floor(now / period) * period + period
    return float(start), float(end)


def metric_queries(specs: Sequence[MetricSpec], range_seconds: float) -> list[dict[str, Any]]:
    """GetMetricData queries for a widget's lines, periods widened for long ranges."""
    queries: list[dict[str, Any]] = []
    for spec in specs:
        period = effective_period(spec.period, range_seconds)
        if spec.expression is not None:
            queries.append(
                {
                    "Id": spec.id,
                    "Expression": spec.expression,
                    "Period": period,
                    "ReturnData": spec.visible,
                }
            )
            continue
        queries.append(
            {
                "Id": spec.id,
                "MetricStat": {
                    "Metric": {
                        "Namespace": spec.namespace,
                        "MetricName": spec.name,
                        "Dimensions": [{"Name": n, "Value": v} for n, v in spec.dimensions],
                    },
                    "Period": period,
                    "Stat": spec.stat,
                },
                "ReturnData": spec.visible,
            }
        )
    return queries


def alarm_names(arns: Sequence[str]) -> list[str]:
    """Alarm names from an alarm widget's ARNs (``arn:aws:cloudwatch:<r>:<a>:alarm:<name>``)."""
    return [arn.split(":alarm:", 1)[1] if ":alarm:" in arn else arn for arn in arns]


def fallback_stat(stat: str) -> str:
    """The standard statistic drawn when a CloudWatch cannot compute an extended one.

    A percentile falls back to Maximum, an upper bound of every percentile (the conservative
    reading for latency); other extended statistics (trimmed means, ...) fall back to Average.
    """
    return "Maximum" if stat.lower().startswith("p") else "Average"


# -- reading a target ----------------------------------------------------------------------------


class DashboardSource:
    """Reads one dashboard and the data of its widgets from a target, as JSON-ready data.

    ``clock`` gives "now" in epoch seconds; tests pass the local cloud's clock, whose time the
    local metrics are stamped with.
    """

    def __init__(
        self,
        target: Target,
        name: str,
        *,
        since_seconds: int | None = None,
        refresh_seconds: int = DEFAULT_REFRESH_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.target = target
        self.name = name
        self.since_seconds = since_seconds
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._cloudwatch: Any = None
        #: Set once GetMetricData has refused an extended statistic: the moto server behind the
        #: local cloud computes none (it fails the whole request). Later reads go straight to
        #: the fallback instead of paying the failed request (and its retries) every refresh.
        self._extended_refused: str | None = None
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None

    @property
    def cloudwatch(self) -> Any:
        if self._cloudwatch is None:
            self._cloudwatch = self.target.client("cloudwatch")
        return self._cloudwatch

    def body(self) -> Dashboard:
        """The deployed body, parsed (read on every snapshot, so a redeploy shows at once)."""
        try:
            raw = self.cloudwatch.get_dashboard(DashboardName=self.name)["DashboardBody"]
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code in {"ResourceNotFound", "ResourceNotFoundException"}:
                raise DashboardError(f"dashboard {self.name} is not deployed here") from None
            raise
        return parse_body(raw)

    def snapshot(self, max_age: float = _SNAPSHOT_TTL_SECONDS) -> dict[str, Any]:
        """Every widget with its data, newer than ``max_age`` seconds (one read at a time)."""
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < max_age:
                return self._cached[1]
            data = self._read()
            self._cached = (time.monotonic(), data)
            return data

    def _read(self) -> dict[str, Any]:
        dashboard = self.body()
        now = self.clock()
        since = self.since_seconds or dashboard.since_seconds or DEFAULT_SINCE_SECONDS
        widgets = []
        for widget in dashboard.widgets:
            drawn: dict[str, Any] = {
                "type": widget.type,
                "x": widget.x,
                "y": widget.y,
                "width": widget.width,
                "height": widget.height,
                "title": widget.title,
            }
            try:
                drawn.update(self._widget(widget, now, since))
            except Exception as exc:  # one widget's failure is shown in it, not on the page
                drawn["error"] = one_line(str(exc))
            widgets.append(drawn)
        start, end = now - since, now
        return {
            "dashboard": self.name,
            "target": self._describe_target(),
            "start": int(start * 1000),
            "end": int(end * 1000),
            "since": since,
            "updated": int(time.time() * 1000),
            "refresh": self.refresh_seconds,
            "widgets": widgets,
        }

    def _describe_target(self) -> str:
        if self.target.is_local:
            return f"local cloud {self.target.endpoint_url}"
        parts = [p for p in (self.target.profile, self.target.region) if p]
        return "AWS " + " ".join(parts) if parts else "AWS"

    def _widget(self, widget: Widget, now: float, since: int) -> dict[str, Any]:
        properties = widget.properties
        if widget.type == "text":
            return {
                "markdown": str(properties.get("markdown", "")),
                "background": properties.get("background", "solid"),
            }
        if widget.type == "alarm":
            return self._alarm_widget(widget)
        if widget.type == "metric":
            return self._metric_widget(widget, now, since)
        if widget.type == "log":
            return {
                "unsupported": "Logs Insights widgets are not drawn by streamline dashboard; "
                "run the query in the CloudWatch console or with `aws logs start-query`."
            }
        return {"unsupported": f"{widget.type or 'untyped'} widgets are not drawn here."}

    def _alarm_widget(self, widget: Widget) -> dict[str, Any]:
        names = alarm_names(widget.alarm_arns)
        found: dict[str, dict[str, Any]] = {}
        for first in range(0, len(names), _ALARM_NAMES_PER_CALL):
            page = self.cloudwatch.describe_alarms(
                AlarmNames=names[first : first + _ALARM_NAMES_PER_CALL],
                AlarmTypes=["MetricAlarm", "CompositeAlarm"],
            )
            for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                found[alarm["AlarmName"]] = alarm
        alarms = [
            {
                "name": name,
                "state": found[name]["StateValue"] if name in found else "NOT_FOUND",
                "reason": found[name].get("StateReason", "") if name in found else "",
                "updated": _epoch_ms(found[name].get("StateUpdatedTimestamp"))
                if name in found
                else None,
            }
            for name in names
        ]
        shown = widget.properties.get("states")
        if isinstance(shown, list) and shown:  # the widget's state filter
            states = {str(state).upper() for state in shown}
            alarms = [a for a in alarms if a["state"] in states]
        if widget.properties.get("sortBy") in {"stateUpdatedTimestamp", "timestamp"}:
            alarms.sort(key=lambda a: a["updated"] or 0, reverse=True)
        return {"alarms": alarms}

    def _metric_widget(self, widget: Widget, now: float, since: int) -> dict[str, Any]:
        properties = widget.properties
        specs = list(widget.metrics)
        if not specs and (properties.get("annotations") or {}).get("alarms"):
            # CDK's AlarmWidget: a graph of an alarm's own metric. Saying so beats an empty
            # graph that would read as "No data available."
            return {"unsupported": "Alarm graphs (annotations.alarms) are not drawn here."}
        if properties.get("setPeriodToTimeRange"):
            # One period over the whole range (a single value of "the last 3 hours").
            whole = int(math.ceil(since / 60.0) * 60)
            specs = [replace(s, period=whole) if s.expression is None else s for s in specs]
        notes: dict[str, str] = {}
        if self._extended_refused is not None:
            specs = self._fall_back(specs, notes, self._extended_refused)
        try:
            results = self._metric_data(specs, now, since)
        except Exception as exc:
            reason = _refusal(exc)
            if reason is None or self._extended_refused or not any(s.extended for s in specs):
                raise
            # Retry without the extended statistics: if that succeeds, they were the refusal.
            plain = self._fall_back(specs, notes, reason)
            results = self._metric_data(plain, now, since)
            self._extended_refused = reason
            specs = plain
        series = []
        for spec in specs:
            if not spec.visible:
                continue
            stamps, values = results.get(spec.id, ([], []))
            series.append(
                {
                    "id": spec.id,
                    "label": spec.label,
                    "stat": spec.stat,
                    "period": effective_period(spec.period, since),
                    "yAxis": spec.y_axis,
                    "color": spec.color,
                    "timestamps": stamps,
                    "values": values,
                    "note": notes.get(spec.id),
                }
            )
        return {
            "view": widget.view,
            "stacked": bool(properties.get("stacked", False)),
            "yAxis": properties.get("yAxis") or {},
            "legend": (properties.get("legend") or {}).get("position", "bottom"),
            "annotations": _horizontal_annotations(properties),
            "series": series,
        }

    @staticmethod
    def _fall_back(
        specs: Sequence[MetricSpec], notes: dict[str, str], reason: str
    ) -> list[MetricSpec]:
        out = []
        for spec in specs:
            if spec.extended:
                instead = fallback_stat(spec.stat)
                notes[spec.id] = f"{spec.stat} unavailable here ({reason}): {instead} shown"
                spec = replace(
                    spec, stat=instead, label=f"{spec.label} ({instead}, not {spec.stat})"
                )
            out.append(spec)
        return out

    def _metric_data(
        self, specs: Sequence[MetricSpec], now: float, since: int
    ) -> dict[str, tuple[list[int], list[float]]]:
        if not specs:
            return {}
        widest = max(effective_period(s.period, since) for s in specs)
        start, end = time_window(now, since, widest)
        queries = metric_queries(specs, since)
        results: dict[str, tuple[list[int], list[float]]] = {}
        for first in range(0, len(queries), _QUERIES_PER_CALL):
            request: dict[str, Any] = {
                "MetricDataQueries": queries[first : first + _QUERIES_PER_CALL],
                "StartTime": datetime.fromtimestamp(start, tz=UTC),
                "EndTime": datetime.fromtimestamp(end, tz=UTC),
                "ScanBy": "TimestampAscending",
            }
            while True:
                page = self.cloudwatch.get_metric_data(**request)
                for result in page.get("MetricDataResults", []):
                    stamps, values = results.setdefault(result["Id"], ([], []))
                    for stamp, value in zip(
                        result.get("Timestamps", []), result.get("Values", []), strict=False
                    ):
                        if value is None or not math.isfinite(float(value)):
                            continue
                        stamps.append(_epoch_ms(stamp) or 0)
                        values.append(float(value))
                token = page.get("NextToken")
                if not token:
                    break
                request["NextToken"] = token
        for stamps, values in results.values():
            pairs = sorted(zip(stamps, values, strict=True))
            stamps[:] = [p[0] for p in pairs]
            values[:] = [p[1] for p in pairs]
        return results


def _horizontal_annotations(properties: Mapping[str, Any]) -> list[dict[str, Any]]:
    annotations = (properties.get("annotations") or {}).get("horizontal") or []
    out = []
    for item in annotations:
        if isinstance(item, Mapping) and isinstance(item.get("value"), int | float):
            out.append(
                {
                    "value": float(item["value"]),
                    "label": str(item.get("label", "")),
                    "color": item.get("color"),
                    "yAxis": "right" if item.get("yAxis") == "right" else "left",
                }
            )
    return out


def _epoch_ms(stamp: Any) -> int | None:
    if isinstance(stamp, datetime):
        if stamp.tzinfo is None:  # botocore always sets one; naive means UTC in AWS's APIs
            stamp = stamp.replace(tzinfo=UTC)
        return int(stamp.timestamp() * 1000)
    return None


def _refusal(exc: Exception) -> str | None:
    """How GetMetricData refused a request, if it was a refusal rather than a passing fault.

    moto's server answers an extended statistic with a bare 500; AWS computes them all. A
    throttle or a dropped connection is not a refusal and must not switch a line's statistic.
    """
    response = getattr(exc, "response", None)
    if not isinstance(response, Mapping):
        return None
    code = str((response.get("Error") or {}).get("Code", ""))
    return f"GetMetricData answered {code}" if code in _REFUSAL_CODES else None


# -- serving -------------------------------------------------------------------------------------


def find_chart_js(start: Path | None = None) -> Path:
    """Chart.js's browser bundle from the project's ``node_modules`` (as ``make setup`` installs).

    Looked up above this package (a source checkout) and above ``start`` (default: the current
    directory), like the CDK CLI.
    """
    roots = [Path(__file__).resolve(), (start or Path.cwd()).resolve()]
    for root in roots:
        for parent in [root, *root.parents]:
            candidate = parent / CHART_JS
            if candidate.is_file():
                return candidate
    raise DashboardError(f"Chart.js was not found ({CHART_JS}): run `make setup` (npm ci)")


# The page's sources; nothing else is served. The policy keeps the page on this server: no
# script, style or request can reach another origin, even from a dashboard's markdown.
_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".map": "application/json",
}


class DashboardServer(ThreadingHTTPServer):
    """The page, its assets and ``/api/dashboard`` on one loopback port."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], source: DashboardSource, chart_js: Path, *, quiet: bool
    ) -> None:
        self.source = source
        self.quiet = quiet
        self.files = {
            "/": PAGE_DIR / "index.html",
            "/index.html": PAGE_DIR / "index.html",
            "/dashboard.js": PAGE_DIR / "dashboard.js",
            "/dashboard.css": PAGE_DIR / "dashboard.css",
            "/vendor/chart.umd.min.js": chart_js,
            "/vendor/chart.umd.min.js.map": chart_js.with_name(chart_js.name + ".map"),
        }
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer

    def do_GET(self) -> None:
        # The page is same-origin only: a foreign Host (DNS rebinding) or another page's
        # request (an Origin other than this page's) is refused.
        from streamline.local.server import AccessPolicy

        port = int(self.server.server_address[1])
        policy = AccessPolicy(
            port, frozenset({f"http://127.0.0.1:{port}", f"http://localhost:{port}"})
        )
        environ = {
            "HTTP_HOST": self.headers.get("Host") or "",
            "HTTP_ORIGIN": self.headers.get("Origin"),
        }
        if environ["HTTP_ORIGIN"] is None:
            del environ["HTTP_ORIGIN"]
        reason = policy.refusal(environ)
        if reason is not None:
            self._send(HTTPStatus.FORBIDDEN, (reason + "\n").encode(), "text/plain")
            return
        path = urlsplit(self.path).path
        if path == "/api/dashboard":
            self._api()
            return
        file = self.server.files.get(path)
        if file is None or not file.is_file():
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
            return
        self._send(HTTPStatus.OK, file.read_bytes(), _TYPES.get(file.suffix, "text/plain"))

    def _api(self) -> None:
        try:
            payload = self.server.source.snapshot()
            status = HTTPStatus.OK
        except Exception as exc:  # the target is down or the dashboard gone: the page says so
            payload = {"error": one_line(str(exc))}
            status = HTTPStatus.BAD_GATEWAY
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", _CONTENT_SECURITY_POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)


def make_server(
    source: DashboardSource,
    *,
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    chart_js: Path | None = None,
    quiet: bool = True,
) -> DashboardServer:
    """A server for ``source`` on ``host:port`` (0: a free port); call ``serve_forever``."""
    return DashboardServer((host, port), source, chart_js or find_chart_js(), quiet=quiet)


# -- the command ---------------------------------------------------------------------------------


def register(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add the ``dashboard`` subcommand to the top-level subparsers."""
    parser = commands.add_parser(
        "dashboard", help="serve the deployed CloudWatch dashboard as a local web page"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0 = any free port)",
    )
    parser.add_argument(
        "--since",
        help="time range, e.g. 30m, 3h, 1d (default: the dashboard's own, else 3h)",
    )
    parser.add_argument(
        "--refresh",
        type=int,
        default=DEFAULT_REFRESH_SECONDS,
        metavar="SECONDS",
        help=f"seconds between the page's refreshes (default {DEFAULT_REFRESH_SECONDS})",
    )
    parser.add_argument(
        "--dashboard",
        metavar="NAME",
        help="dashboard name (default: the stage's, from its DashboardName stack output)",
    )
    browser = parser.add_mutually_exclusive_group()
    browser.add_argument(
        "--open", dest="open", action="store_true", help="open the page in a web browser"
    )
    browser.add_argument(
        "--no-browser", dest="open", action="store_false", help="only print the URL (default)"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    add_target_arguments(parser)
    parser.set_defaults(func=run, open=False)


def run(args: argparse.Namespace, target: Target | None = None) -> int:
    """Serve the dashboard until Ctrl-C; one-line errors, exit 2."""
    try:
        since = _since(args.since)
        if not 0 <= args.port <= 65535:
            raise DashboardError("--port must be 0-65535")
        if args.refresh < 1:
            raise DashboardError(f"--refresh must be 1 or more seconds, got {args.refresh}")
        chart_js = find_chart_js()
        target = target or Target.from_args(args)
        if args.dashboard is not None and not args.dashboard.strip():
            raise DashboardError("--dashboard must name a dashboard")
        name = args.dashboard or _stage_dashboard(target)
        source = DashboardSource(target, name, since_seconds=since, refresh_seconds=args.refresh)
        source.body()  # fail now, in one line, if the dashboard cannot be read
        server = make_server(source, port=args.port, chart_js=chart_js, quiet=not args.verbose)
    except OSError as exc:  # the port is taken, or not ours to bind
        if is_aws_error(exc):  # (none is an OSError today; stay right if one becomes one)
            return command_error(exc, "cannot read the dashboard")
        print(
            f"streamline: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", file=sys.stderr
        )
        return 2
    except Exception as exc:
        return command_error(exc, "cannot read the dashboard", DashboardError)
    print(f"dashboard {name} at {server.url} (Ctrl-C to stop)", flush=True)
    if args.open:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a server is stopped: not an error
    finally:
        server.server_close()
    return 0


def _since(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        seconds = parse_since(value)
    except LogsError as exc:
        raise DashboardError(str(exc)) from None
    if seconds < 60:
        raise DashboardError(f"--since must be at least 1m (one period), got {value!r}")
    return seconds


def _stage_dashboard(target: Target) -> str:
    name = target.stack_outputs().get("DashboardName")
    if not name:
        raise DashboardError(
            f"the {target.stage} stage has no DashboardName output; pass --dashboard NAME"
        )
    return name
