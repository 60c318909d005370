"""``streamline logs``: a function's CloudWatch Logs, on the local cloud or AWS, like ``sam logs``.

FUNCTION is a full function name (or ARN), a pipeline name (``ingest``, ``changes``, ``fulfil``,
``notify``, ``notifier``) looked up in the stage's stack outputs, or a substring of one deployed
function's name. Lines print as ``<ISO time> <stream short id> <message>``; Powertools JSON lines
are shown compactly with the level and message first; errors, warnings and ``REPORT`` lines are
coloured when stdout is a terminal (or with ``--color always``).

Example::

    streamline logs ingest --since 30m --filter ERROR
    streamline logs changes --follow          # until Ctrl-C, like `sam logs --tail`
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streamline.ops.target import (
    Target,
    TargetError,
    add_command,
    add_target_arguments,
    command_error,
)
from streamline.topology import function_outputs

__all__ = [
    "PIPELINE_FUNCTIONS",
    "LogsError",
    "filter_all",
    "format_event",
    "function_log_group",
    "parse_since",
    "register",
    "render_message",
    "resolve_function",
    "run",
]

#: Pipeline names and the stack output that holds each one's function name.
PIPELINE_FUNCTIONS: dict[str, str] = function_outputs()

_SINCE = re.compile(r"\s*([0-9]{1,9})\s*([smhd])\s*")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DEFAULT_SINCE = "10m"  # what `sam logs` shows when no start time is given

# A follow poll re-reads this far behind the newest event seen: the Lambda service (and the
# local runtime, which ships a whole START..REPORT phase at once) can deliver an event after
# newer ones. The eventId set drops the ones already printed.
LATE_ARRIVAL_MS = 60_000

# Powertools fields that repeat on every line and say nothing about this one.
_NOISE_KEYS = frozenset(
    {
        "timestamp",
        "time",
        "function_name",
        "function_arn",
        "function_memory_size",
        "xray_trace_id",
    }
)
_LEVEL_KEYS = ("level", "levelname", "log_level", "severity")
_MESSAGE_KEYS = ("message", "msg")
_TRACE_KEYS = ("exception", "stack_trace")

_ERROR_TEXT = re.compile(
    r"\b(ERROR|CRITICAL|FATAL)\b|Traceback \(most recent call last\)|Task timed out"
    r"|^\w+(Error|Exception): |Status: (error|timeout)",
)
_WARNING_TEXT = re.compile(r"\bWARN(ING)?\b")
_PLATFORM_PREFIXES = ("START ", "END ", "INIT_START ", "EXTENSION ", "TELEMETRY ")

_RESET = "\033[0m"
_STYLES = {
    "error": "\033[31m",  # red
    "warning": "\033[33m",  # yellow
    "report": "\033[36m",  # cyan
    "platform": "\033[2m",  # dim
}
_DIM = "\033[2m"


class LogsError(Exception):
    """A one-line, user-facing problem with the command's arguments or the function's logs."""


def register(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add the ``logs`` command to the top-level subparsers object ``commands``.

    ``parser_class`` is the CLI's parser class; ``commands.add_parser`` already builds that
    class, so it is only checked here to keep one-line argparse errors.

    Example::

        commands = parser.add_subparsers(dest="command", parser_class=_Parser)
        register(commands, _Parser)
    """
    parser = add_command(
        commands,
        parser_class,
        "logs",
        help="a function's CloudWatch Logs (local cloud or AWS), like `sam logs --tail`",
        doc=__doc__,
    )
    add_logs_arguments(parser)
    parser.set_defaults(func=run)


