"""What `streamline dashboard` draws, read from a target: the body, metric data, alarm states.

:class:`DashboardSource` reads the deployed DashboardBody with GetDashboard (on every snapshot,
so a redeploy shows at once), then each widget's data: GetMetricData for metric widgets (with
each line's period and statistic, falling back to a standard statistic where a CloudWatch
refuses an extended one, as the local cloud's moto does), DescribeAlarms for alarm widgets,
markdown for text widgets. The result is JSON-ready data for the page; ``server`` serves it.
The same code reads the local cloud or an AWS account through a :class:`Target`.

Example::

    source = DashboardSource(Target.from_args(args), "streamline-dev", since_seconds=3600)
    snapshot = source.snapshot()   # {"dashboard": ..., "widgets": [{"type": "metric", ...}]}
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from streamline.ops.dashboard.body import (
    Dashboard,
    DashboardError,
    MetricSpec,
    Widget,
    alarm_names,
    effective_period,
    fallback_stat,
    metric_queries,
    parse_body,
    time_window,
)
from streamline.ops.target import Target, one_line

__all__ = ["DEFAULT_REFRESH_SECONDS", "DEFAULT_SINCE_SECONDS", "DashboardSource"]

#: The console's default time range.
DEFAULT_SINCE_SECONDS = 3 * 3600
DEFAULT_REFRESH_SECONDS = 10
#: DescribeAlarms takes at most 100 names; GetMetricData at most 500 queries.
_ALARM_NAMES_PER_CALL = 100
_QUERIES_PER_CALL = 500
#: Error codes with which a CloudWatch refuses a query it cannot answer (moto: a bare 500).
_REFUSAL_CODES = frozenset(
    {"500", "InternalFailure", "InvalidParameterValue", "InvalidParameterCombination"}
)
#: A snapshot is reused for this long, so several open tabs cost one read of the target.
_SNAPSHOT_TTL_SECONDS = 1.0


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
