"""The program each local execution environment runs: AWS's Python runtime loop, without AWS.

Started by :class:`~streamline.local.runtime.environment.ExecutionEnvironment` as
``python -I -S bootstrap.py REQUEST_FD RESPONSE_FD PATHS_JSON``. It uses the standard library
only, because ``-I -S`` leaves nothing else importable until it puts the task root, the layers and
the runtime's own packages on ``sys.path`` - exactly what a function sees on AWS, no more.

Protocol (on a private pipe pair, never stdout: the function's stdout/stderr are its logs):
every frame is a 4-byte big-endian length and a UTF-8 JSON document.

- child -> parent, once: ``{"type": "ready", "init_ms", "error"}`` after importing the handler.
- parent -> child: ``{"type": "invoke", "request_id", "payload", "deadline_ms", "invoked_arn",
  "trace_id"}``.
- child -> parent: ``{"type": "result", "request_id", "ok", "payload", "duration_ms",
  "max_rss_kb"}``.

After each phase the child flushes its streams and writes a marker line to stdout (see
:data:`MARKER`), so the parent knows it has every log line of that phase before it writes END.
"""

from __future__ import annotations

import contextlib
import decimal
import importlib
import io
import json
import logging
import os
import resource
import struct
import sys
import threading
import time
import traceback
from typing import Any

__all__ = ["MARKER", "LambdaContext", "main"]

#: Start of the line that closes each phase in the log stream (never shown to users).
MARKER = "\x1estreamline-phase-end "

_HEADER = struct.Struct(">I")


class LambdaContext:
    """The context object of AWS's Python runtime (awslambdaric ``LambdaContext``).

    As on AWS, ``memory_limit_in_mb`` and ``function_version`` are the strings from the
    environment variables.
    """

    def __init__(self, request_id: str, deadline_ms: int, invoked_arn: str) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_arn
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self._deadline_ms - time.time() * 1000))

    def log(self, msg: str) -> None:
        sys.stdout.write(str(msg))
        sys.stdout.flush()

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn}])"
        )


class _RequestIdFilter(logging.Filter):
    """Adds ``aws_request_id`` to log records, as the AWS runtime's logging handler does."""

    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


_REQUEST_ID = _RequestIdFilter()


def _setup_logging() -> None:
    """Install the AWS runtime's root handler: ``[LEVEL]\\tISO-time\\trequest-id\\tmessage``."""
    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(_REQUEST_ID)
    logging.getLogger().addHandler(handler)


def _read_exact(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _recv(fd: int) -> dict[str, Any]:
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size))
    document: dict[str, Any] = json.loads(_read_exact(fd, size))
    return document


def _send(fd: int, document: dict[str, Any]) -> None:
    body = json.dumps(document).encode()
    data = _HEADER.pack(len(body)) + body
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _end_phase(token: str) -> None:
    """Flush the function's output, then mark the end of this phase in the log stream."""
    for stream in (sys.stdout, sys.stderr):
        # The function may have closed or replaced its stream.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os.write(1, f"{MARKER}{token}\n".encode())


def _error(error_type: str, message: str, trace: list[str] | None = None) -> dict[str, Any]:
    return {"errorMessage": message, "errorType": error_type, "stackTrace": trace or []}


def _exception_document(exc: BaseException) -> dict[str, Any]:
    frames = traceback.extract_tb(exc.__traceback__)
    # Drop this module's own frames: AWS shows only the function's.
    frames = traceback.StackSummary.from_list(
        [f for f in frames if f.filename != os.path.abspath(__file__)]
    )
    return _error(type(exc).__name__, str(exc), traceback.format_list(frames))


def _log_error(document: dict[str, Any]) -> None:
    """Log an error as AWS's runtime does: ``[ERROR] Type: message`` and the traceback."""
    lines = [f"[ERROR] {document['errorType']}: {document['errorMessage']}"]
    if document.get("stackTrace"):
        lines.append("Traceback (most recent call last):")
        lines.extend(line.rstrip("\n") for line in document["stackTrace"])
    sys.stdout.write("\n".join(lines) + "\n")


