"""``streamline redrive``: start the recovery workflow now and follow it to the end.

Starts an execution of the stage's ``recovery`` state machine (what the 15-minute schedule
does) with ``{"trigger": "streamline redrive"}``, prints each state as it is entered and exited
(from GetExecutionHistory, read incrementally by event id), failures with their error and
cause, and at the end the run's summary: records replayed, quarantined, and kept for the next
run (a replay that failed for now), per failure queue.

Exit status: 0 when the execution SUCCEEDED (also ``--no-wait`` once started), 1 when it failed,
timed out, was aborted or is still running after ``--timeout``, 2 on a one-line error.

Example::

    streamline redrive                      # start, follow, summary
    streamline redrive --no-wait            # print the execution ARN and return
    streamline redrive --timeout 600 --profile prod --region eu-west-1 --stage prod
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from streamline.ops.target import (
    Target,
    add_command,
    add_target_arguments,
    command_error,
)

__all__ = ["RedriveError", "describe_event", "format_summary", "new_events", "register", "run"]

DEFAULT_TIMEOUT = 900.0
DEFAULT_INTERVAL = 1.0
TRIGGER = {"trigger": "streamline redrive"}
_DONE = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


class RedriveError(Exception):
    """A one-line, user-facing problem with the arguments: exit status 2."""


def register(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add the ``redrive`` command to the top-level subparsers object ``commands``."""
    parser = add_command(
        commands,
        parser_class,
        "redrive",
        help="start the recovery workflow and follow it to the end",
        doc=__doc__,
    )
    parser.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="follow the execution to its end (default; --no-wait: start it and return)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"stop following after this long (default {DEFAULT_TIMEOUT:g}; the run goes on)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL,
        metavar="SECONDS",
        help=f"seconds between history polls (default {DEFAULT_INTERVAL:g})",
    )
    parser.add_argument("--json", action="store_true", help="print only the final result, as JSON")
    add_target_arguments(parser)
    parser.set_defaults(func=run)


# -- history (pure) -----------------------------------------------------------------------


def describe_event(event: dict[str, Any]) -> str | None:
    """One history event as a line (without the time), or None for events not worth a line.

    Example::

        >>> describe_event({"type": "TaskStateEntered",
        ...                 "stateEnteredEventDetails": {"name": "Drain"}})
        'enter  Drain'
        >>> describe_event({"type": "LambdaFunctionFailed",
        ...                 "lambdaFunctionFailedEventDetails": {"error": "TransientReplayError",
        ...                                                      "cause": "throttled\\nmore"}})
        'failed TransientReplayError: throttled'
    """
    kind = str(event.get("type", ""))
    if kind.endswith("StateEntered"):
        return f"enter  {event.get('stateEnteredEventDetails', {}).get('name', '?')}"
    if kind.endswith("StateExited"):
        return f"exit   {event.get('stateExitedEventDetails', {}).get('name', '?')}"
    if kind.endswith(("Failed", "TimedOut", "Aborted")):
        details: dict[str, Any] = next(
            (v for k, v in event.items() if k.endswith("EventDetails")), {}
        )
        error = details.get("error") or kind
        cause = _first_line(details.get("cause"))
        prefix = "execution " if kind.startswith("Execution") else ""
        return f"{prefix}failed {error}" + (f": {cause}" if cause else "")
    return None


def _first_line(cause: Any) -> str:
    if not cause:
        return ""
    text = str(cause)
    try:
        # Lambda errors arrive as a JSON document; its errorMessage is the readable part.
        document = json.loads(text)
        if isinstance(document, dict) and document.get("errorMessage"):
            text = str(document["errorMessage"])
    except ValueError:
        pass
    lines = text.strip().splitlines()
    return lines[0][:300] if lines else ""


def new_events(pages: Iterator[list[dict[str, Any]]], after_id: int) -> list[dict[str, Any]]:
    """History events with an id above ``after_id``, oldest first.

    ``pages`` are GetExecutionHistory pages asked for newest first: reading stops at the first
    page that reaches ``after_id``, so a long run costs one call per poll. A backend that
    ignores ``reverseOrder`` (moto) returns one ascending page; sorting by id serves both.

    Example::

        >>> new_events(iter([[{"id": 3}, {"id": 2}], [{"id": 1}]]), after_id=1)
        [{'id': 2}, {'id': 3}]
    """
    found: dict[int, dict[str, Any]] = {}
    for page in pages:
        for event in page:
            if int(event["id"]) > after_id:
                found[int(event["id"])] = event
        if any(int(event["id"]) <= after_id for event in page):
            break
    return [found[key] for key in sorted(found)]


