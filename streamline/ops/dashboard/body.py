"""A CloudWatch DashboardBody, parsed and turned into queries: pure, no AWS.

:func:`parse_body` reads the JSON that GetDashboard returns into :class:`Dashboard` (widgets at
their place on CloudWatch's 24-column grid, each metric widget's lines as :class:`MetricSpec`
with the console's shorthand, defaults and dynamic labels resolved); :func:`metric_queries`,
:func:`time_window` and :func:`effective_period` build the GetMetricData requests for them as
the console would. ``source`` runs those requests against a target.

Example::

    dashboard = parse_body(cloudwatch.get_dashboard(DashboardName=name)["DashboardBody"])
    for widget in dashboard.widgets:
        queries = metric_queries(widget.metrics, range_seconds=3 * 3600)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "Dashboard",
    "DashboardError",
    "MetricSpec",
    "Widget",
    "alarm_names",
    "effective_period",
    "expand_metric_rows",
    "fallback_stat",
    "metric_queries",
    "metric_specs",
    "parse_body",
    "time_window",
]

#: What the console uses when neither the widget nor the metric sets a period or a statistic.
DEFAULT_PERIOD = 300
DEFAULT_STAT = "Average"
#: Statistics every CloudWatch answers; the rest (p99, tm90, ...) are extended statistics.
STANDARD_STATS = frozenset({"SampleCount", "Average", "Sum", "Minimum", "Maximum"})
#: A graph draws at most this many periods per line; longer ranges widen the period the way
#: the console's automatic period does, so a week at 1-minute periods stays readable (and cheap).
MAX_POINTS = 1440
_WIDER_PERIODS = (60, 300, 900, 3600, 21600, 86400)

_PROP = re.compile(r"\$\{PROP\('([^']+)'\)\}")
_ISO_RELATIVE = re.compile(r"^-P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


class DashboardError(Exception):
    """A dashboard that cannot be read or drawn: a one-line error for the command line."""


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