def _load_handler(spec: str) -> Any:
    """Import the handler as awslambdaric ``_get_handler`` does, with the same error names."""
    try:
        module_name, function_name = spec.rsplit(".", 1)
    except ValueError as exc:
        raise _Fault("Runtime.MalformedHandlerName", f"Bad handler '{spec}': {exc}") from None
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise _Fault(
            "Runtime.BuiltInModuleConflict",
            f"Cannot use built-in module {module_name} as a handler module",
        )
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise _Fault(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from None
    except SyntaxError as exc:
        raise _Fault(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{module_name}': {exc}",
            [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}\n'],
        ) from None
    try:
        return getattr(module, function_name)
    except AttributeError:
        raise _Fault(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
        ) from None


class _Fault(Exception):
    def __init__(self, error_type: str, message: str, trace: list[str] | None = None) -> None:
        super().__init__(message)
        self.document = _error(error_type, message, trace)


def _json_default(value: Any) -> Any:
    # The AWS runtime's encoder writes Decimals (as from DynamoDB) as numbers.
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _peak_rss_kb() -> int:
    """Peak resident memory of this process in KiB.

    ``VmHWM`` rather than ``ru_maxrss``: Linux carries ``ru_maxrss`` over from the (large)
    parent across fork and exec, while ``VmHWM`` belongs to this process's own address space.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _invoke(handler: Any, request: dict[str, Any]) -> dict[str, Any]:
    request_id = request["request_id"]
    _REQUEST_ID.request_id = request_id
    if request.get("trace_id"):
        os.environ["_X_AMZN_TRACE_ID"] = request["trace_id"]
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    context = LambdaContext(request_id, request["deadline_ms"], request["invoked_arn"])
    started = time.perf_counter()
    ok = True
    try:
        try:
            event = json.loads(request["payload"]) if request["payload"].strip() else {}
        except ValueError as exc:
            raise _Fault("Runtime.UnmarshalError", f"Unable to unmarshal input: {exc}") from None
        result = handler(event, context)
        try:
            payload = json.dumps(result, default=_json_default)
        except (TypeError, ValueError) as exc:
            raise _Fault("Runtime.MarshalError", f"Unable to marshal response: {exc}") from None
    except _Fault as fault:
        ok = False
        document = dict(fault.document, requestId=request_id)
    except Exception as exc:
        ok = False
        document = _exception_document(exc)
        document["requestId"] = request_id
    duration_ms = (time.perf_counter() - started) * 1000
    if not ok:
        _log_error(document)
        payload = json.dumps(document)
    return {
        "type": "result",
        "request_id": request_id,
        "ok": ok,
        "payload": payload,
        "duration_ms": duration_ms,
        "max_rss_kb": _peak_rss_kb(),
    }


def _die_with_the_cloud(parent: int) -> None:
    """Exit when the local cloud that started this environment is gone (even by SIGKILL).

    Between invocations the closed request pipe ends the environment; this covers a function
    still running when the cloud dies (an orphan would otherwise run on, reparented). Polling
    the parent pid: Linux's parent-death signal follows the *thread* that forked, and the
    runner starts environments from short-lived threads.
    """
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def _loopback_xray_socket() -> None:
    """Bind the X-Ray SDK's UDP socket (made at INIT by Powertools' Tracer) to loopback.

    The local daemon listens on 127.0.0.1; an unbound UDP socket would take 0.0.0.0 on its
    first send. (On AWS the daemon is local too; this is the local runtime's own hygiene.)
    """
    emitters = sys.modules.get("aws_xray_sdk.core")
    recorder = getattr(emitters, "xray_recorder", None)
    sock = getattr(getattr(recorder, "_emitter", None), "_socket", None)
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already bound (it sent during INIT): leave it
        if sock.getsockname()[1] == 0:
            sock.bind(("127.0.0.1", 0))


def main(argv: list[str]) -> int:
    request_fd, response_fd = int(argv[1]), int(argv[2])
    threading.Thread(
        target=_die_with_the_cloud, args=(os.getppid(),), name="parent-watch", daemon=True
    ).start()
    # Task root first, then the layers, then the runtime's packages: AWS's order.
    sys.path[:0] = json.loads(argv[3])
    # Pipes are block-buffered; line buffering keeps the log stream live as on AWS.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    _setup_logging()

    started = time.perf_counter()
    handler = None
    error = None
    try:
        handler = _load_handler(os.environ["_HANDLER"])
    except _Fault as fault:
        error = fault.document
    except Exception as exc:
        error = _exception_document(exc)
    init_ms = (time.perf_counter() - started) * 1000
    _loopback_xray_socket()
    if error is not None:
        _log_error(error)
    _end_phase("init")
    _send(response_fd, {"type": "ready", "init_ms": init_ms, "error": error})
    if handler is None:
        return 1

    while True:
        try:
            request = _recv(request_fd)
        except EOFError:  # the parent closed the pipe: shut down quietly
            return 0
        response = _invoke(handler, request)
        _end_phase(request["request_id"])
        _send(response_fd, response)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
