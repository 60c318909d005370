"""``streamline status``: one table per stage of how each processor is keeping up.

For each processor (ingest on Kinesis, changes on the orders DynamoDB stream, fulfil on SQS
FIFO, notify on SQS, notifier invoked asynchronously): its backlog (queue depth, visible and in
flight; for streams the highest IteratorAge of the last 5 minutes, for the async notifier the
highest AsyncEventAge: ``-`` when there is no data point), the depth of its DLQ or failure
queue (named as the recovery workflow names it), and its last errors and warnings (record
failures are logged as warnings) from its log group (``-`` when the group does not exist yet).
Then the recovery workflow's last execution and how many records are quarantined.

Exit status: 0; with ``--check``, 1 when any DLQ or failure queue holds a message (for scripts);
2 on a one-line error.

Example::

    streamline status
    streamline status --since 1h --errors 5
    streamline status --check --json --profile prod --region eu-west-1 --stage prod
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from streamline.ops.logs import (
    LogsError,
    filter_all,
    format_event,
    parse_since,
    render_message,
    resolve_function,
)
from streamline.ops.target import (
    Target,
    add_command,
    add_target_arguments,
    command_error,
)
from streamline.topology import PROCESSORS, Processor

__all__ = ["PROCESSORS", "Processor", "collect", "format_age", "format_depth", "register", "run"]

DEFAULT_SINCE = "15m"
DEFAULT_ERRORS = 3
METRIC_WINDOW = timedelta(minutes=5)
# On AWS this narrows FilterLogEvents to likely problems; every event is still classified with
# `streamline logs`' own rules (moto's Logs ignores OR patterns and returns everything).
ERROR_FILTER = '?ERROR ?WARN ?WARNING ?Exception ?Traceback ?"Task timed out" ?"Status: error"'
_PROBLEMS = frozenset({"error", "warning"})


def register(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add the ``status`` command to the top-level subparsers object ``commands``."""
    parser = add_command(
        commands,
        parser_class,
        "status",
        help="per processor: backlog, iterator age, DLQ/failure-queue depth, last errors",
        doc=__doc__,
    )
    parser.add_argument(
        "--since",
        default=DEFAULT_SINCE,
        help=f"how far back to look for errors: 30s, 10m, 2h or 1d (default {DEFAULT_SINCE})",
    )
    parser.add_argument(
        "--errors",
        type=int,
        default=DEFAULT_ERRORS,
        metavar="N",
        help=f"last errors to show per processor (default {DEFAULT_ERRORS}; 0: none)",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when any DLQ or failure queue is not empty"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_target_arguments(parser)
    parser.set_defaults(func=run)


# -- formatting (pure) --------------------------------------------------------------------


def format_age(milliseconds: float | None) -> str:
    """An iterator or event age for the table: ``-`` without data.

    Example::

        >>> [format_age(None), format_age(850), format_age(12_300), format_age(7_560_000)]
        ['-', '850 ms', '12.3 s', '2.1 h']
    """
    if milliseconds is None:
        return "-"
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    seconds = milliseconds / 1000
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_depth(depth: dict[str, int] | None) -> str:
    """A queue depth: visible, and in flight when any (``-`` when the queue is unknown).

    Example::

        >>> format_depth({"visible": 3, "inFlight": 2}), format_depth({"visible": 0, "inFlight": 0})
        ('3 (+2 in flight)', '0')
    """
    if depth is None:
        return "-"
    text = str(depth["visible"])
    return text + (f" (+{depth['inFlight']} in flight)" if depth["inFlight"] else "")


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


# -- collecting ---------------------------------------------------------------------------


def _depth(sqs: Any, url: str | None) -> dict[str, int] | None:
    if not url:
        return None
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return {
        "visible": int(attributes.get("ApproximateNumberOfMessages", 0)),
        "inFlight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
    }


def _latest_maximum(cloudwatch: Any, metric: str, function: str, now: datetime) -> float | None:
    """The newest one-minute Maximum of an AWS/Lambda metric in the last 5 minutes."""
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName=metric,
        Dimensions=[{"Name": "FunctionName", "Value": function}],
        StartTime=now - METRIC_WINDOW,
        EndTime=now,
        Period=60,
        Statistics=["Maximum"],
    ).get("Datapoints", [])
    if not points:
        return None
    return float(max(points, key=lambda p: p["Timestamp"])["Maximum"])


def _last_problems(
    target: Target, logs: Any, function: str, since_ms: int, limit: int
) -> dict[str, Any]:
    """The function's error/warning lines since ``since_ms``: the count and the last ``limit``.

    ``errorCount`` is None when the log group does not exist (the function never logged).
    """
    _, group = resolve_function(target, function)
    poll = filter_all(logs, group, since_ms, ERROR_FILTER)
    problems = [
        event
        for event in poll.events
        if render_message(str(event.get("message", "")))[1] in _PROBLEMS
    ]
    shown = problems[-limit:] if limit > 0 else []
    return {
        "logGroup": group,
        "errorCount": len(problems) if poll.group_exists else None,
        "errors": [
            {
                "at": datetime.fromtimestamp(e["timestamp"] / 1000, tz=UTC).isoformat(),
                # format_event: "<time> <stream> <message>"; the message's first line fits.
                "line": format_event(e).split(" ", 2)[-1].splitlines()[0],
            }
            for e in reversed(shown)
        ],
    }


