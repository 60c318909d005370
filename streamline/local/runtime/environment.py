"""One execution environment: a subprocess running :mod:`bootstrap` for one function version.

It initialises once (imports the handler), then serves invocations one at a time over a private
pipe pair. Its stdout and stderr are the function's log: a reader thread collects the lines,
and the environment turns each phase into CloudWatch Logs events with AWS's START / END /
REPORT lines around them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from streamline.local.runtime.bootstrap import MARKER
from streamline.local.runtime.config import FunctionConfig
from streamline.local.runtime.logs import LogEvent, LogShipper

__all__ = ["EnvironmentDied", "ExecutionEnvironment", "InvocationOutcome", "log_stream_name"]

_HEADER = struct.Struct(">I")
_BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
_NODE_BOOTSTRAP = Path(__file__).with_name("node") / "bootstrap.cjs"


def python_launcher() -> list[str]:
    """How a Python environment starts (its bootstrap gets the fds and paths after these)."""
    return [
        sys.executable,
        "-I",  # ignore PYTHON* variables and the user site
        "-S",  # no site-packages: only the code, layers and runtime we add
        str(_BOOTSTRAP),
    ]


def node_launcher(node: str, memory_mb: int) -> list[str]:
    """How a Node.js environment starts: the heap capped near the function's memory, as AWS's
    bootstrap does (its ``--max-old-space-size`` is about 90% of the memory size)."""
    return [node, f"--max-old-space-size={max(16, memory_mb * 9 // 10)}", str(_NODE_BOOTSTRAP)]


#: How long to wait for the last log lines of a phase once its result is in.
_MARKER_GRACE = 2.0
#: AWS caps the init phase at 10 s (a slower init is retried within the invocation's timeout).
_MIN_INIT_TIMEOUT = 10.0
#: The tail of the log AWS returns for ``LogType=Tail``.
_LOG_TAIL_BYTES = 4096


class EnvironmentDied(Exception):
    """The environment's process exited or stopped answering; it cannot be reused."""


@dataclass(frozen=True, slots=True)
class InvocationOutcome:
    """One invocation as the environment saw it."""

    payload: bytes
    function_error: str | None
    duration_ms: float
    timed_out: bool
    log_tail: str
    healthy: bool  # False: the environment must be discarded


def log_stream_name(version: str) -> str:
    """A log stream name as AWS makes them: ``YYYY/MM/DD/[$LATEST]<32 hex>``."""
    return f"{datetime.now(UTC):%Y/%m/%d}/[{version}]{uuid.uuid4().hex}"


def _iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _now_ms() -> int:
    return int(time.time() * 1000)


