"""``streamline invoke``: one synchronous invocation on the target, like ``sam local invoke``.

FUNCTION is resolved as ``streamline logs`` resolves it: a pipeline name (``ingest``, ``changes``,
``fulfil``, ``notify``, ``notifier``) through the stage's stack outputs, a function name or ARN,
or a unique part of one. The call is the public Lambda Invoke API with ``LogType=Tail``, so on
the local cloud it runs in the local runner's execution environments and in AWS it runs in
Lambda. The response payload goes to stdout; the decoded log tail (the last 4 KB) to stderr.

Exit status: 0, 1 when the function returned an error (``FunctionError``), 2 for a one-line
problem with the arguments or the target.

Example::

    streamline events generate kinesis --count 3 > event.json
    streamline invoke ingest --event event.json
    streamline events generate sqs | streamline invoke notify --event -
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from typing import Any

from streamline.arguments import InputTooLarge, read_input
from streamline.ops.logs import LogsError, resolve_function
from streamline.ops.target import Target, TargetError, add_target_arguments

__all__ = ["add_invoke_parser", "read_event", "run_invoke"]


class InvokeError(Exception):
    """A one-line problem with the event or the function."""


def add_invoke_parser(commands: Any) -> argparse.ArgumentParser:
    """The ``invoke`` subcommand on the top-level subparsers ``commands``."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "invoke",
        help="invoke a function once with an event file (local runner or AWS)",
        description=(
            "Invoke a function once (RequestResponse, LogType=Tail): the payload goes to stdout, "
            "the log tail to stderr. Exit 1 on a function error."
        ),
    )
    parser.add_argument(
        "function",
        metavar="FUNCTION",
        help="pipeline name (ingest, changes, fulfil, notify, notifier) or a function name/ARN",
    )
    parser.add_argument(
        "-e", "--event", required=True, metavar="FILE", help="JSON event file, or - for stdin"
    )
    add_target_arguments(parser)
    parser.set_defaults(func=run_invoke)
    return parser


#: Lambda's synchronous invocation request payload limit.
MAX_EVENT_BYTES = 6 * 1024 * 1024


def read_event(source: str) -> bytes:
    """The event's bytes from a file or stdin (``-``), checked to be JSON."""
    if not source:
        raise InvokeError("--event must name a file (or - for stdin)")
    name = "stdin" if source == "-" else source
    try:
        raw = read_input(source, MAX_EVENT_BYTES)
    except OSError as exc:
        raise InvokeError(f"cannot read event file {source}: {exc.strerror or exc}") from None
    except InputTooLarge:
        raise InvokeError(
            f"event {name} is larger than Lambda's 6 MB request payload limit"
        ) from None
    try:
        json.loads(raw)
    except ValueError as exc:
        raise InvokeError(f"event {name} is not JSON: {exc}") from None
    except RecursionError:
        raise InvokeError(f"event {name} is nested too deeply to be a Lambda event") from None
    return raw


def run_invoke(args: argparse.Namespace, target: Target | None = None) -> int:
    """Invoke, print the payload and the log tail; see the module docstring for exit codes."""
    try:
        payload = read_event(args.event)
        target = target or Target.from_args(args)
        function, _ = resolve_function(target, args.function)
        response = target.client("lambda").invoke(
            FunctionName=function,
            InvocationType="RequestResponse",
            LogType="Tail",
            Payload=payload,
        )
    except (InvokeError, LogsError, TargetError) as exc:
        print(f"streamline: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # botocore: endpoint down, no permission, invalid payload
        if type(exc).__module__.split(".")[0] not in {"botocore", "boto3"}:
            raise
        message = " ".join(str(exc).split())
        print(f"streamline: cannot invoke {args.function}: {message}", file=sys.stderr)
        return 2
    tail = response.get("LogResult")
    if tail:
        sys.stderr.write(base64.b64decode(tail).decode("utf-8", errors="replace"))
        sys.stderr.flush()
    body = response["Payload"].read()
    try:
        print(json.dumps(json.loads(body), indent=2))
    except (ValueError, RecursionError):  # not JSON, or too deep to pretty-print: as it came
        print(body.decode("utf-8", errors="replace"))
    error = response.get("FunctionError")
    if error:
        print(f"streamline: {function} returned a function error ({error})", file=sys.stderr)
        return 1
    return 0