def _recovery(target: Target, outputs: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {"lastExecution": None, "quarantined": None}
    arn = outputs.get("RecoveryStateMachineArn")
    if arn:
        sfn = target.client("stepfunctions")
        # AWS lists newest first; the max also covers a backend that does not.
        executions = sfn.list_executions(stateMachineArn=arn, maxResults=100).get("executions", [])
        if executions:
            last = max(executions, key=lambda e: e["startDate"])
            entry: dict[str, Any] = {
                "name": last["name"],
                "status": last["status"],
                "started": last["startDate"].isoformat(),
                "stopped": last["stopDate"].isoformat() if last.get("stopDate") else None,
            }
            if last["status"] == "SUCCEEDED":
                output = sfn.describe_execution(executionArn=last["executionArn"]).get("output")
                # the workflow's output: orderflow.recovery_contract.RecoverySummary
                summary = json.loads(output) if output else {}
                if isinstance(summary, dict):
                    entry["summary"] = {
                        k: summary.get(k) for k in ("replayed", "quarantined", "failed")
                    }
            result["lastExecution"] = entry
    table = outputs.get("RecoveryTableName")
    if table:
        ddb = target.client("dynamodb")
        count = 0
        for page in ddb.get_paginator("scan").paginate(
            TableName=table,
            Select="COUNT",
            FilterExpression="#state = :q",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":q": {"S": "QUARANTINED"}},
        ):
            count += int(page.get("Count", 0))
        result["quarantined"] = count
    return result


def collect(target: Target, *, since_seconds: int, errors: int) -> dict[str, Any]:
    """The status report of ``target``'s stage, as JSON-ready data."""
    outputs = target.stack_outputs()
    sqs, cloudwatch, logs = (target.client(s) for s in ("sqs", "cloudwatch", "logs"))
    now = datetime.now(UTC)
    since_ms = int(time.time() * 1000) - since_seconds * 1000
    processors = []
    for p in PROCESSORS:
        function = outputs.get(p.function_output)
        entry: dict[str, Any] = {"name": p.name, "source": p.source, "function": function}
        if p.backlog == "queue":
            entry["backlog"] = _depth(sqs, outputs.get(p.queue_output or ""))
        else:
            metric = "IteratorAge" if p.backlog == "stream" else "AsyncEventAge"
            entry["backlog"] = {
                "metric": metric,
                "maximumMs": _latest_maximum(cloudwatch, metric, function, now)
                if function
                else None,
            }
        failure_url = outputs.get(p.failure_output)
        entry["failureQueue"] = p.failure_name
        entry["failureQueueUrl"] = failure_url
        entry["failures"] = _depth(sqs, failure_url)
        if function:
            entry.update(_last_problems(target, logs, function, since_ms, errors))
        else:
            entry.update({"logGroup": None, "errorCount": None, "errors": []})
        processors.append(entry)
    failing = [
        p["failureQueue"]
        for p in processors
        if p["failures"] and (p["failures"]["visible"] or p["failures"]["inFlight"])
    ]
    return {
        "stage": target.stage,
        "processors": processors,
        "recovery": _recovery(target, outputs),
        "nonEmptyFailureQueues": failing,
    }


def render(report: dict[str, Any], since: str) -> list[str]:
    """The report as text lines: the table, the last errors, the recovery line."""
    rows = [["PROCESSOR", "SOURCE", "BACKLOG", "FAILURE QUEUE", "DEPTH", f"ERRORS ({since})"]]
    for p in report["processors"]:
        backlog = p["backlog"]
        shown = (
            format_age(backlog["maximumMs"])
            if backlog and "metric" in backlog
            else format_depth(backlog)
        )
        rows.append(
            [
                p["name"],
                p["source"],
                shown,
                p["failureQueue"],
                format_depth(p["failures"]),
                "-" if p["errorCount"] is None else str(p["errorCount"]),
            ]
        )
    lines = [f"stage {report['stage']}", *_table(rows)]
    recent = [(p["name"], e) for p in report["processors"] for e in p["errors"]]
    if recent:
        lines.append("")
        lines.append("last errors")
        width = max(len(name) for name, _ in recent)
        lines.extend(f"  {name.ljust(width)}  {e['at']}  {e['line']}" for name, e in recent)
    recovery = report["recovery"]
    last = recovery["lastExecution"]
    lines.append("")
    if last is None:
        lines.append("recovery    no executions yet")
    else:
        summary = last.get("summary")
        counts = (
            f": replayed {summary['replayed']}, quarantined {summary['quarantined']}, "
            f"kept {summary['failed']}"
            if summary
            else ""
        )
        lines.append(f"recovery    last run {last['status']} (started {last['started']}){counts}")
    quarantined = recovery["quarantined"]
    if quarantined is None:
        lines.append("quarantine  -")
    else:
        lines.append(f"quarantine  {quarantined} record{'' if quarantined == 1 else 's'}")
    if report["nonEmptyFailureQueues"]:
        lines.append(f"attention   not empty: {', '.join(report['nonEmptyFailureQueues'])}")
    return lines


STATUS_READ_TIMEOUT = 15.0


def run(args: argparse.Namespace, target: Target | None = None) -> int:
    """Print the status; exit 0 (1 with ``--check`` when a failure queue holds messages)."""
    try:
        if args.errors < 0:
            raise LogsError(f"--errors must be 0 or more, got {args.errors}")
        since_seconds = parse_since(args.since)
        if target is None:
            target = Target.from_args(args)
            # A status of a cloud that stopped answering is an error in seconds, not minutes.
            target.read_timeout = STATUS_READ_TIMEOUT
        report = collect(target, since_seconds=since_seconds, errors=args.errors)
    except Exception as exc:
        return command_error(exc, "cannot read status", LogsError)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print("\n".join(render(report, args.since)))
    return 1 if args.check and report["nonEmptyFailureQueues"] else 0
