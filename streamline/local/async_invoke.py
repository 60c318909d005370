"""AsyncEngine: asynchronous (``InvocationType=Event``) invocation, as Lambda's internal queue.

Implements :class:`streamline.local.contracts.AsyncSubmitter` (docs/esm-semantics.md items 25-27):

- ``submit`` returns a request id at once; a small worker pool runs the events.
- A function error (raised, timed out, init failure) is retried ``MaximumRetryAttempts`` times
  (EventInvokeConfig, default 2), about 1 and then 2 minutes later, measured on the injected
  clock. Throttles are retried with backoff (1 s doubling to 5 min) without using up attempts,
  as AWS does, until the event is too old.
- An event older than ``MaximumEventAgeInSeconds`` (default 6 h) is dropped with
  ``EventAgeExceeded``.
- Then the destination record (item 26's exact shape) goes to the OnSuccess / OnFailure target:
  SQS, SNS, Lambda (asynchronously) or EventBridge; after a final failure the function's
  DeadLetterConfig target gets the original event with AWS's RequestID / ErrorCode /
  ErrorMessage attributes.

Records and deliveries are :mod:`streamline.local.destinations`'s, in-process like the event
source mappings' (that module says why); configuration is read from moto's Lambda backend under
the lock. Sync and ESM invocations never come here, so
they never use EventInvokeConfig (item 27).

Example::

    engine = AsyncEngine(backends, runner, ManualClock(speed=60.0))
    engine.start()
    request_id = engine.submit("my-function", b'{"order": 1}')
    ...
    engine.stop()

One module of ~510 lines: the queue, the retry schedule, event age and the settling into
Destinations are one state machine per event; the record shapes and their delivery already live
in :mod:`streamline.local.destinations`.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import logging
import queue
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamline.local.contracts import (
    Clock,
    FunctionNotFound,
    Invoker,
    InvokeResult,
    Throttled,
    UnsupportedFunction,
)
from streamline.local.destinations import destination_record, json_or_text
from streamline.local.durability import Passthrough

if TYPE_CHECKING:
    from streamline.local.durability import Mutations
    from streamline.local.metrics import MetricsPublisher

__all__ = [
    "DEFAULT_MAX_EVENT_AGE",
    "DEFAULT_MAX_RETRIES",
    "RETRY_DELAYS",
    "AsyncEngine",
]

_log = logging.getLogger(__name__)

DEFAULT_MAX_RETRIES = 2
DEFAULT_MAX_EVENT_AGE = 21600
#: Seconds before the first and the second retry (AWS: "about 1 and 2 minutes").
RETRY_DELAYS = (60.0, 120.0)
_THROTTLE_FIRST_DELAY = 1.0
_THROTTLE_MAX_DELAY = 300.0
#: AWS puts the first 1 KB of the error message in the DLQ message's ErrorMessage attribute.
_DLQ_MESSAGE_LIMIT = 1024


@dataclass
class _Event:
    request_id: str
    function: str
    qualifier: str | None
    payload: bytes
    trace_header: str | None
    enqueued_at: float
    invocations: int = 0
    throttle_delay: float = 0.0
    last: InvokeResult | None = None
    last_error_code: int = 200
    #: Waiting in the engine (queued or scheduled for a retry), as opposed to settled.
    pending: bool = True


@dataclass(frozen=True)
class _Settings:
    """What one attempt needs from the function's configuration (read under the lock)."""

    qualified_arn: str
    max_retries: int
    max_age: float
    on_success: str | None
    on_failure: str | None
    dead_letter: str | None


@dataclass
class _Stats:
    submitted: int = 0
    invocations: int = 0
    retries: int = 0
    succeeded: int = 0
    failed: int = 0
    age_exceeded: int = 0
    deliveries: int = 0
    delivery_errors: int = 0
    last_error: str | None = None
    by_function: dict[str, int] = field(default_factory=dict)


#: Asynchronous invocations run at once. Measured by ``bench/pipeline.py`` (2,000 events, one
#: notifier invocation each, 2 cores): 4 workers 46.8 events/s, 8 50.3, 16 53.4-59.8 with the
#: notifier's backlog peaking at 90-153 instead of 800-1,300; past that the server, not the
#: queue, is the limit and more environments only add cold starts. Environments are started on
#: demand, so an idle function costs nothing.
DEFAULT_WORKERS = 16


