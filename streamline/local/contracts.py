"""The interfaces the local cloud's parts meet at: invocation results, invokers and the clock.

The moto patches, the function runner, the event-source-mapping engine and the async-invocation
engine only know each other through these types, so each can be tested alone.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "AsyncSubmitter",
    "Clock",
    "FunctionNotFound",
    "InvokeResult",
    "Invoker",
    "ManualClock",
    "SystemClock",
    "Throttled",
    "UnsupportedFunction",
]


@dataclass(frozen=True, slots=True)
class InvokeResult:
    """What one synchronous invocation returned, as the Invoke API reports it.

    ``function_error`` is ``None`` on success and ``"Unhandled"`` when the function raised or
    timed out (``payload`` is then the error document ``{"errorType", "errorMessage", ...}``).
    """

    request_id: str
    payload: bytes
    function_error: str | None = None
    status_code: int = 200
    executed_version: str = "$LATEST"
    log_tail: str = ""
    duration_ms: float = 0.0
    init_duration_ms: float | None = None
    timed_out: bool = False


class Throttled(Exception):
    """The function has no concurrency left (reserved concurrency reached or 0)."""


class FunctionNotFound(LookupError):
    """No deployed function has that name or ARN."""


class UnsupportedFunction(Exception):
    """The function cannot run locally (a non-Python runtime, an image package, ...)."""


class Invoker(Protocol):
    """Runs a function synchronously (RequestResponse), as the Invoke API and ESMs do."""

    def invoke(
        self,
        function: str,
        payload: bytes,
        *,
        qualifier: str | None = None,
        trace_header: str | None = None,
    ) -> InvokeResult: ...


class AsyncSubmitter(Protocol):
    """Queues an asynchronous (InvocationType=Event) invocation; returns its request id."""

    def submit(
        self,
        function: str,
        payload: bytes,
        *,
        qualifier: str | None = None,
        trace_header: str | None = None,
    ) -> str: ...


class Clock(Protocol):
    """Time as the engines see it; tests inject a manual clock so retries need not wait minutes."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Sleep up to ``seconds`` of clock time; return True at once if ``stop`` is set."""
        ...


class SystemClock:
    """Wall-clock time with an interruptible wait, so shutdown is prompt."""

    def now(self) -> float:
        return time.time()

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(max(0.0, seconds))


@dataclass
class ManualClock:
    """A clock that moves only when told (``advance``), or runs ``speed`` times faster than real.

    Example::

        clock = ManualClock(speed=60.0)   # a one-minute retry delay passes in one second
    """

    start: float = field(default_factory=time.time)
    speed: float = 1.0
    _offset: float = 0.0
    _origin: float = field(default_factory=time.monotonic)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def now(self) -> float:
        elapsed = (time.monotonic() - self._origin) * self.speed
        return self.start + elapsed + self._offset

    def advance(self, seconds: float) -> None:
        with self._changed:
            self._offset += seconds
            self._changed.notify_all()

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        deadline = self.now() + max(0.0, seconds)
        while not stop.is_set():
            remaining = deadline - self.now()
            if remaining <= 0:
                return False
            with self._changed:
                # Real time to wait is clock time divided by speed; cap it so advance() and stop
                # are noticed promptly.
                self._changed.wait(min(remaining / max(self.speed, 1e-9), 0.05))
        return True