class ExecutionEnvironment:
    """A warm subprocess for one :class:`FunctionConfig`. Not thread-safe: one caller at a time."""

    def __init__(
        self,
        config: FunctionConfig,
        *,
        sys_path: list[Path],
        launcher: list[str] | None = None,
        task_root: Path,
        base_env: dict[str, str],
        logs: LogShipper,
    ) -> None:
        self.config = config
        self.key = config.environment_key
        self.log_stream = log_stream_name(config.version)
        self.created = time.monotonic()
        self.last_used = self.created
        self.init_duration_ms: float | None = None  # reported once, on the first invocation
        self.invocations = 0
        self._max_rss_kb = 0  # last reported peak memory (a timed-out call reports this)
        self._logs = logs
        self._lines: list[LogEvent] = []
        self._lines_lock = threading.Condition()
        self._markers: set[str] = set()
        self._dead = False

        env = dict(base_env)
        env.update(
            {
                "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream,
                "AWS_LAMBDA_LOG_GROUP_NAME": config.log_group,
                "LAMBDA_TASK_ROOT": str(task_root),
            }
        )
        # Requests and results travel on their own pipes; stdout/stderr stay the function's.
        req_read, self._req_write = os.pipe()
        self._resp_read, resp_write = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [
                    *(launcher or python_launcher()),
                    str(req_read),
                    str(resp_write),
                    json.dumps([str(p) for p in sys_path]),
                ],
                cwd=task_root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(req_read, resp_write),
                start_new_session=True,  # so a kill reaches anything the function spawned
            )
        finally:
            os.close(req_read)
            os.close(resp_write)
        assert self._proc.stdout is not None
        self._reader = threading.Thread(
            target=self._read_output,
            args=(self._proc.stdout,),
            name=f"lambda-log-{config.name}",
            daemon=True,
        )
        self._reader.start()
        self._init_error: dict[str, Any] | None = None
        self._init_events: list[LogEvent] = []
        self._initialise()

    # -- lifecycle -----------------------------------------------------------------------------

    def _initialise(self) -> None:
        # Init Duration covers the runtime starting and the handler's import, as on AWS.
        started = time.perf_counter()
        init_start = _now_ms()
        timeout = max(_MIN_INIT_TIMEOUT, self.config.timeout)
        try:
            ready = self._receive(time.monotonic() + timeout)
        except (EnvironmentDied, TimeoutError) as exc:
            self._init_error = {
                "errorType": "Runtime.ExitError"
                if isinstance(exc, EnvironmentDied)
                else "Sandbox.Timedout",
                "errorMessage": f"Runtime failed to initialise: {exc}",
            }
            self.init_duration_ms = (time.perf_counter() - started) * 1000
            self._init_events = [
                (init_start, f"INIT_START Runtime Version: {self.config.runtime}.local"),
                *self._take_lines("init"),
            ]
            self.kill()
            return
        self.init_duration_ms = (time.perf_counter() - started) * 1000
        self._init_error = ready.get("error")
        self._init_events = [
            (init_start, f"INIT_START Runtime Version: {self.config.runtime}.local"),
            *self._take_lines("init"),
        ]
        if self._init_error is not None:
            self.kill()

    @property
    def alive(self) -> bool:
        return not self._dead and self._proc.poll() is None

    def kill(self) -> None:
        """End the process (and its process group) at once."""
        self._dead = True
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self._proc.kill()
        for fd in (self._req_write, self._resp_read):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._req_write = self._resp_read = -1
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)

    # -- invocation ----------------------------------------------------------------------------

    def invoke(
        self, request_id: str, payload: bytes, *, invoked_arn: str, trace_id: str | None
    ) -> InvocationOutcome:
        """Run one invocation, writing its log phase; kill the process on timeout."""
        config = self.config
        self.invocations += 1
        self.last_used = time.monotonic()
        start_ms = _now_ms()
        events: list[LogEvent] = []
        if self.invocations == 1:
            events.extend(self._init_events)
        events.append((start_ms, f"START RequestId: {request_id} Version: {config.version}"))
        init_ms = self.init_duration_ms if self.invocations == 1 else None

        if self._init_error is not None:
            # AWS reports an init failure as the invocation's error; the next call starts over.
            document = dict(self._init_error)
            document.setdefault("requestId", request_id)
            document.setdefault("stackTrace", [])
            return self._unhealthy(request_id, events, start_ms, 0.0, init_ms, document, "error")

        deadline_ms = start_ms + int(config.timeout * 1000)
        started = time.perf_counter()
        try:
            self._send(
                {
                    "type": "invoke",
                    "request_id": request_id,
                    "payload": payload.decode("utf-8", errors="replace"),
                    "deadline_ms": deadline_ms,
                    "invoked_arn": invoked_arn,
                    "trace_id": trace_id,
                }
            )
            result = self._receive(time.monotonic() + config.timeout)
        except TimeoutError:
            elapsed = (time.perf_counter() - started) * 1000
            self.kill()
            events.extend(self._take_lines(None))
            events.append(
                (
                    _now_ms(),
                    f"{_iso_now()} {request_id} Task timed out after {config.timeout:.2f} seconds",
                )
            )
            document = {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {request_id} Error: Task timed out after "
                f"{config.timeout:.2f} seconds",
            }
            return self._unhealthy(
                request_id, events, start_ms, elapsed, init_ms, document, "timeout"
            )
        except EnvironmentDied:
            elapsed = (time.perf_counter() - started) * 1000
            code = self._proc.poll()
            self.kill()
            events.extend(self._take_lines(None))
            status = (
                f"exit status {code}"
                if code is not None and code >= 0
                else (f"signal: {signal.Signals(-code).name.lower()}" if code else "exited")
            )
            document = {
                "errorType": "Runtime.ExitError",
                "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: "
                f"{status}",
            }
            return self._unhealthy(
                request_id, events, start_ms, elapsed, init_ms, document, "error"
            )

        events.extend(self._take_lines(request_id))
        self._max_rss_kb = int(result.get("max_rss_kb", 0))
        return self._finish(
            request_id,
            events,
            start_ms,
            float(result["duration_ms"]),
            init_ms,
            int(result.get("max_rss_kb", 0)),
            result["payload"].encode(),
            None if result["ok"] else "Unhandled",
            timed_out=False,
            healthy=True,
            status=None,
        )

    def _unhealthy(
        self,
        request_id: str,
        events: list[LogEvent],
        start_ms: int,
        duration_ms: float,
        init_ms: float | None,
        document: dict[str, Any],
        status: str,
    ) -> InvocationOutcome:
        """An invocation the environment could not serve (init error, timeout, runtime exit):
        the error document as Lambda returns it, and the environment is not reused."""
        return self._finish(
            request_id,
            events,
            start_ms,
            duration_ms,
            init_ms,
            self._max_rss_kb,
            json.dumps(document).encode(),
            "Unhandled",
            timed_out=status == "timeout",
            healthy=False,
            status=status,
        )

    def _finish(
        self,
        request_id: str,
        events: list[LogEvent],
        start_ms: int,
        duration_ms: float,
        init_ms: float | None,
        max_rss_kb: int,
        payload: bytes,
        function_error: str | None,
        *,
        timed_out: bool,
        healthy: bool,
        status: str | None,
    ) -> InvocationOutcome:
        config = self.config
        end_ms = max(_now_ms(), start_ms)
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {max(1, math.ceil(duration_ms))} ms\t"
            f"Memory Size: {config.memory_size} MB\t"
            f"Max Memory Used: {max(1, round(max_rss_kb / 1024))} MB"
        )
        if init_ms is not None:
            report += f"\tInit Duration: {init_ms:.2f} ms"
        if status is not None:
            report += f"\tStatus: {status}"
        events.append((end_ms, f"END RequestId: {request_id}"))
        events.append((end_ms, report))
        self._logs.emit(config.log_group, self.log_stream, events)
        tail = "\n".join(message for _, message in events if not message.startswith("INIT_START"))
        tail_bytes = (tail + "\n").encode()[-_LOG_TAIL_BYTES:]
        return InvocationOutcome(
            payload=payload,
            function_error=function_error,
            duration_ms=duration_ms,
            timed_out=timed_out,
            log_tail=tail_bytes.decode("utf-8", errors="ignore"),
            healthy=healthy,
        )

    # -- pipes and log lines -------------------------------------------------------------------

    def _send(self, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        data = _HEADER.pack(len(body)) + body
        try:
            while data:
                written = os.write(self._req_write, data)
                data = data[written:]
        except OSError as exc:
            raise EnvironmentDied(str(exc)) from None

    def _receive(self, deadline: float) -> dict[str, Any]:
        header = self._read_exact(_HEADER.size, deadline)
        (size,) = _HEADER.unpack(header)
        document: dict[str, Any] = json.loads(self._read_exact(size, deadline))
        return document

    def _read_exact(self, size: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        while size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no answer before the deadline")
            try:
                readable, _, _ = select.select([self._resp_read], [], [], remaining)
            except (OSError, ValueError) as exc:
                raise EnvironmentDied(str(exc)) from None
            if not readable:
                continue
            try:
                chunk = os.read(self._resp_read, size)
            except OSError as exc:
                raise EnvironmentDied(str(exc)) from None
            if not chunk:
                raise EnvironmentDied("the runtime process exited")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _read_output(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            with self._lines_lock:
                if line.startswith(MARKER):
                    self._markers.add(line[len(MARKER) :])
                else:
                    self._lines.append((_now_ms(), line))
                self._lines_lock.notify_all()
        with self._lines_lock:
            self._markers.add("<eof>")
            self._lines_lock.notify_all()
        stream.close()

    def _take_lines(self, marker: str | None) -> list[LogEvent]:
        """The lines logged so far; with ``marker``, first wait until that phase has ended."""
        with self._lines_lock:
            if marker is not None:
                self._lines_lock.wait_for(
                    lambda: marker in self._markers or "<eof>" in self._markers,
                    timeout=_MARKER_GRACE,
                )
                self._markers.discard(marker)
            else:
                # After a kill, give the reader a moment to drain what was already written.
                self._lines_lock.wait_for(lambda: "<eof>" in self._markers, timeout=0.5)
            lines, self._lines = self._lines, []
        return lines