def format_summary(output: dict[str, Any]) -> list[str]:
    """The workflow output (``orderflow.recovery_contract.RecoverySummary``, read defensively)
    as lines: totals, then one line per failure queue.

    Example::

        >>> format_summary({"replayed": 1, "quarantined": 2, "failed": 0, "sources": [
        ...     {"source": "ingest-failures", "replayed": ["a"], "quarantined": ["b", "c"],
        ...      "failed": [], "deleted": 2}]})[1]
        '  ingest-failures: replayed 1, quarantined 2, kept 0, deleted 2'
    """
    lines = [
        f"replayed {output.get('replayed', 0)}, quarantined {output.get('quarantined', 0)}, "
        f"kept {output.get('failed', 0)}"
    ]
    for source in output.get("sources") or []:
        counts = {k: len(source.get(k) or []) for k in ("replayed", "quarantined", "failed")}
        if not any(counts.values()) and not source.get("deleted") and not source.get("error"):
            continue
        line = (
            f"  {source.get('source')}: replayed {counts['replayed']}, quarantined "
            f"{counts['quarantined']}, kept {counts['failed']}, deleted {source.get('deleted', 0)}"
        )
        error = source.get("error")
        if isinstance(error, dict):
            line += f" (error {error.get('Error')}: {_first_line(error.get('Cause'))})"
        lines.append(line)
    return lines


# -- following ----------------------------------------------------------------------------


def _history_pages(sfn: Any, execution_arn: str) -> Iterator[list[dict[str, Any]]]:
    request: dict[str, Any] = {
        "executionArn": execution_arn,
        "reverseOrder": True,
        "maxResults": 1000,
    }
    while True:
        page = sfn.get_execution_history(**request)
        yield page.get("events", [])
        token = page.get("nextToken")
        if not token:
            return
        request["nextToken"] = token


def follow(
    sfn: Any,
    execution_arn: str,
    *,
    timeout: float,
    interval: float,
    emit: Callable[[str], None],
) -> dict[str, Any]:
    """Print the execution's states until it ends or ``timeout``; its last DescribeExecution."""
    deadline = time.monotonic() + timeout
    last_id = 0
    while True:
        # Describe first: when it says done, the history read next is complete.
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        events = new_events(_history_pages(sfn, execution_arn), last_id)
        for event in events:
            line = describe_event(event)
            if line is not None:
                emit(f"{_clock(event.get('timestamp'))}  {line}")
        if events:
            last_id = int(events[-1]["id"])
        if described["status"] in _DONE or time.monotonic() >= deadline:
            return described
        time.sleep(interval)


def _clock(when: Any) -> str:
    if isinstance(when, datetime):
        return when.strftime("%H:%M:%S.") + f"{when.microsecond // 1000:03d}"
    return "--:--:--.---"


def run(args: argparse.Namespace, target: Target | None = None) -> int:
    """Start the recovery workflow and follow it; exit 0 when it SUCCEEDED."""
    emit: Callable[[str], None] = (lambda _line: None) if args.json else print
    execution_arn = None
    try:
        # `not 0 < x`: NaN compares false both ways, so this refuses it too.
        if not 0 < args.timeout <= 86400:
            raise RedriveError(f"--timeout must be 1 s to a day, got {args.timeout:g}")
        if not 0 < args.interval <= 3600:
            raise RedriveError(
                f"--interval must be above 0 and at most an hour, got {args.interval:g}"
            )
        target = target or Target.from_args(args)
        outputs = target.stack_outputs()
        machine = outputs.get("RecoveryStateMachineArn")
        if not machine:
            raise RedriveError(f"stage {target.stage} has no RecoveryStateMachineArn output")
        sfn = target.client("stepfunctions")
        execution_arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps(TRIGGER))[
            "executionArn"
        ]
        emit(f"started {execution_arn}")
        if not args.wait:
            if args.json:
                print(json.dumps({"executionArn": execution_arn, "status": "RUNNING"}))
            return 0
        described = follow(
            sfn, execution_arn, timeout=args.timeout, interval=args.interval, emit=emit
        )
    except KeyboardInterrupt:
        if execution_arn:
            print(f"\nstreamline: stopped following; {execution_arn} goes on", file=sys.stderr)
        return 130
    except Exception as exc:
        return command_error(exc, "cannot redrive", RedriveError)
    return _finish(args, described)


def _finish(args: argparse.Namespace, described: dict[str, Any]) -> int:
    status = str(described["status"])
    output: Any = None
    if described.get("output"):
        try:
            output = json.loads(described["output"])
        except ValueError:
            output = described["output"]
    if args.json:
        print(
            json.dumps(
                {
                    "executionArn": described["executionArn"],
                    "status": status,
                    "output": output,
                    "error": described.get("error"),
                    "cause": described.get("cause"),
                },
                indent=2,
                default=str,
            )
        )
    else:
        print(status)
        if status == "RUNNING":
            print(
                f"still running after {args.timeout:g} s; it goes on: {described['executionArn']}"
            )
        elif isinstance(output, dict):
            print("\n".join(format_summary(output)))
        elif status != "SUCCEEDED":
            detail = _first_line(described.get("cause"))
            print(f"{described.get('error') or status}" + (f": {detail}" if detail else ""))
    return 0 if status == "SUCCEEDED" else 1
