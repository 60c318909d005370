"""Lambda's REPORT lines (and what else the cost model reads from a function's log group).

A REPORT line is the platform's bill for one invocation: duration, billed duration, memory size,
peak memory and, on a cold start, the Init Duration. Lambda writes it as text::

    REPORT RequestId: 4f6e...\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 256 MB\t
    Max Memory Used: 80 MB\tInit Duration: 250.00 ms

or, for a function with ``LoggingFormat: JSON``, as a ``platform.report`` JSON record with the
same numbers (``durationMs``, ``billedDurationMs``, ``memorySizeMB``, ``maxMemoryUsedMB``,
``initDurationMs``). The local runtime writes the text form; both are read here. Between START
and REPORT, the embedded-metric-format lines of our batch handlers (``RecordsProcessed``,
``RecordsFailed``, ``RecordsPoisoned``) say how many records the invocation handled.

Log events are read with ``streamline logs``'s reader (:mod:`streamline.ops.logs`).

Example::

    from datetime import UTC, datetime, timedelta
    reports = collect_reports(target, ["my-fn"], datetime.now(UTC) - timedelta(hours=1))
    cold = [r for r in reports if r.init_ms is not None]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from streamline.ops.logs import filter_all, function_log_group
from streamline.ops.target import Target

__all__ = [
    "RECORD_METRICS",
    "FunctionLogs",
    "Report",
    "collect_reports",
    "log_group",
    "parse_report",
    "read_function_logs",
    "summarise",
]

#: EMF metrics whose sum is the number of records an invocation handled (orderflow.batch).
RECORD_METRICS = ("RecordsProcessed", "RecordsFailed", "RecordsPoisoned")
#: CloudWatch Logs meters each event as its UTF-8 message plus 26 bytes of overhead.
EVENT_OVERHEAD_BYTES = 26

_TEXT_FIELDS = {
    "request_id": re.compile(r"^REPORT RequestId: (\S+)"),
    "duration_ms": re.compile(r"(?<!Billed )Duration: ([\d.]+) ms"),
    "billed_ms": re.compile(r"Billed Duration: (\d+) ms"),
    "memory_mb": re.compile(r"Memory Size: (\d+) MB"),
    "max_memory_used_mb": re.compile(r"Max Memory Used: (\d+) MB"),
    "init_ms": re.compile(r"Init Duration: ([\d.]+) ms"),
    "status": re.compile(r"Status: (\w+)"),
}
_START = re.compile(r"^START RequestId: (\S+)")
_PLATFORM_TEXT = ("START ", "END ", "REPORT ", "INIT_START ", "INIT_REPORT ", "EXTENSION ")


@dataclass(frozen=True, slots=True)
class Report:
    """One invocation's REPORT, and the records its EMF lines counted (None: none emitted)."""

    function: str
    request_id: str
    duration_ms: float
    billed_ms: int
    memory_mb: int
    max_memory_used_mb: int
    init_ms: float | None = None
    status: str | None = None  # "error" / "timeout" when the invocation failed that way
    records: int | None = None
    timestamp_ms: int = 0


@dataclass(slots=True)
class FunctionLogs:
    """What one function's log group held in a window."""

    function: str
    reports: list[Report] = field(default_factory=list)
    ingested_bytes: int = 0  # as CloudWatch Logs meters ingestion
    per_invocation_bytes: int = 0  # platform and EMF lines: written once per invocation
    events: int = 0


def parse_report(message: str) -> dict[str, Any] | None:
    """The numbers of a REPORT line (text or JSON ``platform.report``), or None.

    Example::

        >>> parse_report("REPORT RequestId: r1\\tDuration: 12.34 ms\\tBilled Duration: 13 ms"
        ...              "\\tMemory Size: 256 MB\\tMax Memory Used: 80 MB")["billed_ms"]
        13
    """
    text = message.strip()
    if text.startswith("REPORT "):
        found = {k: p.search(text) for k, p in _TEXT_FIELDS.items()}
        if not (found["request_id"] and found["duration_ms"] and found["billed_ms"]):
            return None
        init = found["init_ms"]
        status = found["status"]
        return {
            "request_id": found["request_id"].group(1),
            "duration_ms": float(found["duration_ms"].group(1)),
            "billed_ms": int(found["billed_ms"].group(1)),
            "memory_mb": _group_int(found["memory_mb"]),
            "max_memory_used_mb": _group_int(found["max_memory_used_mb"]),
            "init_ms": float(init.group(1)) if init else None,
            "status": status.group(1) if status else None,
        }
    document = _json(text)
    if document is None or document.get("type") != "platform.report":
        return None
    record = document.get("record") or {}
    metrics = record.get("metrics") or {}
    if "durationMs" not in metrics or "billedDurationMs" not in metrics:
        return None
    init = metrics.get("initDurationMs")
    status = record.get("status")
    return {
        "request_id": str(record.get("requestId", "")),
        "duration_ms": float(metrics["durationMs"]),
        "billed_ms": int(metrics["billedDurationMs"]),
        "memory_mb": int(metrics.get("memorySizeMB", 0)),
        "max_memory_used_mb": int(metrics.get("maxMemoryUsedMB", 0)),
        "init_ms": None if init is None else float(init),
        "status": None if status in (None, "success") else str(status),
    }


