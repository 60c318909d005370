"""Measure a window of the deployed pipeline for the cost model: the only module here with boto3.

Reads, for the pipeline's functions (found through the stage's stack outputs, or named): their
memory size and architecture (GetFunctionConfiguration), their REPORT lines, records per
invocation and log bytes (CloudWatch Logs), whether they send OnSuccess records to an event
bus, their SQS event source mappings; the stream's shards and retention; the recovery state
machine's transitions; recorded traces; the custom metrics in the functions' Powertools
namespace; the events the window carried (Kinesis IncomingRecords) unless given; and the API
calls the local cloud counted (:mod:`streamline.local.api_calls`, in-process or over its
``/_streamline/api-calls`` endpoint). Against an AWS account calls are not counted: they are
estimated from the REPORT lines and records, and the report says so.

Example::

    from datetime import UTC, datetime, timedelta
    from streamline.cost.measure import measure
    from streamline.cost.prices import PRICES
    from streamline.cost.pricing import estimate
    from streamline.cost.render import render_text

    m = measure(target, since=datetime.now(UTC) - timedelta(hours=1), events=None)
    print(render_text(estimate(m, PRICES)))
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streamline.cost.model import FunctionUsage, Measurement, RecoveryRun, fit_overhead
from streamline.cost.pricing import HOURS_PER_MONTH
from streamline.cost.report_lines import Report, collect_reports, read_function_logs
from streamline.local.api_calls import CLIENT, ESM, ApiCallCounter, CallKey, CallTally
from streamline.ops.logs import PIPELINE_FUNCTIONS
from streamline.ops.target import Target, TargetError
from streamline.topology import RECOVERY_DRAIN_STATE

__all__ = [
    "ESTIMATED_CALLS_PER_RECORD",
    "CostError",
    "collect_reports",
    "measure",
    "schedule_minutes",
]

#: The AWS calls each pipeline handler makes per record (functions/*/handler.py), used only
#: when calls cannot be counted (an AWS account): an estimate, labelled as one.
ESTIMATED_CALLS_PER_RECORD: dict[str, tuple[tuple[str, str], ...]] = {
    "ingest": (("dynamodb", "PutItem"),),  # conditional write of the order
    "fulfil": (("dynamodb", "PutItem"),),  # the effect, once
    "notify": (("lambda", "Invoke"),),  # async invoke of notifier
    "notifier": (("dynamodb", "PutItem"),),  # the effect, once
}
#: Calls made once per batch, not per record: (service, operation, entries per call).
#: changes sends at least the notification task per change, ten to a SendMessageBatch.
ESTIMATED_BATCHED_CALLS: dict[str, tuple[tuple[str, str, int], ...]] = {
    "changes": (("sqs", "SendMessageBatch", 10),),
}
#: A producer's PutRecords carries up to 500 records.
PUT_RECORDS_MAX = 500
COUNTS_PATH = "/_streamline/api-calls"
_PRODUCER_OPERATIONS = {("kinesis", "PutRecord"), ("kinesis", "PutRecords")}
_MAX_PAGES = 100


class CostError(Exception):
    """A one-line, user-facing problem measuring the window."""


@dataclass
class _Function:
    stage: str
    name: str
    config: dict[str, Any]
    reports: list[Report]
    log_bytes: int
    per_invocation_bytes: int


def measure(
    target: Target,
    *,
    since: datetime | float,
    events: int | None,
    api_calls: ApiCallCounter | Mapping[CallKey, int] | Mapping[CallKey, CallTally] | None = None,
    functions: Mapping[str, str] | None = None,
) -> Measurement:
    """Measure the window from ``since`` (a datetime or epoch seconds) until now.

    ``events``: how many events the window carried (None: the stream's IncomingRecords).
    ``api_calls``: the counter (in-process local cloud), counts already taken, or None (read the
    local cloud's endpoint; estimated on AWS). ``functions``: ``{stage: function name}`` to
    measure instead of the pipeline's five.
    """
    start = since if isinstance(since, datetime) else datetime.fromtimestamp(since, tz=UTC)
    now = datetime.now(UTC)
    notes: list[str] = []
    try:
        outputs = target.stack_outputs()
    except TargetError:
        if functions is None:
            raise
        outputs = {}
    names = dict(functions) if functions is not None else _pipeline_functions(outputs)
    if not names:
        raise CostError("no pipeline functions found: deploy the stacks or name --function")
    measured = [_read_function(target, stage, name, start) for stage, name in names.items()]

    if events is None:
        events = _incoming_records(target, outputs, start, now)
        if not events:
            raise CostError(
                "cannot tell how many events the window carried (no Kinesis IncomingRecords): "
                "pass --events N"
            )
        notes.append(f"events: Kinesis IncomingRecords over the window ({events:,})")
    tallies = _tallies(target, api_calls, start, notes)
    calls_measured = tallies is not None
    function_names = {f.name for f in measured}
    if tallies is None:
        tallies = _estimated_calls(target, measured, events)
    else:
        tallies = {
            key: tally
            for key, tally in tallies.items()
            if key[0] in function_names
            or key[0] == ESM
            or (key[0] == CLIENT and key[1:] in _PRODUCER_OPERATIONS)
        }
    shards, retention = _stream(target, outputs, notes)
    transitions, recovery_runs, runs_per_month = _recovery(target, outputs, start, notes)
    bus_events, to_bus = _eventbridge_events(target, measured)
    lam = target.client("lambda")
    mapped = {f.name for f in measured if _mappings(lam, f.name)}
    usage = tuple(
        _usage(f, tallies, target.is_local, f.name in to_bus, f.name in mapped) for f in measured
    )
    return Measurement(
        events=events,
        window_seconds=max((now - start).total_seconds(), 1.0),
        functions=usage,
        calls=tallies,
        calls_measured=calls_measured,
        origin="local" if target.is_local else "aws",
        state_transitions=transitions,
        recovery_runs=recovery_runs,
        recovery_runs_per_month=runs_per_month,
        traces=_traces(target, start, now, notes),
        custom_metrics=_custom_metrics(target, measured),
        kinesis_shards=shards,
        kinesis_retention_hours=retention,
        sqs_mappings=_sqs_mappings(target, measured),
        eventbridge_events=bus_events,
        notes=tuple(notes),
    )


# -- functions ---------------------------------------------------------------------------------


def _pipeline_functions(outputs: Mapping[str, str]) -> dict[str, str]:
    return {stage: outputs[key] for stage, key in PIPELINE_FUNCTIONS.items() if key in outputs}


def _read_function(target: Target, stage: str, name: str, since: datetime) -> _Function:
    config = target.client("lambda").get_function_configuration(FunctionName=name)
    logs = read_function_logs(target, name, since, config)
    return _Function(
        stage, logs.function, config, logs.reports, logs.ingested_bytes, logs.per_invocation_bytes
    )


def _usage(
    f: _Function,
    tallies: Mapping[CallKey, CallTally],
    local: bool,
    success_to_bus: bool,
    starts_traces: bool,
) -> FunctionUsage:
    reports = f.reports
    init = tuple(r.init_ms for r in reports if r.init_ms is not None)
    # AWS's REPORT has billed INIT inside Billed Duration since Aug 2025; the local runtime's
    # does not. Either way INIT is priced once.
    init_in_billed = any(
        r.init_ms is not None and r.billed_ms >= math.floor(r.duration_ms + r.init_ms)
        for r in reports
    )
    counted = [r for r in reports if r.records is not None]
    fixed, per_record, _ = fit_overhead([(r.duration_ms, r.records or 0) for r in counted])
    own = [t for (caller, _, _), t in tallies.items() if caller == f.name]
    architectures = f.config.get("Architectures") or ["x86_64"]
    return FunctionUsage(
        name=f.name,
        stage=f.stage,
        memory_mb=int(f.config.get("MemorySize") or 128),
        architecture=str(architectures[0]),
        invocations=len(reports),
        records=sum(r.records or 0 for r in counted),
        duration_ms=sum(r.duration_ms for r in reports),
        billed_ms=float(sum(r.billed_ms for r in reports)),
        init_ms=init,
        init_in_billed=init_in_billed and not local,
        max_memory_used_mb=max((r.max_memory_used_mb for r in reports), default=0),
        fixed_ms=fixed if counted else None,
        per_record_ms=per_record if counted else None,
        log_bytes=f.log_bytes,
        per_invocation_log_bytes=f.per_invocation_bytes,
        calls=sum(t.calls for t in own),
        errors=sum(1 for r in reports if r.status),
        success_to_bus=success_to_bus,
        starts_traces=starts_traces,
    )


# -- API calls ---------------------------------------------------------------------------------


def _tallies(
    target: Target,
    api_calls: ApiCallCounter | Mapping[CallKey, Any] | None,
    start: datetime,
    notes: list[str],
) -> dict[CallKey, CallTally] | None:
    if isinstance(api_calls, ApiCallCounter):
        return api_calls.tallies(start.timestamp())
    if api_calls is not None:
        return {
            key: value if isinstance(value, CallTally) else CallTally(value, value, 0, value)
            for key, value in api_calls.items()
        }
    if not target.is_local:
        return None
    try:
        url = f"{target.endpoint_url}{COUNTS_PATH}"
        with urllib.request.urlopen(url, timeout=30) as response:
            document = json.loads(response.read())
        return ApiCallCounter.from_json(document, start.timestamp())
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as exc:
        notes.append(f"the local cloud did not serve API call counts ({exc}): estimated")
        return None


def _estimated_calls(
    target: Target, functions: list[_Function], events: int
) -> dict[CallKey, CallTally]:
    tallies: dict[CallKey, CallTally] = {}

    def add(key: CallKey, calls: int, items: int, units: int, fifo: bool = False) -> None:
        if calls > 0:
            tally = CallTally(calls, items, 0, units, units if fifo else 0)
            tallies[key] = tallies.get(key, CallTally()) + tally

    lam = target.client("lambda")
    for f in functions:
        records = [r.records if r.records is not None else 1 for r in f.reports]
        handled = sum(records)
        for service, operation in ESTIMATED_CALLS_PER_RECORD.get(f.stage, ()):
            add((f.name, service, operation), handled, handled, handled)
        for service, operation, per_call in ESTIMATED_BATCHED_CALLS.get(f.stage, ()):
            calls = sum(math.ceil(n / per_call) for n in records)
            add((f.name, service, operation), calls, handled, handled)
        for mapping in _mappings(lam, f.name):
            arn = str(mapping.get("EventSourceArn", ""))
            if ":sqs:" in arn:
                fifo = arn.endswith(".fifo")
                invocations = len(f.reports)
                add((ESM, "sqs", "ReceiveMessage"), invocations, handled, invocations, fifo)
                deletes = sum(math.ceil(n / 10) for n in records)
                add((ESM, "sqs", "DeleteMessageBatch"), deletes, handled, deletes, fifo)
    if events:
        add(
            (CLIENT, "kinesis", "PutRecords"),
            math.ceil(events / PUT_RECORDS_MAX),
            events,
            events,  # one 25 KB PUT payload unit per (small) record
        )
    return tallies


# -- the rest of the bill ----------------------------------------------------------------------


def _incoming_records(
    target: Target, outputs: Mapping[str, str], start: datetime, now: datetime
) -> int:
    stream = outputs.get("OrderEventsStreamName")
    if not stream:
        return 0
    try:
        points = target.client("cloudwatch").get_metric_statistics(
            Namespace="AWS/Kinesis",
            MetricName="IncomingRecords",
            Dimensions=[{"Name": "StreamName", "Value": stream}],
            StartTime=start,
            EndTime=now,
            Period=60,
            Statistics=["Sum"],
        )["Datapoints"]
    except Exception:  # botocore: the metric or permission is missing; the caller says so
        return 0
    return int(sum(p["Sum"] for p in points))


def _stream(target: Target, outputs: Mapping[str, str], notes: list[str]) -> tuple[int, int]:
    stream = outputs.get("OrderEventsStreamName")
    if not stream:
        return 0, 24
    try:
        summary = target.client("kinesis").describe_stream_summary(StreamName=stream)
    except Exception as exc:  # botocore: not readable here
        notes.append(f"Kinesis stream not read ({type(exc).__name__}): shard-hours left out")
        return 0, 24
    description = summary["StreamDescriptionSummary"]
    mode = (description.get("StreamModeDetails") or {}).get("StreamMode", "PROVISIONED")
    if mode != "PROVISIONED":
        notes.append("the stream is on-demand: its per-GB charges are not modelled")
        return 0, int(description.get("RetentionPeriodHours", 24))
    return int(description.get("OpenShardCount", 0)), int(
        description.get("RetentionPeriodHours", 24)
    )


def _recovery(
    target: Target, outputs: Mapping[str, str], start: datetime, notes: list[str]
) -> tuple[int, tuple[RecoveryRun, ...], float | None]:
    """The recovery workflow's executions since ``start``: all their state transitions, each
    run's transitions and failed records (from its history), and its runs a month (schedule)."""
    machine = outputs.get("RecoveryStateMachineArn")
    if not machine:
        return 0, (), None
    sfn = target.client("stepfunctions")
    runs: list[RecoveryRun] = []
    try:
        for page in _pages(sfn, "list_executions", stateMachineArn=machine):
            for execution in page.get("executions", []):
                if execution["startDate"] < start:
                    continue
                transitions = records = 0
                for history in _pages(
                    sfn, "get_execution_history", executionArn=execution["executionArn"]
                ):
                    for event in history.get("events", []):
                        # Standard workflows bill a transition each time a state is entered.
                        transitions += event["type"].endswith("StateEntered")
                        records += drained_records(event)
                runs.append(RecoveryRun(transitions, records))
    except Exception as exc:  # botocore: the machine is gone or not readable
        notes.append(f"state transitions not read ({type(exc).__name__})")
    return sum(r.transitions for r in runs), tuple(runs), _runs_per_month(target, machine, notes)


def drained_records(event: Mapping[str, Any]) -> int:
    """The records a history event says a source's drain took (0 for any other event)."""
    details = event.get("stateExitedEventDetails") or {}
    if details.get("name") != RECOVERY_DRAIN_STATE:
        return 0
    try:
        count = json.loads(details.get("output") or "{}")["records"]["count"]
    except (ValueError, KeyError, TypeError):
        return 0  # a failed drain (DrainFailed) took none
    return count if isinstance(count, int) else 0


def _runs_per_month(target: Target, machine: str, notes: list[str]) -> float | None:
    """How often the schedule that targets the state machine starts it, per month."""
    events = target.client("events")
    try:
        names = events.list_rule_names_by_target(TargetArn=machine).get("RuleNames", [])
        for name in names:
            expression = events.describe_rule(Name=name).get("ScheduleExpression") or ""
            minutes = schedule_minutes(expression)
            if minutes:
                return HOURS_PER_MONTH * 60 / minutes
    except Exception as exc:  # botocore: no rules, or not readable
        notes.append(f"the recovery schedule was not read ({type(exc).__name__})")
        return None
    notes.append("no schedule starts the recovery workflow: its runs are not charged monthly")
    return None


def schedule_minutes(expression: str) -> float | None:
    """Minutes between runs of an EventBridge ``rate(...)`` schedule (None for cron or other).

    Example::

        >>> schedule_minutes("rate(15 minutes)"), schedule_minutes("rate(1 hour)")
        (15.0, 60.0)
    """
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression.strip())
    if match is None:
        return None
    unit = {"minute": 1, "hour": 60, "day": 1440}[match.group(2).rstrip("s")]
    return int(match.group(1)) * float(unit)


def _traces(target: Target, start: datetime, now: datetime, notes: list[str]) -> int:
    xray = target.client("xray")
    request: dict[str, Any] = {"StartTime": start, "EndTime": now}
    count = 0
    try:
        for _ in range(_MAX_PAGES):
            page = xray.get_trace_summaries(**request)
            count += len(page.get("TraceSummaries", []))
            token = page.get("NextToken")
            if not token:
                break
            request["NextToken"] = token
    except Exception as exc:  # botocore: X-Ray not readable here
        notes.append(f"traces not read ({type(exc).__name__})")
    return count


def _custom_metrics(target: Target, functions: list[_Function]) -> int:
    namespaces = {
        str(ns)
        for f in functions
        if (
            ns := ((f.config.get("Environment") or {}).get("Variables") or {}).get(
                "POWERTOOLS_METRICS_NAMESPACE"
            )
        )
    }
    cloudwatch = target.client("cloudwatch")
    count = 0
    for namespace in sorted(namespaces):
        try:
            for page in _pages(cloudwatch, "list_metrics", Namespace=namespace):
                count += len(page.get("Metrics", []))
        except Exception:  # botocore: not readable; the fixed charge is left out
            continue
    return count


def _mappings(lam: Any, function: str) -> list[dict[str, Any]]:
    try:
        return [
            m
            for page in _pages(lam, "list_event_source_mappings", FunctionName=function)
            for m in page.get("EventSourceMappings", [])
        ]
    except Exception:  # botocore: not readable; no mappings assumed
        return []


def _sqs_mappings(target: Target, functions: list[_Function]) -> tuple[bool, ...]:
    lam = target.client("lambda")
    return tuple(
        str(m.get("EventSourceArn", "")).endswith(".fifo")
        for f in functions
        for m in _mappings(lam, f.name)
        if ":sqs:" in str(m.get("EventSourceArn", ""))
    )


def _eventbridge_events(target: Target, functions: list[_Function]) -> tuple[int, set[str]]:
    """Successful invocations of functions whose OnSuccess destination is an event bus (one
    event each), and those functions' names."""
    lam = target.client("lambda")
    total = 0
    names: set[str] = set()
    for f in functions:
        try:
            config = lam.get_function_event_invoke_config(FunctionName=f.name)
        except Exception:  # ResourceNotFound: no async configuration
            continue
        destination = (
            ((config.get("DestinationConfig") or {}).get("OnSuccess") or {}).get("Destination")
        ) or ""
        if ":event-bus/" in destination:
            total += sum(1 for r in f.reports if not r.status)
            names.add(f.name)
    return total, names


def _pages(client: Any, operation: str, **request: Any) -> Any:
    """Every page of ``operation``, following nextToken/NextToken (at most ``_MAX_PAGES``)."""
    for _ in range(_MAX_PAGES):
        page = getattr(client, operation)(**request)
        yield page
        token = page.get("nextToken") or page.get("NextToken")
        if not token:
            return
        request["nextToken" if "nextToken" in page else "NextToken"] = token
