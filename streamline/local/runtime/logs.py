"""Ships function log lines to CloudWatch Logs (moto's logs backend), in batches.

Environments hand over whole phases (INIT, or START ... REPORT) at once; a background thread
writes them with one PutLogEvents per stream per flush, taking the moto lock only for the write.
Embedded-metric-format lines (Powertools ``Metrics``) also become CloudWatch metrics, as the
Lambda service does on AWS.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

__all__ = ["LogShipper", "emf_metric_data"]

_log = logging.getLogger(__name__)

LogEvent = tuple[int, str]  # (epoch milliseconds, message)


class LogShipper:
    """Batches log events per (group, stream) and writes them to moto's logs backend."""

    def __init__(self, backends: Any, *, flush_interval: float = 0.2) -> None:
        self._backends = backends
        self._flush_interval = flush_interval
        self._pending: dict[tuple[str, str], list[LogEvent]] = defaultdict(list)
        self._lock = threading.Lock()
        # Held for a whole take-and-write: a flush() returns only after every event queued
        # before it is in the backend, even those the background thread took a moment earlier.
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flushed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="lambda-log-shipper", daemon=True)
        self._thread.start()

    def emit(self, group: str, stream: str, events: list[LogEvent]) -> None:
        """Queue events for a stream (sent within ``flush_interval``)."""
        if not events:
            return
        with self._lock:
            self._pending[(group, stream)].extend(events)

    def flush(self) -> None:
        """Write everything queued so far, now, on the caller's thread.

        When it returns, every event emitted before the call is readable through the API,
        including those a background flush was still writing.
        """
        with self._write_lock:
            with self._lock:
                pending, self._pending = self._pending, defaultdict(list)
            if pending:
                self._write(pending)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._flush_interval)
            try:
                self.flush()
            except Exception:  # a logging failure must never take the runner down
                _log.exception("could not write function logs")

    def _write(self, pending: dict[tuple[str, str], list[LogEvent]]) -> None:
        metrics: list[tuple[str, list[dict[str, Any]]]] = []
        for events in pending.values():
            for _, message in events:
                if '"_aws"' in message:
                    metrics.extend(emf_metric_data(message))
        with self._backends.lock:
            logs = self._backends.logs()
            for (group, stream), events in pending.items():
                logs.ensure_log_group(group)
                if stream not in logs.groups[group].streams:
                    logs.create_log_stream(group, stream)
                # PutLogEvents wants chronological order; a stable sort keeps line order.
                events.sort(key=lambda event: event[0])
                logs.put_log_events(
                    group, stream, [{"timestamp": ts, "message": msg} for ts, msg in events]
                )
            if metrics:
                cloudwatch = self._backends.cloudwatch()
                for namespace, data in metrics:
                    try:
                        cloudwatch.put_metric_data(namespace, data)
                    except Exception:  # a malformed EMF document is the function's problem
                        _log.warning("ignoring malformed EMF metrics in namespace %s", namespace)


def emf_metric_data(line: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """The (namespace, PutMetricData MetricData) pairs an EMF log line describes.

    Example::

        >>> line = ('{"_aws": {"Timestamp": 0, "CloudWatchMetrics": [{"Namespace": "App",'
        ...         ' "Dimensions": [["service"]], "Metrics": [{"Name": "Ok", "Unit": "Count"}]}]},'
        ...         ' "service": "orders", "Ok": [1.0, 2.0]}')
        >>> emf_metric_data(line)[0][1][0]["MetricName"]
        'Ok'
    """
    start = line.find("{")
    if start < 0:
        return []
    try:
        document = json.loads(line[start:])
        directive = document["_aws"]
        # Naive UTC, like the datetimes moto itself stores (comparisons mix them otherwise).
        timestamp = datetime.fromtimestamp(directive["Timestamp"] / 1000, tz=UTC).replace(
            tzinfo=None
        )
        result: list[tuple[str, list[dict[str, Any]]]] = []
        for block in directive["CloudWatchMetrics"]:
            dimension_sets = block.get("Dimensions") or [[]]
            data: list[dict[str, Any]] = []
            for metric in block["Metrics"]:
                raw = document.get(metric["Name"])
                if raw is None:
                    continue
                values = [float(v) for v in (raw if isinstance(raw, list) else [raw])]
                for dimension_names in dimension_sets:
                    dimensions = [
                        {"Name": name, "Value": str(document[name])}
                        for name in dimension_names
                        if name in document
                    ]
                    data.append(
                        {
                            "MetricName": metric["Name"],
                            "Dimensions": dimensions,
                            "Timestamp": timestamp,
                            "Unit": metric.get("Unit", "None"),
                            "Values": values,
                            "Counts": [1.0] * len(values),
                        }
                    )
            if data:
                result.append((block["Namespace"], data))
        return result
    except (ValueError, KeyError, TypeError, AttributeError):
        return []