class AsyncEngine:
    """Lambda's asynchronous invocation queue, retries and destinations (``AsyncSubmitter``)."""

    #: Set by LocalCloud: receives AWS/Lambda's asynchronous-invocation metrics.
    metrics: MetricsPublisher | None = None
    #: Set by LocalCloud: journals each event accepted and settled (``durability``), so an
    #: accepted event survives a crash of the cloud.
    mutations: Mutations | None = None

    def __init__(
        self,
        backends: Any,
        invoker: Invoker,
        clock: Clock,
        *,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        self._backends = backends
        self._invoker = invoker
        self._clock = clock
        self._workers = workers
        self._heap: list[tuple[float, int, _Event]] = []
        self._seq = itertools.count()
        self._ready: queue.Queue[_Event | None] = queue.Queue()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._stats = _Stats()

    # -- AsyncSubmitter ------------------------------------------------------------------------

    def submit(
        self,
        function: str,
        payload: bytes,
        *,
        qualifier: str | None = None,
        trace_header: str | None = None,
    ) -> str:
        """Queue an event for ``function``; returns its request id without waiting.

        Raises ``FunctionNotFound`` for an unknown function, as the Invoke API answers 404.
        May be called with the moto lock held (moto's SNS delivery does): it only takes it
        re-entrantly and never waits.
        """
        from moto.awslambda.exceptions import UnknownFunctionException

        with self._backends.lock:
            try:
                self._backends.lambda_().get_function(function, qualifier)
            except UnknownFunctionException:
                raise FunctionNotFound(f"Function not found: {function}") from None
        event = _Event(
            request_id=str(uuid.uuid4()),
            function=function,
            qualifier=qualifier,
            payload=bytes(payload),
            trace_header=trace_header,
            enqueued_at=self._clock.now(),
        )
        if self.mutations is not None:
            # Journaled before the 202: an acknowledged event is never lost to a crash.
            self.mutations.record_async("accept", event)
        with self._lock:
            self._stats.submitted += 1
        if self.metrics is not None:
            self.metrics.count(function, "AsyncEventsReceived")
        self._schedule(event, 0.0)
        return event.request_id

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher and the workers (events submitted earlier are kept)."""
        if self._threads:
            return
        self._stopping.clear()
        self._threads.append(
            threading.Thread(target=self._dispatch, name="async-dispatch", daemon=True)
        )
        for index in range(self._workers):
            self._threads.append(
                threading.Thread(target=self._work, name=f"async-worker-{index}", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop promptly: events not yet started stay queued (see :meth:`pending`)."""
        self._stopping.set()
        self._wake.set()
        for _ in range(self._workers):
            self._ready.put(None)
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
        # Events the dispatcher had handed over but no worker took go back on the heap.
        while True:
            try:
                event = self._ready.get_nowait()
            except queue.Empty:
                break
            if event is not None:
                with self._lock:
                    self._in_flight -= 1
                self._schedule(event, 0.0)

    def pending(self) -> list[tuple[float, _Event]]:
        """Events queued or waiting for a retry, with their due times (call after ``stop``).

        A restarted local cloud hands them to :meth:`restore`: AWS keeps an accepted
        asynchronous event through anything that happens to its own machines.
        """
        with self._lock:
            return [(due, event) for due, _, event in sorted(self._heap, key=lambda e: e[:2])]

    def restore(self, events: list[tuple[float, _Event]]) -> None:
        """Queue events saved by :meth:`pending`, each at its own due time."""
        now = self._clock.now()
        for due, event in events:
            self._schedule(event, max(0.0, due - now))

    def idle(self) -> bool:
        """True when nothing is queued, waiting for a retry, or running."""
        with self._lock:
            return not self._heap and self._in_flight == 0

    def status(self) -> dict[str, Any]:
        """Counters for ``streamline local status`` and test diagnostics."""
        with self._lock:
            stats = self._stats
            return {
                "queued": len(self._heap),
                "in_flight": self._in_flight,
                "submitted": stats.submitted,
                "invocations": stats.invocations,
                "retries": stats.retries,
                "succeeded": stats.succeeded,
                "failed": stats.failed,
                "age_exceeded": stats.age_exceeded,
                "deliveries": stats.deliveries,
                "delivery_errors": stats.delivery_errors,
                "last_error": stats.last_error,
            }

    # -- scheduling ----------------------------------------------------------------------------

    def _schedule(self, event: _Event, delay: float) -> None:
        event.pending = True
        with self._lock:
            heapq.heappush(self._heap, (self._clock.now() + delay, next(self._seq), event))
        self._wake.set()

    def _dispatch(self) -> None:
        """Move due events to the workers; sleep (on the clock) until the next one is due."""
        while not self._stopping.is_set():
            now = self._clock.now()
            with self._lock:
                while self._heap and self._heap[0][0] <= now:
                    _, _, event = heapq.heappop(self._heap)
                    self._in_flight += 1
                    self._ready.put(event)
                next_due = self._heap[0][0] if self._heap else None
                self._wake.clear()
            # A new submission sets _wake, which ends the wait early.
            delay = 3600.0 if next_due is None else max(0.0, next_due - now)
            self._clock.wait(delay, self._wake)

    def _work(self) -> None:
        while True:
            event = self._ready.get()
            if event is None:
                return
            event.pending = False
            try:
                self._attempt(event)
            except Exception as exc:  # one bad event must not kill a worker, nor be lost
                _log.exception("async invocation %s failed unexpectedly", event.request_id)
                self._note_error(f"{event.function}: {type(exc).__name__}: {exc}")
                # Tried again with backoff (as a throttle is) until it settles or grows too old.
                event.throttle_delay = min(
                    _THROTTLE_MAX_DELAY, (event.throttle_delay * 2) or _THROTTLE_FIRST_DELAY
                )
                self._schedule(event, event.throttle_delay)
            finally:
                if not event.pending and self.mutations is not None:
                    # Settled (delivered, dropped or failed for good): no restart runs it again.
                    with contextlib.suppress(Exception):
                        self.mutations.record_async("done", event.request_id)
                with self._lock:
                    self._in_flight -= 1

    # -- one attempt ---------------------------------------------------------------------------

    def _attempt(self, event: _Event) -> None:
        settings = self._settings(event)
        if settings is None:
            _log.warning(
                "dropping async event %s: function %s is gone", event.request_id, event.function
            )
            return
        now = self._clock.now()
        if now - event.enqueued_at >= settings.max_age:
            with self._lock:
                self._stats.age_exceeded += 1
            self._finish(event, settings, "EventAgeExceeded")
            return
        if self.metrics is not None:
            self.metrics.record(
                "AWS/Lambda",
                "AsyncEventAge",
                (now - event.enqueued_at) * 1000,
                "Milliseconds",
                {"FunctionName": settings.qualified_arn.split(":")[6]},
            )
        try:
            result = self._invoker.invoke(
                event.function,
                event.payload,
                qualifier=event.qualifier,
                trace_header=event.trace_header,
            )
        except Throttled:
            # Throttles do not use up retry attempts: back off and try again until too old.
            event.throttle_delay = min(
                _THROTTLE_MAX_DELAY, (event.throttle_delay * 2) or _THROTTLE_FIRST_DELAY
            )
            event.last_error_code = 429
            self._schedule(event, event.throttle_delay)
            return
        except FunctionNotFound:
            _log.warning(
                "dropping async event %s: function %s is gone", event.request_id, event.function
            )
            return
        except UnsupportedFunction as exc:
            # Retrying cannot help (and would keep the engine busy for minutes): fail at once.
            _log.error("async event %s cannot run: %s", event.request_id, exc)
            self._note_error(str(exc))
            document = {"errorType": "UnsupportedFunction", "errorMessage": str(exc)}
            event.invocations += 1
            event.last = InvokeResult(
                request_id=event.request_id,
                payload=json.dumps(document).encode(),
                function_error="Unhandled",
            )
            self._finish(event, settings, "RetriesExhausted")
            return
        event.invocations += 1
        event.last = result
        event.last_error_code = result.status_code
        with self._lock:
            self._stats.invocations += 1
        if result.function_error is None:
            with self._lock:
                self._stats.succeeded += 1
            self._finish(event, settings, "Success")
            return
        retries_done = event.invocations - 1
        if retries_done < settings.max_retries:
            with self._lock:
                self._stats.retries += 1
            delay = RETRY_DELAYS[min(retries_done, len(RETRY_DELAYS) - 1)]
            self._schedule(event, delay)
            return
        self._finish(event, settings, "RetriesExhausted")

    def _settings(self, event: _Event) -> _Settings | None:
        from moto.awslambda.exceptions import UnknownFunctionException

        with self._backends.lock:
            try:
                fn = self._backends.lambda_().get_function(event.function, event.qualifier)
            except UnknownFunctionException:
                return None
            configs = getattr(fn, "event_invoke_config", None) or []
            # The last one put: moto appends on every put (its "first wins" read is a bug).
            config: dict[str, Any] = dict(configs[-1].config) if configs else {}
            dead_letter = (getattr(fn, "dead_letter_config", None) or {}).get("TargetArn")
            function_arn = str(fn.function_arn)
            version = str(fn.version)
        parts = function_arn.split(":")
        unqualified = ":".join(parts[:7])
        qualifier = event.qualifier or (parts[7] if len(parts) > 7 else None)
        if qualifier is None:
            qualifier = "$LATEST" if version in ("$LATEST", "") else version
        destinations = config.get("DestinationConfig") or {}
        max_retries = config.get("MaximumRetryAttempts")
        max_age = config.get("MaximumEventAgeInSeconds")
        return _Settings(
            qualified_arn=f"{unqualified}:{qualifier}",
            max_retries=DEFAULT_MAX_RETRIES if max_retries is None else int(max_retries),
            max_age=float(DEFAULT_MAX_EVENT_AGE if max_age is None else max_age),
            on_success=(destinations.get("OnSuccess") or {}).get("Destination") or None,
            on_failure=(destinations.get("OnFailure") or {}).get("Destination") or None,
            dead_letter=dead_letter or None,
        )

    def _finish(self, event: _Event, settings: _Settings, condition: str) -> None:
        success = condition == "Success"
        if not success:
            with self._lock:
                self._stats.failed += 1
            if self.metrics is not None:
                self.metrics.count(settings.qualified_arn, "AsyncEventsDropped")
        target = settings.on_success if success else settings.on_failure
        if target:
            record = destination_record(
                request_id=event.request_id,
                function_arn=settings.qualified_arn,
                condition=condition,
                invoke_count=event.invocations,
                request_payload=event.payload,
                result=event.last,
                timestamp=self._clock.now(),
            )
            self._deliver(target, record, success=success, function_arn=settings.qualified_arn)
        if not success and settings.dead_letter:
            self._dead_letter(event, settings.dead_letter, condition)

    # -- deliveries ----------------------------------------------------------------------------

    def _run(self, operation: str, *args: Any) -> None:
        """Run a delivery of :mod:`streamline.local.destinations` (journaled when durable)."""
        (self.mutations or Passthrough(self._backends)).run(operation, *args)

    def _deliver(
        self, target: str, record: dict[str, Any], *, success: bool, function_arn: str
    ) -> None:
        """Send a destination record to an SQS, SNS, Lambda or EventBridge target."""
        try:
            if target.count(":") >= 5 and target.split(":")[2] == "lambda":
                # A Lambda destination is invoked asynchronously, as on AWS.
                self.submit(target, json.dumps(record).encode())
            else:
                self._run("async.send_destination_record", target, record, success, function_arn)
        except Exception as exc:
            _log.warning("could not deliver async result to %s: %s", target, exc)
            if self.metrics is not None:
                self.metrics.count(function_arn, "DestinationDeliveryFailures")
            with self._lock:
                self._stats.delivery_errors += 1
            self._note_error(f"destination {target}: {exc}")
            return
        with self._lock:
            self._stats.deliveries += 1

    def _dead_letter(self, event: _Event, target: str, condition: str) -> None:
        """Send the original event to the function's DLQ with AWS's three attributes."""
        if event.last is not None and event.last.function_error:
            document = json_or_text(event.last.payload)
            message = (
                str(document.get("errorMessage", document))
                if isinstance(document, dict)
                else str(document)
            )
        else:
            message = condition
        attributes = {
            "RequestID": {"DataType": "String", "StringValue": event.request_id},
            "ErrorCode": {"DataType": "Number", "StringValue": str(event.last_error_code)},
            "ErrorMessage": {
                "DataType": "String",
                "StringValue": message[:_DLQ_MESSAGE_LIMIT] or condition,
            },
        }
        body = event.payload.decode("utf-8", errors="replace")
        try:
            self._run("async.send_dead_letter", target, body, attributes)
        except Exception as exc:
            _log.warning("could not send event %s to DLQ %s: %s", event.request_id, target, exc)
            if self.metrics is not None:
                self.metrics.count(event.function, "DeadLetterErrors")
            with self._lock:
                self._stats.delivery_errors += 1
            self._note_error(f"dead-letter {target}: {exc}")
            return
        with self._lock:
            self._stats.deliveries += 1

    def _note_error(self, message: str, function: str = "") -> None:
        with self._lock:
            self._stats.last_error = message
        if self.metrics is not None:
            self.metrics.engine_error("async", function or message.split(":", 1)[0])