def collect_reports(target: Target, function_names: Iterable[str], since: datetime) -> list[Report]:
    """Every REPORT of ``function_names`` from ``since`` on, oldest first."""
    reports: list[Report] = []
    for name in function_names:
        reports.extend(read_function_logs(target, name, since).reports)
    reports.sort(key=lambda r: r.timestamp_ms)
    return reports


def read_function_logs(
    target: Target, function: str, since: datetime, config: Mapping[str, Any] | None = None
) -> FunctionLogs:
    """One function's REPORTs, records per invocation and ingested log bytes from ``since`` on.

    ``config`` is the function's GetFunctionConfiguration answer, when the caller has it.
    """
    if config is None:
        config = target.client("lambda").get_function_configuration(FunctionName=function)
    name = str(config["FunctionName"])
    group = log_group(target, config)
    poll = filter_all(target.client("logs"), group, int(since.timestamp() * 1000), None)
    return summarise(name, poll.events)


def log_group(target: Target, config: Mapping[str, Any]) -> str:
    """The function's log group (its LoggingConfig, else Lambda's default group)."""
    del target  # kept for callers: the configuration already names the group
    return function_log_group(dict(config))


def summarise(function: str, events: Sequence[dict[str, Any]]) -> FunctionLogs:
    """Fold FilterLogEvents events (oldest first) into a :class:`FunctionLogs`."""
    result = FunctionLogs(function)
    # An environment serves one invocation at a time, so within a log stream every line
    # between START and REPORT belongs to that invocation.
    current: dict[str, str] = {}  # stream -> request id
    records: dict[str, int] = {}  # request id -> records counted by its EMF lines
    for event in events:
        message = str(event.get("message", ""))
        size = len(message.encode()) + EVENT_OVERHEAD_BYTES
        result.events += 1
        result.ingested_bytes += size
        stream = str(event.get("logStreamName", ""))
        text = message.strip()
        start = _START.match(text)
        document = None if start or text.startswith(_PLATFORM_TEXT) else _json(text)
        if start or text.startswith(_PLATFORM_TEXT) or _is_platform(document):
            result.per_invocation_bytes += size
            if start:
                current[stream] = start.group(1)
            elif document is not None and document.get("type") == "platform.start":
                current[stream] = str((document.get("record") or {}).get("requestId", ""))
        elif document is not None and "_aws" in document:
            result.per_invocation_bytes += size
            counted = _emf_records(document)
            request = current.get(stream)
            if counted is not None and request:
                records[request] = records.get(request, 0) + counted
        is_report = text.startswith("REPORT ") or (
            document is not None and document.get("type") == "platform.report"
        )
        fields = parse_report(message) if is_report else None
        if fields is not None:
            current.pop(stream, None)
            result.reports.append(
                Report(
                    function=function,
                    records=records.pop(fields["request_id"], None),
                    timestamp_ms=int(event.get("timestamp", 0)),
                    **fields,
                )
            )
    return result


def _emf_records(document: dict[str, Any]) -> int | None:
    values = [document[name] for name in RECORD_METRICS if name in document]
    if not values:
        return None
    total = 0.0
    for value in values:
        total += sum(value) if isinstance(value, list) else float(value)
    return int(total)


def _is_platform(document: dict[str, Any] | None) -> bool:
    return document is not None and str(document.get("type", "")).startswith("platform.")


def _json(text: str) -> dict[str, Any] | None:
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _group_int(match: re.Match[str] | None) -> int:
    return int(match.group(1)) if match else 0