def add_logs_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``logs`` flags (and the shared target flags) on ``parser``."""
    parser.add_argument(
        "function",
        metavar="FUNCTION",
        help="function name or ARN, pipeline name (ingest, changes, fulfil, notify, notifier) "
        "or a unique part of a name",
    )
    parser.add_argument(
        "-f", "--follow", "--tail", action="store_true", help="keep polling for new lines"
    )
    parser.add_argument(
        "--since",
        default=DEFAULT_SINCE,
        help=f"how far back to start: 30s, 10m, 2h or 1d (default {DEFAULT_SINCE})",
    )
    parser.add_argument("--filter", metavar="TEXT", help="a CloudWatch Logs filter pattern")
    parser.add_argument("--limit", type=int, metavar="N", help="stop after N events")
    parser.add_argument(
        "--color",
        "--colour",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour errors and REPORT lines (default auto: only on a terminal)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="seconds between polls with --follow (default 1)",
    )
    add_target_arguments(parser)


def run(args: argparse.Namespace, target: Target | None = None) -> int:
    """Print the function's log events; the exit status (2 on a one-line error, 130 on Ctrl-C).

    ``target`` replaces the one the target flags describe (tests pass the local cloud's).
    """
    try:
        since_ms = _now_ms() - parse_since(args.since) * 1000
        limit = getattr(args, "limit", None)
        if limit is not None and limit < 1:
            raise LogsError(f"--limit must be a positive number, got {limit}")
        interval = float(getattr(args, "interval", 1.0))
        if not 0 < interval <= 3600:  # NaN fails this too
            raise LogsError(f"--interval must be above 0 and at most an hour, got {interval:g}")
        colour = _use_colour(getattr(args, "color", "auto"))
        target = target or Target.from_args(args)
        function, group = resolve_function(target, args.function)
        logs = target.client("logs")
        events: Iterable[dict[str, Any]] = (
            _tail(logs, group, since_ms, args.filter, interval)
            if args.follow
            else _read(logs, group, function, since_ms, args.filter)
        )
        for printed, event in enumerate(events, start=1):
            print(format_event(event, colour=colour), flush=args.follow)
            if limit is not None and printed >= limit:
                break
        return 0
    except KeyboardInterrupt:
        return 130  # Ctrl-C ends --follow; no traceback, no message
    except BrokenPipeError:
        # `streamline logs x | head`: the reader left; stop quietly, as `cat` would.
        with suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        return command_error(exc, None, LogsError)


#: CloudWatch keeps metrics 15 months; nothing older can be asked for.
MAX_SINCE_SECONDS = 455 * 86400


def parse_since(value: str) -> int:
    """Seconds in a relative time such as ``30s``, ``10m``, ``2h`` or ``1d``.

    Example::

        >>> parse_since("10m")
        600
    """
    match = _SINCE.fullmatch(value or "")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else 0
    if not match or not 0 < seconds <= MAX_SINCE_SECONDS:
        raise LogsError(
            "--since must be a number with s, m, h or d (30s, 10m, 2h, 1d) up to 455d "
            f"(what CloudWatch keeps), got {str(value)[:40]!r}"
        )
    return seconds


_FUNCTION_NAME = re.compile(
    r"(arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:)?[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]{1,128})?"
)


def resolve_function(target: Target, name: str) -> tuple[str, str]:
    """The function ``name`` means on ``target``, and its log group: ``(function, group)``.

    Tried in order: a pipeline name in the stage's stack outputs, an exact function name or
    ARN, then a case-insensitive substring of exactly one function from ListFunctions.
    """
    if not _FUNCTION_NAME.fullmatch(name):
        # Lambda's own rule: a name (64), a partial ARN or an ARN; nothing else goes on the wire.
        raise LogsError(
            f"{name[:80]!r} is not a function name (letters, digits, - and _; or an ARN)"
        )
    lam = target.client("lambda")
    output_key = PIPELINE_FUNCTIONS.get(name.lower())
    if output_key is not None:
        try:
            outputs = target.stack_outputs()
        except TargetError:
            outputs = {}  # the pipeline is not deployed here; maybe the name still matches
        if output_key in outputs:
            name = outputs[output_key]
    try:
        config = lam.get_function_configuration(FunctionName=name)
        return config["FunctionName"], function_log_group(config)
    except lam.exceptions.ResourceNotFoundException:
        pass
    except Exception as exc:
        # A name with characters Lambda rejects is not a name; it may still be a substring.
        if "ValidationException" not in type(exc).__name__ + str(exc):
            raise
    functions = list(_list_functions(lam))
    needle = name.lower()
    matches = [f for f in functions if needle in f["FunctionName"].lower()]
    if len(matches) == 1:
        return matches[0]["FunctionName"], function_log_group(matches[0])
    if not matches:
        raise LogsError(
            f"no function matches {name!r} (not a function name, a pipeline name or part of "
            f"one of the {len(functions)} functions here)"
        )
    names = sorted(f["FunctionName"] for f in matches)
    shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
    raise LogsError(f"{name!r} matches {len(names)} functions: {shown}")


def format_event(event: dict[str, Any], *, colour: bool = False) -> str:
    """One FilterLogEvents event as ``<ISO time> <stream short id> <message>``.

    Example::

        >>> format_event({"timestamp": 0, "logStreamName": "2024/01/01/[$LATEST]0123456789ab",
        ...               "message": '{"level": "INFO", "message": "hi", "n": 1}\\n'})
        '1970-01-01T00:00:00.000Z 01234567 INFO hi {"n":1}'
    """
    when = datetime.fromtimestamp(event["timestamp"] / 1000, tz=UTC)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    stream = _short_stream(event.get("logStreamName", ""))
    text, kind = render_message(str(event.get("message", "")))
    if not colour:
        return f"{stamp} {stream} {text}"
    style = _STYLES.get(kind or "")
    body = f"{style}{text}{_RESET}" if style else text
    return f"{_DIM}{stamp} {stream}{_RESET} {body}"


# -- reading ------------------------------------------------------------------------------


@dataclass
class _Poll:
    """What one FilterLogEvents sweep (all pages) found."""

    events: list[dict[str, Any]]
    group_exists: bool


def filter_all(logs: Any, group: str, start_ms: int, pattern: str | None) -> _Poll:
    """Every event of ``group`` from ``start_ms`` matching ``pattern``, oldest first."""
    request: dict[str, Any] = {"logGroupName": group, "startTime": start_ms, "interleaved": True}
    if pattern:
        request["filterPattern"] = pattern
    events: list[dict[str, Any]] = []
    while True:
        try:
            page = logs.filter_log_events(**request)
        except logs.exceptions.ResourceNotFoundException:
            return _Poll([], group_exists=False)
        events.extend(page.get("events", []))
        token = page.get("nextToken")
        if not token or token == request.get("nextToken"):
            break
        request["nextToken"] = token
    # Pages are interleaved already; a stable sort keeps same-millisecond lines in order.
    events.sort(key=lambda e: e["timestamp"])
    return _Poll(events, group_exists=True)


def _read(
    logs: Any, group: str, function: str, since_ms: int, pattern: str | None
) -> list[dict[str, Any]]:
    poll = filter_all(logs, group, since_ms, pattern)
    if not poll.group_exists:
        print(
            f"streamline: no logs yet for {function} (log group {group} does not exist)",
            file=sys.stderr,
        )
    return poll.events


def _tail(
    logs: Any, group: str, since_ms: int, pattern: str | None, interval: float
) -> Iterator[dict[str, Any]]:
    """Events from ``since_ms`` on, then new ones as they arrive, until Ctrl-C."""
    seen: dict[str, int] = {}  # eventId -> timestamp, for events inside the re-read window
    start_ms = since_ms
    while True:
        poll = filter_all(logs, group, start_ms, pattern)
        for event in poll.events:
            event_id = str(event.get("eventId") or (event.get("logStreamName"), event["timestamp"]))
            if event_id in seen:
                continue
            seen[event_id] = event["timestamp"]
            yield event
        if seen:
            start_ms = max(since_ms, max(seen.values()) - LATE_ARRIVAL_MS)
            seen = {k: ts for k, ts in seen.items() if ts >= start_ms}
        time.sleep(interval)


def _list_functions(lam: Any) -> Iterator[dict[str, Any]]:
    for page in lam.get_paginator("list_functions").paginate():
        yield from page.get("Functions", [])


def function_log_group(config: dict[str, Any]) -> str:
    """A function's log group from its configuration (Lambda's default when it names none)."""
    group = (config.get("LoggingConfig") or {}).get("LogGroup")
    return str(group or f"/aws/lambda/{config['FunctionName']}")


# -- formatting ---------------------------------------------------------------------------


def _short_stream(stream: str) -> str:
    # "2024/05/01/[$LATEST]0f3c..." -> "0f3c..." cut to 8: enough to tell environments apart.
    tail = stream.rsplit("]", 1)[-1] if "]" in stream else stream.rsplit("/", 1)[-1]
    return (tail or stream or "-")[:8]


def render_message(message: str) -> tuple[str, str | None]:
    """The message as printed, and its kind: error, warning, report, platform or None."""
    text = message.rstrip("\n")
    stripped = text.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        try:
            document = json.loads(stripped)
        except ValueError:
            document = None
        if isinstance(document, dict):
            return _render_json(document)
    if text.startswith("REPORT "):
        return text, "error" if re.search(r"Status: (error|timeout)", text) else "report"
    if text.startswith(_PLATFORM_PREFIXES):
        return text, "platform"
    if _ERROR_TEXT.search(text):
        return text, "error"
    if _WARNING_TEXT.search(text):
        return text, "warning"
    return text, None


def _render_json(document: dict[str, Any]) -> tuple[str, str | None]:
    level = next((str(document[k]) for k in _LEVEL_KEYS if k in document), None)
    message = next((document[k] for k in _MESSAGE_KEYS if k in document), None)
    if level is None and message is None:
        return json.dumps(document, separators=(",", ":"), default=str), None
    used = {*_LEVEL_KEYS, *_MESSAGE_KEYS, *_TRACE_KEYS}
    rest = {k: v for k, v in document.items() if k not in used and k not in _NOISE_KEYS}
    parts = [p for p in (level and level.upper(), _text(message)) if p]
    if rest:
        parts.append(json.dumps(rest, separators=(",", ":"), default=str))
    text = " ".join(parts)
    for key in _TRACE_KEYS:
        if document.get(key):
            trace = document[key]
            lines = trace if isinstance(trace, list) else str(trace).splitlines()
            text += "".join(f"\n    {str(line).rstrip()}" for line in lines)
    upper = (level or "").upper()
    if upper in {"ERROR", "CRITICAL", "FATAL"} or document.get("exception"):
        return text, "error"
    if upper in {"WARN", "WARNING"}:
        return text, "warning"
    return text, None


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _use_colour(mode: str) -> bool:
    if mode == "always":
        return True
    if mode == "never":
        return False
    # https://no-color.org: an explicit opt-out wins over a terminal.
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _now_ms() -> int:
    return int(time.time() * 1000)
